"""The in-process engine: transformers models, base and SFT rows side by side.

- Rolling batch (``rolling.py``, the default where the model's cache is plain full attention): ``batch_size``
  rows in flight, each finished row replaced at once by the next pending prompt, each result handed to
  ``on_result`` the moment it is finished. Static batches (``rolling=False``, and models with sliding-window
  or other caches): rows grouped by model and sorted by prompt length, each batch run with ``generate`` until
  its longest row stops. Both give the same tokens.
- With a PEFT model, base and SFT rows share a batch (``adapter_names``: ``"__base__"`` = adapter off).
- Each row samples on its own (:class:`Row`): temperature, top-p and a seeded generator per row,
  so a seeded row gives the same text whatever rows share its batch, and requests with different
  settings can share one batch.
- Budget forcing: a row whose thought reaches ``max_thinking_tokens`` gets ``\\n</think>\\n\\n``
  forced, one token per step, and then answers.
- Per-row stop strings, token limits and streaming of text deltas.

The tokenizer is shared (the service, the trainer): it is never changed here; left padding is asked per call.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

from distill.generation.engine import (
    Generation,
    GenerationCancelled,
    check_served,
    OnDelta,
    OnResult,
    Prompt,
    Sampling,
    failed,
)
from distill.reasoning import FORCED_CLOSE, THINK_OPEN, StreamSplitter
from distill.threads import ThreadTuner

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in adapter_names


def stop_token_ids(tokenizer: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return sorted(i for i in ids if i is not None)


def render(tokenizer: Any, prompt: Prompt) -> str:
    if prompt.text is not None:
        return prompt.text
    if prompt.continue_final:
        return tokenizer.apply_chat_template(list(prompt.messages), continue_final_message=True, tokenize=False)
    return tokenizer.apply_chat_template(list(prompt.messages), add_generation_prompt=True, tokenize=False)


def left_padded(tokenizer: Any, texts: list[str], device: Any) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(input ids, attention mask, prompt lengths) of ``texts``, padded on the left, without touching the shared
    tokenizer's ``padding_side``."""
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    mask = enc["attention_mask"]
    return enc["input_ids"].to(device), mask.to(device), mask.sum(-1).tolist()


class Row:
    """One row's state while it generates: its text so far (decoded incrementally), thought, limits."""

    def __init__(self, tokenizer: Any, sampling: Sampling, prompt_tokens: int, prompt_text: str):
        self.tok, self.s = tokenizer, sampling
        self.prompt_tokens = prompt_tokens
        self.ids: list[int] = []
        self.text = ""
        self._prefix = self._read = 0
        self.count = 0
        self.done = False
        self.finish = "length"
        # Where the thought is, by the one rule (distill.reasoning); the prompt may have opened it.
        self.thought = StreamSplitter(in_thought=prompt_text.rstrip().endswith(THINK_OPEN))
        self.think_tokens = 0
        self.forced = False
        self.force_queue: list[int] = []
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator().manual_seed(seed)

    def _detok(self) -> str:
        # Decode a short window, not the whole text: constant work per token (vLLM's approach).
        prefix = self.tok.decode(self.ids[self._prefix:self._read], skip_special_tokens=True)
        full = self.tok.decode(self.ids[self._prefix:], skip_special_tokens=True)
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return full[len(prefix):]
        return ""

    def push(self, token: int, stops: set[int]) -> str:
        """Take the row's next token; returns the new text."""
        self.count += 1
        if token in stops:
            self.done, self.finish = True, "stop"
            return ""
        self.ids.append(token)
        delta = self._detok()
        was_in = self.in_thought
        if delta:
            self.text += delta
            self.thought.feed(delta)
            for s in self.s.stop:
                at = self.text.find(s, max(0, len(self.text) - len(delta) - len(s)))
                if at != -1:
                    delta = delta[: max(0, len(delta) - (len(self.text) - at))]
                    self.text, self.done, self.finish = self.text[:at], True, "stop"
                    break
        if was_in or self.in_thought:
            self.think_tokens += 1
        if not self.done and self.count >= self.s.max_new_tokens:
            self.done = True
        return delta

    @property
    def in_thought(self) -> bool:
        return self.thought.in_thought

    def result(self, time_s: float) -> Generation:
        return Generation(text=self.text.strip(), new_tokens=self.count, finish_reason=self.finish, time_s=time_s,
                          prompt_tokens=self.prompt_tokens, think_tokens=self.think_tokens, forced=self.forced)

    def forced_token(self, forced_close: list[int]) -> int | None:
        """The token the thinking budget makes this row take next, if any."""
        budget = self.s.max_thinking_tokens
        if not self.force_queue and self.in_thought and budget is not None and self.think_tokens >= budget:
            self.force_queue, self.forced = list(forced_close), True
        return self.force_queue.pop(0) if self.force_queue else None


