"""Run lifecycle on the API side: validate and record a submission, list, cancel, resume, delete."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.errors import Conflict, FieldError, NotFound
from backend.schemas import RUN_FIELDS, BenchmarkRequest
from backend.services.catalog import engine_for, sft_model_of
from backend.services.dispatch import Dispatcher, new_task_id, submit_lock
from backend.tables import (
    TERMINAL,
    Dataset,
    Evaluation,
    LogLine,
    MetricPoint,
    Run,
    utcnow,
)
from distill.config import ConfigError, RunConfig
from distill.resolve import resolve_config
from distill.rundir import RunDir

UPLOAD_PREFIX = "upload:"
RUN_REF = re.compile(r"^run-\d+$")


def _config_error(e: ConfigError) -> FieldError:
    """A 422 naming every bad field."""
    return FieldError.of(e.issues)


def upload_path(session: Session, settings: Settings, ref: str) -> str:
    """An uploaded dataset's file (``upload:N`` as GET /datasets lists it)."""
    raw = ref.removeprefix(UPLOAD_PREFIX)
    ds = session.get(Dataset, int(raw)) if raw.isdigit() else None
    if ds is None:
        raise FieldError("dataset", f"unknown dataset id {ref!r} (GET /api/v1/datasets lists them)")
    return str(settings.home / ds.path)


def teacher_path(session: Session, ref: str) -> str:
    """A local teacher named ``run-N``: that run's trained model folder."""
    run = session.get(Run, int(ref.removeprefix("run-")))
    model = sft_model_of(run) if run is not None and run.parent_id is None else None
    if model is None:
        why = "no such run" if run is None else f"it has no trained model (status {run.status})"
        raise FieldError("teacher_model", f"{ref} cannot teach: {why}")
    return str(model)


def resolved(session: Session, settings: Settings, values: dict[str, Any]) -> RunConfig:
    """The final configuration under the server's rules (paths inside DISTILL_HOME, no custom model code
    unless allowed, one folder per run); 422 naming every bad field."""
    values = dict(values)
    if str(values.get("dataset", "")).startswith(UPLOAD_PREFIX):
        values["dataset"] = upload_path(session, settings, values["dataset"])
    teacher = str(values.get("teacher_model") or "")
    if RUN_REF.match(teacher) and not values.get("teacher_url"):  # served over /v1, run-N is the model's name
        values["teacher_model"] = teacher_path(session, teacher)
    try:
        config = resolve_config(values, home=settings.home)
    except ConfigError as e:
        raise _config_error(e) from None
    if config.trust_remote_code and not settings.trust_remote_code:
        raise FieldError("trust_remote_code", "refused: this server runs no custom model code "
                         "(the operator enables it with DISTILL_TRUST_REMOTE_CODE=1)")
    if config.output_dir:
        check_output_dir(session, settings, Path(config.output_dir))
    return config


def check_output_dir(session: Session, settings: Settings, path: Path) -> None:
    if path == settings.home.resolve():
        raise FieldError("output_dir", "must be a folder below DISTILL_HOME, not DISTILL_HOME itself")
    for reserved in (settings.datasets_dir.resolve(), settings.runs_dir.resolve()):
        if path == reserved or path.is_relative_to(reserved):
            raise FieldError("output_dir", f"{reserved} is reserved for the service's own files")
    if path.exists() and not path.is_dir():
        raise FieldError("output_dir", f"{path} exists and is not a folder")
    for other_id, other_dir in session.execute(select(Run.id, Run.output_dir).where(Run.output_dir.is_not(None))):
        o = Path(other_dir)
        if o == path or o.is_relative_to(path) or path.is_relative_to(o):
            raise FieldError("output_dir", f"overlaps the folder of run {other_id}; runs may not share a folder")


