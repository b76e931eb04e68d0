"""The ``openai`` engine: any OpenAI-compatible server generates (vLLM, SGLang, ``transformers serve``, a
llama.cpp server, or this service's own ``/v1``), so evaluation needs no local weights.

Requests go out concurrently (at most ``concurrency`` at once), are retried with backoff on 429, 5xx
and dropped connections, and time out. An unreachable URL, a refused key or a model the server does
not serve is one line naming it. Cancelling closes the requests still in flight.

Budget forcing needs the server to continue a partial assistant message (vLLM's and this service's
``continue_final_message``): the thought is generated up to the budget (stopping at ``</think>``),
then the same conversation is continued after ``</think>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from distill.generation.engine import (
    EngineError,
    Generation,
    GenerationCancelled,
    OnDelta,
    Prompt,
)
from distill.reasoning import FORCED_CLOSE, THINK_CLOSE, THINK_OPEN, split_response

API_KEY_ENV = "DISTILL_ENGINE_API_KEY"  # read here only: never stored in a run's config, never logged
RETRY_STATUS = {429, 500, 502, 503, 504}


def api_key() -> str | None:
    return os.environ.get(API_KEY_ENV) or None


class _Retryable(Exception):
    def __init__(self, reason: str, wait_s: float | None = None):
        super().__init__(reason)
        self.reason, self.wait_s = reason, wait_s


class OpenAIEngine:
    """``models`` maps the names prompts use ("base", "sft") to the server's model names."""

    name = "openai"

    def __init__(self, url: str, models: dict[str, str], *, key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 600.0, retries: int = 4, backoff_s: float = 0.5):
        self.url = url.rstrip("/")
        self.served = dict(models)
        self.key = key if key is not None else api_key()
        self.concurrency = max(1, concurrency)
        self.timeout = httpx.Timeout(timeout_s, connect=5.0)
        self.retries, self.backoff_s = max(0, retries), backoff_s

    def models(self) -> list[str]:
        return list(self.served)

    def close(self) -> None:
        pass

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    # --- checks -----------------------------------------------------------------------------
    def check(self) -> None:
        """Reachable, the key accepted, every model served: else EngineError, before any work starts."""
        try:
            r = httpx.get(f"{self.url}/models", headers=self._headers, timeout=httpx.Timeout(10.0, connect=5.0))
        except httpx.HTTPError as e:
            raise EngineError(f"cannot reach the engine at {self.url} ({_why(e)})") from None
        if r.status_code in (401, 403):
            raise EngineError(f"the engine at {self.url} refused the API key ({r.status_code}); set {API_KEY_ENV}")
        if r.status_code >= 400:
            raise EngineError(f"the engine at {self.url} answered GET /models with {r.status_code}")
        served = {m.get("id") for m in (r.json().get("data") or [])}
        for role, name in self.served.items():
            if name not in served:
                listed = ", ".join(sorted(str(s) for s in served)[:10]) or "none"
                raise EngineError(f"the engine at {self.url} does not serve model {name!r} (for {role}); it serves: {listed}")

    # --- generation -------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], *, on_delta: OnDelta | None = None,
                 should_cancel: Callable[[], bool] | None = None, desc: str = "generate") -> list[Generation]:
        unknown = sorted({p.model for p in prompts} - set(self.served))
        if unknown:
            raise EngineError(f"unknown model {unknown[0]!r}; this engine serves {', '.join(self.served)}")
        return asyncio.run(self._all(list(prompts), on_delta, should_cancel))

    async def _all(self, prompts: list[Prompt], on_delta: OnDelta | None,
                   should_cancel: Callable[[], bool] | None) -> list[Generation]:
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as http:
            async def one(i: int, p: Prompt) -> Generation:
                async with gate:
                    return await self._one(http, p, (lambda d: on_delta(i, d)) if on_delta else None)

            tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(prompts)]
            watcher = asyncio.create_task(self._watch(should_cancel)) if should_cancel else None
            try:
                waiting = set(tasks) | ({watcher} if watcher else set())
                while not all(t.done() for t in tasks):
                    done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for t in done:
                        t.result()  # re-raises the first failure (or the cancel) at once
                return [t.result() for t in tasks]
            finally:  # a failure or a cancel closes the requests still out
                for t in tasks + ([watcher] if watcher else []):
                    t.cancel()
                await asyncio.gather(*tasks, *([watcher] if watcher else []), return_exceptions=True)

    @staticmethod
    async def _watch(should_cancel: Callable[[], bool]) -> None:
        while not should_cancel():
            await asyncio.sleep(0.2)
        raise GenerationCancelled()

    async def _one(self, http: httpx.AsyncClient, p: Prompt, emit: Callable[[str], None] | None) -> Generation:
        s = p.sampling
        t0 = time.perf_counter()
        budget = s.max_thinking_tokens if s.max_thinking_tokens and s.max_thinking_tokens < s.max_new_tokens else None
        first = await self._request(http, p, p.messages, budget or s.max_new_tokens,
                                    [*s.stop, THINK_CLOSE] if budget else list(s.stop), emit, p.continue_final)
        text, tokens, prompt_tokens, finish = first["text"], first["tokens"], first["prompt_tokens"], first["finish"]
        forced = False
        thinking = THINK_OPEN in text or (p.continue_final and THINK_OPEN in (p.messages[-1]["content"] if p.messages else ""))
        if budget and thinking and THINK_CLOSE not in text and tokens < s.max_new_tokens:
            # Stopped at </think> (the server drops the stop string) or at the budget (force the close).
            forced = finish == "length"
            close = FORCED_CLOSE if forced else THINK_CLOSE
            if emit:
                emit(close)
            prior = list(p.messages[:-1]) if p.continue_final else list(p.messages)
            partial = (p.messages[-1]["content"] if p.continue_final else "") + text + close
            rest = await self._request(http, p, [*prior, {"role": "assistant", "content": partial}],
                                       s.max_new_tokens - tokens, list(s.stop), emit, True)
            text, tokens, finish = text + close + rest["text"], tokens + rest["tokens"], rest["finish"]
        split = split_response(text)
        think = round(tokens * len(split.thinking) / len(text)) if text and split.opened else 0
        return Generation(text=text.strip(), new_tokens=tokens, finish_reason=finish, time_s=time.perf_counter() - t0,
                          prompt_tokens=prompt_tokens, think_tokens=think, forced=forced)

    async def _request(self, http: httpx.AsyncClient, p: Prompt, messages: Sequence[dict[str, str]], max_tokens: int,
                       stop: list[str], emit: Callable[[str], None] | None, continue_final: bool) -> dict[str, Any]:
        s = p.sampling
        body: dict[str, Any] = {"model": self.served[p.model], "max_tokens": max_tokens, "temperature": s.temperature,
                                "top_p": s.top_p, "stream": emit is not None}
        if s.seed is not None:
            body["seed"] = s.seed
        if stop:
            body["stop"] = stop
        if emit is not None:
            body["stream_options"] = {"include_usage": True}
        if p.text is not None:
            path, body["prompt"] = "/completions", p.text
        else:
            path, body["messages"] = "/chat/completions", list(messages)
            if continue_final:
                body.update(continue_final_message=True, add_generation_prompt=False)
        for attempt in range(self.retries + 1):
            try:
                return await (self._stream(http, path, body, emit) if emit else self._post(http, path, body))
            except _Retryable as e:
                if attempt == self.retries:
                    raise EngineError(f"the engine at {self.url} failed {attempt + 1} times: {e.reason}") from None
                await asyncio.sleep(e.wait_s if e.wait_s is not None else self.backoff_s * 2 ** attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    def _fail(self, status: int, text: str, headers: httpx.Headers) -> None:
        detail = _error_message(text)
        if status in RETRY_STATUS:
            wait = headers.get("retry-after")
            raise _Retryable(f"{status} {detail}", float(wait) if wait and wait.replace(".", "", 1).isdigit() else None)
        if status in (401, 403):
            raise EngineError(f"the engine at {self.url} refused the API key ({status}); set {API_KEY_ENV}")
        raise EngineError(f"the engine at {self.url} refused the request ({status}): {detail}")

    async def _post(self, http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            r = await http.post(self.url + path, json=body)
        except httpx.TransportError as e:
            raise _Retryable(_why(e)) from None
        if r.status_code >= 400:
            self._fail(r.status_code, r.text, r.headers)
        data = r.json()
        choice = data["choices"][0]
        text = choice.get("text") if "text" in choice else (choice.get("message") or {}).get("content") or ""
        usage = data.get("usage") or {}
        return {"text": text or "", "tokens": int(usage.get("completion_tokens") or 0),
                "prompt_tokens": int(usage.get("prompt_tokens") or 0), "finish": _finish(choice)}

    async def _stream(self, http: httpx.AsyncClient, path: str, body: dict[str, Any],
                      emit: Callable[[str], None]) -> dict[str, Any]:
        text, finish, usage = "", "length", {}
        try:
            async with aconnect_sse(http, "POST", self.url + path, json=body) as source:
                if source.response.status_code >= 400:
                    await source.response.aread()
                    self._fail(source.response.status_code, source.response.text, source.response.headers)
                async for event in source.aiter_sse():
                    if event.data == "[DONE]":
                        break
                    chunk = json.loads(event.data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
                        if delta:
                            text += delta
                            emit(delta)
                        if choice.get("finish_reason"):
                            finish = _finish(choice)
        except httpx.TransportError as e:
            if text:  # what was streamed cannot be taken back: fail rather than repeat it
                raise EngineError(f"the engine at {self.url} dropped the stream ({_why(e)})") from None
            raise _Retryable(_why(e)) from None
        return {"text": text, "tokens": int(usage.get("completion_tokens") or 0),
                "prompt_tokens": int(usage.get("prompt_tokens") or 0), "finish": finish}


def _finish(choice: dict[str, Any]) -> str:
    return "length" if choice.get("finish_reason") == "length" else "stop"


def _why(e: Exception) -> str:
    if isinstance(e, httpx.ConnectError):
        return "connection refused"
    if isinstance(e, httpx.TimeoutException):
        return f"timed out ({type(e).__name__})"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _error_message(text: str) -> str:
    try:
        err = json.loads(text).get("error")
        return str(err.get("message") if isinstance(err, dict) else err)[:300]
    except (ValueError, AttributeError):
        return text.strip()[:300] or "no detail"
