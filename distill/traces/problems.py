"""The problems a teacher is asked: what ``--dataset`` names, each with its gold answer.

- ``builtin:reasoning`` — the built-in generator's training problems (never its held-out split);
- a benchmark suite: ``gsm8k``, ``math500``, … (from the hub), ``NAME=PATH`` (a local copy in the suite's columns),
  or ``NAME=PATH?problem=COL&answer=COL&grader=G`` as ``--benchmarks`` takes them;
- any file, folder or hub id the data readers take, with the problem and answer found in the usual columns
  (``problem``/``question``/``prompt`` or the first user turn; ``answer`` — GSM8K's ``#### n`` read —,
  ``ground_truth``, ``final_answer``, a ``\\boxed{}`` in ``solution``), or named: ``PATH?problem=COL&answer=COL``.

Every source also takes ``skip=N`` (start after the first N problems: ``builtin:reasoning?skip=200`` asks problems
a model trained on the first 200 has not seen) and ``split=NAME`` (default ``train``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from distill.data import builtin
from distill.data.schema import DataFormatError
from distill.data.sources import BUILTIN_SOURCE, DEFAULT_BUILTIN_ROWS, iter_rows
from distill.errors import UserError, one_line
from distill.evaluation.grading import GRADERS
from distill.evaluation.suites import (
    ANSWER_COLUMNS,
    BUILTIN_SUITES,
    HELDOUT,
    ID_COLUMNS,
    PROBLEM_COLUMNS,
    Problem,
    Suite,
    SuiteError,
    collect_problems,
    gold_answer,
    load_suite,
    parse_benchmarks,
)

OPTIONS = ("problem", "answer", "grader", "skip", "split")


class ProblemError(UserError, ValueError):
    """--dataset names no usable problems: one line naming what is wrong."""


@dataclass(frozen=True)
class ProblemSource:
    name: str  # the source as given, without options
    suite: str | None = None  # a benchmark suite's name (``gsm8k`` or the NAME of NAME=PATH)
    problem: str | None = None  # column names given with ?problem=…&answer=…
    answer: str | None = None
    grader: str = "math"
    skip: int = 0
    split: str = "train"  # of a hub dataset, a JSON file with splits, or the built-in generator


def parse_source(dataset: str) -> ProblemSource:
    """``dataset`` as a problem source, or ProblemError naming what is wrong with it."""
    text = dataset.strip()
    head, sep, query = text.rpartition("?")
    options: dict[str, str] = {}
    if sep and "=" in query and "/" not in query:
        text, options = head.strip(), dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ProblemError(f"--dataset: unknown option(s) {', '.join(unknown)}; use {', '.join(OPTIONS)}")
    grader = options.get("grader") or "math"
    if grader not in GRADERS:
        raise ProblemError(f"--dataset: unknown grader {grader!r}; use one of {', '.join(GRADERS)}")
    skip = options.get("skip") or "0"
    if not skip.isdigit():
        raise ProblemError(f"--dataset: skip must be a whole number of problems, got {skip!r}")
    suite = None
    name, has_path, _ = text.partition("=")
    if text in BUILTIN_SUITES or (has_path and "/" not in name and name.strip()):
        suite = (name if has_path else text).strip()
        if suite == HELDOUT:
            raise ProblemError("--dataset: heldout is a run's own held-out rows, not a set of problems to ask")
    return ProblemSource(text, suite, options.get("problem") or None, options.get("answer") or None, grader,
                         int(skip), options.get("split") or "train")


def read_problems(dataset: str, limit: int | None = None) -> Suite:
    """The problems ``dataset`` names (the first ``limit`` after ``skip``), their ids unique."""
    source = parse_source(dataset)
    if source.suite is not None:
        return _suite_problems(dataset, source, limit)
    if source.name == BUILTIN_SOURCE:
        return _builtin_problems(source, limit)
    if source.name.startswith("builtin:"):
        raise ProblemError(f"--dataset: unknown built-in dataset {source.name!r}; the built-in one is {BUILTIN_SOURCE}")
    return _row_problems(source, limit)


def check_problems(dataset: str) -> None:
    """Cheap: the source exists and its first problem has a problem and an answer (no teacher, no model)."""
    read_problems(dataset, 1)


def _suite_problems(dataset: str, source: ProblemSource, limit: int | None) -> Suite:
    try:
        (spec,) = parse_benchmarks([_without_skip(dataset)])
        suite = load_suite(spec, None if limit is None else limit + source.skip)
    except SuiteError as e:
        raise ProblemError(f"--dataset: {e}") from None
    # The suite's prompt has its evaluation template; the teacher gets the bare problem (its own template).
    # A multiple-choice problem is only whole with its options, so it keeps the rendered prompt.
    problems = [p if suite.grader == "choice" else replace(p, prompt=str(p.meta.get("question") or p.prompt))
                for p in suite.problems[source.skip:]]
    return _nonempty(Suite(suite.name, suite.grader, suite.source, problems, suite.skipped), dataset)


def _without_skip(spec: str) -> str:
    head, sep, query = spec.rpartition("?")
    if not sep:
        return spec
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ("skip", "split")]
    return head + ("?" + "&".join(f"{k}={v}" for k, v in kept) if kept else "")


def _builtin_problems(source: ProblemSource, limit: int | None) -> Suite:
    count = (limit if limit is not None else DEFAULT_BUILTIN_ROWS) + source.skip
    try:
        generated = builtin.generate_problems(count, split=source.split)
    except ValueError as e:
        raise ProblemError(f"--dataset: {e}") from None
    problems = [Problem(id=str(i), prompt=p.question, answer=str(p.answer), meta={"family": p.family})
                for i, p in enumerate(generated)]
    return Suite(BUILTIN_SOURCE, "math", BUILTIN_SOURCE, problems[source.skip:])


def _row_problems(source: ProblemSource, limit: int | None) -> Suite:
    columns: list[tuple[str, str]] = []

    def build(index: int, row: dict[str, Any]) -> Problem | None:
        columns[:] = columns or [_columns(source, row)]
        return _problem(row, columns[0], index)

    problems, skipped, any_row = collect_problems(_rows(source.name, source.split), build, limit, source.skip)
    if not any_row:
        raise ProblemError(f"--dataset: {source.name} has no rows")
    return _nonempty(Suite(source.name, source.grader, source.name, problems, skipped), source.name)


def _rows(name: str, split: str) -> Iterator[dict[str, Any]]:
    try:
        yield from iter_rows(name, split=split)
    except (DataFormatError, OSError, UserError) as e:
        raise ProblemError(f"--dataset: {one_line(e)}") from None


def _nonempty(suite: Suite, dataset: str) -> Suite:
    if not suite.problems:
        raise ProblemError(f"--dataset: {dataset} holds no usable problem ({suite.skipped} row(s) without a problem "
                           "or an answer)")
    return suite


def _user_turn(row: Mapping[str, Any]) -> str | None:
    for key, role_key, text_key in (("messages", "role", "content"), ("conversations", "from", "value")):
        turns = row.get(key)
        if isinstance(turns, list):
            for turn in turns:
                if isinstance(turn, Mapping) and turn.get(role_key) in ("user", "human"):
                    return str(turn.get(text_key) or "")
    return None


def _columns(source: ProblemSource, row: Mapping[str, Any]) -> tuple[str, str]:
    """The (problem, answer) columns of ``source``: as named, else the first usual ones present."""
    found = ", ".join(map(str, list(row)[:12]))
    problem = source.problem or next((c for c in PROBLEM_COLUMNS if c in row), None)
    if problem is None and _user_turn(row) is not None:
        problem = "messages" if "messages" in row else "conversations"
    answer = source.answer or next((c for c in ANSWER_COLUMNS if c in row), None)
    for what, column, usual in (("problem", problem, PROBLEM_COLUMNS), ("answer", answer, ANSWER_COLUMNS)):
        if column is None:
            raise ProblemError(
                f"--dataset: {source.name} has no {what} column (it has {found}; looked for {', '.join(usual)}); "
                f"name it: {source.name}?problem=COL&answer=COL&grader=math")
        if column not in row:
            raise ProblemError(f"--dataset: {source.name} has no column {column!r} (it has {found})")
    return str(problem), str(answer)


def _problem(row: Mapping[str, Any], columns: tuple[str, str], index: int) -> Problem | None:
    problem_col, answer_col = columns
    question = _user_turn(row) if problem_col in ("messages", "conversations") else row.get(problem_col)
    answer = gold_answer(row.get(answer_col))
    if not isinstance(question, str) or not question.strip() or not answer:
        return None
    pid = next((str(row[c]) for c in ID_COLUMNS if row.get(c) not in (None, "")), str(index))
    return Problem(id=pid, prompt=question.strip(), answer=answer)
