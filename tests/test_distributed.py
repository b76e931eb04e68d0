"""--num_gpus 2 on a machine without CUDA: the pipeline trains through `accelerate launch` in two CPU
processes (gloo), with the curve, the log and cancel delivered to the caller as for one process."""

from __future__ import annotations

import json
import math

import psutil
import pytest

from distill import distributed
from distill.config import build_config
from distill.distributed import DistributedTrainingError
from distill.pipeline import PipelineHooks, RunCancelled, run_pipeline

pytestmark = pytest.mark.slow  # each test starts torchrun and two ranks: 25-40 s on 2 busy cores


def _descendants() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def test_two_processes_train_with_kl_and_the_pipeline_carries_on(distill_home, tiny_run, tiny_model_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    points: list[dict] = []
    stages: list[str] = []
    config = build_config({**tiny_run, "mode": "train", "num_gpus": 2, "use_kl_regularization": True, "kl_coef": 0.5})
    result = run_pipeline(config, PipelineHooks(on_stage=stages.append, on_metrics=points.append))
    out = result.output_dir
    assert stages == ["load", "data", "train", "save"]

    outcome = json.loads((out / "ddp" / "outcome.json").read_text())
    assert outcome["world_size"] == 2 and outcome["cancelled"] is False
    # Each rank trains on half the rows: ceil(ceil(rows / 2) / batch / accumulation) optimizer steps,
    # fewer than the single-process ceil(rows / batch / accumulation).
    rows, batch, accum = result.data_report["train_rows"], tiny_run["batch_size"], tiny_run["gradient_accumulation"]
    assert outcome["global_step"] == math.ceil(math.ceil(math.ceil(rows / 2) / batch) / accum)
    assert outcome["global_step"] < math.ceil(math.ceil(rows / batch) / accum)

    train_points = [p for p in points if "loss" in p]
    assert [p["step"] for p in train_points] == list(range(1, outcome["global_step"] + 1))
    for p in train_points:
        assert math.isfinite(p["loss"]) and 0 < p["loss"] < 20
        assert math.isfinite(p["ce"]) and abs(p["ce"] - p["loss"]) < 0.5  # ce is the per-token mean, not N times it
        assert math.isfinite(p["kl"]) and p["kl"] >= 0
        assert p["trained_tokens"] > 0
    assert train_points[-1]["kl"] > 0  # the adapter moved away from the base the KL term compares with
    assert any("eval_loss" in p and math.isfinite(p["eval_loss"]) for p in points)
    # What the caller got is what rank 0 wrote, once each.
    written = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert written == points

    log = (out / "distillation_pipeline.log").read_text()
    assert "Training in 2 processes (CPU, gloo)" in log and "--multi_gpu --num_processes 2" in log
    assert "[rank 0] DDP: 2 processes" in log and "Trained in 2 processes" in log
    assert not (out / "ddp" / "rows.json").exists()
    assert json.loads((out / "ddp" / "job.json").read_text())["config"]["num_gpus"] == 2

    final = out / "final_model"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in final.iterdir()}
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path), str(final))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # trained (LoRA B starts at zero)
    assert (out / "merged_model" / "model.safetensors").is_file()


def test_cancel_stops_both_ranks_at_one_step_with_a_checkpoint(distill_home, tiny_run):
    points: list[dict] = []
    seen: list[psutil.Process] = []

    def should_cancel() -> bool:
        if points and not seen:
            seen.extend(_descendants())
        return bool(points)

    config = build_config({**tiny_run, "mode": "train", "num_gpus": 2, "max_samples": 40})
    with pytest.raises(RunCancelled, match="checkpoint saved"):
        run_pipeline(config, PipelineHooks(on_metrics=points.append, should_cancel=should_cancel))
    assert len(seen) >= 3  # the launcher and the two ranks were running when the cancel came
    assert not [p.pid for p in seen if p.is_running()]
    out = next((distill_home / "distillation").iterdir())
    outcome = json.loads((out / "ddp" / "outcome.json").read_text())
    assert outcome["cancelled"] is True and outcome["world_size"] == 2
    assert (out / "checkpoints" / f"checkpoint-{outcome['global_step']}").is_dir()  # resumable
    assert not (out / "final_model").exists()


def test_cancel_terminates_ranks_that_do_not_stop_in_time(distill_home, tiny_run, monkeypatch):
    monkeypatch.setattr(distributed, "CANCEL_GRACE_S", 0.0)
    seen: list[psutil.Process] = []

    def should_cancel() -> bool:
        # Once torchrun has started both ranks, and before they train (they only look at the cancel
        # flag between steps), so that only the terminate path can stop them.
        if not seen and len(procs := _descendants()) >= 3:
            seen.extend(procs)
        return bool(seen)

    config = build_config({**tiny_run, "mode": "train", "num_gpus": 2})
    with pytest.raises(RunCancelled, match="terminated"):
        run_pipeline(config, PipelineHooks(should_cancel=should_cancel))
    assert len(seen) >= 3
    assert not [p.pid for p in seen if p.is_running()]
    assert not _descendants()


def test_a_failing_rank_is_one_line_naming_the_exit_code_and_its_error(distill_home, tiny_run):
    config = build_config({**tiny_run, "mode": "train", "num_gpus": 2, "lora_target_modules": "no_such_proj"})
    with pytest.raises(DistributedTrainingError) as err:
        run_pipeline(config)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("training in 2 processes (accelerate launch) failed with exit code 1: ")
    assert "no_such_proj" in message and "not found in the base model" in message
    assert not _descendants()
