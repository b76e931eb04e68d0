"""Shared fixtures. The model cache is shared across tests (converting the embedded GGUF takes ~30 s);
every run writes under a per-test DISTILL_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Servers the tests start load no model before their first request (distill serve preloads the embedded one).
os.environ.setdefault("DISTILL_PRELOAD_MODEL", "")

SHARED_GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "train.jsonl"

# Small enough that a whole train+evaluate run on the tiny model takes seconds.
TINY_RUN = {
    "model": "tiny-random", "max_samples": 12, "epochs": 1, "batch_size": 2, "gradient_accumulation": 2,
    "eval_samples": 3, "general_prompts": False, "max_new_tokens": 12, "max_seq_length": 256,
}


@pytest.fixture()
def tiny_run() -> dict:
    return dict(TINY_RUN)


@pytest.fixture()
def distill_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DISTILL_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    from distill.models import ensure_local_model

    return ensure_local_model("tiny-random")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_path):
    from distill.data.prepare import ensure_chat_template
    from distill.models import load_tokenizer

    tok = load_tokenizer(tiny_model_path)
    ensure_chat_template(tok)
    return tok


@pytest.fixture(scope="session")
def random_lora_model(tiny_model_path):
    """The tiny model with a random LoRA adapter that changes its answers, in float64: generation tests check
    the batching logic (padding, positions, caches, per-row adapters, stopping), not float32 summation order,
    which may legitimately differ between a batch and a single row."""
    import torch
    from peft import LoraConfig, get_peft_model

    from distill.models import load_model

    torch.manual_seed(0)
    model = get_peft_model(load_model(tiny_model_path), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                                   task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model.double().eval()


@pytest.fixture(scope="session")
def gsm8k_path() -> Path:
    if not SHARED_GSM8K.is_file():
        pytest.skip(f"GSM8K data not present at {SHARED_GSM8K}")
    return SHARED_GSM8K
