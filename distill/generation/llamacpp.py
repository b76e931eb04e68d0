"""The ``llamacpp`` engine: GGUF files through llama.cpp (llama-cpp-python, the optional extra ``llamacpp``), on CPU.

- Batched the way llama.cpp's own server is: one context per GGUF with ``batch_size`` sequences (slots) sharing one
  KV pool; every step is one ``llama_decode`` holding the prompts of the rows that join (prefill) and the last token
  of every running row, so the weights are read once per step for all rows. A finished row frees its slot and the
  next pending prompt joins at the next step (a rolling batch, like the hf engine's). ``batch_size=1`` is one stream.
- The prompt text is the hf engine's: the same chat template, rendered by transformers (the tokenizer's, or the one
  the GGUF carries), tokenized by the GGUF's own vocabulary (the same ids for a converted model: the tests check).
- Sampling, stop strings, ``max_new_tokens``, budget forcing and the thought's token count are the hf engine's own
  code (:class:`distill.generation.hf.Row`, :func:`distill.generation.hf.choose_tokens`) on llama.cpp's logits:
  greedy is the argmax, a seeded row draws from its own generator, so its text does not depend on its batch.

:func:`engine_for_run` serves a run's base and SFT models: their GGUFs are converted once (llama.cpp's converter,
:mod:`distill.export.gguf`) into ``<model cache>/gguf/`` (``DISTILL_MODEL_CACHE``, default ``~/.cache/distill/models``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill.generation.engine import (
    EngineError,
    Generation,
    GenerationCancelled,
    check_served,
    OnDelta,
    OnResult,
    Prompt,
    failed,
)
from distill.generation.hf import Row, choose_tokens, render
from distill.reasoning import FORCED_CLOSE

EXTRA_HINT = "pip install 'distill-studio[llamacpp]' (build flags: README, \"Export a model\")"
CTX_PER_ROW = 2048  # KV positions reserved per slot unless told: prompt + new tokens of a row must fit
# A run's --eval_batch_size (64 by default, sized for the hf engine) is capped here: every slot holds its own KV
# positions, and on a few CPU cores the tokens/s of one decode stop growing long before 64 rows.
MAX_SLOTS = 16


def require_llama_cpp() -> Any:
    """llama_cpp, or one line saying how to install it."""
    # ggml's CPU threads are OpenMP's, which spin while they wait by default: on a shared machine (more runnable
    # threads than cores) that made a decode step 4-10x slower here (2 threads, load 7-12: 87-169 ms per token
    # against 24 ms passive). Read once, when libgomp loads with llama_cpp; a value already set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except Exception as e:  # noqa: BLE001 - not installed, or a build whose library does not load
        raise EngineError(f"the llamacpp engine needs llama-cpp-python ({type(e).__name__}: {e}): "
                          f"{EXTRA_HINT}") from None
    return llama_cpp


def check_gguf(path: str | Path) -> Path:
    """``path`` if it is a GGUF file (by its magic bytes), else one line naming it, before anything loads."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EngineError(f"no GGUF file at {path}")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise EngineError(f"{path} is not a GGUF file (it does not start with the GGUF magic)")
    return path


class _Vocab:
    """The few tokenizer calls :class:`Row` makes, answered by the GGUF's vocabulary."""

    def __init__(self, model: Any):
        self.model = model

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        # Invalid UTF-8 (a character split across tokens) shows as U+FFFD, which Row waits out, as with transformers.
        return self.model.detokenize(ids, special=not skip_special_tokens).decode("utf-8", errors="replace")


