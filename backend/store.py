"""What a worker writes to the database: claims, stage/progress, log lines, metric points,
heartbeats and the final status with the evaluation.

Every write is conditional on the run still being this attempt's (``task_id``) and ``running``,
so a worker that was declared lost, or whose run was deleted, cannot overwrite what the API
decided. The worker imports this module; the API never imports the worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db import get_engine, session_factory
from backend.tables import (
    BenchmarkResult,
    Evaluation,
    LogLine,
    MetricPoint,
    Run,
    Worker,
    utcnow,
)
from distill.evaluation.results import load
from distill.rundir import RunDir


@dataclass
class Claim:
    run_id: int
    task_id: str
    config: dict[str, Any]
    output_dir: str
    attempt: int
    next_log_seq: int
    next_metric_seq: int
    worker: str
    parent_id: int | None = None


def summary_of(evaluation: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the run list shows: the per-model summaries, their deltas and each suite's block (from any version of
    evaluation_results: ``distill.evaluation.results.load``)."""
    if not evaluation:
        return None
    evaluation = load(evaluation)
    if "summary" not in evaluation:
        return None
    summary = evaluation["summary"]
    return {"base": summary.get("base"), "sft": summary.get("sft"), "deltas": evaluation.get("deltas"),
            "accuracy_test": evaluation.get("accuracy_test"), "benchmarks": evaluation.get("benchmarks") or {}}


def _benchmark_rows(claim: Claim, evaluation: dict[str, Any], now: Any) -> list[BenchmarkResult]:
    samples = evaluation.get("benchmark_samples") or {}
    return [BenchmarkResult(run_id=claim.parent_id or claim.run_id, job_id=claim.run_id, suite=name, summary=block,
                            samples={"records": samples.get(name, [])}, created_at=now)
            for name, block in (evaluation.get("benchmarks") or {}).items()]


