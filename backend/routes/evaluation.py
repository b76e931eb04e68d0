"""/runs/{id}/evaluation: evaluation_results.json as the worker stored it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.errors import NotFound
from backend.tables import Evaluation
from distill.reasoning import parts

router = APIRouter(prefix="/runs/{run_id}/evaluation", tags=["evaluation"])


@router.get("", summary="summary, deltas, by_set, samples (each answer also split into thinking and answer_part), "
            "benchmarks, models; 404 until the evaluation is done")
def get_evaluation(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> dict[str, Any]:
    run = svc.runs.get(s, run_id)
    ev = s.get(Evaluation, run_id)
    if ev is None:
        raise NotFound(f"run {run_id} has no evaluation yet (status {run.status})")
    # Each answer with its thought and answer apart, so that clients need not split the text themselves.
    samples = [{**sample, **{m: {**sample[m], **parts(str(sample[m].get("response", "")))} for m in ("base", "sft")
                             if isinstance(sample.get(m), dict)}} for sample in ev.results.get("samples", [])]
    return {**ev.results, "samples": samples}
