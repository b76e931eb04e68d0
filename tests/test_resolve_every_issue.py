"""A ConfigError names every bad path and every bad suite at once, not only the first one found."""

from __future__ import annotations

import pytest

from distill.config import ConfigError
from distill.resolve import resolve_config


def test_every_missing_path_and_every_bad_suite_is_listed(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_config({"mode": "evaluate", "model": str(tmp_path / "no-model"),
                        "sft_model_path": str(tmp_path / "no-sft"),
                        "benchmarks": f"a={tmp_path / 'a.jsonl'},heldout,b={tmp_path / 'b.jsonl'}"})
    fields = [field for field, _ in e.value.issues]
    assert fields == ["model", "sft_model_path", "benchmarks", "benchmarks"], e.value.issues
    text = str(e.value)
    assert "\n" not in text and "no-model" in text and "no-sft" in text and "a.jsonl" in text and "b.jsonl" in text


def test_on_the_service_every_path_leaving_home_is_listed(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_config({"mode": "train", "output_dir": "../elsewhere", "base_answers_dir": "~/answers"},
                       home=tmp_path)
    assert [field for field, _ in e.value.issues] == ["output_dir", "base_answers_dir"], e.value.issues
    assert "'..'" in e.value.issues[0][1] and "'~'" in e.value.issues[1][1]


def test_a_good_configuration_still_resolves(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    config = resolve_config({"mode": "train", "output_dir": "out"}, home=tmp_path)
    assert config.output_dir == str((tmp_path / "out").resolve())
