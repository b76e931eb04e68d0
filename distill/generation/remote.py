"""The ``openai`` engine: any OpenAI-compatible server generates (vLLM, SGLang, DeepSeek's API, ``transformers
serve``, a llama.cpp server, or this service's own ``/v1``), through the official ``openai`` SDK.

The SDK retries 408/409/429/5xx and dropped connections with back-off, honouring ``Retry-After``, and times
requests out; this module adds how many go out at once, cancelling, reasoning servers and budget forcing:

- A thought the server returns apart (``reasoning_content``, as DeepSeek's API and vLLM's and SGLang's reasoning
  parsers do, or ``reasoning`` in newer vLLM) is joined back as ``<think>…</think>`` before the answer, so grading,
  the diagnostics and trace generation see one text, whichever way the server splits it.
- Budget forcing needs the server to continue a partial assistant message (vLLM's and this service's
  ``continue_final_message``): the thought is generated up to the budget (stopping at ``</think>``), then the
  same conversation is continued after ``</think>``.

An unreachable URL, a refused key or a model the server does not serve is one line naming it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from distill.errors import first_line
from distill.generation.engine import (
    EngineError,
    Generation,
    GenerationCancelled,
    check_served,
    OnDelta,
    OnResult,
    Prompt,
    failed,
)
from distill.reasoning import FORCED_CLOSE, THINK_CLOSE, THINK_OPEN, Split, with_thought

API_KEY_ENV = "DISTILL_ENGINE_API_KEY"  # read here only: never stored in a run's config, never logged
NO_KEY = "EMPTY"  # the SDK insists on a key; servers without auth ignore it
# A server that refuses this many connections in a row (after the SDK's retries) is down: stop asking it.
DOWN_AFTER = 3


@dataclass
class _Reply:
    text: str
    tokens: int
    prompt_tokens: int
    finish: str  # "stop" | "length"
    think_tokens: int | None = None  # as the server counted them (usage.completion_tokens_details)


class OpenAIEngine:
    """``models`` maps the names prompts use ("base", "sft", "teacher") to the server's model names. ``role`` names
    the server in messages ("engine", "teacher"); ``key_env`` is where its API key is read."""

    name = "openai"

    def __init__(self, url: str, models: dict[str, str], *, key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 600.0, retries: int = 4, role: str = "engine", key_env: str = API_KEY_ENV):
        self.url = url.rstrip("/")
        self.served = dict(models)
        self.role, self.key_env = role, key_env
        self.key = key if key is not None else (os.environ.get(key_env) or None)
        self.concurrency = max(1, concurrency)
        self.timeout = openai.Timeout(timeout_s, connect=5.0)
        self.retries = max(0, retries)

    def models(self) -> list[str]:
        return list(self.served)

    def close(self) -> None:
        pass

    @property
    def _where(self) -> str:
        return f"the {self.role} at {self.url}"

    def _options(self) -> dict[str, Any]:
        return {"base_url": self.url, "api_key": self.key or NO_KEY, "max_retries": self.retries,
                "timeout": self.timeout}

    # --- checks -----------------------------------------------------------------------------
    def check(self) -> None:
        """Reachable, the key accepted, every model served: else EngineError, before any work starts."""
        client = openai.OpenAI(**{**self._options(), "max_retries": 1, "timeout": openai.Timeout(10.0, connect=5.0)})
        try:
            served = {m.id for m in client.models.list()}
        except openai.APIConnectionError as e:
            raise EngineError(f"cannot reach {self._where} for {self._names} ({_why(e)})") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise self._refused_key(e.status_code) from None
        except openai.APIStatusError as e:
            raise EngineError(f"{self._where} answered GET /models with {e.status_code} (for {self._names})") from None
        finally:
            client.close()
        for role, name in self.served.items():
            if name not in served:
                listed = ", ".join(sorted(str(s) for s in served)[:10]) or "none"
                raise EngineError(f"{self._where} does not serve model {name!r} (for {role}); it serves: {listed}")

    @property
    def _names(self) -> str:
        return "model " + ", ".join(repr(n) for n in dict.fromkeys(self.served.values()))

    def _refused_key(self, status: int) -> EngineError:
        return EngineError(f"{self._where} refused the API key ({status}); set {self.key_env}")

    # --- generation -------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], *, on_delta: OnDelta | None = None,
                 should_cancel: Callable[[], bool] | None = None, desc: str = "generate",
                 on_result: OnResult | None = None) -> list[Generation]:
        check_served(prompts, self.served)
        return asyncio.run(self._all(list(prompts), on_delta, should_cancel, on_result))

    async def _all(self, prompts: list[Prompt], on_delta: OnDelta | None, should_cancel: Callable[[], bool] | None,
                   on_result: OnResult | None) -> list[Generation]:
        gate = asyncio.Semaphore(self.concurrency)
        refused_in_a_row = 0
        async with openai.AsyncOpenAI(**self._options()) as client:
            async def one(i: int, p: Prompt) -> Generation:
                nonlocal refused_in_a_row
                async with gate:
                    if should_cancel is not None and should_cancel():  # asked while this one waited its turn
                        raise GenerationCancelled()
                    t0 = time.perf_counter()
                    try:
                        gen = await self._one(client, p, (lambda d: on_delta(i, d)) if on_delta else None)
                        refused_in_a_row = 0
                    except _Unreachable as e:
                        refused_in_a_row += 1
                        if on_result is None or refused_in_a_row >= DOWN_AFTER:
                            raise EngineError(f"{self._where} stopped answering ({e})") from None
                        gen = failed(f"{self._where} failed after {self.retries + 1} attempts: {e}",
                                     time.perf_counter() - t0)
                    except EngineError as e:
                        if on_result is None or not e.per_request:
                            raise
                        gen = failed(str(e), time.perf_counter() - t0)
                if on_result is not None:
                    on_result(i, gen)
                return gen

            tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(prompts)]
            watcher = asyncio.create_task(_watch(should_cancel)) if should_cancel else None
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

    async def _one(self, client: openai.AsyncOpenAI, p: Prompt, emit: Callable[[str], None] | None) -> Generation:
        s = p.sampling
        t0 = time.perf_counter()
        budget = s.max_thinking_tokens if s.max_thinking_tokens and s.max_thinking_tokens < s.max_new_tokens else None
        partial = p.messages[-1]["content"] if p.continue_final and p.messages else ""
        first = await self._request(client, p, p.messages, budget or s.max_new_tokens,
                                    [*s.stop, THINK_CLOSE] if budget else list(s.stop), emit, p.continue_final)
        text, tokens, finish, forced = first.text, first.tokens, first.finish, False
        if budget and Split.of(partial + text).in_thought and tokens < s.max_new_tokens:
            # Stopped at </think> (the server drops the stop string) or at the budget (force the close).
            forced = finish == "length"
            close = FORCED_CLOSE if forced else THINK_CLOSE
            if emit:
                emit(close)
            prior = list(p.messages[:-1]) if p.continue_final else list(p.messages)
            rest = await self._request(client, p, [*prior, {"role": "assistant", "content": partial + text + close}],
                                       s.max_new_tokens - tokens, list(s.stop), emit, True)
            text, tokens, finish = text + close + rest.text, tokens + rest.tokens, rest.finish
        if first.think_tokens is not None and not forced:
            think = first.think_tokens
        else:
            split = Split.of(partial + text)
            think = round(tokens * len(split.thought) / len(text)) if text and split.opened else 0
        return Generation(text=text.strip(), new_tokens=tokens, finish_reason=finish,
                          time_s=time.perf_counter() - t0, prompt_tokens=first.prompt_tokens, think_tokens=think,
                          forced=forced)

    async def _request(self, client: openai.AsyncOpenAI, p: Prompt, messages: Sequence[dict[str, str]],
                       max_tokens: int, stop: list[str], emit: Callable[[str], None] | None,
                       continue_final: bool) -> _Reply:
        s = p.sampling
        args: dict[str, Any] = {"model": self.served[p.model], "max_tokens": max_tokens, "temperature": s.temperature,
                                "top_p": s.top_p}
        if s.seed is not None:
            args["seed"] = s.seed
        if stop:
            args["stop"] = stop
        if emit is not None:
            args.update(stream=True, stream_options={"include_usage": True})
        # A continued turn that already closed its thought: whatever a reasoning parser calls thought is answer.
        answered = continue_final and bool(messages) and Split.of(messages[-1]["content"]).closed
        if p.text is not None:
            path, made_as, chunk_as, args["prompt"] = "/completions", Completion, Completion, p.text
        else:
            path, made_as, chunk_as = "/chat/completions", ChatCompletion, ChatCompletionChunk
            args["messages"] = list(messages)
            if continue_final:
                args.update(continue_final_message=True, add_generation_prompt=False)
        try:
            # The SDK's own request (its retries, Retry-After, time-outs, errors and typed answers) with the body as
            # it is: .create() would re-validate these plain JSON arguments, a quarter of its CPU per request.
            made = await client.post(path, body=args, cast_to=made_as, stream=emit is not None,
                                     stream_cls=openai.AsyncStream[chunk_as])
            return await (_read_stream(made, emit, answered) if emit else _read(made, answered))
        except openai.APIConnectionError as e:  # the SDK's retries are spent (APITimeoutError included)
            raise _Unreachable(_why(e)) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise self._refused_key(e.status_code) from None
        except openai.NotFoundError as e:
            raise EngineError(f"{self._where} does not serve model {args['model']!r} ({_detail(e)})") from None
        except openai.APIStatusError as e:
            retried = e.status_code in (408, 409, 429) or e.status_code >= 500
            how = f"failed after {self.retries + 1} attempts" if retried else "refused the request"
            raise EngineError(f"{self._where} {how} ({e.status_code}): {_detail(e)}", per_request=True) from None


class _Unreachable(Exception):
    """No answer at all: connection refused, dropped or timed out, after the SDK's retries."""