class RunService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], dispatcher: Dispatcher):
        self.settings, self.sessions, self.dispatcher = settings, sessions, dispatcher

    def run_folder(self, run_id: int) -> Path:
        """A run's folder when its configuration names none: DISTILL_HOME/runs/run_N."""
        return self.settings.runs_dir / f"run_{run_id}"

    # --- create -----------------------------------------------------------------------------
    def create(self, body: RunConfig, sweep_id: int | None = None) -> Run:
        with submit_lock:
            with self.sessions() as s:
                config = resolved(s, self.settings, body.model_dump(exclude_unset=True))
                run = Run(name=config.name, status="queued", config=config.to_json(), task_id=new_task_id(),
                          created_at=utcnow(), progress=0.0, cancel_requested=False, attempts=0, sweep_id=sweep_id)
                s.add(run)
                s.flush()
                if not config.output_dir:
                    out = self.run_folder(run.id)
                    config = config.model_copy(update={"output_dir": str(out)})
                if not config.name:
                    config = config.model_copy(update={"name": f"run-{run.id}"})
                run.config, run.name, run.output_dir = config.to_json(), config.name, config.output_dir
                s.commit()
                self._send(s, run)
                return run

    def create_benchmark_job(self, run_id: int, body: BenchmarkRequest) -> Run:
        """A run of mode "evaluate" on ``run_id``'s base and SFT models, in a folder inside that run's."""
        with submit_lock:
            with self.sessions() as s:
                parent = self.get(s, run_id)
                if parent.parent_id is not None:
                    raise Conflict(f"run {run_id} is a benchmark job; benchmark its run {parent.parent_id} instead")
                model = sft_model_of(parent)
                if model is None:
                    raise Conflict(f"run {run_id} has no trained model yet (status {parent.status})")
                overrides = body.model_dump(exclude_unset=True, exclude={"name"})
                values = {**parent.config, "mode": "evaluate", "sft_model_path": str(model), "resume": False,
                          "preset": None, "output_dir": None, "name": body.name, "general_prompts": False,
                          "engine": "hf", "engine_url": None, "engine_base_model": None, "engine_sft_model": None}
                served = engine_for(s, parent) if "engine" not in overrides else None
                if served is not None:  # a worker serves this run's models: generate there
                    values.update(engine="openai", engine_url=served["url"])
                if served is not None or overrides.get("engine") == "openai":  # the names /v1 and vLLM workers use
                    values.update(engine_base_model=str(parent.config.get("model")), engine_sft_model=f"run-{parent.id}")
                values.update(overrides)
                config = resolved(s, self.settings, values)
                job = Run(status="queued", config=config.to_json(), task_id=new_task_id(), created_at=utcnow(),
                          progress=0.0, cancel_requested=False, attempts=0, parent_id=parent.id)
                s.add(job)
                s.flush()
                out = RunDir(Path(parent.output_dir or self.run_folder(parent.id))).benchmark_job(job.id)
                config = config.model_copy(update={"output_dir": str(out),
                                                   "name": config.name or f"run-{parent.id} benchmarks #{job.id}"})
                job.config, job.name, job.output_dir = config.to_json(), config.name, config.output_dir
                s.commit()
                self._send(s, job)
                return job

    def _send(self, s: Session, run: Run) -> None:
        if self.dispatcher.send(run.id, run.config.get("mode", "all"), run.task_id or ""):
            s.execute(update(Run).where(Run.id == run.id, Run.task_id == run.task_id).values(dispatched_at=utcnow()))
            s.commit()

    # --- read --------------------------------------------------------------------------------
    def get(self, s: Session, run_id: int) -> Run:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        return run

    def get_row(self, s: Session, run_id: int) -> Any:
        row = s.execute(select(*RUN_COLUMNS).where(Run.id == run_id)).first()
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return row

    def list_rows(self, s: Session, status: str | None, limit: int, offset: int) -> tuple[list[Any], int]:
        """Rows of the Run object's columns (no ORM objects: the list is the hottest read)."""
        q = select(*RUN_COLUMNS)
        count = select(func.count()).select_from(Run)
        if status:
            q, count = q.where(Run.status == status), count.where(Run.status == status)
        rows = list(s.execute(q.order_by(Run.id.desc()).limit(limit).offset(offset)))
        return rows, int(s.scalar(count) or 0)

    # --- change ------------------------------------------------------------------------------
    def cancel(self, run_id: int) -> Run:
        with self.sessions() as s:
            run = self.get(s, run_id)
            if run.status in TERMINAL:
                raise Conflict(f"run {run_id} already {run.status}")
            if run.status == "queued":
                # Not started: cancelled at once; the worker skips its message.
                s.execute(update(Run).where(Run.id == run_id, Run.status == "queued")
                          .values(status="cancelled", cancel_requested=True, finished_at=utcnow()))
            else:
                s.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
            s.commit()
            s.refresh(run)
            return run

    def resume(self, run_id: int) -> Run:
        with submit_lock:
            with self.sessions() as s:
                run = self.get(s, run_id)
                refusal = resume_refusal(run_id, run.status, run.config, run.output_dir)
                if refusal:
                    raise Conflict(refusal)
                step = RunDir(Path(run.output_dir or "")).last_checkpoint_step()
                if run.config.get("mode") == "evaluate":
                    config = dict(run.config)  # answers already given are kept in the run folder and reused
                elif run.config.get("mode") == "generate" or (run.config.get("teacher_model") and step is None):
                    config = dict(run.config, resume=True)  # the problems answered are kept and not asked again
                else:
                    config = dict(run.config, resume=True)
                    # Training restarts from the checkpoint: points logged after it are superseded.
                    s.execute(delete(MetricPoint).where(MetricPoint.run_id == run_id, MetricPoint.step > step))
                s.execute(delete(Evaluation).where(Evaluation.run_id == run_id))
                run.config, run.status, run.task_id = config, "queued", new_task_id()
                run.cancel_requested, run.error, run.finished_at, run.dispatched_at = False, None, None, None
                run.summary, run.eta_s = None, None
                s.commit()
                self._send(s, run)
                return run

    def delete(self, run_id: int) -> None:
        with self.sessions() as s:
            run = self.get(s, run_id)
            out = run.output_dir
            busy = s.scalar(select(Run.id).where(Run.parent_id == run_id, Run.status == "running").limit(1))
            if busy is not None:
                raise Conflict(f"run {run_id} has a running benchmark job ({busy}); cancel it first")
            # Conditional: a worker claiming the run at this moment either wins (409) or finds nothing.
            res = s.execute(delete(Run).where(Run.id == run_id, Run.status != "running"))
            if res.rowcount != 1:
                s.rollback()
                raise Conflict(f"run {run_id} is running; cancel it first")
            s.commit()
        if out:
            path = Path(out).resolve()
            home = self.settings.home.resolve()
            if path.is_relative_to(home) and path != home and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


