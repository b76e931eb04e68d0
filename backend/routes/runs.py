"""/runs: submit, list, read, delete, cancel, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.schemas import RunDetailOut, RunList, RunOut, RunStatus, run_dict
from backend.services.runs import resumability
from distill.config import RunConfig
from distill.tracking import read_tracking

router = APIRouter(prefix="/runs", tags=["runs"])


def json_response(data: Any, status_code: int = 200) -> Response:
    """Serialized once (FastAPI would validate the dicts against the response model again)."""
    return Response(_dumps(data), status_code=status_code, media_type="application/json")


def _dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


@router.post("", status_code=201, response_model=RunOut,
             summary="Submit a run: the run configuration (every field optional) plus an optional name")
async def create_run(body: Annotated[RunConfig | None, Body()] = None, svc: Services = Depends(services)) -> RunOut:
    run = await run_in_threadpool(svc.runs.create, body or RunConfig())
    return RunOut.of(run)


# Plain ``def``: FastAPI runs them in its thread pool, so a slow query or a full connection pool
# waits there and never stalls the event loop that carries the SSE and /v1 streams
# (tests/service/test_service_slow_query.py).
@router.get("", response_model=RunList, summary="Runs, newest first")
def list_runs(
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    svc: Services = Depends(services),
    s: Session = Depends(session),
) -> Response:
    rows, total = svc.runs.list_rows(s, status, limit, offset)
    return json_response({"items": [run_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset})


@router.get("/{run_id}", response_model=RunDetailOut)
def get_run(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> Response:
    run = run_dict(svc.runs.get_row(s, run_id))
    tracking = read_tracking(Path(run["output_dir"])) if run.get("output_dir") else None
    return json_response({**run, **resumability(run), "tracking": tracking})


@router.delete("/{run_id}", status_code=204, summary="Delete a run that is not running, and its folder")
def delete_run(run_id: int, svc: Services = Depends(services)) -> Response:
    svc.runs.delete(run_id)
    svc.serving.forget_run(run_id)  # its weights leave memory; /v1 answers 404 for it from now on
    return Response(status_code=204)


@router.post("/{run_id}/cancel", status_code=202, response_model=RunOut)
def cancel_run(run_id: int, svc: Services = Depends(services)) -> RunOut:
    return RunOut.of(svc.runs.cancel(run_id))


@router.post("/{run_id}/resume", status_code=202, response_model=RunOut,
             summary="Queue a failed or cancelled run again; training continues from its last checkpoint")
def resume_run(run_id: int, svc: Services = Depends(services)) -> RunOut:
    return RunOut.of(svc.runs.resume(run_id))
