"""The whole pipeline on the tiny model: every output of the seed's structure, and --mode evaluate."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.config import build_config
from distill.pipeline import PipelineHooks, RunCancelled, run_pipeline

SEED_OUTPUTS = {
    "config.json", "final_model", "merged_model", "evaluation_results.json", "report.md",
    "distillation_pipeline.log", "metrics.jsonl", "data_report.json",
}


def test_mode_all_writes_the_seed_structure(distill_home, tiny_run):
    stages: list[str] = []
    result = run_pipeline(build_config(tiny_run), PipelineHooks(on_stage=stages.append))
    out = result.output_dir
    assert out.parent == distill_home / "distillation" and out.name.startswith("run_")
    assert SEED_OUTPUTS <= {p.name for p in out.iterdir()}
    assert stages == ["load", "data", "train", "evaluate", "save"]
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "final_model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "merged_model").iterdir()}

    assert json.loads((out / "config.json").read_text())["max_samples"] == tiny_run["max_samples"]
    report = json.loads((out / "data_report.json").read_text())
    assert report["rows_kept"] == tiny_run["max_samples"] and report["train_rows"] + report["val_rows"] == tiny_run["max_samples"]
    assert 50 < report["token_length"]["p50"] <= report["token_length"]["max"] <= 256

    results = json.loads((out / "evaluation_results.json").read_text())
    assert set(results["summary"]) == {"base", "sft"}
    assert len(results["samples"]) == tiny_run["eval_samples"]
    for s in results["samples"]:
        assert {"prompt", "ground_truth", "base", "sft"} <= set(s)
        assert s["ground_truth"] is not None
        for side in ("base", "sft"):
            assert {"response", "answer", "correct", "quality_score", "has_think_tags", "num_steps",
                    "generation_time_s", "tokens_per_s"} <= set(s[side])
            assert 0 < s[side]["new_tokens"] <= tiny_run["max_new_tokens"]
    assert results["deltas"]["accuracy"] == pytest.approx(results["summary"]["sft"]["accuracy"] - results["summary"]["base"]["accuracy"])
    md = (out / "report.md").read_text()
    assert "EVALUATION RESULTS SUMMARY" in md and "|" in md
    log = (out / "distillation_pipeline.log").read_text()
    assert "Stage: train" in log and "EVALUATION RESULTS SUMMARY" in log


def test_merged_model_reloads_alone_and_generates(distill_home, tiny_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = run_pipeline(build_config({**tiny_run, "mode": "train"})).output_dir
    assert not (out / "evaluation_results.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out / "merged_model")
    tok = AutoTokenizer.from_pretrained(out / "merged_model")
    ids = tok("Hello", return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] == ids["input_ids"].shape[1] + 5 or tok.eos_token_id in gen[0].tolist()


@pytest.mark.parametrize("part", ["final_model", "merged_model"])
def test_mode_evaluate_on_an_adapter_or_a_merged_model(distill_home, tiny_run, part):
    trained = run_pipeline(build_config({**tiny_run, "mode": "train"})).output_dir
    rc = main(["--mode", "evaluate", "--model", "tiny-random", "--sft_model_path", str(trained / part),
               "--eval_samples", "2", "--no-general_prompts", "--max_new_tokens", "6",
               "--output_dir", str(distill_home / "eval")])
    assert rc == 0
    results = json.loads((distill_home / "eval" / "evaluation_results.json").read_text())
    assert results["models"]["sft"] == str(trained / part)
    assert len(results["samples"]) == 2


def test_general_prompts_are_asked_with_ground_truth(distill_home, tiny_run):
    result = run_pipeline(build_config({**tiny_run, "general_prompts": True, "eval_samples": 1}))
    sets = [s["set"] for s in result.evaluation["samples"]]
    assert sets.count("heldout") == 1 and sets.count("general") == 4
    assert result.evaluation["by_set"]["general"]["base"]["n"] == 4


def test_cancel_between_stages_raises_and_keeps_the_log(distill_home, tiny_run):
    stage = {"now": ""}
    hooks = PipelineHooks(on_stage=lambda s: stage.update(now=s), should_cancel=lambda: stage["now"] == "data")
    with pytest.raises(RunCancelled):
        run_pipeline(build_config({**tiny_run, "output_dir": str(distill_home / "c")}), hooks)
    assert "Stage: data" in (distill_home / "c" / "distillation_pipeline.log").read_text()
    assert not (distill_home / "c" / "final_model").exists()


def test_resume_continues_from_the_last_checkpoint(distill_home, tiny_run):
    cfg = {**tiny_run, "mode": "train", "epochs": 2, "gradient_accumulation": 1, "output_dir": str(distill_home / "r")}
    calls = {"n": 0}

    def cancel_after_a_few() -> bool:
        calls["n"] += 1
        return calls["n"] > 8

    with pytest.raises(RunCancelled):
        run_pipeline(build_config(cfg), PipelineHooks(should_cancel=cancel_after_a_few))
    first = [json.loads(l)["step"] for l in (distill_home / "r" / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    run_pipeline(build_config({**cfg, "resume": True}))
    steps = [json.loads(l)["step"] for l in (distill_home / "r" / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    resumed = steps[len(first):]
    assert resumed and resumed[0] == first[-1] + 1, "resume must not restart from step 1"
    assert "Resuming from" in (distill_home / "r" / "distillation_pipeline.log").read_text()


def test_bad_dataset_file_fails_with_file_and_line(distill_home, tiny_run, capsys):
    bad = distill_home / "bad.jsonl"
    bad.write_text('{"foo": 1}\n' * 30)
    rc = main(["--model", "tiny-random", "--dataset", str(bad), "--output_dir", str(distill_home / "b")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and err.startswith("error: ") and "bad.jsonl:1" in err