# Table columns (not ORM attributes: no ORM loading), in the order of schemas.RUN_FIELDS.
RUN_COLUMNS = tuple(Run.__table__.c[name] for name in RUN_FIELDS)


def resume_refusal(run_id: int, status: str | None, config: dict[str, Any], output_dir: str | None) -> str | None:
    """Why ``POST /runs/{id}/resume`` would answer 409, or None when it would queue the run. The one rule behind
    both the resume and the ``resumable`` field of ``GET /runs/{id}``: a failed or cancelled run resumes when it
    is an evaluation (its answers are kept and reused), generates traces (the problems answered are not asked
    again), or has a training checkpoint."""
    if status not in ("failed", "cancelled"):
        return f"run {run_id} is {status}; only a failed or cancelled run can be resumed"
    if config.get("mode") in ("evaluate", "generate"):
        return None
    step = RunDir(Path(output_dir or "")).last_checkpoint_step()
    if step is None and not config.get("teacher_model"):
        return f"run {run_id} has no checkpoint to resume from"
    return None


def resumability(run: dict[str, Any]) -> dict[str, Any]:
    """The ``resumable`` and ``resume_refused`` fields of a run's JSON (see ``resume_refusal``)."""
    refusal = resume_refusal(run["id"], run.get("status"), run.get("config") or {}, run.get("output_dir"))
    return {"resumable": refusal is None, "resume_refused": refusal}


def log_lines(s: Session, run_id: int, after: int, limit: int) -> list[LogLine]:
    return list(s.scalars(select(LogLine).where(LogLine.run_id == run_id, LogLine.seq > after)
                          .order_by(LogLine.seq).limit(limit)))


def metric_points(s: Session, run_id: int) -> list[dict[str, Any]]:
    rows = s.scalars(select(MetricPoint).where(MetricPoint.run_id == run_id).order_by(MetricPoint.seq))
    return [r.data for r in rows]
