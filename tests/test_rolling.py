"""The rolling batch (serving, evaluation): rows that join a running batch at different steps, and leave it when
done, answer exactly what the static batches answer: greedy, seeded sampling, base and SFT rows side by side,
limits, stops and the thinking budget."""

from __future__ import annotations

import pytest

from distill.data.builtin import SYSTEM_PROMPT
from distill.data.prepare import to_prompt_completion
from distill.data.sources import load_examples
from distill.generation.engine import Generation, Prompt, Sampling
from distill.generation.hf import HFEngine, render
from distill.generation.rolling import Entry, RollingBatch


@pytest.fixture(scope="module")
def convs() -> list[list[dict]]:
    examples, _ = load_examples("builtin:reasoning", 5, split="eval")
    return [to_prompt_completion(e, SYSTEM_PROMPT)["prompt"] for e in examples] + [[{"role": "user", "content": "Hi"}]]


@pytest.fixture(scope="module")
def engine(random_lora_model, tiny_tokenizer) -> HFEngine:
    return HFEngine.for_pair(random_lora_model, tiny_tokenizer, batch_size=64, tune_threads=False)


@pytest.fixture(scope="module")
def static(random_lora_model, tiny_tokenizer) -> HFEngine:
    """The reference: static batches (transformers' generate)."""
    return HFEngine.for_pair(random_lora_model, tiny_tokenizer, batch_size=64, tune_threads=False, rolling=False)


def _roll(engine: HFEngine, prompts: list[Prompt], joins: dict[int, list[int]],
          stop_after: dict[int, int] | None = None) -> tuple[dict[int, Generation], dict[int, str], int]:
    """Run the rolling batch: prompts ``joins[step]`` join at that step; ``stop_after[i]``: prompt i's caller
    goes away after that many deltas. Returns the generations, the streamed text and the steps taken."""
    batch, out, streamed, step = RollingBatch(engine), {}, {i: "" for i in range(len(prompts))}, 0
    stop_after = stop_after or {}
    counts = dict.fromkeys(range(len(prompts)), 0)

    def delta(i: int):
        def on(d: str) -> None:
            streamed[i] += d
            counts[i] += 1
        return on

    while step <= max(joins) or len(batch):
        batch.add([Entry(prompts[i], on_delta=delta(i), on_done=lambda g, i=i: out.__setitem__(i, g),
                         stopped=lambda i=i: i in stop_after and counts[i] >= stop_after[i])
                   for i in joins.get(step, [])])
        batch.step()
        step += 1
    return out, streamed, step


def test_rows_joining_at_different_steps_answer_as_the_static_engine(engine, static, convs):
    s = Sampling(max_new_tokens=12)
    prompts = [Prompt(model=m, messages=c, sampling=s) for c in convs for m in ("base", "sft")]
    want = static.generate(prompts)
    got, streamed, _ = _roll(engine, prompts, {0: [0, 1, 2], 3: [3, 4, 5, 6], 7: [7, 8], 8: [9, 10, 11]})
    assert [(got[i].text, got[i].new_tokens, got[i].finish_reason) for i in range(len(prompts))] == \
        [(g.text, g.new_tokens, g.finish_reason) for g in want]
    assert [streamed[i].strip() for i in range(len(prompts))] == [g.text for g in want]
    assert want[0].text != want[1].text  # base and SFT differ: rows were not mixed up unnoticed


def test_seeded_sampling_limits_stops_and_budget_match_the_static_engine(engine, static, tiny_tokenizer, convs):
    thinking = render(tiny_tokenizer, Prompt(model="sft", messages=convs[0])) + "<think>\n"
    full = static.generate([Prompt(model="sft", messages=convs[1], sampling=Sampling(max_new_tokens=12))])[0]
    prompts = [
        Prompt(model="sft", messages=convs[0], sampling=Sampling(max_new_tokens=10, temperature=0.9, top_p=0.9, seed=7)),
        Prompt(model="base", messages=convs[2], sampling=Sampling(max_new_tokens=3)),
        Prompt(model="sft", messages=convs[1], sampling=Sampling(max_new_tokens=12, stop=(full.text[2:4],))),
        Prompt(model="sft", text=thinking, sampling=Sampling(max_new_tokens=16, max_thinking_tokens=4)),
    ]
    want = static.generate(prompts)
    got, _, _ = _roll(engine, prompts, {0: [1], 1: [0, 2], 2: [3]})
    assert [(got[i].text, got[i].new_tokens, got[i].forced) for i in range(4)] == \
        [(g.text, g.new_tokens, g.forced) for g in want]
    assert got[1].new_tokens <= 3 and got[2].finish_reason == "stop" and got[3].forced


def test_a_row_whose_caller_left_stops_and_the_others_go_on(engine, static, convs):
    s = Sampling(max_new_tokens=12)
    prompts = [Prompt(model="sft", messages=c, sampling=s) for c in convs[:3]]
    want = static.generate(prompts)
    got, streamed, _ = _roll(engine, prompts, {0: [0, 1, 2]}, stop_after={1: 2})
    assert got[1].finish_reason == "stop" and got[1].new_tokens < want[1].new_tokens
    assert [got[i].text for i in (0, 2)] == [want[i].text for i in (0, 2)]


def test_a_row_whose_model_was_removed_ends_with_the_error(engine, convs):
    batch, out = RollingBatch(engine), {}
    engine.targets["gone"] = engine.targets["sft"]
    batch.add([Entry(Prompt(model=m, messages=convs[0], sampling=Sampling(max_new_tokens=8)),
                     on_done=lambda g, m=m: out.__setitem__(m, g)) for m in ("gone", "base")])
    del engine.targets["gone"]
    batch.drop_missing(lambda m: LookupError(f"model {m} removed"))
    assert isinstance(out["gone"], LookupError) and "gone" in str(out["gone"]) and len(batch) == 1
    while len(batch):
        batch.step()
    assert isinstance(out["base"], Generation) and out["base"].new_tokens > 0


def test_supports_full_attention_models(engine, tiny_tokenizer):
    assert RollingBatch.supports(engine.targets["sft"][0], tiny_tokenizer)


def test_rows_whose_prefill_fails_end_with_the_error_and_the_batch_goes_on(engine, convs):
    batch, out = RollingBatch(engine), {}
    batch.add([Entry(Prompt(model="base", messages=convs[0], sampling=Sampling(max_new_tokens=6)),
                     on_done=lambda g: out.__setitem__("ok", g))])
    bad = Prompt(model="sft", messages=[{"role": "nobody", "content": None}], sampling=Sampling(max_new_tokens=6))
    batch.add([Entry(bad, on_done=lambda g: out.__setitem__("bad", g))])
    assert isinstance(out["bad"], Exception) and len(batch) == 1
    while len(batch):
        batch.step()
    assert isinstance(out["ok"], Generation) and out["ok"].new_tokens > 0
