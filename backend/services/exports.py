"""Export jobs: a finished run's model out to GGUF, Ollama or the Hub, queued for a worker (``distill.export``).

The API refuses every bad request before queueing, with the core's own checks (``distill/export/run.py:
check_request``): an unknown run, an unfinished run, a benchmark job, an unknown quantization, a Hub export without
a repository or without a token. The token is ``HF_TOKEN`` in the environment: the worker's is the one used (it
uploads); the API refuses when its own has none, since both read the same environment (``docker-compose.yml``'s
``x-service-env``, ``distill serve --with-worker``). A token is never part of a request, a message or a row.

Like a run, a job is committed first and sent second (the maintenance step re-sends one the broker did not take),
claimed once by task id, and its worker beats while it works: a silent one is marked failed. The worker-side
writes (claim, record, finish) are here too, so both sides agree on the rules.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.errors import ApiError, Conflict, FieldError, NotFound, Unavailable
from backend.schemas import ExportJobRequest
from backend.services.dispatch import DEFAULT_QUEUE, Dispatcher, new_task_id, submit_lock
from backend.tables import TERMINAL, ExportJob, Run, utcnow
from distill.export.gguf import GGUFError
from distill.export.hub import HubExportError
from distill.export.run import ExportError, ExportRequest, check_request
from distill.rundir import RunDir

log = logging.getLogger("distill.service")
TASK = "distill.export"
LOG_KEPT = 300  # the row keeps the last lines of a job's log (an export writes a handful)


def export_request(body: ExportJobRequest) -> ExportRequest:
    return ExportRequest(**body.model_dump())


def refusal(run: Run, request: ExportRequest) -> ApiError | None:
    """Why this export cannot be queued (one line), or None."""
    if run.parent_id is not None:
        return Conflict(f"run {run.id} is a benchmark job: it has no model of its own; export run {run.parent_id}")
    if run.status != "succeeded":
        return Conflict(f"run {run.id} is {run.status}: a run can be exported once it has succeeded")
    try:
        check_request(RunDir(Path(run.output_dir or "")), request)
    except ExportError as e:
        return FieldError(e.field, str(e)) if e.field else Conflict(f"run {run.id}: {e}")
    except HubExportError as e:
        return ApiError(f"{e} (the server and its workers read the same environment)", 400)
    except GGUFError as e:  # the converter is not installed on this server: not the request's fault
        return Unavailable(str(e))
    return None


class ExportService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], dispatcher: Dispatcher):
        self.settings, self.sessions, self.dispatcher = settings, sessions, dispatcher

    def create(self, run_id: int, body: ExportJobRequest) -> ExportJob:
        request = export_request(body)
        with submit_lock:
            with self.sessions() as s:
                run = s.get(Run, run_id)
                if run is None:
                    raise NotFound(f"run {run_id} not found")
                refused = refusal(run, request)
                if refused is not None:
                    raise refused
                job = ExportJob(run_id=run_id, status="queued", progress=0.0, request=asdict(request), log=[],
                                cancel_requested=False, task_id=new_task_id(), created_at=utcnow())
                s.add(job)
                s.commit()
                self._send(s, job)
                return job

    def _send(self, s: Session, job: ExportJob) -> None:
        try:
            self.dispatcher.app.send_task(TASK, args=[job.id], task_id=job.task_id, queue=DEFAULT_QUEUE, retry=True,
                                          retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                                        "interval_max": 1.0})
        except Exception as e:  # noqa: BLE001 - any broker failure: the maintenance step re-sends it
            log.warning("could not send export job %s to the broker (%s); it is re-sent later", job.id, e)
            return
        s.execute(update(ExportJob).where(ExportJob.id == job.id).values(dispatched_at=utcnow()))
        s.commit()

    def get(self, s: Session, job_id: int) -> ExportJob:
        job = s.get(ExportJob, job_id)
        if job is None:
            raise NotFound(f"export job {job_id} not found")
        return job

    def of_run(self, s: Session, run_id: int) -> list[ExportJob]:
        return list(s.scalars(select(ExportJob).where(ExportJob.run_id == run_id).order_by(ExportJob.id.desc())))

    def cancel(self, job_id: int) -> ExportJob:
        """A queued job is cancelled at once; a running one stops before its next step (none of it is listed)."""
        with self.sessions() as s:
            job = self.get(s, job_id)
            if job.status in TERMINAL:
                raise Conflict(f"export job {job_id} already {job.status}")
            s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.status == "queued")
                      .values(status="cancelled", cancel_requested=True, finished_at=utcnow()))
            s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.status == "running")
                      .values(cancel_requested=True))
            s.commit()
            s.refresh(job)
            return job

    def maintain(self) -> None:
        """One tick of the API's maintenance loop: fail jobs whose worker went silent, send jobs never sent."""
        now = utcnow()
        lost = now - timedelta(seconds=self.settings.worker_lost_s)
        with self.sessions() as s:
            silent_since = func.coalesce(ExportJob.heartbeat_at, ExportJob.started_at, ExportJob.created_at)
            s.execute(update(ExportJob).where(ExportJob.status == "running", silent_since < lost).values(
                status="failed", finished_at=now, error="worker lost: no heartbeat from its worker; export again"))
            s.commit()
            unsent = list(s.scalars(select(ExportJob).where(ExportJob.status == "queued",
                                                            ExportJob.dispatched_at.is_(None),
                                                            ExportJob.created_at < now - timedelta(seconds=3))))
            for job in unsent:
                self._send(s, job)


