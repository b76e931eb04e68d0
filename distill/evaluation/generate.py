"""Batched generation: left padding, KV cache, rows sorted by length, never one prompt at a time.

With a PEFT model, base and SFT rows share one batch: ``adapter_names`` picks, per row, the
adapter (``"__base__"`` = none), so the base model is the same weights with the adapter off.

On CPU the intra-op thread count is chosen while generating (``ThreadTuner``): on a machine
shared with other busy processes, an OpenMP team of all cores waits at every barrier for a
member the scheduler has preempted, and one thread was measured several times faster than two on
this 2-core machine under load (docs/benchmarks.md); on an idle machine all cores win.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

BASE_ADAPTER = "__base__"
TUNING_ENV = "DISTILL_THREAD_TUNING"  # "0" turns the thread tuner off


class ThreadTuner:
    """Picks torch's intra-op thread count for CPU work on a machine that may be shared.

    Before the first unit of work, and then every ``reprobe_s`` seconds, a short probe runs with
    each candidate count (all threads, half, one): a dozen 512x576x576 matmuls with elementwise ops
    between them, i.e. as many OpenMP parallel regions as a transformer layer has. The fastest count
    is used until the next probe. Call ``begin()`` before and ``end(units)`` after each unit of work
    (a training micro-batch, a decoding step); the units are timed for ``summary()`` only.
    Nothing changes where only one thread is allowed (``OMP_NUM_THREADS=1``) or with
    DISTILL_THREAD_TUNING=0.
    """

    def __init__(self, max_threads: int | None = None, reprobe_s: float = 20.0):
        self.original = torch.get_num_threads()
        n = max_threads or self.original
        self.candidates = sorted({n, max(1, n // 2), 1}, reverse=True)
        self.reprobe_s = reprobe_s
        self.choice = self.original
        self.current = self.original
        self.probes: dict[int, float] = {}
        self.n_probes = 0
        self.probe_s = 0.0
        self.cost: dict[int, float] = {}
        self.uses: dict[int, int] = {}
        self._next_probe = 0.0
        self._t0: float | None = None
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def for_device(cls, device: torch.device | str, **kw: Any) -> ThreadTuner | None:
        """A tuner for CPU work with more than one thread allowed, else None."""
        if torch.device(device).type != "cpu" or os.environ.get(TUNING_ENV, "1") == "0" or torch.get_num_threads() < 2:
            return None
        return cls(**kw)

    def _probe_cost(self, threads: int) -> float:
        if self._data is None:
            g = torch.Generator().manual_seed(0)
            self._data = torch.randn(512, 576, generator=g), torch.randn(576, 576, generator=g) / 24
        x, w = self._data
        torch.set_num_threads(threads)
        best = float("inf")
        with torch.no_grad():
            for _ in range(2):
                t = time.perf_counter()
                y = x
                for _ in range(12):
                    y = torch.relu(y @ w) * 0.5 + x
                best = min(best, time.perf_counter() - t)
        return best

    def probe(self) -> None:
        t = time.perf_counter()
        self.probes = {c: self._probe_cost(c) for c in self.candidates}
        self.choice = min(self.probes, key=self.probes.__getitem__)
        torch.set_num_threads(self.choice)
        self.n_probes += 1
        self.probe_s += time.perf_counter() - t
        self._next_probe = time.monotonic() + self.reprobe_s

    def begin(self) -> None:
        if time.monotonic() >= self._next_probe:
            self.probe()
        if self.choice != torch.get_num_threads():
            torch.set_num_threads(self.choice)
        self.current = self.choice
        self._t0 = time.perf_counter()

    def end(self, units: float = 1.0) -> None:
        if self._t0 is None:
            return
        sample = (time.perf_counter() - self._t0) / max(units, 1e-9)
        self._t0 = None
        self.uses[self.current] = self.uses.get(self.current, 0) + 1
        old = self.cost.get(self.current)
        self.cost[self.current] = sample if old is None else 0.8 * old + 0.2 * sample

    def discard(self) -> None:
        """Forget the unit begun last (it did not run as one)."""
        self._t0 = None

    def restore(self) -> None:
        if torch.get_num_threads() != self.original:
            torch.set_num_threads(self.original)

    def summary(self) -> dict[str, Any]:
        return {"threads_used": {str(k): v for k, v in sorted(self.uses.items())},
                "s_per_unit": {str(k): round(v, 6) for k, v in sorted(self.cost.items())},
                "last_probe_s": {str(k): round(v, 4) for k, v in sorted(self.probes.items())},
                "probes": self.n_probes, "probe_total_s": round(self.probe_s, 2)}


class _TuneEachStep:
    """A logits processor that changes nothing: it times each decoding step for a ThreadTuner."""

    def __init__(self, tuner: ThreadTuner):
        self.tuner = tuner

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.tuner.end(1.0)
        self.tuner.begin()
        return scores


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
    tune_threads: bool = True,
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
    tuner = ThreadTuner.for_device(device) if tune_threads else None
    if tuner is not None:
        from transformers import LogitsProcessorList

        sampling["logits_processor"] = LogitsProcessorList([_TuneEachStep(tuner)])
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
            if tuner is not None:
                tuner.discard()  # what follows the last step (decoding text, the next prefill) is not a step
    finally:
        model.train(was_training)
        if tuner is not None:
            tuner.restore()
    return [g for g in out if g is not None]


def _length_to_stop(tokens: list[int], stops: list[int]) -> int:
    """Generated tokens up to and including the first stop token (padding after it is not generated)."""
    for k, t in enumerate(tokens):
        if t in stops:
            return k + 1
    return len(tokens)
