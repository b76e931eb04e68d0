"""Serving many fine-tunes of a few base models in one process, for many concurrent callers.

- :class:`AdapterCache`: which of a base model's fine-tunes are in memory on its engine. A LoRA adapter is
  attached to the base (an LRU of ``max_adapters``; adapters with rows generating are not evicted), so a
  run's base and SFT share one set of weights and one batch (PEFT's mixed-adapter batches). A full
  fine-tune's weights load beside the base (an LRU of one). A retrained run (a newer ``version``) gets
  fresh weights.
- :class:`Scheduler`: the thread that batches one base model's requests. Requests share a rolling batch
  (``distill.generation.rolling``): a request joins the rows generating now at the next decode step, up to
  ``max_batch_rows`` rows, and each row leaves when it is done. Models whose cache cannot be merged fall
  back to static batches: a request waits at most ``batch_wait_s`` for others, then they generate together.
  Beyond ``max_pending`` waiting rows a request is refused (:class:`Busy`).
- :class:`ModelServer`: one scheduler per base model (an LRU of ``max_bases``), and the calls a service
  makes: ``generate``, ``stream``, ``forget_run``, ``loaded``, ``load``.

What a model id stands for (:class:`Served`) is the caller's to say; errors are the domain errors below
(:class:`ServingError`), which a service maps to its protocol's (``backend.errors`` maps them to HTTP).
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

from distill.errors import UserError
from distill.generation.engine import Generation, GenerationCancelled, Prompt

log = logging.getLogger("distill.service")


class ServingError(UserError):
    """A request the server cannot serve as asked; the message is one line for the caller."""


class ModelNotFound(ServingError):
    """The model id names no model (or its run was deleted while the request waited)."""


class Busy(ServingError):
    """Too many rows waiting: come again shortly."""

    retry_after_s = 1


class ModelUnavailable(ServingError):
    """The base model cannot be loaded now, or was unloaded for another while the request waited."""


def model_not_found(model_id: str) -> ModelNotFound:
    return ModelNotFound(f"The model '{model_id}' does not exist")


@dataclass(frozen=True)
class Served:
    """What a model id stands for."""

    id: str
    base: str  # the base model (a RunConfig.model value)
    kind: str  # "base" | "adapter" | "full"
    path: Path | None = None  # the adapter or full-model folder
    run_id: int | None = None  # the run it belongs to: a run's ids leave memory together
    trust_remote_code: bool = False
    version: float = 0.0  # the saved model's mtime: a retrained run gets fresh weights


def load_engine(base: str, trust_remote_code: bool, device: str, batch_size: int) -> Any:
    """An HFEngine serving the base model ``base`` under its own id."""
    from distill.data.prepare import ensure_chat_template
    from distill.generation.hf import HFEngine
    from distill.models import ensure_local_model, load_model, load_tokenizer

    path = ensure_local_model(base)
    tok = load_tokenizer(path, trust_remote_code)
    ensure_chat_template(tok)
    model = load_model(path, trust_remote_code=trust_remote_code).to(device).eval()
    return HFEngine(tok, {base: (model, None)}, batch_size=batch_size)


class AdapterCache:
    """The fine-tunes of one base model that are loaded on its engine (the engine serves the base as ``base``).
    Callers hold ``engine.lock`` or call from the thread that generates."""

    def __init__(self, engine: Any, base: str, device: str, max_adapters: int):
        self.engine, self.base, self.device, self.max_adapters = engine, base, device, max_adapters
        self.adapters: OrderedDict[str, str] = OrderedDict()  # model id -> PEFT adapter name, least recent first
        self.full: OrderedDict[str, str] = OrderedDict()  # model id -> "id@version" of its loaded weights
        self.aliases: set[str] = set()  # ids that answer as the base (a run's "run-N:base")
        self.run_of: dict[str, int | None] = {}  # every id loaded here (but the base's own) -> its run

    def ensure(self, target: Served, in_use: frozenset[str] | set[str] = frozenset()) -> None:
        """Load what ``target`` needs; ``in_use``: model ids with rows generating now (not evicted)."""
        with self.engine.lock:
            if target.kind == "base":
                if target.id != self.base and not self.engine.serves(target.id):
                    self.engine.alias(target.id, self.base)
                    self.aliases.add(target.id)
                    self.run_of[target.id] = target.run_id
            elif target.kind == "adapter":
                self._attach(target, in_use)
            else:
                self._load_full(target)

    def swaps_model(self, targets: Sequence[Served]) -> bool:
        """Whether serving ``targets`` loads a full fine-tune, which replaces the one loaded now."""
        return any(t.kind == "full" and not self.engine.serves(t.id) for t in targets)

    def _attach(self, target: Served, in_use: frozenset[str] | set[str]) -> None:
        adapter = f"{target.id}@{int(target.version)}"
        if self.adapters.get(target.id) == adapter:
            self.adapters.move_to_end(target.id)
            return
        self._drop(target.id, keep_aliases=True)  # an older version of it (retrained)
        self.engine.add_adapter(target.id, target.path, onto=self.base, adapter=adapter)
        self.adapters[target.id] = adapter
        self.run_of[target.id] = target.run_id
        idle = [m for m in self.adapters if m not in in_use and m != target.id]  # least recently used first
        while len(self.adapters) > self.max_adapters and idle:
            self._drop(idle.pop(0))

    def _load_full(self, target: Served) -> None:
        from distill.models import load_model

        key = f"{target.id}@{int(target.version)}"
        if self.full.get(target.id) == key:
            self.full.move_to_end(target.id)
            return
        for old in list(self.full):
            self._drop(old, keep_aliases=old == target.id)
        model = load_model(str(target.path), trust_remote_code=target.trust_remote_code).to(self.device).eval()
        self.engine.add(target.id, model)
        self.full[target.id] = key
        self.run_of[target.id] = target.run_id

    def _drop(self, model_id: str, keep_aliases: bool = False) -> None:
        """Forget a model (evicted, retrained or deleted) and, unless ``keep_aliases``, its run's base aliases:
        no memory kept for it."""
        self.engine.remove(model_id)
        self.adapters.pop(model_id, None)
        self.full.pop(model_id, None)
        self.aliases.discard(model_id)
        run = self.run_of.pop(model_id, None)
        if not keep_aliases and run is not None:
            for alias in [a for a in self.aliases if self.run_of.get(a) == run]:
                self._drop(alias)

    def forget_run(self, run_id: int) -> None:
        """Every model of run ``run_id`` leaves memory (the run was deleted)."""
        with self.engine.lock:
            for model_id in [m for m, run in self.run_of.items() if run == run_id]:
                self._drop(model_id)

    def loaded(self) -> list[str]:
        return sorted(self.engine.models())


@dataclass
class Job:
    """One request: its prompts (``prompt.model`` is a model id), the models they name, and where results go."""

    prompts: list[Prompt]
    targets: list[Served]
    on_delta: Callable[[int, str], None] | None
    gone: threading.Event  # set when the caller went away: its rows stop
    future: Future = field(default_factory=Future)
    results: dict[int, Any] = field(default_factory=dict)  # prompt index -> Generation or error
    ready: bool = False  # its models are loaded
    admitted: set[int] = field(default_factory=set)  # prompt indices in the rolling batch


class Scheduler:
    """The thread that batches one base model's requests: a rolling batch, or static batches for models whose
    cache cannot be merged. Models are loaded through ``cache`` in this thread, between steps."""

    def __init__(self, cache: AdapterCache, max_batch_rows: int, max_pending: int, batch_wait_s: float):
        from distill.generation.rolling import RollingBatch

        self.cache, self.engine, self.name = cache, cache.engine, cache.base
        self.max_batch_rows, self.max_pending, self.batch_wait_s = max_batch_rows, max_pending, batch_wait_s
        self.rolling = RollingBatch.supports(self.engine.model_of(self.name), self.engine.tok)
        self.pending_rows = 0  # submitted, not finished
        self._batch: Any = None  # the rolling batch: its rows are the active ones (a finished row leaves it first)
        self._static_rows = 0  # the rows of the static batch generating now
        self.lock = threading.Lock()
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"serve-{self.name}", daemon=True)
        self.thread.start()

    @property
    def active_rows(self) -> int:
        """Rows generating now."""
        return self._static_rows + (len(self._batch) if self._batch is not None else 0)

    # --- requests ---------------------------------------------------------------------------
    def submit(self, job: Job) -> Future:
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

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)
        while True:  # requests still waiting for this model: told to come again (the next one reloads it)
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None and not job.future.done():
                job.future.set_exception(ModelUnavailable(f"{self.name} was unloaded for another base model; retry"))

    # --- rolling batch: requests join and leave between decode steps --------------------------
    def _roll(self) -> None:
        from distill.generation.rolling import RollingBatch

        batch, waiting = RollingBatch(self.engine), deque()
        self._batch = batch
        while True:
            if not batch and not waiting:
                job = self.jobs.get()
                if job is None:
                    return
                waiting.append(job)
            if not self._queue_arrivals(waiting):
                self._fail_all(batch, waiting, ModelUnavailable(f"{self.name} was unloaded; retry"))
                return
            try:
                with self.engine.lock:  # the registry does not change during a step
                    self._admit(batch, waiting)
                    batch.drop_missing(model_not_found)
                    batch.step()
            except Exception as e:  # noqa: BLE001 - the rows in the batch get the error; the server goes on
                log.exception("serving: a batch of %s failed", self.name)
                batch.fail(e)

    def _queue_arrivals(self, waiting: deque[Job]) -> bool:
        """Everything submitted since the last step joins the line; False when the server is closing."""
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return True
            if job is None:
                return False
            waiting.append(job)

    def _admit(self, batch: Any, waiting: deque[Job]) -> None:
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
                if len(batch) and self.cache.swaps_model(job.targets):
                    return  # loading a full model would unload the one generating now
                try:
                    for target in job.targets:
                        self.cache.ensure(target, in_use={e.prompt.model for e in batch.entries})
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
    def _delta(job: Job, i: int) -> Callable[[str], None] | None:
        on_delta = job.on_delta
        return None if on_delta is None else (lambda d: on_delta(i, d))

    def _done(self, job: Job, i: int) -> Callable[[Any], None]:
        results: dict[int, Any] = job.results

        def done(result: Any) -> None:
            if isinstance(result, BaseException):
                if not job.future.done():
                    job.future.set_exception(result)
            results[i] = result
            if len(results) == len(job.prompts):
                answers = [results[k] for k in range(len(job.prompts))]
                self._finish(job, answers)

        return done

    def _finish(self, job: Job, answers: list[Any] | None = None) -> None:
        """The job leaves the count before its caller hears (``answers``; None: cancelled), so that a caller who
        reads ``load()`` next does not count itself."""
        with self.lock:
            self.pending_rows -= len(job.prompts)
        if job.future.done():
            return
        if answers is None:
            job.future.cancel()
        else:
            job.future.set_result(answers)

    def _end_unstarted(self, job: Job, error: BaseException) -> None:
        """The job's rows not in the batch end with ``error`` (those in it end as the batch goes on)."""
        for i in set(range(len(job.prompts))) - job.admitted:
            self._done(job, i)(error)

    def _fail_all(self, batch: Any, waiting: deque[Job], error: BaseException) -> None:
        batch.fail(error)
        for job in waiting:
            self._end_unstarted(job, error)

    # --- static batches: models whose cache cannot be merged ----------------------------------
    def _take(self) -> list[Job]:
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

    def _run_static(self, jobs: list[Job]) -> None:
        live = [j for j in jobs if not j.gone.is_set()]
        results: dict[int, list[Any]] = {}
        try:
            for job in live:
                for target in job.targets:
                    self.cache.ensure(target)
            results = {id(job): answers for job, answers in zip(live, self._run(live), strict=True)}
        except BaseException as e:  # noqa: BLE001 - each waiting request gets the error
            for job in live:
                if not job.future.done():
                    job.future.set_exception(e)
        finally:
            for job in jobs:
                self._finish(job, results.get(id(job)))

    def _run(self, jobs: list[Job]) -> list[list[Any]]:
        prompts, owner = [], []
        for j, job in enumerate(jobs):
            prompts += job.prompts
            owner += [(j, i) for i in range(len(job.prompts))]

        def on_delta(k: int, delta: str) -> None:
            j, i = owner[k]
            if jobs[j].on_delta is not None:
                jobs[j].on_delta(i, delta)

        self._static_rows = len(prompts)
        try:
            gens = self.engine.generate(prompts, on_delta=on_delta, stop_row=lambda k: jobs[owner[k][0]].gone.is_set(),
                                        desc=f"serve {len(jobs)} requests")
        finally:
            self._static_rows = 0
        return [[g for (jj, _), g in zip(owner, gens, strict=True) if jj == j] for j in range(len(jobs))]


