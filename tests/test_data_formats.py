import json
from pathlib import Path

import pytest

from distill.data.formats import final_answer_from_solution, normalize_row, to_target_text
from distill.data.schema import BadRow, ReasoningExample

OPENTHOUGHTS_SYSTEM = (
    "Your role as an assistant involves thoroughly exploring questions through a systematic long thinking "
    "process before providing the final precise and accurate solutions."
)

GSM8K_FILE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gsm8k" / "train.jsonl"


def openthoughts_row(reply: str, question: str = "What is $2^{10} - 1000$?") -> dict:
    return {
        "system": OPENTHOUGHTS_SYSTEM,
        "conversations": [{"from": "user", "value": question}, {"from": "assistant", "value": reply}],
    }


OT_REPLY = (
    "<|begin_of_thought|>\n\nOkay, so I need to compute 2^10 - 1000.\n\n2^10 is 1024, and 1024 - 1000 = 24."
    "\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\nSince $2^{10} = 1024$, the result is "
    "$1024 - 1000 = \\boxed{24}$.\n\n<|end_of_solution|>"
)


def reason_of(row: dict) -> str:
    with pytest.raises(BadRow) as info:
        normalize_row(row)
    return info.value.reason


# --- OpenThoughts-114k default config ---------------------------------------------------------


def test_openthoughts_default_row():
    ex = normalize_row(openthoughts_row(OT_REPLY))
    assert ex.prompt == "What is $2^{10} - 1000$?"
    assert ex.reasoning == "Okay, so I need to compute 2^10 - 1000.\n\n2^10 is 1024, and 1024 - 1000 = 24."
    assert ex.answer == "Since $2^{10} = 1024$, the result is $1024 - 1000 = \\boxed{24}$."
    assert ex.system == OPENTHOUGHTS_SYSTEM
    assert ex.ground_truth == "24"
    assert ex.domain is None


def test_openthoughts_without_solution_markers_takes_text_after_thought():
    ex = normalize_row(openthoughts_row("<|begin_of_thought|>\nthink\n<|end_of_thought|>\n\nThe answer is 5."))
    assert (ex.reasoning, ex.answer, ex.ground_truth) == ("think", "The answer is 5.", "5")


@pytest.mark.parametrize(
    "reply",
    [
        "<|begin_of_thought|>\n\nthinking that never ends",
        "thinking\n<|end_of_thought|>\n\nanswer",
        "<|begin_of_thought|>a<|end_of_thought|><|begin_of_solution|>\n\n42",
        "<|begin_of_thought|>a<|end_of_thought|>b<|end_of_solution|>",
        "<|end_of_thought|>a<|begin_of_thought|><|begin_of_solution|>b<|end_of_solution|>",
        "<|begin_of_thought|>a<|end_of_thought|><|begin_of_thought|>b<|end_of_thought|>c",
    ],
)
def test_unbalanced_markers(reply):
    assert reason_of(openthoughts_row(reply)) == "unbalanced_thought_markers"


def test_openthoughts_wrong_types_and_missing_turns():
    assert reason_of({"system": "s", "conversations": "hello"}) == "wrong_type"
    assert reason_of({"conversations": [{"from": "user", "value": 3}]}) == "wrong_type"
    assert reason_of({"conversations": ["hello"]}) == "wrong_type"
    assert reason_of({"conversations": [{"from": "user", "value": "hi"}]}) == "missing_field"
    assert reason_of({"conversations": [{"from": "user"}]}) == "missing_field"
    assert reason_of({"system": 5, "conversations": []}) == "wrong_type"


def test_empty_prompt_and_answer():
    assert reason_of(openthoughts_row(OT_REPLY, question="   ")) == "empty_prompt"
    empty_solution = "<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>\n\n<|end_of_solution|>"
    assert reason_of(openthoughts_row(empty_solution)) == "empty_answer"
    empty_thought = "<|begin_of_thought|>\n\n<|end_of_thought|><|begin_of_solution|>7<|end_of_solution|>"
    assert reason_of(openthoughts_row(empty_thought)) == "empty_reasoning"


# --- OpenThoughts metadata config -------------------------------------------------------------


