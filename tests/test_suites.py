"""Benchmark suites: built-in loaders on rows in each hub dataset's own columns, custom suites, every SuiteError."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.evaluation.grading import grade
from distill.evaluation.suites import (
    BUILTIN_SUITES,
    GPQA_TEMPLATE,
    MATH_TEMPLATE,
    Suite,
    SuiteError,
    SuiteSpec,
    check_suite,
    load_suite,
    parse_benchmarks,
)

SHARED_GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "train.jsonl"
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def load(item: str, **kwargs) -> Suite:
    [spec] = parse_benchmarks(item)
    check_suite(spec)
    return load_suite(spec, **kwargs)


def gpqa_rows(n: int) -> list[dict]:
    return [
        {
            "Pre-Revision Question": "old", "Question": f"Question {i}?", "Correct Answer": f"right {i}",
            "Incorrect Answer 1": f"wrong {i}a", "Incorrect Answer 2": f"wrong {i}b", "Incorrect Answer 3": f"wrong {i}c",
            "Explanation": "because", "Record ID": f"rec{i:03d}", "High-level domain": "Physics",
        }
        for i in range(n)
    ]


# --- built-in loaders, rows in the hub datasets' own columns ---


def test_gsm8k_rows(tmp_path):
    path = write_jsonl(tmp_path / "gsm8k.jsonl", [
        {"question": "Natalia sold 48 clips, then half as many. Total?", "answer": "48/2 = <<48/2=24>>24\n#### 72"},
        {"question": "Weng earns $12 an hour. 50 minutes?", "answer": "12/60*50 = <<12/60*50=10>>10\n#### 10"},
    ])
    suite = load(f"gsm8k={path}")
    assert (suite.name, suite.grader, suite.source, suite.skipped) == ("gsm8k", "math", str(path), 0)
    first = suite.problems[0]
    assert (first.id, first.answer) == ("0", "72")
    assert first.prompt == "Natalia sold 48 clips, then half as many. Total?\n\n" + INSTRUCTION
    assert first.meta["solution"].endswith("#### 72") and first.meta["question"].startswith("Natalia")
    assert [p.id for p in suite.problems] == ["0", "1"]


def test_math500_rows_in_parquet_with_hub_columns(tmp_path):
    path = write_parquet(tmp_path / "math500.parquet", [
        {"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "answer": "2", "subject": "Prealgebra",
         "level": 1, "unique_id": "test/prealgebra/1.json"},
        {"problem": "Simplify $\\frac{2}{4}$.", "solution": "$\\boxed{\\frac12}$", "answer": "\\frac{1}{2}",
         "subject": "Algebra", "level": 2, "unique_id": "test/algebra/7.json"},
    ])
    suite = load(f"math500={path}")
    assert [p.id for p in suite.problems] == ["test/prealgebra/1.json", "test/algebra/7.json"]
    assert suite.problems[1].answer == "\\frac{1}{2}"
    assert suite.problems[0].prompt == MATH_TEMPLATE.format(problem="What is $1+1$?")
    assert suite.problems[0].meta == {"question": "What is $1+1$?", "solution": "It is $\\boxed{2}$.",
                                      "subject": "Prealgebra", "level": 1}


def test_aime24_rows(tmp_path):
    path = write_parquet(tmp_path / "aime24.parquet", [
        {"id": 60, "problem": "Find $m+n$.", "solution": "...", "url": "https://aops/1", "year": "2024", "answer": "204"},
        {"id": 61, "problem": "Find $x$.", "solution": "...", "url": "https://aops/2", "year": "2024", "answer": "25"},
    ])
    suite = load(f"aime24={path}")
    assert [(p.id, p.answer) for p in suite.problems] == [("60", "204"), ("61", "25")]
    assert suite.problems[0].meta["url"] == "https://aops/1"


def test_aime25_rows(tmp_path):
    path = write_jsonl(tmp_path / "aime25.jsonl", [
        {"id": "0", "problem": "Find the sum of all bases $b>9$.", "answer": "70", "url": "u", "year": 2025},
    ])
    suite = load(f"aime25={path}")
    assert [(p.id, p.answer) for p in suite.problems] == [("0", "70")]
    assert suite.problems[0].prompt.startswith("Find the sum of all bases")


def test_amc23_rows_with_question_column_and_float_answers(tmp_path):
    path = write_parquet(tmp_path / "amc23.parquet", [
        {"id": 0, "question": "Cities A and B are 45 miles apart...", "answer": 27.0},
        {"id": 1, "question": "Positive reals x, y...", "answer": 36.0},
    ])
    suite = load(f"amc23={path}")
    assert [(p.id, p.answer) for p in suite.problems] == [("0", "27"), ("1", "36")]
    assert suite.problems[0].meta["question"] == "Cities A and B are 45 miles apart..."


def test_gpqa_options_shuffled_reproducibly_and_letter_points_at_correct_text(tmp_path):
    path = write_parquet(tmp_path / "gpqa.parquet", gpqa_rows(12))
    suite = load(f"gpqa_diamond={path}")
    assert suite.grader == "choice"
    for i, problem in enumerate(suite.problems):
        assert problem.id == f"rec{i:03d}"
        options = problem.meta["options"]
        assert sorted(options) == sorted([f"right {i}", f"wrong {i}a", f"wrong {i}b", f"wrong {i}c"])
        assert options["ABCD".index(problem.answer)] == f"right {i}" == problem.meta["correct"]
        assert f"\n{problem.answer}) right {i}" in problem.prompt
        assert problem.prompt == GPQA_TEMPLATE.format(question=f"Question {i}?", **dict(zip("ABCD", options)))
    assert load(f"gpqa_diamond={path}").problems == suite.problems  # same seed, same order
    assert len({p.answer for p in suite.problems}) > 1  # each problem has its own order
    other = load(f"gpqa_diamond={path}", seed=1)
    assert [p.meta["options"] for p in other.problems] != [p.meta["options"] for p in suite.problems]


def test_gpqa_row_with_an_empty_option_is_skipped(tmp_path):
    rows = gpqa_rows(3)
    rows[1]["Incorrect Answer 2"] = ""
    suite = load(f"gpqa_diamond={write_jsonl(tmp_path / 'g.jsonl', rows)}")
    assert ([p.id for p in suite.problems], suite.skipped) == (["rec000", "rec002"], 1)


def test_limit_and_skipped_rows(tmp_path):
    rows = [{"problem": f"P{i}", "answer": str(i)} for i in range(6)]
    rows[1]["answer"] = ""
    rows[2]["problem"] = "   "
    rows[3]["answer"] = None
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    suite = load(f"math500={path}")
    assert ([p.id for p in suite.problems], suite.skipped) == (["0", "4", "5"], 3)
    limited = load(f"math500={path}", limit=2)  # the first 2 usable problems; ids keep the row index
    assert ([p.id for p in limited.problems], limited.skipped) == (["0", "4"], 3)


def test_repeated_ids_stay_unique(tmp_path):
    rows = [{"id": "a", "problem": "P", "answer": "1"}, {"id": "a", "problem": "Q", "answer": "2"},
            {"problem": "R", "answer": "3"}]
    assert [p.id for p in load(f"math500={write_jsonl(tmp_path / 'm.jsonl', rows)}").problems] == ["a", "a@1", "2"]


def test_json_file_with_data_key(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"data": [{"problem": "P", "answer": "1"}]}), encoding="utf-8")
    assert load(f"math500={path}").problems[0].answer == "1"


def test_shared_gsm8k_train_file():
    if not SHARED_GSM8K.is_file():
        pytest.skip(f"GSM8K copy not found at {SHARED_GSM8K} (it lives beside the project, not in it)")
    suite = load(f"gsm8k={SHARED_GSM8K}", limit=20)
    rows = [json.loads(line) for line in SHARED_GSM8K.read_text(encoding="utf-8").splitlines()[:20]]
    assert len(suite.problems) == 20
    assert [p.answer for p in suite.problems] == [r["answer"].split("####")[-1].strip() for r in rows]
    assert all(p.answer.replace(",", "").lstrip("-").isdigit() for p in suite.problems)
    assert grade("<think>...</think>\n\n\\boxed{" + suite.problems[0].answer + "}", suite.problems[0].answer, "math").correct


# --- custom suites ---


@pytest.mark.parametrize(
    ("grader", "gold", "response"),
    [("math", "\\frac{1}{2}", "\\boxed{0.5}"), ("number", "18", "So 18 apples."), ("choice", "C", "Answer: C")],
)
def test_custom_suite_with_each_grader(tmp_path, grader, gold, response):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"q": "The question", "target": gold, "id": "x1"}])
    suite = load(f"mine={path}?problem=q&answer=target&grader={grader}")
    assert (suite.name, suite.grader, suite.source) == ("mine", grader, str(path))
    [problem] = suite.problems
    assert (problem.id, problem.answer, problem.prompt) == ("x1", gold, MATH_TEMPLATE.format(problem="The question"))
    assert grade(response, problem.answer, suite.grader).correct


# --- spec strings ---


def test_parse_benchmarks_forms():
    assert parse_benchmarks(None) == [] and parse_benchmarks("") == [] and parse_benchmarks(" , ") == []
    specs = parse_benchmarks(" gsm8k , math500=../shared/data/math500/test.jsonl,heldout,"
                             "mine=data/my file.jsonl?problem=question&answer=target&grader=number ")
    assert specs == [
        SuiteSpec("gsm8k"),
        SuiteSpec("math500", "../shared/data/math500/test.jsonl"),
        SuiteSpec("heldout"),
        SuiteSpec("mine", "data/my file.jsonl", "question", "target", "number"),
    ]
    assert parse_benchmarks(["aime24", " gpqa_diamond=a,b.jsonl "]) == [
        SuiteSpec("aime24"), SuiteSpec("gpqa_diamond", "a,b.jsonl")
    ]
    assert set(BUILTIN_SUITES) >= {"gsm8k", "math500", "aime24", "aime25", "amc23", "gpqa_diamond", "heldout"}


# --- errors ---


def error(fn, *args, **kwargs) -> str:
    with pytest.raises(SuiteError) as caught:
        fn(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unknown_suite_without_path():
    message = error(parse_benchmarks, "mmlu")
    assert "'mmlu' is not built-in" in message and "give its file: mmlu=data/mmlu.jsonl" in message
    assert "mmlu=data/mmlu.jsonl?problem=COL&answer=COL&grader=" in message


def test_a_custom_suite_with_the_usual_columns_needs_no_options(tmp_path):
    """A newcomer's file with problem/answer (or question + GSM8K's #### answer) is taken as it is, graded math."""
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"problem": "What is 1/2 + 1/4?", "answer": "\\frac{3}{4}"}) + "\n")
    worked = tmp_path / "worked.jsonl"
    worked.write_text(json.dumps({"question": "Tom has 3 + 4 apples. How many?", "answer": "3 + 4 = 7\n#### 7"}) + "\n")
    (spec,) = parse_benchmarks([f"mine={plain}"])
    check_suite(spec)
    suite = load_suite(spec)
    assert (suite.grader, suite.problems[0].answer) == ("math", "\\frac{3}{4}")
    assert suite.problems[0].prompt.startswith("What is 1/2 + 1/4?\n\nPlease reason step by step")
    assert load_suite(parse_benchmarks([f"gsm={worked}"])[0]).problems[0].answer == "7"
    missing = tmp_path / "other.jsonl"
    missing.write_text(json.dumps({"q": "2 + 2?", "a": "4"}) + "\n")
    message = error(check_suite, parse_benchmarks([f"other={missing}"])[0])
    assert "has columns [q, a]" in message and "'problem' or 'question'" in message


