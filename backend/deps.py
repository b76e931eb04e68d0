"""Shared FastAPI dependencies: the service container and the bearer-token check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.services.datasets import DatasetService
from backend.services.dispatch import Dispatcher
from backend.services.maintenance import MaintenanceLoop
from backend.services.runs import RunService
from backend.services.serving import ModelServer
from backend.services.sweeps import SweepService
from backend.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    sessions: sessionmaker[Session]
    dispatcher: Dispatcher
    runs: RunService
    datasets: DatasetService
    serving: ModelServer
    maintenance: MaintenanceLoop
    sweeps: SweepService


# The dependencies are coroutines: they do no I/O (a Session connects on first use, in the
# endpoint's worker thread), and a plain ``def`` dependency would cost a thread hop per request.
async def services(request: Request) -> Services:
    return request.app.state.services


async def session(svc: Services = Depends(services)) -> Any:
    s = svc.sessions()
    try:
        yield s
    finally:
        s.close()


_bearer = HTTPBearer(auto_error=False)


async def require_token(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    token = request.app.state.services.settings.api_token
    if not token:
        return
    given = creds.credentials if creds is not None and creds.scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
