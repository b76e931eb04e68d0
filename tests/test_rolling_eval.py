"""Evaluation through the rolling batch, problem by problem: the same answers as static batches (greedy and
seeded), rows of very different lengths, base and SFT side by side, the thinking budget; each problem written
and counted the moment its answers exist; cancel within one decode step; a resume that asks only what is
unfinished; a problem whose prefill fails failing alone; and against a slow stand-in server, answers kept while
the suite is half done, the server killed, and a resume asking only the unfinished problems."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from standin_teacher import MODEL, StandinTeacher

from distill.evaluation.benchmark import BenchmarkSettings, EvaluationFailed, run_suite
from distill.evaluation.suites import Problem, Suite
from distill.generation.engine import EngineError, GenerationCancelled, Prompt, Sampling
from distill.generation.hf import HFEngine, render
from distill.generation.remote import OpenAIEngine
from recording_engine import RecordingEngine

SUITE = Suite("sums", "math", "test", [Problem(f"p{i}", f"What is {i} plus {3 * i}? Explain.", str(4 * i))
                                       for i in range(7)])


@pytest.fixture(scope="module")
def rolling(random_lora_model, tiny_tokenizer) -> HFEngine:
    return HFEngine.for_pair(random_lora_model, tiny_tokenizer, batch_size=4, tune_threads=False)


@pytest.fixture(scope="module")
def static(random_lora_model, tiny_tokenizer) -> HFEngine:
    return HFEngine.for_pair(random_lora_model, tiny_tokenizer, batch_size=4, tune_threads=False, rolling=False)


def _answers(records: list[dict]) -> list[tuple]:
    return [(r["id"], m, s["text"], s["tokens"]) for r in records for m in ("base", "sft") for s in r[m]]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:]] if path.is_file() else []


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "seeded"])
def test_a_suite_answers_as_with_static_batches_and_is_written_problem_by_problem(rolling, static, tmp_path,
                                                                                   sampled):
    settings = BenchmarkSettings(max_new_tokens=24, num_samples=2 if sampled else 1,
                                 temperature=0.9 if sampled else 0.0, top_p=0.9)
    suite = Suite(SUITE.name, SUITE.grader, SUITE.source, SUITE.problems[:4] if sampled else SUITE.problems)
    seen: list[tuple[int, int]] = []
    path = tmp_path / "r" / "sums.jsonl"
    block, got = run_suite(rolling, suite, settings, tmp_path / "r",
                           on_progress=lambda _, done, total: seen.append((done, len(_lines(path)))))
    _, want = run_suite(static, suite, settings, tmp_path / "s")
    assert _answers(got) == _answers(want)
    assert seen == [(k, k) for k in range(len(suite.problems) + 1)]  # one problem at a time, on disk when counted
    assert any(r["base"][0]["text"] != r["sft"][0]["text"] for r in got)  # base and SFT rows were both there
    assert block["n_problems"] == len(suite.problems)


def test_rows_of_very_different_lengths_and_the_budget_match_static_batches(rolling, static, tiny_tokenizer):
    chat = [{"role": "user", "content": "Count from one to twenty, slowly."}]
    thinking = render(tiny_tokenizer, Prompt(model="sft", messages=chat)) + "<think>\n"
    prompts = [Prompt(model=m, messages=[{"role": "user", "content": "Hi" * (1 + 7 * k)}],
                      sampling=Sampling(max_new_tokens=(2, 40, 5, 150, 1)[k % 5]))
               for k in range(9) for m in ("base", "sft")]
    prompts += [Prompt(model="sft", text=thinking, sampling=Sampling(max_new_tokens=30, max_thinking_tokens=5))]
    got, want = rolling.generate(prompts), static.generate(prompts)
    assert [(g.text, g.new_tokens, g.forced) for g in got] == [(g.text, g.new_tokens, g.forced) for g in want]
    assert {g.new_tokens for g in got} >= {1, 2, 5} and max(g.new_tokens for g in got) > 130 and got[-1].forced


def test_cancel_stops_within_one_decode_step(rolling, random_lora_model):
    forwards = []
    hook = random_lora_model.register_forward_hook(lambda *_: forwards.append(1))
    flag: list[int] = []

    def on_delta(i: int, d: str) -> None:
        if len(forwards) >= 5 and not flag:
            flag.append(len(forwards))

    prompts = [Prompt(model="base", messages=[{"role": "user", "content": f"Tell me a story {i}"}],
                      sampling=Sampling(max_new_tokens=60)) for i in range(6)]
    try:
        with pytest.raises(GenerationCancelled):
            rolling.generate(prompts, on_delta=on_delta, should_cancel=lambda: bool(flag))
    finally:
        hook.remove()
    assert flag and len(forwards) == flag[0]  # not one forward after the cancel was asked


def test_a_cancelled_suite_resumes_asking_only_the_unfinished_problems(rolling, tmp_path):
    settings = BenchmarkSettings(max_new_tokens=24)
    done: list[int] = []
    with pytest.raises(GenerationCancelled):
        run_suite(rolling, SUITE, settings, tmp_path, on_progress=lambda _, n, __: done.append(n),
                  should_cancel=lambda: bool(done) and done[-1] >= 3)
    kept = {r["id"] for r in _lines(tmp_path / "sums.jsonl")}
    assert 3 <= len(kept) < len(SUITE.problems)
    asked = RecordingEngine(rolling)
    _, records = run_suite(asked, SUITE, settings, tmp_path)
    unfinished = [p for p in SUITE.problems if p.id not in kept]
    assert len(asked.prompts) == 2 * len(unfinished)
    assert {q.messages[-1]["content"] for q in asked.prompts} == {p.prompt for p in unfinished}
    _, fresh = run_suite(rolling, SUITE, settings, tmp_path / "fresh")
    assert _answers(records) == _answers(fresh)


def test_a_problem_whose_prefill_fails_fails_alone_with_a_clear_error(rolling, tmp_path):
    long = Problem("long", "one two three " * 3000, "1")
    suite = Suite("mixed", "math", "test", [*SUITE.problems[:3], long, *SUITE.problems[3:5]])
    with pytest.raises(EvaluationFailed, match=r"mixed: 1 of 6 problems got no answer \(first: problem 'long': "
                                               r"the prompt has \d+ tokens; the model's context is 8192 tokens\)"):
        run_suite(rolling, suite, BenchmarkSettings(max_new_tokens=12), tmp_path)
    assert [r["id"] for r in _lines(tmp_path / "mixed.jsonl")] != [] and \
        {r["id"] for r in _lines(tmp_path / "mixed.jsonl")} == {p.id for p in suite.problems} - {"long"}


def test_a_slow_server_killed_half_way_keeps_what_was_answered_and_a_resume_asks_only_the_rest(tmp_path):
    suite = Suite("slow", "math", "test", [Problem(f"q{i}", f"What is {i} plus {i}?", str(2 * i)) for i in range(12)])
    answers = {p.prompt: p.answer for p in suite.problems}
    settings = BenchmarkSettings(max_new_tokens=64)
    progress: list[int] = []
    failure: list[BaseException] = []
    with StandinTeacher(answers=answers, delay_s=0.4) as t:
        engine = OpenAIEngine(t.url, {"base": MODEL, "sft": MODEL}, concurrency=2, retries=0)

        def job() -> None:
            try:
                run_suite(engine, suite, settings, tmp_path, on_progress=lambda _, n, __: progress.append(n))
            except BaseException as e:  # noqa: BLE001 - checked below
                failure.append(e)

        worker = threading.Thread(target=job)
        worker.start()
        deadline = time.monotonic() + 30
        while len(_lines(tmp_path / "slow.jsonl")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        on_disk = len(_lines(tmp_path / "slow.jsonl"))
        assert 3 <= on_disk < len(suite.problems) and 3 <= max(progress) < len(suite.problems)
        t.stop()
        worker.join(30)
    assert isinstance(failure[0], EngineError) and f"the engine at {t.url} stopped answering" in str(failure[0])
    kept = {r["id"] for r in _lines(tmp_path / "slow.jsonl")}
    assert on_disk <= len(kept) < len(suite.problems)
    with StandinTeacher(answers=answers) as again:
        block, records = run_suite(OpenAIEngine(again.url, {"base": MODEL, "sft": MODEL}), suite, settings, tmp_path)
    assert sum(again.asked.values()) == 2 * (len(suite.problems) - len(kept))
    assert set(again.asked) == {p.prompt for p in suite.problems if p.id not in kept}
    assert block["base"]["pass@1"] == 1.0 and [r["id"] for r in records] == [p.id for p in suite.problems]
