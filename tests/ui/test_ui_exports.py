"""The Run page's Export panel in a real browser: on a finished run the Export button queues a job through the API,
the panel shows its progress and log, then lists the GGUF file as a download link that the browser's own request
fetches; on a run without a model of its own (a benchmark job) the button stays disabled; a run that finishes while
its page is open enables the button by itself, and a live export job can be cancelled from the panel."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from ui_support import ARTIFACTS, RUN_TIMEOUT_S, TINY, Studio, open_ui, wait_text

from distill.export.gguf import converter_dir, describe

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not (converter_dir() / "convert_hf_to_gguf.py").is_file(),
    reason="llama.cpp's converter is not installed: make setup installs it")]
JOB_MS = 180_000


def test_export_button_runs_a_job_and_lists_the_gguf(page: Any, studio: Studio, tmp_path) -> None:
    from playwright.sync_api import expect

    # A run of its own: the shared finished run may have been exported by another test already.
    rid = studio.create_run(name="tiny to export", **TINY)["id"]
    studio.wait_status(rid, {"succeeded"}, RUN_TIMEOUT_S)
    open_ui(page, f"{studio.url}/ui/?run={rid}")
    wait_text(page, "#exports", "No exports yet", timeout=60_000)
    button = page.locator("button#export-btn")
    expect(button).to_be_enabled(timeout=20_000)
    page.locator("#export-quants").get_by_label("q8_0", exact=True).check()  # f16 is ticked already
    button.click()
    wait_text(page, "#export-banner", "queued", timeout=20_000)
    # The job's own line in the panel: its status badge and then its log, as the worker reports them.
    wait_text(page, "#export-job", "export job #", timeout=20_000)
    wait_text(page, "#export-job", "Converting", timeout=JOB_MS)
    wait_text(page, "#export-job", "succeeded", timeout=JOB_MS)
    wait_text(page, "#exports .ds-exports", "MOSTLY_Q8_0", timeout=30_000)
    job = studio.api.get(f"/runs/{rid}/exports").json()["jobs"][0]
    assert job["status"] == "succeeded" and job["request"]["quants"] == ["f16", "q8_0"]
    links = page.locator("#exports .ds-exports a[download]")
    names = sorted(a.split(" (")[0] for a in links.all_inner_texts())
    assert [n.rsplit("-", 1)[1] for n in names] == ["f16.gguf", "q8_0.gguf"], names
    href = links.filter(has_text="f16.gguf").get_attribute("href")
    got = httpx.get(urljoin(page.url, href), timeout=60)  # as the browser resolves it
    assert got.status_code == 200
    (tmp_path / "f16.gguf").write_bytes(got.content)
    assert describe(tmp_path / "f16.gguf")["file_type"] == "MOSTLY_F16"
    assert not page.js_errors, page.js_errors


def test_export_button_is_disabled_for_a_benchmark_job(page: Any, studio: Studio) -> None:
    from playwright.sync_api import expect

    rid = studio.finished_run()
    r = studio.api.post(f"/runs/{rid}/benchmarks", json={"benchmarks": "heldout", "benchmark_limit": 1,
                                                        "max_new_tokens": 4})
    assert r.status_code == 202, r.text
    open_ui(page, f"{studio.url}/ui/?run={r.json()['id']}")
    wait_text(page, "#export-job", "A benchmark job has no model of its own", timeout=60_000)
    expect(page.locator("button#export-btn")).to_be_disabled()
    refused = studio.api.post(f"/runs/{r.json()['id']}/exports", json={"to": "gguf"})
    assert refused.status_code == 409 and "is a benchmark job" in refused.json()["detail"]  # what the button spares


def test_export_follows_the_run_and_a_live_job_can_be_cancelled(page: Any, studio: Studio) -> None:
    """A run that finishes while its page is open can be exported without Refresh; an export job waiting for the
    worker shows a Cancel button, which (after the same confirm() as the run's Cancel) cancels it."""
    from playwright.sync_api import expect

    run = studio.create_run(name="exported once it succeeds", **TINY)
    open_ui(page, f"{studio.url}/ui/?run={run['id']}")
    button, cancel = page.locator("button#export-btn"), page.locator("button#export-cancel")
    wait_text(page, "#export-job", "A run can be exported once it has succeeded", timeout=60_000)
    expect(button).to_be_disabled()
    expect(cancel).to_be_hidden()
    wait_text(page, "#run-progress", "succeeded", timeout=RUN_TIMEOUT_S * 1000)
    expect(button).to_be_enabled(timeout=20_000)  # no Refresh, no re-pick
    expect(page.locator("#export-job")).not_to_contain_text("once it has succeeded")

    # The worker takes one task at a time: while it trains another run, the export job stays queued.
    busy = studio.create_run(name="keeps the worker busy", **TINY)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))  # the fixture accepts it
    try:
        studio.wait_status(busy["id"], {"running"}, RUN_TIMEOUT_S)
        button.click()
        wait_text(page, "#export-banner", "queued", timeout=20_000)
        job_id = studio.api.get(f"/runs/{run['id']}/exports").json()["jobs"][0]["id"]
        wait_text(page, "#export-job", f"export job #{job_id}")
        wait_text(page, "#export-job", "waiting for a worker")
        expect(cancel).to_be_visible(timeout=20_000)
        page.locator("#export-acc").screenshot(path=str(ARTIFACTS / "export_panel_live_job.png"))
        cancel.click()
        wait_text(page, "#export-banner", f"Export job #{job_id} cancelled", timeout=20_000)
        wait_text(page, "#export-job .ds-badge", "cancelled")
        expect(cancel).to_be_hidden()
        assert dialogs and dialogs[-1].startswith(f"Cancel export job #{job_id}?"), dialogs
        assert studio.api.get(f"/export-jobs/{job_id}").json()["status"] == "cancelled"
        assert not page.js_errors, page.js_errors
    finally:
        studio.api.post(f"/runs/{busy['id']}/cancel")  # free the worker for the next tests
