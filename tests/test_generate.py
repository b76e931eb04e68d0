"""The in-process engine: batched rows (base and SFT side by side) answer what one-prompt-at-a-time
generation answers; per-row sampling is seeded and independent of the batch; stops, limits, streaming
and the thinking budget work per row."""

from __future__ import annotations

import copy

import pytest
import torch

from distill.data.builtin import SYSTEM_PROMPT
from distill.data.prepare import to_prompt_completion
from distill.data.sources import load_examples
from distill.generation.engine import EngineError, GenerationCancelled, Prompt, Sampling
from distill.generation.hf import HFEngine, render, stop_token_ids
from distill.models import load_model
from distill.reasoning import THINK_CLOSE, Split
from distill.threads import ThreadTuner

MAX_NEW = 10


@pytest.fixture(scope="module")
def convs() -> list[list[dict]]:
    examples, _ = load_examples("builtin:reasoning", 7, split="eval")
    out = [to_prompt_completion(e, SYSTEM_PROMPT)["prompt"] for e in examples]
    out.append([{"role": "user", "content": "Hi"}])  # a much shorter prompt: plenty of left padding in its batch
    return out


@pytest.fixture(scope="module")
def peft_model(random_lora_model):
    return random_lora_model


@pytest.fixture(scope="module")
def engine(peft_model, tiny_tokenizer) -> HFEngine:
    return HFEngine.for_pair(peft_model, tiny_tokenizer, batch_size=6, tune_threads=False)


def _one_at_a_time(model, tok, convs, base: bool) -> list[tuple[str, int]]:
    stops = stop_token_ids(tok)
    out = []
    for conv in convs:
        enc = tok(render(tok, Prompt(model="x", messages=conv)), return_tensors="pt", add_special_tokens=False)
        ctx = model.disable_adapter() if base else torch.no_grad()
        with ctx, torch.inference_mode():
            seq = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tok.pad_token_id, top_k=None)
        new = seq[0, enc["input_ids"].shape[1]:].tolist()
        n = next((k + 1 for k, t in enumerate(new) if t in stops), len(new))
        out.append((tok.decode([t for t in new[:n] if t not in stops], skip_special_tokens=True).strip(), n))
    return out


def _prompts(convs, models=("base", "sft"), **sampling) -> list[Prompt]:
    s = Sampling(max_new_tokens=MAX_NEW, **sampling)
    return [Prompt(model=m, messages=c, sampling=s) for c in convs for m in models]


def test_batched_base_and_sft_match_one_at_a_time(engine, peft_model, tiny_tokenizer, convs):
    gens = engine.generate(_prompts(convs))
    want_base = _one_at_a_time(peft_model, tiny_tokenizer, convs, base=True)
    want_sft = _one_at_a_time(peft_model, tiny_tokenizer, convs, base=False)
    assert [(g.text, g.new_tokens) for g in gens[0::2]] == want_base
    assert [(g.text, g.new_tokens) for g in gens[1::2]] == want_sft
    assert want_base != want_sft  # the adapter matters, so rows were not mixed up unnoticed
    assert all(g.finish_reason in ("stop", "length") and g.prompt_tokens > 0 for g in gens)
    assert all(g.finish_reason == "stop" for g in gens if g.new_tokens < MAX_NEW)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batch_size_and_thread_tuning_do_not_change_the_answers(peft_model, tiny_tokenizer, convs, batch_size):
    ref = HFEngine.for_pair(peft_model, tiny_tokenizer, batch_size=len(convs) * 2, tune_threads=False)
    got = HFEngine.for_pair(peft_model, tiny_tokenizer, batch_size=batch_size, tune_threads=True)
    assert [(g.text, g.new_tokens) for g in got.generate(_prompts(convs))] == \
        [(g.text, g.new_tokens) for g in ref.generate(_prompts(convs))]


def test_seeded_sampling_does_not_depend_on_the_batch(engine, convs):
    def sampled(seed: int) -> Prompt:
        return Prompt(model="sft", messages=convs[0],
                      sampling=Sampling(max_new_tokens=MAX_NEW, temperature=0.9, top_p=0.9, seed=seed))

    alone = engine.generate([sampled(7)])[0].text
    crowd = engine.generate([sampled(7), *_prompts(convs[1:4]), sampled(8)])
    assert crowd[0].text == alone  # same seed, other rows around it: same text
    assert crowd[-1].text != alone  # another seed: another sample
    greedy = engine.generate(_prompts(convs[:1], models=("sft",)))[0].text
    assert alone != greedy


def test_per_row_limits_stops_and_streaming(engine, convs):
    prompts = [Prompt(model="sft", messages=convs[0], sampling=Sampling(max_new_tokens=3)),
               Prompt(model="base", messages=convs[0], sampling=Sampling(max_new_tokens=9))]
    deltas: dict[int, str] = {0: "", 1: ""}
    gens = engine.generate(prompts, on_delta=lambda i, d: deltas.__setitem__(i, deltas[i] + d))
    assert gens[0].new_tokens <= 3 and gens[1].new_tokens <= 9
    assert [deltas[0].strip(), deltas[1].strip()] == [gens[0].text, gens[1].text]
    full = engine.generate([Prompt(model="sft", messages=convs[0], sampling=Sampling(max_new_tokens=MAX_NEW))])[0]
    assert len(full.text) > 2, "needs some text to cut at"
    stop = full.text[2:4]
    cut = engine.generate([Prompt(model="sft", messages=convs[0],
                                  sampling=Sampling(max_new_tokens=MAX_NEW, stop=(stop,)))])[0]
    assert cut.finish_reason == "stop" and stop not in cut.text and full.text.startswith(cut.text)


