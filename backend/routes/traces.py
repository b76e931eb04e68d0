"""/runs/{id}/traces: a trace generation's funnel and every problem's samples with their verdicts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.deps import Services, services
from backend.schemas import TracesOut
from backend.services import traces

router = APIRouter(prefix="/runs", tags=["traces"])


@router.get("/{run_id}/traces", response_model=TracesOut,
            summary="A trace generation: data_report.json and one page of generations.jsonl, filterable by a "
                    "sample's verdict, a problem's status, or text in the problem")
def get_traces(run_id: int, verdict: str | None = None, status: str | None = None, q: str | None = None,
               offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50,
               svc: Services = Depends(services)) -> TracesOut:
    with svc.sessions() as s:
        run = svc.runs.get(s, run_id)
    return TracesOut(**traces.page(run, verdict, status, q, offset, limit))
