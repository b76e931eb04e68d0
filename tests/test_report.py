"""Per-model summaries, deltas, the seed's results block and report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distill.evaluation.summary import deltas, format_summary_block, summarize
from distill.report import escape_cell, render_report_md, write_report_md


def _row(correct: bool | None, quality: float, reasoning: bool, think: bool, steps: int,
         time_s: float, tps: float, tokens: int) -> dict[str, Any]:
    return {
        "correct": correct, "quality_score": quality, "has_reasoning": reasoning, "has_think_tags": think,
        "num_steps": steps, "generation_time_s": time_s, "tokens_per_s": tps, "new_tokens": tokens,
    }


ROWS = [
    _row(True, 0.81, True, True, 3, 2.0, 20.0, 40),
    _row(False, 0.07, False, False, 1, 1.0, 10.0, 10),
    _row(None, 0.5, True, True, 5, 3.0, 30.0, 90),
]


def test_summarize() -> None:
    assert summarize(ROWS) == {
        "n": 3,
        "accuracy": 0.5,
        "n_correct": 1,
        "n_with_ground_truth": 2,
        "avg_quality_score": 0.46,
        "pct_with_reasoning": 66.6667,
        "pct_with_think_tags": 66.6667,
        "avg_steps": 3.0,
        "avg_generation_time_s": 2.0,
        "avg_tokens_per_s": 20.0,
        "avg_new_tokens": 46.6667,
    }


def test_summarize_without_ground_truth_or_rows() -> None:
    s = summarize([_row(None, 0.2, False, False, 1, 1.0, 5.0, 5)])
    assert (s["accuracy"], s["n_correct"], s["n_with_ground_truth"]) == (None, 0, 0)
    empty = summarize([])
    assert empty["n"] == 0
    assert empty["accuracy"] is None and empty["avg_quality_score"] is None and empty["pct_with_reasoning"] is None


def test_deltas() -> None:
    base = summarize(ROWS[1:2])  # the wrong bare answer
    sft = summarize(ROWS[0:1])  # the right think-tag answer
    d = deltas(base, sft)
    assert "n" not in d
    assert d["accuracy"] == 1.0
    assert d["avg_quality_score"] == 0.74
    assert d["pct_with_think_tags"] == 100.0
    assert d["avg_steps"] == 2.0
    assert d["avg_generation_time_s"] == 1.0
    assert d["avg_new_tokens"] == 30.0
    assert deltas({**base, "accuracy": None}, sft)["accuracy"] is None


BASE_SUMMARY = {
    "n": 16, "accuracy": 0.125, "n_correct": 2, "n_with_ground_truth": 16, "avg_quality_score": 0.26,
    "pct_with_reasoning": 90.0, "pct_with_think_tags": 0.0, "avg_steps": 1.2, "avg_generation_time_s": 4.13,
    "avg_tokens_per_s": 25.0, "avg_new_tokens": 100.0,
}
SFT_SUMMARY = {
    **BASE_SUMMARY, "accuracy": 0.1875, "n_correct": 3, "avg_quality_score": 0.28, "pct_with_reasoning": 100.0,
    "pct_with_think_tags": 100.0, "avg_steps": 4.3, "avg_generation_time_s": 5.33,
}

EXPECTED_BLOCK = """\
EVALUATION RESULTS SUMMARY
============================================================

📊 Base Model (Qwen/Qwen2.5-0.5B):
   - Accuracy: 12.5% (2/16)
   - Avg Reasoning Quality Score: 0.260
   - % with Reasoning: 90.0%
   - % with Think Tags: 0.0%
   - Avg Steps: 1.2

📊 SFT Model (./outputs/run/final_model):
   - Accuracy: 18.8% (3/16)
   - Avg Reasoning Quality Score: 0.280
   - % with Reasoning: 100.0%
   - % with Think Tags: 100.0%
   - Avg Steps: 4.3

