"""/generate: base and SFT answers of a run's models to one prompt, side by side; /generate/stream as SSE.

Both answers come from one batch (the run's adapter on and off), in the API process, or from the engine a
worker advertises (``backend.services.catalog``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, JSONServerSentEvent

from backend.deps import Services, services
from backend.errors import Conflict, Unavailable
from backend.schemas import GenerateOut, GenerateRequest
from backend.services.catalog import base_of, engine_for, served_for
from distill.data.builtin import default_system
from distill.errors import first_line
from distill.generation.engine import EngineError, Generation, Prompt, Sampling
from distill.reasoning import Split, StreamSplitter

router = APIRouter(prefix="/generate", tags=["generate"])
SIDES = ("base", "sft")


def _plan(svc: Services, req: GenerateRequest) -> tuple[list[Prompt], Any, dict | None]:
    """(the two prompts, the run's two served models, a worker's engine or None)."""
    with svc.sessions() as s:
        run = svc.runs.get(s, req.run_id)
        sft = served_for(run)
        if sft is None or run.parent_id is not None:
            raise Conflict(f"run {run.id} has no trained model yet (status {run.status})")
        engine = engine_for(s, run)
        base = base_of(run)
        system = req.system if req.system is not None else default_system(str((run.config or {}).get("dataset", "")))
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": req.prompt}]
    sampling = Sampling(max_new_tokens=req.max_new_tokens, temperature=req.temperature, top_p=req.top_p)
    prompts = [Prompt(model=t.id, messages=messages, sampling=sampling) for t in (base, sft)]
    return prompts, (base, sft), engine


def _events(svc: Services, req: GenerateRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    """("base"|"sft", {"delta"}) as the text comes, then ("done", per side tokens and time)."""
    prompts, targets, engine = _plan(svc, req)
    if engine is None:
        for item in svc.serving.stream(prompts, list(targets)):
            if isinstance(item, list):
                yield "done", _sides(item)
            else:
                yield SIDES[item[0]], {"delta": item[1]}
        return
    yield from _remote(engine, prompts, targets)


def _remote(engine: dict, prompts: list[Prompt], targets: tuple) -> Iterator[tuple[str, dict[str, Any]]]:
    """The same, from a worker's OpenAI-compatible engine (names: the base model's id and run-N)."""
    from distill.generation.remote import OpenAIEngine

    remote = OpenAIEngine(engine["url"], {"base": targets[0].base, "sft": targets[1].id})
    events: queue.Queue = queue.Queue()
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            gens = remote.generate([Prompt(model=side, messages=p.messages, sampling=p.sampling)
                                    for side, p in zip(SIDES, prompts, strict=True)],
                                   on_delta=lambda i, d: events.put((SIDES[i], {"delta": d})))
            out["done"] = _sides(gens)
        except EngineError as e:
            out["error"] = str(e)
        finally:
            events.put(None)

    threading.Thread(target=work, name="generate-remote", daemon=True).start()
    while (item := events.get()) is not None:
        yield item
    if "error" in out:
        raise Unavailable(out["error"])
    yield "done", out["done"]


def _sides(gens: list[Generation]) -> dict[str, Any]:
    return {side: {"text": g.text, **Split.of(g.text).api_fields(), "new_tokens": g.new_tokens,
                   "time_s": round(g.time_s, 4)}
            for side, g in zip(SIDES, gens, strict=True)}


@router.post("", response_model=GenerateOut)
def generate(req: GenerateRequest, svc: Services = Depends(services)) -> GenerateOut:
    done = [data for event, data in _events(svc, req) if event == "done"]
    return GenerateOut(**done[-1])


@router.post("/stream", summary="SSE: event base / sft with {delta, part: thinking|answer}; then event done with "
             "tokens and times")
async def generate_stream(req: GenerateRequest, svc: Services = Depends(services)) -> EventSourceResponse:
    await run_in_threadpool(_plan, svc, req)  # a run without a model fails before the stream starts

    def events() -> Iterator[JSONServerSentEvent]:
        split = {side: StreamSplitter() for side in SIDES}  # the client is told which deltas are the thought
        try:
            for event, data in _events(svc, req):
                if event == "done":
                    for side in SIDES:
                        for part, text in split[side].flush():
                            yield JSONServerSentEvent({"delta": text, "part": part}, event=side)
                    data = {k: {"new_tokens": v["new_tokens"], "time_s": v["time_s"]} for k, v in data.items()}
                    yield JSONServerSentEvent(data, event=event)
                    continue
                for part, text in split[event].feed(data["delta"]):
                    yield JSONServerSentEvent({"delta": text, "part": part}, event=event)
        except Exception as e:  # noqa: BLE001 - reported to the client as an event
            detail = getattr(e, "detail", None) or first_line(e)
            yield JSONServerSentEvent({"detail": detail}, event="error")

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
