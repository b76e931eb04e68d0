"""Every finished run's models, served in-process for ``/v1`` and the Playground.

- One base model per base id in memory; each run's LoRA adapter is attached to it (an LRU of
  ``max_adapters``), so a run's base and SFT share one set of weights and one batch (PEFT's
  mixed-adapter batches). A full fine-tune's weights load beside the base (an LRU of one).
- Concurrent requests share a rolling batch (``distill.generation.rolling``): a request joins the rows
  generating now at the next decode step, up to ``max_batch_rows`` rows, and each row leaves when it is
  done. (Models whose cache cannot be merged fall back to static batches: a request waits at most
  ``batch_wait_s`` for others, then they generate together.) Beyond ``max_pending`` waiting rows a
  request is refused (``Busy``: 429 with Retry-After).
- Model ids: ``run-N`` (the SFT model of run N), ``run-N:base`` and the base model's own id
  (e.g. ``smollm2-135m``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import ApiError, NotFound, Unavailable
from distill.generation.engine import Generation, GenerationCancelled, Prompt

log = logging.getLogger("distill.service")
BASE_SUFFIX = ":base"


class Busy(ApiError):
    status_code = 429
    retry_after_s = 1


@dataclass(frozen=True)
class Served:
    """What a model id stands for."""

    id: str
    base: str  # the base model (a RunConfig.model value)
    kind: str  # "base" | "adapter" | "full"
    path: Path | None = None  # the adapter or full-model folder
    run_id: int | None = None
    trust_remote_code: bool = False
    version: float = 0.0  # the saved model's mtime: a retrained run gets fresh weights


@dataclass
class _Job:
    prompts: list[Prompt]  # prompt.model is a model id
    targets: list[Served]
    on_delta: Callable[[int, str], None] | None
    gone: threading.Event
    future: Future = field(default_factory=Future)
    results: dict[int, Any] = field(default_factory=dict)  # prompt index -> Generation or error
    ready: bool = False  # its models are loaded
    admitted: set[int] = field(default_factory=set)  # prompt indices in the rolling batch


class _BaseServer:
    """One base model, its attached adapters and full fine-tunes, and the thread that batches requests."""

    def __init__(self, name: str, trust_remote_code: bool, device: str, max_adapters: int, max_batch_rows: int,
                 max_pending: int, batch_wait_s: float):
        from distill.data.prepare import ensure_chat_template
        from distill.generation.hf import HFEngine
        from distill.models import ensure_local_model, load_model, load_tokenizer

        path = ensure_local_model(name)
        tok = load_tokenizer(path, trust_remote_code)
        ensure_chat_template(tok)
        self.base = load_model(path, trust_remote_code=trust_remote_code).to(device).eval()
        self.engine = HFEngine(tok, {name: (self.base, None)}, batch_size=max_batch_rows)
        self.name, self.device, self.trust_remote_code = name, device, trust_remote_code
        self.max_adapters, self.max_batch_rows, self.max_pending = max_adapters, max_batch_rows, max_pending
        self.batch_wait_s = batch_wait_s
        from distill.generation.rolling import RollingBatch

        self.rolling = RollingBatch.supports(self.base, tok)  # else static batches (e.g. sliding-window caches)
        self.adapters: OrderedDict[str, str] = OrderedDict()  # model id -> PEFT adapter name
        self.full: OrderedDict[str, Any] = OrderedDict()  # model id -> model
        self.pending_rows = 0  # submitted, not finished
        self.active_rows = 0  # in the batch generating now
        self.lock = threading.Lock()
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"serve-{name}", daemon=True)
        self.thread.start()

    # --- requests ---------------------------------------------------------------------------
    def submit(self, job: _Job) -> Future:
        with self.lock:
            if self.pending_rows + len(job.prompts) > self.max_pending:
                raise Busy(f"the server is busy ({self.pending_rows} rows waiting); retry shortly")
            self.pending_rows += len(job.prompts)
        self.jobs.put(job)
        return job.future

    def _loop(self) -> None:
        if self.rolling:
            self._roll()
            return
        while jobs := self._take():
            self._run_static(jobs)

    # --- rolling batch: requests join and leave between decode steps --------------------------
    def _roll(self) -> None:
        from distill.generation.rolling import RollingBatch

        batch, waiting = RollingBatch(self.engine), deque()
        while True:
            if not batch and not waiting:
                job = self.jobs.get()
                if job is None:
                    return
                waiting.append(job)
            while True:  # everything queued now joins the line
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._fail_all(batch, waiting, Unavailable(f"{self.name} was unloaded; retry"))
                    return
                waiting.append(job)
            try:
                with self.engine.lock:
                    self._admit(batch, waiting)
                    batch.drop_missing(not_found)
                    batch.step()
                    self.active_rows = len(batch)
            except Exception as e:  # noqa: BLE001 - the rows in the batch get the error; the server goes on
                log.exception("serving: a batch of %s failed", self.name)
                batch.fail(e)
                self.active_rows = 0

    def _admit(self, batch: Any, waiting: deque[_Job]) -> None:
        """Rows join in order while they fit. The batch runs one model object (a PEFT model serves all its
        adapters and its base): rows for another (a full fine-tune) wait for it to drain."""
        from distill.generation.rolling import Entry

        while waiting:
            job = waiting[0]
            if job.gone.is_set():  # its caller went away: the rows not started end here
                waiting.popleft()
                self._end_unstarted(job, GenerationCancelled())
                continue
            if not job.ready:
                if len(batch) and any(t.kind == "full" and t.id not in self.engine.targets for t in job.targets):
                    return  # loading a full model would unload the one generating now
                try:
                    for target in job.targets:
                        self._ensure(target, in_use={e.prompt.model for e in batch.entries})
                except Exception as e:  # noqa: BLE001 - this request gets the error
                    waiting.popleft()
                    self._end_unstarted(job, e)
                    continue
                job.ready = True
            left = [i for i in range(len(job.prompts)) if i not in job.admitted]
            model = batch.model_of(batch.entries[0].prompt if len(batch) else job.prompts[left[0]])
            room = self.max_batch_rows - len(batch)
            joining = [i for i in left if batch.model_of(job.prompts[i]) is model][:max(room, 0)]
            if joining:
                batch.add([Entry(job.prompts[i], on_delta=self._delta(job, i), stopped=job.gone.is_set,
                                 on_done=self._done(job, i)) for i in joining])
                job.admitted.update(joining)
            if len(job.admitted) < len(job.prompts):
                return  # the rest of this request joins later, and the requests behind it after it
            waiting.popleft()

    @staticmethod
    def _delta(job: _Job, i: int) -> Callable[[str], None] | None:
        on_delta = job.on_delta
        return None if on_delta is None else (lambda d: on_delta(i, d))

    def _done(self, job: _Job, i: int) -> Callable[[Any], None]:
        results: dict[int, Any] = job.results

        def done(result: Any) -> None:
            if isinstance(result, BaseException):
                if not job.future.done():
                    job.future.set_exception(result)
            results[i] = result
            if len(results) == len(job.prompts):
                if not job.future.done():
                    job.future.set_result([results[k] for k in range(len(job.prompts))])
                self._finish(job)

        return done

    def _finish(self, job: _Job) -> None:
        with self.lock:
            self.pending_rows -= len(job.prompts)
        if not job.future.done():
            job.future.cancel()

    def _end_unstarted(self, job: _Job, error: BaseException) -> None:
        """The job's rows not in the batch end with ``error`` (those in it end as the batch goes on)."""
        for i in set(range(len(job.prompts))) - job.admitted:
            self._done(job, i)(error)

    def _fail_all(self, batch: Any, waiting: deque[_Job], error: BaseException) -> None:
        batch.fail(error)
        for job in waiting:
            self._end_unstarted(job, error)

    # --- static batches: models whose cache cannot be merged ----------------------------------
    def _take(self) -> list[_Job]:
        first = self.jobs.get()
        if first is None:
            return []
        jobs, rows = [first], len(first.prompts)
        deadline = time.monotonic() + self.batch_wait_s
        while rows < self.max_batch_rows:
            try:
                nxt = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if nxt is None:
                self.jobs.put(None)
                break
            jobs.append(nxt)
            rows += len(nxt.prompts)
        return jobs

    def _run_static(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if not j.gone.is_set()]
        try:
            for job in live:
                for target in job.targets:
                    self._ensure(target)
            self._run(live)
        except BaseException as e:  # noqa: BLE001 - each waiting request gets the error
            for job in live:
                if not job.future.done():
                    job.future.set_exception(e)
        finally:
            for job in jobs:
                self._finish(job)

    def _run(self, jobs: list[_Job]) -> None:
        prompts, owner = [], []
        for j, job in enumerate(jobs):
            prompts += job.prompts
            owner += [(j, i) for i in range(len(job.prompts))]

        def on_delta(k: int, delta: str) -> None:
            j, i = owner[k]
            if jobs[j].on_delta is not None:
                jobs[j].on_delta(i, delta)

        self.active_rows = len(prompts)
        try:
            gens = self.engine.generate(prompts, on_delta=on_delta, stop_row=lambda k: jobs[owner[k][0]].gone.is_set(),
                                        desc=f"serve {len(jobs)} requests")
        finally:
            self.active_rows = 0
        for j, job in enumerate(jobs):
            job.future.set_result([g for (jj, _), g in zip(owner, gens, strict=True) if jj == j])

    # --- models (in the batching thread, or under the engine's lock) ------------------------
    def _ensure(self, target: Served, in_use: set[str] = frozenset()) -> None:
        """Load what ``target`` needs; ``in_use``: model ids with rows generating now (not evicted)."""
        with self.engine.lock:
            if target.kind == "base":
                self.engine.targets.setdefault(target.id, self.engine.targets[self.name])
            elif target.kind == "adapter":
                self._attach(target, in_use)
            else:
                self._load_full(target)

    def _attach(self, target: Served, in_use: set[str] = frozenset()) -> None:
        from peft import PeftModel

        from distill.generation.hf import BASE_ADAPTER

        adapter = f"{target.id}@{int(target.version)}"
        if self.adapters.get(target.id) == adapter:
            self.adapters.move_to_end(target.id)
            return
        self._drop(target.id, keep_base=True)
        model = self.engine.targets[self.name][0]
        if isinstance(model, PeftModel):
            model.load_adapter(str(target.path), adapter_name=adapter)
            model.set_adapter(adapter)  # PEFT's active adapter must not be one deleted later
        else:
            model = PeftModel.from_pretrained(model, str(target.path), adapter_name=adapter).eval()
            # Every base id now answers through the wrapper with its adapter off.
            for name, (m, _) in list(self.engine.targets.items()):
                if m is self.base:
                    self.engine.targets[name] = (model, BASE_ADAPTER)
        self.engine.targets[target.id] = (model, adapter)
        self.adapters[target.id] = adapter
        idle = [m for m in self.adapters if m not in in_use and m != target.id]
        while len(self.adapters) > self.max_adapters and idle:
            self._drop(idle.pop(0))

    def _load_full(self, target: Served) -> None:
        from distill.models import load_model

        key = f"{target.id}@{int(target.version)}"
        if key in self.full:
            self.full.move_to_end(key)
            return
        for old in list(self.full):
            self._drop(old.split("@")[0], keep_base=old.split("@")[0] == target.id)
        model = load_model(str(target.path), trust_remote_code=target.trust_remote_code).to(self.device).eval()
        self.full[key] = model
        self.engine.targets[target.id] = (model, None)

    def _drop(self, model_id: str, keep_base: bool = False) -> None:
        """Forget a run's model (evicted, retrained or deleted): no memory kept for it."""
        self.engine.targets.pop(model_id, None)
        if not keep_base:
            self.engine.targets.pop(model_id + BASE_SUFFIX, None)
        adapter = self.adapters.pop(model_id, None)
        if adapter is not None:
            model = self.engine.targets[self.name][0]
            model.delete_adapter(adapter)
        for key in [k for k in self.full if k.split("@")[0] == model_id]:
            del self.full[key]

    def forget(self, model_id: str) -> None:
        with self.engine.lock:
            self._drop(model_id)

    def loaded(self) -> list[str]:
        return sorted(self.engine.targets)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)
        while True:  # requests still waiting for this model: told to come again (the next one reloads it)
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None and not job.future.done():
                job.future.set_exception(Unavailable(f"{self.name} was unloaded for another base model; retry"))


