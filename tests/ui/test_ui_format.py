"""Formatting helpers of the dashboard (pure functions, no browser): shared ones, the Run page's,
the Benchmarks page's, all driven by the API's metric catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from distill.evaluation.summary import (
    metric_catalog,  # what GET /metric-definitions serves
)
from ui.answers import badges, response_html, sample_html
from ui.pages.benchmarks_view import (
    cell_html,
    keep,
    leaderboard_html,
    problem_html,
    suite_card_html,
)
from ui.pages.compare_runs import compare_html
from ui.pages.run_detail_view import (
    failure_html,
    format_log_html,
    jobs_html,
    metrics_frame,
    metrics_table_html,
    progress_html,
    samples_html,
)
from ui.pages.run_list import runs_frame
from ui.shared import (
    Catalog,
    CatalogCache,
    fmt_duration,
    significance,
    significance_html,
)


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog(metric_catalog())


def side(p1: float, ci: list[float], **kw: float) -> dict:
    return {"pass@1": p1, "pass@1_ci": ci, "pass@k": {"1": p1}, "cons@n": p1, "n_correct": 0, "tokens_p50": 12.0,
            "tokens_p95": 16.0, "truncated_pct": 100.0, "think_closed_pct": 0.0, "looping_pct": 0.0, "forced_pct": 0.0,
            "think_tokens_mean": 0.0, "answer_tokens_mean": 12.0, **kw}


BLOCK = {"n_problems": 20, "num_samples": 1, "grader": "math", "source": "gsm8k", "settings": {"temperature": 0.0, "seed": 42},
         "base": side(0.0, [0.0, 0.161]), "sft": side(0.1, [0.028, 0.301], n_correct=2, truncated_pct=40.0),
         "delta_pass@1": 0.1, "delta_ci": [-0.05, 0.25], "p_value": 0.5, "test": "mcnemar_exact", "significant": False}


# --------------------------------------------------------------------------- the catalog

def test_values_take_unit_scale_and_decimals_from_the_catalog(cat: Catalog) -> None:
    assert cat.fmt("pass@1", 0.1) == "10.0%"
    assert cat.fmt("pass@1", 0.125, signed=True) == "+12.5 pp"
    assert cat.fmt("accuracy", 0.5) == "50.0%" and cat.fmt("accuracy", 0.25, signed=True) == "+25.0 pp"
    assert cat.fmt("truncated_pct", 40.0) == "40.0%" and cat.fmt("truncated_pct", -20.0, signed=True) == "-20.0 pp"
    assert cat.fmt("avg_generation_time_s", 1.234) == "1.23s" and cat.fmt("tokens_p50", 12.0) == "12"
    assert cat.fmt("avg_quality_score", None) == "n/a"
    assert cat.with_interval("pass@1", 0.1, [0.028, 0.301]) == "10.0% [2.8, 30.1]"
    assert cat.label("truncated_pct") == "% stopped by the token limit"
    # better: fewer truncated answers is an improvement, more is a regression; tokens are neither
    assert cat.delta_class("truncated_pct", -10.0) == "ds-good" and cat.delta_class("truncated_pct", 5.0) == "ds-bad"
    assert cat.delta_class("tokens_p50", 5.0) == "ds-neutral"


def test_a_custom_catalog_changes_what_is_shown() -> None:
    cat = Catalog([{"key": "pass@1", "label": "Solve rate", "unit": " per mille", "scale": 1000, "decimals": 0,
                    "delta_unit": "‰", "better": 1}])
    assert cat.fmt("pass@1", 0.1) == "100 per mille" and cat.fmt("pass@1", 0.01, signed=True) == "+10 ‰"
    assert cat.label("pass@1") == "Solve rate"


def test_without_the_api_the_raw_key_and_number_show() -> None:
    calls = []

    def down() -> list:
        calls.append(1)
        raise OSError("refused")

    cache = CatalogCache(down)
    cat = cache.get()
    assert cat.label("pass@1") == "pass@1" and cat.fmt("pass@1", 0.1) == "0.100"
    cache.get()
    assert len(calls) == 1  # not asked again at once; asked again after RETRY_S
    ok = CatalogCache(lambda: metric_catalog())
    assert ok.get().fmt("pass@1", 0.1) == "10.0%" and ok.get() is ok.get()


def test_significance_in_words_and_marks() -> None:
    assert significance({"p_value": 0.5, "significant": False, "test": "mcnemar_exact"}) == (
        "n.s. p = 0.5", "not significant (p = 0.5, exact McNemar)", "ds-sig-no")
    assert significance({"p_value": 0.0312, "significant": True, "test": "paired_bootstrap"})[:2] == (
        "★ p = 0.031", "significant (p = 0.031, paired bootstrap)")
    assert significance({})[0] == "no test"
    short = significance_html({"p_value": 1.0, "significant": False}, short=True)
    assert ">n.s. p = 1<" in short and 'title="not significant (p = 1): the difference could be noise"' in short
    assert "★ significant (p = 0.01" in significance_html({"p_value": 0.01, "significant": True, "test": "mcnemar_exact"})


# --------------------------------------------------------------------------- benchmarks

def test_cell_shows_both_intervals_the_delta_and_not_significant(cat: Catalog) -> None:
    html = cell_html(BLOCK, cat)
    assert "0.0% [0.0, 16.1]" in html and "10.0% [2.8, 30.1]" in html
    assert "Δ +10.0 pp" in html and "n.s. p = 0.5" in html and "20 problems × 1" in html
    assert 'class="ds-delta ds-neutral"' in html  # not significant: not colored as a win
    sig = cell_html(dict(BLOCK, p_value=0.01, significant=True), cat)
    assert 'class="ds-delta ds-good"' in sig and "★ p = 0.01" in sig


def test_leaderboard_is_runs_by_suites_with_links(cat: Catalog) -> None:
    items = [{"run_id": 3, "run_name": "<b>r3</b>", "model": "tiny-random", "suite": "gsm8k", "job_id": 5,
              "created_at": "2024-01-01T10:00:00Z", "result": BLOCK},
             {"run_id": 3, "run_name": "<b>r3</b>", "model": "tiny-random", "suite": "heldout", "job_id": 3,
              "created_at": None, "result": BLOCK},
             {"run_id": 1, "run_name": "r1", "model": "m", "suite": "heldout", "job_id": 1, "created_at": None,
              "result": BLOCK}]
    html = leaderboard_html(items, cat)
    assert html.count("<tr data-run=") == 2 and "&lt;b&gt;r3" in html and "<b>r3" not in html
    assert 'href="?tab=benchmarks&amp;run=3&amp;suite=gsm8k&amp;job=5"' in html
    assert 'data-open="problems" data-run="3" data-suite="gsm8k" data-job="5"' in html
    assert html.count('class="ds-muted">—</td>') == 1  # run 1 has no gsm8k result
    assert "not significant" in html  # the legend says what n.s. means
    assert "No benchmark results yet" in leaderboard_html([], cat)


def test_suite_card_has_pass_at_k_cons_and_diagnostics_from_the_catalog(cat: Catalog) -> None:
    block = dict(BLOCK, num_samples=4, base=side(0.25, [0.1, 0.4], **{"pass@k": {"1": 0.25, "2": 0.4, "4": 0.5}}),
                 sft=side(0.5, [0.3, 0.7], **{"pass@k": {"1": 0.5, "2": 0.7, "4": 0.8}}))
    html = suite_card_html({"run_id": 3, "job_id": 7, "suite": "gsm8k", "created_at": None, "result": block}, cat)
    assert "20 problems × 4 samples" in html and "benchmark job #7" in html
    for text in ("pass@2", "pass@4", "40.0%", "80.0%", "cons@n (majority vote)", "% stopped by the token limit",
                 "Tokens per answer, p95", "not significant (p = 0.5, exact McNemar)"):
        assert text in html, text
    assert "forced_pct" not in html  # rows are the catalog's (the badge on each answer says "forced")
    assert "forced_pct" in suite_card_html({"run_id": 3, "job_id": 7, "suite": "x", "result": block}, Catalog())
    assert html.index("pass@2") < html.index("pass@4") < html.index("cons@n")
    own = suite_card_html({"run_id": 3, "job_id": 3, "suite": "heldout", "result": BLOCK}, cat)
    assert "own evaluation" in own and "needs num_samples &gt; 1" in own


def sample(text: str, correct: bool, **kw: object) -> dict:
    """A sample as GET /runs/{id}/benchmarks/{suite} returns it: the API adds the thought and the answer apart."""
    from distill.reasoning import Split

    return {"text": text, **Split.of(text).api_fields(), "extracted": "4" if correct else "5", "correct": correct, "tokens": 30,
            "time_s": 0.5, "think_tokens": 20, "finish_reason": "stop", "truncated": False, "think_closed": True,
            "looping": False, "forced": False, **kw}


RECORD = {"id": "q1", "index": 0, "prompt": "What is 2 + 2?", "system": "Think.", "gold": "4",
          "base": [sample("<think>2+3</think> 5", False, truncated=True, think_closed=False, looping=True, forced=True)],
          "sft": [sample("<think>2+2=4</think> The answer is 4", True)]}


def test_problem_side_by_side_with_marks_and_badges() -> None:
    html = problem_html(RECORD)
    assert "gold answer: <b>4</b>" in html and html.count('class="ds-col ') == 2
    assert "base ✗" in html and "SFT ✓" in html
    assert "<details class=\"ds-think\"" in html and "Extracted answer: <b>5</b>" in html
    for badge in ("truncated", "looping", "thought not closed", "forced"):
        assert f">{badge}</span>" in html
    assert "30 tokens (20 thinking)" in html
    many = dict(RECORD, sft=[sample("4", True), sample("5", False)])
    assert "SFT 1/2 right" in problem_html(many) and "answer 2/2" in problem_html(many)
    # no <think> at all: nothing was left open
    assert [b for b, _ in badges(sample("5", False, think_tokens=0, think_closed=False))] == []
    assert "&lt;script&gt;" in sample_html(sample("<script>x</script>", False))


def test_problem_filters() -> None:
    same = dict(RECORD, base=RECORD["sft"])
    assert [keep(RECORD, f) for f in ("all", "differ", "sft_wrong", "base_wrong")] == [True, True, False, True]
    assert [keep(same, f) for f in ("differ", "sft_wrong", "base_wrong")] == [False, False, False]


# --------------------------------------------------------------------------- the Run page

def test_metrics_table_from_the_catalog_with_the_accuracy_test(cat: Catalog) -> None:
    summary = {"base": {"n": 4, "accuracy": 0.25, "n_correct": 1, "n_with_ground_truth": 4, "avg_generation_time_s": 1.0,
                        "avg_quality_score": 0.5},
               "sft": {"n": 4, "accuracy": 0.75, "n_correct": 3, "n_with_ground_truth": 4, "avg_generation_time_s": 2.0,
                       "avg_quality_score": 0.6}}
    test = {"test": "mcnemar_exact", "p_value": 0.5, "significant": False}
    html = metrics_table_html(summary, {"accuracy": 0.5, "avg_generation_time_s": 1.0}, cat, test)
    acc_row = html.split("Accuracy")[1].split("</tr>")[0]
    assert "25.0% (1/4)" in acc_row and "75.0% (3/4)" in acc_row and "+50.0 pp" in acc_row
    assert "not significant (p = 0.5, exact McNemar)" in acc_row and "ds-good" not in acc_row
    quality_row = html.split("Reasoning quality score")[1].split("</tr>")[0]
    # No test for this metric: the delta is shown, not colored as a win.
    assert "ds-neutral" in quality_row and "ds-good" not in quality_row and "+0.100" in quality_row
    assert "Avg generation time" not in html  # one shared batch's time: kept, not compared
    assert "Reasoning quality score (shape heuristic)" in html
    assert "Correct answers" not in html  # folded into the accuracy cell
    sig = metrics_table_html(summary, {"accuracy": 0.5}, cat, dict(test, p_value=0.01, significant=True))
    assert "ds-good" in sig.split("Accuracy")[1].split("</tr>")[0]
    assert "No evaluation" in metrics_table_html(None, None, cat)


def test_response_html_shows_the_parts_the_api_split_escaped_and_marked() -> None:
    html = response_html({"thinking": "x < y & <b>bold</b>", "answer_part": "<script>alert(1)</script> 7",
                          "thinking_closed": True, "answer": "7", "correct": True, "quality_score": 0.8, "num_steps": 2})
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;bold" in html
    assert "<details" in html and "Reasoning (5 words)" in html
    assert "✓" in html and "ds-good" in html
    wrong = response_html({"thinking": None, "answer_part": "12", "answer": "12", "correct": False})
    assert "✗" in wrong and "ds-bad" in wrong and "<details" not in wrong
    streaming = response_html({"thinking": "hmm", "answer_part": "", "thinking_closed": False}, streaming=True,
                              graded=False)
    assert "<details class=\"ds-think\" open>" in streaming and "thinking…" in streaming
    assert "Extracted answer" not in streaming


def test_playground_deltas_go_to_the_part_the_api_labelled() -> None:
    from ui.pages.playground import add

    answer = {"thinking": None, "answer_part": "", "thinking_closed": True}
    for delta, part in (("\nSo 2", "thinking"), ("+2=4.", "thinking"), ("\n\nThe answer", "answer"), (" is 4.", "answer")):
        add(answer, delta, part)
    assert answer == {"thinking": "\nSo 2+2=4.", "answer_part": "\n\nThe answer is 4.", "thinking_closed": True}


def test_fmt_duration() -> None:
    assert [fmt_duration(x) for x in (None, 5, 65, 3725, 200_000)] == ["—", "5s", "1m 05s", "1h 02m", "2d 07h"]


def test_progress_and_failure() -> None:
    now = datetime.now(UTC)
    run = {"status": "running", "stage": "train", "progress": 0.42, "eta_s": 90,
           "started_at": (now - timedelta(seconds=30)).isoformat()}
    html = progress_html(run, now)
    assert "42%" in html and "ETA 1m 30s" in html and "width:42.0%" in html and "stage: <b>train</b>" in html
    job = {"status": "running", "stage": "evaluate", "progress": 0.5, "config": {"mode": "evaluate"}}
    assert "50%" in progress_html(job, now)  # a benchmark job reports its own progress
    assert failure_html(run) == ""
    failed = {"status": "failed", "error": "OSError: no <model>"}
    fh = failure_html(failed, [{"ts": "2024-01-01T10:00:00Z", "level": "ERROR", "message": "boom"}])
    assert "Run failed: OSError: no &lt;model&gt;" in fh and "ERROR boom" in fh


def test_jobs_link_to_their_run_page() -> None:
    html = jobs_html([{"id": 9, "status": "running", "progress": 0.5, "config": {"benchmarks": ["gsm8k", "mine=/h/m.jsonl"]}}])
    assert 'data-open="run" data-run="9"' in html and "gsm8k, mine" in html and "50%" in html
    assert "No benchmark jobs" in jobs_html([])


def test_log_html_keeps_the_tail_and_says_what_is_hidden() -> None:
    lines = [{"seq": i, "ts": "2024-01-01T10:00:00Z", "level": "INFO", "message": f"<line {i}>"} for i in range(4601, 5001)]
    html = format_log_html(lines, 5000, 400, ["[end of log: run succeeded]"])
    assert "4,600 earlier lines not shown" in html and "&lt;line 5000&gt;" in html and "<line" not in html
    assert html.count('class="ds-log-line') == 400 and "end of log" in html
    err = format_log_html([{"seq": 1, "level": "ERROR", "message": "bad"}], 1, 400)
    assert "ds-log-err" in err


def test_samples_side_by_side() -> None:
    samples = [{"prompt": "2+2?", "ground_truth": "4", "set": "heldout",
                "base": {"response": "5", "answer": "5", "correct": False},
                "sft": {"response": "<think>2+2=4</think> 4", "answer": "4", "correct": True}}]
    html = samples_html(samples)
    assert html.count('class="ds-col"') == 2 and "ground truth: <b>4</b>" in html
    assert "base ✗" in html and "SFT ✓" in html


def test_metrics_frame_is_long_and_typed() -> None:
    df = metrics_frame([{"step": 1, "loss": 2.0, "ce": 1.9, "kl": None}, {"step": 2, "eval_loss": 1.5}])
    assert set(df["series"]) == {"loss", "ce", "eval_loss"}
    assert str(df["step"].dtype) == "float64" and str(df["value"].dtype) == "float64"
    empty = metrics_frame([], ("loss",))
    assert str(empty["value"].dtype) == "float64"  # else the chart gets a categorical axis


# --------------------------------------------------------------------------- Runs and Compare

def test_runs_frame_columns(cat: Catalog) -> None:
    run = {"id": 3, "name": "demo", "status": "succeeded", "progress": 1.0, "config": {"model": "tiny-random",
           "dataset": "builtin:reasoning"}, "started_at": "2024-01-01T10:00:00Z", "finished_at": "2024-01-01T10:01:05Z",
           "summary": {"sft": {"accuracy": 0.5}, "deltas": {"accuracy": 0.25},
                       "accuracy_test": {"p_value": 0.5, "significant": False}}}
    job = {"id": 4, "name": "bench", "status": "queued", "parent_id": 3, "config": {}}
    df = runs_frame([run, job], cat)
    row = df.iloc[0].to_dict()
    assert row["ID"] == 3 and row["Status"] == "✔ succeeded" and row["Progress"] == "100%"
    assert row["Duration"] == "1m 05s" and row["SFT accuracy"] == "50.0%" and row["Δ accuracy"] == "+25.0 pp (n.s.)"
    assert df.iloc[1]["Name"] == "bench (benchmarks of #3)"


def test_compare_uses_catalog_labels_and_suites(cat: Catalog) -> None:
    run = {"id": 3, "name": "demo", "status": "succeeded", "config": {"epochs": 1.0},
           "summary": {"base": {"accuracy": 0.25}, "sft": {"accuracy": 0.5}, "deltas": {"accuracy": 0.25},
                       "benchmarks": {"gsm8k": BLOCK}}}
    html = compare_html([run], cat)
    assert "Accuracy" in html and "25.0% → 50.0%" in html and "(+25.0 pp)" in html
    assert "gsm8k: 10.0%" in html and "n.s. p = 0.5" in html
