"""trackio's own dashboard at ``/trackio`` on the service's port, reading the store runs log to
(``$TRACKIO_DIR``, else ``DISTILL_HOME/trackio``: ``distill.tracking.trackio_folder``).

trackio (0.43) ships its dashboard as a Starlette app (a bundled web page and the HTTP API it reads); it is mounted
as it is. It is built on the first request, not at start: importing trackio and starting its inbox thread cost a
start that never opens it. Read-only: trackio refuses writes (log, delete, rename) without its write token, which
is never shown. With ``DISTILL_API_TOKEN`` set it asks for the token like the dashboard does (HTTP Basic, user
``admin``, the token as the password; or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import threading
from pathlib import Path
from typing import Any

from starlette.responses import PlainTextResponse

from distill.tracking import trackio_folder, trackio_store

log = logging.getLogger("distill.service")
TRACKIO_PATH = "/trackio"


class TrackioDashboard:
    """ASGI app: trackio's dashboard for the store in ``folder``, built on the first request."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.app: Any = None
        self.error = ""
        self.lock = threading.Lock()

    def _build(self) -> None:
        with self.lock:
            if self.app is not None or self.error:
                return
            try:
                from trackio.server import build_starlette_app_only
            except ImportError as e:
                self.error = f"trackio is not installed in the service's environment (pip install trackio): {e}"
                log.warning(self.error)
                return
            trackio_store(self.folder)
            self.app, _write_token = build_starlette_app_only()  # the token stays here: the page is read-only

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # trackio's page talks HTTP only (its live updates are polls and SSE)
            await send({"type": "websocket.close", "code": 1000})
            return
        if self.app is None and not self.error:
            await asyncio.to_thread(self._build)
        if self.error:
            await PlainTextResponse(self.error, status_code=503)(scope, receive, send)
            return
        # trackio keeps its folder in module constants: a run in this process (tests, CLI) may have moved them.
        trackio_store(self.folder)
        await self.app(scope, receive, send)


class TokenGuard:
    """ASGI wrapper: with ``token`` set, only requests that carry it (Bearer, or Basic with it as the password)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, (token or "").encode()

    def _allowed(self, scope: dict[str, Any]) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, value = header.partition(" ")
        given = value.strip()
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(given).decode().partition(":")[2]
            except ValueError:
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.encode(), self.token)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.token and scope["type"] == "http" and not self._allowed(scope):
            await PlainTextResponse("log in as admin with DISTILL_API_TOKEN as the password", status_code=401,
                                    headers={"WWW-Authenticate": 'Basic realm="distill"'})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def mount_trackio(app: Any, home: Path, token: str | None) -> None:
    """``/trackio``: trackio's dashboard on the store under ``home`` (DISTILL_HOME)."""
    app.mount(TRACKIO_PATH, TokenGuard(TrackioDashboard(trackio_folder(home)), token), name="trackio")
