"""What every generation engine takes and returns.

Evaluation, benchmarks, the Playground and the service's ``/v1`` API all generate through an
:class:`Engine`: ``hf`` (in-process transformers, :mod:`distill.generation.hf`) or ``openai`` (any
OpenAI-compatible server, :mod:`distill.generation.remote`). A prompt names the model that answers
it by the engine's own name for it: ``"base"`` and ``"sft"`` for a run's pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from distill.errors import UserError

BASE = "base"
SFT = "sft"


class GenerationCancelled(Exception):
    """Generation stopped because the caller asked it to."""


class EngineError(UserError, RuntimeError):
    """The engine cannot serve the request (unreachable, refused, unknown model): one line. ``per_request``: only
    this request failed (refused as bad, or still failing after the retries); others may succeed."""

    def __init__(self, message: str, *, per_request: bool = False):
        super().__init__(message)
        self.per_request = per_request


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None  # with a seed, a row's samples do not depend on the rows batched with it
    max_thinking_tokens: int | None = None  # budget forcing: close the thought at this many tokens
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """One generation: a chat (``messages``) or, for raw completions, ``text`` already rendered."""

    model: str
    sampling: Sampling = field(default_factory=Sampling)
    messages: Sequence[dict[str, str]] = ()
    text: str | None = None
    continue_final: bool = False  # the last message is a partial assistant turn to continue


@dataclass
class Generation:
    text: str
    new_tokens: int
    finish_reason: str  # "stop" (a stop token or string) or "length" (the token limit)
    time_s: float  # this row's share of its batch's wall time, or its request's time
    prompt_tokens: int = 0
    think_tokens: int = 0  # tokens generated inside the thought
    forced: bool = False  # budget forcing closed the thought
    error: str | None = None  # the request failed (finish_reason "error"); only with ``on_result``

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "new_tokens": self.new_tokens, "finish_reason": self.finish_reason,
                "time_s": round(self.time_s, 4), "prompt_tokens": self.prompt_tokens,
                "think_tokens": self.think_tokens, "forced": self.forced}


OnDelta = Callable[[int, str], None]  # (prompt index, new text)
OnResult = Callable[[int, Generation], None]  # (prompt index, its finished generation)


def failed(error: str, time_s: float = 0.0) -> Generation:
    """The Generation of a request that failed for good."""
    return Generation(text="", new_tokens=0, finish_reason="error", time_s=time_s, error=error)


def check_served(prompts: Sequence[Prompt], served: Iterable[str]) -> None:
    """Refuse a call that names a model the engine does not serve, before anything is generated."""
    names = list(served)
    unknown = sorted({p.model for p in prompts} - set(names))
    if unknown:
        raise EngineError(f"unknown model {unknown[0]!r}; this engine serves {', '.join(names) or 'none'}")


class Engine(Protocol):
    name: str

    def generate(self, prompts: Sequence[Prompt], *, on_delta: OnDelta | None = None,
                 should_cancel: Callable[[], bool] | None = None, desc: str = "generate",
                 on_result: OnResult | None = None) -> list[Generation]:
        """One Generation per prompt, in order. ``on_delta`` receives text as it is generated, ``on_result`` each
        generation as soon as it is finished; with ``on_result``, a request that fails on its own (``EngineError``
        with ``per_request``) is a Generation with ``error`` set instead of failing the call."""
        ...

    def models(self) -> list[str]:
        ...

    def close(self) -> None:
        ...
