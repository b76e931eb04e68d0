"""trackio's own dashboard on the service's port (``/trackio``): a real tracked tiny run, then the real service app
on a real port answers with trackio's page, trackio's own client lists the project and the run through it, and
Chromium shows the run from the Run page's link (trackio's page renders its data client side)."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from ui_support import free_port

from distill.config import build_config
from distill.pipeline import run_pipeline
from distill.tracking import read_tracking

TOKEN = "trackio-test-token-7d2e"
# tests/conftest.py's tiny run, smaller: a few seconds of training on the tiny random model.
TINY_TRACKED_RUN = {"model": "tiny-random", "max_samples": 6, "epochs": 1, "batch_size": 2, "gradient_accumulation": 2,
                    "eval_samples": 2, "val_ratio": 0.0, "general_prompts": False, "max_new_tokens": 12,
                    "max_seq_length": 256, "report_to": "trackio"}


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on a free loopback port (uvicorn in a thread), its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A tiny run tracked in trackio under a fresh DISTILL_HOME; the service app (token-protected) serving it."""
    pytest.importorskip("trackio")
    from backend.app import create_app
    from backend.config import Settings

    home = tmp_path_factory.mktemp("distill_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_HOME", str(home))
        mp.delenv("TRACKIO_DIR", raising=False)
        out = run_pipeline(build_config(TINY_TRACKED_RUN | {"output_dir": str(home / "runs" / "run_1")})).output_dir
        info = read_tracking(out)
        app = create_app(Settings.from_env({"DISTILL_HOME": str(home), "DISTILL_API_TOKEN": TOKEN}),
                         maintenance=False)
        with serving(app) as url:
            yield {"url": url, "tracking": info, "run": info["trackers"]["trackio"]["run"]}


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def test_trackio_dashboard_is_served_with_the_run_listed(tracked):
    from trackio.remote_client import RemoteClient

    url, run = tracked["url"], tracked["run"]
    assert httpx.get(f"{url}/trackio/").status_code == 401  # the service's token guards it like the API
    assert httpx.get(f"{url}/trackio/", headers=_basic("wrong")).status_code == 401
    page = httpx.get(f"{url}/trackio", headers=_basic(TOKEN), follow_redirects=True)
    assert page.status_code == 200 and str(page.url) == f"{url}/trackio/"
    # trackio's own page, told that it lives under /trackio (its assets and API calls are prefixed with it).
    assert 'window.__trackio_base = "/trackio"' in page.text and 'src="/trackio/assets/' in page.text

    # (httpx's auth: trackio 0.43's client passes its own headers beside httpx_kwargs' in its version check.)
    client = RemoteClient(f"{url}/trackio/", httpx_kwargs={"auth": ("admin", TOKEN)})
    assert client.predict(api_name="get_all_projects") == ["distill"]
    assert [r["name"] for r in client.predict("distill", api_name="get_runs_for_project")] == [run]
    assert "train/loss" in client.predict("distill", run, api_name="get_metrics_for_run")
    # Read-only: trackio refuses a delete without its write token, which the service never shows.
    with pytest.raises(httpx.HTTPStatusError):
        client.predict("distill", run, api_name="delete_run")
    assert [r["name"] for r in client.predict("distill", api_name="get_runs_for_project")] == [run]


@pytest.mark.browser
def test_run_page_link_opens_the_run_in_trackio(tracked, page):
    from ui.pages.run_detail_view import tracking_html

    html = tracking_html({"id": 1, "tracking": tracked["tracking"]})
    link = html.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert link == f"/trackio/?project=distill&runs={tracked['run']}"
    page.context.set_extra_http_headers(_basic(TOKEN))
    page.goto(tracked["url"] + link)
    # trackio's page fetches the runs and draws the selected one's curves in the browser: the project chosen, the
    # run ticked, a section per metric prefix ("train (7)": train/loss, train/ce, ...; "heldout (22)").
    page.get_by_text(tracked["run"]).first.wait_for(state="visible", timeout=30_000)
    assert page.get_by_label(tracked["run"]).is_checked()
    page.get_by_text(re.compile(r"^train \(\d+\)$")).wait_for(state="visible", timeout=30_000)
    page.get_by_text(re.compile(r"^heldout \(\d+\)$")).wait_for(state="visible", timeout=30_000)
    assert page.js_errors == []
