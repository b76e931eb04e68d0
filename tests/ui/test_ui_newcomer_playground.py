"""The newcomer's path, in headless Chromium against the real server (``distill serve --with-worker``):
the footer links the service's REST API (not Gradio's internal endpoints); the Playground says when a run
shares the machine (answers are slower then) and shows Stop only while answers stream; and ``make run``
stopped with Ctrl-C ends without a make error."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest
from ui_support import (
    ARTIFACTS,
    ROOT,
    RUN_TIMEOUT_S,
    TINY,
    Studio,
    ask_both_models,
    free_port,
    open_ui,
    server_env,
    tab,
    wait_http,
    wait_text,
)

from backend.routes.health import worker_host
from ui.pages.playground import busy_text

# Long enough to be seen running from the Playground (about a minute on 2 busy cores), short enough to finish.
BUSY_RUN = dict(TINY, max_samples=64, epochs=2)


def open_playground(pg: Any, studio: Studio) -> None:
    open_ui(pg, f"{studio.url}/ui/?tab=playground")
    tab(pg, "Playground")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_footer_links_the_rest_api_docs(page: Any, studio: Studio) -> None:
    pg = page
    open_ui(pg, f"{studio.url}/ui/")
    link = pg.get_by_role("link", name="REST API (/docs)")
    href = link.get_attribute("href") or ""
    assert href.endswith("/docs"), href
    # It opens FastAPI's page of the service's endpoints.
    docs = httpx.get(httpx.URL(pg.url).join(href), timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # Gradio's "Use via API" (its internal /lambda_N endpoints, and the API recorder) is gone from the footer.
    footer = pg.locator("footer").first.inner_text().strip()
    assert "Use via API" not in footer and "API" not in footer, footer
    assert not footer.startswith("·"), footer  # no divider left over before "Settings"
    assert not pg.get_by_text("Use via API").count()
    assert not pg.js_errors, pg.js_errors


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_playground_says_when_a_run_shares_the_machine(page: Any, studio: Studio) -> None:
    run = studio.create_run(name="busy machine", **BUSY_RUN)
    rid = run["id"]
    studio.wait_status(rid, {"running"}, 120)
    pg = page
    open_playground(pg, studio)
    wait_text(pg, "#pg-busy", f"Run #{rid} ", timeout=20_000)
    line = pg.inner_text("#pg-busy")
    assert "on this machine" in line and "slower" in line, line
    assert pg.locator("#pg-busy").bounding_box()["y"] < pg.locator("#pg-prompt").bounding_box()["y"]
    pg.screenshot(path=str(ARTIFACTS / "playground_busy.png"), full_page=True)
    # Once the run ends, the next poll takes the line away (the page is left open).
    studio.wait_status(rid, {"succeeded"}, RUN_TIMEOUT_S)
    studio.shared.setdefault("run_id", rid)
    pg.wait_for_function("(t) => !(document.querySelector('#pg-busy')?.innerText || '').includes(t)",
                         arg=f"Run #{rid} ", timeout=20_000)
    assert not pg.js_errors, pg.js_errors


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_playground_stop_shows_only_while_answers_stream(page: Any, studio: Studio) -> None:
    studio.finished_run()
    pg = page
    open_playground(pg, studio)
    pg.wait_for_function("() => (document.querySelector('#pg-run input')?.value || '').startsWith('#')")
    stop = pg.locator("#pg-stop")
    assert not stop.is_visible(), "a red Stop button while nothing is generating"
    ask_both_models(pg, "Count from one to one thousand.", 2048, wait=False)
    stop.wait_for(state="visible", timeout=30_000)
    pg.screenshot(path=str(ARTIFACTS / "playground_streaming.png"), full_page=True)
    stop.click()
    stop.wait_for(state="hidden", timeout=10_000)
    # A short answer that ends by itself hides it too.
    ask_both_models(pg, "Count from one to one thousand.", 8)
    stop.wait_for(state="hidden", timeout=10_000)
    assert not pg.js_errors, pg.js_errors


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_make_run_ctrl_c_ends_without_a_make_error(tmp_path: Any) -> None:
    """Ctrl-C signals the whole foreground group (make and the server): make must not report the server's exit as an error."""
    port = free_port()
    env = server_env(tmp_path, port)
    # -o: never rebuild the venv from a test (the stamp is taken as up to date).
    proc = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health", 120, lambda r: r.status_code == 200, proc)
        time.sleep(2)  # the worker is starting: Ctrl-C lands while everything is up
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "distill: worker stopped" in out, out[-3000:]
    assert not re.search(r"^make(\[\d+\])?: \*\*\*", out, re.M), out[-3000:]  # "make: *** [Makefile:N: run] Error 143"
    # make itself dies of the SIGINT it got (as any program interrupted at a terminal); it reports no failure.
    assert proc.returncode in (0, -signal.SIGINT), proc.returncode


def test_busy_line_names_the_runs_and_what_they_do() -> None:
    assert busy_text([]) == ""
    assert busy_text([{"id": 7, "stage": "train"}]).startswith("Run #7 is training on this machine")
    assert busy_text([{"id": 7, "stage": None}]).startswith("Run #7 is running on this machine")
    assert busy_text([{"id": 7, "stage": "evaluate"}, {"id": 9}]).startswith("Runs #7, #9 are running")


def test_worker_host_is_the_machine_in_a_celery_name() -> None:
    assert worker_host("distill@box") == "box" and worker_host("distill-gpu0_1@gpu-7") == "gpu-7"
    assert worker_host(None) == "" and worker_host("plain") == "plain"
