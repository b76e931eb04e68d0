"""/health: database, broker, workers seen (with their GPUs), the runs busy on this machine, version.
Never needs the token."""

from __future__ import annotations

import socket
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from backend.deps import Services, services
from backend.schemas import HealthOut, iso
from backend.tables import Run, Worker, worker_seen_since
from distill.errors import first_line

router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("distill-studio")
    except PackageNotFoundError:
        return "unknown"


def worker_host(name: str | None) -> str:
    """The machine in a Celery worker name (``distill@host``, ``distill-gpu0@host``)."""
    return (name or "").rpartition("@")[2]


def local_runs(s: Session) -> list[dict[str, object]]:
    """Running runs whose worker is on this API's machine: they share its cores (or GPU) with the
    models this process serves (Playground, /v1), so answers come slower while they run."""
    here = socket.gethostname()
    rows = s.execute(select(Run.id, Run.stage, Run.worker).where(Run.status == "running").order_by(Run.id))
    return [{"id": rid, "stage": stage, "worker": w} for rid, stage, w in rows if worker_host(w) == here]


@router.get("/health", response_model=HealthOut)
def health(svc: Services = Depends(services)) -> JSONResponse:
    workers, busy = [], []
    try:
        with svc.sessions() as s:
            s.execute(text("SELECT 1"))
            cutoff = worker_seen_since()
            for w in s.scalars(select(Worker).where(Worker.last_seen >= cutoff, Worker.state == "online")
                               .order_by(Worker.name)):
                gpus = (w.gpus or {}).get("visible") or []
                workers.append({"name": w.name, "gpus": list(gpus), "last_seen": iso(w.last_seen),
                                "engine": (w.gpus or {}).get("engine")})
            busy = local_runs(s)
        database = "ok"
    except Exception as e:  # noqa: BLE001
        database = f"error: {first_line(e)}"
    broker = svc.dispatcher.health()
    ok = database == "ok" and broker == "ok"
    body = HealthOut(status="ok" if ok else "degraded", database=database, broker=broker,
                     workers=workers, local_runs=busy, version=_version(), serving=svc.serving.loaded())
    return JSONResponse(body.model_dump(), status_code=200 if database == "ok" else 503)