class ModelServer:
    """One scheduler per base model in memory (``servers``: an LRU of ``max_bases``), each with its engine and
    adapter cache. ``device``: None = CUDA when there is one."""

    def __init__(self, max_adapters: int = 4, max_batch_rows: int = 32, max_pending: int = 64,
                 batch_wait_s: float = 0.01, max_bases: int = 1, device: str | None = None):
        self.max_adapters, self.max_batch_rows, self.max_pending = max_adapters, max_batch_rows, max_pending
        self.batch_wait_s, self.max_bases, self._device = batch_wait_s, max_bases, device
        self.servers: OrderedDict[str, Scheduler] = OrderedDict()
        self.lock = threading.Lock()

    def device(self) -> str:
        if self._device:
            return self._device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def server(self, base: str, trust_remote_code: bool = False) -> Scheduler:
        """The base model's scheduler, loading the model first (evicting the least recently used base)."""
        from distill.models import ModelUnavailableError

        with self.lock:
            if base in self.servers:
                self.servers.move_to_end(base)
                return self.servers[base]
            while len(self.servers) >= self.max_bases:
                _, old = self.servers.popitem(last=False)
                old.close()
            try:
                engine = load_engine(base, trust_remote_code, self.device(), self.max_batch_rows)
            except ModelUnavailableError as e:
                raise ModelUnavailable(str(e)) from None
            cache = AdapterCache(engine, base, self.device(), self.max_adapters)
            srv = Scheduler(cache, self.max_batch_rows, self.max_pending, self.batch_wait_s)
            self.servers[base] = srv
            return srv

    def preload(self, base: str) -> None:
        t0 = time.perf_counter()
        try:
            self.server(base)
            log.info("serving: %s loaded in %.1f s", base, time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - the first request will say what is wrong
            log.warning("serving: could not preload %s: %s", base, e)

    def _submit(self, prompts: Sequence[Prompt], targets: Sequence[Served],
                on_delta: Callable[[int, str], None] | None, gone: threading.Event) -> Future:
        bases = {t.base for t in targets}
        if len(bases) != 1:
            raise ServingError(f"one request serves one base model, not {len(bases)}")
        srv = self.server(bases.pop(), any(t.trust_remote_code for t in targets))
        return srv.submit(Job(list(prompts), list(targets), on_delta, gone))

    def generate(self, prompts: Sequence[Prompt], targets: Sequence[Served], *,
                 on_delta: Callable[[int, str], None] | None = None, gone: threading.Event | None = None,
                 timeout_s: float | None = None) -> list[Generation]:
        """Generate for prompts whose ``model`` are the ids of ``targets`` (one base model among them)."""
        return self._submit(prompts, targets, on_delta, gone or threading.Event()).result(timeout=timeout_s)

    def stream(self, prompts: Sequence[Prompt],
               targets: Sequence[Served]) -> Iterator[tuple[int, str] | list[Generation]]:
        """(prompt index, text) as it comes, then the list of Generations. The request is queued now (a full
        queue raises Busy here, before any of it is sent); closing the iterator stops its rows."""
        events: queue.Queue = queue.Queue()
        gone = threading.Event()
        future = self._submit(prompts, targets, lambda i, d: events.put((i, d)), gone)
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
            srv.cache.forget_run(run_id)

    def loaded(self) -> dict[str, list[str]]:
        with self.lock:
            return {name: srv.cache.loaded() for name, srv in self.servers.items()}

    def load(self) -> dict[str, int]:
        """Rows waiting or generating now, over all base models."""
        with self.lock:
            servers = list(self.servers.values())
        return {"pending_rows": sum(s.pending_rows for s in servers),
                "active_rows": sum(s.active_rows for s in servers)}

    def close(self) -> None:
        with self.lock:
            for srv in self.servers.values():
                srv.close()
            self.servers.clear()
