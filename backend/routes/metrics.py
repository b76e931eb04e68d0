"""/runs/{id}/metrics: the training curve."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.schemas import MetricsOut
from backend.services.runs import metric_points

router = APIRouter(prefix="/runs/{run_id}/metrics", tags=["metrics"])


@router.get("", response_model=MetricsOut)
def get_metrics(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> MetricsOut:
    svc.runs.get(s, run_id)
    return MetricsOut(points=metric_points(s, run_id))
