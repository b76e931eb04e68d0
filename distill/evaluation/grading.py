"""Grading a response against a gold answer, the way the field does.

``math`` uses Hugging Face math-verify (as open-r1 and lighteval do): the gold and the prediction are
parsed to sympy and compared symbolically, so ``\\frac{1}{2}``, ``0.5`` and ``\\dfrac12`` agree.
``number`` is the project's older regex grader (:mod:`distill.evaluation.answers`). ``choice`` reads
a multiple-choice letter. Every grader reads only the answer part of a response (after ``</think>``).
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from distill.data.formats import GSM8K_FINAL_RE, gsm8k_final
from distill.evaluation.answers import answers_match, extract_answer
from distill.reasoning import Split

GRADERS = ("math", "number", "choice")
TIMEOUT_S = 5  # math-verify's per-parse and per-comparison limit

_DELIMITED = re.compile(r"(?<!\\)\$|\\boxed|\\\(|\\\[")  # an unescaped $, \boxed, \( or \[
# "Answer: B", "the answer is (B)", "**Answer:** $B$"; a bare lower-case letter must end the line ("the answer is a
# bit ..." is prose). Then \boxed{B}; then a last "(B)" / "B)" or a line holding only a capital letter.
_CHOICE_PATTERNS = (
    re.compile(
        r"(?i:answer)(?:\s+is)?\s*[:：]?[\s*$]*(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z0-9])|([a-z])(?=[\s.*$]*$))",
        re.MULTILINE,
    ),
    re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*\(?([A-Za-z])\)?\s*\}?\s*\}"),
    re.compile(r"(?<![A-Za-z0-9])\(?([A-Z])\)|^[\s*]*\(?([A-Z])\)?[\s.*]*$", re.MULTILINE),
)


@dataclass(frozen=True)
class Grade:
    extracted: str | None  # what was read from the response, as text (None: no answer found)
    gold: str  # what it was compared with (the gold answer as given)
    correct: bool
    key: str | None  # canonical form of the extracted answer, for majority voting across samples


def grade(response: str, gold: str, grader: str) -> Grade:
    return grade_many([(response, gold, grader)])[0]


def grade_many(items: Sequence[tuple[str, str, str]]) -> list[Grade]:
    """Grades of (response, gold, grader) triples, in order. Off the main thread, math items are graded in a
    spawned child process, which re-imports the main script: a script needs the ``if __name__ == "__main__":`` guard."""
    batch = [(str(response), str(gold), grader) for response, gold, grader in items]
    for _, _, grader in batch:
        if grader not in GRADERS:
            raise ValueError(f"unknown grader {grader!r}; known graders: {', '.join(GRADERS)}")
    # math-verify bounds its work with signal.alarm, which only works in the main thread (elsewhere it
    # raises ValueError), and running it without a timeout lets one pathological answer hang a worker.
    # So off the main thread (thread-pool workers, API threads) the batch goes to a child process whose
    # main thread grades it with the timeouts on.
    if threading.current_thread() is threading.main_thread() or all(g != "math" for _, _, g in batch):
        return _grade_batch(batch)
    try:
        return _pool().submit(_grade_batch, batch).result()
    except BrokenProcessPool:  # the child died (killed, out of memory): start a fresh one once
        _drop_pool()
        return _pool().submit(_grade_batch, batch).result()


def _grade_batch(items: list[tuple[str, str, str]]) -> list[Grade]:
    graders = {"math": _grade_math, "number": _grade_number, "choice": _grade_choice}
    return [graders[grader](Split.of(response).answer, gold) for response, gold, grader in items]


@functools.lru_cache(maxsize=8192)
def _parsed_gold(gold_text: str) -> tuple:
    """A gold answer parsed once: most of a grade's time, and every sample of a problem shares it."""
    from math_verify import parse

    return tuple(parse(gold_text, parsing_timeout=TIMEOUT_S))


def _grade_math(answer: str, gold: str) -> Grade:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException

    if not answer:
        return Grade(None, gold, False, None)
    gold_text = gsm8k_final(gold)
    if not _DELIMITED.search(gold_text):  # plain LaTeX ("\\frac{1}{2}", "\\$18"): give it math delimiters
        gold_text = f"${gold_text}$"
    # A GSM8K-style "#### 42" line counts like \boxed{42}.
    answer = GSM8K_FINAL_RE.sub(lambda m: "\\boxed{" + m.group(1).strip() + "}", answer)
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    try:
        gold_parsed = list(_parsed_gold(gold_text))
        parsed = parse(answer, extraction_config=config, parsing_timeout=TIMEOUT_S)
        if not parsed:
            return Grade(None, gold, False, None)
        extracted = next((p for p in parsed if isinstance(p, str)), str(parsed[0]))
        correct = bool(gold_parsed) and verify(gold_parsed, parsed, timeout_seconds=TIMEOUT_S)
        return Grade(extracted, gold, correct, str(parsed[0]))
    except (Exception, TimeoutException):  # one bad item is wrong, the batch goes on
        return Grade(None, gold, False, None)


def _grade_number(answer: str, gold: str) -> Grade:
    extracted = extract_answer(answer) if answer else None
    gold_value = gsm8k_final(gold)
    return Grade(extracted, gold, answers_match(extracted, gold_value), extracted)


def _grade_choice(answer: str, gold: str) -> Grade:
    letter = None
    for pattern in _CHOICE_PATTERNS:
        matches = list(pattern.finditer(answer))
        if matches:
            letter = next(g for g in matches[-1].groups() if g).upper()
            break
    gold_letter = gold.strip().strip("()").strip().upper()
    return Grade(letter, gold, letter is not None and letter == gold_letter, letter)


_pool_lock = threading.Lock()
_executor: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    global _executor
    with _pool_lock:
        if _executor is None:
            context = multiprocessing.get_context("spawn")
            _executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return _executor


@atexit.register
def _drop_pool() -> None:
    global _executor
    with _pool_lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
