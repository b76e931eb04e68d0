"""Shared FastAPI dependencies: the service container and the bearer-token check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from collections.abc import Iterator

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


# ``services`` and ``require_token`` are coroutines: they do no I/O, and a plain ``def`` dependency would cost
# a thread hop per request.
async def services(request: Request) -> Services:
    return request.app.state.services


def session(svc: Services = Depends(services)) -> Iterator[Session]:
    """A database session for a (sync) route. A plain ``def``: FastAPI runs it, and its ``close()`` (which returns
    the connection to the pool, rolling back on the wire), in the thread pool, never on the event loop, which a
    slow database would otherwise hold up for every stream."""
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
