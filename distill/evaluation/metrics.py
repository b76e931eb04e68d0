"""Per-response metrics: think-tag structure, reasoning steps and length, a 0–1 quality
score, the extracted answer and its correctness, and generation speed.

Every definition and the quality-score formula are documented in ``docs/metrics.md``;
keep the two in step.
"""

from __future__ import annotations

import re
from typing import Any

from distill.evaluation.grading import Grade
from distill.reasoning import Split

_CUE_WORDS_RE = re.compile(
    r"\b(?:first|then|so|because|therefore|thus|hence|steps?)\b", re.IGNORECASE
)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
# A step marker opening a sentence: "Step 2:", "2.", "2)", "-", "*", "•".
_STEP_MARKER_RE = re.compile(r"^(?:step\s*\d+\s*[:.)]|\d+[.)](?:\s|$)|[-*•](?:\s|$))", re.IGNORECASE)
_EQUATION_RE = re.compile(r"[=≈]")
_HAS_WORD_RE = re.compile(r"\w")

# Length factor knots (words): rises to 1 by _LEN_FULL, holds until _LEN_RAMBLE, then
# decays to _LEN_FLOOR at _LEN_FLOOR_AT, so a rambling trace never scores as a tidy one.
_LEN_FULL = 30
_LEN_RAMBLE = 400
_LEN_FLOOR_AT = 1500
_LEN_FLOOR = 0.5
_STEPS_FULL = 5


def count_steps(reasoning: str) -> int:
    """Reasoning steps: one per non-empty line, or more for a line packing several.

    A line counts when it holds a letter or digit. Within a line, each sentence that
    contains an equation (``=`` or ``≈``) or opens with a step marker (``Step 2:``,
    ``2.``, ``2)``, ``-``, ``*``, ``•``) is a step; a line counts
    ``max(1, equation sentences, marked sentences)``. So a line-per-step trace scores
    its line count, and a one-paragraph "3+4=7. Then 7*2=14." scores 2, not 1.
    """
    steps = 0
    for line in reasoning.splitlines():
        if not _HAS_WORD_RE.search(line):
            continue
        sentences = [s for s in _SENTENCE_SPLIT_RE.split(line.strip()) if s]
        equations = sum(1 for s in sentences if _EQUATION_RE.search(s))
        markers = sum(1 for s in sentences if _STEP_MARKER_RE.match(s))
        steps += max(1, equations, markers)
    return steps


def length_factor(words: int) -> float:
    """0 → 1 linearly over 0–30 words, 1 up to 400, then down to 0.5 at 1,500 and after."""
    if words <= 0:
        return 0.0
    if words < _LEN_FULL:
        return words / _LEN_FULL
    if words <= _LEN_RAMBLE:
        return 1.0
    if words >= _LEN_FLOOR_AT:
        return _LEN_FLOOR
    return 1.0 - (1.0 - _LEN_FLOOR) * (words - _LEN_RAMBLE) / (_LEN_FLOOR_AT - _LEN_RAMBLE)


def quality_score(
    *, tags_closed: bool, has_answer_after_think: bool, has_reasoning: bool, num_steps: int, words: int
) -> float:
    """Structure (0.4) + steps (0.3) + length (0.3), rounded to 4 decimals."""
    structure = 0.2 * tags_closed + 0.1 * has_answer_after_think + 0.1 * has_reasoning
    steps = 0.3 * min(num_steps, _STEPS_FULL) / _STEPS_FULL
    length = 0.3 * length_factor(words)
    return round(structure + steps + length, 4)


def shape_metrics(split: Split) -> dict[str, Any]:
    """The seed's shape metrics of one response, from its one :class:`Split` (kept with every benchmark answer).

    A response without a thought is all reasoning for the step and length counts (a base model reasons in its
    answer). ``has_think_tags`` and ``think_closed`` are both :attr:`Split.closed` (a thought that ``</think>``
    ended), the meaning every other place uses."""
    reasoning = split.thought if split.opened else split.answer
    num_steps = count_steps(reasoning)
    words = len(reasoning.split())
    has_reasoning = split.closed or num_steps >= 2 or bool(_CUE_WORDS_RE.search(f"{split.thought}\n{split.answer}"))
    return {
        "has_think_tags": split.closed,
        "think_closed": split.closed,
        "has_reasoning": has_reasoning,
        "num_steps": num_steps,
        "reasoning_length": words,
        "quality_score": quality_score(tags_closed=split.closed,
                                       has_answer_after_think=split.closed and split.answer != "",
                                       has_reasoning=has_reasoning, num_steps=num_steps, words=words),
    }


def response_metrics(split: Split, generation_time_s: float, new_tokens: int, grade: Grade | None) -> dict[str, Any]:
    """All per-response metrics in the seed's shape: :func:`shape_metrics`, then ``answer``/``correct`` from its grade
    (None: no ground truth), then generation speed."""
    return {
        **shape_metrics(split),
        "answer": grade.extracted if grade is not None else None,
        "correct": grade.correct if grade is not None else None,
        "generation_time_s": generation_time_s,
        "new_tokens": new_tokens,
        # A zero duration (e.g. a cached or empty generation) has no meaningful rate.
        "tokens_per_s": new_tokens / generation_time_s if generation_time_s > 0 else 0.0,
    }
