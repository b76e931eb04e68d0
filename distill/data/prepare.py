"""Turn examples into TRL prompt–completion rows, split them, and describe the data."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from distill.data.formats import to_target_text
from distill.data.schema import ReasoningExample
from distill.data.sources import DataStats

T = TypeVar("T")

# ChatML, the format of the default student model's own template, for tokenizers that have none.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def to_prompt_completion(ex: ReasoningExample, default_system: str | None) -> dict[str, list[dict[str, str]]]:
    """A conversational prompt–completion row; TRL then computes the loss on the completion only."""
    system = ex.system or default_system
    prompt = [{"role": "system", "content": system}] if system else []
    prompt.append({"role": "user", "content": ex.prompt})
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": to_target_text(ex)}]}


def split_train_val(examples: Sequence[T], val_ratio: float, seed: int) -> tuple[list[T], list[T]]:
    """A deterministic shuffle, then the last `val_ratio` share (at least one row) for validation."""
    if not 0 <= val_ratio < 1:
        raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    n_val = round(len(shuffled) * val_ratio)
    if val_ratio > 0 and len(shuffled) >= 2:
        n_val = min(max(n_val, 1), len(shuffled) - 1)
    return shuffled[: len(shuffled) - n_val], shuffled[len(shuffled) - n_val :]


def token_length_stats(lengths: list[int]) -> dict[str, float]:
    """p50/p95 (nearest-rank), max and mean of token lengths; all zero for no rows."""
    if not lengths:
        return {"p50": 0, "p95": 0, "max": 0, "mean": 0.0}
    ordered = sorted(lengths)

    def percentile(p: float) -> int:
        return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]

    return {
        "p50": percentile(50),
        "p95": percentile(95),
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 2),
    }


def data_report(stats: DataStats, token_lengths: list[int], max_seq_length: int) -> dict[str, Any]:
    return {
        "rows_read": stats.rows_read,
        "rows_kept": stats.rows_kept,
        "skipped": dict(sorted(stats.skipped.items())),
        "token_length": token_length_stats(token_lengths),
        "max_seq_length": max_seq_length,
        "truncated": sum(1 for n in token_lengths if n > max_seq_length),
        "domains": dict(sorted(stats.domains.items())),
    }


def chat_token_lengths(tokenizer: Any, rows: Sequence[Mapping[str, Any]], progress: bool = False) -> list[int]:
    """Tokens of each prompt–completion row as the chat template renders it, i.e. as training sees it."""
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, desc="tokenize", unit="row")
    return [len(tokenizer.apply_chat_template(list(r["prompt"]) + list(r["completion"]), tokenize=True,
                                              return_dict=False)) for r in rows]


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give a tokenizer without a chat template the ChatML one; True when it was set."""
    if getattr(tokenizer, "chat_template", None) is not None:
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True