class ModelServer:
    def __init__(self, max_adapters: int = 4, max_batch_rows: int = 32, max_pending: int = 64,
                 batch_wait_s: float = 0.01, max_bases: int = 1, device: str | None = None):
        self.max_adapters, self.max_batch_rows, self.max_pending = max_adapters, max_batch_rows, max_pending
        self.batch_wait_s, self.max_bases, self._device = batch_wait_s, max_bases, device
        self.servers: OrderedDict[str, _BaseServer] = OrderedDict()
        self.lock = threading.Lock()

    def device(self) -> str:
        if self._device:
            return self._device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def server(self, base: str, trust_remote_code: bool = False) -> _BaseServer:
        """The base model's server, loading it first (evicting the least recently used base)."""
        from distill.models import ModelUnavailableError

        with self.lock:
            if base in self.servers:
                self.servers.move_to_end(base)
                return self.servers[base]
            while len(self.servers) >= self.max_bases:
                _, old = self.servers.popitem(last=False)
                old.close()
            try:
                srv = _BaseServer(base, trust_remote_code, self.device(), self.max_adapters, self.max_batch_rows,
                                  self.max_pending, self.batch_wait_s)
            except ModelUnavailableError as e:
                raise Unavailable(str(e)) from None
            self.servers[base] = srv
            return srv

    def preload(self, base: str) -> None:
        t0 = time.perf_counter()
        try:
            self.server(base)
            log.info("serving: %s loaded in %.1f s", base, time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - the first request will say what is wrong
            log.warning("serving: could not preload %s: %s", base, e)

    def generate(self, prompts: Sequence[Prompt], targets: Sequence[Served], *,
                 on_delta: Callable[[int, str], None] | None = None, gone: threading.Event | None = None,
                 timeout_s: float | None = None) -> list[Generation]:
        """Generate for prompts whose ``model`` are the ids of ``targets`` (one base model among them)."""
        bases = {t.base for t in targets}
        if len(bases) != 1:
            raise ApiError(f"one request serves one base model, not {len(bases)}")
        srv = self.server(bases.pop(), any(t.trust_remote_code for t in targets))
        job = _Job(list(prompts), list(targets), on_delta, gone or threading.Event())
        return srv.submit(job).result(timeout=timeout_s)

    def stream(self, prompts: Sequence[Prompt], targets: Sequence[Served]) -> Iterator[tuple[int, str] | list[Generation]]:
        """(prompt index, text) as it comes, then the list of Generations. The request is queued now (a full
        queue raises Busy here, before any of it is sent); closing the iterator stops its rows."""
        events: queue.Queue = queue.Queue()
        gone = threading.Event()
        bases = {t.base for t in targets}
        srv = self.server(bases.pop(), any(t.trust_remote_code for t in targets))
        future = srv.submit(_Job(list(prompts), list(targets), lambda i, d: events.put((i, d)), gone))
        future.add_done_callback(lambda _: events.put(None))

        def follow() -> Iterator[tuple[int, str] | list[Generation]]:
            try:
                while (item := events.get()) is not None:
                    yield item
                yield future.result()
            finally:
                gone.set()

        return follow()

    def forget_run(self, run_id: int) -> None:
        with self.lock:
            servers = list(self.servers.values())
        for srv in servers:
            srv.forget(f"run-{run_id}")

    def loaded(self) -> dict[str, list[str]]:
        with self.lock:
            return {name: srv.loaded() for name, srv in self.servers.items()}

    def load(self) -> dict[str, int]:
        """Rows waiting or generating now, over all base models."""
        with self.lock:
            servers = list(self.servers.values())
        return {"pending_rows": sum(s.pending_rows for s in servers), "active_rows": sum(s.active_rows for s in servers)}

    def close(self) -> None:
        with self.lock:
            for srv in self.servers.values():
                srv.close()
            self.servers.clear()


def not_found(model_id: str) -> NotFound:
    return NotFound(f"The model '{model_id}' does not exist")
