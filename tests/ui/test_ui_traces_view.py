"""The Traces page's rendering and logic (no browser): the funnel's bars and numbers, the teacher, rejections,
each sample's verdict, thought and answer (escaped), the report while a generation runs, "Train on this"'s form
values, and the Run and Launch pages' parts for a generation."""

from __future__ import annotations

import re

import pytest

from distill.evaluation.summary import metric_catalog  # what GET /metric-definitions serves
from ui.pages.launch import coerce, dataset_choices, report_html
from ui.pages.common import FieldSpec
from ui.pages.run_detail_view import parent_html, progress_html
from ui.pages.traces import Filters, needs_poll, nothing_to_train, run_label, training_config
from ui.pages.traces_view import (
    bar_row,
    count_html,
    dropped_html,
    filters_text,
    funnel_html,
    problem_html,
    rejections_html,
    split_trace,
    stopped_html,
    summary_html,
    teacher_rows,
    trace_html,
)
from ui.shared import Catalog

# A data_report.json as a generation writes it (five problems read, one a duplicate; 4 samples each).
REPORT = {
    "kind": "traces",
    "funnel": {"problems_read": 5, "duplicates": 1, "contaminated": 0, "held_out": 0, "asked": 4, "answered": 4,
               "failed": 0, "unasked": 0, "samples": 16, "complete": 12, "correct": 6, "kept": 5},
    "rejected": {"failed": 0, "looping": 3, "incomplete": 1, "no_answer": 1, "wrong": 5, "too_long": 0,
                 "duplicate": 1, "not_selected": 0},
    "contaminated_by": {}, "decontaminated_against": [], "not_decontaminated": {},
    "teacher": {"model": "standin-r1", "url": "http://127.0.0.1:4000/v1", "engine": "openai", "problems": 4,
                "samples": 16, "pass@1": 0.375, "pass@1_ci": [0.125, 0.625],
                "pass@k": {"1": 0.375, "2": 0.5833, "3": 0.6875, "4": 0.75}, "complete_pct": 75.0,
                "looping_pct": 18.75, "tokens_p50": 15.0, "tokens_p95": 40.0},
    "tokens": {"prompt": 452, "completion": 331, "kept_p50": 111.0, "kept_p95": 166.8},
    "keep": "all_correct", "num_generations": 4, "stopped": None, "time_s": 75.3,
}
KEPT = "<think>\nThe problem asks for a number. Working it out gives 42.\n</think>\n\nThe answer is \\boxed{42}."
CUT = "<think>\nalw htfr obobo vjxlzn crg"
ROW = {"id": "0", "index": 0, "problem": "What is 11 plus 31 <apples>?", "answer": "42", "status": "answered",
       "teacher": "standin-r1",
       "generations": [KEPT, "<think>\nA quick guess.\n</think>\n\nThe answer is \\boxed{421}. <script>x()</script>",
                       CUT, ""],
       "finish_reasons": ["stop", "stop", "length", None], "correctness_math_verify": [True, False, False, False],
       "is_reasoning_complete": [True, True, False, False], "correctness_count": 1,
       "verdicts": ["kept", "wrong", "incomplete", "failed"], "extracted": ["42", "421", None, None],
       "looping": [False, False, False, False], "sample_tokens": [15, 7, 40, 0], "student_tokens": [106, 96, None, None],
       "errors": [None, None, None, "failed after 5 attempts (500)"], "failure": None}


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog(metric_catalog())


def bars(html: str) -> dict[str, tuple[str, str, str]]:
    """data-key → (number, width, share) of every bar."""
    rows = re.findall(r'data-key="(\w+)".*?width:([\d.]+)%.*?ds-fnum">([^<]*)<.*?ds-fpct">([^<]*)<', html)
    return {key: (num, width, pct) for key, width, num, pct in rows}


# --------------------------------------------------------------------------- the funnel, the teacher

def test_the_funnel_scales_problems_to_problems_read_and_samples_to_samples() -> None:
    shown = bars(funnel_html(REPORT))
    assert shown == {"problems_read": ("5", "100.0", "100%"), "asked": ("4", "80.0", "80%"),
                     "answered": ("4", "80.0", "80%"), "samples": ("16", "100.0", "100%"),
                     "complete": ("12", "75.0", "75%"), "correct": ("6", "37.5", "38%"), "kept": ("5", "31.2", "31%")}


