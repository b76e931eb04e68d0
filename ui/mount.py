"""Mount the dashboard at ``/ui`` in the service's own FastAPI app (a ``distill.mounts`` entry point).

The dashboard still talks to the API over HTTP, on the same server: ``DISTILL_API_URL``, or
``http://127.0.0.1:$PORT`` (``PORT`` default 8000). With ``DISTILL_API_TOKEN`` set, the dashboard
asks for a login (user ``admin``, or any name, with the token as the password) and sends the
token to the API.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gradio as gr
import httpx
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from ui.app import build_dashboard, launch_kwargs

MOUNT_PATH = "/ui"
AUTH_MESSAGE = ("This dashboard is protected by the API token. Log in as <b>admin</b> "
                "with the value of <code>DISTILL_API_TOKEN</code> as the password.")


def token_auth(token: str) -> Callable[[str, str], bool]:
    """Gradio auth: any user name (``admin`` by convention) with the API token as the password."""
    expected = token.encode()

    def check(username: str, password: str) -> bool:
        return bool(username) and hmac.compare_digest((password or "").encode(), expected)

    return check


def api_url_from_env() -> str:
    url = os.environ.get("DISTILL_API_URL", "").strip()
    if url:
        return url.rstrip("/")
    return f"http://127.0.0.1:{os.environ.get('PORT', '8000').strip() or '8000'}"


class LearnServerAddress:
    """ASGI middleware: on the first request, point the dashboard's API clients at the address this
    server actually answers on (the server may have been started with ``--port`` rather than ``$PORT``)."""

    def __init__(self, app: Any, ctx: Any) -> None:
        self.app, self.ctx, self.done = app, ctx, False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self.done and scope.get("type") in ("http", "websocket") and scope.get("server"):
            self.done = True
            host, port = scope["server"][0], scope["server"][1]
            if port:
                host = "127.0.0.1" if host in ("0.0.0.0", "", None) else host
                host = f"[{host}]" if ":" in str(host) and not str(host).startswith("[") else host
                url = f"{scope.get('scheme', 'http')}://{host}:{port}"
                self.ctx.api.base_url = self.ctx.aapi.base_url = url
                if self.ctx.public_api_url == self.ctx.api_url:
                    self.ctx.public_api_url = url
                self.ctx.api_url = url
        await self.app(scope, receive, send)


class InProcess(httpx.BaseTransport):
    """HTTP requests answered by ``app`` itself, in this process. While the app is being built the server
    is not listening yet, but the API's routes are there: the form's schema comes from them, through
    the same HTTP interface as everything else."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def _send(self, request: httpx.Request) -> httpx.Response:
        resp = await httpx.ASGITransport(app=self.app).handle_async_request(request)
        body = await resp.aread()
        return httpx.Response(resp.status_code, headers=resp.headers, content=body, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # A first call builds the app's middleware stack, after which Starlette refuses add_middleware
        # (this module adds one, the service may add more): let the first real request build it again.
        unbuilt = getattr(self.app, "middleware_stack", None) is None
        try:
            # Its own event loop in its own thread: the caller may be running one already.
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, self._send(request)).result()
        finally:
            if unbuilt:
                self.app.middleware_stack = None


def mount_dashboard(app: FastAPI) -> None:
    """``gr.mount_gradio_app(app, dashboard, path="/ui")`` against this same server's API; ``/`` redirects to it."""
    same_server = not os.environ.get("DISTILL_API_URL", "").strip()
    api_url = api_url_from_env()
    token = os.environ.get("DISTILL_API_TOKEN") or None
    blocks = build_dashboard(api_url, token, public_api_url=os.environ.get("DISTILL_PUBLIC_URL") or api_url,
                             link_base="" if same_server else api_url,
                             schema_transport=InProcess(app) if same_server else None)
    gr.mount_gradio_app(app, blocks, path=MOUNT_PATH, auth=token_auth(token) if token else None,
                        auth_message=AUTH_MESSAGE if token else None, run_history=False, show_error=True,
                        **launch_kwargs())
    if same_server:
        app.add_middleware(LearnServerAddress, ctx=blocks.ds_ctx)  # type: ignore[attr-defined]
    if not any(getattr(r, "path", None) in ("", "/") for r in app.routes):
        app.add_api_route("/", lambda: RedirectResponse(f"{MOUNT_PATH}/"), include_in_schema=False)
