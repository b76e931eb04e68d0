"""Stage 3: base and SFT answer the same prompts; per-response metrics, summaries and deltas."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distill.evaluation.generate import BASE_ADAPTER, Generation, generate_responses
from distill.evaluation.metrics import response_metrics
from distill.evaluation.summary import deltas, summarize


@dataclass
class EvalItem:
    messages: list[dict]  # system? + user, as the model sees them
    ground_truth: str | None = None
    set: str = "heldout"  # "heldout" (from the dataset) or "general" (fixed prompts)

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else None


@dataclass
class ModelPair:
    """Either one PEFT model (base = adapter disabled) or two separate models."""

    sft: Any
    base: Any | None = None
    adapter_name: str = "default"
    gen_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def shares_weights(self) -> bool:
        return self.base is None


def generate_pair(
    pair: ModelPair, tokenizer: Any, items: list[EvalItem], should_cancel: Callable[[], bool] | None = None
) -> tuple[list[Generation], list[Generation]]:
    convs = [it.messages for it in items]
    kw = dict(pair.gen_kwargs, should_cancel=should_cancel)
    if pair.shares_weights:
        # One pass over both: rows 2i (base) and 2i+1 (SFT) ride in the same batches.
        both = generate_responses(
            pair.sft, tokenizer, [c for c in convs for _ in (0, 1)],
            adapter_names=[n for _ in convs for n in (BASE_ADAPTER, pair.adapter_name)], desc="generate base+sft", **kw,
        )
        return both[0::2], both[1::2]
    base = generate_responses(pair.base, tokenizer, convs, desc="generate base", **kw)
    sft = generate_responses(pair.sft, tokenizer, convs, desc="generate sft", **kw)
    return base, sft


def _scored(gen: Generation, ground_truth: str | None) -> dict[str, Any]:
    return {"response": gen.text, **response_metrics(gen.text, gen.time_s, gen.new_tokens, ground_truth)}


def evaluate_pair(
    pair: ModelPair, tokenizer: Any, items: list[EvalItem], should_cancel: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """The evaluation_results.json structure (keys kept stable: scripts read them)."""
    base_gens, sft_gens = generate_pair(pair, tokenizer, items, should_cancel)
    samples = [
        {
            "prompt": it.prompt,
            "system": it.system,
            "ground_truth": it.ground_truth,
            "set": it.set,
            "base": _scored(b, it.ground_truth),
            "sft": _scored(s, it.ground_truth),
        }
        for it, b, s in zip(items, base_gens, sft_gens, strict=True)
    ]
    summary = {m: summarize([s[m] for s in samples]) for m in ("base", "sft")}
    by_set = {
        name: {m: summarize([s[m] for s in samples if s["set"] == name]) for m in ("base", "sft")}
        for name in sorted({s["set"] for s in samples})
    }
    return {"summary": summary, "deltas": deltas(summary["base"], summary["sft"]), "by_set": by_set, "samples": samples}