def test_a_bar_of_an_unknown_value_is_empty() -> None:
    assert bars(bar_row("asked", "asked", None, 10)) == {"asked": ("…", "0.0", "")}
    assert bars(bar_row("kept", "kept", 3, 0)) == {"kept": ("3", "0.0", "")}


def test_dropped_names_each_reason_and_the_suites() -> None:
    report = dict(REPORT, funnel=dict(REPORT["funnel"], contaminated=3, held_out=2, failed=1, unasked=0),
                  contaminated_by={"math500": 2, "mine": 1, "aime24": 0}, decontaminated_against=["math500", "mine"],
                  not_decontaminated={"gpqa_diamond": "gated on the Hub"})
    html = dropped_html(report)
    chips = dict(re.findall(r'data-key="(\w+)">([^<]*)<b>', html))
    assert chips == {"duplicates": "duplicates ", "contaminated": "contaminated ", "held_out": "held out for evaluation ",
                     "failed": "failed (every request) "}  # unasked 0: not shown
    assert "contaminated <b>3</b> (math500 2, mine 1)" in html
    assert "checked against: math500, mine" in html and "not checked against gpqa_diamond: gated on the Hub" in html
    assert "checked against no benchmark" in dropped_html(REPORT)


def test_the_teacher_has_pass1_with_its_interval_and_pass_at_k(cat: Catalog) -> None:
    rows = dict(teacher_rows(REPORT, cat))
    assert rows["pass@1 (95 % interval)"] == "37.5% [12.5, 62.5] over 4 problems, 16 samples"
    assert rows["pass@k"] == "pass@1 37.5% · pass@2 58.3% · pass@3 68.8% · pass@4 75.0%"
    assert rows["Complete traces"] == "75.0%" and rows["Looping traces"] == "18.8%"
    assert rows["Tokens per trace"] == "p50 15 · p95 40"
    assert rows["Kept rows, student tokens"] == "p50 111 · p95 167"
    assert rows["Tokens spent"] == "452 prompt + 331 completion"
    assert rows["Keep policy"] == "all_correct of 4 samples per problem" and rows["Time"] == "1m 15s"
    assert rows["Teacher"] == "standin-r1 · openai · http://127.0.0.1:4000/v1"


def test_rejections_are_coloured_badges_with_their_counts() -> None:
    html = rejections_html(REPORT)
    badges = re.findall(r'class="ds-verdict ([\w-]+)( ds-zero)?" data-verdict="(\w+)"[^>]*>([^<]*)<', html)
    assert [(v, text) for _, _, v, text in badges] == [
        ("failed", "failed 0"), ("looping", "looping 3"), ("incomplete", "incomplete 1"), ("no_answer", "no answer 1"),
        ("wrong", "wrong 5"), ("too_long", "too long 0"), ("duplicate", "duplicate 1"),
        ("not_selected", "not selected 0")]
    classes = {v: (cls, bool(zero)) for cls, zero, v, _ in badges}
    assert classes["wrong"] == ("ds-v-bad", False) and classes["looping"] == ("ds-v-warn", False)
    assert classes["too_long"] == ("ds-v-warn", True) and classes["duplicate"] == ("ds-v-muted", False)


def test_a_budget_stop_says_so_with_the_problems_not_asked(cat: Catalog) -> None:
    stopped = dict(REPORT, stopped="budget", funnel=dict(REPORT["funnel"], unasked=3))
    assert "stopped: budget" in stopped_html(stopped) and "3 problems were not asked" in stopped_html(stopped)
    assert stopped_html(REPORT) == ""
    assert 'data-stopped="budget"' in summary_html(stopped, cat) and "data-stopped" not in summary_html(REPORT, cat)


