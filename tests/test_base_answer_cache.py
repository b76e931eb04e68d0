"""The base model's answers kept across runs (``--base_answers_dir``): a second run with the same base model,
prompts and sampling reads them instead of asking; the fine-tuned model is always asked; a different setting or
base model misses."""

from __future__ import annotations

import pytest

from distill.data.builtin import SYSTEM_PROMPT
from distill.data.prepare import to_prompt_completion
from distill.data.sources import load_examples
from distill.generation.cache import BaseAnswerCache, CachingEngine
from distill.generation.engine import Prompt, Sampling
from distill.generation.hf import HFEngine
from recording_engine import RecordingEngine


@pytest.fixture(scope="module")
def engine(random_lora_model, tiny_tokenizer) -> HFEngine:
    return HFEngine.for_pair(random_lora_model, tiny_tokenizer, batch_size=4, tune_threads=False)


def _prompts(n: int = 3, **sampling) -> list[Prompt]:
    examples, _ = load_examples("builtin:reasoning", n, split="eval")
    s = Sampling(max_new_tokens=8, **sampling)
    return [Prompt(model=m, messages=to_prompt_completion(e, SYSTEM_PROMPT)["prompt"], sampling=s)
            for e in examples for m in ("base", "sft")]


def test_a_second_run_reads_the_base_answers_and_asks_the_fine_tuned_model(engine, tmp_path):
    prompts = _prompts()
    identity = {"base": "tiny-random", "engine": "hf"}
    first = RecordingEngine(engine)
    got_first = CachingEngine(first, BaseAnswerCache(tmp_path, identity)).generate(prompts)
    assert [p.model for p in first.prompts] == ["base", "sft"] * 3
    second = RecordingEngine(engine)
    cache = BaseAnswerCache(tmp_path, identity)  # a new run: reads the file
    results = {}
    got_second = CachingEngine(second, cache).generate(prompts, on_result=lambda i, g: results.setdefault(i, g))
    assert [p.model for p in second.prompts] == ["sft"] * 3 and cache.hits == 3
    assert [g.text for g in got_second] == [g.text for g in got_first]  # greedy: the same answers
    assert sorted(results) == list(range(6)) and results[0].text == got_first[0].text

    other = RecordingEngine(engine)  # another sampling setting, or another base model: asked again
    CachingEngine(other, BaseAnswerCache(tmp_path, identity)).generate(_prompts(temperature=0.7, seed=1))
    CachingEngine(other, BaseAnswerCache(tmp_path, {**identity, "base": "another"})).generate(prompts)
    assert [p.model for p in other.prompts] == ["base", "sft"] * 6
