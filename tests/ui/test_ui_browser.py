"""The dashboard in headless Chromium, against the real server (``distill serve --with-worker``, a
temp DISTILL_HOME, the tiny model).

Fill the Launch form and launch, watch the log arrive live, see curves and the evaluation once it
succeeds, find it in Runs, prompt both models in the Playground, compare, launch a benchmark job from
the Run page and read it on the Benchmarks page (leaderboard, problem by problem), cancel a second
run, get validation errors next to every bad field; a failed run's banner (a model that is not cached, the Hub
offline), thousands of log lines (written through the worker's own store), a narrow window in both
themes, login on a second server with DISTILL_API_TOKEN set, and last a restart of the server under
an open page. Screenshots go to test-artifacts/ui/; the Run page and the Playground are also copied
to docs/img/ when DISTILL_UPDATE_DOCS_IMG=1, and so is the Benchmarks page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from typing import Any

import httpx
import pytest
from ui_support import (
    API_TOKEN,
    ARTIFACTS,
    MISSING_MODEL,
    ROOT,
    RUN_TIMEOUT_S,
    TINY,
    Studio,
    ask_both_models,
    fill_number,
    open_ui,
    tab,
    wait_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


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


def test_launch_form_watch_live_and_see_evaluation(page: Any, studio: Studio) -> None:
    pg = page
    open_ui(pg, f"{studio.url}/ui/")
    fill_tiny_form(pg, "browser e2e")
    # The equivalent CLI command follows the form.
    # (Each field updates it on its own: wait for the last ones too.)
    for part in ("--model tiny-random", "--max_samples 8", "--no-general_prompts"):
        wait_text(pg, "#cli-cmd", part)
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
    assert "significant (p = " in table  # the accuracy delta with its paired test
    # The headline: the run's own suite with pass@1 and its interval.
    pg.wait_for_selector("#run-benchmarks .ds-suite[data-suite=heldout]", timeout=30_000)
    assert re.search(r"\d+\.\d% \[\d+\.\d, \d+\.\d\] → ", pg.inner_text("#run-benchmarks"))
    pg.click("#samples-acc button")  # every prompt, folded by default
    pg.wait_for_selector("#eval-samples .ds-sample")
    assert pg.locator("#eval-samples .ds-sample").count() == TINY["eval_samples"]
    assert pg.locator("#eval-samples .ds-col").count() == 2 * TINY["eval_samples"]
    assert "report.md" in pg.inner_text("#artifacts")
    assert not pg.js_errors, pg.js_errors
    run_id = int(pg.locator("#run-pick input").first.input_value().split()[0].lstrip("#"))
    studio.shared["run_id"] = run_id
    pg.screenshot(path=str(ARTIFACTS / "run_page.png"), full_page=True)
    save_doc_image("run_page.png", "run_page.png")


def test_runs_table_lists_the_run(page: Any, studio: Studio) -> None:
    rid = studio.finished_run()
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


def test_playground_streams_both_models(page: Any, studio: Studio) -> None:
    studio.finished_run()
    pg = page
    open_ui(pg, f"{studio.url}/ui/?tab=playground")
    tab(pg, "Playground")
    pg.wait_for_function("() => (document.querySelector('#pg-run input')?.value || '').startsWith('#')", timeout=20_000)
    # One of the run's evaluation prompts fills the prompt box.
    pg.locator("#pg-eval-prompt input").first.click()
    pg.locator("ul[role=listbox] li").first.click()
    pg.wait_for_function("() => document.querySelector('#pg-prompt textarea').value.length > 5")
    ask_both_models(pg, "A pen costs $2. How much do 6 pens cost?", 24)
    for side in ("#pg-base", "#pg-sft"):
        assert pg.locator(f"{side} .ds-resp").count() == 1
    assert "tok/s" in pg.inner_text("#pg-base-timing") and "tok/s" in pg.inner_text("#pg-sft-timing")
    assert not pg.locator("#pg-banner .ds-banner-error").count()
    pg.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
    save_doc_image("playground.png", "playground.png")


def test_compare_runs(page: Any, studio: Studio) -> None:
    studio.finished_run()
    open_ui(page, f"{studio.url}/ui/?tab=compare")
    tab(page, "Compare")
    page.wait_for_selector("#cmp-table table.ds-compare", timeout=20_000)
    assert "tiny-random" in page.inner_text("#cmp-table")
    page.wait_for_selector("#cmp-plot .mark-line path", timeout=20_000)


# --------------------------------------------------------------------------- benchmarks

# A suite of the user's own, in the studio's DISTILL_HOME (suite files must be inside it).
SUITE_ROWS = [{"q": "What is 2 + 2?", "a": "4"}, {"q": "What is 3 + 5?", "a": "8"}, {"q": "What is 10 - 7?", "a": "3"}]
SUITE_SPEC = "mine=mine.jsonl?problem=q&answer=a&grader=math"
JOB_TIMEOUT_S = 180


def write_suite(studio: Studio) -> None:
    (studio.home / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SUITE_ROWS))


def bench_field(pg: Any, name: str, value: Any) -> None:
    pg.locator(f"#bench-{name} input, #bench-{name} textarea").first.fill(str(value))


def test_benchmark_job_from_the_run_page(page: Any, studio: Studio) -> None:
    rid = studio.finished_run()
    write_suite(studio)
    pg = page
    open_ui(pg, f"{studio.url}/ui/?run={rid}")
    pg.wait_for_selector("#run-benchmarks .ds-suite[data-suite=heldout]", timeout=30_000)
    pg.wait_for_selector("#bench-form", state="visible")
    # An unknown suite: the error names it, under the field.
    bench_field(pg, "benchmarks", "nosuchsuite")
    pg.click("#bench-launch")
    pg.wait_for_selector("#bench-benchmarks.ds-field-error")
    assert "nosuchsuite" in pg.inner_text("#bench-benchmarks") and "marked in red" in pg.inner_text("#bench-banner")
    # Several bad fields at once: each is marked.
    bench_field(pg, "benchmarks", SUITE_SPEC)
    bench_field(pg, "num_samples", 0)
    bench_field(pg, "max_new_tokens", -1)
    pg.click("#bench-launch")
    pg.wait_for_selector("#bench-num_samples.ds-field-error")
    assert pg.locator("#bench-max_new_tokens.ds-field-error").count() == 1
    assert pg.locator("#bench-benchmarks.ds-field-error").count() == 0
    assert not studio.api.get(f"/runs/{rid}/benchmarks").json()["jobs"]  # nothing was launched
    # Launch: the job appears, runs, and its suite joins the run's results.
    bench_field(pg, "num_samples", 2)
    bench_field(pg, "max_new_tokens", 8)
    bench_field(pg, "benchmark_limit", 3)
    pg.click("#bench-launch")
    wait_text(pg, "#bench-banner", "queued")
    assert pg.locator("#bench-form .ds-field-error").count() == 0
    wait_text(pg, "#run-jobs", "succeeded", timeout=JOB_TIMEOUT_S * 1000)
    pg.wait_for_selector("#run-benchmarks .ds-suite[data-suite=mine]", timeout=30_000)
    card = pg.inner_text("#run-benchmarks .ds-suite[data-suite=mine]")
    assert "3 problems × 2 samples" in card and "pass@2" in card and "not significant" in card
    studio.shared["benchmarked"] = rid
    # The job is a run of its own: a click opens its page, which links back to the run it measures.
    pg.locator("#run-jobs a[data-open=run]").first.click()
    wait_text(pg, "#run-parent", f"run #{rid}")
    assert not pg.js_errors, pg.js_errors


def benchmarked_run(studio: Studio) -> int:
    if "benchmarked" not in studio.shared:
        rid = studio.finished_run()
        write_suite(studio)
        r = studio.api.post(f"/runs/{rid}/benchmarks", json={"benchmarks": SUITE_SPEC, "num_samples": 2,
                                                             "max_new_tokens": 8})
        assert r.status_code == 202, r.text
        studio.wait_status(r.json()["id"], {"succeeded"}, JOB_TIMEOUT_S)
        studio.shared["benchmarked"] = rid
    return studio.shared["benchmarked"]


def test_benchmarks_leaderboard_and_problem_view(page: Any, studio: Studio) -> None:
    rid = benchmarked_run(studio)
    pg = page
    open_ui(pg, f"{studio.url}/ui/?tab=benchmarks")
    cell = pg.locator(f"#bench-board tr[data-run='{rid}'] a.ds-cell[data-suite=mine]")
    cell.wait_for(timeout=20_000)
    text = cell.inner_text()
    assert re.search(r"\d+\.\d% \[\d+\.\d, \d+\.\d\] → \d+\.\d% \[\d+\.\d, \d+\.\d\]", text), text
    assert "Δ " in text and " pp" in text and "n.s." in text and "3 problems × 2" in text
    assert "not significant" in cell.locator(".ds-sig").get_attribute("title")
    assert "not significant" in pg.inner_text("#bench-board")  # the legend, in words
    # A click on the cell opens every problem, base and SFT side by side.
    cell.click()
    pg.wait_for_selector("#bench-problems .ds-problem", timeout=20_000)
    problems = pg.locator("#bench-problems .ds-problem")
    assert problems.count() == len(SUITE_ROWS)
    first = problems.first
    assert "What is 2 + 2?" in first.inner_text() and "gold answer: 4" in first.inner_text()
    assert first.locator(".ds-col").count() == 2 and first.locator(".ds-bench-sample").count() == 4
    assert first.locator(".ds-extracted .ds-mark").first.inner_text() in ("✓", "✗")
    assert "Problems 1–3 of 3" in pg.inner_text("#bench-count")
    assert "not significant" in pg.inner_text("#bench-summary")
    pg.screenshot(path=str(ARTIFACTS / "benchmarks.png"), full_page=True)
    save_doc_image("benchmarks.png", "benchmarks.png")
    # Filters: the tiny model gets nothing right, so "SFT wrong" keeps every problem.
    pg.locator("#bench-filter label", has_text="SFT wrong").click()
    wait_text(pg, "#bench-count", "(sft wrong; 3 in all)")
    assert problems.count() == len(SUITE_ROWS)
    # ?tab=benchmarks&run=ID&suite=NAME opens a result directly.
    open_ui(pg, f"{studio.url}/ui/?tab=benchmarks&run={rid}&suite=heldout")
    pg.wait_for_selector("#bench-problems .ds-problem", timeout=20_000)
    assert "heldout" in pg.inner_text("#bench-summary")
    assert pg.locator("#bench-run input").input_value().startswith(f"#{rid} ")
    assert not pg.js_errors, pg.js_errors


def test_playground_offers_trained_runs_not_their_benchmark_jobs(page: Any, studio: Studio) -> None:
    rid = benchmarked_run(studio)  # its benchmark job is now the newest succeeded run
    jobs = [r["id"] for r in studio.api.get("/runs?status=succeeded").json()["items"] if r["parent_id"] is not None]
    assert jobs
    pg = page
    open_ui(pg, f"{studio.url}/ui/?tab=playground")
    tab(pg, "Playground")
    pg.wait_for_function("() => (document.querySelector('#pg-run input')?.value || '').startsWith('#')", timeout=20_000)
    pg.locator("#pg-run input").click()
    options = [o.split("\n")[-1] for o in pg.locator("ul[role=listbox] li").all_inner_texts()]  # less the ✓ mark
    assert options and all(not o.startswith(f"#{j} ") for o in options for j in jobs), options
    assert any(o.startswith(f"#{rid} ") for o in options), options


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


def test_validation_errors_show_next_to_every_field(page: Any, studio: Studio) -> None:
    open_ui(page, f"{studio.url}/ui/")
    before = studio.api.get("/runs").json()["total"]
    fill_number(page, "epochs", 0)
    fill_number(page, "learning_rate", -1)
    fill_number(page, "benchmarks", "heldout,nosuchsuite")
    page.click("#launch-btn")
    page.wait_for_selector("#field-epochs.ds-field-error", timeout=20_000)
    assert page.locator("#field-learning_rate.ds-field-error").count() == 1
    assert page.locator("#field-benchmarks.ds-field-error").count() == 1
    assert "greater than 0" in page.inner_text("#field-epochs")
    assert "nosuchsuite" in page.inner_text("#field-benchmarks")
    assert "marked in red" in page.inner_text("#launch-banner")
    assert page.locator("#field-batch_size.ds-field-error").count() == 0
    assert studio.api.get("/runs").json()["total"] == before  # nothing was launched


# --------------------------------------------------------------------------- failures, long logs, themes

FAIL_TIMEOUT_S = 120  # a run of a model that is not cached fails at load, in seconds


def test_failed_run_shows_error_and_log_tail(page: Any, studio: Studio) -> None:
    run = studio.create_run(model=MISSING_MODEL, name="will fail")
    # Open it right away: the banner appears when the run fails under the open page.
    open_ui(page, f"{studio.url}/ui/?run={run['id']}")
    page.wait_for_selector("#run-failure .ds-failure", timeout=FAIL_TIMEOUT_S * 1000)
    run = studio.api.get(f"/runs/{run['id']}").json()
    assert run["status"] == "failed" and MISSING_MODEL in run["error"] and "\n" not in run["error"]
    text = page.inner_text("#run-failure")
    assert f"Run failed: {run['error']}" in text
    lines = studio.api.get(f"/runs/{run['id']}/logs").json()["lines"]
    assert lines and all(ln["message"] in text for ln in lines[-12:])  # the log tail, up to the error
    # The banner is at the top: above the progress bar and the log.
    y = lambda sel: page.locator(sel).bounding_box()["y"]  # noqa: E731
    assert y("#run-failure") < y("#run-progress") < y("#ds-log")
    assert not page.js_errors, page.js_errors


LOG_BURST = 3000


def test_thousands_of_log_lines_keep_the_tail(page: Any, studio: Studio) -> None:
    from backend.config import Settings
    from backend.store import Store, append_log_line
    from ui.pages.run_detail import LOG_LINES_SHOWN

    run = studio.create_run(model=MISSING_MODEL, name="chatty")
    studio.wait_status(run["id"], {"failed"}, FAIL_TIMEOUT_S)
    # Thousands of lines through the store the worker writes with, into the server's own database.
    store = Store(Settings.from_env({"DISTILL_HOME": str(studio.home)}))
    try:
        for i in range(1, LOG_BURST + 1):
            append_log_line(store, run["id"], "INFO", f"data row check {i}: ok " + "x" * 40)
    finally:
        store.engine.dispose()
    total = studio.api.get(f"/runs/{run['id']}/logs", params={"offset": LOG_BURST}).json()["next_offset"]
    assert total > LOG_BURST

    open_ui(page, f"{studio.url}/ui/?run={run['id']}")
    wait_text(page, "#ds-log", "end of log", timeout=60_000)
    log = page.inner_text("#ds-log")
    assert f"{total - LOG_LINES_SHOWN:,} earlier lines not shown" in log
    assert page.locator("#ds-log .ds-log-line").count() == LOG_LINES_SHOWN
    assert f"data row check {LOG_BURST}: ok" in log
    assert f"data row check {LOG_BURST - LOG_LINES_SHOWN}: ok" not in log
    # Following the end: the box is scrolled to the bottom.
    at_bottom = page.evaluate("() => { const b = document.querySelector('#ds-log .ds-logbox');"
                              " return b.scrollTop + b.clientHeight >= b.scrollHeight - 5; }")
    assert at_bottom
    page.screenshot(path=str(ARTIFACTS / "long_log.png"))
    t0 = time.monotonic()
    tab(page, "Runs")
    wait_text(page, "#runs-table", "chatty", timeout=10_000)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_narrow_window_and_themes(browser: Any, studio: Studio, theme: str) -> None:
    rid = studio.finished_run()
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    ctx.set_default_timeout(20_000)
    pg = ctx.new_page()
    try:
        open_ui(pg, f"{studio.url}/ui/?__theme={theme}&run={rid}")
        pg.wait_for_selector("#eval-table table.ds-metrics", timeout=60_000)
        pg.click("#samples-acc button")
        pg.wait_for_selector("#eval-samples .ds-sample")
        overflow = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 390px wide"
        dark = pg.evaluate("() => document.body.classList.contains('dark') || !!document.querySelector('.dark')")
        assert dark == (theme == "dark")
        # Good/bad marks (the deltas, each answer's ✓/✗) keep a readable color of their own in both
        # themes. The tiny model's deltas are all 0 (neutral), but its answers are marked wrong.
        sel = ", ".join(f"{area} {cls}" for area in ("#eval-table", "#eval-samples") for cls in (".ds-good", ".ds-bad"))
        colors = pg.evaluate(f"() => [...document.querySelectorAll('{sel}')].map(e => getComputedStyle(e).color)")
        text = pg.evaluate("() => getComputedStyle(document.querySelector('#eval-table table')).color")
        assert colors, "no good/bad mark in the evaluation"
        assert not set(colors) & {"rgb(0, 0, 0)", "rgb(255, 255, 255)", text}, (colors, text)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"narrow_{theme}.png"), full_page=True)
        ctx.close()


# --------------------------------------------------------------------------- a second server, with a token

def test_login_with_the_api_token(page: Any, token_studio: Studio) -> None:
    ts = token_studio
    assert httpx.get(f"{ts.url}/api/v1/runs", timeout=10).status_code == 401  # the API wants the token
    ts.create_run(name="behind auth", **TINY)  # stays queued: this server has no worker
    page.goto(f"{ts.url}/ui/")
    page.wait_for_selector("input[type=password]", timeout=30_000)
    user = page.locator("input[type=text], input:not([type])").first
    user.fill("admin")
    page.locator("input[type=password]").fill("wrong")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=/incorrect credentials/i", timeout=10_000)
    assert page.locator("#ds-tabs").count() == 0
    user.fill("admin")
    page.locator("input[type=password]").fill(API_TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_selector("#ds-tabs", timeout=30_000)
    tab(page, "Runs")
    # The API refuses calls without the bearer token: the run listed proves the dashboard sends it.
    wait_text(page, "#runs-table", "behind auth", timeout=20_000)


# --------------------------------------------------------------------------- last: a restart under an open page

def test_survives_an_api_restart(page: Any, studio: Studio) -> None:
    before = studio.create_run(model=MISSING_MODEL, name="before restart")
    open_ui(page, f"{studio.url}/ui/?tab=runs")
    wait_text(page, "#runs-table", "before restart")
    studio.wait_status(before["id"], {"failed"}, FAIL_TIMEOUT_S)  # the worker is idle: a clean stop
    # Stop the server (API, dashboard and worker) with SIGTERM; the page stays open.
    studio.terminate()
    page.click("#runs-refresh")
    # Gradio's own notice: the dashboard is served by the same process.
    page.locator("[data-testid=toast-body]", has_text=re.compile("connection", re.IGNORECASE)).first.wait_for(timeout=20_000)
    assert "Traceback" not in page.inner_text("body")
    studio.wait_stopped()
    # The same command on the same port and DISTILL_HOME; the runs are still there.
    studio.start(wait_worker=False)
    studio.create_run(model=MISSING_MODEL, name="after restart")
    wait_text(page, "#runs-table", "after restart", timeout=30_000)  # the table refreshes by itself, no reload
    assert "before restart" in page.inner_text("#runs-table")
    assert page.locator("#runs-banner .ds-banner-error").count() == 0
    assert not page.js_errors, page.js_errors
