"""Sweeps on the service: every point validated before anything is queued, then queued as ordinary runs linked to
the sweep, at most ``max_parallel`` at once (the maintenance loop queues the next point when one ends); cancel
cancels the sweep's runs, resume continues the unfinished ones. The table and verdict are read from the runs'
folders by the core (``distill.sweep.results``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.errors import Conflict, FieldError, NotFound
from backend.services.runs import RunService, resolved
from backend.tables import TERMINAL, Run, Sweep, utcnow
from distill.config import ConfigError, RunConfig
from distill.rundir import RunDir
from distill.sweep.plan import Point, SweepError, SweepSpec, plan
from distill.sweep.results import config_diff, judge, objective_of, point_row


def planned(sessions: sessionmaker[Session], settings: Settings, spec: SweepSpec) -> list[Point]:
    """The points, each validated under the service's rules (uploads, paths inside DISTILL_HOME), or a 422 with
    one entry per problem (an axis, or a point naming its field)."""
    def resolve(values: dict[str, Any]) -> RunConfig:
        try:
            return resolved(s, settings, values)
        except FieldError as e:
            raise ConfigError(str(e), e.issues) from None

    with sessions() as s:
        try:
            return plan(spec, resolve=resolve)
        except SweepError as e:
            raise FieldError.of([("", p) for p in e.problems]) from None


def _point_json(p: Point) -> dict[str, Any]:
    return {"name": p.name, "overrides": p.overrides, "merged": p.merged, "config": p.config.to_json()}


def _point(d: dict[str, Any]) -> Point:
    return Point(d["name"], d["overrides"], RunConfig.model_validate(d["config"]), d["merged"])


class SweepService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], runs: RunService):
        self.settings, self.sessions, self.runs = settings, sessions, runs
        # advance() runs from requests and from the maintenance loop: one at a time, or a point could be queued twice.
        self._advancing = threading.Lock()

    def create(self, spec: SweepSpec, name: str | None = None) -> Sweep:
        points = planned(self.sessions, self.settings, spec)
        with self.sessions() as s:
            sweep = Sweep(name=name, spec=spec.model_dump(), points=[_point_json(p) for p in points],
                          status="running", created_at=utcnow())
            s.add(sweep)
            s.flush()
            sweep.name = name or f"sweep-{sweep.id}"
            s.commit()
            sweep_id = sweep.id
        self.advance(sweep_id)
        return self.get(sweep_id)

    def get(self, sweep_id: int) -> Sweep:
        with self.sessions() as s:
            sweep = s.get(Sweep, sweep_id)
            if sweep is None:
                raise NotFound(f"sweep {sweep_id} not found")
            s.expunge(sweep)
            return sweep

    def newest_first(self) -> list[Sweep]:
        with self.sessions() as s:
            sweeps = list(s.scalars(select(Sweep).order_by(Sweep.id.desc())))
            s.expunge_all()
            return sweeps

    @staticmethod
    def runs_of(s: Session, sweep: Sweep) -> dict[str, Run]:
        """Point name → its run (the newest, should a point have been queued again)."""
        rows = s.scalars(select(Run).where(Run.sweep_id == sweep.id).order_by(Run.id))
        return {(r.name or "").removeprefix(f"{sweep.name}: "): r for r in rows}

    def advance(self, sweep_id: int) -> list[int]:
        """Queue the next points while fewer than ``max_parallel`` of the sweep's runs are active; a sweep whose
        points all ended is finished. Returns the runs queued."""
        with self._advancing:
            return self._advance(sweep_id)

    def _advance(self, sweep_id: int) -> list[int]:
        sweep = self.get(sweep_id)
        if sweep.status != "running":
            return []
        with self.sessions() as s:
            by_point = self.runs_of(s, sweep)
            active = sum(r.status not in TERMINAL for r in by_point.values())
        queued: list[int] = []
        for p in sweep.points:
            if active >= int(sweep.spec.get("max_parallel", 1)):
                break
            if p["name"] not in by_point:
                config = RunConfig.model_validate({**p["config"], "name": f"{sweep.name}: {p['name']}",
                                                   "base_answers_dir": str(self.settings.home / "sweeps" /
                                                                           f"sweep_{sweep_id}" / "base_answers")})
                queued.append(self.runs.create(config, sweep_id=sweep_id).id)
                active += 1
        if not queued and active == 0 and len(by_point) == len(sweep.points):
            with self.sessions() as s:
                row = s.get(Sweep, sweep_id)
                row.status, row.finished_at = "finished", utcnow()
                s.commit()
        return queued

    def advance_all(self) -> None:
        with self.sessions() as s:
            ids = list(s.scalars(select(Sweep.id).where(Sweep.status == "running")))
        for sweep_id in ids:
            self.advance(sweep_id)

    def cancel(self, sweep_id: int) -> Sweep:
        sweep = self.get(sweep_id)
        if sweep.status != "running":
            raise Conflict(f"sweep {sweep_id} is {sweep.status}; only a running sweep can be cancelled")
        with self.sessions() as s:
            row = s.get(Sweep, sweep_id)
            row.status, row.finished_at = "cancelled", utcnow()
            s.commit()
            active = [r.id for r in self.runs_of(s, sweep).values() if r.status not in TERMINAL]
        for run_id in active:
            try:
                self.runs.cancel(run_id)
            except Conflict:  # it ended meanwhile
                pass
        return self.get(sweep_id)

    def resume(self, sweep_id: int) -> Sweep:
        """Failed and cancelled points continue (from a checkpoint, or answers kept) or start again; finished
        points are not run again."""
        sweep = self.get(sweep_id)
        if sweep.status == "running":
            raise Conflict(f"sweep {sweep_id} is running")
        with self.sessions() as s:
            stopped = [(r.id, r.output_dir) for r in self.runs_of(s, sweep).values()
                       if r.status in ("failed", "cancelled")]
            row = s.get(Sweep, sweep_id)
            row.status, row.finished_at = "running", None
            s.commit()
        for run_id, folder in stopped:
            if folder and RunDir(Path(folder)).last_checkpoint_step() is not None:
                self.runs.resume(run_id)
            else:  # nothing kept to continue from: the point is queued afresh by advance()
                self.runs.delete(run_id)
        self.advance(sweep_id)
        return self.get(sweep_id)

    def summary(self, sweep: Sweep) -> dict[str, Any]:
        """The table (one row per point, with its run), the verdict on the finished points, the config diff."""
        points = [_point(p) for p in sweep.points]
        suite, metric = objective_of(sweep.spec.get("objective"), points[0].config.benchmarks if points else [])
        with self.sessions() as s:
            by_point = {name: (r.id, r.status, r.output_dir) for name, r in self.runs_of(s, sweep).items()}
        rows, folders = [], {}
        for p in points:
            run_id, status, folder = by_point.get(p.name, (None, "pending", None))
            folders[p.name] = Path(folder or self.settings.home / "none")
            row = point_row(p, folders[p.name], suite, metric)
            rows.append({**row, "run_id": run_id, "status": status if row["status"] != "done" else "done"})
        done = [p for p in points if by_point.get(p.name, (0, ""))[1] == "succeeded"]
        return {"objective": {"suite": suite, "metric": metric}, "points": rows,
                "verdict": judge(done, folders, suite, points[0].config.num_samples if points else 1),
                "diff": config_diff(points)}
