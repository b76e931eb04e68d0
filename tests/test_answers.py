"""Answer extraction, number normalization and answer matching."""

from __future__ import annotations

import pytest

from distill.evaluation.answers import answers_match, extract_answer, normalize_number


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # \boxed{} wins, the last one, with nested braces intact.
        (r"Maybe \boxed{3}, no: the result is \boxed{\frac{3}{4}}", "0.75"),
        (r"So $\boxed{x^{2}+1}$.", "x^{2}+1"),
        (r"\boxed{18 \text{ apples}}", "18"),
        (r"\boxed{x = 5}", "5"),
        (r"The answer is 12. \boxed{13}", "13"),
        (r"\boxed{\boxed{5}}", "5"),
        (r"cut off: \boxed{ 4 \boxed{5}", "5"),  # the outer box never closes
        (r"cut off: 2 + 2 = \boxed{4", "4"),  # no closed box: last number
        # GSM8K style.
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
        ("#### 1,234", "1234"),
        ("#### 7\nThe answer is 9.", "7"),
        # Answer phrases; the trailing period is not part of the answer.
        ("The answer is 7.", "7"),
        ("the answer is: 7", "7"),
        ("So the final answer is $18.00.", "18"),
        ("Final Answer: 42", "42"),
        ("**Final Answer:** **42**", "42"),
        ("The answer is approximately 42 apples, because 40 + 2 = 42.", "42"),
        ("The answer is 3 + 4 = 7.", "7"),
        ("The answer is B.", "B"),
        ("The answer is 3/4.", "0.75"),
        ("The answer is -$5.", "-5"),
        ("The answer is 7. Later I note 99 more.", "7"),
        # Last-number fallback.
        ("She pays $18.00 in total", "18"),
        ("In all 1,234 people came", "1234"),
        ("3 + 4 = 7, then 7 * 2 = 14", "14"),
        ("It drops to -3 degrees", "-3"),
        ("half is 1/2", "0.5"),
        ("10-3 leaves 7", "7"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_answer(response: str, expected: str | None) -> None:
    assert extract_answer(response) == expected


def test_text_after_think_is_preferred_over_reasoning() -> None:
    response = "<think>3 + 4 = 7, and 100 - 1 = 99. The answer is 99?</think>\nIt is 7 apples."
    assert extract_answer(response) == "7"


def test_boxed_in_reasoning_loses_to_plain_number_after_think() -> None:
    assert extract_answer(r"<think>\boxed{5}</think> 6") == "6"


def test_falls_back_to_reasoning_when_nothing_follows_think() -> None:
    assert extract_answer("<think>2 + 2 = 4</think>\n") == "4"
    assert extract_answer("<think>so it is 9</think> done.") == "9"


def test_unclosed_think_uses_whole_text() -> None:
    assert extract_answer("<think>1 + 1 = 2, then 2 * 5 = 10") == "10"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18", 18.0),
        ("18.0", 18.0),
        ("$18", 18.0),
        ("$18.00", 18.0),
        (r"\$18", 18.0),
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("18%", 18.0),
        ("-3", -3.0),
        ("+3", 3.0),
        (".5", 0.5),
        ("3/4", 0.75),
        ("-3/4", -0.75),
        (r"\frac{3}{4}", 0.75),
        (r"\dfrac{1}{4}", 0.25),
        (r"-\frac{1}{2}", -0.5),
        ("2 3/4", 2.75),
        (r"2\frac{1}{2}", 2.5),
        ("-2 1/2", -2.5),
        ("18 apples", 18.0),
        ("18 apples.", 18.0),
        ("5 km/h", 5.0),
        (r"18\text{ cm}", 18.0),
        (" 42 ", 42.0),
    ],
)
def test_normalize_number(text: str, expected: float) -> None:
    assert normalize_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["abc", "", "x = 5", "3 + x", "1/0", "1,23", "3 apples and 4 pears", None])
def test_normalize_number_rejects_non_numbers(text: str | None) -> None:
    assert normalize_number(text) is None


@pytest.mark.parametrize(
    ("predicted", "truth"),
    [
        ("18", "18.0"),
        ("18", "$18"),
        ("18.0", "$18.00"),
        ("1234", "1,234"),
        ("0.75", "3/4"),
        ("0.3333333333", r"\frac{1}{3}"),
        ("18", "18 apples"),
        ("B", " b "),
        ("x^2 + 1", "$x^2+1$."),
    ],
)
def test_answers_match(predicted: str, truth: str) -> None:
    assert answers_match(predicted, truth)


@pytest.mark.parametrize(
    ("predicted", "truth"),
    [("18", "19"), ("18", "18.01"), ("0.75", "3/5"), ("B", "C"), (None, "18"), ("18", None), (None, None)],
)
def test_answers_do_not_match(predicted: str | None, truth: str | None) -> None:
    assert not answers_match(predicted, truth)


def test_large_numbers_match_with_relative_tolerance() -> None:
    assert answers_match("1000000000", "1000000000.0001")
    assert not answers_match("1000000000", "1000001000")


def test_many_unclosed_boxes_stay_fast() -> None:
    # A degenerate, looping generation must not make extraction quadratic.
    assert extract_answer("\\boxed{" * 20000 + " 3") == "3"
