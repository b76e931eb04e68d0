"""Buffers what a running pipeline reports and writes it to the store in batches.

A thread flushes log lines, metric points, stage and progress every ``flush_s`` (0.25 s: the
database is at most about half a second behind) and sends a heartbeat, which also reads the
cancel flag. A failed write keeps the batch for the next attempt, so a database hiccup delays
lines but loses none.

Progress covers the whole run: generating traces, training, evaluation and saving each weigh their expected work
(the pipeline's ``early_plan`` and ``work_plan``), generation and evaluation advancing by problems answered and
training by epochs; the ETA is for the whole run.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from backend.store import Claim, Store
from distill.errors import first_line

MAX_MESSAGE = 20_000
STAGES = ("generate", "train", "evaluate", "save")  # the stages a progress bar weighs, in order
# Until the pipeline sends its plan: the split of a measured small run (49 s training, 238 s evaluation).
DEFAULT_WORK = {"all": {"train": 1.0, "evaluate": 5.0}, "train": {"train": 1.0}, "evaluate": {"evaluate": 1.0},
                "generate": {"generate": 1.0}}
# What a cancel waits for, said when it is requested (the stage checks the flag at these points).
CANCEL_WAITS = {
    "load": "stopping once the model is loaded",
    "data": "stopping once the data is read",
    "train": "stopping after this training step or validation batch; saving a checkpoint so --resume continues",
    "evaluate": "stopping after this generation step; the answers so far are kept in the run folder",
    "generate": "stopping after the teacher's answers in flight; finished problems are kept and --resume asks the rest",
    "save": "saving the merged model is the last step; the run ends when it is written",
}
log = logging.getLogger("distill")


class Progress:
    """The run's progress from its stages' shares of the expected work, and the ETA of the whole run from the pace of
    the stage in progress (its gain in progress per second since the stage's first report)."""

    def __init__(self, work: dict[str, float]):
        self.share: dict[str, float] = {s: 0.0 for s in STAGES}
        self.plan(work)
        self._start: tuple[str, float, float] | None = None

    def plan(self, work: dict[str, float], done: tuple[str, ...] = ()) -> None:
        """Each stage's share of the bar. The stages ``done`` keep theirs (a run with a teacher plans again once
        its traces are read): the rest share what is left, so the bar never goes back."""
        kept = {s: self.share[s] for s in done}
        rest = [s for s in STAGES if s not in kept]
        total = sum(max(work.get(s, 0.0), 0.0) for s in rest) or 1.0
        left = max(1.0 - sum(kept.values()), 0.0)
        self.share = {s: kept[s] if s in kept else left * max(work.get(s, 0.0), 0.0) / total for s in STAGES}

    def at(self, stage: str, fraction: float) -> float:
        """The run's progress when ``stage`` is ``fraction`` done."""
        before = sum(self.share[s] for s in STAGES[:STAGES.index(stage)])
        return round(min(1.0, before + self.share[stage] * min(max(fraction, 0.0), 1.0)), 4)

    def eta(self, stage: str, progress: float, now: float) -> float | None:
        """Seconds left for the whole run; None until the stage has reported twice."""
        if self._start is None or self._start[0] != stage:
            self._start = (stage, now, progress)
            return None
        _, t0, p0 = self._start
        if progress <= p0:
            return None
        return round((now - t0) * (1.0 - progress) / (progress - p0), 1)


class _Handler(logging.Handler):
    def __init__(self, recorder: "RunRecorder"):
        super().__init__(level=logging.INFO)
        self.recorder = recorder
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
        except Exception:  # noqa: BLE001
            msg = str(record.msg)
        self.recorder.add_log(record.levelname, msg, datetime.fromtimestamp(record.created, UTC))


class _Flusher:
    """A daemon thread that calls ``flush`` every ``flush_s`` (``_tick`` between flushes); ``stop`` flushes what is
    left, retrying for up to ``timeout_s``: a database that is briefly away loses nothing."""

    flush_s: float
    thread_name = "distill-recorder"

    def _start_flushing(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def flush(self) -> bool:
        raise NotImplementedError

    def _tick(self) -> None:
        """Between flushes (a heartbeat, a countdown)."""

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()
            self._tick()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread and flush everything left (retrying for up to ``timeout_s``)."""
        if getattr(self, "_thread", None) is not None:
            self._stop.set()
            self._thread.join(timeout=10)
        deadline = time.monotonic() + timeout_s
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(0.5)


class RunRecorder(_Flusher):
    def __init__(self, store: Store, claim: Claim, *, epochs: float, flush_s: float = 0.25,
                 heartbeat_s: float = 2.0, stop_requested: Callable[[], bool] = lambda: False):
        self.store, self.claim, self.epochs = store, claim, max(float(epochs), 1e-9)
        self.progress = Progress(DEFAULT_WORK.get(claim.config.get("mode"), DEFAULT_WORK["all"]))
        self._end: float | None = None  # when the run should end (monotonic): the ETA counts down between reports
        self.clock = time.monotonic  # tests set their own
        self.stage: str | None = None
        self._entered: tuple[str, ...] = ()  # the weighed stages entered so far, in order
        self.flush_s, self.heartbeat_s = flush_s, heartbeat_s
        self.stop_requested = stop_requested
        self._lock = threading.Lock()
        self._logs: list[dict[str, Any]] = []
        self._metrics: list[dict[str, Any]] = []
        self._fields: dict[str, Any] = {}
        self._log_seq, self._metric_seq = claim.next_log_seq, claim.next_metric_seq
        self.cancel_requested = False
        self.lost = False
        self._last_beat = 0.0
        self.handler = _Handler(self)

    # --- hooks the pipeline calls --------------------------------------------------------------
    def add_log(self, level: str, message: str, ts: datetime | None = None) -> None:
        with self._lock:
            self._logs.append({"seq": self._log_seq, "ts": ts or datetime.now(UTC), "level": level,
                               "message": message[:MAX_MESSAGE]})
            self._log_seq += 1

    def on_stage(self, stage: str) -> None:
        with self._lock:
            self.stage = stage
            self._fields["stage"] = stage
            if stage == "train":
                self._fields["train_started_at"] = datetime.now(UTC)
                self._end = None  # a teacher's generate stage before predicted its own end only
            if stage in STAGES:  # the stages before have no share: the bar stands where the last one ended
                self._entered = STAGES[:STAGES.index(stage) + 1]
                self._fields["progress"] = self.progress.at(stage, 0.0)

    def on_plan(self, work: dict[str, float]) -> None:
        """The expected work of each stage (from the pipeline once the data is read)."""
        with self._lock:
            # Stages before the current one are over (the plan comes between stages, once the data is read).
            passed = STAGES[:STAGES.index(self.stage)] if self.stage in STAGES else self._entered
            self.progress.plan(work, tuple(passed))

    def on_metrics(self, point: dict[str, Any]) -> None:
        clean = {k: v for k, v in point.items() if v is not None}
        with self._lock:
            self._metrics.append({"seq": self._metric_seq, "step": int(clean.get("step") or 0), "data": clean})
            self._metric_seq += 1
        if "loss" in clean:
            self._advance("train", float(clean.get("epoch") or 0.0) / self.epochs)

    def on_progress(self, done: int, total: int) -> None:
        """Problems answered: the generate stage's (a trace generation's bar is only that; a run that then trains
        goes on rising from where generation ended) or the evaluate stage's (a benchmark job is only that)."""
        if not total:
            return
        self._advance("generate" if self.stage == "generate" else "evaluate", done / total)

    def _advance(self, stage: str, fraction: float) -> None:
        self._set(stage, self.progress.at(stage, fraction))

    def _set(self, stage: str, progress: float) -> None:
        now = self.clock()
        with self._lock:
            eta = self.progress.eta(stage, progress, now)
            if eta is not None:
                self._end = now + eta
            self._fields["progress"], self._fields["eta_s"] = progress, self._eta_left(now)

    def _eta_left(self, now: float) -> float | None:
        return None if self._end is None else round(max(self._end - now, 0.0), 1)

    def should_cancel(self) -> bool:
        return self.cancel_requested or self.lost or self.stop_requested()

    # --- flushing --------------------------------------------------------------------------------
    def flush(self) -> bool:
        with self._lock:
            logs, metrics, fields = self._logs, self._metrics, self._fields
            self._logs, self._metrics, self._fields = [], [], {}
        if not (logs or metrics or fields):
            return True
        try:
            ok = self.store.record(self.claim, logs, metrics, fields)
        except Exception as e:  # noqa: BLE001 - keep the batch and try again
            with self._lock:
                self._logs[:0], self._metrics[:0] = logs, metrics
                self._fields = {**fields, **self._fields}
            print(f"distill worker: could not write to the database ({first_line(e)}); retrying",
                  file=sys.stderr)
            return False
        if not ok:
            self.lost = True
        return True

    def beat(self) -> None:
        try:
            state = self.store.heartbeat(self.claim)
        except Exception as e:  # noqa: BLE001
            print(f"distill worker: heartbeat failed ({first_line(e)})", file=sys.stderr)
            return
        if state == "cancel" and not self.cancel_requested:
            self.cancel_requested = True
            log.info("cancel requested: %s", CANCEL_WAITS.get(self.stage or "", "stopping at the next check"))
        elif state == "lost":
            self.lost = True

    def _tick(self) -> None:
        if time.monotonic() - self._last_beat >= self.heartbeat_s:
            self.beat()
            self._last_beat = time.monotonic()
            self._count_down(self.clock())

    def _count_down(self, now: float) -> None:
        """The ETA between reports (an evaluation chunk can take minutes): the time left to the predicted end."""
        with self._lock:
            if self._end is not None and self.stage in STAGES:
                self._fields["eta_s"] = self._eta_left(now)

    def start(self) -> None:
        self.beat()
        self._start_flushing()


class ExportRecorder(_Flusher):
    """An export job's stage, progress and log lines, written to its row every ``flush_s`` with a heartbeat that
    also reads the cancel flag (``backend/services/exports.py: record``)."""

    def __init__(self, sessions: Any, job_id: int, task_id: str, flush_s: float = 0.5):
        self.sessions, self.job_id, self.task_id, self.flush_s = sessions, job_id, task_id, flush_s
        self._lock = threading.Lock()
        self._lines: list[dict[str, Any]] = []
        self._fields: dict[str, Any] = {}
        self.cancel_requested = self.lost = False
        self.handler = _Handler(self)  # type: ignore[arg-type] - it calls add_log only

    def add_log(self, level: str, message: str, ts: datetime | None = None) -> None:
        with self._lock:
            self._lines.append({"ts": (ts or datetime.now(UTC)).isoformat(timespec="seconds"), "level": level,
                                "message": message[:MAX_MESSAGE]})

    def on_stage(self, stage: str, progress: float) -> None:
        with self._lock:
            self._fields.update(stage=stage, progress=progress)

    def should_cancel(self) -> bool:
        return self.cancel_requested or self.lost

    def flush(self) -> bool:
        from backend.services.exports import record

        with self._lock:
            lines, fields, self._lines, self._fields = self._lines, self._fields, [], {}
        try:
            state = record(self.sessions, self.job_id, self.task_id, lines, fields)
        except Exception as e:  # noqa: BLE001 - keep the batch and try again
            with self._lock:
                self._lines[:0], self._fields = lines, {**fields, **self._fields}
            print(f"distill worker: could not write export job {self.job_id} ({first_line(e)}); retrying",
                  file=sys.stderr)
            return False
        self.cancel_requested = self.cancel_requested or state == "cancel"
        self.lost = self.lost or state == "lost"
        return True

    thread_name = "distill-export-recorder"

    def start(self) -> None:
        self._start_flushing()
