"""Per-model aggregates of :func:`~distill.evaluation.metrics.response_metrics` rows, their
SFT − base deltas, and the seed's plain-text results block."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# The numeric summary keys that get a delta (everything but ``n``), in display order.
DELTA_KEYS = (
    "accuracy",
    "n_correct",
    "n_with_ground_truth",
    "avg_quality_score",
    "pct_with_reasoning",
    "pct_with_think_tags",
    "avg_steps",
    "avg_generation_time_s",
    "avg_tokens_per_s",
    "avg_new_tokens",
)
_DECIMALS = 4


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


# --- formatting -----------------------------------------------------------------------

NO_GROUND_TRUTH = "n/a (no ground truth)"


def _fmt(spec: str, unit: str = "", scale: float = 1.0) -> Callable[[float | None, bool], str]:
    def fmt(value: float | None, signed: bool = False) -> str:
        if value is None:
            return "n/a"
        return f"{value * scale:{'+' if signed else ''}{spec}}{unit}"

    return fmt


# How each displayed key is written; accuracy is a fraction shown as a percentage.
FORMATTERS: dict[str, Callable[[float | None, bool], str]] = {
    "accuracy": _fmt(".1f", "%", 100.0),
    "avg_quality_score": _fmt(".3f"),
    "pct_with_reasoning": _fmt(".1f", "%"),
    "pct_with_think_tags": _fmt(".1f", "%"),
    "avg_steps": _fmt(".1f"),
    "avg_generation_time_s": _fmt(".2f", "s"),
    "avg_tokens_per_s": _fmt(".1f"),
    "avg_new_tokens": _fmt(".1f"),
    "n_correct": _fmt(".0f"),
    "n_with_ground_truth": _fmt(".0f"),
}


def format_value(key: str, value: float | None, signed: bool = False) -> str:
    """A summary or delta value as the results block and report show it ("12.5%", "+0.020")."""
    return FORMATTERS[key](value, signed)


def format_accuracy(summary: dict[str, Any]) -> str:
    """``12.5% (2/16)``, or ``n/a (no ground truth)``."""
    accuracy = summary.get("accuracy")
    if accuracy is None:
        return NO_GROUND_TRUTH
    graded = summary.get("n_with_ground_truth", 0)
    # n_correct is an extra key; a summary made without it still has enough to recover it.
    correct = summary.get("n_correct", round(accuracy * graded))
    return f"{format_value('accuracy', accuracy)} ({correct}/{graded})"


def _model_lines(title: str, s: dict[str, Any]) -> list[str]:
    return [
        f"📊 {title}:",
        f"   - Accuracy: {format_accuracy(s)}",
        f"   - Avg Reasoning Quality Score: {format_value('avg_quality_score', s.get('avg_quality_score'))}",
        f"   - % with Reasoning: {format_value('pct_with_reasoning', s.get('pct_with_reasoning'))}",
        f"   - % with Think Tags: {format_value('pct_with_think_tags', s.get('pct_with_think_tags'))}",
        f"   - Avg Steps: {format_value('avg_steps', s.get('avg_steps'))}",
        f"   - Avg Generation Time: {format_value('avg_generation_time_s', s.get('avg_generation_time_s'))}",
    ]


def format_summary_block(
    summary: dict[str, dict[str, Any]], deltas: dict[str, Any], base_name: str, sft_name: str
) -> str:
    """The seed's "EVALUATION RESULTS SUMMARY" block (no trailing newline)."""
    d = deltas
    accuracy_delta = (
        NO_GROUND_TRUTH if d.get("accuracy") is None else format_value("accuracy", d["accuracy"], signed=True)
    )
    time_delta = format_value("avg_generation_time_s", d.get("avg_generation_time_s"), signed=True)
    lines = [
        "EVALUATION RESULTS SUMMARY",
        "=" * 60,
        "",
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
        f"   - Avg Generation Time Delta: {time_delta}",
    ]
    return "\n".join(lines)
