"""Per-response metrics, with quality scores worked out by hand."""

from __future__ import annotations

import pytest

from distill.evaluation.grading import grade
from distill.evaluation.metrics import count_steps, length_factor
from distill.evaluation.metrics import response_metrics as _response_metrics
from distill.reasoning import Split


def response_metrics(response: str, generation_time_s: float, new_tokens: int, ground_truth: str | None) -> dict:
    """Metrics with the answer graded by the real math grader (None without a ground truth)."""
    g = grade(response, ground_truth, "math") if ground_truth and ground_truth.strip() else None
    return _response_metrics(Split.of(response), generation_time_s, new_tokens, g)

SFT_RESPONSE = (
    "<think>\n"
    "First, Tom has 3 apples.\n"
    "He buys 4 more, so 3 + 4 = 7.\n"
    "Then he doubles them: 7 * 2 = 14.\n"
    "</think>\n"
    "The answer is 14."
)

KEYS = [
    "has_think_tags", "think_closed", "has_reasoning", "num_steps", "reasoning_length", "quality_score",
    "answer", "correct", "generation_time_s", "new_tokens", "tokens_per_s",
]


def test_sft_style_response() -> None:
    m = response_metrics(SFT_RESPONSE, generation_time_s=2.0, new_tokens=40, ground_truth="14")
    assert list(m) == KEYS
    # 3 lines of reasoning, 5 + 10 + 9 = 24 whitespace-separated words.
    # structure 0.2 (closed tags) + 0.1 (answer after </think>) + 0.1 (reasoning) = 0.4
    # steps 0.3 * 3/5 = 0.18; length 0.3 * 24/30 = 0.24
    assert m == {
        "has_think_tags": True,
        "think_closed": True,
        "has_reasoning": True,
        "num_steps": 3,
        "reasoning_length": 24,
        "quality_score": 0.82,
        "answer": "14",
        "correct": True,
        "generation_time_s": 2.0,
        "new_tokens": 40,
        "tokens_per_s": 20.0,
    }


def test_bare_answer_response() -> None:
    m = response_metrics("14", generation_time_s=0.5, new_tokens=2, ground_truth="15")
    # no structure; steps 0.3 * 1/5 = 0.06; length 0.3 * 1/30 = 0.01
    assert m["has_think_tags"] is False
    assert m["think_closed"] is False  # no thought, so none closed (one meaning with diagnostics and the API)
    assert m["has_reasoning"] is False
    assert (m["num_steps"], m["reasoning_length"]) == (1, 1)
    assert m["quality_score"] == 0.07
    assert (m["answer"], m["correct"]) == ("14", False)
    assert m["tokens_per_s"] == 4.0


def test_truncated_rambling_response() -> None:
    line = " ".join(["so"] + ["x"] * 159)  # 160 words, no digits
    response = "<think>\n" + "\n".join([line] * 6)  # never closed
    m = response_metrics(response, generation_time_s=10.0, new_tokens=1000, ground_truth="5")
    # structure: 0.1 (reasoning) only; steps 0.3 * min(6, 5)/5 = 0.3
    # length: 960 words -> 1 - 0.5 * (960 - 400) / 1100 = 0.745454..., * 0.3 = 0.223636...
    assert (m["has_think_tags"], m["think_closed"], m["has_reasoning"]) == (False, False, True)
    assert (m["num_steps"], m["reasoning_length"]) == (6, 960)
    assert m["quality_score"] == round(0.1 + 0.3 + 0.3 * (1 - 0.5 * 560 / 1100), 4) == 0.6236
    assert (m["answer"], m["correct"]) == (None, False)


def test_no_ground_truth_gives_none_and_zero_time_gives_zero_rate() -> None:
    m = response_metrics("The answer is 3.", generation_time_s=0.0, new_tokens=5, ground_truth=None)
    assert m["correct"] is None
    assert m["tokens_per_s"] == 0.0
    assert response_metrics("3", 1.0, 1, ground_truth="  ")["correct"] is None


def test_cue_word_alone_counts_as_reasoning() -> None:
    m = response_metrics("So it is 4.", 1.0, 5, ground_truth="4")
    assert m["has_reasoning"] is True
    assert m["num_steps"] == 1
    assert m["correct"] is True
    # steps 0.06 + reasoning 0.1 + length 0.3 * 4/30 = 0.04
    assert m["quality_score"] == 0.2


def test_lone_closing_tag_splits_reasoning_from_answer() -> None:
    # The chat template already opened <think>, so the response only closes it.
    m = response_metrics("2 + 2 = 4\n4 * 3 = 12\n</think>\n12", 1.0, 10, ground_truth="12")
    assert (m["has_think_tags"], m["think_closed"]) == (True, True)  # a thought that </think> ended
    assert (m["num_steps"], m["reasoning_length"]) == (2, 10)
    assert m["answer"] == "12"
    # closed 0.2 + answer after </think> 0.1 + reasoning 0.1; steps 0.3 * 2/5 = 0.12; length 0.3 * 10/30 = 0.1
    assert m["quality_score"] == 0.62


@pytest.mark.parametrize(
    ("reasoning", "steps"),
    [
        ("", 0),
        ("\n  \n---\n", 0),
        ("one\ntwo\n\nthree", 3),
        ("1. Add: 3 + 4 = 7.\n2. Double: 7 * 2 = 14.", 2),
        ("First 3 + 4 = 7. Then 7 * 2 = 14. So we are done.", 2),
        ("We need a plan. 1. Add. 2. Double. 3. Report.", 3),
        ("Step 1: add. Step 2: double.", 2),
        ("- add\n- double\n* report", 3),
        ("The price is 3.50 dollars. It rose.", 1),
    ],
)
def test_count_steps(reasoning: str, steps: int) -> None:
    assert count_steps(reasoning) == steps


@pytest.mark.parametrize(
    ("response", "closed"),
    [
        ("", False),  # no thought
        ("plain 4", False),
        ("<think>a</think>", True),
        ("<think>a</think><think>b</think>", True),
        ("<think>a</think><think>b", True),  # the first </think> ends the thought; the rest is answer
        ("<think>a", False),
        ("a</think>", True),
    ],
)
def test_think_closed_is_splits_closed(response: str, closed: bool) -> None:
    m = response_metrics(response, 1.0, 1, ground_truth=None)
    assert m["think_closed"] is m["has_think_tags"] is closed


@pytest.mark.parametrize(
    ("words", "factor"),
    [(0, 0.0), (15, 0.5), (30, 1.0), (400, 1.0), (950, 0.75), (1500, 0.5), (5000, 0.5)],
)
def test_length_factor(words: int, factor: float) -> None:
    assert length_factor(words) == pytest.approx(factor)
