"""/compare: any runs side by side — the configuration that differs, and pair by pair tests of their fine-tuned
models on the problems they all answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.deps import session
from backend.errors import FieldError, NotFound
from backend.tables import Run
from distill.config import RunConfig
from distill.sweep.results import compare_folders, configs_diff, evaluation_results

router = APIRouter(tags=["compare"])


def _ids(runs: str) -> list[int]:
    parts = [p.strip() for p in runs.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise FieldError("runs", f"expected comma-separated run ids, got {runs!r}", where="query")
    ids = list(dict.fromkeys(int(p) for p in parts))
    if len(ids) < 2:
        raise FieldError("runs", "name at least two runs to compare", where="query")
    return ids


@router.get("/compare", summary="Runs side by side: the configuration fields that differ (with the defaults), and "
                                "for each suite they all answered every pair of fine-tuned models tested on the same "
                                "problems (exact McNemar or paired bootstrap), Holm-corrected across the pairs")
def compare(runs: str = Query(..., description="comma-separated run ids, at least two"),
            s: Session = Depends(session)) -> dict[str, Any]:
    ids = _ids(runs)
    rows = {r.id: r for r in s.scalars(select(Run).where(Run.id.in_(ids)))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"run {missing[0]} not found")
    label = {i: f"#{i} {rows[i].name or ''}".strip() for i in ids}
    evaluated = {label[i]: Path(rows[i].output_dir) for i in ids
                 if rows[i].output_dir and evaluation_results(Path(rows[i].output_dir)) is not None}
    defaults = RunConfig().to_json()
    diff = configs_diff({label[i]: rows[i].config for i in ids})
    return {"runs": [{"id": i, "label": label[i]} for i in ids],
            "diff": diff, "defaults": {f: defaults.get(f) for f in diff},
            "not_evaluated": [label[i] for i in ids if label[i] not in evaluated],
            "suites": compare_folders(evaluated) if len(evaluated) >= 2 else {}}
