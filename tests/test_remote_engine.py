"""The ``openai`` engine (the official SDK) against a stand-in reasoning server: the thought it returns apart
(``reasoning_content``, ``reasoning``) joined back as ``<think>…</think>``, plain and streamed; a reply cut off
inside the thought; evaluation keeping its thinking diagnostics; 429 with Retry-After honoured."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from standin_teacher import MODEL, StandinTeacher

from distill.evaluation.benchmark import BenchmarkSettings, run_suite
from distill.evaluation.suites import Problem, Suite
from distill.generation.engine import EngineError, Prompt, Sampling
from distill.generation.remote import OpenAIEngine
from distill.reasoning import Split

QUESTION = "What is 20 plus 22 in total?"


def _prompt(**sampling) -> Prompt:
    return Prompt(model="sft", messages=[{"role": "user", "content": QUESTION}], sampling=Sampling(**sampling))


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_thought_returned_apart_is_joined_back_plain_and_streamed(field):
    with StandinTeacher(answers={QUESTION: "42"}, reasoning=field) as t:
        engine = OpenAIEngine(t.url, {"sft": MODEL})
        (plain,) = engine.generate([_prompt(max_new_tokens=64)])
        deltas: list[str] = []
        (streamed,) = engine.generate([_prompt(max_new_tokens=64)], on_delta=lambda i, d: deltas.append(d))
    assert plain.text == "<think>\nThe problem asks for a number. Working it out gives 42.\n</think>\n\n" \
                         "The answer is \\boxed{42}."
    split = Split.of(streamed.text)
    assert split.closed and split.answer.startswith("The answer is \\boxed{42}")
    assert "".join(deltas).strip() == streamed.text
    assert plain.new_tokens == 15 and 0 < plain.think_tokens < 15 and plain.finish_reason == "stop"


def test_a_reply_cut_off_inside_the_thought_stays_open():
    with StandinTeacher(answers={QUESTION: "42"}, default=["cut"]) as t:
        (gen,) = OpenAIEngine(t.url, {"sft": MODEL}).generate([_prompt(max_new_tokens=10)])
    split = Split.of(gen.text)
    assert gen.finish_reason == "length" and split.opened and not split.closed and split.answer == ""


def test_evaluation_against_a_reasoning_server_keeps_its_thinking_diagnostics(tmp_path: Path):
    suite = Suite("sums", "math", "test", [Problem(str(i), f"What is {i} plus {i}?", str(2 * i)) for i in range(3)])
    answers = {f"What is {i} plus {i}?": str(2 * i) for i in range(3)}
    with StandinTeacher(answers=answers) as t:
        engine = OpenAIEngine(t.url, {"base": MODEL, "sft": MODEL})
        block, records = run_suite(engine, suite, BenchmarkSettings(max_new_tokens=64), tmp_path)
    for side in ("base", "sft"):
        assert block[side]["pass@1"] == 1.0 and block[side]["think_closed_pct"] == 100.0
        assert block[side]["think_tokens_mean"] > 0
    assert all(r["sft"][0]["extracted"] == r["gold"] for r in records)


def test_429_with_retry_after_is_waited_for_and_the_request_succeeds():
    with StandinTeacher(answers={QUESTION: "42"}, default=["429", "right"], retry_after="1") as t:
        t0 = time.monotonic()
        (gen,) = OpenAIEngine(t.url, {"sft": MODEL}).generate([_prompt(max_new_tokens=64)])
        waited = time.monotonic() - t0
    assert "\\boxed{42}" in gen.text and t.outcomes["429"] == 1 and 1.0 <= waited < 5.0


def test_a_request_refused_as_bad_fails_the_call_in_one_line_naming_the_server():
    with StandinTeacher(answers={QUESTION: "42"}, default=["500"]) as t:
        with pytest.raises(EngineError, match=rf"the engine at {t.url} failed after 2 attempts \(500\)"):
            OpenAIEngine(t.url, {"sft": MODEL}, retries=1).generate([_prompt(max_new_tokens=8)])


def test_a_slow_answer_is_waited_for_up_to_the_timeout_then_given_up_in_one_line():
    with StandinTeacher(answers={QUESTION: "42"}, delay_s=0.6) as t:
        (gen,) = OpenAIEngine(t.url, {"sft": MODEL}, timeout_s=5).generate([_prompt(max_new_tokens=64)])
        assert "\\boxed{42}" in gen.text and gen.time_s >= 0.6
        t0 = time.monotonic()
        with pytest.raises(EngineError, match=rf"the engine at {t.url} stopped answering \(timed out\)"):
            OpenAIEngine(t.url, {"sft": MODEL}, timeout_s=0.2, retries=1).generate([_prompt(max_new_tokens=8)])
        assert time.monotonic() - t0 < 3
