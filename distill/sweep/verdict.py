"""Which point wins: the best point against each other one on the same problems (the paired tests of
``distill.evaluation.stats``), Holm-corrected across those comparisons. A winner is named only when it beats every
other point after the correction; otherwise the points it cannot be told apart from are "tied with the best"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distill.evaluation.stats import paired_test


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    point: str  # compared against the best
    delta: float  # best − point, on the objective
    p_value: float
    p_holm: float
    worse: bool  # the best beats this point after the correction


@dataclass(frozen=True)
class Verdict:
    best: str | None
    winner: str | None  # the best, when it beats every other point after the correction
    tied: list[str]  # points the best cannot be told apart from
    comparisons: list[Comparison]
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"best": self.best, "winner": self.winner, "tied_with_best": self.tied, "text": self.text,
                "comparisons": [c.__dict__ for c in self.comparisons]}


def verdict(scores: dict[str, Sequence[float]], num_samples: int = 1, alpha: float = 0.05) -> Verdict:
    """``scores``: each point's per-problem score (pass@1 per problem) on the same problems in the same order."""
    if not scores:
        return Verdict(None, None, [], [], "no point finished: nothing to compare")
    lengths = {len(v) for v in scores.values()}
    if len(lengths) > 1:
        raise ValueError(f"points answered different numbers of problems: {sorted(lengths)}")
    means = {name: sum(v) / len(v) if v else 0.0 for name, v in scores.items()}
    best = max(means, key=lambda n: means[n])  # the first of equals, in the sweep's order
    others = [n for n in scores if n != best]
    tests = [paired_test(scores[n], scores[best], num_samples, alpha=alpha) for n in others]
    adjusted = holm([t.p_value for t in tests])
    comparisons = [Comparison(n, round(t.delta, 4), _sig(t.p_value), _sig(p), p < alpha and t.delta > 0)
                   for n, t, p in zip(others, tests, adjusted, strict=True)]
    tied = [c.point for c in comparisons if not c.worse]
    return Verdict(best, best if not tied else None, tied, comparisons, _text(best, means[best], tied, len(others)))


@dataclass(frozen=True)
class PairComparison:
    a: str
    b: str
    delta: float  # mean(b) − mean(a)
    p_value: float
    p_holm: float
    significant: bool  # after the correction

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pairwise(scores: dict[str, Sequence[float]], num_samples: int = 1, alpha: float = 0.05) -> list[PairComparison]:
    """Every pair of ``scores`` (per-problem, same problems in the same order) with its paired test, Holm-corrected
    across all the pairs."""
    names = list(scores)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    tests = [paired_test(scores[a], scores[b], num_samples, alpha=alpha) for a, b in pairs]
    adjusted = holm([t.p_value for t in tests])
    return [PairComparison(a, b, round(t.delta, 4), _sig(t.p_value), _sig(p), p < alpha)
            for (a, b), t, p in zip(pairs, tests, adjusted, strict=True)]


def _sig(p: float) -> float:
    return float(f"{p:.4g}")


def _text(best: str, mean: float, tied: list[str], n_others: int) -> str:
    if n_others == 0:
        return f"one point only ({best}, {100 * mean:.1f} %): nothing to compare"
    if not tied:
        return (f"winner: {best} ({100 * mean:.1f} %), better than each of the {n_others} other points "
                "(paired tests, Holm-corrected, p < 0.05)")
    if len(tied) == n_others:
        return (f"no winner: the best point, {best} ({100 * mean:.1f} %), cannot be told apart from any other "
                "(Holm-corrected paired tests); the differences are within noise")
    return f"no single winner: the best point, {best} ({100 * mean:.1f} %), is tied with the best: {', '.join(tied)}"
