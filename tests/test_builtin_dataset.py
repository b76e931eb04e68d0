import re
from collections import Counter

import pytest

from distill.data.builtin import SYSTEM_PROMPT, generate_problems, generate_rows, split_of
from distill.data.formats import normalize_row
from distill.data.sources import iter_rows, load_examples

# "a op b = c" with whole numbers: every step of a built-in trace carries its arithmetic this way.
ARITHMETIC = re.compile(r"(?<![\w.])(\d+) ([-+*/]) (\d+) = (\d+)(?![\w.]*\d)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
REPLY = re.compile(
    r"<\|begin_of_thought\|>\n\n(.+)\n\n<\|end_of_thought\|>\n\n"
    r"<\|begin_of_solution\|>\n\n(The answer is \d+\.)\n\n<\|end_of_solution\|>",
    re.DOTALL,
)


@pytest.fixture(scope="module")
def train_rows() -> list[dict]:
    return generate_rows(2000, seed=0, split="train")


@pytest.fixture(scope="module")
def eval_rows() -> list[dict]:
    return generate_rows(200, seed=0, split="eval")


def question(row: dict) -> str:
    return row["conversations"][0]["value"]


def test_rows_use_exactly_the_openthoughts_default_schema(train_rows):
    for row in train_rows:
        assert set(row) == {"system", "conversations"}
        assert row["system"] == SYSTEM_PROMPT
        user, assistant = row["conversations"]
        assert set(user) == set(assistant) == {"from", "value"}
        assert (user["from"], assistant["from"]) == ("user", "assistant")
        assert REPLY.fullmatch(assistant["value"]), assistant["value"]


def test_deterministic_for_seed_and_split(train_rows):
    assert generate_rows(2000, seed=0, split="train") == train_rows
    assert generate_rows(100, seed=0, split="train") == train_rows[:100]
    assert generate_rows(100, seed=1, split="train") != train_rows[:100]
    assert generate_rows(50, seed=0, split="test") == generate_rows(50, seed=0, split="eval")
    with pytest.raises(ValueError, match="unknown split"):
        generate_rows(1, split="dev2")


def test_train_and_eval_never_share_a_question(train_rows, eval_rows):
    train_q = [question(r) for r in train_rows]
    eval_q = [question(r) for r in eval_rows]
    assert len(set(train_q)) == 2000 and len(set(eval_q)) == 200
    assert not set(train_q) & set(eval_q)
    assert {split_of(q) for q in train_q} == {"train"} and {split_of(q) for q in eval_q} == {"eval"}
    # Other seeds draw other problems, but from the same side of the split.
    assert not {question(r) for r in generate_rows(500, seed=7, split="eval")} & set(train_q)


def test_variety_of_families_and_step_counts():
    problems = generate_problems(2000)
    families = Counter(p.family for p in problems)
    assert set(families) == {"items", "money", "units", "linear", "sequence", "percent"}
    assert min(families.values()) > 100
    steps = Counter(len(p.steps) for p in problems)
    assert set(steps) == {2, 3, 4}
    assert steps[3] > 200 and steps[4] > 50
    assert all(0 <= p.answer < 1000 for p in problems)


def test_every_row_round_trips_with_verified_ground_truth(train_rows, eval_rows):
    problems = generate_problems(2000) + generate_problems(200, split="eval")
    for row, problem in zip(train_rows + eval_rows, problems, strict=True):
        ex = normalize_row(row)
        assert ex.prompt == problem.question
        assert ex.system == SYSTEM_PROMPT
        assert ex.answer == f"The answer is {problem.answer}."
        assert ex.ground_truth == str(problem.answer)
        lines = ex.reasoning.split("\n")
        assert len(lines) == len(problem.steps)
        statements = [m for line in lines for m in ARITHMETIC.findall(line)]
        assert statements, ex.reasoning
        for a, op, b, c in statements:
            assert OPS[op](int(a), int(b)) == int(c), f"{a} {op} {b} = {c} in {ex.reasoning!r}"
        assert int(statements[-1][3]) == problem.answer, ex.reasoning


def test_builtin_source():
    rows = list(iter_rows("builtin:reasoning", max_rows=5, split="eval"))
    assert rows == generate_rows(5, split="eval")
    examples, stats = load_examples("builtin:reasoning", 30)
    assert len(examples) == 30 and (stats.rows_read, stats.rows_kept, stats.skipped) == (30, 30, {})
    assert stats.domains == {"unknown": 30}
