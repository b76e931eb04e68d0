"""Stage 3: base and SFT on the run's suites, written as ``evaluation_results.json``.

``benchmarks`` holds each suite's pass@1 with its interval, pass@k, cons@n, diagnostics and the
paired test of SFT − base; ``benchmark_samples`` every problem's answers. The older keys
(``summary``, ``deltas``, ``by_set``, ``samples``) stay, computed from the first answer to each
problem, because scripts read them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distill.config import RunConfig
from distill.evaluation.benchmark import MODELS, BenchmarkSettings, run_suite
from distill.evaluation.grading import Grade
from distill.evaluation.metrics import response_metrics
from distill.evaluation.stats import mcnemar_exact
from distill.evaluation.suites import Suite
from distill.evaluation.summary import deltas, summarize
from distill.generation.engine import Engine

log = logging.getLogger("distill")


def benchmark_settings(config: RunConfig) -> BenchmarkSettings:
    return BenchmarkSettings(num_samples=config.num_samples, temperature=config.sampling_temperature,
                             top_p=config.sampling_top_p, max_new_tokens=config.max_new_tokens,
                             max_thinking_tokens=config.max_thinking_tokens, seed=config.seed)


def _legacy_side(sample: dict[str, Any], gold: str) -> dict[str, Any]:
    grade = Grade(extracted=sample["extracted"], gold=gold, correct=sample["correct"], key=sample["key"])
    return {"response": sample["text"],
            **response_metrics(sample["text"], sample.get("time_s", 0.0), sample["tokens"], grade)}


def legacy_samples(suite: Suite, records: Sequence[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """The first answer of each model to each problem, in the older ``samples`` shape."""
    return [{"prompt": r["prompt"], "system": r.get("system", system), "ground_truth": r["gold"], "set": suite.name,
             **{m: _legacy_side(r[m][0], r["gold"]) for m in MODELS}} for r in records]


def evaluate(engine: Engine, suites: Sequence[Suite], settings: BenchmarkSettings, folder: Path, *,
             system: str | None = None, models: dict[str, Any] | None = None,
             should_cancel: Callable[[], bool] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The ``evaluation_results.json`` structure for ``suites`` (answers kept in ``folder`` as they come);
    ``on_progress(problems done, problems)`` over all suites."""
    benchmarks: dict[str, Any] = {}
    per_problem: dict[str, list[dict[str, Any]]] = {}
    samples: list[dict[str, Any]] = []
    total, offset = sum(len(s.problems) for s in suites), 0
    log.info("Evaluating base and SFT on %d problems (%s), %d answer(s) each, up to %d new tokens per answer", total,
             ", ".join(f"{s.name} {len(s.problems)}" for s in suites), settings.num_samples, settings.max_new_tokens)
    for suite in suites:
        def progress(_: str, done: int, __: int, offset: int = offset) -> None:
            if on_progress is not None:
                on_progress(offset + done, total)

        block, records = run_suite(engine, suite, settings, folder, system=system, models=models,
                                   should_cancel=should_cancel,
                                   on_progress=progress)
        offset += len(suite.problems)
        benchmarks[suite.name], per_problem[suite.name] = block, records
        samples += legacy_samples(suite, records, system)
    summary = {m: summarize([s[m] for s in samples]) for m in MODELS}
    by_set = {name: {m: summarize([s[m] for s in samples if s["set"] == name]) for m in MODELS}
              for name in per_problem}
    graded = [s for s in samples if s["base"]["correct"] is not None]
    test = mcnemar_exact([s["base"]["correct"] for s in graded], [s["sft"]["correct"] for s in graded])
    accuracy_test = {"test": test.test, "p_value": round(test.p_value, 6), "significant": test.significant,
                     "delta_ci": [round(x, 4) for x in test.ci]}
    return {"summary": summary, "deltas": deltas(summary["base"], summary["sft"]), "accuracy_test": accuracy_test,
            "by_set": by_set, "samples": samples, "benchmarks": benchmarks, "benchmark_samples": per_problem}