# What GET /runs/{id}/traces answers while ROW is the only problem finished (distill/traces/run.py: rows_report).
LIVE = {"kind": "traces", "live": True,
        "funnel": {"problems_read": None, "duplicates": 0, "contaminated": 0, "held_out": None, "asked": None,
                   "answered": 1, "failed": 0, "unasked": None, "samples": 4, "complete": 2, "correct": 1, "kept": 1},
        "rejected": {"failed": 1, "looping": 0, "incomplete": 1, "no_answer": 0, "wrong": 1, "too_long": 0,
                     "duplicate": 0, "not_selected": 0},
        "contaminated_by": {},
        "teacher": {"model": "standin-r1", "url": "http://127.0.0.1:4000/v1", "engine": "openai", "problems": 1,
                    "samples": 3, "pass@1": 0.3333, "pass@1_ci": [0.0, 1.0], "pass@k": {}, "complete_pct": 66.67,
                    "looping_pct": 0.0, "tokens_p50": 15.0, "tokens_p95": 37.5},
        "tokens": {"prompt": 90, "completion": 62, "kept_p50": 106.0, "kept_p95": 106.0},
        "keep": "all_correct", "num_generations": 4}


def test_the_summary_while_it_runs_says_what_is_not_known_yet(cat: Catalog) -> None:
    live = LIVE
    html = summary_html(live, cat, "running")
    assert 'data-live="1"' in html and "still generating" in html
    assert bars(html)["problems_read"] == ("…", "0.0", "") and bars(html)["answered"][0] == "1"
    rows = dict(teacher_rows(live, cat))
    assert rows["pass@1 so far"] == "33.3% [0.0, 100.0] over 1 problems, 3 samples"  # the failed one does not count
    assert "Time" not in rows and rows["Teacher"] == "standin-r1 · openai · http://127.0.0.1:4000/v1"
    assert "the run failed" in summary_html(live, cat, "failed")
    assert "No trace yet" in summary_html(None, cat)


# --------------------------------------------------------------------------- problem by problem

def test_a_trace_splits_into_its_thought_and_its_answer() -> None:
    assert split_trace(KEPT) == {"thinking": "The problem asks for a number. Working it out gives 42.",
                                 "answer_part": "The answer is \\boxed{42}.", "thinking_closed": True}
    assert split_trace(CUT) == {"thinking": "alw htfr obobo vjxlzn crg", "answer_part": "", "thinking_closed": False}
    assert split_trace("Just 42.") == {"thinking": None, "answer_part": "Just 42.", "thinking_closed": True}


def test_a_sample_shows_its_verdict_tokens_thought_answer_and_the_gold_answer() -> None:
    kept = trace_html(ROW, 0)
    assert 'data-verdict="kept"' in kept and "sample 1/4" in kept
    assert "15 tokens · 106 in the student&#x27;s tokens · finish: stop" in kept
    assert ('<div class="ds-think-body">The problem asks for a number. Working it out gives 42.</div>' in kept)
    assert '<div class="ds-answer-text">The answer is \\boxed{42}.</div>' in kept
    assert re.search(r'ds-extracted ds-good">Extracted answer: <b>42</b> .*✓.*\(expected 42\)', kept)
    wrong = trace_html(ROW, 1)
    assert "<script>" not in wrong and "&lt;script&gt;x()&lt;/script&gt;" in wrong  # escaped
    assert re.search(r"ds-extracted ds-bad\">Extracted answer: <b>421</b> .*✗", wrong)
    cut = trace_html(ROW, 2)
    assert "not closed (cut off)" in cut and "finish: length" in cut and "none found" in cut
    failed = trace_html(ROW, 3)
    assert "request failed: failed after 5 attempts (500)" in failed and 'ds-extracted ds-neutral' in failed


def test_a_problem_folds_its_samples_under_its_verdicts() -> None:
    html = problem_html(ROW)
    assert html.startswith('<details class="ds-sample ds-tproblem" data-index="1" data-id="0" data-status="answered">')
    summary = html[:html.index("</summary>")]
    assert re.findall(r'data-verdict="(\w+)"', summary) == ["kept", "wrong", "incomplete", "failed"]
    assert "1/4 correct" in summary and "gold: <b>42</b>" in summary
    assert "What is 11 plus 31 &lt;apples&gt;?" in summary and "<apples>" not in html
    assert html.count('class="ds-trace"') == 4


def test_problems_not_asked_say_why() -> None:
    dup = problem_html({"id": "4", "index": 4, "problem": "what is 11 plus 31?", "answer": "42", "status": "duplicate",
                        "duplicate_of": "0"})
    assert 'data-status="duplicate"' in dup and "a duplicate of problem id 0" in dup and 'class="ds-trace"' not in dup
    bench = problem_html({"id": "5", "index": 5, "problem": "p", "answer": "1", "status": "contaminated",
                          "contaminated_by": ["math500", "mine"]})
    assert "Not asked: also in math500, mine." in bench
    failed = problem_html(dict(ROW, status="failed", failure="failed after 5 attempts (500)"))
    assert "Every request failed: failed after 5 attempts (500)" in failed


