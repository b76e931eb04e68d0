"""Model resolution: embedded default, tiny test model, and a clear one-line failure offline."""

from __future__ import annotations

import time

import pytest

from distill.models import ModelUnavailableError, ensure_local_model


def test_unreachable_hub_model_fails_fast_naming_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as e:
        ensure_local_model("Qwen/Qwen2.5-0.5B-not-cached-here")
    assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert "smollm2-135m" in msg and "offline" in msg and "\n" not in msg


def test_local_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        ensure_local_model(str(tmp_path))


def test_nonsense_name_is_refused():
    with pytest.raises(ModelUnavailableError, match="neither a local folder nor a hub id"):
        ensure_local_model("./does/not/exist")


def test_tiny_model_is_small_and_loads(tiny_model_path):
    from distill.models import load_model, load_tokenizer

    model = load_model(tiny_model_path)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    tok = load_tokenizer(tiny_model_path)
    assert "<|im_start|>" in tok.chat_template
    assert tok.pad_token is not None
