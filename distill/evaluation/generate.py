"""Batched generation: left padding, KV cache, rows sorted by length, never one prompt at a time.

With a PEFT model, base and SFT rows share one batch: ``adapter_names`` picks, per row, the
adapter (``"__base__"`` = none), so the base model is the same weights with the adapter off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

BASE_ADAPTER = "__base__"


class GenerationCancelled(Exception):
    pass


@dataclass
class Generation:
    text: str
    new_tokens: int
    time_s: float  # this row's share of its batch's wall time, in proportion to its new tokens


def stop_token_ids(tokenizer: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return sorted(i for i in ids if i is not None)


def render_prompts(tokenizer: Any, conversations: Sequence[list[dict]]) -> list[str]:
    return [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]


def generate_responses(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict]],
    *,
    adapter_names: Sequence[str] | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 32,
    should_cancel: Callable[[], bool] | None = None,
    desc: str = "generate",
) -> list[Generation]:
    texts = render_prompts(tokenizer, conversations)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    stops = stop_token_ids(tokenizer)
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[Generation | None] = [None] * len(texts)
    was_training = model.training
    model.eval()
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
            if should_cancel and should_cancel():
                raise GenerationCancelled()
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            extra = {"adapter_names": [adapter_names[i] for i in idx]} if adapter_names is not None else {}
            t0 = time.perf_counter()
            with torch.inference_mode():
                seqs = model.generate(
                    **enc, max_new_tokens=max_new_tokens, eos_token_id=stops,
                    pad_token_id=tokenizer.pad_token_id, top_k=None, **sampling, **extra,
                )
            elapsed = time.perf_counter() - t0
            new = seqs[:, enc["input_ids"].shape[1] :]
            counts = [_length_to_stop(row.tolist(), stops) for row in new]
            total = max(sum(counts), 1)
            for j, i in enumerate(idx):
                text = tokenizer.decode(new[j, : counts[j]], skip_special_tokens=True)
                out[i] = Generation(text=text.strip(), new_tokens=counts[j], time_s=elapsed * counts[j] / total)
    finally:
        model.train(was_training)
    return [g for g in out if g is not None]


def _length_to_stop(tokens: list[int], stops: list[int]) -> int:
    """Generated tokens up to and including the first stop token (padding after it is not generated)."""
    for k, t in enumerate(tokens):
        if t in stops:
            return k + 1
    return len(tokens)