def test_thinking_budget_forces_the_thought_closed(engine, tiny_tokenizer, convs):
    text = render(tiny_tokenizer, Prompt(model="sft", messages=convs[0])) + "<think>\n"  # the model starts thinking
    free = engine.generate([Prompt(model="sft", text=text, sampling=Sampling(max_new_tokens=24))])[0]
    assert THINK_CLOSE not in free.text and not free.forced and free.think_tokens == free.new_tokens
    forced = engine.generate([Prompt(model="sft", text=text, sampling=Sampling(max_new_tokens=24,
                                                                             max_thinking_tokens=5))])[0]
    split = Split.of(forced.text, in_thought=True)
    assert forced.forced and split.closed, forced.text
    assert len(tiny_tokenizer(split.thought, add_special_tokens=False)["input_ids"]) <= 6
    assert forced.new_tokens > 5 + 2  # it went on after the forced close: the answer part


def test_unknown_model_and_cancel(engine, convs):
    with pytest.raises(EngineError, match="unknown model 'nope'"):
        engine.generate([Prompt(model="nope", messages=convs[0])])
    with pytest.raises(GenerationCancelled):
        engine.generate(_prompts(convs), should_cancel=lambda: True)


def test_two_separate_models_answer_as_the_adapter_pair_does(engine, peft_model, tiny_tokenizer, tiny_model_path, convs):
    merged = copy.deepcopy(peft_model).merge_and_unload()  # full weights: what a full fine-tune serves
    plain = load_model(tiny_model_path).double().eval()
    pair = HFEngine.for_pair(merged, tiny_tokenizer, base=plain, tune_threads=False)
    want = [(g.text, g.new_tokens) for g in engine.generate(_prompts(convs[:3]))]
    assert [(g.text, g.new_tokens) for g in pair.generate(_prompts(convs[:3]))] == want


def test_thread_tuner_uses_the_count_its_probe_finds_fastest_and_probes_again_later(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    tuner = ThreadTuner(reprobe_s=10.0)
    assert tuner.candidates == [4, 2, 1]
    costs = {4: 3.0, 2: 1.0, 1: 2.0}
    monkeypatch.setattr(tuner, "_probe_cost", lambda n: costs[n])
    now = [0.0]
    monkeypatch.setattr("distill.threads.time.monotonic", lambda: now[0])
    tuner.begin()
    tuner.end(1.0)
    assert tuner.current == 2 and tuner.n_probes == 1
    costs.update({4: 0.5})  # the machine got quiet
    now[0] = 5.0
    tuner.begin()
    assert tuner.current == 2 and tuner.n_probes == 1  # not yet
    now[0] = 11.0
    tuner.begin()
    assert tuner.current == 4 and tuner.n_probes == 2
    assert tuner.summary()["threads_used"] == {"2": 1}


def test_thread_tuner_probe_runs_for_real():
    tuner = ThreadTuner.for_device("cpu") or ThreadTuner(max_threads=2)
    tuner.begin()
    tuner.end(1.0)
    tuner.restore()
    assert set(tuner.probes) == set(tuner.candidates) and all(v > 0 for v in tuner.probes.values())


def test_thread_tuner_is_off_where_it_cannot_help(monkeypatch):
    assert ThreadTuner.for_device("cuda") is None
    monkeypatch.setenv("DISTILL_THREAD_TUNING", "0")
    assert ThreadTuner.for_device("cpu") is None


def test_sampling_follows_temperature_and_top_p():
    """Inverse-CDF sampling within the nucleus: empirical frequencies against the softmax by hand."""
    from distill.generation.hf import sample

    scores = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]).repeat(20_000, 1)
    g = torch.Generator().manual_seed(0)
    full = torch.bincount(sample(scores, torch.ones(20_000), torch.ones(20_000), torch.rand(20_000, generator=g)),
                          minlength=5) / 20_000
    assert torch.allclose(full, torch.softmax(scores[0], -1), atol=0.015)
    # top_p 0.7: the two likeliest (0.563 + 0.207 >= 0.7), renormalized to 0.731 / 0.269
    nucleus = torch.bincount(sample(scores, torch.ones(20_000), torch.full((20_000,), 0.7),
                                    torch.rand(20_000, generator=g)), minlength=5) / 20_000
    assert nucleus[2:].sum() == 0 and abs(float(nucleus[0]) - 0.731) < 0.015
    # a low temperature sharpens: at T = 0.25 the first token has 98 % of the mass
    cold = sample(scores[:2000], torch.full((2000,), 0.25), torch.ones(2000), torch.rand(2000, generator=g))
    assert float((cold == 0).float().mean()) > 0.95