def metadata_row(**changes) -> dict:
    row = {
        "problem": "Find the sum of the roots of $x^2 - 5x + 6 = 0$.",
        "deepseek_reasoning": "The roots are 2 and 3 since (x-2)(x-3) = x^2 - 5x + 6. Their sum is 5.",
        "deepseek_solution": "Factoring gives $(x-2)(x-3)=0$, so the roots sum to $\\boxed{5}$.",
        "ground_truth_solution": "By Vieta's formulas the sum of the roots is $\\boxed{5}$.",
        "domain": "math",
        "source": "numina_math",
        "test_cases": None,
        "starter_code": None,
    }
    row.update(changes)
    return row


def test_metadata_row():
    ex = normalize_row(metadata_row())
    assert ex.prompt == "Find the sum of the roots of $x^2 - 5x + 6 = 0$."
    assert ex.reasoning.startswith("The roots are 2 and 3")
    assert ex.answer.endswith("$\\boxed{5}$.")
    assert (ex.ground_truth, ex.domain, ex.system) == ("5", "math", None)


def test_metadata_ground_truth_rules():
    assert normalize_row(metadata_row(ground_truth_solution="  -7 ")).ground_truth == "-7"
    nested = "so $x = \\boxed{\\frac{1}{2}}$ and not \\boxed{3}... wait, finally \\boxed{\\frac{3}{4}}"
    assert normalize_row(metadata_row(ground_truth_solution=nested)).ground_truth == "\\frac{3}{4}"
    long_code = "def solve():\n    n = int(input())\n    print(sum(range(n)))\n\nsolve()\n"
    code_row = metadata_row(
        domain="code", ground_truth_solution=long_code, deepseek_solution="```python\nprint(1)\n```"
    )
    ex = normalize_row(code_row)
    assert ex.ground_truth is None and ex.domain == "code"
    # A long reference without a boxed answer falls back to the model's own solution.
    long_prose = "We argue by cases on the parity of n, which eventually shows the claim holds."
    assert normalize_row(metadata_row(ground_truth_solution=long_prose)).ground_truth == "5"
    assert normalize_row(metadata_row(ground_truth_solution=None)).ground_truth == "5"


def test_metadata_bad_rows():
    assert reason_of({k: v for k, v in metadata_row().items() if k != "problem"}) == "missing_field"
    assert reason_of(metadata_row(deepseek_reasoning=["not", "text"])) == "wrong_type"
    assert reason_of(metadata_row(deepseek_solution=" ")) == "empty_answer"
    assert reason_of(metadata_row(problem="")) == "empty_prompt"
    assert reason_of(metadata_row(domain=3)) == "wrong_type"


def test_metadata_reasoning_with_stray_think_tags():
    ex = normalize_row(metadata_row(deepseek_reasoning="<think>\nroots 2 and 3\n</think>"))
    assert ex.reasoning == "roots 2 and 3"


# --- prompt/response and messages ---------------------------------------------------------------


def test_prompt_response_with_think_tags():
    ex = normalize_row({"prompt": "What is 6 * 7?", "response": "<think>\n6 * 7 = 42\n</think>\n\nThe answer is 42."})
    assert (ex.prompt, ex.reasoning, ex.answer, ex.ground_truth) == (
        "What is 6 * 7?",
        "6 * 7 = 42",
        "The answer is 42.",
        "42",
    )


def test_prompt_response_with_openthoughts_markers_and_missing_open_tag():
    ex = normalize_row({"prompt": "q", "response": OT_REPLY})
    assert ex.ground_truth == "24"
    # R1-style output where the template already opened <think>.
    ex = normalize_row({"prompt": "q", "response": "2 + 2 = 4\n</think>\nThe answer is 4."})
    assert (ex.reasoning, ex.answer) == ("2 + 2 = 4", "The answer is 4.")


def test_prompt_response_bad_rows():
    assert reason_of({"prompt": "q", "response": "just an answer"}) == "no_reasoning"
    assert reason_of({"prompt": "q", "response": "<think>never closed"}) == "unbalanced_thought_markers"
    assert reason_of({"prompt": "q", "response": "<think>a</think><think>b</think>c"}) == "unbalanced_thought_markers"
    assert reason_of({"prompt": "q", "response": "<think>a</think>"}) == "empty_answer"
    assert reason_of({"response": "<think>a</think>b"}) == "missing_field"
    assert reason_of({"prompt": None, "response": "<think>a</think>b"}) == "missing_field"
    assert reason_of({"prompt": 1, "response": "<think>a</think>b"}) == "wrong_type"


