"""A rolling batch for serving: requests join a running batch between two decode steps, and a finished row
leaves it at once, so concurrent clients share every step instead of queueing behind a whole static batch.

The in-process engine's static batches (``HFEngine.generate``) suit evaluation, where every prompt is known
up front. A server gets requests one by one: with static batches a request that arrives while a batch runs
waits for its longest row, and rows that finished early sit idle until then. Here each step decodes one
token for every active row; new rows are prefilled (left-padded, as ``generate`` does) and their KV cache
is merged into the batch's, padded on the left to the same length. Rows sample, force ``</think>`` and stop
exactly as in ``HFEngine`` (they are the same ``Row`` objects).

Works for models whose cache is transformers' plain ``DynamicCache`` (full attention in every layer);
``RollingBatch.supports`` says whether a model qualifies.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from distill.generation.engine import Generation, Prompt
from distill.generation.hf import BASE_ADAPTER, HFEngine, Row, choose_tokens, render


@dataclass
class Entry:
    """One prompt in the batch, and where its text and result go."""

    prompt: Prompt
    on_delta: Callable[[str], None] | None = None
    stopped: Callable[[], bool] = lambda: False  # its caller went away
    on_done: Callable[[Generation | BaseException], None] = lambda _: None
    row: Row | None = None
    started: float = field(default_factory=time.perf_counter)


class RollingBatch:
    """The active rows of one model object (a PEFT model serves all its adapters and its base)."""

    def __init__(self, engine: HFEngine):
        self.engine = engine
        self.entries: list[Entry] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (rows, cache length): 1 = a real token, 0 = left padding
        self.next_ids: torch.Tensor | None = None  # (rows,) the token each row feeds next

    @staticmethod
    def supports(model: Any, tokenizer: Any) -> bool:
        """True when the model's cache is plain full attention (no sliding window, no static cache)."""
        device = next(model.parameters()).device
        ids = torch.tensor([[tokenizer.eos_token_id or 0]], device=device)
        cache = DynamicCache(config=getattr(model, "config", None))
        with torch.inference_mode():
            model(input_ids=ids, use_cache=True, logits_to_keep=1, **{_cache_kwarg(model): cache})
        return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)

    def __len__(self) -> int:
        return len(self.entries)

    def model_of(self, prompt: Prompt) -> Any:
        # Read each time: attaching the first adapter wraps the base model in a PEFT model.
        return self.engine.targets[prompt.model][0]

    # --- one step ----------------------------------------------------------------------------
    def add(self, entries: list[Entry]) -> None:
        """Prefill new rows and merge them into the batch; each takes its first token. Rows whose prefill
        fails end with the error at once."""
        if not entries:
            return
        try:
            model = self.model_of(entries[0].prompt)
            tok = self.engine.tok
            texts = [render(tok, e.prompt) for e in entries]
            tok.padding_side = "left"
            device = next(model.parameters()).device
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            for e, t, n in zip(entries, texts, enc["attention_mask"].sum(-1).tolist(), strict=True):
                e.row = Row(tok, e.prompt.sampling, n, t)
            cache = DynamicCache(config=getattr(model, "config", None))
            mask = enc["attention_mask"]
            logits = self._forward(model, entries, enc["input_ids"], mask, (mask.cumsum(-1) - 1).clamp(min=0), cache)
            first = self._pick([e.row for e in entries], logits)
        except Exception as e:  # noqa: BLE001 - these rows end with the error; the batch goes on
            for entry in entries:
                entry.on_done(e)
            return
        if self.entries:
            self._merge(cache, mask)
            self.next_ids = torch.cat([self.next_ids, first])
        else:
            self.cache, self.mask, self.next_ids = cache, mask, first
        self.entries += entries
        self._push(range(len(self.entries) - len(entries), len(self.entries)), first)

    def step(self) -> None:
        """One token for every active row."""
        if not self.entries:
            return
        positions = self.mask.sum(-1, keepdim=True)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.entries), 1)], dim=-1)
        model = self.model_of(self.entries[0].prompt)
        logits = self._forward(model, self.entries, self.next_ids[:, None], self.mask, positions, self.cache)
        self.next_ids = self._pick([e.row for e in self.entries], logits)
        self._push(range(len(self.entries)), self.next_ids)

    def fail(self, error: BaseException) -> None:
        for e in self.entries:
            e.on_done(error)
        self.entries, self.cache, self.mask, self.next_ids = [], None, None, None

    def drop_missing(self, error_for: Callable[[str], BaseException]) -> None:
        """Rows whose model is no longer served (a run deleted meanwhile) end with ``error_for(model id)``."""
        keep = []
        for i, e in enumerate(self.entries):
            if e.prompt.model in self.engine.targets:
                keep.append(i)
            else:
                e.on_done(error_for(e.prompt.model))
        if len(keep) < len(self.entries):
            self._keep(keep)

    # --- helpers -----------------------------------------------------------------------------
    def _forward(self, model: Any, entries: list[Entry], ids: torch.Tensor, mask: torch.Tensor,
                 positions: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        adapters = [self.engine.targets[e.prompt.model][1] for e in entries]
        extra = {"adapter_names": [a or BASE_ADAPTER for a in adapters]} if any(adapters) else {}
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                        **{_cache_kwarg(model): cache}, **extra)
        return out.logits[:, -1, :]

    def _pick(self, rows: list[Row], logits: torch.Tensor) -> torch.Tensor:
        tokens = logits.argmax(-1)
        for i, token in choose_tokens(rows, logits, self.engine.forced_close).items():
            tokens[i] = token
        return tokens

    def _push(self, indices: range, tokens: torch.Tensor) -> None:
        """Give each row its token; rows that are done leave the batch."""
        stops = set(self.engine.stops)
        for i, token in zip(indices, tokens.tolist(), strict=True):
            e = self.entries[i]
            if e.stopped():
                e.row.done, e.row.finish = True, "stop"
                continue
            delta = e.row.push(token, stops)
            if delta and e.on_delta is not None:
                e.on_delta(delta)
        keep = [i for i, e in enumerate(self.entries) if not e.row.done]
        if len(keep) == len(self.entries):
            return
        now = time.perf_counter()
        for e in self.entries:
            if e.row.done:
                e.on_done(e.row.result(now - e.started))
        self._keep(keep)

    def _keep(self, keep: list[int]) -> None:
        """Only these rows stay in the batch."""
        self.entries = [self.entries[i] for i in keep]
        if not keep:
            self.cache = self.mask = self.next_ids = None
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.next_ids = self.mask[index], self.next_ids[index]
        self._trim()

    def _merge(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        """Append the new rows' cache and mask below the batch's, left-padding the shorter to the longer."""
        length = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_pad_left(old.keys, length), _pad_left(new.keys, length)])
            old.values = torch.cat([_pad_left(old.values, length), _pad_left(new.values, length)])
        self.mask = torch.cat([F.pad(self.mask, (length - self.mask.shape[1], 0)),
                               F.pad(mask, (length - mask.shape[1], 0))])

    def _trim(self) -> None:
        """Drop leading columns that are padding in every row (left by rows that left)."""
        real = self.mask.any(0).nonzero()
        start = int(real[0]) if len(real) else 0
        if start == 0:
            return
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[..., start:, :], layer.values[..., start:, :]
        self.mask = self.mask[:, start:]


def _cache_kwarg(model: Any) -> str:
    """``cache`` in newer transformers, ``past_key_values`` before it."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def _pad_left(t: torch.Tensor, length: int) -> torch.Tensor:
    """(batch, heads, seq, dim) padded with zeros at the start of seq to ``length``."""
    return F.pad(t, (0, 0, length - t.shape[-2], 0))
