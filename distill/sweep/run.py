"""Running a sweep from the command line: each point is an ordinary run (its own folder, log, model and results)
in a process of its own, at most ``max_parallel`` at once; a point already finished is not run again, and one that
fails is reported while the others go on."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from distill.sweep.plan import Point, SweepSpec, plan
from distill.sweep.results import config_diff, judge, markdown, objective_of, point_row

log = logging.getLogger("distill")


def point_folder(root: Path, point: Point) -> Path:
    return root / "points" / re.sub(r"[^A-Za-z0-9._=,+-]", "_", point.name)


def base_answers_dir(point_folder: Path) -> Path:
    """Where the sweep's points keep the base model's answers (asked once, read by every other point)."""
    return point_folder.parent.parent / "base_answers"


def finished(folder: Path) -> bool:
    return (folder / "evaluation_results.json").is_file()


def run_point(point: Point, folder: Path) -> bool:
    """The point's run in a child process (``--resume``: a point stopped half-way continues); True if it finished."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "failed").unlink(missing_ok=True)
    config_file = folder / "sweep_point.json"
    config_file.write_text(json.dumps({**point.config.to_json(), "output_dir": str(folder), "resume": True,
                                       "name": point.name, "base_answers_dir": str(base_answers_dir(folder))},
                                      indent=2))
    log.info("sweep: running %s in %s", point.name, folder)
    with (folder / "sweep_point.log").open("a") as out:
        rc = subprocess.run([sys.executable, "-m", "distill.cli", "--config", str(config_file)], check=False,
                            stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not finished(folder):
        lines = (folder / "sweep_point.log").read_text().strip().splitlines()
        reason = next((x for x in reversed(lines) if x.startswith(("error:", "cancelled:"))), f"exit code {rc}")
        (folder / "failed").write_text(reason + "\n")
        log.warning("sweep: %s failed: %s", point.name, reason)
        return False
    log.info("sweep: %s finished", point.name)
    return True


def summarize(spec: SweepSpec, points: list[Point], root: Path) -> dict[str, Any]:
    """``sweep.json``'s content: the objective, every point's row, the verdict, the configuration diff."""
    suite, metric = objective_of(spec.objective, points[0].config.benchmarks if points else [])
    folders = {p.name: point_folder(root, p) for p in points}
    return {"name": root.name, "spec": spec.model_dump(), "objective": {"suite": suite, "metric": metric},
            "points": [point_row(p, folders[p.name], suite, metric) for p in points],
            "verdict": judge(points, folders, suite, points[0].config.num_samples if points else 1),
            "diff": config_diff(points)}


def write_summary(summary: dict[str, Any], root: Path) -> None:
    (root / "sweep.json").write_text(json.dumps(summary, indent=2, default=str))
    (root / "sweep.md").write_text(markdown(summary))


def sweep_root(home: Path, output_dir: str | None) -> Path:
    return Path(output_dir) if output_dir else home / "sweeps" / datetime.now().strftime("sweep_%Y%m%d_%H%M%S")


def run_sweep(spec: SweepSpec, root: Path) -> dict[str, Any]:
    """Runs the unfinished points, then writes ``sweep.json`` and ``sweep.md`` in ``root``."""
    points = plan(spec)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep_spec.json").write_text(spec.model_dump_json(indent=2))
    todo = [p for p in points if not finished(point_folder(root, p))]
    if len(todo) < len(points):
        log.info("sweep: %d of %d points already finished; running the other %d", len(points) - len(todo),
                 len(points), len(todo))
    with ThreadPoolExecutor(max_workers=spec.max_parallel) as pool:
        list(pool.map(lambda p: run_point(p, point_folder(root, p)), todo))
    summary = summarize(spec, points, root)
    write_summary(summary, root)
    return summary