class Store:
    def __init__(self, settings: Settings, role: str = "worker"):
        self.settings = settings
        self.engine = get_engine(settings.database_url, role)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)

    # --- claim ---------------------------------------------------------------------------------
    def claim(self, run_id: int, task_id: str, worker: str) -> Claim | None:
        """Take a queued run for this message; None when the message is stale (run cancelled,
        deleted, already taken, or re-sent with another task id)."""
        now = utcnow()
        with self.sessions() as s:
            res = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "queued", Run.task_id == task_id,
                       Run.cancel_requested.is_(False))
                .values(status="running", worker=worker, started_at=func.coalesce(Run.started_at, now),
                        heartbeat_at=now, attempts=Run.attempts + 1, error=None, finished_at=None,
                        stage=None, eta_s=None)
            )
            if res.rowcount != 1:
                s.rollback()
                return None
            run = s.get(Run, run_id)
            assert run is not None
            log_seq = s.scalar(select(func.max(LogLine.seq)).where(LogLine.run_id == run_id)) or 0
            metric_seq = s.scalar(select(func.max(MetricPoint.seq)).where(MetricPoint.run_id == run_id)) or 0
            s.commit()
            return Claim(run_id=run_id, task_id=task_id, config=dict(run.config), output_dir=run.output_dir or "",
                         attempt=run.attempts, next_log_seq=log_seq + 1, next_metric_seq=metric_seq + 1,
                         worker=worker, parent_id=run.parent_id)

    # --- progress ------------------------------------------------------------------------------
    def record(
        self,
        claim: Claim,
        logs: list[dict[str, Any]] | None = None,
        metrics: list[dict[str, Any]] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Append log lines / metric points and update run fields in one transaction.
        False when the run is no longer this attempt's (nothing is written then)."""
        with self.sessions() as s:
            values = dict(fields or {})
            values["heartbeat_at"] = utcnow()
            res = s.execute(update(Run).where(Run.id == claim.run_id, Run.task_id == claim.task_id,
                                              Run.status == "running").values(**values))
            if res.rowcount != 1:
                s.rollback()
                return False
            if logs:
                s.execute(insert(LogLine), [dict(run_id=claim.run_id, **line) for line in logs])
            if metrics:
                s.execute(insert(MetricPoint), [dict(run_id=claim.run_id, **m) for m in metrics])
            s.commit()
            return True

    def heartbeat(self, claim: Claim) -> str:
        """'ok', 'cancel' (a cancel was requested) or 'lost' (the run is no longer this attempt's)."""
        with self.sessions() as s:
            res = s.execute(update(Run).where(Run.id == claim.run_id, Run.task_id == claim.task_id,
                                              Run.status == "running").values(heartbeat_at=utcnow()))
            if res.rowcount != 1:
                s.rollback()
                return "lost"
            cancel = s.scalar(select(Run.cancel_requested).where(Run.id == claim.run_id))
            s.commit()
            return "cancel" if cancel else "ok"

    def finish(self, claim: Claim, status: str, error: str | None = None,
               evaluation: dict[str, Any] | None = None) -> bool:
        now = utcnow()
        with self.sessions() as s:
            values: dict[str, Any] = {"status": status, "error": error, "finished_at": now, "eta_s": None,
                                      "heartbeat_at": now}
            if status == "succeeded":
                values["progress"] = 1.0
            if evaluation is not None:
                evaluation = load(evaluation)  # a file of any version is stored as the current one
                values["summary"] = summary_of(evaluation)
            res = s.execute(update(Run).where(Run.id == claim.run_id, Run.task_id == claim.task_id,
                                              Run.status == "running").values(**values))
            if res.rowcount != 1:
                s.rollback()
                return False
            if evaluation is not None:
                # Each problem's answers go to benchmark_results; the run's evaluation row stays small.
                stored = {k: v for k, v in evaluation.items() if k != "benchmark_samples"}
                existing = s.get(Evaluation, claim.run_id)
                if existing is None:
                    s.add(Evaluation(run_id=claim.run_id, results=stored, created_at=now))
                else:
                    existing.results, existing.created_at = stored, now
                s.execute(delete(BenchmarkResult).where(BenchmarkResult.job_id == claim.run_id))
                s.add_all(_benchmark_rows(claim, evaluation, now))
            s.commit()
            return True

    # --- workers ---------------------------------------------------------------------------------
    def worker_seen(self, name: str, gpus: dict[str, Any] | None, state: str = "online") -> None:
        now = utcnow()
        with self.sessions() as s:
            w = s.get(Worker, name)
            if w is None:
                s.add(Worker(name=name, gpus=gpus, pid=os.getpid(), started_at=now, last_seen=now, state=state))
            else:
                w.gpus, w.pid, w.last_seen, w.state = gpus, os.getpid(), now, state
            s.commit()

    def worker_started(self, name: str, gpus: dict[str, Any] | None) -> None:
        now = utcnow()
        with self.sessions() as s:
            w = s.get(Worker, name) or Worker(name=name)
            w.gpus, w.pid, w.started_at, w.last_seen, w.state = gpus, os.getpid(), now, now, "online"
            s.merge(w)
            s.commit()


def append_log_line(store: Store, run_id: int, level: str, message: str, ts: datetime | None = None) -> None:
    """One line after the fact (e.g. by the API's reaper), with the next sequence number."""
    with store.sessions() as s:
        seq = (s.scalar(select(func.max(LogLine.seq)).where(LogLine.run_id == run_id)) or 0) + 1
        s.add(LogLine(run_id=run_id, seq=seq, ts=ts or utcnow(), level=level, message=message))
        s.commit()


def append_to_run_log_file(output_dir: str, line: str) -> None:
    """The run folder's own log file gets the closing line too (the pipeline has detached by then)."""
    try:
        path = RunDir(Path(output_dir)).log
        if path.parent.is_dir():
            with path.open("a") as f:
                f.write(line.rstrip("\n") + "\n")
    except OSError:
        pass
