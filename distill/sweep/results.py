"""A sweep's table and verdict, read from its points' run folders (``evaluation_results.json`` through
``distill.evaluation.results.load``, ``timings.json``), written as ``sweep.json`` and ``sweep.md``."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from distill.evaluation.results import load
from distill.sweep.plan import Point
from distill.sweep.verdict import pairwise, verdict

DIAGNOSTICS = ("think_closed_pct", "looping_pct", "truncated_pct", "tokens_p50")


def _read(path: Path) -> dict[str, Any] | None:
    """A run's JSON file, parsed once per version of it: the table and the verdict read the same files, and the
    dashboard asks for them every few seconds while a sweep runs."""
    return _parsed(path, path.stat().st_mtime_ns) if path.is_file() else None


@lru_cache(maxsize=256)
def _parsed(path: Path, mtime_ns: int) -> dict[str, Any]:
    return json.loads(path.read_text())


def evaluation_results(folder: Path) -> dict[str, Any] | None:
    """A run folder's ``evaluation_results.json`` as the current result model (any stored version: ``load``, which
    refuses a version it cannot read in one line), or None when the run has not been evaluated."""
    path = folder / "evaluation_results.json"
    return _loaded(path, path.stat().st_mtime_ns) if path.is_file() else None


@lru_cache(maxsize=256)
def _loaded(path: Path, mtime_ns: int) -> dict[str, Any]:
    # Cached like ``_parsed``: ``load`` renders the older keys again where a file holds only the model.
    return load(_parsed(path, mtime_ns))


def objective_of(spec_objective: str | None, suites: list[str]) -> tuple[str, str]:
    """(suite, metric): ``SUITE`` or ``SUITE:METRIC``; default the first suite's pass@1."""
    if not spec_objective:
        return (suites[0] if suites else "heldout"), "pass@1"
    suite, _, metric = spec_objective.partition(":")
    return suite, metric or "pass@1"


def point_row(point: Point, folder: Path, suite: str, metric: str) -> dict[str, Any]:
    """One line of the table; ``status`` says whether the point finished."""
    results, timings = evaluation_results(folder), _read(folder / "timings.json") or {}
    row: dict[str, Any] = {"name": point.name, "overrides": point.overrides, "merged": point.merged,
                           "folder": str(folder), "wall_s": round(timings.get("total_s", 0.0), 1) or None}
    block = (results or {}).get("benchmarks", {}).get(suite)
    if block is None:
        failed = folder / "failed"
        return {**row, "status": "failed" if failed.exists() else "unfinished",
                "error": failed.read_text().strip() if failed.exists() else None}
    sft = block["sft"]
    return {**row, "status": "done", "objective": sft.get(metric), "objective_ci": sft.get(f"{metric}_ci"),
            "base": block["base"].get(metric), "delta_vs_base": block.get("delta_pass@1"),
            "p_vs_base": block.get("p_value"), "n_problems": block.get("n_problems"),
            **{k: sft.get(k) for k in DIAGNOSTICS}}


def per_problem_scores(folder: Path, suite: str) -> dict[str, float]:
    """Problem id → the fine-tuned model's pass@1 on it."""
    results = evaluation_results(folder) or {}
    records = results.get("benchmark_samples", {}).get(suite, [])
    return {r["id"]: sum(bool(s["correct"]) for s in r["sft"]) / len(r["sft"]) for r in records if r["sft"]}


def judge(points: list[Point], folders: dict[str, Path], suite: str, num_samples: int) -> dict[str, Any]:
    """The verdict on the problems every finished point answered."""
    scores = {p.name: per_problem_scores(folders[p.name], suite) for p in points}
    scores = {name: s for name, s in scores.items() if s}
    common = sorted(set.intersection(*(set(s) for s in scores.values()))) if scores else []
    result = verdict({name: [s[i] for i in common] for name, s in scores.items()}, num_samples).to_json()
    return {**result, "n_problems_compared": len(common)}


def config_diff(points: list[Point]) -> dict[str, dict[str, Any]]:
    """Field → each point's value, for the fields that differ between points."""
    return configs_diff({p.name: p.config.model_dump() for p in points})


