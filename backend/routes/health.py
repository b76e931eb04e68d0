"""/health: database, broker, workers seen (with their GPUs), version. Never needs the token."""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import select, text

from backend.deps import Services, services
from backend.schemas import HealthOut, iso
from backend.tables import Worker, utcnow

router = APIRouter(tags=["health"])
WORKER_SEEN_S = 60


def _version() -> str:
    try:
        return version("distill-studio")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", response_model=HealthOut)
def health(svc: Services = Depends(services)) -> JSONResponse:
    workers = []
    try:
        with svc.sessions() as s:
            s.execute(text("SELECT 1"))
            cutoff = utcnow() - timedelta(seconds=WORKER_SEEN_S)
            for w in s.scalars(select(Worker).where(Worker.last_seen >= cutoff, Worker.state == "online")
                               .order_by(Worker.name)):
                gpus = (w.gpus or {}).get("visible") or []
                workers.append({"name": w.name, "gpus": list(gpus), "last_seen": iso(w.last_seen),
                                "engine": (w.gpus or {}).get("engine")})
        database = "ok"
    except Exception as e:  # noqa: BLE001
        database = f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    broker = svc.dispatcher.health()
    ok = database == "ok" and broker == "ok"
    body = HealthOut(status="ok" if ok else "degraded", database=database, broker=broker,
                     workers=workers, version=_version(), serving=svc.serving.loaded())
    return JSONResponse(body.model_dump(), status_code=200 if database == "ok" else 503)
