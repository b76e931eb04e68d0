"""Stage 3: base and SFT on the run's suites, written as ``evaluation_results.json`` (the model and its
rendering: ``distill/evaluation/results.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distill.config import RunConfig
from distill.evaluation.benchmark import BenchmarkSettings, run_suite
from distill.evaluation.results import build
from distill.evaluation.suites import Suite
from distill.generation.engine import Engine

log = logging.getLogger("distill")


def benchmark_settings(config: RunConfig) -> BenchmarkSettings:
    return BenchmarkSettings(num_samples=config.num_samples, temperature=config.sampling_temperature,
                             top_p=config.sampling_top_p, max_new_tokens=config.max_new_tokens,
                             max_thinking_tokens=config.max_thinking_tokens, seed=config.seed)


def evaluate(engine: Engine, suites: Sequence[Suite], settings: BenchmarkSettings, folder: Path, *,
             system: str | None = None, models: dict[str, Any] | None = None,
             should_cancel: Callable[[], bool] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The ``evaluation_results.json`` structure for ``suites`` (answers kept in ``folder`` as they come);
    ``on_progress(problems done, problems)`` over all suites."""
    benchmarks: dict[str, Any] = {}
    per_problem: dict[str, list[dict[str, Any]]] = {}
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
    return build(benchmarks, per_problem, {s.name: system for s in suites})
