"""In-process inference for /generate: one base model in memory, each run's LoRA adapter attached
on demand (bounded LRU), base and SFT answered in ONE mixed batch ``[base row, sft row]`` with
``adapter_names=["__base__", "<run adapter>"]``. A full fine-tune run loads its merged model
beside the base (LRU of one). One lock serializes generation and model changes.

Streaming uses a ``BaseStreamer`` that receives each step's tokens for both rows and turns them
into text deltas tagged ``base`` / ``sft``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.errors import Conflict, Unavailable
from backend.models import Run

_END = object()


@dataclass
class Target:
    """What answers as "sft" for a run."""

    kind: str  # "adapter" | "full"
    path: Path


def target_for(run: Run) -> Target:
    cfg = run.config or {}
    out = Path(run.output_dir or "")
    if cfg.get("mode") == "evaluate" and cfg.get("sft_model_path"):
        p = Path(cfg["sft_model_path"])
        kind = "adapter" if (p / "adapter_config.json").is_file() else "full"
        if (p / "adapter_config.json").is_file() or (p / "config.json").is_file():
            return Target(kind, p)
    if (out / "final_model" / "adapter_config.json").is_file():
        return Target("adapter", out / "final_model")
    if (out / "merged_model" / "config.json").is_file():
        return Target("full", out / "merged_model")
    raise Conflict(f"run {run.id} has no trained model yet (status {run.status})")


class _PairStreamer:
    """transformers streamer for a batch whose rows are tagged (e.g. ["base", "sft"])."""

    def __init__(self, tokenizer: Any, tags: list[str], stops: list[int], emit: Callable[[str, str], None],
                 should_stop: Callable[[], bool] = lambda: False):
        self.tok, self.tags, self.stops, self.emit = tokenizer, tags, set(stops), emit
        self.should_stop = should_stop
        self.ids: list[list[int]] = [[] for _ in tags]
        self.text: list[str] = ["" for _ in tags]
        self.done = [False for _ in tags]
        self.count = [0 for _ in tags]
        self.t0 = time.perf_counter()
        self.time_s = [0.0 for _ in tags]
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompts
            self._prompt_seen = True
            return
        tokens = value.reshape(len(self.tags), -1)[:, -1].tolist()
        now = time.perf_counter()
        for i, tok in enumerate(tokens):
            if self.done[i]:
                continue
            self.count[i] += 1
            self.time_s[i] = now - self.t0
            if tok in self.stops:
                self.done[i] = True
                continue
            self.ids[i].append(tok)
            text = self.tok.decode(self.ids[i], skip_special_tokens=True)
            if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the next token
                continue
            delta, self.text[i] = text[len(self.text[i]):], text
            if delta:
                self.emit(self.tags[i], delta)

    def end(self) -> None:
        now = time.perf_counter()
        for i in range(len(self.tags)):
            if not self.done[i]:
                self.time_s[i] = self.time_s[i] or (now - self.t0)
            text = self.tok.decode(self.ids[i], skip_special_tokens=True)
            if text != self.text[i] and text.startswith(self.text[i]):
                self.emit(self.tags[i], text[len(self.text[i]):])
            self.text[i] = text

    def stopping_criteria(self) -> Any:
        from transformers import StoppingCriteria

        streamer = self

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001, ANN204
                import torch

                stop = streamer.should_stop() or all(streamer.done)
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        return _Stop()


class InferenceService:
    def __init__(self, max_adapters: int = 4, device: str | None = None):
        self.max_adapters = max(1, max_adapters)
        self.device = device
        self.lock = threading.Lock()
        self._base_name: str | None = None
        self._base: Any = None  # plain model, or the PeftModel wrapping it once an adapter is attached
        self._tok: Any = None
        self._adapters: OrderedDict[str, float] = OrderedDict()  # adapter name -> adapter file mtime
        self._full: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    # --- models (call with the lock held) ------------------------------------------------------
    def _device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _ensure_base(self, model_name: str, trust_remote_code: bool) -> None:
        if self._base_name == model_name and self._base is not None:
            return
        from distill.data.prepare import ensure_chat_template
        from distill.models import ModelUnavailableError, ensure_local_model, load_model, load_tokenizer

        self._base = self._tok = None
        self._adapters.clear()
        self._full.clear()
        try:
            path = ensure_local_model(model_name)
            tok = load_tokenizer(path, trust_remote_code)
            ensure_chat_template(tok)
            model = load_model(path, trust_remote_code=trust_remote_code).to(self._device()).eval()
        except ModelUnavailableError as e:
            raise Unavailable(str(e)) from None
        self._base, self._tok, self._base_name = model, tok, model_name

    def _attach_adapter(self, run_id: int, path: Path) -> str:
        """The adapter's name, attaching it first if needed. A run retrained since (newer adapter
        file) gets a new name; the old version ages out of the LRU like any other."""
        from peft import PeftModel

        mtime = max((p.stat().st_mtime_ns for p in path.glob("adapter_model.*")), default=0)
        name = f"run{run_id}_{mtime}"
        if name in self._adapters:
            self._adapters.move_to_end(name)
            return name
        if isinstance(self._base, PeftModel):
            self._base.load_adapter(str(path), adapter_name=name)
            self._base.set_adapter(name)  # PEFT's active adapter must not be one deleted below
        else:
            self._base = PeftModel.from_pretrained(self._base, str(path), adapter_name=name).eval()
        self._adapters[name] = float(mtime)
        while len(self._adapters) > self.max_adapters:
            old, _ = self._adapters.popitem(last=False)
            self._base.delete_adapter(old)
        return name

    def _full_model(self, key: str, path: Path, trust_remote_code: bool) -> Any:
        from distill.models import load_model

        mtime = (path / "config.json").stat().st_mtime
        if key in self._full and self._full[key][0] == mtime:
            self._full.move_to_end(key)
            return self._full[key][1]
        self._full.clear()  # at most one merged model beside the base
        model = load_model(str(path), trust_remote_code=trust_remote_code).to(self._device()).eval()
        self._full[key] = (mtime, model)
        return model

    # --- generation -----------------------------------------------------------------------------
    def _messages(self, run: Run, prompt: str, system: str | None) -> list[dict[str, str]]:
        if system is None and str((run.config or {}).get("dataset", "")).startswith("builtin:"):
            from distill.data.builtin import SYSTEM_PROMPT

            system = SYSTEM_PROMPT  # what the run was trained with
        msgs = [{"role": "system", "content": system}] if system else []
        return msgs + [{"role": "user", "content": prompt}]

    def _generate(self, model: Any, rows: int, text: str, tags: list[str], req: Any,
                  emit: Callable[[str, str], None], should_stop: Callable[[], bool],
                  adapter_names: list[str] | None) -> _PairStreamer:
        import torch
        from transformers import StoppingCriteriaList

        from distill.evaluation.generate import stop_token_ids

        tok = self._tok
        stops = stop_token_ids(tok)
        tok.padding_side = "left"
        enc = tok([text] * rows, return_tensors="pt", padding=True, add_special_tokens=False).to(self._device())
        streamer = _PairStreamer(tok, tags, stops, emit, should_stop)
        sampling = ({"do_sample": True, "temperature": req.temperature, "top_p": req.top_p}
                    if req.temperature > 0 else {"do_sample": False})
        extra = {"adapter_names": adapter_names} if adapter_names else {}
        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=req.max_new_tokens, eos_token_id=stops,
                           pad_token_id=tok.pad_token_id, top_k=None, streamer=streamer,
                           stopping_criteria=StoppingCriteriaList([streamer.stopping_criteria()]),
                           **sampling, **extra)
        return streamer

    def run_pair(self, run: Run, req: Any, emit: Callable[[str, str], None],
                 should_stop: Callable[[], bool] = lambda: False) -> dict[str, dict[str, Any]]:
        """Generate base and SFT answers for one prompt; ``emit(tag, delta)`` receives the text as it comes."""
        from distill.evaluation.generate import BASE_ADAPTER

        target = target_for(run)
        cfg = run.config or {}
        with self.lock:
            self._ensure_base(cfg.get("model", "smollm2-135m"), bool(cfg.get("trust_remote_code")))
            text = self._tok.apply_chat_template(self._messages(run, req.prompt, req.system),
                                                 add_generation_prompt=True, tokenize=False)
            out: dict[str, dict[str, Any]] = {}
            if target.kind == "adapter":
                name = self._attach_adapter(run.id, target.path)
                st = self._generate(self._base, 2, text, ["base", "sft"], req, emit, should_stop,
                                    [BASE_ADAPTER, name])
                for i, tag in enumerate(("base", "sft")):
                    out[tag] = {"text": st.text[i].strip(), "new_tokens": st.count[i], "time_s": round(st.time_s[i], 4)}
                return out
            full = self._full_model(f"run{run.id}", target.path, bool(cfg.get("trust_remote_code")))
            from peft import PeftModel

            base_names = [BASE_ADAPTER] if isinstance(self._base, PeftModel) else None
            for tag, model, names in (("base", self._base, base_names), ("sft", full, None)):
                st = self._generate(model, 1, text, [tag], req, emit, should_stop, names)
                out[tag] = {"text": st.text[0].strip(), "new_tokens": st.count[0], "time_s": round(st.time_s[0], 4)}
            return out

    def generate(self, run: Run, req: Any) -> dict[str, dict[str, Any]]:
        return self.run_pair(run, req, lambda tag, delta: None)

    def stream(self, run: Run, req: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs: ("base"|"sft", {"delta"}), then ("done", {...}) or ("error", {"detail"})."""
        target_for(run)  # a run without a model fails before the stream starts
        events: queue.Queue = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                result = self.run_pair(run, req, lambda tag, delta: events.put((tag, {"delta": delta})), stop.is_set)
                events.put(("done", {k: {"new_tokens": v["new_tokens"], "time_s": v["time_s"]}
                                     for k, v in result.items()}))
            except Exception as e:  # noqa: BLE001 - reported to the client as an event
                detail = getattr(e, "detail", None) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
                events.put(("error", {"detail": detail}))
            finally:
                events.put(_END)

        thread = threading.Thread(target=work, name="distill-generate", daemon=True)
        thread.start()
        try:
            while True:
                item = events.get()
                if item is _END:
                    return
                yield item
        finally:
            stop.set()  # the client went away: generation stops at the next step
