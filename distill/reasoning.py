"""Where a response's thought ends and its answer begins: the one place that splits on ``<think>``.

The rule, once (whole responses: :class:`Split`; streamed deltas: :class:`StreamSplitter`, which agrees with it):

- A thought starts at the first ``<think>`` (or at the start of the text when the prompt already opened it, e.g. a
  chat template that ends its generation prompt with ``<think>``, or a continued assistant turn) and ends at the
  **first** ``</think>`` after that, as vLLM's and DeepSeek's reasoning parsers split it, so that a streamed answer
  and the whole one split alike. Everything after that ``</think>`` is answer, tags included.
- A ``</think>`` with no ``<think>`` before it means the prompt opened the thought: everything before it is thought.
  (A stream can only know that when told: ``StreamSplitter(in_thought=True)``.)
- Text before ``<think>`` was said outside the thought: it is answer.
- A thought with no ``</think>`` (cut off by the token limit, or looping) is *open*: the response has no answer
  after it.
- A response with no tags (a base model) has no thought: all answer, ``opened`` and ``closed`` both false.

``closed`` is the one meaning of "think closed" everywhere (diagnostics' ``think_closed``, the seed metrics'
``think_closed``, the API's ``thinking_closed``): the response has a thought and ``</think>`` ended it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# What budget forcing appends when a thought reaches its token budget.
FORCED_CLOSE = "\n</think>\n\n"
THOUGHT, ANSWER = "thinking", "answer"  # the labels of streamed deltas


@dataclass(frozen=True)
class Split:
    thought: str  # inside the thought, stripped ("" without one)
    answer: str  # outside the thought, stripped; "" for an open thought with nothing before it
    opened: bool  # the response has a thought
    closed: bool  # ... and ``</think>`` ended it (False without a thought)

    @classmethod
    def of(cls, text: str, in_thought: bool = False) -> Split:
        """``text`` split by the module's rule; ``in_thought``: the prompt opened the thought."""
        before, thought, after, opened, closed = _cut(text, in_thought)
        return cls(thought.strip(), (before + after).strip(), opened, closed)

    @property
    def in_thought(self) -> bool:
        """The text ends inside an open thought (generation would continue the thought)."""
        return self.opened and not self.closed

    def api_fields(self) -> dict[str, Any]:
        """As the API shows a response: ``thinking`` (None without a thought), ``answer_part``, ``thinking_closed``
        (the API's name for :attr:`closed`, kept because clients read it)."""
        return {"thinking": self.thought if self.opened else None, "answer_part": self.answer,
                "thinking_closed": self.closed}


def _cut(text: str, in_thought: bool) -> tuple[str, str, str, bool, bool]:
    """(before the thought, the thought, after it, opened, closed), tags dropped."""
    if not in_thought:
        start, close = text.find(THINK_OPEN), text.find(THINK_CLOSE)
        if close != -1 and (start == -1 or close < start):  # a lone </think>: the prompt opened the thought
            in_thought = True
        elif start == -1:
            return text, "", "", False, False
        else:
            _, thought, after, _, closed = _cut(text[start + len(THINK_OPEN):], True)
            return text[:start], thought, after, True, closed
    head, tag, after = text.partition(THINK_CLOSE)
    return "", head, after, True, bool(tag)


def with_thought(thought: str | None, answer: str, closed: bool = True) -> str:
    """Thought and answer as one response, the trained format: ``<think>\n{thought}\n</think>\n\n{answer}``.
    No thought: the answer alone. An open thought (cut off) has no answer and no ``</think>``."""
    if thought is None:
        return answer.strip()
    head = f"{THINK_OPEN}\n{thought.strip()}"
    return f"{head}\n{THINK_CLOSE}\n\n{answer.strip()}" if closed else head


class StreamSplitter:
    """A streamed response split as it arrives, by :class:`Split`'s rule: ``feed`` each text delta and get back
    (``"thinking"`` | ``"answer"``, text) pieces with the tags dropped (the OpenAI-compatible API's
    ``reasoning_content`` / ``content``); :attr:`in_thought` says whether the row is inside a thought now (what budget
    forcing counts). A tag split across deltas is held back until it is whole. Joined and stripped, the pieces
    equal ``Split.of(text, in_thought)``'s thought and answer, except for a lone ``</think>`` the splitter was not
    told about (``in_thought=True``): it cannot relabel text it already sent as answer."""

    def __init__(self, in_thought: bool = False):
        self.in_thought, self.opened, self.closed = in_thought, in_thought, False
        self.pending = ""

    @property
    def _tag(self) -> str | None:
        """The tag that would change state next: none once the thought has closed."""
        return None if self.closed else THINK_CLOSE if self.in_thought else THINK_OPEN

    def _label(self) -> str:
        return THOUGHT if self.in_thought else ANSWER

    def feed(self, delta: str) -> list[tuple[str, str]]:
        self.pending += delta
        out: list[tuple[str, str]] = []
        while (tag := self._tag) is not None and (at := self.pending.find(tag)) != -1:
            if at:
                out.append((self._label(), self.pending[:at]))
            self.pending = self.pending[at + len(tag):]
            self.opened, self.closed, self.in_thought = True, self.in_thought, not self.in_thought
        keep = _partial_tag(self.pending, self._tag)  # a tag may be arriving: hold back what could be its start
        if len(self.pending) > keep:
            out.append((self._label(), self.pending[:len(self.pending) - keep]))
            self.pending = self.pending[len(self.pending) - keep:]
        return out

    def flush(self) -> list[tuple[str, str]]:
        """What was held back, at the end of the stream."""
        out, self.pending = ([(self._label(), self.pending)] if self.pending else []), ""
        return out


def _partial_tag(text: str, tag: str | None) -> int:
    """How many characters at the end of ``text`` could start ``tag``."""
    if tag is None:
        return 0
    return next((k for k in range(min(len(tag) - 1, len(text)), 0, -1) if tag.startswith(text[-k:])), 0)