📈 Improvement (SFT vs Base):
   - Accuracy Delta: +6.2 pp
   - Reasoning Quality Delta: +0.020
   - Reasoning % Delta: +10.0 pp
   - Think Tags % Delta: +100.0 pp
   - Avg Steps Delta: +3.1"""


def test_format_summary_block_matches_seed_style() -> None:
    d = deltas(BASE_SUMMARY, SFT_SUMMARY)
    block = format_summary_block(
        {"base": BASE_SUMMARY, "sft": SFT_SUMMARY}, d, "Qwen/Qwen2.5-0.5B", "./outputs/run/final_model"
    )
    assert block == EXPECTED_BLOCK


BENCHMARK = {
    "n_problems": 20, "num_samples": 1, "grader": "math", "source": "hub:openai/gsm8k",
    "base": {"pass@1": 0.0, "pass@1_ci": [0.0, 0.1611], "pass@k": {"1": 0.0}, "cons@n": 0.0, "think_closed_pct": 0.0,
             "truncated_pct": 5.0, "looping_pct": 0.0, "tokens_p50": 120.0, "tokens_p95": 250.0,
             "think_tokens_mean": 0.0, "answer_tokens_mean": 121.0},
    "sft": {"pass@1": 0.1, "pass@1_ci": [0.0279, 0.3010], "pass@k": {"1": 0.1}, "cons@n": 0.1, "think_closed_pct": 100.0,
            "truncated_pct": 0.0, "looping_pct": 0.0, "tokens_p50": 60.0, "tokens_p95": 90.0,
            "think_tokens_mean": 40.0, "answer_tokens_mean": 20.0},
    "delta_pass@1": 0.1, "delta_ci": [0.0, 0.25], "p_value": 0.5, "test": "mcnemar_exact", "significant": False,
}


def test_summary_block_leads_with_benchmarks_and_says_when_a_delta_is_noise() -> None:
    d = deltas(BASE_SUMMARY, SFT_SUMMARY)
    test = {"test": "mcnemar_exact", "p_value": 0.5, "significant": False}
    block = format_summary_block({"base": BASE_SUMMARY, "sft": SFT_SUMMARY}, d, "b", "s", {"gsm8k": BENCHMARK}, test)
    assert block.splitlines()[3] == "🎯 Benchmarks (pass@1 with 95% interval; SFT − base with a paired test over problems):"
    assert block.splitlines()[4] == ("   - gsm8k (20 problems x 1): base 0.0% [0.0, 16.1] → SFT 10.0% [2.8, 30.1]; "
                                     "Δ +10.0 pp, p = 0.5 (exact McNemar): NOT significant (could be noise)")
    assert "   - Accuracy Delta: +6.2 pp, p = 0.5 (exact McNemar): NOT significant (could be noise)" in block
    md = render_report_md({**_results(), "benchmarks": {"gsm8k": BENCHMARK}, "accuracy_test": test}, "b", "s")
    assert "### gsm8k" in md and "| pass@1 | 0.0% [0.0, 16.1] | 10.0% [2.8, 30.1] | +10.0 pp, p = 0.5" in md
    assert "| % looping | 0.0% | 0.0% | +0.0 pp |" in md


def test_format_summary_block_without_ground_truth() -> None:
    base = {**BASE_SUMMARY, "accuracy": None, "n_correct": 0, "n_with_ground_truth": 0}
    sft = {**SFT_SUMMARY, "accuracy": None, "n_correct": 0, "n_with_ground_truth": 0}
    block = format_summary_block({"base": base, "sft": sft}, deltas(base, sft), "b", "s")
    assert block.count("   - Accuracy: n/a (no ground truth)") == 2
    assert "   - Accuracy Delta: n/a (no ground truth)" in block


def _results() -> dict[str, Any]:
    return {
        "summary": {"base": BASE_SUMMARY, "sft": SFT_SUMMARY},
        "deltas": deltas(BASE_SUMMARY, SFT_SUMMARY),
        "samples": [
            {
                "prompt": "Is a|b true?\nAnswer yes or no.",
                "ground_truth": "7",
                "base": {"response": "It is 8", "answer": "8", "correct": False, "quality_score": 0.07,
                         "num_steps": 1, "has_think_tags": False, "new_tokens": 3, "generation_time_s": 0.5},
                "sft": {"response": "<think>\n3 + 4 = 7\n```\ncode\n```\n</think>\n7", "answer": "7",
                        "correct": True, "quality_score": 0.82, "num_steps": 3, "has_think_tags": True,
                        "new_tokens": 20, "generation_time_s": 1.25},
            },
            {
                "prompt": "Write a haiku.",
                "ground_truth": None,
                "base": {"response": "leaves", "answer": None, "correct": None},
                "sft": {"response": "<think>ok</think>leaves fall", "answer": None, "correct": None},
            },
        ],
        "by_set": {"general": {"base": BASE_SUMMARY, "sft": SFT_SUMMARY}},
        "training": {"train_loss": 1.25, "epochs": 1, "lora": {"r": 16}},
        "data_report": {"n_train": 100, "source": "builtin:reasoning"},
    }


def test_report_contains_summary_tables_and_responses() -> None:
    md = render_report_md(_results(), "Qwen/Qwen2.5-0.5B", "./outputs/run/final_model")
    assert md.startswith("# Reasoning distillation: evaluation report\n")
    assert EXPECTED_BLOCK in md
    assert "| Metric | Base | SFT | Δ |" in md
    assert "| Accuracy | 12.5% (2/16) | 18.8% (3/16) | +6.2 pp |" in md
    assert "| Reasoning quality score (shape heuristic) | 0.260 | 0.280 | +0.020 |" in md
    assert "Avg generation time" not in md  # the share of a shared batch: the same for both, not a comparison
    assert "| # | Prompt | Ground truth | Base answer | SFT answer |" in md
    # The pipe is escaped and the newline flattened, so the row keeps its 5 columns.
    assert "| 1 | Is a\\|b true? Answer yes or no. | 7 | 8 ✗ | 7 ✓ |" in md
    assert "| 2 | Write a haiku. | — | (none) | (none) |" in md
    assert "| Answer | 8 ✗ | 7 ✓ |" in md
    assert "| Generation time | 0.50s | 1.25s |" in md
    assert "| general | 16 | 12.5% (2/16) | 18.8% (3/16) | 0.260 | 0.280 |" in md
    assert "| train_loss | 1.25 |" in md
    assert '| lora | {"r": 16} |' in md
    assert "| source | builtin:reasoning |" in md
    assert md.count("<details><summary>Base response</summary>") == 2
    assert md.count("<details><summary>SFT response</summary>") == 2
    # A response holding ``` gets a longer fence, so it cannot close the block early.
    assert "````text\n<think>\n3 + 4 = 7\n```\ncode\n```\n</think>\n7\n````" in md


def test_report_without_optional_sections() -> None:
    results = _results()
    del results["training"], results["data_report"], results["deltas"], results["by_set"]
    md = render_report_md(results, "b", "s")
    assert "## Training" not in md and "## Data" not in md and "## By prompt set" not in md
    assert "| Accuracy | 12.5% (2/16) | 18.8% (3/16) | +6.2 pp |" in md  # deltas recomputed


@pytest.mark.parametrize(
    ("value", "cell"),
    [("a|b", "a\\|b"), ("a\nb\r\nc", "a<br>b<br>c"), ("<think>", "&lt;think&gt;"), (None, "—"), (3, "3")],
)
def test_escape_cell(value: Any, cell: str) -> None:
    assert escape_cell(value) == cell


def test_write_report_md_creates_folder(tmp_path: Path) -> None:
    path = tmp_path / "run" / "report.md"
    write_report_md(path, _results(), "b", "s")
    assert path.read_text(encoding="utf-8") == render_report_md(_results(), "b", "s")