# --- the worker's side -----------------------------------------------------------------------------

def claim(sessions: sessionmaker[Session], job_id: int, task_id: str, worker: str) -> dict[str, Any] | None:
    """Take a queued job for this message: {"request", "run_dir"}; None when the message is stale."""
    now = utcnow()
    with sessions() as s:
        res = s.execute(update(ExportJob).where(
            ExportJob.id == job_id, ExportJob.status == "queued", ExportJob.task_id == task_id,
            ExportJob.cancel_requested.is_(False)).values(status="running", worker=worker, started_at=now,
                                                          heartbeat_at=now))
        if res.rowcount != 1:
            s.rollback()
            return None
        job = s.get(ExportJob, job_id)
        run = s.get(Run, job.run_id) if job is not None else None
        s.commit()
        if job is None or run is None:
            return None
        return {"request": dict(job.request), "run_dir": run.output_dir or ""}


def record(sessions: sessionmaker[Session], job_id: int, task_id: str, lines: list[dict[str, Any]],
           fields: dict[str, Any]) -> str:
    """New log lines and fields, and a heartbeat: "ok", "cancel" (asked to stop) or "lost" (no longer this
    message's job: nothing written)."""
    with sessions() as s:
        job = s.scalars(select(ExportJob).where(ExportJob.id == job_id, ExportJob.task_id == task_id,
                                                ExportJob.status == "running").with_for_update()).first()
        if job is None:
            s.rollback()
            return "lost"
        if lines:
            job.log = [*(job.log or []), *lines][-LOG_KEPT:]
        for key, value in {**fields, "heartbeat_at": utcnow()}.items():
            setattr(job, key, value)
        cancel = bool(job.cancel_requested)
        s.commit()
        return "cancel" if cancel else "ok"


def finish(sessions: sessionmaker[Session], job_id: int, task_id: str, status: str, error: str | None,
           export: str | None) -> bool:
    now = utcnow()
    values: dict[str, Any] = {"status": status, "error": error, "export": export, "finished_at": now,
                              "heartbeat_at": now}
    if status == "succeeded":
        values["progress"] = 1.0
    with sessions() as s:
        res = s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.task_id == task_id,
                                                ExportJob.status == "running").values(**values))
        s.commit()
        return res.rowcount == 1
