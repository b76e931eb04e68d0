"""Metric definitions and how they are shown: the one table the CLI summary, ``report.md`` and the
API (hence the dashboard) use, the per-model aggregates of per-response metrics, and the seed's
plain-text results block, now headed by each suite's pass@1 with its interval and paired test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

_DECIMALS = 4


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str = ""  # "%" for fractions and percentages, "s" for seconds
    scale: float = 1.0  # value x scale is shown (fractions x 100)
    decimals: int = 1
    delta_unit: str = ""  # "pp" (percentage points) for percentages
    better: int = 1  # +1 higher is better, -1 lower is better, 0 neither
    shown: bool = True  # in the tables that compare base and SFT

    def format(self, value: float | None, signed: bool = False) -> str:
        if value is None:
            return "n/a"
        unit = (" " + self.delta_unit) if signed and self.delta_unit else self.unit
        return f"{value * self.scale:{'+' if signed else ''}.{self.decimals}f}{unit}"


# Display order. pass@1 (with its interval) is the headline; the quality score is the seed's shape heuristic.
METRICS: tuple[Metric, ...] = (
    Metric("pass@1", "pass@1", "%", 100.0, 1, "pp"),
    Metric("cons@n", "cons@n (majority vote)", "%", 100.0, 1, "pp"),
    Metric("accuracy", "Accuracy", "%", 100.0, 1, "pp"),
    Metric("n_correct", "Correct answers", decimals=0),
    Metric("n_with_ground_truth", "Graded answers", decimals=0, better=0),
    Metric("think_closed_pct", "% closed think tags", "%", 1.0, 1, "pp"),
    Metric("truncated_pct", "% stopped by the token limit", "%", 1.0, 1, "pp", better=-1),
    Metric("looping_pct", "% looping", "%", 1.0, 1, "pp", better=-1),
    Metric("forced_pct", "% thoughts closed by the thinking budget", "%", 1.0, 1, "pp", better=0),
    Metric("tokens_p50", "Tokens per answer, p50", decimals=0, better=0),
    Metric("tokens_p95", "Tokens per answer, p95", decimals=0, better=0),
    Metric("think_tokens_mean", "Mean thinking tokens", better=0),
    Metric("answer_tokens_mean", "Mean answer tokens", better=0),
    Metric("avg_quality_score", "Reasoning quality score (shape heuristic)", decimals=3),
    Metric("pct_with_reasoning", "% with reasoning", "%", 1.0, 1, "pp"),
    Metric("pct_with_think_tags", "% with think tags", "%", 1.0, 1, "pp"),
    Metric("avg_steps", "Avg steps", better=0),
    # In-process, base and SFT answer in one batch and each row gets its token share of the batch's time, so these
    # two are the same for both models: kept in the results, not shown as a comparison.
    Metric("avg_generation_time_s", "Avg generation time", "s", 1.0, 2, better=0, shown=False),
    Metric("avg_tokens_per_s", "Avg tokens/s", better=0, shown=False),
    Metric("avg_new_tokens", "Avg new tokens", better=0),
)
METRIC = {m.key: m for m in METRICS}
# The older summary keys that get an SFT − base delta.
DELTA_KEYS = ("accuracy", "n_correct", "n_with_ground_truth", "avg_quality_score", "pct_with_reasoning",
              "pct_with_think_tags", "avg_steps", "avg_generation_time_s", "avg_tokens_per_s", "avg_new_tokens")
NO_GROUND_TRUTH = "n/a (no ground truth)"


def metric_catalog() -> list[dict[str, Any]]:
    """The table as data, for the API and the dashboard."""
    return [asdict(m) for m in METRICS]


def format_value(key: str, value: float | None, signed: bool = False) -> str:
    """A value as the results block, report and dashboard show it ("12.5%", "+2.0 pp", "0.721")."""
    return METRIC[key].format(value, signed)


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return round(sum(values) / len(values), _DECIMALS) if values else None


def _pct(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    return round(100.0 * sum(bool(r.get(key)) for r in rows) / len(rows), _DECIMALS) if rows else None


def summarize(per_response: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregates for one model. Averages are None for an empty list; ``accuracy`` is the
    fraction correct among rows whose ``correct`` is not None (None when there are none)."""
    graded = [r for r in per_response if r.get("correct") is not None]
    n_correct = sum(bool(r["correct"]) for r in graded)
    return {
        "n": len(per_response),
        "accuracy": round(n_correct / len(graded), _DECIMALS) if graded else None,
        "n_correct": n_correct,
        "n_with_ground_truth": len(graded),
        "avg_quality_score": _mean(per_response, "quality_score"),
        "pct_with_reasoning": _pct(per_response, "has_reasoning"),
        "pct_with_think_tags": _pct(per_response, "has_think_tags"),
        "avg_steps": _mean(per_response, "num_steps"),
        "avg_generation_time_s": _mean(per_response, "generation_time_s"),
        "avg_tokens_per_s": _mean(per_response, "tokens_per_s"),
        "avg_new_tokens": _mean(per_response, "new_tokens"),
    }


