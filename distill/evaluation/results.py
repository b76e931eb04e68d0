"""``evaluation_results.json``: the one evaluation result model, and the seed-shaped keys rendered from it.

The model (schema_version 2) is what the evaluation measured:

- ``benchmarks``: one block per suite (``benchmark.summarize_suite``): pass@1 with its interval, pass@k, cons@n,
  diagnostics, the paired test of SFT − base;
- ``benchmark_samples``: one record per problem per suite, each answer with its grade and every per-sample
  diagnostic and shape metric, all computed once from the answer's one ``Split`` (``benchmark._record``).

The older keys are a *rendering* of that model, made here and only here (no second scoring): ``summary`` and
``by_set`` aggregate the same answers' stored metrics (so ``accuracy`` is the pass@1 of the suites described, every
answer counted), ``deltas`` subtracts them, ``accuracy_test`` is the suites' paired test (a single suite's own, or
the same test over the pooled problems), ``samples`` the first answer of each model to each problem, in the seed's
per-response shape.

A file without ``schema_version`` (written before it existed: schema 1) has the same keys, so :func:`load` reads it
as it is; its per-answer ``think_closed`` was true for a base answer without tags (now false: no thought).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from distill.errors import UserError
from distill.evaluation.metrics import shape_metrics
from distill.evaluation.stats import paired_test
from distill.evaluation.summary import deltas, summarize
from distill.reasoning import Split

SCHEMA_VERSION = 2
MODELS = ("base", "sft")
RENDERED = ("summary", "deltas", "accuracy_test", "by_set", "samples")


class ResultsError(UserError):
    """An evaluation_results structure this code cannot read."""


def build(benchmarks: dict[str, dict[str, Any]], records: dict[str, list[dict[str, Any]]],
          systems: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """The ``evaluation_results.json`` structure: the model plus its rendering. ``systems``: each suite's system prompt
    (the ``samples`` rendering shows it for records written before they kept their own)."""
    model = {"schema_version": SCHEMA_VERSION, "benchmarks": benchmarks, "benchmark_samples": records}
    return {**model, **render(benchmarks, records, systems)}


def load(results: Mapping[str, Any]) -> dict[str, Any]:
    """Any stored version as the current structure (a version-less file is schema 1, whose keys are the same); the
    rendering is made again from the model where a reader stored the model alone."""
    version = results.get("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ResultsError(f"evaluation results have schema_version {version!r}; this version of distill reads 1 to "
                           f"{SCHEMA_VERSION}")
    out = {**results, "schema_version": version}
    out.setdefault("benchmarks", {})
    if any(k not in out for k in RENDERED) and out.get("benchmark_samples"):
        out.update(render(out["benchmarks"], out["benchmark_samples"]))
    return out


def render(benchmarks: dict[str, dict[str, Any]], records: dict[str, list[dict[str, Any]]],
           systems: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """The seed-shaped keys, from the suites' blocks and answers."""
    every = {name: {m: [seed_shape(s) for r in recs for s in r[m]] for m in MODELS} for name, recs in records.items()}
    summary = {m: summarize([s for name in every for s in every[name][m]]) for m in MODELS}
    return {
        "summary": summary,
        "deltas": deltas(summary["base"], summary["sft"]),
        "accuracy_test": accuracy_test(benchmarks, records),
        "by_set": {name: {m: summarize(every[name][m]) for m in MODELS} for name in records},
        "samples": [{"prompt": r["prompt"], "system": r.get("system", (systems or {}).get(name)),
                     "ground_truth": r["gold"], "set": name, **{m: seed_shape(r[m][0]) for m in MODELS}}
                    for name, recs in records.items() for r in recs],
    }


def seed_shape(sample: dict[str, Any]) -> dict[str, Any]:
    """One stored answer in the seed's per-response shape. Answers stored before they kept their shape metrics get them
    from the same function, on the same ``Split``."""
    shape = {k: sample[k] for k in _SHAPE_KEYS} if all(k in sample for k in _SHAPE_KEYS) else \
        shape_metrics(Split.of(sample["text"]))
    time_s, tokens = sample.get("time_s", 0.0), sample["tokens"]
    return {"response": sample["text"], **shape, "answer": sample["extracted"], "correct": sample["correct"],
            "generation_time_s": time_s, "new_tokens": tokens,
            "tokens_per_s": tokens / time_s if time_s > 0 else 0.0}  # a zero duration has no meaningful rate


_SHAPE_KEYS = tuple(shape_metrics(Split.of("")))


def accuracy_test(benchmarks: dict[str, dict[str, Any]], records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The paired test of SFT − base behind ``accuracy``: one suite's own test, or the same test over every suite's
    problems pooled (the suites share their settings)."""
    if not benchmarks:
        return {}
    if len(benchmarks) == 1:
        block = next(iter(benchmarks.values()))
        return {"test": block["test"], "p_value": block["p_value"], "significant": block["significant"],
                "delta_ci": block["delta_ci"]}
    settings = next(iter(benchmarks.values()))["settings"]
    n = settings["num_samples"]
    recs = [r for rs in records.values() for r in rs]
    base, sft = (_fractions(recs, m) for m in MODELS)
    test = paired_test(base, sft, n, seed=settings["seed"])
    return {"test": test.test, "p_value": round(test.p_value, 6), "significant": test.significant,
            "delta_ci": [round(x, 4) for x in test.ci]}


def _fractions(records: Sequence[dict[str, Any]], model: str) -> list[float]:
    return [sum(s["correct"] for s in r[model]) / len(r[model]) for r in records]
