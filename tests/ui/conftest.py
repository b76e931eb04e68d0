"""Fixtures of the dashboard's browser tests: headless Chromium (Debian's package, no download),
the real server started as ``make run`` starts it, and an in-memory fake API for the situations the
real service makes slow or hard to reach. Every browser test saves a screenshot under
``test-artifacts/ui/``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    VIEWPORT,
    FakeStudio,
    Studio,
    ThreadServer,
    free_port,
    wait_http,
)

# --------------------------------------------------------------------------- browser

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an event loop in this thread while it runs.
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test_setup.sh installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page at 1280×800; its screenshot is saved after the test (pass or fail)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(20_000)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: d.accept())
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    except Exception:  # noqa: BLE001 - a screenshot must not hide the test's own result
        pass
    ctx.close()


# --------------------------------------------------------------------------- the real server

@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """``distill serve --with-worker`` (what ``make run`` starts) on a free port with a temp DISTILL_HOME."""
    if not (ROOT / "backend" / "server.py").exists():
        pytest.skip("backend/server.py is not there yet")
    home = tmp_path_factory.mktemp("distill_home")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DISTILL_API_URL", "DISTILL_API_TOKEN")}
    env.update(DISTILL_HOME=str(home), PORT=str(port), PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", "--with-worker", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v1/health", 120, lambda r: r.status_code == 200, proc)
        wait_http(f"{url}/ui/", 60, lambda r: r.status_code == 200, proc)
        try:  # runs stay queued until the worker is up; waiting here keeps the tests' timings honest
            wait_http(f"{url}/api/v1/health", 90, lambda r: bool(r.json().get("workers")), proc)
        except TimeoutError:
            pass
        yield Studio(url, home, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# --------------------------------------------------------------------------- the fake API + a standalone dashboard

@pytest.fixture
def fake_studio() -> Iterator[Callable[..., FakeStudio]]:
    """``make(token=None, log_burst=0)``: the fake API and the dashboard (``python -m ui`` style) in this process."""
    started: list[tuple[ThreadServer, Any]] = []

    def make(token: str | None = None, log_burst: int = 0) -> FakeStudio:
        from ui_fake_api import create_app
        from ui.app import build_dashboard, launch_kwargs
        from ui.mount import AUTH_MESSAGE, token_auth

        api = ThreadServer(create_app(token=token, log_burst=log_burst, step_s=0.2), free_port())
        api.start()
        api_url = f"http://127.0.0.1:{api.port}"
        demo = build_dashboard(api_url, token, link_base=None if token else api_url)
        ui_port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=ui_port, prevent_thread_lock=True, quiet=True,
                    auth=token_auth(token) if token else None, auth_message=AUTH_MESSAGE if token else None,
                    run_history=False, **launch_kwargs())
        started.append((api, demo))
        return FakeStudio(api, f"http://127.0.0.1:{ui_port}", token)

    yield make
    for api, demo in started:
        demo.close()
        api.stop()