def deltas(base: dict[str, Any], sft: dict[str, Any]) -> dict[str, float | None]:
    """SFT − base for each key of :data:`DELTA_KEYS`; None where either side is None."""
    out: dict[str, float | None] = {}
    for key in DELTA_KEYS:
        b, s = base.get(key), sft.get(key)
        out[key] = None if b is None or s is None else round(s - b, _DECIMALS)
    return out


def format_accuracy(summary: dict[str, Any]) -> str:
    """``12.5% (2/16)``, or ``n/a (no ground truth)``."""
    accuracy = summary.get("accuracy")
    if accuracy is None:
        return NO_GROUND_TRUTH
    graded = summary.get("n_with_ground_truth", 0)
    correct = summary.get("n_correct", round(accuracy * graded))
    return f"{format_value('accuracy', accuracy)} ({correct}/{graded})"


def format_pass1(side: dict[str, Any]) -> str:
    """``12.5% [3.5, 36.0]``: pass@1 with its 95 % interval."""
    lo, hi = side.get("pass@1_ci") or (None, None)
    interval = f" [{lo * 100:.1f}, {hi * 100:.1f}]" if lo is not None else ""
    return f"{format_value('pass@1', side.get('pass@1'))}{interval}"


def significance_note(block: dict[str, Any]) -> str:
    """What the paired test says, in words: ``p = 0.031 (exact McNemar): significant``."""
    p = block.get("p_value")
    if p is None:
        return "no test"
    test = {"mcnemar_exact": "exact McNemar", "paired_bootstrap": "paired bootstrap"}.get(block.get("test"), "")
    verdict = "significant" if block.get("significant") else "NOT significant (could be noise)"
    return f"p = {p:.3g}{f' ({test})' if test else ''}: {verdict}"


def format_delta(block: dict[str, Any]) -> str:
    """``+12.5 pp, p = 0.25 (exact McNemar): NOT significant (could be noise)``."""
    return f"{format_value('pass@1', block.get('delta_pass@1'), signed=True)}, {significance_note(block)}"


def benchmark_lines(benchmarks: dict[str, Any]) -> list[str]:
    lines = ["🎯 Benchmarks (pass@1 with 95% interval; SFT − base with a paired test over problems):"]
    for name, b in benchmarks.items():
        lines.append(f"   - {name} ({b['n_problems']} problems x {b['num_samples']}): base {format_pass1(b['base'])}"
                     f" → SFT {format_pass1(b['sft'])}; Δ {format_delta(b)}")
    return lines


def _model_lines(title: str, s: dict[str, Any]) -> list[str]:
    return [
        f"📊 {title}:",
        f"   - Accuracy: {format_accuracy(s)}",
        f"   - Avg Reasoning Quality Score: {format_value('avg_quality_score', s.get('avg_quality_score'))}",
        f"   - % with Reasoning: {format_value('pct_with_reasoning', s.get('pct_with_reasoning'))}",
        f"   - % with Think Tags: {format_value('pct_with_think_tags', s.get('pct_with_think_tags'))}",
        f"   - Avg Steps: {format_value('avg_steps', s.get('avg_steps'))}",
    ]


def format_summary_block(summary: dict[str, dict[str, Any]], deltas: dict[str, Any], base_name: str, sft_name: str,
                         benchmarks: dict[str, Any] | None = None, accuracy_test: dict[str, Any] | None = None) -> str:
    """The seed's "EVALUATION RESULTS SUMMARY" block (no trailing newline), headed by the benchmarks."""
    d = deltas
    accuracy_delta = NO_GROUND_TRUTH if d.get("accuracy") is None else format_value("accuracy", d["accuracy"], True)
    if accuracy_test and d.get("accuracy") is not None:
        accuracy_delta += f", {significance_note(accuracy_test)}"
    lines = ["EVALUATION RESULTS SUMMARY", "=" * 60, ""]
    if benchmarks:
        lines += [*benchmark_lines(benchmarks), ""]
    lines += [
        *_model_lines(f"Base Model ({base_name})", summary["base"]),
        "",
        *_model_lines(f"SFT Model ({sft_name})", summary["sft"]),
        "",
        "📈 Improvement (SFT vs Base):",
        f"   - Accuracy Delta: {accuracy_delta}",
        f"   - Reasoning Quality Delta: {format_value('avg_quality_score', d.get('avg_quality_score'), True)}",
        f"   - Reasoning % Delta: {format_value('pct_with_reasoning', d.get('pct_with_reasoning'), True)}",
        f"   - Think Tags % Delta: {format_value('pct_with_think_tags', d.get('pct_with_think_tags'), True)}",
        f"   - Avg Steps Delta: {format_value('avg_steps', d.get('avg_steps'), True)}",
    ]
    return "\n".join(lines)
