"""``/v1``: the OpenAI API for every run's models (``GET /v1/models``, ``POST /v1/chat/completions``,
``POST /v1/completions``), streamed as OpenAI streams them. Same bearer token as the rest of the API;
errors in OpenAI's shape (``backend.errors``). Extensions that vLLM has too: ``continue_final_message``
and ``add_generation_prompt`` (continue a partial assistant turn); ``separate_reasoning`` (SGLang's name): the
thought comes back in ``reasoning_content`` and only the answer in ``content``, in the message and in stream
deltas, as DeepSeek's API and vLLM's reasoning parser return them; ours: ``max_thinking_tokens``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from backend.deps import Services, services
from backend.services.catalog import base_ids, resolve, runs_with_models
from backend.services.serving import BASE_SUFFIX, Served
from distill.generation.engine import Generation, Prompt, Sampling
from distill.reasoning import Split, StreamSplitter

router = APIRouter(prefix="/v1", tags=["openai"])
DEFAULT_MAX_TOKENS = 1024


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")


class _Sampled(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send fields we do not use (user, logit_bias, ...)
    model: str
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(1, ge=1, le=16)
    max_tokens: int | None = Field(None, ge=1, le=131_072)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    max_thinking_tokens: int | None = Field(None, ge=1, le=131_072)
    separate_reasoning: bool = False  # chat: the thought in reasoning_content, the answer alone in content

    def sampling(self, i: int) -> Sampling:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        seed = None if self.seed is None else self.seed + i  # n choices: n different samples
        return Sampling(max_new_tokens=self.max_tokens or DEFAULT_MAX_TOKENS, temperature=self.temperature,
                        top_p=self.top_p, seed=seed, max_thinking_tokens=self.max_thinking_tokens, stop=stop)

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    @property
    def opens_thought(self) -> bool:
        """The answer starts inside a thought (a continued assistant turn that opened one)."""
        return False


class ChatRequest(_Sampled):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=131_072)
    continue_final_message: bool = False
    add_generation_prompt: bool = True

    @property
    def opens_thought(self) -> bool:
        return self.continue_final_message and Split.of(self.messages[-1].text()).in_thought

    def prompts(self) -> list[Prompt]:
        if self.max_completion_tokens and not self.max_tokens:
            self.max_tokens = self.max_completion_tokens
        msgs = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]
        return [Prompt(model=self.model, messages=msgs, sampling=self.sampling(i),
                       continue_final=self.continue_final_message) for i in range(self.n)]


class CompletionRequest(_Sampled):
    prompt: str | list[str]

    def prompts(self) -> list[Prompt]:
        texts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        return [Prompt(model=self.model, text=t, sampling=self.sampling(i)) for t in texts for i in range(self.n)]


def _usage(gens: list[Generation], prompt_tokens: int) -> dict[str, int]:
    done = sum(g.new_tokens for g in gens)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": done, "total_tokens": prompt_tokens + done}


def _prompt_tokens(gens: list[Generation], per_prompt: int) -> int:
    # n choices of one prompt share it: count each prompt once, as OpenAI does.
    return sum(g.prompt_tokens for g in gens[::per_prompt])


@router.get("/models", summary="Every finished run's SFT model (run-N), its base (run-N:base) and each base model")
def list_models(svc: Services = Depends(services)) -> dict[str, Any]:
    with svc.sessions() as s:
        runs = runs_with_models(s)
        bases = base_ids(s)
    data = [{"id": b, "object": "model", "created": 0, "owned_by": "distill"} for b in bases]
    for run, served in runs:
        created = int(run.created_at.timestamp()) if run.created_at else 0
        data.append({"id": served.id, "object": "model", "created": created, "owned_by": "distill",
                     "root": served.base, "parent": served.base})
        data.append({"id": served.id + BASE_SUFFIX, "object": "model", "created": created, "owned_by": "distill",
                     "root": served.base})
    return {"object": "list", "data": data}


def _target(svc: Services, model_id: str) -> Served:
    with svc.sessions() as s:
        return resolve(s, model_id)


async def _complete(request: Request, svc: Services, body: _Sampled, target: Served) -> list[Generation]:
    """Generate; a client that hangs up stops its rows (a cancelled benchmark job frees the batch)."""
    gone = threading.Event()
    work = asyncio.get_running_loop().run_in_executor(
        None, lambda: svc.serving.generate(body.prompts(), [target], gone=gone))
    while not work.done():
        await asyncio.wait({work}, timeout=0.25)
        if not work.done() and await request.is_disconnected():
            gone.set()
    return work.result()


def _stream(svc: Services, body: _Sampled, target: Served, kind: str) -> Iterator[dict[str, str]]:
    """The OpenAI stream. Queued at once, so that a full queue is a 429 before the stream starts."""
    prompts = body.prompts()
    generated = svc.serving.stream(prompts, [target])
    return _chunks(body, kind, len(prompts), generated)


def _chunks(body: _Sampled, kind: str, n_prompts: int, generated: Iterator) -> Iterator[dict[str, str]]:
    rid, created = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}", int(time.time())
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
        return {"data": json.dumps({"id": rid, "object": obj, "created": created, "model": body.model,
                                    "choices": choices, **extra})}

    def choice(i: int, text: str | None = None, finish: str | None = None, role: bool = False,
               part: str = "answer") -> dict[str, Any]:
        if kind == "chat":
            key = "reasoning_content" if part == "thinking" else "content"
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else ({key: text} if text else {})
            return {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": i, "text": text or "", "logprobs": None, "finish_reason": finish}

    split = body.separate_reasoning and kind == "chat"
    splitters = [StreamSplitter(in_thought=body.opens_thought) for _ in range(n_prompts)]
    if kind == "chat":
        yield chunk([choice(i, role=True) for i in range(n_prompts)])
    gens: list[Generation] = []
    for item in generated:
        if isinstance(item, list):
            gens = item
        elif split:
            for part, text in splitters[item[0]].feed(item[1]):
                yield chunk([choice(item[0], text, part=part)])
        else:
            yield chunk([choice(item[0], item[1])])
    for i, splitter in enumerate(splitters if split else []):
        for part, text in splitter.flush():
            yield chunk([choice(i, text, part=part)])
    yield chunk([choice(i, finish=g.finish_reason) for i, g in enumerate(gens)])
    if body.include_usage:
        yield chunk([], usage=_usage(gens, _prompt_tokens(gens, body.n)))
    yield {"data": "[DONE]"}


def _message(text: str, body: _Sampled) -> dict[str, Any]:
    """The assistant message; with ``separate_reasoning`` the thought apart, the content None while it is open."""
    if not body.separate_reasoning:
        return {"role": "assistant", "content": text}
    split = Split.of(text, in_thought=body.opens_thought)
    if not split.opened:
        return {"role": "assistant", "content": text, "reasoning_content": None}
    return {"role": "assistant", "content": split.answer if split.closed else None, "reasoning_content": split.thought}


async def _respond(request: Request, svc: Services, body: _Sampled, kind: str) -> Any:
    """A chat ("chat") or text ("text") completion, streamed when asked."""
    target = await run_in_threadpool(_target, svc, body.model)
    if body.stream:
        return EventSourceResponse(await run_in_threadpool(_stream, svc, body, target, kind), ping=15)
    gens = await _complete(request, svc, body, target)
    if kind == "chat":
        rid, obj = f"chatcmpl-{uuid.uuid4().hex}", "chat.completion"
        choices = [{"index": i, "message": _message(g.text, body), "logprobs": None,
                    "finish_reason": g.finish_reason} for i, g in enumerate(gens)]
    else:
        rid, obj = f"cmpl-{uuid.uuid4().hex}", "text_completion"
        choices = [{"index": i, "text": g.text, "logprobs": None, "finish_reason": g.finish_reason}
                   for i, g in enumerate(gens)]
    return {"id": rid, "object": obj, "created": int(time.time()), "model": body.model, "choices": choices,
            "usage": _usage(gens, _prompt_tokens(gens, body.n))}


@router.post("/chat/completions", summary="OpenAI chat completions (stream, n, max_tokens, temperature, top_p, stop, seed)")
async def chat_completions(request: Request, body: ChatRequest, svc: Services = Depends(services)) -> Any:
    return await _respond(request, svc, body, "chat")


@router.post("/completions", summary="OpenAI text completions on a raw prompt")
async def completions(request: Request, body: CompletionRequest, svc: Services = Depends(services)) -> Any:
    return await _respond(request, svc, body, "text")