NUCLEUS_K = 1024  # top-p is computed within the k likeliest tokens (exactly: rows whose nucleus is larger use all)


def sample(scores: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One token per row: temperature, then the smallest set of tokens reaching ``top_p``, then inverse-CDF
    sampling with the row's own uniform draw (so a row's sample does not depend on the other rows)."""
    probs = torch.softmax(scores.float() / temperature[:, None], dim=-1)
    k = min(NUCLEUS_K, probs.shape[-1])
    vals, idx = probs.topk(k, dim=-1)
    # Rows without a nucleus, or whose nucleus reaches beyond the top k: all tokens, in vocabulary order
    # (a nucleus needs them sorted: those rows, rare, sort the whole vocabulary).
    wide = (top_p < 1.0) & (vals.sum(-1) < top_p)
    if wide.any() or (top_p >= 1.0).any():
        order = torch.arange(probs.shape[-1], device=probs.device).expand_as(probs).clone()
        all_vals = probs.clone()
        if wide.any():
            all_vals[wide], order[wide] = probs[wide].sort(dim=-1, descending=True)
        narrow = ~(wide | (top_p >= 1.0))
        all_vals[narrow, :k], order[narrow, :k] = vals[narrow], idx[narrow]
        all_vals[narrow, k:] = 0.0
        vals, idx = all_vals, order
    keep = (vals.cumsum(-1) - vals) < top_p[:, None]  # the smallest set whose mass reaches top_p
    cdf = vals.masked_fill(~keep, 0.0).cumsum(-1)
    pick = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
    return idx.gather(-1, pick).squeeze(-1)


def choose_tokens(rows: Sequence[Row], scores: torch.Tensor, forced_close: list[int]) -> dict[int, int]:
    """The next token of each row that does not take the argmax: forced by the thinking budget, or sampled."""
    chosen: dict[int, int] = {}
    sampled = []
    for i, row in enumerate(rows):
        if row.done:
            continue
        token = row.forced_token(forced_close)
        if token is not None:
            chosen[i] = token
        elif row.s.temperature > 0:
            sampled.append(i)
    if sampled:
        picked = [rows[i] for i in sampled]
        uniform = torch.cat([torch.rand(1, generator=r.generator) for r in picked]).to(scores.device)
        temps = scores.new_tensor([r.s.temperature for r in picked])
        top_p = scores.new_tensor([r.s.top_p for r in picked])
        chosen.update(zip(sampled, sample(scores[sampled], temps, top_p, uniform).tolist(), strict=True))
    return chosen


class _Rows:
    """The logits processor and stopping criteria of one batch: per-row sampling, forcing and stops."""

    def __init__(self, rows: list[Row], stops: list[int], forced_close: list[int], on_delta: OnDelta | None,
                 indices: list[int], should_cancel: Callable[[], bool] | None, tuner: ThreadTuner | None,
                 stop_row: Callable[[int], bool] | None = None):
        self.rows, self.stops, self.forced_close = rows, set(stops), forced_close
        self.on_delta, self.indices, self.should_cancel, self.tuner = on_delta, indices, should_cancel, tuner
        self.stop_row = stop_row

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Force or sample each row's next token by making it the only finite score (generate then takes the
        argmax); greedy rows are left to the argmax."""
        chosen = choose_tokens(self.rows, scores, self.forced_close)
        if chosen:
            at = torch.tensor(list(chosen), device=scores.device)
            scores[at] = float("-inf")
            scores[at, torch.tensor(list(chosen.values()), device=scores.device)] = 0.0
        return scores

    def criteria(self) -> Callable[..., torch.Tensor]:
        def stop(input_ids: torch.Tensor, scores: Any = None, **_: Any) -> torch.Tensor:
            if self.should_cancel is not None and self.should_cancel():
                raise GenerationCancelled()
            if self.tuner is not None:
                self.tuner.end(1.0)
                self.tuner.begin()
            for i, token in enumerate(input_ids[:, -1].tolist()):
                row = self.rows[i]
                if not row.done and self.stop_row is not None and self.stop_row(self.indices[i]):
                    row.done, row.finish = True, "stop"  # its caller went away: free the row's share of the batch
                if not row.done:
                    delta = row.push(token, self.stops)
                    if delta and self.on_delta is not None:
                        self.on_delta(self.indices[i], delta)
            return torch.tensor([r.done for r in self.rows], device=input_ids.device)

        return stop


