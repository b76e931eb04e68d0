"""Handing runs to the workers: Celery tasks sent by name (the API never imports worker code).

A run is committed to the database first and sent second. If the broker cannot take it right
now, the run stays ``queued`` with ``dispatched_at`` unset and the maintenance loop sends it
later, so a broker outage loses no submission. A message carries the run's current ``task_id``;
the worker claims a run only when that id matches and the run is still queued, which makes a
duplicate or stale message harmless.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from backend.config import Settings
from distill.errors import first_line

log = logging.getLogger("distill.service")

TASK_BY_MODE = {"all": "distill.all", "train": "distill.train", "evaluate": "distill.evaluate",
                "generate": "distill.generate"}
GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"

# Insert + send happen under this lock so that ids and queue order agree within one API process.
submit_lock = threading.Lock()


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if settings.redis_broker:
        if settings.broker_prefix:
            opts["global_keyprefix"] = settings.broker_prefix
        # Training tasks run for hours; an unacked message is redelivered only after this long.
        # A redelivered message is skipped by the worker unless its run is still queued.
        opts["visibility_timeout"] = 12 * 3600
        opts["socket_connect_timeout"] = 3
        opts["socket_timeout"] = 10
    return opts


def task_queues() -> tuple:
    """``gpu`` and ``default``, each a direct exchange of its own name (API and workers agree)."""
    from kombu import Exchange, Queue

    return tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in (GPU_QUEUE, DEFAULT_QUEUE))


def new_task_id() -> str:
    return uuid.uuid4().hex


class Dispatcher:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._app = None
        self._app_lock = threading.Lock()
        self._health: tuple[float, str] | None = None

    @property
    def app(self):  # noqa: ANN201
        with self._app_lock:
            if self._app is None:
                from celery import Celery

                app = Celery("distill-api", broker=self.settings.broker_url, set_as_current=False)
                app.conf.update(
                    broker_transport_options=broker_transport_options(self.settings),
                    broker_connection_retry_on_startup=True,
                    task_queues=task_queues(),
                    task_default_queue=DEFAULT_QUEUE,
                    task_ignore_result=True,
                    result_backend=None,
                )
                self._app = app
            return self._app

    def send(self, run_id: int, mode: str, task_id: str) -> bool:
        """True when the broker accepted the message."""
        name = TASK_BY_MODE.get(mode, "distill.all")
        try:
            self.app.send_task(
                name, args=[run_id], task_id=task_id, queue=GPU_QUEUE,
                retry=True, retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                          "interval_max": 1.0},
            )
            return True
        except Exception as e:  # noqa: BLE001 - any broker failure: the maintenance loop retries
            log.warning("could not send run %s to the broker (%s); it stays queued and is re-sent later",
                        run_id, first_line(e))
            return False

    def identity(self) -> str | None:
        """An id that changes when the broker restarts with an empty memory (Redis run_id)."""
        if not self.settings.redis_broker:
            return None
        import redis

        client = redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return str(client.info("server").get("run_id"))
        finally:
            client.close()

    def health(self) -> str:
        now = time.monotonic()
        if self._health and now - self._health[0] < 2.0:
            return self._health[1]
        try:
            if self.settings.redis_broker:
                self.identity()
            else:
                with self.app.connection_for_write() as conn:
                    conn.ensure_connection(max_retries=1, timeout=2)
            status = "ok"
        except Exception as e:  # noqa: BLE001
            status = f"error: {first_line(e)}"
        self._health = (now, status)
        return status
