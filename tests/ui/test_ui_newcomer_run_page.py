"""The Run page, in a real browser: Resume only when there is something to resume (a run stopped before any
checkpoint says so on the button), and the step axis of a short run labels whole steps only."""

from __future__ import annotations

from typing import Any

import pytest
from ui_support import MISSING_MODEL, TINY, Studio, open_ui, wait_text

pytestmark = pytest.mark.browser

RUN_S = 400  # a busy machine can hold a tiny run queued for minutes
X_LABELS = "g.role-axis[aria-label^='X-axis'] .role-axis-label text"


def open_run(pg: Any, studio: Studio, rid: int, status: str) -> None:
    open_ui(pg, f"{studio.url}/ui/?run={rid}")
    wait_text(pg, "#run-progress", status, timeout=RUN_S * 1000)


def test_a_run_without_a_checkpoint_cannot_be_resumed(page: Any, studio: Studio) -> None:
    from playwright.sync_api import expect

    run = studio.create_run(name="stops at load", **dict(TINY, model=MISSING_MODEL))
    run = studio.wait_status(run["id"], {"failed"}, RUN_S)
    assert run["resumable"] is False and "no checkpoint" in run["resume_refused"]
    open_run(page, studio, run["id"], "failed")
    resume = page.locator("button#run-resume")
    expect(resume).to_be_disabled(timeout=15_000)
    expect(resume).to_have_text("↻ Resume: no checkpoint yet")
    assert studio.api.post(f"/runs/{run['id']}/resume").status_code == 409  # what the button spares the reader


def test_a_short_run_has_whole_step_ticks(page: Any, studio: Studio) -> None:
    run = studio.create_run(name="four steps", **TINY)  # 8 rows, batch 2, 1 epoch: 4 steps
    run = studio.wait_status(run["id"], {"succeeded"}, RUN_S)
    steps = {p["step"] for p in studio.api.get(f"/runs/{run['id']}/metrics").json()["points"] if p.get("loss")}
    assert 3 <= len(steps) <= 6, steps
    open_run(page, studio, run["id"], "succeeded")
    for plot in ("#plot-loss", "#plot-lr"):
        page.wait_for_selector(f"{plot} {X_LABELS}", timeout=30_000)
        ticks = [t.strip() for t in page.locator(f"{plot} {X_LABELS}").all_text_contents() if t.strip()]
        assert ticks and all(t.isdigit() for t in ticks), (plot, ticks)
        assert len(ticks) == len(set(ticks)), (plot, ticks)  # no step labelled twice
    page.locator("#plot-loss").screenshot(path=str(studio.home / "plot-loss.png"))
