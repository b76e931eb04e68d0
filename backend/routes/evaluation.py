"""/runs/{id}/evaluation: evaluation_results.json as the worker stored it, read through the one result model
(``distill.evaluation.results.load``: a version-less file of older runs reads as schema 1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.errors import NotFound
from backend.tables import Evaluation
from distill.evaluation.results import load
from distill.reasoning import Split

router = APIRouter(prefix="/runs/{run_id}/evaluation", tags=["evaluation"])


@router.get("", summary="schema_version, benchmarks (per suite), and their rendering: summary, deltas, accuracy_test, "
            "by_set, samples (each answer also split into thinking, answer_part, thinking_closed); models; 404 until "
            "the evaluation is done")
def get_evaluation(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> dict[str, Any]:
    run = svc.runs.get(s, run_id)
    ev = s.get(Evaluation, run_id)
    if ev is None:
        raise NotFound(f"run {run_id} has no evaluation yet (status {run.status})")
    results = load(ev.results)
    return {**results, "samples": [_with_parts(sample) for sample in results.get("samples", [])]}


def _with_parts(sample: dict[str, Any]) -> dict[str, Any]:
    """Each answer with its thought and answer apart, so that clients need not split the text themselves."""
    return {**sample, **{m: {**sample[m], **Split.of(str(sample[m].get("response", ""))).api_fields()}
                         for m in ("base", "sft") if isinstance(sample.get(m), dict)}}
