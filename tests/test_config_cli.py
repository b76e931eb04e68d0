"""The run configuration and the CLI: validation before any model loads, presets, files, flags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distill.cli import build_parser, main
from distill.config import ConfigError, RunConfig, build_config
from distill.presets import PRESETS


def test_defaults_are_the_embedded_demo():
    c = RunConfig()
    assert (c.model, c.dataset, c.mode) == ("smollm2-135m", "builtin:reasoning", "all")
    assert c.learning_rate == 1e-3 and c.use_lora and c.use_kl_regularization and c.kl_coef == 0.1
    assert c.effective_max_samples == 1000


def test_reference_preset_restores_the_reference_table_and_seed_is_its_alias():
    assert build_config({"preset": "seed"}).model_dump(exclude={"preset"}) == \
        build_config({"preset": "qwen2.5-0.5b"}).model_dump(exclude={"preset"})
    c = build_config({"preset": "qwen2.5-0.5b"})
    assert c.model == "Qwen/Qwen2.5-0.5B" and c.dataset == "open-thoughts/OpenThoughts-114k"
    assert (c.epochs, c.batch_size, c.gradient_accumulation, c.learning_rate) == (3, 2, 8, 2e-5)
    assert (c.kl_coef, c.early_stopping_patience, c.max_grad_norm) == (0.1, 3, 1.0)
    for name in ("qwen2.5-1.5b", "qwen2.5-7b", "llama-2-7b", "llama-3.1-8b"):
        assert name in PRESETS


def test_file_then_flags_override(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("epochs: 2\nlearning_rate: 0.01\npreset: seed\n")
    c = build_config({"learning_rate": 0.5}, f)
    assert c.epochs == 2 and c.learning_rate == 0.5 and c.model == "Qwen/Qwen2.5-0.5B"
    j = tmp_path / "run.json"
    j.write_text(json.dumps({"kl_coef": 0.3}))
    assert build_config({}, j).kl_coef == 0.3


@pytest.mark.parametrize(
    "override, flag",
    [
        ({"epochs": 0}, "--epochs"),
        ({"learning_rate": 0}, "--learning_rate"),
        ({"learning_rate": -1e-4}, "--learning_rate"),
        ({"batch_size": 0}, "--batch_size"),
        ({"kl_coef": -0.1}, "--kl_coef"),
        ({"mode": "bogus"}, "--mode"),
        ({"max_samples": 0}, "--max_samples"),
        ({"preset": "nope"}, "--preset"),
        ({"mode": "evaluate"}, "--sft_model_path"),
        ({"not_a_field": 1}, "--not_a_field"),
    ],
)
def test_invalid_values_name_the_flag(override, flag):
    with pytest.raises(ConfigError) as e:
        build_config(override)
    msg = str(e.value)
    assert flag in msg and "\n" not in msg


def test_bad_config_file_is_one_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        build_config({}, f)
    with pytest.raises(ConfigError, match="file not found"):
        build_config({}, tmp_path / "missing.yaml")


def test_boolean_flags_switch_off():
    args = vars(build_parser().parse_args(["--no-use_lora", "--no-use_kl_regularization", "--no-general_prompts"]))
    c = build_config(args)
    assert c.use_lora is False and c.use_kl_regularization is False and c.general_prompts is False


def test_help_is_grouped_and_shows_reference_differences(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for title in ("model:", "data:", "training:", "LoRA:", "KL regularization:", "evaluation:"):
        assert title in out
    flat = " ".join(out.split())
    assert "reference setup: 2e-05" in flat and "reference setup: Qwen/Qwen2.5-0.5B" in flat


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--epochs", "0"], "--epochs"),
        (["--learning_rate", "-1"], "--learning_rate"),
        (["--kl_coef", "-2"], "--kl_coef"),
        (["--dataset", "/nonexistent/data.jsonl"], "--dataset"),
        (["--dataset", "builtin:nope"], "--dataset"),
        (["--mode", "evaluate", "--sft_model_path", "/nonexistent"], "--sft_model_path"),
    ],
)
def test_cli_fails_fast_with_one_line(argv, needle, capsys, distill_home):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err
    assert not any(distill_home.iterdir()), "nothing may be written before validation passes"


def test_cli_unknown_mode_is_one_line_not_the_usage():
    r = subprocess.run([sys.executable, "run_distillation_pipeline.py", "--mode", "bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: --mode: invalid choice: 'bogus'") and "usage" not in r.stderr


def test_benchmarks_flag_takes_a_comma_list_and_sampling_defaults_follow_num_samples():
    c = build_config(vars(build_parser().parse_args(["--benchmarks", "gsm8k, math500=/x.jsonl", "--num_samples", "4"])))
    assert c.benchmarks == ["gsm8k", "math500=/x.jsonl"]
    assert (c.sampling_temperature, c.sampling_top_p) == (0.6, 0.95)
    greedy = build_config({})
    assert (greedy.benchmarks, greedy.sampling_temperature, greedy.sampling_top_p) == (["heldout"], 0.0, 1.0)
    assert build_config({"num_samples": 4, "temperature": 0.0}).sampling_temperature == 0.0
