"""Graders: math-verify on the real MATH-500 answers, unit cases, choice and number graders, the thread path."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from math_verify import parse, verify

from distill.evaluation import grading
from distill.evaluation.grading import GRADERS, Grade, grade, grade_many

MATH500 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math500" / "test.jsonl"


def written_back(answer: str) -> str:
    return "<think>\nreasoning\n</think>\n\nThe final answer is $\\boxed{" + answer + "}$."


@pytest.fixture(scope="module")
def math500_answers() -> list[str]:
    if not MATH500.is_file():
        pytest.skip(f"MATH-500 copy not found at {MATH500} (it lives beside the project, not in it)")
    answers = [json.loads(line)["answer"] for line in MATH500.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(answers) == 500
    return answers


@pytest.fixture(scope="module")
def math500_right(math500_answers) -> list[Grade]:
    return grade_many([(written_back(a), a, "math") for a in math500_answers])


@pytest.fixture(scope="module")
def math500_swapped(math500_answers) -> list[Grade]:
    shifted = math500_answers[1:] + math500_answers[:1]
    return grade_many([(written_back(other), a, "math") for a, other in zip(math500_answers, shifted)])


def test_math500_reference_answers_are_graded_right(math500_answers, math500_right):
    wrong = [(a, g.extracted) for a, g in zip(math500_answers, math500_right) if not g.correct]
    assert wrong == []
    assert all(g.key is not None for g in math500_right)


def test_math500_dfrac_answers_are_graded_right(math500_answers):
    grades = grade_many([(written_back(a.replace("\\frac", "\\dfrac")), a, "math") for a in math500_answers])
    assert [a for a, g in zip(math500_answers, grades) if not g.correct] == []


def test_math500_agrees_with_math_verify_called_directly(math500_answers, math500_right, math500_swapped):
    shifted = math500_answers[1:] + math500_answers[:1]
    for grades, responses in ((math500_right, math500_answers), (math500_swapped, shifted)):
        direct = [verify(parse("$" + a + "$"), parse(written_back(r))) for a, r in zip(math500_answers, responses)]
        disagree = [a for a, d, g in zip(math500_answers, direct, grades) if d != g.correct]
        assert disagree == []


def test_math500_swapped_answers_are_graded_wrong(math500_swapped):
    # A few neighbours really have equal answers (e.g. 5 and x=5).
    assert sum(g.correct for g in math500_swapped) <= 5


@pytest.mark.parametrize(
    "gold",
    ["\\text{Evelyn}", "\\left( 3, \\frac{\\pi}{2} \\right)", ".0000672", "5x - 7y + 11z + 4 = 0", "x=5", "11,\\! 111",
     "90^\\circ", "\\frac{14}{3}"],
)
def test_math_answers_written_back_are_right(gold):
    assert grade(written_back(gold), gold, "math").correct


def test_math_boxed_wins_over_other_numbers():
    g = grade("First 7, then 9. So \\boxed{42}, not 13.", "42", "math")
    assert (g.extracted, g.correct, g.key) == ("42", True, "42")


def test_math_reads_only_after_the_last_think_close():
    g = grade("<think>maybe \\boxed{42}? </think> wait </think>\n\nIt is \\boxed{41}.", "42", "math")
    assert (g.extracted, g.correct) == ("41", False)
    assert grade("<think>the answer is 42</think>\n\nThe answer is 42.", "42", "math").correct


def test_math_unclosed_thought_has_no_answer():
    assert grade("<think>so it is \\boxed{42}", "42", "math") == Grade(None, "42", False, None)


def test_math_no_tags_is_all_answer_and_nothing_found_is_none():
    assert grade("The answer is \\boxed{42}.", "42", "math").correct
    assert grade("I do not know.", "42", "math") == Grade(None, "42", False, None)


def test_math_hashes_line_counts_like_boxed():
    g = grade("<think>3 + 39</think>\n#### 42\nHope that helps with step 3.", "42", "math")
    assert (g.extracted, g.correct) == ("42", True)


def test_math_gsm8k_style_gold_uses_the_number_after_hashes():
    gold = "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 1,080"
    assert grade("\\boxed{1080}", gold, "math").correct
    assert grade("\\boxed{1,080}", gold, "math").correct
    assert not grade("\\boxed{24}", gold, "math").correct


def test_math_equation_and_value():
    # math-verify treats x=5 and 5 as the same answer, in both directions.
    assert grade("\\boxed{x=5}", "5", "math").correct
    assert grade("\\boxed{5}", "x=5", "math").correct


def test_math_equal_answers_get_equal_keys():
    keys = {grade(r, "0.5", "math").key for r in ("\\boxed{\\frac{1}{2}}", "\\boxed{\\dfrac12}", "\\boxed{\\frac{2}{4}}")}
    assert keys == {"1/2"}


def test_math_timeout_grades_one_item_wrong_not_the_batch(monkeypatch):
    monkeypatch.setattr(grading, "TIMEOUT_S", 1)
    grades = grade_many([("\\boxed{9^{9^{9^{9}}}}", "5", "math"), ("\\boxed{5}", "5", "math")])
    assert [g.correct for g in grades] == [False, True]


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("Think...\n\nAnswer: C", "C"),
        ("**Answer:** $B$", "B"),
        ("answer: d", "D"),
        ("The answer is (A). Earlier I said Answer: B, but", "B"),
        ("So the correct answer is (b).", "B"),
        ("Options (A) and (C) fail, so \\boxed{D}", "D"),
        ("\\boxed{\\text{(A)}}", "A"),
        ("A is wrong. (B) is wrong. The right one is (C) here.", "C"),
        ("I would pick\nB\n", "B"),
        ("<think>Answer: A</think>\nAnswer: C", "C"),
    ],
)
def test_choice_extraction(response, letter):
    g = grade(response, letter, "choice")
    assert (g.extracted, g.key, g.correct) == (letter, letter, True)


def test_choice_wrong_missing_and_unclosed():
    assert grade("Answer: B", "C", "choice") == Grade("B", "C", False, "B")
    assert grade("I am not sure what the answer is.", "C", "choice").extracted is None
    assert grade("<think>Answer: C", "C", "choice").extracted is None
    assert grade("Answer: c", "(C)", "choice").correct


def test_number_grader():
    assert grade("<think>7</think> So she has 18 apples.", "#### 18", "number") == Grade("18", "#### 18", True, "18")
    assert grade("The answer is $1,234.00.", "1234", "number").correct
    assert grade("\\boxed{\\frac{3}{4}}", "0.75", "number").key == "0.75"
    assert not grade("<think>18</think> no idea", "18", "number").correct
    assert grade("<think>18", "18", "number") == Grade(None, "18", False, None)


def test_unknown_grader_names_the_known_ones():
    with pytest.raises(ValueError, match="'exact'.*math, number, choice"):
        grade("42", "42", "exact")
    assert GRADERS == ("math", "number", "choice")


def _in_thread(fn):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(timeout=120)
    return out


def test_grade_many_from_a_thread_matches_the_main_thread():
    items = [
        (written_back("\\frac{14}{3}"), "\\frac{14}{3}", "math"),
        ("<think>unfinished \\boxed{3}", "3", "math"),
        ("#### 7", "7", "math"),
        ("\\boxed{4}", "5", "math"),
        ("Answer: B", "B", "choice"),
        ("so 18 apples", "18", "number"),
    ]
    expected = grade_many(items)
    assert [g.correct for g in expected] == [True, False, True, False, True, True]
    assert _in_thread(lambda: grade_many(items)) == [expected]
    assert _in_thread(lambda: grade(*items[0])) == [expected[0]]  # the child process is reused


def test_math_verify_with_timeouts_fails_in_a_thread():
    """Why the thread path exists: math-verify's signal.alarm timeouts refuse to run off the main thread."""

    def direct():
        try:
            return parse("$42$", parsing_timeout=5)
        except ValueError as err:
            return err

    [result] = _in_thread(direct)
    assert isinstance(result, ValueError) and "thread" in str(result)
