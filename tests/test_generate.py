"""Batched generation (left padding, rows sorted by length, base and SFT rows in one batch) answers
exactly what one-prompt-at-a-time generation answers, greedy, on the tiny model."""

from __future__ import annotations

import pytest
import torch

from distill.data.builtin import SYSTEM_PROMPT
from distill.data.prepare import to_prompt_completion
from distill.data.sources import load_examples
from distill.evaluation.compare import EvalItem, ModelPair, generate_pair
from distill.evaluation.generate import ThreadTuner, _length_to_stop, generate_responses, render_prompts, stop_token_ids
from distill.models import load_model

MAX_NEW = 10


@pytest.fixture(scope="module")
def convs() -> list[list[dict]]:
    examples, _ = load_examples("builtin:reasoning", 7, split="eval")
    out = [to_prompt_completion(e, SYSTEM_PROMPT)["prompt"] for e in examples]
    out.append([{"role": "user", "content": "Hi"}])  # a much shorter prompt: plenty of left padding in its batch
    return out


@pytest.fixture(scope="module")
def peft_model(tiny_model_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_model(tiny_model_path), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                                   task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # an adapter that changes the answers
    # float64: the check is of the batching logic (padding, positions, masks, per-row adapters, stopping),
    # not of float32 summation order, which may legitimately differ between a batch and a single row
    return model.double().eval()


def _one_at_a_time(model, tok, convs, base: bool) -> list[tuple[str, int]]:
    stops = stop_token_ids(tok)
    out = []
    for text in render_prompts(tok, convs):
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        ctx = model.disable_adapter() if base else torch.no_grad()
        with ctx, torch.inference_mode():
            seq = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tok.pad_token_id, top_k=None)
        new = seq[0, enc["input_ids"].shape[1]:].tolist()
        n = _length_to_stop(new, stops)
        out.append((tok.decode(new[:n], skip_special_tokens=True).strip(), n))
    return out


def test_batched_base_and_sft_match_one_at_a_time(peft_model, tiny_tokenizer, convs):
    pair = ModelPair(sft=peft_model, gen_kwargs=dict(max_new_tokens=MAX_NEW, batch_size=6))
    base, sft = generate_pair(pair, tiny_tokenizer, [EvalItem(messages=c) for c in convs])
    want_base = _one_at_a_time(peft_model, tiny_tokenizer, convs, base=True)
    want_sft = _one_at_a_time(peft_model, tiny_tokenizer, convs, base=False)
    assert [(g.text, g.new_tokens) for g in base] == want_base
    assert [(g.text, g.new_tokens) for g in sft] == want_sft
    assert want_base != want_sft  # the adapter matters, so rows were not mixed up unnoticed


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batch_size_and_thread_tuning_do_not_change_the_answers(peft_model, tiny_tokenizer, convs, batch_size):
    ref = generate_responses(peft_model, tiny_tokenizer, convs, max_new_tokens=MAX_NEW, batch_size=len(convs),
                             tune_threads=False)
    got = generate_responses(peft_model, tiny_tokenizer, convs, max_new_tokens=MAX_NEW, batch_size=batch_size,
                             tune_threads=True)
    assert [(g.text, g.new_tokens) for g in got] == [(g.text, g.new_tokens) for g in ref]


def test_thread_tuner_uses_the_count_its_probe_finds_fastest_and_probes_again_later(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    tuner = ThreadTuner(reprobe_s=10.0)
    assert tuner.candidates == [4, 2, 1]
    costs = {4: 3.0, 2: 1.0, 1: 2.0}
    monkeypatch.setattr(tuner, "_probe_cost", lambda n: costs[n])
    now = [0.0]
    monkeypatch.setattr("distill.evaluation.generate.time.monotonic", lambda: now[0])
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