def configs_diff(configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Field → each configuration's value, for the fields that differ (names and folders aside)."""
    fields = sorted({k for d in configs.values() for k in d if len({repr(x.get(k)) for x in configs.values()}) > 1}
                    - {"output_dir", "name", "base_answers_dir"})
    return {f: {name: d.get(f) for name, d in configs.items()} for f in fields}


def compare_folders(folders: dict[str, Path]) -> dict[str, Any]:
    """Runs side by side: each suite they all answered, every pair of runs' fine-tuned models tested on the
    problems both answered (Holm-corrected across the pairs of that suite)."""
    results = {name: evaluation_results(f) or {} for name, f in folders.items()}
    suites = [s for s in next(iter(results.values()), {}).get("benchmarks", {})
              if all(s in r.get("benchmarks", {}) for r in results.values())] if results else []
    out: dict[str, Any] = {}
    for suite in suites:
        scores = {name: per_problem_scores(folders[name], suite) for name in folders}
        common = sorted(set.intersection(*(set(s) for s in scores.values())))
        n = results[next(iter(results))]["benchmarks"][suite].get("num_samples", 1)
        out[suite] = {"n_problems_compared": len(common),
                      "sft": {name: results[name]["benchmarks"][suite]["sft"].get("pass@1") for name in folders},
                      "pairs": [c.to_json() for c in pairwise({k: [s[i] for i in common] for k, s in scores.items()},
                                                              n)]}
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(summary: dict[str, Any]) -> str:
    suite, metric = summary["objective"]["suite"], summary["objective"]["metric"]
    lines = [f"# Sweep {summary['name']}", "", f"Objective: {suite} {metric} of the fine-tuned model "
             f"({summary['verdict'].get('n_problems_compared', 0)} problems answered by every finished point).", "",
             f"**Verdict:** {summary['verdict']['text']}", "",
             "| point | status | objective % [95 % CI] | SFT − base (pp) | p vs base | thought closed % | looping % "
             "| truncated % | tokens p50 | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["points"]:
        ci = r.get("objective_ci") or [None, None]
        cell = f"{_pct(r.get('objective'))} [{_pct(ci[0])}, {_pct(ci[1])}]" if r.get("objective") is not None else "–"
        lines.append(f"| {r['name']} | {r['status']} | {cell} | {_pct(r.get('delta_vs_base'))} | "
                     f"{r.get('p_vs_base', '–')} | {r.get('think_closed_pct', '–')} | {r.get('looping_pct', '–')} | "
                     f"{r.get('truncated_pct', '–')} | {r.get('tokens_p50', '–')} | {r.get('wall_s') or '–'} |")
    comparisons = summary["verdict"].get("comparisons", [])
    if comparisons:
        lines += ["", f"Best ({summary['verdict']['best']}) against each other point, on the same problems:", "",
                  "| point | best − point (pp) | p | p (Holm) | worse than the best |", "|---|---|---|---|---|"]
        lines += [f"| {c['point']} | {_pct(c['delta'])} | {c['p_value']} | {c['p_holm']} | "
                  f"{'yes' if c['worse'] else 'no'} |" for c in comparisons]
    failed = [f"- {r['name']}: {r['error']}" for r in summary["points"] if r.get("error")]
    if failed:
        lines += ["", "Failed:", "", *failed]
    merged = [f"{', '.join(r['merged'])} → {r['name']}" for r in summary["points"] if r["merged"]]
    if merged:
        lines += ["", "Merged (the same run): " + "; ".join(merged)]
    return "\n".join(lines + _diff_table(summary["diff"])) + "\n"


def _diff_table(diff: dict[str, dict[str, Any]]) -> list[str]:
    if not diff:
        return []
    names = list(next(iter(diff.values())))
    fields = list(diff)
    return ["", "Configuration that differs between points:", "", "| point | " + " | ".join(fields) + " |",
            "|---" * (len(fields) + 1) + "|",
            *[f"| {n} | " + " | ".join(str(diff[f][n]) for f in fields) + " |" for n in names]]