class GGUFModel:
    """One GGUF file loaded once: its weights and vocabulary, and a context of ``slots`` sequences."""

    def __init__(self, path: Path, slots: int, ctx_per_row: int, n_threads: int):
        llama_cpp = require_llama_cpp()
        from llama_cpp import _internals

        self.path, self.slots = path, slots
        quiet = logging.getLogger("llama-cpp-python")  # llama.cpp's log goes through it: errors only, unless set
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.ERROR)
        params = llama_cpp.llama_model_default_params()
        try:
            self.model = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        except ValueError:
            raise EngineError(f"llama.cpp could not load {path} (a GGUF it does not support, or a damaged "
                              "file)") from None
        self.n_vocab = self.model.n_vocab()
        self.ctx_per_row = min(ctx_per_row, self.model.n_ctx_train())
        self.n_batch = 512  # tokens per llama_decode call; longer steps are cut into calls of this size
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = self.ctx_per_row * slots
        cparams.n_batch = cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = slots
        cparams.kv_unified = True  # one pool: a long row may use what short rows leave
        cparams.n_threads = cparams.n_threads_batch = n_threads
        self.context = _internals.LlamaContext(model=self.model, params=cparams, verbose=False)
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.vocab = _Vocab(self.model)
        self.meta = self.model.metadata()

    def tokenize(self, text: str) -> list[int]:
        # The template already wrote any BOS it wants, as with transformers' add_special_tokens=False.
        return self.model.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def token_text(self, token: int) -> str | None:
        return self.model.token_get_text(token) if token >= 0 else None

    def stop_ids(self) -> set[int]:
        """End of sequence, end of turn and ChatML's ``<|im_end|>`` (the hf engine's stops)."""
        ids = {self.model.token_eos(), self.model.token_eot()}
        im_end = self.model.tokenize(b"<|im_end|>", add_bos=False, special=True)
        if len(im_end) == 1:
            ids.add(im_end[0])
        return {i for i in ids if i >= 0}

    def forget(self, seq: int) -> None:
        require_llama_cpp().llama_memory_seq_rm(self.context.memory, seq, -1, -1)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> list[np.ndarray]:
        """Run ``(token, position, sequence, wants logits)`` entries through the model, ``n_batch`` at a time; the
        logits of the entries that want them, in order."""
        llama_cpp = require_llama_cpp()
        out = []
        b = self.batch.batch
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start:start + self.n_batch]
            for j, (token, pos, seq, logits) in enumerate(chunk):
                b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = token, pos, 1, logits
                b.seq_id[j][0] = seq
            b.n_tokens = len(chunk)
            rc = llama_cpp.llama_decode(self.context.ctx, b)
            if rc != 0:
                raise EngineError(f"llama.cpp's decode failed ({rc}) on {self.path.name}: its context is full "
                                  f"({self.ctx_per_row * self.slots} positions)")
            for j, entry in enumerate(chunk):
                if entry[3]:
                    ptr = llama_cpp.llama_get_logits_ith(self.context.ctx, j)
                    out.append(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy())
        return out

    def close(self) -> None:
        self.batch.close()
        self.context.close()
        self.model.close()


@dataclass
class _Active:
    """A row in a slot: which prompt it answers, where its next token goes, how many positions it may use."""

    index: int
    row: Row
    seq: int
    pos: int
    limit: int  # positions it may fill: its prompt plus max_new_tokens, within its share of the context
    pending: list[int]  # tokens to feed at the next step (the prompt first, then the last chosen token)
    time_s: float = 0.0


