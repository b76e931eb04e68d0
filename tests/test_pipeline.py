"""The whole pipeline on the tiny model: every output of the seed's structure, and --mode evaluate."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.config import build_config
from distill.errors import RunCancelled
from distill.pipeline import PipelineHooks, run_pipeline

SEED_OUTPUTS = {
    "config.json", "final_model", "merged_model", "evaluation_results.json", "report.md",
    "distillation_pipeline.log", "metrics.jsonl", "data_report.json",
}


def test_mode_all_writes_the_seed_structure(distill_home, tiny_run):
    stages: list[str] = []
    # The demo preset under the tiny run's fields (explicit values win): the run's name and preset are recorded.
    config = build_config({**tiny_run, "name": "tiny trial", "preset": "demo"})
    result = run_pipeline(config, PipelineHooks(on_stage=stages.append))
    out = result.output_dir
    assert out.parent == distill_home / "distillation" and out.name.startswith("run_")
    assert SEED_OUTPUTS <= {p.name for p in out.iterdir()}
    assert stages == ["load", "data", "train", "evaluate", "save"]
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "final_model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "merged_model").iterdir()}

    saved = json.loads((out / "config.json").read_text())
    assert (saved["max_samples"], saved["name"], saved["preset"]) == (tiny_run["max_samples"], "tiny trial", "demo")
    report = json.loads((out / "data_report.json").read_text())
    assert report["rows_kept"] == tiny_run["max_samples"] and report["train_rows"] + report["val_rows"] == tiny_run["max_samples"]
    assert 50 < report["token_length"]["p50"] <= report["token_length"]["max"] <= 256

    results = json.loads((out / "evaluation_results.json").read_text())
    assert set(results["summary"]) == {"base", "sft"}
    assert results["run"] == {"name": "tiny trial", "preset": "demo"}
    assert len(results["samples"]) == tiny_run["eval_samples"]
    for s in results["samples"]:
        assert {"prompt", "ground_truth", "base", "sft"} <= set(s)
        assert s["ground_truth"] is not None
        for side in ("base", "sft"):
            assert {"response", "answer", "correct", "quality_score", "has_think_tags", "num_steps",
                    "generation_time_s", "tokens_per_s"} <= set(s[side])
            assert 0 < s[side]["new_tokens"] <= tiny_run["max_new_tokens"]
    assert results["deltas"]["accuracy"] == pytest.approx(results["summary"]["sft"]["accuracy"] - results["summary"]["base"]["accuracy"])
    block = results["benchmarks"]["heldout"]
    assert (block["n_problems"], block["num_samples"]) == (tiny_run["eval_samples"], 1)
    for side in ("base", "sft"):
        assert {"pass@1", "pass@1_ci", "pass@k", "cons@n", "truncated_pct", "think_closed_pct", "looping_pct",
                "tokens_p50", "tokens_p95"} <= set(block[side])
        lo, hi = block[side]["pass@1_ci"]
        assert 0 <= lo <= block[side]["pass@1"] <= hi <= 1
    assert {"delta_pass@1", "p_value", "significant"} <= set(block)
    assert len(results["benchmark_samples"]["heldout"]) == tiny_run["eval_samples"]
    assert (out / "benchmarks" / "heldout.jsonl").is_file()
    md = (out / "report.md").read_text()
    assert "EVALUATION RESULTS SUMMARY" in md and "### heldout" in md and "significant" in md
    assert "- Run: tiny trial\n- Preset: `demo`\n- Base model: `tiny-random`" in md
    log = (out / "distillation_pipeline.log").read_text()
    assert "Stage: train" in log and "EVALUATION RESULTS SUMMARY" in log
    assert f"Run folder: {out} (name tiny trial, preset demo)" in log


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


def _math500_file(path, n: int = 5):
    """Rows in MATH-500's own columns (as HuggingFaceH4/MATH-500 publishes them)."""
    rows = [{"problem": f"What is {i} + {i}?", "solution": f"{i} + {i} = \\boxed{{{2 * i}}}",
             "answer": str(2 * i), "unique_id": f"test/x/{i}.json", "subject": "Algebra", "level": 1}
            for i in range(1, n + 1)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_mode_evaluate_with_benchmarks_needs_no_training_data(distill_home, tiny_run):
    trained = run_pipeline(build_config({**tiny_run, "mode": "train"})).output_dir
    data = _math500_file(distill_home / "math500.jsonl")
    rc = main(["--mode", "evaluate", "--model", "tiny-random", "--sft_model_path", str(trained / "final_model"),
               "--dataset", str(distill_home / "no-such-training-data.jsonl"),
               "--benchmarks", f"math500={data}", "--benchmark_limit", "3", "--num_samples", "2",
               "--no-general_prompts", "--max_new_tokens", "6", "--output_dir", str(distill_home / "eval")])
    assert rc == 0
    results = json.loads((distill_home / "eval" / "evaluation_results.json").read_text())
    block = results["benchmarks"]["math500"]
    assert (block["n_problems"], block["num_samples"], block["test"]) == (3, 2, "paired_bootstrap")
    assert set(block["base"]["pass@k"]) == {"1", "2"} and block["settings"]["temperature"] == 0.6
    records = results["benchmark_samples"]["math500"]
    assert [r["id"] for r in records] == ["test/x/1.json", "test/x/2.json", "test/x/3.json"]
    assert all(len(r["base"]) == len(r["sft"]) == 2 for r in records)
    assert {"text", "extracted", "correct", "tokens", "truncated", "looping", "think_closed"} <= set(records[0]["sft"][0])


def test_benchmark_answers_survive_a_cancel_and_are_reused(distill_home, tiny_run):
    trained = run_pipeline(build_config({**tiny_run, "mode": "train"})).output_dir
    data = _math500_file(distill_home / "m.jsonl", n=6)
    cfg = build_config({"mode": "evaluate", "model": "tiny-random", "sft_model_path": str(trained / "final_model"),
                        "benchmarks": f"math500={data}", "general_prompts": False, "max_new_tokens": 4,
                        "eval_batch_size": 4, "output_dir": str(distill_home / "e")})
    seen = {"n": 0}

    def cancel_on_second_chunk(done: int, total: int) -> None:
        assert total == 6
        seen["n"] = done

    with pytest.raises(RunCancelled):
        run_pipeline(cfg, PipelineHooks(on_progress=cancel_on_second_chunk, should_cancel=lambda: seen["n"] >= 2))
    kept = (distill_home / "e" / "benchmarks" / "math500.jsonl").read_text().splitlines()
    assert len(kept) == 1 + 2  # header + the first chunk (2 problems x 2 models = 4 rows)
    result = run_pipeline(cfg)
    assert "2 of 6 problems already answered" in (distill_home / "e" / "distillation_pipeline.log").read_text()
    records = result.evaluation["benchmark_samples"]["math500"]
    assert [r["index"] for r in records] == list(range(6))
    assert [json.loads(line) for line in kept[1:]] == records[:2]  # reused as stored, not answered again


def test_too_small_dataset_for_the_heldout_split_is_one_line(distill_home, tiny_run, capsys):
    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(5)]
    data = distill_home / "five.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    rc = main(["--model", "tiny-random", "--dataset", str(data), "--output_dir", str(distill_home / "s")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len([e for e in err if e.startswith("error:")]) == 1
    assert "--eval_samples" in err[-1] and "5 usable rows" in err[-1] and "holding out 100 rows" in err[-1]
    assert not (distill_home / "s" / "final_model").exists() and not (distill_home / "s" / "checkpoints").exists()


