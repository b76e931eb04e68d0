"""Buffers what a running pipeline reports and writes it to the store in batches.

A thread flushes log lines, metric points, stage and progress every ``flush_s`` (0.25 s: the
database is at most about half a second behind) and sends a heartbeat, which also reads the
cancel flag. A failed write keeps the batch for the next attempt, so a database hiccup delays
lines but loses none.
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

MAX_MESSAGE = 20_000


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


class RunRecorder:
    def __init__(self, store: Store, claim: Claim, *, epochs: float, flush_s: float = 0.25,
                 heartbeat_s: float = 2.0, stop_requested: Callable[[], bool] = lambda: False):
        self.store, self.claim, self.epochs = store, claim, max(float(epochs), 1e-9)
        # Whose progress the problems answered are: a benchmark job's, a trace generation's (not a training run's).
        self.by_problems = claim.config.get("mode") in ("evaluate", "generate")
        self.stage: str | None = None
        self.flush_s, self.heartbeat_s = flush_s, heartbeat_s
        self.stop_requested = stop_requested
        self._lock = threading.Lock()
        self._logs: list[dict[str, Any]] = []
        self._metrics: list[dict[str, Any]] = []
        self._fields: dict[str, Any] = {}
        self._log_seq, self._metric_seq = claim.next_log_seq, claim.next_metric_seq
        self.cancel_requested = False
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first_point: tuple[float, float] | None = None
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
            if stage in ("evaluate", "save") and not self.by_problems:
                self._fields["progress"], self._fields["eta_s"] = 1.0, None

    def on_metrics(self, point: dict[str, Any]) -> None:
        clean = {k: v for k, v in point.items() if v is not None}
        now = time.monotonic()
        progress = min(float(clean.get("epoch") or 0.0) / self.epochs, 1.0)
        eta = None
        if self._first_point is None:
            self._first_point = (now, progress)
        else:
            t0, p0 = self._first_point
            if progress > p0:
                eta = round((now - t0) * (1.0 - progress) / (progress - p0), 1)
        with self._lock:
            self._metrics.append({"seq": self._metric_seq, "step": int(clean.get("step") or 0), "data": clean})
            self._metric_seq += 1
            if "loss" in clean:
                self._fields["progress"], self._fields["eta_s"] = progress, eta

    def on_progress(self, done: int, total: int) -> None:
        """Problems answered: the run's progress when it only evaluates (a benchmark job) or generates, and the
        generate stage's before a run trains on the traces."""
        if (self.by_problems or self.stage == "generate") and total:
            with self._lock:
                self._fields["progress"] = round(done / total, 4)

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
            print(f"distill worker: could not write to the database ({str(e).splitlines()[0]}); retrying",
                  file=sys.stderr)
            return False
        if not ok:
            self.lost = True
        return True

    def beat(self) -> None:
        try:
            state = self.store.heartbeat(self.claim)
        except Exception as e:  # noqa: BLE001
            print(f"distill worker: heartbeat failed ({str(e).splitlines()[0]})", file=sys.stderr)
            return
        if state == "cancel":
            self.cancel_requested = True
        elif state == "lost":
            self.lost = True

    def _loop(self) -> None:
        last_beat = 0.0
        while not self._stop.wait(self.flush_s):
            self.flush()
            if time.monotonic() - last_beat >= self.heartbeat_s:
                self.beat()
                last_beat = time.monotonic()

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="distill-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread and flush everything left (retrying for up to ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        deadline = time.monotonic() + timeout_s
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(0.5)
