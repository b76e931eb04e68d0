"""The tasks (``distill.train``, ``distill.evaluate``, ``distill.all``, ``distill.generate``): thin wrappers that
load the run's configuration from the database, call the core's ``run_pipeline`` with hooks that
write to the store, and record how it ended. ``distill.export``: an export job (a run's model to GGUF, Ollama or the
Hub), recorded in its own row (``backend/services/exports.py``).

A message is acted on only if its run is still ``queued`` with the message's task id (see
``Store.claim``), so a redelivered or duplicated message never runs a run twice.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from backend.config import Settings
from backend.store import Store, append_to_run_log_file
from distill.errors import first_line
from worker.celery_app import app
from worker.recorder import RunRecorder

log = logging.getLogger("distill")
wlog = logging.getLogger("distill.worker")

# Set when the worker is asked to shut down (SIGTERM / Ctrl-C): the running pipeline stops at its
# next step, saving a checkpoint, and the run is marked failed with a resumable message.
SHUTDOWN = threading.Event()
INTERRUPTED = "interrupted: the worker was stopped; POST /api/v1/runs/{id}/resume continues from the last checkpoint"

_store: Store | None = None


def get_store() -> Store:
    global _store
    if _store is None:
        _store = Store(Settings.from_env(), role="worker")
    return _store


@contextmanager
def recording(recorder: Any) -> Iterator[None]:
    """The pipeline's log lines go to ``recorder`` (flushed to the database by its thread) while the block runs;
    whatever the block raises, the recorder is detached and flushed."""
    log.addHandler(recorder.handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    recorder.start()
    try:
        yield
    finally:
        log.removeHandler(recorder.handler)
        recorder.stop()


def execute(task: Any, run_id: int) -> dict[str, Any]:
    store = get_store()
    settings = store.settings
    task_id = task.request.id
    worker_name = task.request.hostname or f"worker-{os.getpid()}"
    claim = store.claim(int(run_id), task_id, worker_name)
    if claim is None:
        wlog.info("run %s: message %s is stale (run cancelled, deleted, taken or re-sent); skipped", run_id, task_id)
        return {"run_id": run_id, "skipped": True}

    cfg = dict(claim.config)
    recorder = RunRecorder(store, claim, epochs=float(cfg.get("epochs") or 1), heartbeat_s=settings.heartbeat_s,
                           stop_requested=SHUTDOWN.is_set)
    status, error, evaluation = "failed", None, None
    with recording(recorder):
        from distill.config import RunConfig
        from distill.errors import RunCancelled, UserError
        from distill.pipeline import PipelineHooks, run_pipeline

        try:
            config = RunConfig.model_validate(cfg)  # resolved by the API when the run was submitted
            log.info("Run %s (attempt %d) on %s", run_id, claim.attempt, worker_name)
            result = run_pipeline(config, PipelineHooks(
                on_stage=recorder.on_stage, on_metrics=recorder.on_metrics, should_cancel=recorder.should_cancel,
                on_progress=recorder.on_progress, on_plan=recorder.on_plan))
            status, evaluation = "succeeded", result.evaluation
        except RunCancelled as e:
            if recorder.cancel_requested:
                status, error = "cancelled", None
                log.info("Cancelled: %s", e)
            elif SHUTDOWN.is_set():
                status, error = "failed", INTERRUPTED.replace("{id}", str(run_id))
                log.error("%s (%s)", error, e)
            else:  # lost: the API declared this attempt dead; nothing more is written
                status, error = "lost", None
        except (UserError, FileNotFoundError, PermissionError, NotImplementedError) as e:
            status, error = "failed", first_line(e)
            log.error("error: %s", error)
        except Exception as e:  # noqa: BLE001 - anything else: the run fails with the first line, logs get the trace
            status, error = "failed", f"{type(e).__name__}: {first_line(e)}"
            log.error("error: %s\n%s", error, traceback.format_exc())
    if error and claim.output_dir:
        append_to_run_log_file(claim.output_dir, f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} ERROR error: {error}")
    if status != "lost" and not recorder.lost:
        _finish(store, claim, status, error, evaluation)
    wlog.info("run %s: %s%s", run_id, status, f" ({error})" if error else "")
    return {"run_id": run_id, "status": status}


def _finish(store: Store, claim: Any, status: str, error: str | None, evaluation: dict | None,
            timeout_s: float = 120.0) -> None:
    """The final status, retried while the database is unreachable (the reaper would otherwise
    turn a finished run into "worker lost")."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            store.finish(claim, status, error, evaluation)
            return
        except Exception as e:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise
            wlog.warning("run %s: could not record %s (%s); retrying", claim.run_id, status, first_line(e))
            time.sleep(2.0)


@app.task(name="distill.all", bind=True)
def run_all(self, run_id: int) -> dict[str, Any]:  # noqa: ANN001
    return execute(self, run_id)


@app.task(name="distill.train", bind=True)
def run_train(self, run_id: int) -> dict[str, Any]:  # noqa: ANN001
    return execute(self, run_id)


@app.task(name="distill.evaluate", bind=True)
def run_evaluate(self, run_id: int) -> dict[str, Any]:  # noqa: ANN001
    return execute(self, run_id)


@app.task(name="distill.generate", bind=True)
def run_generate(self, run_id: int) -> dict[str, Any]:  # noqa: ANN001
    return execute(self, run_id)


@app.task(name="distill.export", bind=True)
def run_export(self, job_id: int) -> dict[str, Any]:  # noqa: ANN001
    """An export job (``backend/services/exports.py``): ``export_run`` on the run's folder, its steps and log lines
    recorded; a failure or a cancel leaves no export listed (the core writes in a hidden folder)."""
    from backend.services.exports import claim, finish
    from distill.errors import RunCancelled, UserError
    from distill.export.run import ExportHooks, ExportRequest, export_run
    from worker.recorder import ExportRecorder

    sessions = get_store().sessions
    job = claim(sessions, int(job_id), self.request.id, self.request.hostname or f"worker-{os.getpid()}")
    if job is None:
        wlog.info("export job %s: message %s is stale (cancelled, deleted or re-sent); skipped", job_id,
                  self.request.id)
        return {"job_id": job_id, "skipped": True}
    recorder = ExportRecorder(sessions, int(job_id), self.request.id)
    status, error, export = "failed", None, None
    with recording(recorder):
        try:
            log.info("Export job %s: %s of %s", job_id, job["request"]["to"], job["run_dir"])
            done = export_run(job["run_dir"], ExportRequest(**job["request"]),
                              ExportHooks(on_stage=recorder.on_stage, should_cancel=recorder.should_cancel))
            status, export = "succeeded", done["name"]
        except RunCancelled as e:
            status = "cancelled"
            log.info("Cancelled: %s", e)
        except UserError as e:
            error = first_line(e)
            log.error("error: %s", error)
        except Exception as e:  # noqa: BLE001 - anything else: the job fails with the first line, the log gets the trace
            error = f"{type(e).__name__}: {first_line(e)}"
            log.error("error: %s\n%s", error, traceback.format_exc())
    if not recorder.lost:
        finish(sessions, int(job_id), self.request.id, status, error, export)
    wlog.info("export job %s: %s%s", job_id, status, f" ({error})" if error else "")
    return {"job_id": job_id, "status": status}
