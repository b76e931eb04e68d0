"""/runs: submit, list, read, delete, cancel, resume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.schemas import RunList, RunOut, RunStatus
from distill.config import RunConfig

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=201, response_model=RunOut,
             summary="Submit a run: the run configuration (every field optional) plus an optional name")
async def create_run(body: Annotated[RunConfig | None, Body()] = None, svc: Services = Depends(services)) -> RunOut:
    run = await run_in_threadpool(svc.runs.create, body or RunConfig())
    return RunOut.of(run)


# The two reads below run on the event loop: they are index lookups that take well under a
# millisecond, and skipping the thread pool avoids GIL hand-offs that dominate their latency
# under many concurrent clients (bench/api_latency.py).
@router.get("", response_model=RunList, summary="Runs, newest first")
async def list_runs(
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    svc: Services = Depends(services),
    s: Session = Depends(session),
) -> RunList:
    runs, total = svc.runs.list(s, status, limit, offset)
    return RunList(items=[RunOut.of(r) for r in runs], total=total, limit=limit, offset=offset)


@router.get("/{run_id}", response_model=RunOut)
async def get_run(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> RunOut:
    return RunOut.of(svc.runs.get(s, run_id))


@router.delete("/{run_id}", status_code=204, summary="Delete a run that is not running, and its folder")
def delete_run(run_id: int, svc: Services = Depends(services)) -> Response:
    svc.runs.delete(run_id)
    return Response(status_code=204)


@router.post("/{run_id}/cancel", status_code=202, response_model=RunOut)
def cancel_run(run_id: int, svc: Services = Depends(services)) -> RunOut:
    return RunOut.of(svc.runs.cancel(run_id))


@router.post("/{run_id}/resume", status_code=202, response_model=RunOut,
             summary="Queue a failed or cancelled run again; training continues from its last checkpoint")
def resume_run(run_id: int, svc: Services = Depends(services)) -> RunOut:
    return RunOut.of(svc.runs.resume(run_id))