def test_the_count_line_names_the_filters() -> None:
    words = filters_text("no_answer", "answered", "apples")
    assert words == "with a sample no answer, status answered, containing “apples”"
    assert count_html(48, 20, 20, 2, 3, words) == (
        '<div class="ds-muted">Problems 21–40 of 48 with a sample no answer, status answered, containing '
        "“apples” · page 2 of 3</div>")
    assert "No problem with a sample too long." in count_html(0, 0, 0, 1, 1, filters_text("too_long", None, None))
    assert Filters.of("", "answered", "  ") == Filters(None, "answered", None)


# --------------------------------------------------------------------------- the page's logic, other pages

def test_train_on_this_trains_the_same_student_on_the_generated_dataset() -> None:
    run = {"id": 7, "config": {"mode": "generate", "model": "tiny-random", "teacher_model": "standin-r1",
                               "max_seq_length": 512}}
    assert training_config(run, "/home/runs/run_7/dataset.jsonl") == {
        "mode": "all", "dataset": "/home/runs/run_7/dataset.jsonl", "model": "tiny-random",
        "name": "train on traces of run 7", "max_seq_length": 512}
    assert run_label(dict(run, name="traces")) == "#7 traces · teacher standin-r1 · generate"
    assert nothing_to_train(dict(run, status="running")) == (
        "Run #7 is running: its traces can be trained on once the generation has succeeded.")
    assert "kept no trace" in nothing_to_train(dict(run, status="succeeded"))


def test_only_a_finished_generation_stops_polling() -> None:
    assert needs_poll(3, {}) and needs_poll(3, {"run": 3, "status": "running"})
    assert not needs_poll(3, {"run": 3, "status": "succeeded"})
    assert needs_poll(3, {"run": 3, "status": "succeeded", "error": "API unreachable"})
    assert needs_poll(4, {"run": 3, "status": "succeeded"})


def test_the_run_page_speaks_of_problems_and_links_to_the_traces() -> None:
    run = {"id": 5, "status": "running", "stage": "generate", "progress": 0.25,
           "config": {"mode": "generate", "teacher_model": "standin-r1"}}
    assert "25% of the problems answered" in progress_html(run)
    assert "of the problems answered · preparing" in progress_html(dict(run, stage="load", progress=0.0))
    both = dict(run, progress=0.5, config={"mode": "all", "teacher_model": "standin-r1"})
    assert "50% of the problems answered" in progress_html(both)  # then training's progress
    assert "50% of the problems answered" not in progress_html(dict(both, stage="train"))
    link = parent_html(run)
    assert 'href="?tab=traces&amp;run=5" data-open="traces" data-run="5"' in link and "trains no model" in link
    assert parent_html({"id": 6, "config": {"mode": "all"}}) == ""


def test_the_dataset_picker_says_which_run_generated_a_dataset() -> None:
    items = [{"id": "traces:7", "name": "traces: traces from standin-r1", "kind": "generated", "rows": 24,
              "run_id": 7, "ref": "/h/runs/run_7/dataset.jsonl"},
             {"id": 2, "name": "mine.jsonl", "kind": "upload", "rows": 10, "ref": "uploads/mine.jsonl"}]
    assert dataset_choices(items) == [
        ("traces: traces from standin-r1 · generated by run #7 · 24 traces kept", "traces:7"),
        ("mine.jsonl · upload · 10 rows", 2)]
    assert 'data-key="kept"' in report_html(REPORT) and "How its traces were kept" in report_html(REPORT)
    assert "rows_kept" in report_html({"rows_kept": 3})


def test_an_empty_optional_list_field_is_its_default() -> None:
    spec = FieldSpec("decontaminate", "teacher", "list", None, nullable=True)
    assert coerce(spec, "") is None and coerce(spec, "math500, mine") == ["math500", "mine"]
    assert coerce(FieldSpec("benchmarks", "evaluation", "list", ["heldout"]), "") == []
