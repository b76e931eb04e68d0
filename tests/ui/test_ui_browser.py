"""The dashboard in headless Chromium.

Against the real server (``distill serve --with-worker``, the tiny model): fill the Launch form and
launch, watch the log arrive live, see curves and the evaluation once it succeeds, find it in Runs,
prompt both models in the Playground, compare, cancel a second run, and get validation errors next
to the fields. Against the fake API: a failed run's banner, thousands of log lines, an API restart,
login with the token, and a narrow dark window. Screenshots go to test-artifacts/ui/; the Run page
and the Playground are also copied to docs/img/ when DISTILL_UPDATE_DOCS_IMG=1.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import pytest
from ui_support import ARTIFACTS, ROOT, TINY, FakeStudio, Studio

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
RUN_TIMEOUT_S = 240  # a tiny run takes ~40 s on 2 busy cores; leave room


def open_ui(pg: Any, url: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("#ds-tabs", state="visible", timeout=30_000)
    pg.wait_for_function("() => document.querySelector('#ds-health')?.innerText.includes('API')", timeout=20_000)


def tab(pg: Any, name: str) -> None:
    pg.get_by_role("tab", name=name, exact=True).click()


def fill_number(pg: Any, field: str, value: Any) -> None:
    pg.locator(f"#field-{field} input, #field-{field} textarea").first.fill(str(value))


def fill_tiny_form(pg: Any, name: str) -> None:
    pg.locator("#field-name textarea, #field-name input").first.fill(name)
    model = pg.locator("#field-model input").first
    model.click()
    model.fill(TINY["model"])
    model.press("Enter")
    for f in ("max_samples", "epochs", "batch_size", "gradient_accumulation", "eval_samples", "max_new_tokens",
              "max_seq_length"):
        fill_number(pg, f, TINY[f])
    pg.locator("#field-general_prompts input[type=checkbox]").uncheck()


def status_text(pg: Any) -> str:
    return pg.inner_text("#run-progress")


def log_line_count(pg: Any) -> int:
    return pg.locator("#ds-log .ds-log-line").count()


def save_doc_image(name: str, shot: str) -> None:
    if os.environ.get("DISTILL_UPDATE_DOCS_IMG") == "1":
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / shot, ROOT / "docs" / "img" / name)


# --------------------------------------------------------------------------- real server

@pytest.mark.slow
def test_launch_form_watch_live_and_see_evaluation(page: Any, studio: Studio) -> None:
    pg = page
    open_ui(pg, f"{studio.url}/ui/")
    fill_tiny_form(pg, "browser e2e")
    # The equivalent CLI command follows the form.
    pg.wait_for_function("() => document.querySelector('#cli-cmd').innerText.includes('--model tiny-random')")
    cli = pg.inner_text("#cli-cmd")
    assert "--no-general_prompts" in cli and "--max_samples 8" in cli
    assert "/api/v1/runs" in pg.inner_text("#curl-cmd")
    pg.click("#launch-btn")

    # The run page opens and streams the log while the run is still going.
    pg.wait_for_function("() => document.querySelector('#tab-run')?.offsetParent !== null")
    pg.wait_for_selector("#ds-log .ds-log-line", timeout=60_000)
    samples: list[tuple[str, int]] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        st = status_text(pg)
        samples.append((st, log_line_count(pg)))
        if "succeeded" in st or "failed" in st or "cancelled" in st:
            break
        time.sleep(0.5)
    final = status_text(pg)
    assert "succeeded" in final, f"run did not succeed: {final}\n{pg.inner_text('#ds-log')[-2000:]}"
    live = [n for st, n in samples if "running" in st or "queued" in st]
    assert live and max(live) > 0, "no log line arrived while the run was going"
    assert len(set(live)) > 1, "the log did not grow while the run was going"

    # Curves, then the evaluation: metrics base vs SFT and every prompt side by side.
    pg.wait_for_selector("#plot-loss .mark-line path", timeout=30_000)
    pg.wait_for_selector("#eval-table table.ds-metrics", timeout=30_000)
    table = pg.inner_text("#eval-table")
    assert "Accuracy" in table and "Base" in table and "SFT" in table and "Δ" in table
    assert pg.locator("#eval-samples .ds-sample").count() == TINY["eval_samples"]
    assert pg.locator("#eval-samples .ds-col").count() == 2 * TINY["eval_samples"]
    assert "report.md" in pg.inner_text("#artifacts")
    assert not pg.js_errors, pg.js_errors
    run_id = int(pg.locator("#run-pick input").first.input_value().split()[0].lstrip("#"))
    studio.shared["run_id"] = run_id
    pg.screenshot(path=str(ARTIFACTS / "run_page.png"), full_page=True)
    save_doc_image("run_page.png", "run_page.png")


def finished_run(studio: Studio) -> int:
    if "run_id" not in studio.shared:
        run = studio.create_run(name="tiny for ui", **TINY)
        studio.wait_status(run["id"], {"succeeded"}, RUN_TIMEOUT_S)
        studio.shared["run_id"] = run["id"]
    return studio.shared["run_id"]


@pytest.mark.slow
def test_runs_table_lists_the_run(page: Any, studio: Studio) -> None:
    rid = finished_run(studio)
    open_ui(page, f"{studio.url}/ui/?tab=runs")
    rows = "#runs-table .virtual-row"  # Gradio's dataframe draws its rows as a virtual grid
    page.wait_for_function(f"() => [...document.querySelectorAll('{rows}')]"
                           f".some(r => r.innerText.includes('succeeded') && r.innerText.trim().startsWith('{rid}'))",
                           timeout=20_000)
    row = page.locator(rows, has_text="succeeded").first
    assert "tiny-random" in row.inner_text() and "100%" in row.inner_text()
    # Filter by status, then select the row and open it.
    page.locator("#runs-status label", has_text="failed").click()
    page.wait_for_function("() => !document.querySelector('#runs-table').innerText.includes('succeeded')")
    page.locator("#runs-status label", has_text="all").click()
    page.locator(rows, has_text="succeeded").first.locator("[role=gridcell]").first.click()
    page.wait_for_function("() => document.querySelector('#runs-selected input, #runs-selected textarea').value !== ''")
    page.click("#runs-open")
    page.wait_for_selector("#eval-table table.ds-metrics", timeout=30_000)


@pytest.mark.slow
def test_playground_streams_both_models(page: Any, studio: Studio) -> None:
    finished_run(studio)
    pg = page
    open_ui(pg, f"{studio.url}/ui/?tab=playground")
    tab(pg, "Playground")
    pg.wait_for_function("() => (document.querySelector('#pg-run input')?.value || '').startsWith('#')", timeout=20_000)
    # One of the run's evaluation prompts fills the prompt box.
    pg.locator("#pg-eval-prompt input").first.click()
    pg.locator("ul[role=listbox] li").first.click()
    pg.wait_for_function("() => document.querySelector('#pg-prompt textarea').value.length > 5")
    pg.locator("#pg-prompt textarea").fill("A pen costs $2. How much do 6 pens cost?")
    pg.locator("#pg-max-new input[type=number]").fill("24")
    pg.locator("#pg-max-new input[type=number]").press("Enter")
    pg.click("#pg-send")
    pg.wait_for_function("() => ['#pg-base-timing', '#pg-sft-timing'].every("
                         "s => document.querySelector(s).innerText.includes('tokens in'))", timeout=180_000)
    for side in ("#pg-base", "#pg-sft"):
        assert pg.locator(f"{side} .ds-resp").count() == 1
    assert "tok/s" in pg.inner_text("#pg-base-timing") and "tok/s" in pg.inner_text("#pg-sft-timing")
    assert not pg.locator("#pg-banner .ds-banner-error").count()
    pg.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
    save_doc_image("playground.png", "playground.png")


@pytest.mark.slow
def test_compare_runs(page: Any, studio: Studio) -> None:
    finished_run(studio)
    open_ui(page, f"{studio.url}/ui/?tab=compare")
    tab(page, "Compare")
    page.wait_for_selector("#cmp-table table.ds-compare", timeout=20_000)
    assert "tiny-random" in page.inner_text("#cmp-table")
    page.wait_for_selector("#cmp-plot .mark-line path", timeout=20_000)


@pytest.mark.slow
def test_cancel_a_second_run(page: Any, studio: Studio) -> None:
    # Long enough to be caught while training: many rows, several epochs.
    run = studio.create_run(name="to cancel", **dict(TINY, max_samples=400, epochs=20, eval_samples=1))
    open_ui(page, f"{studio.url}/ui/?run={run['id']}")
    page.wait_for_function("() => document.querySelector('#run-progress').innerText.includes('running')",
                           timeout=120_000)
    page.click("#run-cancel")
    page.wait_for_function("() => document.querySelector('#run-progress').innerText.includes('cancelled')",
                           timeout=90_000)
    assert studio.api.get(f"/runs/{run['id']}").json()["status"] == "cancelled"
    page.wait_for_function("() => document.querySelector('#ds-log').innerText.includes('end of log')", timeout=30_000)


@pytest.mark.slow
def test_validation_errors_show_next_to_the_field(page: Any, studio: Studio) -> None:
    open_ui(page, f"{studio.url}/ui/")
    before = studio.api.get("/runs").json()["total"]
    fill_number(page, "epochs", 0)
    fill_number(page, "learning_rate", -1)
    page.click("#launch-btn")
    page.wait_for_selector("#field-epochs.ds-field-error", timeout=20_000)
    assert page.locator("#field-learning_rate.ds-field-error").count() == 1
    assert "greater than 0" in page.inner_text("#field-epochs")
    assert "marked in red" in page.inner_text("#launch-banner")
    assert page.locator("#field-batch_size.ds-field-error").count() == 0
    assert studio.api.get("/runs").json()["total"] == before  # nothing was launched


# --------------------------------------------------------------------------- fake API

def test_failed_run_shows_error_and_log_tail(fake_studio: Any, page: Any) -> None:
    fs: FakeStudio = fake_studio()
    run = fs.create_run(model="broken-model", name="will fail")
    open_ui(page, f"{fs.url}/?run={run['id']}")
    page.wait_for_selector("#run-failure .ds-failure", timeout=30_000)
    text = page.inner_text("#run-failure")
    assert "Run failed: OSError: broken-model is not a model on the hub" in text
    assert "trying to load shard 29" in text  # the log tail
    # The banner is at the top: above the progress bar and the log.
    y = lambda sel: page.locator(sel).bounding_box()["y"]  # noqa: E731
    assert y("#run-failure") < y("#run-progress") < y("#ds-log")


def test_thousands_of_log_lines_keep_the_tail(fake_studio: Any, page: Any) -> None:
    fs: FakeStudio = fake_studio(log_burst=5000)
    run = fs.create_run(name="chatty")
    open_ui(page, f"{fs.url}/?run={run['id']}")
    page.wait_for_function("() => document.querySelector('#ds-log').innerText.includes('end of log')", timeout=60_000)
    assert "earlier lines not shown" in page.inner_text("#ds-log")
    assert page.locator("#ds-log .ds-log-line").count() == 400
    assert "done: accuracy" in page.inner_text("#ds-log")
    # Following the end: the box is scrolled to the bottom.
    at_bottom = page.evaluate("() => { const b = document.querySelector('#ds-log .ds-logbox');"
                              " return b.scrollTop + b.clientHeight >= b.scrollHeight - 5; }")
    assert at_bottom
    t0 = time.monotonic()
    tab(page, "Runs")
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('chatty')", timeout=10_000)
    assert time.monotonic() - t0 < 10


def test_survives_an_api_restart(fake_studio: Any, page: Any) -> None:
    fs: FakeStudio = fake_studio()
    fs.create_run(name="before restart")
    open_ui(page, f"{fs.url}/?tab=runs")
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('before restart')")
    fs.api_server.stop()
    page.click("#runs-refresh")
    page.wait_for_selector("#runs-banner .ds-banner-error", timeout=15_000)
    msg = page.inner_text("#runs-banner")
    assert "cannot reach the API" in msg and "Traceback" not in msg
    fs.api_server.start()  # a new, empty fake: the API is back
    fs.create_run(name="after restart")
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('after restart')",
                           timeout=20_000)  # the table refreshes by itself
    assert page.locator("#runs-banner .ds-banner-error").count() == 0


def test_login_with_the_api_token(fake_studio: Any, page: Any) -> None:
    fs: FakeStudio = fake_studio(token="s3cret-token")
    fs.create_run(name="behind auth")
    page.goto(fs.url)
    page.wait_for_selector("input[type=password]", timeout=30_000)
    page.locator("input[type=text], input:not([type])").first.fill("admin")
    page.locator("input[type=password]").fill("wrong")
    page.keyboard.press("Enter")
    page.wait_for_timeout(1000)
    assert page.locator("#ds-tabs").count() == 0
    page.locator("input[type=text], input:not([type])").first.fill("admin")
    page.locator("input[type=password]").fill("s3cret-token")
    page.keyboard.press("Enter")
    page.wait_for_selector("#ds-tabs", timeout=30_000)
    tab(page, "Runs")
    # The fake API refuses calls without the bearer token: the run listed proves it was passed on.
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('behind auth')",
                           timeout=20_000)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_narrow_window_and_themes(browser: Any, fake_studio: Any, theme: str) -> None:
    fs: FakeStudio = fake_studio()
    run = fs.create_run(name="narrow")
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    pg = ctx.new_page()
    try:
        open_ui(pg, f"{fs.url}/?__theme={theme}&run={run['id']}")
        pg.wait_for_selector("#eval-table table.ds-metrics", timeout=60_000)
        overflow = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 390px wide"
        dark = pg.evaluate("() => document.body.classList.contains('dark') || !!document.querySelector('.dark')")
        assert dark == (theme == "dark")
        # Deltas keep a readable color in both themes (not the default text color).
        color = pg.evaluate("() => getComputedStyle(document.querySelector('#eval-table .ds-good')).color")
        assert color not in ("rgb(0, 0, 0)", "rgb(255, 255, 255)")
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"narrow_{theme}.png"), full_page=True)
        ctx.close()
