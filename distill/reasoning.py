"""Where a response's thinking ends and its answer begins: the one place that splits on ``<think>``.

A reasoning response is ``<think>thinking</think>answer``. A response that opened ``<think>`` and
never closed it (cut off by the token limit, or looping) has no answer. A response without tags
(a base model) is all answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# What budget forcing appends when a thought reaches its token budget.
FORCED_CLOSE = "\n</think>\n\n"
_TAG_RE = re.compile(r"</?think>")


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


def with_thought(thought: str | None, answer: str, closed: bool = True) -> str:
    """Thought and answer as one response, the trained format: ``<think>\n{thought}\n</think>\n\n{answer}``.
    No thought: the answer alone. An unclosed thought (cut off) has no answer and no ``</think>``."""
    if thought is None:
        return answer.strip()
    head = f"{THINK_OPEN}\n{thought.strip()}"
    return f"{head}\n{THINK_CLOSE}\n\n{answer.strip()}" if closed else head


def parts(text: str) -> dict[str, Any]:
    """A response as the API shows it: ``thinking`` (None without a thought), ``answer_part``, ``thinking_closed``."""
    split = split_response(text)
    return {"thinking": split.thinking if split.opened or split.closed else None, "answer_part": split.answer,
            "thinking_closed": split.closed or not split.opened}


class StreamSplitter:
    """The deltas of a streamed response, each labelled ``thinking`` or ``answer`` (the tags dropped), so that a
    client shows the thought and the answer apart without parsing the text."""

    def __init__(self, thinking: bool = False):
        self.thinking, self.pending = thinking, ""

    def feed(self, delta: str) -> list[tuple[str, str]]:
        self.pending += delta
        out: list[tuple[str, str]] = []
        while (at := self.pending.find(tag := THINK_CLOSE if self.thinking else THINK_OPEN)) != -1:
            if at:
                out.append(("thinking" if self.thinking else "answer", self.pending[:at]))
            self.pending, self.thinking = self.pending[at + len(tag):], not self.thinking
        tag = THINK_CLOSE if self.thinking else THINK_OPEN
        keep = next((k for k in range(min(len(tag) - 1, len(self.pending)), 0, -1) if tag.startswith(self.pending[-k:])), 0)
        if len(self.pending) > keep:  # a tag may be arriving: hold back what could be its start
            out.append(("thinking" if self.thinking else "answer", self.pending[:len(self.pending) - keep]))
            self.pending = self.pending[len(self.pending) - keep:]
        return out

    def flush(self) -> list[tuple[str, str]]:
        out, self.pending = ([("thinking" if self.thinking else "answer", self.pending)] if self.pending else []), ""
        return out


def answer_text(text: str) -> str:
    """The part of a response a grader reads: after the last ``</think>`` (see :func:`split_response`)."""
    return split_response(text).answer


def is_thinking(text: str) -> bool:
    """True while a generation is inside an open thought (it opened ``<think>`` and has not closed it)."""
    return THINK_OPEN in text and THINK_CLOSE not in text


def has_think_tags(response: str) -> bool:
    """A ``<think>`` followed, somewhere later, by a ``</think>``."""
    start = response.find(THINK_OPEN)
    return start != -1 and response.find(THINK_CLOSE, start + len(THINK_OPEN)) != -1


def think_closed(response: str) -> bool:
    """Every ``<think>`` has a later ``</think>``; vacuously true with no ``<think>``.

    Stray ``</think>`` tags (with no open block) are ignored rather than penalized.
    """
    depth = 0
    for tag in _TAG_RE.findall(response):
        if tag == THINK_OPEN:
            depth += 1
        elif depth:
            depth -= 1
    return depth == 0


def reasoning_part(response: str) -> str:
    """The reasoning: inside the first think block, else the whole response.

    An unclosed ``<think>`` (generation cut off) runs to the end of the text; a lone
    ``</think>`` (the prompt already opened the block) closes everything before it.
    """
    start = response.find(THINK_OPEN)
    body_start = start + len(THINK_OPEN) if start != -1 else 0
    end = response.find(THINK_CLOSE, body_start)
    if start == -1 and end == -1:
        return response
    return response[body_start : end if end != -1 else len(response)]


def answer_after_think(response: str) -> str:
    """The text after the last ``</think>``, stripped ("" when there is none)."""
    return split_response(response).answer if THINK_CLOSE in response else ""
