"""End to end on the real embedded default model (SmolLM2-135M, converted from the shipped GGUF)."""

from __future__ import annotations

import json
import re

import pytest

from distill.cli import main
from distill.data.builtin import default_system

pytestmark = pytest.mark.slow


# The thought opened once at the start, closed once, an answer after it: the trained format.
WELL_FORMED = re.compile(r"\s*<think>(?:(?!<think>).)*?</think>\s*\S(?:(?!</?think>).)*", re.DOTALL)


def well_formed(text: str) -> bool:
    return WELL_FORMED.fullmatch(text) is not None


def test_mode_all_on_the_embedded_model(distill_home):
    out = distill_home / "run"
    # 48 rows in 23 steps of 2: at 24 rows in 6 steps of 4 the model opened <think> and then repeated it
    # ("<think>\n<think>\n..."), 1 answer of 4 well formed; 96 new tokens: a trained answer is ~40-70 tokens long.
    rc = main(["--mode", "all", "--max_samples", "48", "--epochs", "1", "--batch_size", "2",
               "--gradient_accumulation", "1", "--eval_samples", "8", "--no-general_prompts",
               "--max_new_tokens", "96", "--output_dir", str(out)])
    assert rc == 0
    for name in ("config.json", "final_model/adapter_model.safetensors", "merged_model/model.safetensors",
                 "evaluation_results.json", "report.md", "distillation_pipeline.log", "metrics.jsonl",
                 "data_report.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "smollm2-135m" and config["dataset"] == "builtin:reasoning"
    points = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(points) >= 5 and points[-1]["loss"] < points[0]["loss"], "training loss must fall"
    results = json.loads((out / "evaluation_results.json").read_text())
    assert len(results["samples"]) == 8
    # The pretrained base answers in plain prose: it never writes think tags on its own. The SFT model opens and
    # closes the thought, then answers, in most answers.
    assert results["summary"]["base"]["pct_with_think_tags"] == 0.0
    base = [s["base"]["response"] for s in results["samples"]]
    sft = [s["sft"]["response"] for s in results["samples"]]
    assert all(base) and all(sft)
    assert sum(map(well_formed, base)) == 0
    assert sum(map(well_formed, sft)) > len(sft) / 2, sft

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "merged_model")
    tok = AutoTokenizer.from_pretrained(out / "merged_model")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    # The merged model, asked as in training (the built-in data's system prompt), opens the thought on its own.
    messages = [{"role": "system", "content": default_system("builtin:reasoning")},
                {"role": "user", "content": "What is 2 + 3?"}]
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    text = tok.decode(model.generate(**ids, max_new_tokens=24, do_sample=False)[0, ids["input_ids"].shape[1]:])
    assert text.startswith("<think>\n") and text.count("<think>") == 1, text