class HFEngine:
    """Generation with in-process transformers models. ``targets`` maps a model name to
    ``(model, adapter)``: adapter None for a plain model, or the PEFT adapter name
    (``BASE_ADAPTER`` = the same weights with the adapter off). Names are added and removed through the
    registry methods (``add``, ``alias``, ``add_adapter``, ``remove``), under ``lock``: a name never changes
    while a batch generates."""

    name = "hf"

    def __init__(self, tokenizer: Any, targets: dict[str, tuple[Any, str | None]] | None = None,
                 batch_size: int = 64, tune_threads: bool = True, group_by_length: bool = True,
                 rolling: bool | None = None):
        """``rolling``: None = the rolling batch for models whose cache allows it, static batches otherwise;
        False = static batches always (benchmarks compare the two)."""
        self.tok = tokenizer
        self.group_by_length = group_by_length
        self.targets: dict[str, tuple[Any, str | None]] = dict(targets or {})
        self.batch_size = max(1, batch_size)
        self.tune_threads = tune_threads
        self.rolling = rolling
        self.stops = stop_token_ids(tokenizer)
        self.forced_close = tokenizer.encode(FORCED_CLOSE, add_special_tokens=False)
        self.lock = threading.RLock()
        self._rolls: dict[int, bool] = {}  # id(model) -> its cache suits the rolling batch
        self.stats = {"forwards": 0, "row_steps": 0}  # the rolling batch's model calls and rows decoded

    @classmethod
    def for_pair(cls, sft: Any, tokenizer: Any, base: Any | None = None, adapter: str = "default",
                 **kw: Any) -> HFEngine:
        """A run's two models: one PEFT model (base = adapter off) or two separate models."""
        if base is None:
            return cls(tokenizer, {"base": (sft, BASE_ADAPTER), "sft": (sft, adapter)}, **kw)
        return cls(tokenizer, {"base": (base, None), "sft": (sft, None)}, **kw)

    def models(self) -> list[str]:
        return list(self.targets)

    def close(self) -> None:
        self.targets.clear()

    # --- the registry: which names this engine serves ---------------------------------------------
    def serves(self, name: str) -> bool:
        return name in self.targets

    def model_of(self, name: str) -> Any:
        """The model object that answers for ``name`` (a PEFT model serves all its adapters and its base)."""
        return self.targets[name][0]

    def adapter_of(self, name: str) -> str | None:
        """The PEFT adapter ``name`` answers with (None: a plain model; BASE_ADAPTER: the adapter off)."""
        return self.targets[name][1]

    def add(self, name: str, model: Any, adapter: str | None = None) -> None:
        """Serve ``model`` as ``name`` (``adapter``: the PEFT adapter it answers with; None = a plain model)."""
        with self.lock:
            self.targets[name] = (model, adapter)

    def alias(self, name: str, target: str) -> None:
        """``name`` answers as ``target`` does now (the same weights, the same adapter)."""
        with self.lock:
            self.targets[name] = self.targets[target]

    def add_adapter(self, name: str, path: str | Path, onto: str, adapter: str | None = None) -> None:
        """Load the LoRA adapter in ``path`` onto the model ``onto`` names and serve it as ``name`` (PEFT adapter
        ``adapter``, default ``name``). The first adapter wraps the plain model in a PEFT model: every name that
        served the plain model answers through the wrapper from then on, with the adapter off."""
        from peft import PeftModel

        adapter = adapter or name
        with self.lock:
            model = self.model_of(onto)
            if isinstance(model, PeftModel):
                model.load_adapter(str(path), adapter_name=adapter)
                model.set_adapter(adapter)  # PEFT's active adapter must not be one deleted later
            else:
                plain, model = model, PeftModel.from_pretrained(model, str(path), adapter_name=adapter).eval()
                for other, (m, _) in list(self.targets.items()):
                    if m is plain:
                        self.targets[other] = (model, BASE_ADAPTER)
            self.targets[name] = (model, adapter)

    def remove(self, name: str) -> None:
        """Stop serving ``name``. A PEFT adapter that no name answers with any more is deleted from its model
        (its weights leave memory); a model no name serves is freed with its last reference."""
        with self.lock:
            model, adapter = self.targets.pop(name, (None, None))
            if adapter in (None, BASE_ADAPTER):
                return
            if not any(m is model and a == adapter for m, a in self.targets.values()):
                model.delete_adapter(adapter)

    def rolls(self, model: Any) -> bool:
        """Whether ``model``'s prompts go through the rolling batch."""
        if self.rolling is False:
            return False
        if id(model) not in self._rolls:
            from distill.generation.rolling import RollingBatch

            self._rolls[id(model)] = RollingBatch.supports(model, self.tok)
        return self._rolls[id(model)]

    def generate(self, prompts: Sequence[Prompt], *, on_delta: OnDelta | None = None,
                 should_cancel: Callable[[], bool] | None = None, desc: str = "generate",
                 stop_row: Callable[[int], bool] | None = None, on_result: OnResult | None = None) -> list[Generation]:
        """``stop_row(i)``: prompt i's caller went away; its row stops (the others go on). ``on_result`` gets each
        row as soon as it is finished (in the rolling batch) or when its batch ends (static batches); with it, a
        row that fails alone (its prefill: e.g. a prompt longer than the model's context) is a Generation with
        ``error`` and the others go on."""
        check_served(prompts, self.targets)
        texts = [render(self.tok, p) for p in prompts]
        lengths = [len(ids) for ids in self.tok(texts, add_special_tokens=False)["input_ids"]]
        out: list[Generation | None] = [None] * len(prompts)

        def finished(i: int, g: Generation) -> None:
            out[i] = g
            if on_result is not None:
                on_result(i, g)

        with self.lock:
            for idx in self._groups(prompts):
                model = self.model_of(prompts[idx[0]].model)
                if self.rolls(model):
                    self._roll(model, [(i, prompts[i]) for i in idx], max(lengths[i] for i in idx), on_delta,
                               should_cancel, stop_row, finished, on_result is not None, desc)
                    continue
                batches = self._batches(idx, lengths)
                for b in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 2):
                    if should_cancel is not None and should_cancel():
                        raise GenerationCancelled()
                    gens = self._generate_batch([prompts[i] for i in b], [texts[i] for i in b],
                                                [lengths[i] for i in b], b, on_delta, should_cancel, stop_row)
                    for i, g in zip(b, gens, strict=True):
                        finished(i, g)
        return [g for g in out if g is not None]

    def _groups(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Prompt indices per model object, in order (a PEFT model serves all its adapters and its base)."""
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(id(self.model_of(p.model)), []).append(i)
        return list(groups.values())

    def _roll(self, model: Any, todo: list[tuple[int, Prompt]], columns: int, on_delta: OnDelta | None,
              should_cancel: Callable[[], bool] | None, stop_row: Callable[[int], bool] | None,
              finished: OnResult, keep_going: bool, desc: str) -> None:
        """``todo`` through one rolling batch: ``batch_size`` rows in flight; all rows that join at one step are
        prefilled in one forward. A row that fails alone ends as a failed Generation (``keep_going``) or raises."""
        from distill.generation.rolling import Entry, RollingBatch

        batch, pending, errors = RollingBatch(self, columns=columns), list(reversed(todo)), []
        tuner = ThreadTuner.for_device(next(model.parameters()).device) if self.tune_threads else None

        def entry(i: int, prompt: Prompt) -> Entry:
            def done(result: Generation | BaseException) -> None:
                if isinstance(result, BaseException):
                    if not keep_going:
                        errors.append(result)
                        return
                    result = failed(str(result))
                progress.update(1)
                finished(i, result)

            return Entry(prompt, on_delta=(lambda d: on_delta(i, d)) if on_delta is not None else None,
                         stopped=(lambda: stop_row(i)) if stop_row is not None else (lambda: False), on_done=done)

        was_training = model.training
        model.eval()
        progress = tqdm(total=len(todo), desc=desc, unit="row", disable=len(todo) < 2 * self.batch_size)
        try:
            while pending or len(batch):
                if should_cancel is not None and should_cancel():
                    raise GenerationCancelled()
                if tuner is not None:
                    tuner.begin()
                joining = [pending.pop() for _ in range(min(self.batch_size - len(batch), len(pending)))]
                batch.add([entry(i, p) for i, p in joining])
                if errors:
                    raise errors[0]
                batch.step()
                if tuner is not None:
                    tuner.end(1.0)
        finally:
            progress.close()
            model.train(was_training)
            if tuner is not None:
                tuner.restore()
            self.stats["forwards"] += batch.forwards
            self.stats["row_steps"] += batch.row_steps

    def _batches(self, idx: list[int], lengths: list[int]) -> list[list[int]]:
        """One model's prompt indices cut into static batches, sorted by length (less padding)."""
        if self.group_by_length:
            idx = sorted(idx, key=lambda i: lengths[i])
        return [idx[s:s + self.batch_size] for s in range(0, len(idx), self.batch_size)]

    def _generate_batch(self, prompts: list[Prompt], texts: list[str], lengths: list[int], indices: list[int],
                        on_delta: OnDelta | None, should_cancel: Callable[[], bool] | None,
                        stop_row: Callable[[int], bool] | None) -> list[Generation]:
        model = self.model_of(prompts[0].model)
        adapters = [self.adapter_of(p.model) for p in prompts]
        device = next(model.parameters()).device
        ids, mask, _ = left_padded(self.tok, texts, device)
        rows = [Row(self.tok, p.sampling, n, t)
                for p, t, n in zip(prompts, texts, lengths, strict=True)]
        tuner = ThreadTuner.for_device(device) if self.tune_threads else None
        ctl = _Rows(rows, self.stops, self.forced_close, on_delta, indices, should_cancel, tuner, stop_row)
        config = GenerationConfig(max_new_tokens=max(p.sampling.max_new_tokens for p in prompts), do_sample=False,
                                  eos_token_id=self.stops, pad_token_id=self.tok.pad_token_id)
        extra = {"adapter_names": [a or BASE_ADAPTER for a in adapters]} if any(adapters) else {}
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                               logits_processor=LogitsProcessorList([ctl]),
                               stopping_criteria=StoppingCriteriaList([ctl.criteria()]), **extra)
        finally:
            model.train(was_training)
            if tuner is not None:
                tuner.restore()
        elapsed = time.perf_counter() - t0
        total = max(sum(r.count for r in rows), 1)
        return [r.result(elapsed * r.count / total) for r in rows]
