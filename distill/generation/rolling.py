"""The rolling batch: rows join a running batch between two decode steps, and a finished row leaves it at once.

Evaluation, benchmark jobs, local trace generation (``HFEngine.generate``) and the service's ``/v1`` all step
rows through it: with static batches a batch runs until its longest row stops, so rows that finished early
sit idle (an SFT answer of 60 tokens waits for a base answer that loops to the limit); here the next pending
prompt takes a finished row's place.

The KV cache lives in preallocated slots (:class:`SlotLayer`): ``(rows, heads, columns, dim)`` buffers with a
window ``[start, end)`` of live columns. A decode step writes one column (transformers' ``DynamicLayer``
copies the whole cache with ``torch.cat`` at every step); joining rows are prefilled together in one forward
and copied into free slots, right-aligned to ``end`` (their left is masked), so a join copies only the new
rows; a row that leaves is replaced by the last row (one row copied); leading columns that every row masks
are dropped by moving ``start``. Rows sample, force ``</think>`` and stop exactly as in ``HFEngine``'s static
batches (they are the same ``Row`` objects).

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
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from distill.generation.engine import EngineError, Generation, Prompt
from distill.generation.hf import BASE_ADAPTER, HFEngine, Row, choose_tokens, left_padded, render

GROW_COLUMNS = 128  # the slots' columns grow by at least this many at a time


@dataclass
class Entry:
    """One prompt in the batch, and where its text and result go."""

    prompt: Prompt
    on_delta: Callable[[str], None] | None = None
    stopped: Callable[[], bool] = lambda: False  # its caller went away
    on_done: Callable[[Generation | BaseException], None] = lambda _: None
    row: Row | None = None
    started: float = field(default_factory=time.perf_counter)


class SlotLayer(DynamicLayer):
    """One layer's keys and values in preallocated slots; ``keys``/``values`` are views of the live window."""

    def __init__(self) -> None:
        super().__init__()
        self.buf_k: torch.Tensor | None = None
        self.buf_v: torch.Tensor | None = None
        self.rows = self.start = self.end = 0

    def _view(self) -> None:
        self.keys = self.buf_k[:self.rows, :, self.start:self.end]
        self.values = self.buf_v[:self.rows, :, self.start:self.end]
        self.is_initialized = True

    def reserve(self, like: torch.Tensor, rows: int, columns: int) -> None:
        """Room for ``rows`` rows and ``columns`` columns (from column 0): buffers grow, keeping their content."""
        have_rows, have_cols = (0, 0) if self.buf_k is None else (self.buf_k.shape[0], self.buf_k.shape[2])
        if rows <= have_rows and columns <= have_cols:
            return
        cols = have_cols if columns <= have_cols else max(columns, have_cols + GROW_COLUMNS)
        shape = (max(rows, have_rows), like.shape[1], cols, like.shape[3])
        k, v = like.new_zeros(shape), like.new_zeros(shape)
        if self.buf_k is not None:
            k[:have_rows, :, :have_cols] = self.buf_k
            v[:have_rows, :, :have_cols] = self.buf_v
        self.buf_k, self.buf_v = k, v
        self.device = like.device

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        n = key_states.shape[-2]
        if self.end + n > self.buf_k.shape[2]:
            self._make_room(n)
        self.buf_k[:self.rows, :, self.end:self.end + n] = key_states
        self.buf_v[:self.rows, :, self.end:self.end + n] = value_states
        self.end += n
        self._view()
        return self.keys, self.values

    def _make_room(self, n: int) -> None:
        """Columns for ``n`` more: move the window to column 0 when that frees enough, else grow."""
        width = self.end - self.start
        if self.start >= max(n, GROW_COLUMNS // 2):
            for buf in (self.buf_k, self.buf_v):
                buf[:self.rows, :, :width] = buf[:self.rows, :, self.start:self.end].clone()
            self.start, self.end = 0, width
        else:
            self.reserve(self.buf_k, self.rows, self.end + n)

    def shift(self, new_start: int) -> None:
        """Move the window so it starts at ``new_start`` (rows' padding on the left grows or shrinks)."""
        self.start = new_start
        self._view()

    def place(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """New rows (right-aligned to ``end``) in the slots after the live rows."""
        k, p = keys.shape[0], keys.shape[2]
        self.reserve(keys, self.rows + k, self.end)
        self.buf_k[self.rows:self.rows + k, :, self.end - p:self.end] = keys
        self.buf_v[self.rows:self.rows + k, :, self.end - p:self.end] = values
        self.rows += k
        self._view()

    def move_row(self, src: int, dst: int) -> None:
        self.buf_k[dst, :, self.start:self.end] = self.buf_k[src, :, self.start:self.end]
        self.buf_v[dst, :, self.start:self.end] = self.buf_v[src, :, self.start:self.end]

    def shrink(self, rows: int) -> None:
        self.rows = rows
        self._view()

    def get_seq_length(self) -> int:
        return self.end - self.start if self.buf_k is not None else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:  # not used by the batch: it moves rows itself
        raise NotImplementedError("the rolling batch's cache moves rows with move_row")


class RollingBatch:
    """The active rows of one model object (a PEFT model serves all its adapters and its base).

    ``columns``: a hint, the longest prompt expected (evaluation knows all its prompts); the first rows are
    placed that far right so later, longer prompts join without moving the batch."""

    def __init__(self, engine: HFEngine, columns: int = 0):
        self.engine = engine
        self.columns = columns
        self.entries: list[Entry] = []
        self.cache: DynamicCache | None = None
        self.layers: list[SlotLayer] = []
        self.mask: torch.Tensor | None = None  # (rows, window): 1 = a real token, 0 = left padding
        self.next_ids: torch.Tensor | None = None  # (rows,) the token each row feeds next
        self.forwards = 0  # model calls (prefills and steps), for benchmarks
        self.row_steps = 0  # rows decoded, summed over steps

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
        return self.engine.model_of(prompt.model)

    # --- one step ----------------------------------------------------------------------------
    def add(self, entries: list[Entry]) -> None:
        """Prefill new rows together and place them in the batch; each takes its first token. When the joint
        prefill fails, each row is prefilled alone, so only the rows that fail by themselves end with their error."""
        if not entries:
            return
        try:
            self._add(entries)
        except Exception as e:  # noqa: BLE001 - these rows end with the error; the batch goes on
            if len(entries) == 1:
                entries[0].on_done(e)
                return
            for entry in entries:
                self.add([entry])

    def _add(self, entries: list[Entry]) -> None:
        model = self.model_of(entries[0].prompt)
        tok = self.engine.tok
        texts = [render(tok, e.prompt) for e in entries]
        device = next(model.parameters()).device
        ids, mask, lengths = left_padded(tok, texts, device)
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        too_long = [n for n in lengths if limit and n >= limit]
        if too_long:
            raise EngineError(f"the prompt has {too_long[0]} tokens; the model's context is {limit} tokens",
                              per_request=True)
        rows = [Row(tok, e.prompt.sampling, n, t) for e, t, n in zip(entries, texts, lengths, strict=True)]
        cache = DynamicCache(config=getattr(model, "config", None))
        logits = self._forward(model, entries, ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), cache)
        first = self._pick(rows, logits)
        for e, r in zip(entries, rows, strict=True):
            e.row = r
        self._place(cache, mask)
        self.next_ids = first if self.next_ids is None else torch.cat([self.next_ids, first])
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
        self.row_steps += len(self.entries)
        self.next_ids = self._pick([e.row for e in self.entries], logits)
        self._push(range(len(self.entries)), self.next_ids)

    def fail(self, error: BaseException) -> None:
        for e in self.entries:
            e.on_done(error)
        self._keep([])

    def drop_missing(self, error_for: Callable[[str], BaseException]) -> None:
        """Rows whose model is no longer served (a run deleted meanwhile) end with ``error_for(model id)``."""
        keep = []
        for i, e in enumerate(self.entries):
            if self.engine.serves(e.prompt.model):
                keep.append(i)
            else:
                e.on_done(error_for(e.prompt.model))
        if len(keep) < len(self.entries):
            self._keep(keep)

    # --- helpers -----------------------------------------------------------------------------
    def _forward(self, model: Any, entries: list[Entry], ids: torch.Tensor, mask: torch.Tensor,
                 positions: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        adapters = [self.engine.adapter_of(e.prompt.model) for e in entries]
        extra = {"adapter_names": [a or BASE_ADAPTER for a in adapters]} if any(adapters) else {}
        self.forwards += 1
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                        **{_cache_kwarg(model): cache}, **extra)
        return out.logits[:, -1, :].float()  # as generate() samples: float32 logits whatever the model dtype

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
        done = [e for e in self.entries if e.row.done]
        self._keep(keep)
        for e in done:  # after the batch is consistent again: a callback may add rows
            e.on_done(e.row.result(now - e.started))

    @torch.inference_mode()  # the buffers are inference tensors (made during forwards)
    def _place(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        """The new rows' prefilled cache into free slots, right-aligned to the batch's last column."""
        p = mask.shape[1]
        if not self.layers:
            first = cache.layers[0].keys
            self.cache = DynamicCache(config=None)
            self.layers = [SlotLayer() for _ in cache.layers]
            self.cache.layers = self.layers
            end = max(p, self.columns)
            for layer in self.layers:
                layer.reserve(first, max(self.engine.batch_size, mask.shape[0]), end + GROW_COLUMNS)
                layer.start = layer.end = end
        width = self.layers[0].end - self.layers[0].start
        if p > width:  # a longer prompt: the window reaches further left (the old rows masked there)
            need = self.layers[0].end - p
            if need < 0:  # not enough columns on the left: move everything right once
                self._shift_right(-need)
                need = 0
            for layer in self.layers:
                layer.shift(need)
            old = self.mask if self.mask is not None else mask.new_zeros(0, width)
            self.mask = torch.cat([old.new_zeros(old.shape[0], p - width), old], dim=-1)
            width = p
        for layer, new in zip(self.layers, cache.layers, strict=True):
            layer.place(new.keys, new.values)
        new_mask = torch.cat([mask.new_zeros(mask.shape[0], width - p), mask], dim=-1)
        self.mask = new_mask if self.mask is None else torch.cat([self.mask, new_mask])

    @torch.inference_mode()  # the buffers are inference tensors (made during forwards)
    def _shift_right(self, by: int) -> None:
        for layer in self.layers:
            width = layer.end - layer.start
            layer.reserve(layer.buf_k, layer.rows, layer.end + by)
            for buf in (layer.buf_k, layer.buf_v):
                live = buf[:layer.rows, :, layer.start:layer.end].clone()
                buf[:layer.rows, :, layer.start + by:layer.end + by] = live
            layer.start, layer.end = layer.start + by, layer.start + by + width
            layer._view()

    @torch.inference_mode()  # the buffers are inference tensors (made during forwards)
    def _keep(self, keep: list[int]) -> None:
        """Only these rows stay in the batch: the slot of a leaving row takes a kept row from the end, so only
        the moved rows are copied."""
        if not keep:
            self.entries, self.cache, self.layers, self.mask, self.next_ids = [], None, [], None, None
            return
        n, kept = len(keep), set(keep)
        holes = [h for h in range(n) if h not in kept]  # slots below n whose rows leave
        tail = [k for k in keep if k >= n]  # kept rows above them: as many
        source = list(range(n))
        for hole, src in zip(holes, tail, strict=True):
            for layer in self.layers:
                layer.move_row(src, hole)
            source[hole] = src
        index = torch.tensor(source, device=self.mask.device)
        self.entries = [self.entries[i] for i in source]
        self.mask, self.next_ids = self.mask[index], self.next_ids[index]
        for layer in self.layers:
            layer.shrink(n)
        self._trim()

    @torch.inference_mode()  # the buffers are inference tensors (made during forwards)
    def _trim(self) -> None:
        """Drop leading columns that are padding in every row (left by rows that left)."""
        real = self.mask.any(0).nonzero()
        start = int(real[0]) if len(real) else 0
        if start == 0:
            return
        for layer in self.layers:
            layer.shift(layer.start + start)
        self.mask = self.mask[:, start:]


def _cache_kwarg(model: Any) -> str:
    """``cache`` in newer transformers, ``past_key_values`` before it."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
