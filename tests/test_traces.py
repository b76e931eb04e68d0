"""Trace generation (--mode generate) against a stand-in teacher on a real socket: the funnel, every --keep policy,
duplicates and planted benchmark problems taken out before any call, 429 / dropped connections / 5xx, resume
after a killed process, cancel, the token budget, and each bad input refused in one line before any teacher call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standin_teacher import MODEL, StandinTeacher

from distill.cli import main
from distill.config import ConfigError
from distill.errors import RunCancelled, UserError
from distill.pipeline import PipelineHooks, run_pipeline
from distill.resolve import resolve_config

ROOT = Path(__file__).resolve().parents[1]
# Six problems and what the teacher does with each of its four samples.
PROBLEMS = {
    "What is 11 plus 31 apples in the basket?": ("42", ["right", "wrong", "right_long", "cut"]),
    "How many legs do 3 spiders have in total?": ("24", ["wrong", "wrong", "no_answer", "wrong"]),
    "A train travels 60 km each hour for 2 hours. How far?": ("120", ["loop", "loop", "right", "loop"]),
    "Tom has 5 marbles and gets 4 more. How many now?": ("9", ["right", "right", "right_long", "wrong"]),
    "What is 7 times 8 when you multiply them?": ("56", ["429", "right", "wrong", "wrong", "wrong"]),
    "Half of 90 is how much exactly?": ("45", ["drop", "wrong", "right_long", "right", "right"]),
}


def write_problems(folder: Path, extra: list[dict] | None = None) -> Path:
    path = folder / "problems.jsonl"
    rows = [{"question": q, "answer": a} for q, (a, _) in PROBLEMS.items()] + (extra or [])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def teacher(**kw) -> StandinTeacher:
    return StandinTeacher(answers={q: a for q, (a, _) in PROBLEMS.items()},
                          script={q: s for q, (_, s) in PROBLEMS.items()}, **kw)


def gen_config(path: Path, t: StandinTeacher, out: Path, **kw):
    # One request at a time unless asked: a problem's samples then reach the teacher in order.
    values = {"mode": "generate", "dataset": str(path), "teacher_model": MODEL, "teacher_url": t.url,
              "model": "tiny-random", "num_generations": 4, "teacher_max_tokens": 40, "output_dir": str(out),
              "max_seq_length": 512, "engine_concurrency": 1, **kw}
    return resolve_config(values)


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("reasoning", ["reasoning_content", "reasoning", "inline"])
def test_the_funnel_counts_every_problem_and_trace(tmp_path, distill_home, reasoning):
    path = write_problems(tmp_path)
    with teacher(reasoning=reasoning) as t:
        result = run_pipeline(gen_config(path, t, tmp_path / "run"))
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report == result.data_report
    f = report["funnel"]
    assert (f["problems_read"], f["asked"], f["answered"], f["samples"], f["failed"]) == (6, 6, 6, 24, 0)
    assert f["correct"] == 2 + 0 + 1 + 3 + 1 + 3
    assert report["rejected"] == {"failed": 0, "looping": 3, "incomplete": 1, "no_answer": 1, "wrong": 9,
                                  "too_long": 0, "duplicate": 2, "not_selected": 0}
    assert f["kept"] == 8 and f["complete"] == 24 - 3 - 1
    assert report["teacher"]["pass@1"] == pytest.approx(10 / 24, abs=1e-4)
    lo, hi = report["teacher"]["pass@1_ci"]
    assert lo < 10 / 24 < hi
    assert report["teacher"]["pass@k"]["4"] == pytest.approx(5 / 6, abs=1e-4)  # every problem but the spiders
    assert report["teacher"]["looping_pct"] == pytest.approx(100 * 3 / 24, abs=0.01)

    rows = {r["problem"]: r for r in rows_of(tmp_path / "run")}
    apples = rows["What is 11 plus 31 apples in the basket?"]
    assert apples["verdicts"] == ["kept", "wrong", "kept", "incomplete"]
    assert apples["correctness_math_verify"] == [True, False, True, False]
    assert apples["is_reasoning_complete"] == [True, True, True, False] and apples["finish_reasons"][3] == "length"
    assert apples["generations"][0].startswith("<think>\nThe problem asks") and "</think>\n\nThe answer is" in \
        apples["generations"][0]
    assert rows["Tom has 5 marbles and gets 4 more. How many now?"]["verdicts"] == ["kept", "duplicate", "kept", "wrong"]
    # 429 with Retry-After and a dropped connection were retried: the problem lost no sample.
    assert t.outcomes["429"] == 1 and t.outcomes["drop"] == 1
    assert all(len(r["generations"]) == 4 for r in rows.values())

    kept = [json.loads(line) for line in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert len(kept) == 8
    assert all(r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"].startswith("<think>\n")
               for r in kept)
    assert {r["teacher"] for r in kept} == {MODEL} and all(r["num_tokens"] > 0 for r in kept)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "8 training rows" in card and "pass@1 41.7 %" in card


def test_every_keep_policy_re_judges_the_stored_traces_without_asking_again(tmp_path, distill_home):
    path = write_problems(tmp_path)
    with teacher() as t:
        run_pipeline(gen_config(path, t, tmp_path / "run"))
        asked = len(t.requests)
        kept = {}
        for keep in ("shortest_correct", "first_correct", "all", "all_correct"):
            run_pipeline(gen_config(path, t, tmp_path / "run", keep=keep, resume=True))
            kept[keep] = {r["problem"]: r["verdicts"] for r in rows_of(tmp_path / "run")}
        assert len(t.requests) == asked  # nothing asked again
    apples = "What is 11 plus 31 apples in the basket?"
    assert kept["all_correct"][apples] == ["kept", "wrong", "kept", "incomplete"]
    assert kept["first_correct"][apples] == ["kept", "wrong", "not_selected", "incomplete"]
    assert kept["shortest_correct"][apples] == ["kept", "wrong", "not_selected", "incomplete"]
    half = "Half of 90 is how much exactly?"  # right_long first, then a shorter right one
    assert kept["first_correct"][half] == ["wrong", "kept", "not_selected", "duplicate"]
    assert kept["shortest_correct"][half] == ["wrong", "not_selected", "kept", "duplicate"]
    assert kept["all"][apples] == ["kept", "kept", "kept", "incomplete"]  # unverified: the wrong one too
    assert kept["all"]["How many legs do 3 spiders have in total?"] == ["kept", "duplicate", "kept", "duplicate"]
    counts = {k: sum(v.count("kept") for v in rows.values()) for k, rows in kept.items()}
    assert counts == {"shortest_correct": 5, "first_correct": 5, "all": 14, "all_correct": 8}


def test_duplicates_and_planted_benchmark_problems_are_never_asked(tmp_path, distill_home):
    planted = "Compute the sum of all positive divisors of the number one hundred and twenty please."
    bench = tmp_path / "mybench.jsonl"
    bench.write_text(json.dumps({"problem": planted, "answer": "360"}) + "\n" +
                     json.dumps({"problem": "Short one?", "answer": "1"}) + "\n")
    extra = [{"question": "  what is 11 PLUS 31 apples in   the basket?", "answer": "42"},  # exact after normalising
             {"question": "What is 11 plus 31 apples in the basket?!", "answer": "42"},  # near: one token differs
             {"question": f"Hint first. {planted.lower()}", "answer": "360"},  # shares 8-grams with the benchmark
             {"question": "short one?", "answer": "1"}]  # shorter than 8 words, equal to a benchmark problem
    path = write_problems(tmp_path, extra)
    with teacher() as t:
        run_pipeline(gen_config(path, t, tmp_path / "run", dedup_jaccard=0.6,
                                decontaminate=[f"mybench={bench}?problem=problem&answer=answer&grader=math"]))
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    f = report["funnel"]
    assert (f["problems_read"], f["duplicates"], f["contaminated"], f["asked"]) == (10, 2, 2, 6)
    assert report["contaminated_by"] == {"mybench": 2}
    rows = rows_of(tmp_path / "run")
    assert len(rows) == 10 and sum(r["contaminated_mybench"] for r in rows) == 2
    assert {r["status"] for r in rows[6:]} == {"duplicate", "contaminated"}
    assert rows[6]["duplicate_of"] == rows[7]["duplicate_of"] == rows[0]["id"]
    asked = [m["content"] for r in t.requests for m in r["messages"] if m["role"] == "user"]
    assert len(set(asked)) == 6 and not any("divisors" in q or "short one" in q.lower() or "PLUS" in q for q in asked)


def test_the_default_decontamination_uses_the_benchmarks_that_load(tmp_path, distill_home):
    bench = tmp_path / "mine.jsonl"
    bench.write_text(json.dumps({"problem": "How many legs do 3 spiders have in total?", "answer": "24"}) + "\n")
    path = write_problems(tmp_path)
    with teacher() as t:
        # math500 is not reachable offline: skipped with a warning; mine is used.
        run_pipeline(gen_config(path, t, tmp_path / "run", benchmarks=[
            "heldout", "math500", f"mine={bench}?problem=problem&answer=answer&grader=math"]))
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["decontaminated_against"] == ["mine"] and "math500" in report["not_decontaminated"]
    assert report["funnel"]["contaminated"] == 1


def test_a_problem_failing_after_the_retries_is_recorded_and_the_job_goes_on(tmp_path, distill_home):
    path = write_problems(tmp_path)
    with teacher() as t:
        t.script["How many legs do 3 spiders have in total?"] = ["500"]
        result = run_pipeline(gen_config(path, t, tmp_path / "run", engine_concurrency=4))
    f = result.data_report["funnel"]
    assert (f["asked"], f["answered"], f["failed"]) == (6, 5, 1)
    spiders = next(r for r in rows_of(tmp_path / "run") if r["problem"].startswith("How many legs"))
    assert spiders["status"] == "failed" and "failed after 5 attempts (500)" in spiders["failure"]
    assert t.asked["How many legs do 3 spiders have in total?"] == 4 * 5  # 4 samples x (1 + 4 retries)


def test_the_token_budget_stops_cleanly_and_keeps_what_finished(tmp_path, distill_home):
    path = write_problems(tmp_path)
    with teacher() as t:
        result = run_pipeline(gen_config(path, t, tmp_path / "run", max_teacher_tokens=200, engine_concurrency=1))
    report = result.data_report
    f = report["funnel"]
    assert report["stopped"] == "budget"
    assert 1 <= f["answered"] < 6 and f["unasked"] == 6 - f["answered"]
    spent = report["tokens"]["prompt"] + report["tokens"]["completion"]
    assert 200 <= spent < 200 + 400  # stopped at the first problem past the budget (one costs under 400)
    assert len([r for r in rows_of(tmp_path / "run") if r["status"] == "answered"]) == f["answered"]


def test_cancel_keeps_finished_problems_and_resume_asks_only_the_others(tmp_path, distill_home):
    path = write_problems(tmp_path)
    with teacher(delay_s=0.05) as t:
        finished: list[int] = []
        hooks = PipelineHooks(on_progress=lambda done, total: finished.append(done),
                              should_cancel=lambda: len(finished) >= 2)
        with pytest.raises(RunCancelled, match="finished problems are kept"):
            run_pipeline(gen_config(path, t, tmp_path / "run", engine_concurrency=4), hooks)
        before = {r["problem"] for r in rows_of(tmp_path / "run") if r["status"] == "answered"}
        assert 2 <= len(before) < 6
        asked_before = dict(t.asked)
        run_pipeline(gen_config(path, t, tmp_path / "run", engine_concurrency=4, resume=True))
    rows = rows_of(tmp_path / "run")
    assert len(rows) == 6 and all(r["status"] == "answered" for r in rows)
    assert all(t.asked[q] == asked_before[q] for q in before)  # a finished problem is never asked again


@pytest.mark.slow
def test_a_killed_process_loses_no_finished_problem_and_resume_has_no_duplicate(tmp_path, distill_home):
    counts = {f"Count to {i} and say the number you reach?": str(i) for i in range(10, 46)}
    path = tmp_path / "counts.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in counts.items()))
    out = tmp_path / "run"
    args = [sys.executable, str(ROOT / "run_distillation_pipeline.py"), "--mode", "generate", "--dataset", str(path),
            "--teacher_model", MODEL, "--model", "tiny-random", "--num_generations", "2", "--teacher_max_tokens",
            "40", "--engine_concurrency", "2", "--output_dir", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with StandinTeacher(answers=counts, delay_s=0.1) as t:
        args += ["--teacher_url", t.url]
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(rows_of(out) if (out / "generations.jsonl").is_file() else []) < 5:
            assert proc.poll() is None and time.monotonic() < deadline, "the job ended before it was killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        survived = {r["problem"] for r in rows_of(out)}
        asked_at_kill = dict(t.asked)
        assert 5 <= len(survived) < 36
        done = subprocess.run([*args, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_of(out)
    assert len(rows) == 36 and len({r["id"] for r in rows}) == 36 and all(r["status"] == "answered" for r in rows)
    assert all(t.asked[q] == asked_at_kill[q] == 2 for q in survived)
    assert f"{len(survived)} of 36 problems already answered" in done.stderr


def test_a_teacher_that_goes_down_fails_the_job_in_one_line_and_keeps_what_it_finished(tmp_path, distill_home):
    path = write_problems(tmp_path, [{"question": f"Say the number {i} back to me now?", "answer": str(i)}
                                     for i in range(10, 60)])
    t = teacher(delay_s=0.05)
    with t:
        finished: list[int] = []

        def progress(done: int, total: int) -> None:
            finished.append(done)
            if done == 3:
                t.stop()

        with pytest.raises(UserError, match=rf"the teacher at {t.url} stopped answering"):
            run_pipeline(gen_config(path, t, tmp_path / "run", engine_concurrency=3), PipelineHooks(on_progress=progress))
    assert 3 <= len([r for r in rows_of(tmp_path / "run") if r["status"] == "answered"]) < 56


def test_bad_input_is_one_line_naming_the_flag_before_any_teacher_call(tmp_path, distill_home, monkeypatch):
    good = write_problems(tmp_path)
    no_answer = tmp_path / "noanswer.jsonl"
    no_answer.write_text(json.dumps({"question": "What is 2 + 2?", "note": "x"}) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"question": "", "answer": ""}) + "\n")
    with teacher() as t:
        base = {"mode": "generate", "teacher_model": MODEL, "teacher_url": t.url, "dataset": str(good),
                "model": "tiny-random"}
        cases = [("dataset", {"dataset": str(no_answer)}), ("dataset", {"dataset": "nosuchsuite=x.jsonl"}),
                 ("dataset", {"dataset": str(empty)}), ("keep", {"keep": "shortest"}),
                 ("num_generations", {"num_generations": 0}), ("teacher_prompt", {"teacher_prompt": "no placeholder"}),
                 ("decontaminate", {"decontaminate": ["nosuchsuite"]}), ("teacher_model", {"teacher_model": None})]
        for flag, change in cases:
            with pytest.raises(ConfigError) as err:
                resolve_config({**base, **change})
            message = str(err.value)
            assert "\n" not in message and f"--{flag}" in message and err.value.issues[0][0] == flag, message
        with pytest.raises(ConfigError, match="--dataset: .*no usable problem"):
            resolve_config({**base, "dataset": str(empty)})
        with pytest.raises(ConfigError, match="--dataset: .*no answer column .*problem=COL&answer=COL"):
            resolve_config({**base, "dataset": str(no_answer)})
        with pytest.raises(ConfigError, match="--dataset: benchmark 'nosuchsuite': file x.jsonl not found"):
            resolve_config({**base, "dataset": "nosuchsuite=x.jsonl"})
        # The server is asked only once the input is sound: none of the above reached it.
        assert t.requests == []
        with pytest.raises(UserError, match=rf"the teacher at {t.url} does not serve model 'gpt-9'"):
            run_pipeline(resolve_config({**base, "teacher_model": "gpt-9", "output_dir": str(tmp_path / "a")}))
    unreachable = rf"cannot reach the teacher at {t.url} for model 'standin-r1' \(connection refused\)"
    with pytest.raises(UserError, match=unreachable):
        run_pipeline(resolve_config({**base, "output_dir": str(tmp_path / "b")}))
    with StandinTeacher(key="sesame") as locked:
        with pytest.raises(UserError, match="refused the API key .*DISTILL_TEACHER_API_KEY"):
            run_pipeline(resolve_config({**base, "teacher_url": locked.url, "output_dir": str(tmp_path / "c")}))
        monkeypatch.setenv("DISTILL_TEACHER_API_KEY", "sesame")
        run_pipeline(resolve_config({**base, "teacher_url": locked.url, "output_dir": str(tmp_path / "d"),
                                     "max_samples": 1}))
    assert len(locked.requests) == 4
    assert not any("sesame" in p.read_text() for p in (tmp_path / "d").iterdir() if p.is_file())


def test_generate_then_train_on_the_kept_traces_from_the_cli(tmp_path, distill_home):
    path = write_problems(tmp_path)
    with teacher() as t:
        assert main(["--mode", "generate", "--dataset", str(path), "--teacher_model", MODEL, "--teacher_url", t.url,
                     "--model", "tiny-random", "--teacher_max_tokens", "40", "--output_dir", str(tmp_path / "gen")]) == 0
    assert main(["--mode", "train", "--dataset", str(tmp_path / "gen" / "dataset.jsonl"), "--model", "tiny-random",
                 "--epochs", "1", "--output_dir", str(tmp_path / "train")]) == 0
    report = json.loads((tmp_path / "train" / "data_report.json").read_text())
    assert report["rows_kept"] == 8 and (tmp_path / "train" / "final_model" / "adapter_config.json").is_file()


def test_mode_all_with_a_teacher_generates_trains_and_evaluates_on_held_out_problems(tmp_path, distill_home):
    path = write_problems(tmp_path, [{"question": f"What is {i} plus {i} apples in total?", "answer": str(2 * i)}
                                     for i in range(1, 9)])
    stages: list[str] = []
    with teacher() as t:
        cfg = gen_config(path, t, tmp_path / "run", mode="all", eval_samples=3, epochs=1, general_prompts=False,
                         max_new_tokens=8, benchmarks=["heldout"])
        result = run_pipeline(cfg, PipelineHooks(on_stage=stages.append))
    assert stages == ["load", "data", "generate", "load", "data", "train", "evaluate", "save"]
    f = result.data_report["funnel"]
    assert (f["problems_read"], f["held_out"], f["asked"]) == (14, 3, 11)
    held = [r["prompt"] for r in result.evaluation["benchmark_samples"]["heldout"]]
    asked = {m["content"] for r in t.requests for m in r["messages"] if m["role"] == "user"}
    assert len(held) == 3 and not any(h in q for h in held for q in asked)  # never sent to the teacher
    assert result.data_report["rows_kept"] == f["kept"]


def test_the_report_so_far_counts_what_the_final_report_says(tmp_path, distill_home):
    """While a job runs the API answers rows_report over the rows written so far: on the finished rows it must
    agree with data_report.json."""
    from distill.traces.run import rows_report

    path = write_problems(tmp_path, [{"question": "  what is 11 PLUS 31 apples in   the basket?", "answer": "42"}])
    with teacher() as t:
        config = gen_config(path, t, tmp_path / "run")
        final = run_pipeline(config).data_report
    live = rows_report(config, rows_of(tmp_path / "run"))
    assert live["live"] and not final["live"]
    assert {k: v for k, v in live["funnel"].items() if v is not None} == {
        k: final["funnel"][k] for k in ("duplicates", "contaminated", "answered", "failed", "samples", "complete",
                                        "correct", "kept")}
    assert live["funnel"]["duplicates"] == 1 and live["funnel"]["problems_read"] is None
    assert (live["rejected"], live["teacher"], live["tokens"]) == (final["rejected"], final["teacher"], final["tokens"])
