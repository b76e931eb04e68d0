"""The Celery application of the workers.

Broker: ``CELERY_BROKER_URL`` / ``REDIS_URL`` when set, else an embedded broker that needs no server
(kombu's SQLAlchemy transport on ``$DISTILL_HOME/broker.sqlite``). No result backend: the run
service's database holds every result. Late acks with rejection on a lost worker process, one
message prefetched, queues ``gpu`` (training/evaluation, one task at a time per GPU) and ``default``.
"""

from __future__ import annotations

from celery import Celery

from backend.config import Settings
from backend.services.dispatch import (
    DEFAULT_QUEUE,
    GPU_QUEUE,
    TASK_BY_MODE,
    broker_transport_options,
    task_queues,
)


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    if settings.embedded_broker:
        settings.home.mkdir(parents=True, exist_ok=True)
        # The SQL transport polls its table; the class default (1 s) adds up to a second per task.
        import kombu.transport.sqlalchemy as sqla

        sqla.Transport.polling_interval = 0.3
    app = Celery("distill", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_queues=task_queues(),
        task_default_queue=DEFAULT_QUEUE,
        task_routes={name: {"queue": GPU_QUEUE} for name in TASK_BY_MODE.values()},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_enable_remote_control=not settings.embedded_broker,
        enable_utc=True,
    )
    return app


app = make_app()
