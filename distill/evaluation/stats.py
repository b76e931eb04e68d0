"""Statistics for comparing a base and a fine-tuned (SFT) model on the same problems.

Each problem is answered ``n`` times by each model. This module holds the unbiased
pass@k estimator of Chen et al. 2021, "Evaluating Large Language Models Trained on
Code" (the Codex paper), majority-vote correctness (cons@n), confidence intervals for
an accuracy (Wilson score, percentile bootstrap over problems) and paired tests of the
SFT-minus-base difference (exact McNemar for one sample per problem, a paired
bootstrap otherwise).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

# Caps one resampling batch at ~1M indices so large problem sets do not exhaust memory.
_BATCH_ELEMENTS = 1 << 20


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of ``k`` samples drawn from ``n`` (``c`` correct) is correct."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k must be <= n ({n}), got {k}")
    if c < 0 or c > n:
        raise ValueError(f"c must be in [0, n={n}], got {c}")
    if n - c < k:
        return 1.0
    # The product form avoids the huge binomial coefficients of 1 - C(n-c,k)/C(n,k).
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_table(correct_counts: Sequence[int], n: int) -> dict[int, float]:
    """Mean pass@k over problems for every k in 1..n."""
    if len(correct_counts) == 0:
        return {}
    return {
        k: float(np.mean([pass_at_k(n, c, k) for c in correct_counts])) for k in range(1, n + 1)
    }


def majority_correct(keys: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """cons@n for one problem: is the most common answer (ties: seen first) correct?"""
    if len(keys) != len(correct):
        raise ValueError(f"keys and correct differ in length: {len(keys)} != {len(correct)}")
    counts = Counter(key for key in keys if key is not None)
    if not counts:
        return False
    # Counter keeps insertion order and max() returns the first maximum: ties go to the
    # key seen first.
    winner = max(counts, key=counts.__getitem__)
    return bool(correct[keys.index(winner)])


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return (0.0, 1.0)
    if successes < 0 or successes > trials:
        raise ValueError(f"successes must be in [0, trials={trials}], got {successes}")
    ci = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def _bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``values``."""
    size = len(values)
    batch = max(1, _BATCH_ELEMENTS // size)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, batch):
        stop = min(start + batch, n_resamples)
        idx = rng.integers(0, size, size=(stop - start, size))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return (float(low), float(high))


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over problems (reproducible with ``seed``)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (0.0, 1.0)
    # Resampled means of equal values can drift by rounding; report the value itself.
    if np.all(arr == arr[0]):
        return (float(arr[0]), float(arr[0]))
    means = _bootstrap_means(arr, n_resamples, np.random.default_rng(seed))
    return _percentile_interval(means, confidence)


def accuracy_interval(
    per_problem: Sequence[float], num_samples: int, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Interval for pass@1: Wilson with one sample per problem, else a bootstrap over problems."""
    if num_samples == 1:
        # With one sample each problem's pass@1 is 0 or 1, so the total is a binomial count.
        return wilson_interval(int(round(sum(per_problem))), len(per_problem), confidence)
    return bootstrap_interval(per_problem, confidence, seed=seed)


@dataclass(frozen=True)
class PairedTest:
    """Outcome of a paired SFT-vs-base test; ``delta`` is mean(sft) - mean(base)."""

    test: str  # "mcnemar_exact" or "paired_bootstrap"
    delta: float
    ci: tuple[float, float]  # (1 - alpha) interval of the delta
    p_value: float
    significant: bool  # p_value < alpha
    base_only: int | None = None  # McNemar discordant counts (None for the bootstrap)
    sft_only: int | None = None


def _paired_arrays(base: Sequence[float], sft: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if len(base) != len(sft):
        raise ValueError(f"base and sft differ in length: {len(base)} != {len(sft)}")
    return np.asarray(base, dtype=float), np.asarray(sft, dtype=float)


def mcnemar_exact(base: Sequence[bool], sft: Sequence[bool], alpha: float = 0.05) -> PairedTest:
    """Exact two-sided McNemar test on per-problem correctness.

    The interval of the delta is a paired percentile bootstrap (2000 resamples, seed 0),
    so it matches the bootstrap used when there are several samples per problem.
    """
    b_arr, s_arr = _paired_arrays(base, sft)
    b_arr, s_arr = b_arr.astype(bool), s_arr.astype(bool)
    if b_arr.size == 0:
        return PairedTest("mcnemar_exact", 0.0, (0.0, 0.0), 1.0, False, 0, 0)
    base_only = int(np.sum(b_arr & ~s_arr))
    sft_only = int(np.sum(~b_arr & s_arr))
    discordant = base_only + sft_only
    # Only discordant pairs carry information; under H0 each is a fair coin flip.
    p = 1.0 if discordant == 0 else float(binomtest(sft_only, discordant, 0.5).pvalue)
    diffs = s_arr.astype(float) - b_arr.astype(float)
    ci = bootstrap_interval(diffs, 1.0 - alpha, n_resamples=2000, seed=0)
    delta = (sft_only - base_only) / b_arr.size
    return PairedTest("mcnemar_exact", delta, ci, p, p < alpha, base_only, sft_only)


def paired_bootstrap(
    base: Sequence[float],
    sft: Sequence[float],
    n_resamples: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedTest:
    """Paired bootstrap over problems of mean(sft) - mean(base), with a shifted-null p-value."""
    b_arr, s_arr = _paired_arrays(base, sft)
    if b_arr.size == 0:
        return PairedTest("paired_bootstrap", 0.0, (0.0, 0.0), 1.0, False)
    # Resampling per-problem differences uses the same indices for both models.
    diffs = s_arr - b_arr
    delta = float(s_arr.mean() - b_arr.mean())
    deltas = _bootstrap_means(diffs, n_resamples, np.random.default_rng(seed))
    ci = _percentile_interval(deltas, 1.0 - alpha)
    if delta == 0.0:
        p = 1.0
    else:
        # Centring the bootstrap distribution on zero approximates the null; the +1s keep
        # the p-value away from an impossible 0.
        extreme = int(np.sum(np.abs(deltas - delta) >= abs(delta)))
        p = (1 + extreme) / (n_resamples + 1)
    return PairedTest("paired_bootstrap", delta, ci, p, p < alpha)


def paired_test(
    base: Sequence[float],
    sft: Sequence[float],
    num_samples: int,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedTest:
    """McNemar with one sample per problem (values are 0/1), else a paired bootstrap."""
    if num_samples == 1:
        return mcnemar_exact([v >= 0.5 for v in base], [v >= 0.5 for v in sft], alpha)
    return paired_bootstrap(base, sft, seed=seed, alpha=alpha)
