"""Mount the dashboard at ``/ui`` in the service's own FastAPI app (a ``distill.mounts`` entry point).

The dashboard still talks to the API over HTTP, on the same server: ``DISTILL_API_URL``, or
``http://127.0.0.1:$PORT`` (``PORT`` default 8000). With ``DISTILL_API_TOKEN`` set, the dashboard
asks for a login (user ``admin``, or any name, with the token as the password) and sends the
token to the API.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

import gradio as gr
from fastapi import FastAPI

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


def mount_dashboard(app: FastAPI) -> None:
    """``gr.mount_gradio_app(app, dashboard, path="/ui")`` against this same server's API."""
    same_server = not os.environ.get("DISTILL_API_URL", "").strip()
    api_url = api_url_from_env()
    token = os.environ.get("DISTILL_API_TOKEN") or None
    # The API is not listening yet while the app is being built: the form schema comes from the
    # installed core package (the same code the API serves it from).
    blocks = build_dashboard(api_url, token, public_api_url=os.environ.get("DISTILL_PUBLIC_URL") or api_url,
                             link_base="" if same_server else api_url, fetch_schema=not same_server)
    gr.mount_gradio_app(app, blocks, path=MOUNT_PATH, auth=token_auth(token) if token else None,
                        auth_message=AUTH_MESSAGE if token else None, run_history=False, show_error=True,
                        **launch_kwargs())
