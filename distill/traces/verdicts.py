"""Every trace judged, then the ``--keep`` policy picks the training rows of each problem.

A trace's verdict is the first that applies: ``failed`` (the request failed for good), ``looping`` (as the
diagnostics detect it), ``incomplete`` (stopped by the token limit, or no closed thought), ``no_answer`` and
``wrong`` (graded against the problem's answer with the benchmarks' grading; not checked by ``--keep all``),
``too_long`` (over ``--max_seq_length`` in the student's tokens), ``duplicate`` (the same text as an earlier trace
of the problem); then the policy keeps ``kept`` ones and marks the other candidates ``not_selected``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distill.evaluation.diagnostics import is_looping
from distill.evaluation.grading import Grade
from distill.generation.engine import Generation
from distill.reasoning import Split

KEEP_POLICIES = ("all_correct", "shortest_correct", "first_correct", "all")
REJECTIONS = ("failed", "looping", "incomplete", "no_answer", "wrong", "too_long", "duplicate", "not_selected")
VERDICTS = ("kept", *REJECTIONS)


def sample_record(gen: Generation, grade: Grade | None, student_tokens: int | None) -> dict[str, Any]:
    """What is kept of one trace: its text and parts, how it ended, its grade and length."""
    split = Split.of(gen.text)
    return {
        "text": gen.text, "thought": split.thought if split.opened else None, "answer": split.answer,
        "finish_reason": gen.finish_reason, "tokens": gen.new_tokens, "prompt_tokens": gen.prompt_tokens,
        "think_tokens": gen.think_tokens, "student_tokens": student_tokens, "error": gen.error,
        "complete": gen.error is None and gen.finish_reason == "stop" and split.closed and bool(split.thought),
        "looping": gen.error is None and is_looping(gen.text),
        "extracted": grade.extracted if grade else None, "correct": bool(grade and grade.correct),
    }


def _rejection(s: dict[str, Any], keep: str, max_seq_length: int, seen: set[str]) -> str | None:
    if s["error"] is not None:
        return "failed"
    if s["looping"]:
        return "looping"
    if not s["complete"]:
        return "incomplete"
    if keep != "all" and s["extracted"] is None:
        return "no_answer"
    if keep != "all" and not s["correct"]:
        return "wrong"
    if s["student_tokens"] is not None and s["student_tokens"] > max_seq_length:
        return "too_long"
    if s["text"] in seen:
        return "duplicate"
    return None


def verdicts(samples: Sequence[dict[str, Any]], keep: str, max_seq_length: int) -> list[str]:
    """One verdict per sample (``VERDICTS``), in order."""
    if keep not in KEEP_POLICIES:
        raise ValueError(f"unknown keep policy {keep!r}; use one of {', '.join(KEEP_POLICIES)}")
    out: list[str] = []
    seen: set[str] = set()
    candidates: list[int] = []
    for i, s in enumerate(samples):
        reason = _rejection(s, keep, max_seq_length, seen)
        out.append(reason or "kept")
        if reason is None:
            seen.add(s["text"])
            candidates.append(i)
    if keep in ("first_correct", "shortest_correct") and candidates:
        chosen = candidates[0] if keep == "first_correct" else min(candidates, key=lambda i: samples[i]["tokens"])
        for i in candidates:
            out[i] = "kept" if i == chosen else "not_selected"
    return out
