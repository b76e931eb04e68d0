"""Reasoning diagnostics: loops, lengths, closed thoughts; and a suite's summary from hand-built records."""

from __future__ import annotations

import pytest

from distill.evaluation.benchmark import BenchmarkSettings, summarize_suite
from distill.evaluation.diagnostics import is_looping, sample_diagnostics, summarize_diagnostics
from distill.evaluation.suites import Problem, Suite
from distill.generation.engine import Generation
from distill.reasoning import Split

GROWING_LOOP = "<think>\nShe makes 32 x $2 = $64.\n" + "".join(
    f"Then {2 ** i} x $2 = ${2 ** (i + 1)}.\n" for i in range(6, 14))


@pytest.mark.parametrize("text, looping", [
    (GROWING_LOOP, True),  # the numbers grow, the passage repeats: the failure seen after SFT at lr 1e-3
    (GROWING_LOOP[:-9], True),  # cut mid-copy by the token limit
    ("Joe made 1 + 1 = 2\n" * 2, False),  # twice is not a loop
    ("<think>\nStep 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.\n</think>\n\nThe final answer is $\\boxed{14}$.", False),
    ("!" * 100, True),
    ("The answer is 5. " * 3, False),  # 3 copies but only 51 characters
    ("", False),
])
def test_is_looping(text, looping):
    assert is_looping(text) is looping


def test_sample_and_summary_diagnostics():
    gens = [
        Generation(text="<think>\na\n</think>\n\nThe answer is 4.", new_tokens=10, finish_reason="stop", time_s=0.5,
                   think_tokens=6),
        Generation(text=GROWING_LOOP, new_tokens=30, finish_reason="length", time_s=1.0, think_tokens=30),
        Generation(text="It is 4.", new_tokens=4, finish_reason="stop", time_s=0.2, think_tokens=0),
        Generation(text="<think>\nb\n</think>\n\n4", new_tokens=20, finish_reason="stop", time_s=0.4, think_tokens=12,
                   forced=True),
    ]
    samples = [sample_diagnostics(g, Split.of(g.text)) for g in gens]
    assert [s["think_closed"] for s in samples] == [True, False, False, True]
    assert [s["truncated"] for s in samples] == [False, True, False, False]
    out = summarize_diagnostics(samples)
    # tokens 4, 10, 20, 30: p50 = 15, p95 = 20 + 0.85 * 10 = 28.5 (linear interpolation)
    assert out["tokens_p50"] == 15.0 and out["tokens_p95"] == pytest.approx(28.5)
    assert (out["truncated_pct"], out["think_closed_pct"], out["looping_pct"], out["forced_pct"]) == (25.0, 50.0, 25.0, 25.0)
    # thinking 6 + 30 + 0 + 12 = 48 of 64 tokens: means 12.0 and 4.0
    assert (out["think_tokens_mean"], out["answer_tokens_mean"]) == (12.0, 4.0)


def _sample(correct: bool, key: str | None) -> dict:
    return {"text": "", "extracted": key, "key": key, "correct": correct, "tokens": 10, "time_s": 0.1, "think_tokens": 0,
            "finish_reason": "stop", "truncated": False, "think_closed": False, "looping": False, "forced": False}


def test_suite_summary_from_records_against_hand_computed_values():
    """3 problems x 2 samples. Base right on 1 of 6 answers, SFT on 4 of 6."""
    suite = Suite("s", "math", "test", [Problem(str(i), f"p{i}", "4") for i in range(3)])
    records = [
        {"id": "0", "base": [_sample(True, "4"), _sample(False, "5")], "sft": [_sample(True, "4"), _sample(True, "4")]},
        {"id": "1", "base": [_sample(False, "5"), _sample(False, "6")], "sft": [_sample(True, "4"), _sample(False, "5")]},
        {"id": "2", "base": [_sample(False, None), _sample(False, None)], "sft": [_sample(False, "7"), _sample(True, "4")]},
    ]
    out = summarize_suite(suite, records, BenchmarkSettings(num_samples=2, temperature=0.6, top_p=0.95))
    assert (out["n_problems"], out["num_samples"], out["test"]) == (3, 2, "paired_bootstrap")
    assert out["base"]["pass@1"] == round(1 / 6, 4) and out["sft"]["pass@1"] == round(4 / 6, 4)
    # pass@2 per problem, 1 - C(n-c, 2) / C(2, 2): base 1, 0, 0 -> 1/3; SFT 1, 1, 1 -> 1
    assert (out["base"]["pass@k"]["2"], out["sft"]["pass@k"]["2"]) == (round(1 / 3, 4), 1.0)
    # majority vote, ties to the first seen: base 4 (right), 5 (wrong), none; SFT 4, 4, 7 (wrong)
    assert (out["base"]["cons@n"], out["sft"]["cons@n"]) == (round(1 / 3, 4), round(2 / 3, 4))
    assert out["delta_pass@1"] == 0.5 and 0 < out["p_value"] <= 1
    lo, hi = out["sft"]["pass@1_ci"]
    assert lo <= 4 / 6 <= hi
