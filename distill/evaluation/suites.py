"""Benchmark suites: a named loader + a prompt template + a grader.

Built-in suites read the hub datasets the field uses, in those datasets' own column names, or a local
copy of them (``math500=PATH.jsonl``). A custom suite names a file, its columns and a grader:
``mine=data/mine.jsonl?problem=question&answer=target&grader=math``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from distill.data.formats import GSM8K_MARK, final_answer_from_solution, gsm8k_final
from distill.data.schema import DataFormatError
from distill.data.sources import iter_rows
from distill.errors import UserError, one_line
from distill.evaluation.grading import GRADERS
from distill.hub import unavailable_reason

MATH_TEMPLATE = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
GPQA_TEMPLATE = (
    "Answer the following multiple choice question. The last line of your response should be of the following "
    "format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering."
    "\n\n{question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"
)
HELDOUT = "heldout"
GPQA_WRONG = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
ID_COLUMNS = ("unique_id", "id", "Record ID")
# Columns kept in Problem.meta when a row has them.
META_COLUMNS = ("solution", "subject", "level", "url", "year")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Builtin:
    hub_id: str | None  # None: not loadable on its own (heldout)
    split: str
    problem_columns: tuple[str, ...]  # accepted names, first present wins
    answer_columns: tuple[str, ...]
    template: str
    grader: str
    config: str | None = None
    kind: str = "math"  # "math", "gsm8k" (gold after ####), "gpqa" (shuffled options), "heldout", "custom" (a file)


_MATH_PROBLEM = ("problem", "question")
# The usual columns of a file of problems, first present wins (custom suites, and trace generation's problems).
PROBLEM_COLUMNS = ("problem", "question", "prompt", "Question", "input")
ANSWER_COLUMNS = ("answer", "ground_truth", "final_answer", "gold", "target", "solution", "ground_truth_solution")
# A plain answer longer than this is a worked solution: its final answer is read from it.
_SHORT_ANSWER = 40
BUILTIN_SUITES: dict[str, Builtin] = {
    "gsm8k": Builtin("openai/gsm8k", "test", ("question",), ("answer",), MATH_TEMPLATE, "math", "main", "gsm8k"),
    "math500": Builtin("HuggingFaceH4/MATH-500", "test", _MATH_PROBLEM, ("answer",), MATH_TEMPLATE, "math"),
    "aime24": Builtin("HuggingFaceH4/aime_2024", "train", _MATH_PROBLEM, ("answer",), MATH_TEMPLATE, "math"),
    "aime25": Builtin("yentinglin/aime_2025", "train", _MATH_PROBLEM, ("answer",), MATH_TEMPLATE, "math"),
    "amc23": Builtin("math-ai/amc23", "test", _MATH_PROBLEM, ("answer",), MATH_TEMPLATE, "math"),
    "gpqa_diamond": Builtin(
        "Idavidrein/gpqa", "train", ("Question",), ("Correct Answer",), GPQA_TEMPLATE, "choice", "gpqa_diamond", "gpqa"
    ),
    HELDOUT: Builtin(None, "", ("question",), ("answer",), MATH_TEMPLATE, "math", kind="heldout"),
}


@dataclass(frozen=True)
class Problem:
    id: str  # stable within the suite: the dataset's id column, else the row index as text
    prompt: str  # the user message: template applied
    answer: str  # gold answer text (a letter for choice)
    meta: dict[str, Any] = field(default_factory=dict)  # the raw question; for GPQA the shuffled options


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    path: str | None = None  # local file; None -> the hub (or, for heldout, the run's data)
    problem: str | None = None  # column names, for custom suites (override a built-in's)
    answer: str | None = None
    grader: str | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    grader: str
    source: str  # "hub:HuggingFaceH4/MATH-500" or the file path, for the results
    problems: list[Problem]
    skipped: int = 0  # rows without a problem or an answer


class SuiteError(UserError, ValueError):
    """One line naming the suite and what is wrong."""


def parse_benchmarks(value: str | Sequence[str] | None) -> list[SuiteSpec]:
    """Suite specs from ``"gsm8k,math500=PATH,mine=PATH?problem=q&answer=a&grader=math"`` or a list of items."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    specs: list[SuiteSpec] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        spec = _parse_item(item)
        if any(s.name == spec.name for s in specs):
            raise SuiteError(f"benchmark {spec.name!r} is given twice; give each benchmark once")
        specs.append(spec)
    return specs


def asks_heldout(benchmarks: str | Sequence[str] | None) -> bool:
    """Whether the run's own held-out rows are among the suites (then the training data must be read)."""
    return any(s.name == HELDOUT and s.path is None for s in parse_benchmarks(benchmarks))


def format_spec(spec: SuiteSpec) -> str:
    """The spec as ``parse_benchmarks`` reads it back."""
    options = urlencode({k: v for k in ("problem", "answer", "grader") if (v := getattr(spec, k)) is not None})
    return spec.name + (f"={spec.path}" if spec.path else "") + (f"?{options}" if options else "")


