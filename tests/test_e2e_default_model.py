"""End to end on the real embedded default model (SmolLM2-135M, converted from the shipped GGUF)."""

from __future__ import annotations

import json

import pytest

from distill.cli import main

pytestmark = pytest.mark.slow


def test_mode_all_on_the_embedded_model(distill_home):
    out = distill_home / "run"
    rc = main(["--mode", "all", "--max_samples", "24", "--epochs", "1", "--batch_size", "4",
               "--gradient_accumulation", "1", "--eval_samples", "4", "--no-general_prompts",
               "--max_new_tokens", "48", "--output_dir", str(out)])
    assert rc == 0
    for name in ("config.json", "final_model/adapter_model.safetensors", "merged_model/model.safetensors",
                 "evaluation_results.json", "report.md", "distillation_pipeline.log", "metrics.jsonl", "data_report.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "smollm2-135m" and config["dataset"] == "builtin:reasoning"
    points = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    assert len(points) >= 5 and points[-1]["loss"] < points[0]["loss"], "training loss must fall"
    results = json.loads((out / "evaluation_results.json").read_text())
    assert len(results["samples"]) == 4
    # The pretrained base answers in plain prose: it never writes think tags on its own.
    assert results["summary"]["base"]["pct_with_think_tags"] == 0.0
    assert all(s["base"]["response"] and s["sft"]["response"] for s in results["samples"])

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "merged_model")
    tok = AutoTokenizer.from_pretrained(out / "merged_model")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    text = tok.decode(model.generate(**ids, max_new_tokens=24, do_sample=False)[0, ids["input_ids"].shape[1]:])
    assert len(text.strip()) > 0
