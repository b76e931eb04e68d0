"""How a model reasons, beside whether it is right: lengths, truncation, closed thoughts, loops.

The failure these catch: a fine-tune that learnt to open ``<think>`` but not to stop, repeating
"32 x $2 = $64 … 64 x $2 = $128 …" until the token limit, so it never answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from distill.generation.engine import Generation
from distill.reasoning import Split

_DIGITS = re.compile(r"\d+")
# A tail counts as a loop when one period repeats at least LOOP_REPEATS times and the repeated
# stretch spans at least LOOP_MIN_CHARS (so "!!!" or a short echoed phrase does not count).
LOOP_REPEATS = 3
LOOP_MIN_CHARS = 60
_LOOP_MAX_PERIOD = 400
_LOOP_TAIL = 3000


def is_looping(text: str) -> bool:
    """True when the text ends in a repeated run: the same passage (digits ignored, so a loop whose
    numbers grow still counts) at least 3 times in a row, covering 60 characters or more. The last
    copy may be cut short, as when the token limit ends a loop mid-sentence."""
    tail = _DIGITS.sub("0", text[-_LOOP_TAIL:].rstrip())
    if len(tail) < LOOP_MIN_CHARS:
        return False
    codes = np.frombuffer(tail.encode("utf-32-le"), dtype=np.uint32)
    n = len(codes)
    for period in range(1, min(_LOOP_MAX_PERIOD, n // LOOP_REPEATS) + 1):
        same = codes[period:] == codes[:-period]  # same[i]: char i+period repeats char i
        mismatch = np.flatnonzero(~same)
        run = len(same) - (mismatch[-1] + 1) if len(mismatch) else len(same)
        # run chars at the end equal the char one period earlier: run + period chars are periodic.
        if run >= (LOOP_REPEATS - 1) * period and run + period >= LOOP_MIN_CHARS:
            return True
    return False


def sample_diagnostics(gen: Generation, split: Split) -> dict[str, Any]:
    """Per-sample fields kept with each answer; ``split`` is the answer's one :class:`Split` (``think_closed``: a
    thought that ``</think>`` ended, False without a thought)."""
    return {
        "tokens": gen.new_tokens,
        "time_s": round(gen.time_s, 4),
        "think_tokens": gen.think_tokens,
        "finish_reason": gen.finish_reason,
        "truncated": gen.finish_reason == "length",
        "think_closed": split.closed,
        "looping": is_looping(gen.text),
        "forced": gen.forced,
    }


def _pct(flags: Sequence[bool]) -> float | None:
    return round(100.0 * sum(flags) / len(flags), 2) if flags else None


def summarize_diagnostics(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per model and suite, over every sample of every problem."""
    tokens = [s["tokens"] for s in samples]
    think = [s["think_tokens"] for s in samples]
    return {
        "tokens_p50": float(np.percentile(tokens, 50)) if tokens else None,
        "tokens_p95": float(np.percentile(tokens, 95)) if tokens else None,
        "truncated_pct": _pct([s["truncated"] for s in samples]),
        "think_closed_pct": _pct([s["think_closed"] for s in samples]),
        "looping_pct": _pct([s["looping"] for s in samples]),
        "forced_pct": _pct([s["forced"] for s in samples]),
        "think_tokens_mean": round(float(np.mean(think)), 1) if think else None,
        "answer_tokens_mean": round(float(np.mean(tokens) - np.mean(think)), 1) if tokens else None,
    }