def _parse_item(item: str) -> SuiteSpec:
    name, has_path, rest = (part.strip() for part in item.partition("="))
    if not _NAME.match(name):
        raise SuiteError(f"benchmark {name!r}: a name may hold only letters, digits, '_' and '-' (in {item!r})")
    path, options = rest, {}
    head, sep, query = rest.rpartition("?")
    if sep and "=" in query:
        path = head.strip()
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - {"problem", "answer", "grader"})
        if unknown:
            raise SuiteError(f"benchmark {name!r}: unknown option(s) {', '.join(unknown)}; use problem, answer, grader")
    if has_path and not path:
        raise SuiteError(f"benchmark {name!r}: no file after '='; write {name}=PATH.jsonl")
    spec = SuiteSpec(name, path or None, options.get("problem") or None, options.get("answer") or None,
                     options.get("grader") or None)
    if spec.grader is not None and spec.grader not in GRADERS:
        raise SuiteError(f"benchmark {name!r}: unknown grader {spec.grader!r}; use one of {', '.join(GRADERS)}")
    if name == HELDOUT and (spec.path or options):
        raise SuiteError(f"benchmark {name!r} is the run's own held-out data and takes no file or options")
    if name not in BUILTIN_SUITES:
        _check_custom(spec)
    return spec


def _check_custom(spec: SuiteSpec) -> None:
    if spec.path is None:
        raise SuiteError(
            f"benchmark {spec.name!r} is not built-in ({', '.join(BUILTIN_SUITES)}); give its file: "
            f"{spec.name}=data/{spec.name}.jsonl (problem and answer read from the usual columns, graded with math), "
            f"or name them: {spec.name}=data/{spec.name}.jsonl?problem=COL&answer=COL&grader={'|'.join(GRADERS)}"
        )


def check_suite(spec: SuiteSpec) -> None:
    """Cheap validation before any model loads: a known name, a reachable hub or an existing file whose
    first row has the columns. Raises SuiteError."""
    builtin = _definition(spec)
    if builtin.kind == "heldout":
        return
    if spec.path is None:
        _check_hub(spec.name, builtin)
        return
    path = _existing(spec)
    first = next(_rows(spec, path), None)
    if first is None:
        raise SuiteError(f"benchmark {spec.name!r}: file {path} has no rows")
    _columns(spec, builtin, first, f"file {path}")


def load_suite(spec: SuiteSpec, limit: int | None = None, seed: int = 0) -> Suite:
    """The suite's problems (the first ``limit`` usable ones) with the template applied."""
    builtin = _definition(spec)
    if builtin.kind == "heldout":
        raise SuiteError(f"benchmark {spec.name!r} is the run's held-out training data; the pipeline provides it")
    if limit is not None and limit < 1:
        raise SuiteError(f"benchmark {spec.name!r}: limit must be at least 1, got {limit}")
    if spec.path is None:
        _check_hub(spec.name, builtin)
        source, where, rows = hub_source(builtin), f"hub dataset {builtin.hub_id}", _hub_rows(spec.name, builtin)
    else:
        path = _existing(spec)
        source, where, rows = str(path), f"file {path}", _rows(spec, path)
    columns: list[tuple[str, str]] = []

    def build(index: int, row: dict[str, Any]) -> Problem | None:
        columns[:] = columns or [_columns(spec, builtin, row, where)]
        return _problem(builtin, columns[0], row, index, seed)

    problems, skipped, any_row = collect_problems(rows, build, limit)
    if not any_row:
        raise SuiteError(f"benchmark {spec.name!r}: {where} has no rows")
    if not problems:
        raise SuiteError(
            f"benchmark {spec.name!r}: {where} has no usable problems ({skipped} row(s) lack a problem or an answer)"
        )
    return Suite(spec.name, spec.grader or builtin.grader, source, problems, skipped)


def collect_problems(rows: Iterable[dict[str, Any]], build: Callable[[int, dict[str, Any]], Problem | None],
                     limit: int | None, skip: int = 0) -> tuple[list[Problem], int, bool]:
    """(the first ``limit`` problems ``build`` makes of ``rows`` after ``skip`` usable ones, the rows without a
    problem, whether there was any row). A repeated id gets ``@index``: results are keyed by ids."""
    problems: list[Problem] = []
    seen: set[str] = set()
    skipped = usable = 0
    any_row = False
    for index, row in enumerate(rows):
        any_row = True
        problem = build(index, row)
        if problem is None:
            skipped += 1
            continue
        usable += 1
        if usable <= skip:
            continue
        if problem.id in seen:
            problem = replace(problem, id=f"{problem.id}@{index}")
        seen.add(problem.id)
        problems.append(problem)
        if limit is not None and len(problems) >= limit:
            break
    return problems, skipped, any_row


