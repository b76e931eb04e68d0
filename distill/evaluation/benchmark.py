"""Base and SFT on one suite: every problem answered ``num_samples`` times by each, graded, summarized.

All the suite's problems go to the engine in one call (the ``hf`` engine's rolling batch keeps
``eval_batch_size`` rows in flight; the ``openai`` engine keeps its requests in flight); each problem
is graded and appended to ``benchmarks/NAME.jsonl`` in the run folder the moment its last answer
exists, and progress moves with it. A job that stops (cancelled, worker lost, engine down) keeps
every problem it finished, and a rerun with the same settings asks only the others.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.evaluation.diagnostics import sample_diagnostics, summarize_diagnostics
from distill.evaluation.grading import grade_many
from distill.evaluation.metrics import shape_metrics
from distill.evaluation.stats import (
    accuracy_interval,
    majority_correct,
    paired_test,
    pass_at_k_table,
)
from distill.evaluation.suites import Problem, Suite
from distill.generation.engine import BASE, SFT, Engine, EngineError, Generation, Prompt, Sampling
from distill.reasoning import Split

log = logging.getLogger("distill")
MODELS = (BASE, SFT)
LOG_EVERY_S = 10.0  # a progress line at most this often (and at each suite's end): one per problem would spam the log


@dataclass(frozen=True)
class BenchmarkSettings:
    num_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    max_thinking_tokens: int | None = None
    seed: int = 42

    def sampling(self, problem_index: int, sample_index: int) -> Sampling:
        # Base and SFT share a seed per (problem, sample): paired samples, less noise in the difference.
        seed = (self.seed * 1_000_003 + problem_index * 1_009 + sample_index) % (1 << 63)
        return Sampling(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                        seed=seed, max_thinking_tokens=self.max_thinking_tokens)

    def identity(self) -> dict[str, Any]:
        """What must match for stored answers to be reused."""
        return asdict(self)


def _system(problem: Problem, system: str | None) -> str | None:
    return problem.meta.get("system", system)


def _messages(problem: Problem, system: str | None) -> list[dict[str, str]]:
    system = _system(problem, system)
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": problem.prompt}]


class ProblemLog:
    """``benchmarks/NAME.jsonl``: a header line (suite, source, settings), then one line per problem."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path, self.header = path, header
        self.records: dict[str, dict[str, Any]] = {}
        if path.is_file():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if lines and lines[0].get("header") == header:
                self.records = {r["id"]: r for r in lines[1:]}
                return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"header": header}) + "\n")

    def add(self, records: list[dict[str, Any]]) -> None:
        with self.path.open("a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
                self.records[r["id"]] = r


class EvaluationFailed(EngineError):
    """Some problems got no answer (their requests failed); the others are kept."""


def _prompts(problem: Problem, index: int, settings: BenchmarkSettings, system: str | None) -> list[Prompt]:
    """The problem's rows: each sample by base, then by SFT."""
    return [Prompt(model=m, messages=_messages(problem, system), sampling=settings.sampling(index, k))
            for k in range(settings.num_samples) for m in MODELS]


def _per_sample(gen: Generation, split: Split) -> dict[str, Any]:
    """Every per-sample diagnostic and shape metric, from the answer's one :class:`Split`."""
    return {**sample_diagnostics(gen, split), **shape_metrics(split)}


def _record(suite: Suite, index: int, problem: Problem, gens: list[Generation], system: str | None
            ) -> dict[str, Any]:
    """One problem's line: its answers (in the order of ``_prompts``), graded."""
    grades = grade_many([(g.text, problem.answer, suite.grader) for g in gens])
    rec: dict[str, Any] = {"id": problem.id, "index": index, "prompt": problem.prompt,
                           "system": _system(problem, system), "gold": problem.answer, BASE: [], SFT: []}
    for r, (g, gr) in enumerate(zip(gens, grades, strict=True)):
        rec[MODELS[r % len(MODELS)]].append({"text": g.text, "extracted": gr.extracted, "key": gr.key,
                                             "correct": gr.correct, **_per_sample(g, Split.of(g.text))})
    return rec


def _model_summary(records: list[dict[str, Any]], model: str, n: int, seed: int) -> dict[str, Any]:
    per_problem = [sum(s["correct"] for s in r[model]) / n for r in records]
    counts = [sum(s["correct"] for s in r[model]) for r in records]
    pass1 = sum(per_problem) / len(per_problem) if per_problem else None
    lo, hi = accuracy_interval(per_problem, n, seed=seed)
    cons = [majority_correct([s["key"] for s in r[model]], [s["correct"] for s in r[model]]) for r in records]
    return {
        "pass@1": None if pass1 is None else round(pass1, 4),
        "pass@1_ci": [round(lo, 4), round(hi, 4)],
        "pass@k": {str(k): round(v, 4) for k, v in pass_at_k_table(counts, n).items()},
        "cons@n": round(sum(cons) / len(cons), 4) if cons else None,
        "n_correct": sum(counts),
        **summarize_diagnostics([s for r in records for s in r[model]]),
    }


def summarize_suite(suite: Suite, records: list[dict[str, Any]], settings: BenchmarkSettings) -> dict[str, Any]:
    """The suite's block of ``evaluation_results.json["benchmarks"]``."""
    n = settings.num_samples
    out: dict[str, Any] = {"n_problems": len(records), "num_samples": n, "grader": suite.grader,
                           "source": suite.source, "settings": settings.identity()}
    for m in MODELS:
        out[m] = _model_summary(records, m, n, settings.seed)
    base = [sum(s["correct"] for s in r[BASE]) / n for r in records]
    sft = [sum(s["correct"] for s in r[SFT]) / n for r in records]
    test = paired_test(base, sft, n, seed=settings.seed)
    out.update({"delta_pass@1": round(test.delta, 4), "delta_ci": [round(x, 4) for x in test.ci],
                "p_value": round(test.p_value, 6), "test": test.test, "significant": test.significant})
    return out


def _log_progress(suite: Suite, done: list[dict[str, Any]], n: int) -> None:
    right = {m: sum(s["correct"] for r in done for s in r[m]) / (len(done) * n) for m in MODELS}
    log.info("evaluating %s: %d/%d problems (base and SFT; pass@1 so far: base %.1f%%, sft %.1f%%)", suite.name,
             len(done), len(suite.problems), 100 * right[BASE], 100 * right[SFT])


def run_suite(engine: Engine, suite: Suite, settings: BenchmarkSettings, folder: Path, *, system: str | None = None,
              models: dict[str, Any] | None = None, should_cancel: Callable[[], bool] | None = None,
              on_progress: Callable[[str, int, int], None] | None = None) -> tuple[dict[str, Any], list[dict]]:
    """(summary block, per-problem records) for one suite, resuming from ``folder/NAME.jsonl`` when it holds
    answers of the same ``models`` (an identity of the weights: a retrained model answers afresh) and settings."""
    header = {"suite": suite.name, "source": suite.source, "grader": suite.grader, "system": system,
              "settings": settings.identity(), "models": models or {}}
    store = ProblemLog(folder / f"{suite.name}.jsonl", header)
    todo = [(i, p) for i, p in enumerate(suite.problems) if p.id not in store.records]
    if store.records:
        log.info("%s: %d of %d problems already answered; continuing", suite.name, len(store.records),
                 len(suite.problems))
    if on_progress is not None:  # where this suite starts: the clock of an ETA starts here
        on_progress(suite.name, len(suite.problems) - len(todo), len(suite.problems))
    _answer(engine, suite, todo, settings, system, store, should_cancel, on_progress)
    records = [store.records[p.id] for p in suite.problems]
    return summarize_suite(suite, records, settings), records


def _answer(engine: Engine, suite: Suite, todo: list[tuple[int, Problem]], settings: BenchmarkSettings,
            system: str | None, store: ProblemLog, should_cancel: Callable[[], bool] | None,
            on_progress: Callable[[str, int, int], None] | None) -> None:
    """Every problem of ``todo`` through the engine in one call; each is graded and stored as soon as its answers
    are all there. Problems whose requests failed are left out (a rerun asks them again) and named at the end."""
    if not todo:
        return
    rows = 2 * settings.num_samples
    prompts = [q for i, p in todo for q in _prompts(p, i, settings, system)]
    answers: list[list[Generation | None]] = [[None] * rows for _ in todo]
    failures: list[str] = []
    answered = [0]
    logged = time.monotonic()

    def on_result(r: int, gen: Generation) -> None:
        nonlocal logged
        j = r // rows
        answers[j][r % rows] = gen
        if any(g is None for g in answers[j]):
            return
        index, problem = todo[j]
        errors = [g.error for g in answers[j] if g.error]
        if errors:
            failures.append(f"problem {problem.id!r}: {errors[0]}")
            return
        store.add([_record(suite, index, problem, answers[j], system)])
        answered[0] += 1
        if time.monotonic() - logged >= LOG_EVERY_S or answered[0] == len(todo):
            _log_progress(suite, [store.records[p.id] for p in suite.problems if p.id in store.records],
                          settings.num_samples)
            logged = time.monotonic()
        if on_progress is not None:
            on_progress(suite.name, len(suite.problems) - len(todo) + answered[0], len(suite.problems))

    engine.generate(prompts, should_cancel=should_cancel, desc=suite.name, on_result=on_result)
    if failures:
        raise EvaluationFailed(f"{suite.name}: {len(failures)} of {len(todo)} problems got no answer (first: "
                               f"{failures[0]}); the other answers are kept, and a rerun asks only these")