def test_messages_row():
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 10 - 3?"},
            {"role": "assistant", "content": "<think>10 - 3 = 7</think>The answer is $\\boxed{7}$."},
            {"role": "user", "content": "Thanks!"},
        ]
    }
    ex = normalize_row(row)
    assert ex == ReasoningExample(
        prompt="What is 10 - 3?",
        reasoning="10 - 3 = 7",
        answer="The answer is $\\boxed{7}$.",
        system="Be brief.",
        ground_truth="7",
    )


def test_messages_bad_rows():
    assert reason_of({"messages": {"role": "user"}}) == "wrong_type"
    assert reason_of({"messages": [{"role": "user", "content": [{"type": "text"}]}]}) == "wrong_type"
    assert reason_of({"messages": [{"role": "assistant", "content": "<think>a</think>b"}]}) == "missing_field"
    assert reason_of({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}) == (
        "no_reasoning"
    )


# --- GSM8K --------------------------------------------------------------------------------------

GSM8K_ROW = {
    "question": (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?"
    ),
    "answer": (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    ),
}


def test_gsm8k_row():
    ex = normalize_row(GSM8K_ROW)
    assert ex.prompt == GSM8K_ROW["question"]
    assert ex.reasoning == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May."
    )
    assert (ex.answer, ex.ground_truth) == ("The final answer is $\\boxed{72}$.", "72")


def test_gsm8k_commas_and_bad_rows():
    ex = normalize_row({"question": "q", "answer": "10 * 100 = <<10*100=1000>>1000\n#### 1,000"})
    assert (ex.reasoning, ex.answer, ex.ground_truth) == ("10 * 100 = 1000", "The final answer is $\\boxed{1000}$.", "1000")
    assert reason_of({"question": "q", "answer": "no final line"}) == "missing_final_answer"
    assert reason_of({"question": "q", "answer": "step\n####  "}) == "empty_answer"
    assert reason_of({"question": "q", "answer": "#### 5"}) == "empty_reasoning"
    assert reason_of({"question": "", "answer": "a\n#### 5"}) == "empty_prompt"
    assert reason_of({"question": "q", "answer": 5}) == "wrong_type"


def test_real_gsm8k_file_normalizes_with_numeric_ground_truth():
    if not GSM8K_FILE.exists():
        pytest.skip(f"GSM8K sample data not present at {GSM8K_FILE}")
    with GSM8K_FILE.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for _, line in zip(range(200), lines, strict=False)]
    assert len(rows) == 200
    for row in rows:
        ex = normalize_row(row)
        float(ex.ground_truth)  # raises if not numeric
        assert "<<" not in ex.reasoning and "####" not in ex.reasoning
        assert ex.answer == f"The final answer is $\\boxed{{{ex.ground_truth}}}$."
    assert normalize_row(rows[0]).ground_truth == "72"


# --- shared behaviour ---------------------------------------------------------------------------


def test_extra_ground_truth_and_domain_override():
    row = {"prompt": "q", "response": "<think>r</think>The answer is 3.", "ground_truth": 4, "domain": "puzzles"}
    ex = normalize_row(row)
    assert (ex.ground_truth, ex.domain) == ("4", "puzzles")
    gsm = dict(GSM8K_ROW, domain="grade_school_math")
    assert normalize_row(gsm).domain == "grade_school_math"
    assert reason_of(dict(GSM8K_ROW, ground_truth=["72"])) == "wrong_type"


def test_unknown_format_rows():
    assert reason_of({"foo": 1}) == "unknown_format"
    assert reason_of({"text": "some pretraining text"}) == "unknown_format"
    assert reason_of({"question": "only a question"}) == "unknown_format"
    assert reason_of(["not", "a", "dict"]) == "wrong_type"  # type: ignore[arg-type]


def test_to_target_text_is_exact():
    ex = ReasoningExample(prompt="p", reasoning="\n step one\nstep two \n", answer="  The answer is 2.\n")
    assert to_target_text(ex) == "<think>\nstep one\nstep two\n</think>\n\nThe answer is 2."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 7.", "7"),
        ("So the answer is 3.5.", "3.5"),
        ("Thus the final answer is: **12**", "12"),
        ("The answer is $-4$.\nDone.", "-4"),
        ("First \\boxed{1}, then \\boxed{\\sqrt{2}}.", "\\sqrt{2}"),
        ("\\boxed{a{b}c} and the answer is 9", "a{b}c"),
        ("\\boxed{unclosed {", None),
        ("No final answer here.", None),
        ("The answer is 1 and later the answer is 2.", "2"),
    ],
)
def test_final_answer_from_solution(text, expected):
    assert final_answer_from_solution(text) == expected
