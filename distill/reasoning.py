"""Where a response's thinking ends and its answer begins: the one place that splits on ``<think>``.

A reasoning response is ``<think>thinking</think>answer``. A response that opened ``<think>`` and
never closed it (cut off by the token limit, or looping) has no answer. A response without tags
(a base model) is all answer.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# What budget forcing appends when a thought reaches its token budget.
FORCED_CLOSE = "\n</think>\n\n"


@dataclass(frozen=True)
class Split:
    thinking: str  # inside the think block, stripped ("" without one)
    answer: str  # after the last </think>, or the whole text without tags; "" for an unclosed thought
    opened: bool  # a <think> tag is present
    closed: bool  # a </think> tag is present (the thought ended)


def split_response(text: str) -> Split:
    """Thinking and answer of ``text``. The last ``</think>`` ends the thinking, so a model that
    mentions the tag while thinking still gets its real answer; a lone ``</think>`` (the prompt
    opened the block) closes everything before it."""
    opened = THINK_OPEN in text
    if THINK_CLOSE in text:
        head, _, answer = text.rpartition(THINK_CLOSE)
        start = head.find(THINK_OPEN)
        thinking = head[start + len(THINK_OPEN):] if start != -1 else head
        return Split(thinking.strip(), answer.strip(), opened, True)
    if opened:
        return Split(text.split(THINK_OPEN, 1)[1].strip(), "", True, False)
    return Split("", text.strip(), False, False)


def answer_text(text: str) -> str:
    """The part of a response a grader reads: after the last ``</think>`` (see :func:`split_response`)."""
    return split_response(text).answer


def is_thinking(text: str) -> bool:
    """True while a generation is inside an open thought (it opened ``<think>`` and has not closed it)."""
    return THINK_OPEN in text and THINK_CLOSE not in text
