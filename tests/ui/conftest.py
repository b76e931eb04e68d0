"""Fixtures of the dashboard's browser tests: headless Chromium (Debian's package, no download) and
the real server started as ``make run`` starts it (``distill serve --with-worker``, a temp
DISTILL_HOME), plus a second real server with DISTILL_API_TOKEN set for the login. Every browser
test saves a screenshot under ``test-artifacts/ui/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import API_TOKEN, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, VIEWPORT, Studio, free_port

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


# --------------------------------------------------------------------------- the real servers

def _serve(tmp_path_factory: pytest.TempPathFactory, **kw: Any) -> Iterator[Studio]:
    if not (ROOT / "backend" / "server.py").exists():
        pytest.skip("backend/server.py is not there yet")
    studio = Studio(tmp_path_factory.mktemp("distill_home"), free_port(), **kw)
    try:
        studio.start()
        yield studio
    finally:
        studio.close()


@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """``distill serve --with-worker`` (what ``make run`` starts) on a free port with a temp DISTILL_HOME."""
    yield from _serve(tmp_path_factory)


@pytest.fixture(scope="module")
def token_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """A second real server, with DISTILL_API_TOKEN set (no worker: nothing needs to run there)."""
    yield from _serve(tmp_path_factory, with_worker=False, token=API_TOKEN, log_name="server_token.log")