def test_bad_names_options_and_graders():
    assert "letters, digits" in error(parse_benchmarks, "my suite=x.jsonl")
    assert "unknown option(s) column" in error(parse_benchmarks, "mine=x.jsonl?column=q")
    assert "unknown grader 'exact'" in error(parse_benchmarks, "mine=x.jsonl?problem=q&answer=a&grader=exact")
    assert "no file after '='" in error(parse_benchmarks, "math500=")
    assert "takes no file" in error(parse_benchmarks, "heldout=x.jsonl")


def test_duplicate_names():
    assert "'gsm8k' is given twice" in error(parse_benchmarks, "gsm8k,math500,gsm8k=x.jsonl")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    [spec] = parse_benchmarks(f"math500={missing}")
    for fn in (check_suite, load_suite):
        message = error(fn, spec)
        assert "'math500'" in message and str(missing) in message and "not found" in message


def test_missing_columns_list_found_and_expected(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"a": "1", "b": "2"}])
    [spec] = parse_benchmarks(f"mine={path}?problem=question&answer=target&grader=math")
    expected = (f"benchmark 'mine': file {path} has columns [a, b]; "
                "expected problem column 'question' and answer column 'target'")
    assert error(check_suite, spec) == expected
    assert error(load_suite, spec) == expected
    message = error(check_suite, parse_benchmarks(f"math500={path}")[0])
    assert "columns [a, b]" in message and "'problem' or 'question'" in message and "'answer'" in message
    message = error(check_suite, parse_benchmarks(f"gpqa_diamond={path}")[0])
    assert "'Question'" in message and "'Correct Answer'" in message and "'Incorrect Answer 3'" in message