class LlamaCppEngine:
    """Generation with GGUF files through llama.cpp. ``ggufs`` maps a model name ("base", "sft") to its file;
    names that share a file share one loaded model. ``tokenizer``: a transformers tokenizer whose chat template
    renders the prompts (the hf engine's text); None = the template the GGUF carries."""

    name = "llamacpp"

    def __init__(self, ggufs: dict[str, str | Path], tokenizer: Any = None, *, batch_size: int = 8,
                 ctx_per_row: int = CTX_PER_ROW, n_threads: int | None = None):
        paths = {name: check_gguf(p) for name, p in ggufs.items()}  # every bad path refused before any load
        require_llama_cpp()
        self.tok = tokenizer
        self.batch_size = max(1, batch_size)
        threads = n_threads or len(os.sched_getaffinity(0))
        loaded: dict[Path, GGUFModel] = {}
        for path in paths.values():
            if path.resolve() not in loaded:
                loaded[path.resolve()] = GGUFModel(path, self.batch_size, ctx_per_row, threads)
        self.targets = {name: loaded[p.resolve()] for name, p in paths.items()}
        self.lock = threading.RLock()

    def models(self) -> list[str]:
        return list(self.targets)

    def close(self) -> None:
        for gm in {id(m): m for m in self.targets.values()}.values():
            gm.close()
        self.targets.clear()

    def render(self, prompt: Prompt, gm: GGUFModel) -> str:
        """The prompt text: the tokenizer's chat template, else the GGUF's (rendered by transformers either way)."""
        if self.tok is not None or prompt.text is not None:
            return render(self.tok, prompt)
        from transformers.utils.chat_template_utils import render_jinja_template

        template = gm.meta.get("tokenizer.chat_template")
        if not template:
            raise EngineError(f"{gm.path.name} carries no chat template: give the engine the model's tokenizer")
        special = {"bos_token": gm.token_text(gm.model.token_bos()), "eos_token": gm.token_text(gm.model.token_eos())}
        rendered, _ = render_jinja_template([list(prompt.messages)], chat_template=template,
                                            add_generation_prompt=not prompt.continue_final,
                                            continue_final_message=prompt.continue_final, **special)
        return rendered[0]

    def generate(self, prompts: Sequence[Prompt], *, on_delta: OnDelta | None = None,
                 should_cancel: Callable[[], bool] | None = None, desc: str = "generate",
                 on_result: OnResult | None = None) -> list[Generation]:
        check_served(prompts, self.targets)
        out: list[Generation | None] = [None] * len(prompts)

        def finished(i: int, g: Generation) -> None:
            out[i] = g
            if on_result is not None:
                on_result(i, g)

        with self.lock:
            groups: dict[int, list[int]] = {}
            for i, p in enumerate(prompts):
                groups.setdefault(id(self.targets[p.model]), []).append(i)
            for idx in groups.values():
                gm = self.targets[prompts[idx[0]].model]
                self._roll(gm, [(i, prompts[i]) for i in idx], on_delta, should_cancel, finished, on_result is not None)
        return [g for g in out if g is not None]

    def _roll(self, gm: GGUFModel, todo: list[tuple[int, Prompt]], on_delta: OnDelta | None,
              should_cancel: Callable[[], bool] | None, finished: OnResult, keep_going: bool) -> None:
        """``todo`` through ``gm``'s slots: rows join as slots free up; one decode per step for all of them."""
        pending = deque(todo)
        free = list(range(gm.slots - 1, -1, -1))
        active: list[_Active] = []
        stops = gm.stop_ids()
        forced_close = gm.tokenize(FORCED_CLOSE)
        try:
            while pending or active:
                if should_cancel is not None and should_cancel():
                    raise GenerationCancelled()
                while pending and free:
                    i, prompt = pending.popleft()
                    joined = self._join(gm, i, prompt, free[-1], keep_going, finished)
                    if joined is not None:
                        active.append(joined)
                        free.pop()
                if not active:  # every prompt that joined failed alone
                    continue
                t0 = time.perf_counter()
                logits = gm.decode([(t, a.pos + k, a.seq, k == len(a.pending) - 1)
                                    for a in active for k, t in enumerate(a.pending)])
                for a in active:
                    a.pos += len(a.pending)
                self._choose(active, np.stack(logits), stops, forced_close, on_delta)
                share = (time.perf_counter() - t0) / max(len(active), 1)
                for a in list(active):
                    a.time_s += share
                    if a.row.done or a.pos >= a.limit:
                        gm.forget(a.seq)
                        free.append(a.seq)
                        active.remove(a)
                        finished(a.index, a.row.result(a.time_s))
        finally:
            for a in active:  # cancelled or failed: the slots start clean next time
                gm.forget(a.seq)

    def _join(self, gm: GGUFModel, i: int, prompt: Prompt, seq: int, keep_going: bool,
              finished: OnResult) -> _Active | None:
        """Prompt ``i`` in slot ``seq``; a prompt longer than a slot's context fails alone (``keep_going``) or
        raises."""
        text = self.render(prompt, gm)
        ids = gm.tokenize(text)
        if not ids or len(ids) >= gm.ctx_per_row:
            error = EngineError(f"the prompt has {len(ids)} tokens; llama.cpp's context holds {gm.ctx_per_row} per row",
                                per_request=True)
            if not keep_going:
                raise error
            finished(i, failed(str(error)))
            return None
        row = Row(gm.vocab, prompt.sampling, len(ids), text)
        limit = min(len(ids) + prompt.sampling.max_new_tokens, gm.ctx_per_row)
        return _Active(index=i, row=row, seq=seq, pos=0, limit=limit, pending=ids)

    @staticmethod
    def _choose(active: list[_Active], logits: np.ndarray, stops: set[int], forced_close: list[int],
                on_delta: OnDelta | None) -> None:
        """Each row's next token (the hf engine's rules: argmax, or forced, or sampled with the row's generator)."""
        import torch

        rows = [a.row for a in active]
        chosen = choose_tokens(rows, torch.from_numpy(logits), forced_close)
        for k, a in enumerate(active):
            token = chosen.get(k, int(logits[k].argmax()))
            delta = a.row.push(token, stops)
            if delta and on_delta is not None:
                on_delta(a.index, delta)
            a.pending = [token]


