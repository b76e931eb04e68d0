"""The API's background loop: what keeps the database truthful when processes die.

- A ``running`` run whose worker stopped sending heartbeats for ``DISTILL_WORKER_LOST_S``
  (default 30 s, heartbeat every ``DISTILL_HEARTBEAT_S`` = 2 s) is marked ``failed`` with
  "worker lost"; its last checkpoint stays, and ``POST /runs/{id}/resume`` continues it.
- A ``queued`` run the broker never accepted (broker down at submission) is sent again.
- When the Redis broker restarted (its ``run_id`` changed: an empty Redis lost its queues), every
  ``queued`` run is sent again, oldest first; duplicates are harmless (the worker claims a run
  once, by task id).
- Workers not seen for a minute are shown offline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.services.dispatch import Dispatcher, submit_lock
from backend.store import Store, append_to_run_log_file
from backend.tables import LogLine, Meta, Run, Worker, utcnow, worker_seen_since
from distill.errors import first_line

log = logging.getLogger("distill.service")


def reap_lost_runs(store: Store, lost_after_s: float) -> list[int]:
    now = utcnow()
    cutoff = now - timedelta(seconds=lost_after_s)
    reaped: list[int] = []
    with store.sessions() as s:
        stale = s.execute(
            select(Run.id, Run.worker, Run.heartbeat_at, Run.output_dir).where(
                Run.status == "running",
                func.coalesce(Run.heartbeat_at, Run.started_at, Run.created_at) < cutoff,
            )
        ).all()
    for run_id, worker, beat, output_dir in stale:
        silent = (now - beat).total_seconds() if beat else lost_after_s
        msg = (f"worker lost: no heartbeat from {worker or 'its worker'} for {silent:.0f} s "
               "(killed or unreachable); POST /runs/{id}/resume continues from the last checkpoint")
        msg = msg.replace("{id}", str(run_id))
        with store.sessions() as s:
            res = s.execute(update(Run).where(
                Run.id == run_id, Run.status == "running",
                Run.heartbeat_at.is_(None) if beat is None else Run.heartbeat_at == beat,
            ).values(status="failed", error=msg, finished_at=now, eta_s=None))
            if res.rowcount != 1:
                s.rollback()
                continue
            # The closing log line lands in the same transaction: a log stream that sees the
            # final status has every line.
            seq = (s.scalar(select(func.max(LogLine.seq)).where(LogLine.run_id == run_id)) or 0) + 1
            s.add(LogLine(run_id=run_id, seq=seq, ts=now, level="ERROR", message=msg))
            s.commit()
        if output_dir:
            append_to_run_log_file(output_dir, f"{now:%Y-%m-%d %H:%M:%S} ERROR {msg}")
        log.warning("run %s: %s", run_id, msg)
        reaped.append(run_id)
    return reaped


def redispatch(sessions: sessionmaker[Session], dispatcher: Dispatcher, grace_s: float = 3.0) -> list[int]:
    """Send queued runs the broker does not hold: never accepted, or lost by a broker restart."""
    sent: list[int] = []
    try:
        identity = dispatcher.identity()
    except Exception:  # noqa: BLE001 - broker down: nothing can be sent now anyway
        return sent
    with submit_lock:
        with sessions() as s:
            restarted = False
            if identity is not None:
                key = f"broker_identity:{dispatcher.settings.broker_url}:{dispatcher.settings.broker_prefix}"
                meta = s.get(Meta, key)
                if meta is None:
                    s.add(Meta(key=key, value=identity))
                elif meta.value != identity:
                    restarted, meta.value = True, identity
                s.commit()
            cutoff = utcnow() - timedelta(seconds=grace_s)
            q = select(Run).where(Run.status == "queued")
            if not restarted:
                q = q.where(and_(Run.dispatched_at.is_(None), Run.created_at < cutoff))
            runs = list(s.scalars(q.order_by(Run.id)))
            if restarted and runs:
                log.warning("the broker restarted: sending %d queued run(s) again", len(runs))
            for run in runs:
                if dispatcher.send(run.id, run.config.get("mode", "all"), run.task_id or ""):
                    run.dispatched_at = utcnow()
                    s.commit()
                    sent.append(run.id)
                else:
                    break
    return sent


def mark_offline_workers(sessions: sessionmaker[Session]) -> None:
    cutoff = worker_seen_since()
    with sessions() as s:
        s.execute(update(Worker).where(Worker.state == "online", Worker.last_seen < cutoff).values(state="offline"))
        s.commit()


class MaintenanceLoop:
    def __init__(self, settings: Settings, store: Store, dispatcher: Dispatcher,
                 also: tuple[Callable[[], object], ...] = ()):
        self.settings, self.store, self.dispatcher = settings, store, dispatcher
        self.also = also  # further steps of each tick (e.g. queueing a sweep's next points)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        for step in (lambda: reap_lost_runs(self.store, self.settings.worker_lost_s),
                     lambda: redispatch(self.store.sessions, self.dispatcher),
                     lambda: mark_offline_workers(self.store.sessions), *self.also):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - a database hiccup must not end the loop
                log.warning("maintenance: %s", first_line(e))

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.maintenance_s):
            self.tick()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="distill-maintenance", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
