"""Generated datasets: the runs that asked a teacher, their ``dataset.jsonl`` as a dataset to train on, and every
problem's samples with their verdicts (read from the run folder, where the worker wrote them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.errors import FieldError, NotFound
from backend.tables import Run
from distill.config import RunConfig
from distill.rundir import RunDir
from distill.traces.run import rows_report
from distill.traces.verdicts import VERDICTS

PREFIX = "traces:"
STATUSES = ("answered", "failed", "duplicate", "contaminated")


def _report(folder: RunDir) -> dict[str, Any] | None:
    try:
        report = json.loads(folder.data_report.read_text())
    except (OSError, ValueError):
        return None
    return report if "funnel" in report else None


def generated(s: Session) -> list[dict[str, Any]]:
    """Every finished trace generation's dataset, newest first, as GET /datasets lists it."""
    out = []
    rows = s.execute(select(Run.id, Run.name, Run.config, Run.output_dir)
                     .where(Run.status == "succeeded", Run.parent_id.is_(None)).order_by(Run.id.desc()))
    for run_id, name, config, output_dir in rows:
        if not (config or {}).get("teacher_model") or not output_dir:
            continue
        folder = RunDir(Path(output_dir))
        report = _report(folder)
        if report is None or not folder.dataset.is_file() or not report["funnel"]["kept"]:
            continue  # nothing to train on
        teacher = Path(str(config["teacher_model"])).name if not config.get("teacher_url") else config["teacher_model"]
        out.append({"id": f"{PREFIX}{run_id}", "name": f"{name or f'run-{run_id}'}: traces from {teacher}",
                    "kind": "generated", "ref": str(folder.dataset), "rows": report["funnel"]["kept"],
                    "report": report, "run_id": run_id, "uses": ["training", "problems"]})
    return out


def dataset_file(s: Session, dataset_id: str) -> tuple[str, dict[str, Any] | None]:
    """(the dataset.jsonl of ``traces:N``, its report); NotFound otherwise."""
    raw = dataset_id.removeprefix(PREFIX)
    run = s.get(Run, int(raw)) if raw.isdigit() else None
    folder = RunDir(Path(run.output_dir)) if run is not None and run.output_dir else None
    if folder is None or not folder.dataset.is_file():
        raise NotFound(f"dataset {dataset_id} not found")
    return str(folder.dataset), _report(folder)


def page(run: Run, verdict: str | None, status: str | None, search: str | None, offset: int,
         limit: int) -> dict[str, Any]:
    """One page of ``generations.jsonl``: problems with a sample of ``verdict`` and/or of ``status``, and/or
    whose problem text holds ``search``."""
    if verdict is not None and verdict not in VERDICTS:
        raise FieldError("verdict", f"unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)}")
    if status is not None and status not in STATUSES:
        raise FieldError("status", f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    folder = RunDir(Path(run.output_dir or ""))
    if not (run.config or {}).get("teacher_model"):
        raise NotFound(f"run {run.id} generated no traces (it has no teacher_model)")
    rows = []
    if folder.generations.is_file():
        for line in folder.generations.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # the line being written right now
                continue
    latest = sorted({str(r["id"]): r for r in rows}.values(), key=lambda r: r.get("index", 0))  # the last counts
    wanted = [r for r in latest
              if (status is None or r.get("status") == status)
              and (verdict is None or verdict in (r.get("verdicts") or []))
              and (not search or search.lower() in str(r.get("problem", "")).lower())]
    report = _report(folder)
    if report is None and latest:  # still generating (or stopped): what the rows written so far say
        report = rows_report(RunConfig.model_validate(run.config), latest)
    return {"run_id": run.id, "report": report, "total": len(wanted), "items": wanted[offset:offset + limit]}