async def _watch(should_cancel: Callable[[], bool]) -> None:
    while not should_cancel():
        await asyncio.sleep(0.2)
    raise GenerationCancelled()


def _thought_of(part: Any) -> str | None:
    """The thought a reasoning server returns beside the answer: ``reasoning_content`` (DeepSeek, vLLM, SGLang) or
    ``reasoning`` (newer vLLM)."""
    extra = getattr(part, "model_extra", None) or {}
    for key in ("reasoning_content", "reasoning"):
        value = getattr(part, key, None) if key in type(part).model_fields else extra.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _joined(thought: str | None, answer: str, answered: bool) -> str:
    if thought is None:
        return answer
    if answered:
        return thought + answer
    # The thought ended when an answer follows it; a reply cut off (or stopped at </think>) is all thought.
    return with_thought(thought, answer, closed=bool(answer.strip()))


def _usage(made: Any) -> tuple[int, int, int | None]:
    usage = getattr(made, "usage", None)
    if usage is None:
        return 0, 0, None
    details = getattr(usage, "completion_tokens_details", None)
    think = getattr(details, "reasoning_tokens", None) if details is not None else None
    return int(usage.completion_tokens or 0), int(usage.prompt_tokens or 0), int(think) if think else None


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


async def _read(made: Any, answered: bool) -> _Reply:
    choice = made.choices[0]
    if hasattr(choice, "message"):
        message = choice.message
        text = _joined(_thought_of(message), message.content or "", answered)
    else:
        text = choice.text or ""
    tokens, prompt_tokens, think = _usage(made)
    return _Reply(text, tokens, prompt_tokens, _finish(choice.finish_reason), think)


