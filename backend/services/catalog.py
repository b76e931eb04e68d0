"""Which models the service serves, under which ids, and who generates for them.

Ids: ``run-N`` is run N's SFT model (its adapter, or its full weights), ``run-N:base`` its base, and
a base model is also served under its own id (``smollm2-135m``, a hub id, a folder). Generation
happens in the API process (:class:`~backend.services.serving.ModelServer`) unless a worker
advertises an engine (``distill worker --engine-url URL`` or ``--engine vllm``): then the
Playground and new benchmark jobs go there, as OpenAI-compatible requests.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.services.serving import BASE_SUFFIX, Served, not_found
from backend.tables import Run, Worker, worker_seen_since
from distill.config import EMBEDDED_MODEL
from distill.rundir import RunDir, model_kind

_RUN_ID = re.compile(r"^run-(\d+)(:base)?$")


def sft_model_of(run: Run) -> Path | None:
    """The model that answers as "sft" for a run: the one it trained, or the one it evaluated."""
    cfg = run.config or {}
    if cfg.get("mode") == "evaluate" and cfg.get("sft_model_path"):
        path = Path(cfg["sft_model_path"])
        return path if model_kind(path) else None
    return RunDir(Path(run.output_dir)).sft_model() if run.output_dir else None


def served_for(run: Run) -> Served | None:
    """Run ``run``'s SFT model, or None while it has none."""
    path = sft_model_of(run)
    if path is None:
        return None
    cfg = run.config or {}
    version = max((p.stat().st_mtime for p in path.iterdir() if p.is_file()), default=0.0)
    return Served(id=f"run-{run.id}", base=str(cfg.get("model", EMBEDDED_MODEL)), kind=model_kind(path) or "full",
                  path=path, run_id=run.id, trust_remote_code=bool(cfg.get("trust_remote_code")), version=version)


def base_of(run: Run) -> Served:
    cfg = run.config or {}
    return Served(id=f"run-{run.id}{BASE_SUFFIX}", base=str(cfg.get("model", EMBEDDED_MODEL)), kind="base",
                  run_id=run.id, trust_remote_code=bool(cfg.get("trust_remote_code")))


def resolve(s: Session, model_id: str) -> Served:
    """The model an id names; NotFound naming it otherwise."""
    m = _RUN_ID.match(model_id)
    if m:
        run = s.get(Run, int(m.group(1)))
        served = served_for(run) if run is not None and run.parent_id is None else None
        if served is None:
            raise not_found(model_id)
        return base_of(run) if m.group(2) else served
    if model_id in base_ids(s):
        return Served(id=model_id, base=model_id, kind="base")
    raise not_found(model_id)


def runs_with_models(s: Session) -> list[tuple[Run, Served]]:
    runs = s.scalars(select(Run).where(Run.parent_id.is_(None), Run.status.in_(("succeeded", "failed", "cancelled")))
                     .order_by(Run.id.desc()))
    return [(run, served) for run in runs if (served := served_for(run)) is not None]


def base_ids(s: Session) -> list[str]:
    bases = {str((run.config or {}).get("model", EMBEDDED_MODEL)) for run, _ in runs_with_models(s)}
    return sorted(bases | {EMBEDDED_MODEL})


def engine_for(s: Session, run: Run) -> dict | None:
    """The engine an online worker advertises (``{"url", "kind", "base"?}``) that serves ``run``'s models:
    a generic OpenAI-compatible server serves every run; a vLLM worker, the LoRA runs on its base."""
    served = served_for(run)
    if served is None:
        return None
    recent = worker_seen_since()
    for w in s.scalars(select(Worker).where(Worker.state == "online", Worker.last_seen >= recent)
                       .order_by(Worker.last_seen.desc())):
        engine = (w.gpus or {}).get("engine") or {}
        if engine.get("url") and (not engine.get("base") or (engine["base"] == served.base and served.kind == "adapter")):
            return dict(engine, worker=w.name)
    return None
