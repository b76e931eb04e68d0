"""The newcomer's path on the Run page, in a real browser: the buttons follow the run's state (a finished run
cannot be cancelled, a benchmark job's "Prompt both models" opens the run it measures), Cancel asks first, a
benchmark job from an uploaded file of problems, artifact sizes that follow a live run, counts in words that
agree with their number.

One finished run, one benchmark job on it (launched from the browser), one newer trained run (so that the
Playground's default is not the job's parent by chance) and one long run to cancel serve every test."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from ui_support import TINY, Studio, open_ui, wait_text

FINISHED = {"succeeded", "failed", "cancelled"}
RUN_S = 300
PROBLEMS = [{"problem": "What is 2 + 3?", "answer": "5"}, {"problem": "What is 4 * 5?", "answer": "20"},
            {"problem": "What is 9 - 7?", "answer": "2"}]


@pytest.fixture(scope="module")
def finished(studio: Studio) -> dict[str, Any]:
    run = studio.create_run(name="newcomer finished", **TINY)
    return studio.wait_status(run["id"], {"succeeded"}, RUN_S)


@pytest.fixture(scope="module")
def job(studio: Studio, finished: dict[str, Any]) -> dict[str, Any]:
    """A finished benchmark job on ``finished``: the one the upload test launched, else one asked of the API."""
    jid = studio.shared.get("newcomer_job")
    if jid is None:
        r = studio.api.post(f"/runs/{finished['id']}/benchmarks", json={"benchmarks": "heldout"})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
    return studio.wait_status(jid, FINISHED, RUN_S)


@pytest.fixture(scope="module")
def live(studio: Studio) -> dict[str, Any]:
    """A run long enough to be seen running (many rows, many epochs); the cancel test stops it."""
    return studio.create_run(name="newcomer live", **dict(TINY, max_samples=400, epochs=20, eval_samples=1))


def open_run(pg: Any, studio: Studio, rid: int, status: str) -> None:
    open_ui(pg, f"{studio.url}/ui/?run={rid}")
    wait_text(pg, "#run-progress", status, timeout=RUN_S * 1000)


def wait_stage(studio: Studio, rid: int, stage: str) -> None:
    deadline = time.monotonic() + RUN_S
    while studio.api.get(f"/runs/{rid}").json().get("stage") != stage:
        assert time.monotonic() < deadline, f"run {rid} never reached stage {stage}"
        time.sleep(0.25)


def button(pg: Any, elem_id: str) -> Any:
    return pg.locator(f"button#{elem_id}")


def expect_enabled(pg: Any, **buttons: bool) -> None:
    """Each button enabled (True) or disabled (False), as the page settles."""
    from playwright.sync_api import expect

    for elem_id, enabled in buttons.items():
        loc = button(pg, elem_id.replace("_", "-"))
        (expect(loc).to_be_enabled if enabled else expect(loc).to_be_disabled)(timeout=15_000)


# --------------------------------------------------------------------------- A: buttons follow the state

def test_finished_run_cannot_be_cancelled_or_resumed(page: Any, studio: Studio, finished: dict[str, Any]) -> None:
    open_run(page, studio, finished["id"], "succeeded")
    expect_enabled(page, run_cancel=False, run_resume=False, run_playground=True)


# --------------------------------------------------------------------------- C: a benchmark job from an uploaded file

def test_benchmark_job_from_an_uploaded_file(page: Any, studio: Studio, finished: dict[str, Any],
                                             tmp_path: Path) -> None:
    pg = page
    open_run(pg, studio, finished["id"], "succeeded")
    pg.wait_for_selector("#bench-form", state="visible")
    field = pg.locator("#bench-benchmarks textarea, #bench-benchmarks input").first
    assert field.get_attribute("placeholder") == "heldout"  # works here: no hub, no file needed
    wait_text(pg, "#bench-suites", "Available here")
    suites = pg.inner_text("#bench-suites")
    assert "heldout" in suites and re.search(r"Not here:.*gsm8k", suites), suites  # the hub is offline here
    path = tmp_path / "arith3.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    with pg.expect_file_chooser() as chooser:
        button(pg, "bench-upload").click()
    chooser.value.set_files(str(path))
    wait_text(pg, "#bench-banner", "3 problems")
    entry = field.input_value()
    assert entry.startswith("arith3=") and entry.endswith("arith3.jsonl"), entry
    assert "arith3=" in pg.inner_text("#bench-suites")  # now listed as available
    pg.click("#bench-launch")
    wait_text(pg, "#bench-banner", "queued")
    banner = pg.inner_text("#bench-banner")
    assert "above" in banner and "below" not in banner, banner
    jid = int(re.search(r"#(\d+)", banner).group(1))
    studio.shared["newcomer_job"] = jid
    wait_text(pg, "#run-jobs", f"#{jid}")
    assert studio.wait_status(jid, FINISHED, RUN_S)["status"] == "succeeded"
    pg.wait_for_selector("#run-benchmarks .ds-suite[data-suite=arith3]", timeout=30_000)
    card = pg.inner_text("#run-benchmarks .ds-suite[data-suite=arith3]")
    # D: counts agree with their number ("1 sample", never "1 samples").
    assert "3 problems × 1 sample ·" in card, card


def test_benchmark_job_prompts_its_parent_run(page: Any, studio: Studio, finished: dict[str, Any],
                                              job: dict[str, Any]) -> None:
    # A newer trained run: the Playground's default choice, which a job's id used to fall back to.
    newer = studio.create_run(name="newcomer newer", mode="train", **TINY)
    studio.wait_status(newer["id"], {"succeeded"}, RUN_S)
    pg = page
    open_run(pg, studio, job["id"], "succeeded")
    expect_enabled(pg, run_cancel=False, run_resume=False, run_playground=True)
    button(pg, "run-playground").click()
    pg.wait_for_function("(p) => (document.querySelector('#pg-run input')?.value || '').startsWith(p)",
                         arg=f"#{finished['id']} ", timeout=20_000)


# --------------------------------------------------------------------------- D: live artifact sizes

def test_artifact_sizes_follow_a_live_run(page: Any, studio: Studio, live: dict[str, Any]) -> None:
    pg = page
    open_run(pg, studio, live["id"], "running")
    wait_stage(studio, live["id"], "train")
    wait_text(pg, "#artifacts", ".log", timeout=60_000)
    pg.wait_for_timeout(3000)  # the page has settled: a change from now on is the poll's doing
    before = pg.inner_text("#artifacts table")  # the table only: a poll's "processing" overlay is text too
    # Sizes change while the run is still running (metrics.jsonl grows as it trains; one render updates both).
    pg.wait_for_function("(b) => document.querySelector('#artifacts table').innerText !== b && "
                         "!!document.querySelector('#run-progress [data-status=running]')", arg=before, timeout=60_000)
    # D: counts agree with their number in the log too (its one held-out problem).
    wait_text(pg, "#ds-log", "Suite heldout: 1 problem (")


# --------------------------------------------------------------------------- A + B: Cancel asks first

def test_cancel_asks_first_then_resume_is_offered(page: Any, studio: Studio, live: dict[str, Any]) -> None:
    pg, rid = page, live["id"]
    open_run(pg, studio, rid, "running")
    expect_enabled(pg, run_cancel=True, run_resume=False, run_playground=False)  # no trained model yet
    # The reader says no: the run goes on.
    pg.evaluate("() => { window.__confirm = window.confirm; "
                "window.confirm = (m) => { window.__asked = m; return false; }; }")
    button(pg, "run-cancel").click()
    pg.wait_for_function("() => !!window.__asked")
    assert f"Cancel run #{rid}?" in pg.evaluate("() => window.__asked")
    pg.wait_for_timeout(3000)
    assert studio.api.get(f"/runs/{rid}").json()["status"] == "running"
    assert "cancelled" not in pg.inner_text("#run-progress")
    # The reader says yes (the fixture accepts the browser's dialog): cancelled, and Resume is offered.
    pg.evaluate("() => { window.confirm = window.__confirm; }")
    asked: list[str] = []
    pg.on("dialog", lambda d: asked.append(d.message))
    button(pg, "run-cancel").click()
    wait_text(pg, "#run-progress", "cancelled", timeout=90_000)
    assert asked and f"Cancel run #{rid}?" in asked[0], asked
    expect_enabled(pg, run_cancel=False, run_resume=True, run_playground=False)