async def _read_stream(stream: Any, emit: Callable[[str], None], answered: bool) -> _Reply:
    """The streamed reply; its text is exactly what was emitted (the tags around a separate thought included)."""
    thought, answer, finish, made = None, "", "length", None
    sent: list[str] = []

    def say(piece: str) -> None:
        sent.append(piece)
        emit(piece)

    try:
        async for chunk in stream:
            made = chunk if getattr(chunk, "usage", None) else made
            for choice in chunk.choices or []:
                delta = getattr(choice, "delta", None)
                piece = _thought_of(delta) if delta is not None else None
                if piece:
                    if thought is None and not answered:
                        say(THINK_OPEN + "\n")
                    thought = (thought or "") + piece
                    say(piece)
                text = (delta.content if delta is not None else choice.text) or ""
                if text:
                    if thought is not None and not answer and not answered:
                        say("\n" + THINK_CLOSE + "\n\n")
                    answer += text
                    say(text)
                if choice.finish_reason:
                    finish = _finish(choice.finish_reason)
    except openai.APIError as e:
        raise EngineError(f"the stream broke off ({_detail(e)})", per_request=True) from None
    except Exception as e:  # noqa: BLE001 - the transport's own errors: what was streamed cannot be taken back
        raise EngineError(f"the stream was dropped ({_why(e)})", per_request=True) from None
    tokens, prompt_tokens, think = _usage(made)
    return _Reply("".join(sent), tokens, prompt_tokens, finish, think)


def _why(e: Exception) -> str:
    if isinstance(e, openai.APITimeoutError):
        return "timed out"
    cause = e.__cause__ or e.__context__
    text = first_line(cause or e)
    if "refused" in text.lower() or "connecterror" in type(cause).__name__.lower():
        return "connection refused"
    return text[:200]


def _detail(e: openai.APIError) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)[:300]
    return str(getattr(e, "message", "") or e)[:300] or "no detail"