@pytest.mark.parametrize("spec, needles", [
    ("nope", ["'nope'", "gsm8k", "grader"]),
    ("math500=/no/such/file.jsonl", ["math500", "/no/such/file.jsonl"]),
    ("mine={wrong}?problem=question&answer=target&grader=number", ["'mine'", "[q, a]", "question", "target"]),
])
def test_bad_suites_fail_before_anything_runs(distill_home, capsys, spec, needles):
    wrong = distill_home / "wrong.jsonl"
    wrong.write_text(json.dumps({"q": "1+1?", "a": "2"}) + "\n")
    rc = main(["--model", "tiny-random", "--benchmarks", spec.format(wrong=wrong), "--output_dir", str(distill_home / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err
    for needle in needles:
        assert needle in err
    assert not (distill_home / "x").exists()


def test_stored_answers_of_another_model_are_not_reused(distill_home, tiny_run):
    """A run trained again in the same folder answers afresh: stored answers belong to the weights that gave them."""
    out = distill_home / "again"
    cfg = {**tiny_run, "eval_samples": 2, "output_dir": str(out)}
    run_pipeline(build_config(cfg))
    first = (out / "benchmarks" / "heldout.jsonl").read_text()
    run_pipeline(build_config({**cfg, "learning_rate": 5e-2}))  # another model in the same folder
    log = (out / "distillation_pipeline.log").read_text()
    assert "already answered" not in log
    assert (out / "benchmarks" / "heldout.jsonl").read_text() != first
