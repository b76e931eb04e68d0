"""/generate: base and SFT answers of a run's models to one prompt; /generate/stream as SSE."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from backend.deps import Services, services
from backend.routes.sse import SSE_HEADERS, sse
from backend.schemas import GenerateOut, GenerateRequest
from backend.services.inference import target_for

router = APIRouter(prefix="/generate", tags=["generate"])


def _run(svc: Services, run_id: int):  # noqa: ANN202
    with svc.sessions() as s:
        run = svc.runs.get(s, run_id)
        s.expunge(run)
    target_for(run)  # 409 when the run has no model yet
    return run


@router.post("", response_model=GenerateOut)
def generate(req: GenerateRequest, svc: Services = Depends(services)) -> GenerateOut:
    run = _run(svc, req.run_id)
    return GenerateOut(**svc.inference.generate(run, req))


@router.post("/stream", response_class=StreamingResponse,
             summary="SSE: event base / sft with {delta}; then event done with tokens and times")
async def generate_stream(req: GenerateRequest, svc: Services = Depends(services)) -> StreamingResponse:
    run = await run_in_threadpool(_run, svc, req.run_id)

    def events():  # noqa: ANN202 - a sync generator: Starlette iterates it in a worker thread
        for event, data in svc.inference.stream(run, req):
            yield sse(event, data)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