def _definition(spec: SuiteSpec) -> Builtin:
    if spec.grader is not None and spec.grader not in GRADERS:
        raise SuiteError(f"benchmark {spec.name!r}: unknown grader {spec.grader!r}; use one of {', '.join(GRADERS)}")
    builtin = BUILTIN_SUITES.get(spec.name)
    if builtin is not None:
        return builtin
    _check_custom(spec)
    return Builtin(None, "", (spec.problem,) if spec.problem else PROBLEM_COLUMNS,
                   (spec.answer,) if spec.answer else ANSWER_COLUMNS, MATH_TEMPLATE, spec.grader or "math", kind="custom")


def _existing(spec: SuiteSpec) -> Path:
    path = Path(spec.path or "").expanduser()
    if not path.exists():
        raise SuiteError(f"benchmark {spec.name!r}: file {spec.path} not found")
    return path


def _rows(spec: SuiteSpec, path: Path) -> Iterator[dict[str, Any]]:
    try:
        yield from iter_rows(str(path))
    except (DataFormatError, OSError) as err:
        raise SuiteError(f"benchmark {spec.name!r}: {one_line(err)}") from None


def hub_source(builtin: Builtin) -> str:
    return f"hub:{builtin.hub_id}" + (f":{builtin.config}" if builtin.config else "")


def _hub_failure(name: str, builtin: Builtin, verb: str, why: str) -> SuiteError:
    return SuiteError(
        f"benchmark {name!r}: cannot {verb} the Hugging Face Hub to load {builtin.hub_id} ({why}); "
        f"give a local file: {name}=PATH.jsonl"
    )


def _check_hub(name: str, builtin: Builtin) -> None:
    if unavailable_reason() is not None:
        raise _hub_failure(name, builtin, "reach", "offline?")


def _hub_rows(name: str, builtin: Builtin) -> Iterator[dict[str, Any]]:
    try:
        from datasets import load_dataset

        rows = iter(load_dataset(builtin.hub_id, builtin.config, split=builtin.split, streaming=True))
        for row in rows:
            yield dict(row)
    except Exception as err:  # datasets raises many types (gated, not found, network); the user needs one line
        raise _hub_failure(name, builtin, "use", one_line(err)) from None


def _columns(spec: SuiteSpec, builtin: Builtin, row: dict[str, Any], where: str) -> tuple[str, str]:
    """The (problem, answer) column names present in ``row``, or a SuiteError naming found and expected."""
    problems = (spec.problem,) if spec.problem else builtin.problem_columns
    answers = (spec.answer,) if spec.answer else builtin.answer_columns
    extra = GPQA_WRONG if builtin.kind == "gpqa" else ()
    problem = next((c for c in problems if c in row), None)
    answer = next((c for c in answers if c in row), None)
    if problem is None or answer is None or any(c not in row for c in extra):
        expected = (
            f"expected problem column {' or '.join(map(repr, problems))} "
            f"and answer column {' or '.join(map(repr, answers))}"
            + (f" and option columns {', '.join(map(repr, extra))}" if extra else "")
        )
        raise SuiteError(f"benchmark {spec.name!r}: {where} has columns [{', '.join(map(str, row))}]; {expected}")
    return problem, answer


def gold_answer(value: Any) -> str | None:
    """The final answer in an answer column: GSM8K's ``#### n``, a ``\\boxed{}``, a short answer as it is, or the
    final answer of a worked solution."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if GSM8K_MARK in text:
        return gsm8k_final(text).replace(",", "") or None
    if len(text) <= _SHORT_ANSWER and "\\boxed" not in text:
        return text or None
    return final_answer_from_solution(text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # amc23 stores answers as floats
    return str(value).strip()


def _problem(builtin: Builtin, columns: tuple[str, str], row: dict[str, Any], index: int, seed: int) -> Problem | None:
    question, answer = _text(row.get(columns[0])), _text(row.get(columns[1]))
    pid = next((_text(row[c]) for c in ID_COLUMNS if _text(row.get(c))), str(index))
    meta: dict[str, Any] = {"question": question}
    meta.update({c: row[c] for c in META_COLUMNS if row.get(c) is not None})
    if builtin.kind == "gsm8k":
        meta["solution"] = answer
        answer = gsm8k_final(answer)
    elif builtin.kind == "custom" and builtin.grader != "choice":
        answer = gold_answer(row.get(columns[1])) or ""
    if not question or not answer:
        return None
    if builtin.kind == "gpqa":
        options = [answer] + [_text(row.get(c)) for c in GPQA_WRONG]
        if not all(options):
            return None
        # Each problem gets its own order, reproducible from the seed and its id (str seeds hash stably).
        order = list(range(4))
        random.Random(f"{seed}:{pid}").shuffle(order)
        shown = [options[i] for i in order]
        meta.update(options=shown, correct=answer)
        letter = "ABCD"[order.index(0)]
        prompt = builtin.template.format(question=question, **dict(zip("ABCD", shown)))
        return Problem(pid, prompt, letter, meta)
    return Problem(pid, builtin.template.format(problem=question), answer, meta)
