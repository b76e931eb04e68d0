"""/runs/{id}/logs: pages of log lines, and a Server-Sent Events stream that follows the run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, JSONServerSentEvent

from backend.deps import Services, services, session
from backend.schemas import LogLineOut, LogsOut, iso
from backend.services.runs import log_lines
from backend.tables import TERMINAL, Run

router = APIRouter(prefix="/runs/{run_id}/logs", tags=["logs"])
POLL_S = 0.2
PING_S = 15


def _line(l) -> dict:  # noqa: ANN001
    return {"seq": l.seq, "ts": iso(l.ts), "level": l.level, "message": l.message}


@router.get("", response_model=LogsOut)
def get_logs(
    run_id: int,
    offset: Annotated[int, Query(ge=0, description="sequence number to start after")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    svc: Services = Depends(services),
    s: Session = Depends(session),
) -> LogsOut:
    svc.runs.get(s, run_id)
    lines = log_lines(s, run_id, offset, limit)
    return LogsOut(lines=[LogLineOut(**_line(l)) for l in lines], next_offset=lines[-1].seq if lines else offset)


@router.get("/stream", summary="SSE: event log (id = seq) until the run ends, then event end",
            response_class=EventSourceResponse)
async def stream_logs(
    run_id: int,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    svc: Services = Depends(services),
) -> EventSourceResponse:
    def _exists() -> None:
        with svc.sessions() as s:
            svc.runs.get(s, run_id)

    await run_in_threadpool(_exists)
    start = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else offset

    def fetch(after: int) -> tuple[str | None, list[dict]]:
        with svc.sessions() as s:
            status = s.get(Run, run_id)
            st = status.status if status is not None else None
            return st, [_line(l) for l in log_lines(s, run_id, after, 500)]

    async def events() -> AsyncIterator[JSONServerSentEvent]:
        last = start
        while True:
            status, lines = await run_in_threadpool(fetch, last)
            for line in lines:
                yield JSONServerSentEvent(line, event="log", id=str(line["seq"]))
                last = line["seq"]
            if lines:
                continue
            if status is None or status in TERMINAL:
                yield JSONServerSentEvent({"status": status or "deleted"}, event="end")
                return
            await asyncio.sleep(POLL_S)

    # sse-starlette sends the keep-alive pings and stops the loop when the client goes away.
    return EventSourceResponse(events(), ping=PING_S, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