def test_check_reads_only_the_first_row(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"problem": "P", "answer": "1"}\nnot json\n', encoding="utf-8")
    [spec] = parse_benchmarks(f"math500={path}")
    check_suite(spec)
    assert "expected one JSON object per line" in error(load_suite, spec)


def test_empty_and_unusable_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert "has no rows" in error(check_suite, SuiteSpec("math500", str(empty)))
    assert "has no rows" in error(load_suite, SuiteSpec("math500", str(empty)))
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"problem": "", "answer": "1"}])
    assert "no usable problems (1 row(s)" in error(load_suite, SuiteSpec("math500", str(blank)))
    assert "limit must be at least 1" in error(load_suite, SuiteSpec("math500", str(blank)), limit=0)


def test_heldout_is_provided_by_the_pipeline():
    [spec] = parse_benchmarks("heldout")
    check_suite(spec)
    message = error(load_suite, spec)
    assert "'heldout'" in message and "pipeline provides it" in message


def test_offline_hub_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    [spec] = parse_benchmarks("math500")
    expected = ("benchmark 'math500': cannot reach the Hugging Face Hub to load HuggingFaceH4/MATH-500 (offline?); "
                "give a local file: math500=PATH.jsonl")
    assert error(check_suite, spec) == expected
    assert error(load_suite, spec, limit=5) == expected
    assert "Idavidrein/gpqa" in error(load_suite, SuiteSpec("gpqa_diamond"))
