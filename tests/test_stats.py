"""Base-vs-SFT statistics, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from distill.evaluation.stats import (
    PairedTest,
    accuracy_interval,
    bootstrap_interval,
    majority_correct,
    mcnemar_exact,
    pass_at_k,
    pass_at_k_table,
    paired_bootstrap,
    paired_test,
    wilson_interval,
)

Z95 = 1.959963984540054


def wilson_by_hand(s: int, n: int, z: float = Z95) -> tuple[float, float]:
    # (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    p = s / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return center - half, center + half


# --- pass@k -----------------------------------------------------------------------------


def test_pass_at_k_hand_values() -> None:
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # c/n = 2/5
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(4, 0, 2) == 0.0  # no correct sample: product of ones
    assert pass_at_k(3, 2, 2) == 1.0  # n - c = 1 < k = 2: every 2-subset holds a correct one
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - 35 / 210)  # 1 - C(7,4)/C(10,4)


def test_pass_at_k_matches_binomial_formula() -> None:
    for n in range(1, 9):
        for c in range(0, n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


def test_pass_at_k_large_n_is_stable() -> None:
    # 1 - C(800,100)/C(1000,100) would overflow a float; product form must stay in [0, 1].
    value = pass_at_k(1000, 200, 100)
    assert 0.999999 < value <= 1.0


@pytest.mark.parametrize(
    ("n", "c", "k", "name"),
    [(5, 2, 0, "k"), (5, 2, 6, "k"), (5, -1, 1, "c"), (5, 6, 1, "c")],
)
def test_pass_at_k_rejects_bad_arguments(n: int, c: int, k: int, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        pass_at_k(n, c, k)


def test_pass_at_k_table() -> None:
    table = pass_at_k_table([0, 2, 4], 4)
    assert list(table) == [1, 2, 3, 4]
    # c=0 contributes 0 and c=4 contributes 1 for every k; c=2 of n=4 gives
    # k=1: 2/4 = 0.5; k=2: 1 - C(2,2)/C(4,2) = 1 - 1/6 = 5/6; k=3, k=4: n-c=2 < k -> 1.
    assert table[1] == pytest.approx((0 + 0.5 + 1) / 3)  # 0.5
    assert table[2] == pytest.approx((0 + 5 / 6 + 1) / 3)  # 11/18
    assert table[3] == pytest.approx(2 / 3)
    assert table[4] == pytest.approx(2 / 3)
    assert pass_at_k_table([], 4) == {}


# --- cons@n -----------------------------------------------------------------------------


def test_majority_correct_plain_majority() -> None:
    assert majority_correct(["7", "3", "7"], [True, False, True]) is True
    assert majority_correct(["3", "7", "3"], [False, True, False]) is False


def test_majority_correct_tie_goes_to_first_seen() -> None:
    # "5" and "9" both appear twice; "5" was seen first.
    assert majority_correct(["5", "9", "9", "5"], [False, True, True, False]) is False
    assert majority_correct(["9", "5", "5", "9"], [True, False, False, True]) is True


def test_majority_correct_none_never_wins() -> None:
    # Three unanswered samples outnumber the single "4", which still wins.
    assert majority_correct([None, None, "4", None], [False, False, True, False]) is True
    assert majority_correct([None, None], [False, False]) is False
    assert majority_correct([], []) is False


def test_majority_correct_uses_first_sample_with_key() -> None:
    # Same key graded differently (should not happen, but the first one decides).
    assert majority_correct(["2", "2"], [True, False]) is True
    assert majority_correct(["2", "2"], [False, True]) is False


def test_majority_correct_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 != 1"):
        majority_correct(["1", "2"], [True])


# --- intervals --------------------------------------------------------------------------


def test_wilson_interval_matches_formula() -> None:
    low, high = wilson_interval(2, 20)
    exp_low, exp_high = wilson_by_hand(2, 20)  # ≈ (0.02787, 0.30103)
    assert low == pytest.approx(exp_low, abs=1e-9)
    assert high == pytest.approx(exp_high, abs=1e-9)
    assert low == pytest.approx(0.027866, abs=1e-6)
    assert high == pytest.approx(0.301034, abs=1e-6)


def test_wilson_interval_zero_successes() -> None:
    low, high = wilson_interval(0, 20)
    # p = 0: center = half = (z²/40) / (1 + z²/20), so the upper bound is twice that.
    assert low == pytest.approx(0.0, abs=1e-12)
    assert high == pytest.approx(2 * (Z95**2 / 40) / (1 + Z95**2 / 20), abs=1e-9)
    assert high == pytest.approx(0.1611, abs=1e-4)


def test_wilson_interval_other_confidence_and_degenerate() -> None:
    z90 = 1.6448536269514722
    low, high = wilson_interval(5, 10, confidence=0.90)
    exp_low, exp_high = wilson_by_hand(5, 10, z90)
    assert (low, high) == (pytest.approx(exp_low, abs=1e-9), pytest.approx(exp_high, abs=1e-9))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes must be"):
        wilson_interval(21, 20)


def test_bootstrap_interval_degenerate_cases() -> None:
    assert bootstrap_interval([]) == (0.0, 1.0)
    assert bootstrap_interval([0.1] * 7) == (0.1, 0.1)
    assert bootstrap_interval([1.0]) == (1.0, 1.0)


def test_bootstrap_interval_reproducible_and_sane() -> None:
    values = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0]
    first = bootstrap_interval(values, seed=3)
    assert first == bootstrap_interval(values, seed=3)
    low, high = first
    mean = sum(values) / len(values)  # 0.5
    assert 0.0 <= low < mean < high <= 1.0
    # The bootstrap mean of 0/1 values lies on the grid of k/len: a percentile of those.
    low01, high01 = bootstrap_interval([0, 1] * 5)
    assert low01 * 10 == pytest.approx(round(low01 * 10))
    assert 0.1 <= low01 < 0.5 < high01 <= 0.9


def test_accuracy_interval_dispatch() -> None:
    per_problem = [1.0, 0.0] + [0.0] * 18  # 1/20 with one sample each
    assert accuracy_interval(per_problem, num_samples=1) == wilson_interval(1, 20)
    multi = [0.25, 0.5, 0.75, 1.0, 0.0]
    assert accuracy_interval(multi, num_samples=4, seed=5) == bootstrap_interval(multi, seed=5)
    assert accuracy_interval([], num_samples=1) == (0.0, 1.0)


# --- paired tests -----------------------------------------------------------------------


def _pairs(both: int, base_only: int, sft_only: int, neither: int) -> tuple[list[bool], list[bool]]:
    base = [True] * both + [True] * base_only + [False] * sft_only + [False] * neither
    sft = [True] * both + [False] * base_only + [True] * sft_only + [False] * neither
    return base, sft


def test_mcnemar_base_0_sft_2_of_20() -> None:
    base, sft = _pairs(0, 0, 2, 18)
    result = mcnemar_exact(base, sft)
    assert (result.base_only, result.sft_only) == (0, 2)
    assert result.p_value == pytest.approx(0.5)  # 2 * 0.5**2
    assert result.significant is False
    assert result.delta == pytest.approx(0.1)  # (2 - 0) / 20
    assert result.test == "mcnemar_exact"
    low, high = result.ci
    assert low <= 0.1 <= high


def test_mcnemar_significant_and_mixed() -> None:
    strong = mcnemar_exact(*_pairs(4, 0, 6, 10))
    assert strong.p_value == pytest.approx(2 * 0.5**6)  # 0.03125
    assert strong.significant is True
    assert strong.delta == pytest.approx(6 / 20)

    mixed = mcnemar_exact(*_pairs(4, 1, 5, 10))
    # 2 * (C(6,0) + C(6,1)) / 2**6 = 2 * 7 / 64
    assert mixed.p_value == pytest.approx(0.21875)
    assert mixed.significant is False
    assert mixed.delta == pytest.approx((5 - 1) / 20)
    assert (mixed.base_only, mixed.sft_only) == (1, 5)


def test_mcnemar_no_discordant_pairs_and_errors() -> None:
    result = mcnemar_exact(*_pairs(3, 0, 0, 2))
    assert result.p_value == 1.0
    assert result.delta == 0.0
    assert result.ci == (0.0, 0.0)
    with pytest.raises(ValueError, match="3 != 2"):
        mcnemar_exact([True, False, True], [True, False])


def test_paired_bootstrap_identical_inputs() -> None:
    values = [0.0, 0.5, 1.0, 0.25]
    result = paired_bootstrap(values, values, n_resamples=500)
    assert result.p_value == 1.0
    assert result.delta == 0.0
    assert result.ci == (0.0, 0.0)
    assert result.significant is False
    assert result.base_only is None and result.sft_only is None


def test_paired_bootstrap_clear_difference() -> None:
    b = 2000
    result = paired_bootstrap([0.0] * 30, [1.0] * 30, n_resamples=b)
    assert result.delta == 1.0
    assert result.ci == (1.0, 1.0)
    # No resample shifted to the null reaches |delta|: p = 1 / (B + 1).
    assert result.p_value == pytest.approx(1 / (b + 1))
    assert result.p_value <= 2 / (b + 1)
    assert result.significant is True
    assert result.test == "paired_bootstrap"
    assert result.base_only is None and result.sft_only is None


def test_paired_bootstrap_is_paired() -> None:
    # sft = base + 0.1 on every problem: every paired resample gives exactly +0.1, however
    # spread out the problems are, whereas an unpaired test would see mostly noise.
    base = [0.0, 0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6]
    sft = [v + 0.1 for v in base]
    result = paired_bootstrap(base, sft, n_resamples=1000)
    assert result.delta == pytest.approx(0.1)
    assert result.ci == (pytest.approx(0.1), pytest.approx(0.1))
    assert result.p_value == pytest.approx(1 / 1001)


def test_paired_bootstrap_reproducible() -> None:
    base = [0.0, 0.25, 0.5, 0.5, 0.75, 0.0, 1.0, 0.25]
    sft = [0.25, 0.25, 0.75, 0.5, 0.5, 0.5, 1.0, 0.75]
    first = paired_bootstrap(base, sft, n_resamples=2000, seed=7)
    assert first == paired_bootstrap(base, sft, n_resamples=2000, seed=7)
    other = paired_bootstrap(base, sft, n_resamples=2000, seed=8)
    assert other.delta == first.delta == pytest.approx(0.15625)  # (4.5 - 3.25) / 8
    assert 0.0 < first.p_value < 1.0
    low, high = first.ci
    assert low < first.delta < high


def test_paired_bootstrap_length_mismatch() -> None:
    with pytest.raises(ValueError, match="1 != 2"):
        paired_bootstrap([0.5], [0.5, 0.5])


def test_paired_test_dispatch() -> None:
    base, sft = _pairs(4, 0, 6, 10)
    as_floats = paired_test([float(v) for v in base], [float(v) for v in sft], num_samples=1)
    assert as_floats == mcnemar_exact(base, sft)
    assert isinstance(as_floats, PairedTest)

    b = [0.0, 0.25, 0.5, 0.75]
    s = [0.5, 0.25, 0.75, 1.0]
    multi = paired_test(b, s, num_samples=4, seed=2)
    assert multi == paired_bootstrap(b, s, seed=2)
    assert multi.test == "paired_bootstrap"
