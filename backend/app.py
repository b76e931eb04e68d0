"""The FastAPI application: REST API under /api/v1, OpenAPI at /docs.

``create_app()`` does not touch the schema: ``distill serve`` (backend.server) applies the Alembic
migrations before it serves, and tests do the same.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from importlib.metadata import entry_points

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import RedirectResponse

from backend.config import Settings, get_settings
from backend.db import get_engine, session_factory
from backend.deps import Services, require_token
from backend.errors import install_handlers
from backend.routes import (
    artifacts,
    benchmarks,
    compare,
    config,
    datasets,
    evaluation,
    exports,
    generate,
    health,
    logs,
    metrics,
    suites,
    sweeps as sweep_routes,
    traces,
    openai_api,
    runs,
)
from backend.services.datasets import DatasetService
from backend.services.dispatch import Dispatcher
from backend.services.exports import ExportService
from backend.services.maintenance import MaintenanceLoop
from backend.services.runs import RunService
from backend.services.serving import model_server
from backend.services.sweeps import SweepService
from backend.store import Store
from backend.trackio_mount import mount_trackio

log = logging.getLogger("distill.service")
API_PREFIX = "/api/v1"


def build_services(settings: Settings) -> Services:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store(settings, role="api")
    sessions = session_factory(get_engine(settings.database_url, "api"))
    dispatcher = Dispatcher(settings)
    runs = RunService(settings, sessions, dispatcher)
    sweeps = SweepService(settings, sessions, runs)
    exports = ExportService(settings, sessions, dispatcher)  # export jobs: lost ones failed, unsent ones sent
    maintenance = MaintenanceLoop(settings, store, dispatcher, also=(sweeps.advance_all, exports.maintain))
    return Services(
        settings=settings, store=store, sessions=sessions, dispatcher=dispatcher, runs=runs, sweeps=sweeps,
        datasets=DatasetService(settings, sessions),
        serving=model_server(settings),
        maintenance=maintenance,
    )


def create_app(settings: Settings | None = None, *, maintenance: bool = True) -> FastAPI:
    settings = settings or get_settings()
    svc = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if maintenance:
            svc.maintenance.start()
        if settings.preload_model:  # so that the first prompt does not wait for the weights
            threading.Thread(target=svc.serving.preload, args=(settings.preload_model,), daemon=True).start()
        try:
            yield
        finally:
            svc.maintenance.stop()
            svc.serving.close()

    app = FastAPI(
        title="Distill studio run service",
        version=health._version(),
        description="Launch reasoning-distillation runs, follow them, compare base and SFT. "
        "With DISTILL_API_TOKEN set, every endpoint but /api/v1/health needs `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.services = svc
    install_handlers(app)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(health.router)
    protected = APIRouter(dependencies=[Depends(require_token)])
    for module in (runs, benchmarks, logs, metrics, evaluation, artifacts, generate, config, datasets, traces,
                   suites, sweep_routes, compare, exports):
        protected.include_router(module.router)
    api.include_router(protected)
    app.include_router(api)
    app.include_router(openai_api.router, dependencies=[Depends(require_token)])
    mount_trackio(app, settings.home, settings.api_token)  # trackio's own dashboard, built on its first request
    return app


def mount_plugins(app: FastAPI) -> list[str]:
    """Mount the dashboard (and any other plugin) registered in the ``distill.mounts`` entry-point group;
    returns the paths they took."""
    mounted = []
    for ep in entry_points(group="distill.mounts"):
        try:
            before = {getattr(r, "path", None) for r in app.routes}
            ep.load()(app)
            new = sorted(p for p in {getattr(r, "path", None) for r in app.routes} - before if p)
            mounted.append(next((p for p in new if p != "/"), new[0] if new else ep.name))
        except Exception as e:  # noqa: BLE001 - the API serves without the plugin
            log.warning("could not mount %s (%s): %s", ep.name, ep.value, e)
    if not any(getattr(r, "path", None) in ("", "/") for r in app.routes):
        app.add_api_route("/", lambda: RedirectResponse("/docs"), include_in_schema=False)
    return mounted