# --- a run's pair ---------------------------------------------------------------------------------------------------
def gguf_cache_dir() -> Path:
    from distill.models import model_cache_dir

    return model_cache_dir() / "gguf"


def _fingerprint(folder: Path) -> str:
    """Which weights a folder holds now: names, sizes and modification times of its files."""
    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in sorted(folder.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _folder(model: str | Path) -> Path:
    """A local folder for a model: itself, or a hub id's cached snapshot (never a download)."""
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model), local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a hub id
        raise EngineError(f"model {model} is neither a local folder nor cached here: llama.cpp needs its "
                          "files") from None


def cached_gguf(model_dir: str | Path, quant: str = "f16") -> Path:
    """The GGUF of a transformers folder (full weights) in the cache, converted once with llama.cpp's converter."""
    from distill.export import gguf

    folder = _folder(model_dir)
    target = gguf_cache_dir() / f"{folder.name}-{_fingerprint(folder)}-{quant}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.parent / f".{target.stem}.{os.getpid()}.tmp"
    staged.mkdir(exist_ok=True)
    try:
        made = gguf.write_ggufs(folder, staged, "model", gguf.check_quants([quant]))
        (staged / made[0]["file"]).rename(target)  # in place only once complete and read back
    except gguf.GGUFError as e:
        raise EngineError(str(e)) from None
    finally:
        for f in staged.iterdir():
            f.unlink()
        staged.rmdir()
    return target


def _merged(sft_path: str, model_path: str) -> Path:
    """A LoRA adapter merged into its base, saved once beside the GGUF cache (llama.cpp needs full weights)."""
    import torch
    from peft import PeftModel

    from distill.models import load_model, load_tokenizer

    adapter = Path(sft_path)
    target = gguf_cache_dir() / "merged" / f"{adapter.name}-{_fingerprint(adapter)}"
    if (target / "config.json").is_file():
        return target
    base = load_model(model_path, dtype="float32")
    with torch.no_grad():
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(target)
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    load_tokenizer(str(adapter) if has_tokenizer else model_path).save_pretrained(target)
    return target


def engine_for_run(config: Any, model_path: str, tokenizer: Any, sft_path: str | None, *, quant: str = "f16",
                   n_threads: int | None = None) -> LlamaCppEngine:
    """``base`` (``model_path``, a transformers folder) and ``sft`` (``sft_path``: full weights or a LoRA adapter,
    merged first; None = base only) as GGUFs of ``quant`` through llama.cpp, prompts rendered by ``tokenizer``.
    ``config``: its ``eval_batch_size`` (slots) and ``max_new_tokens`` (each slot's context) are used."""
    from distill.rundir import model_kind

    require_llama_cpp()
    ggufs = {"base": cached_gguf(model_path, quant)}
    if sft_path is not None:
        kind = model_kind(sft_path)
        if kind is None:
            raise EngineError(f"--sft_model_path: {sft_path} holds neither adapter_config.json nor config.json")
        ggufs["sft"] = cached_gguf(_merged(sft_path, model_path) if kind == "adapter" else sft_path, quant)
    max_new = int(getattr(config, "max_new_tokens", CTX_PER_ROW) or CTX_PER_ROW)
    slots = min(int(getattr(config, "eval_batch_size", 8) or 8), MAX_SLOTS)
    return LlamaCppEngine(ggufs, tokenizer, batch_size=slots,
                          ctx_per_row=max(CTX_PER_ROW, max_new + 1024), n_threads=n_threads)
