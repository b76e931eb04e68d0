"""The Sweeps page in headless Chromium against the real server and worker: a form line that is not FIELD=VALUES
and an unknown field are refused in one line each; Preview says how many runs; Launch queues them; the finished
sweep shows its verdict, its table (runs linked), the heat map of its two numeric axes, the curves of every point
and the configuration that differs between points."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ui_support import ARTIFACTS, RUN_TIMEOUT_S, Studio, open_ui, tab, wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]
BASE = ("model=tiny-random\nmax_samples=4\nepochs=1\nbatch_size=2\ngradient_accumulation=1\neval_samples=2\n"
        "general_prompts=false\nmax_new_tokens=8\nmax_seq_length=128")


def fill(pg: Any, elem: str, text: str) -> None:
    pg.locator(f"#{elem} textarea, #{elem} input").first.fill(text)


def test_sweep_from_the_form_to_the_verdict(page: Any, studio: Studio) -> None:
    pg = page
    open_ui(pg, f"{studio.url}/ui/?tab=sweeps")
    tab(pg, "Sweeps")
    pg.locator("#sweep-new").get_by_text("New sweep").click()
    fill(pg, "sweep-preset", "")
    fill(pg, "sweep-base", BASE)
    fill(pg, "sweep-grid", "learning_rate 1e-3")
    pg.locator("#sweep-preview").click()
    wait_text(pg, "#sweep-form-out", "Axes, line 1: expected FIELD=VALUE, got 'learning_rate 1e-3'")
    fill(pg, "sweep-grid", "lr=1e-3,2e-3")
    pg.locator("#sweep-preview").click()
    wait_text(pg, "#sweep-form-out", "axis 'lr': not a run configuration field")

    fill(pg, "sweep-grid", "learning_rate=1e-3,3e-3\nlora_r=4,8")
    fill(pg, "sweep-name", "ui grid")
    pg.locator("#sweep-preview").click()
    wait_text(pg, "#sweep-form-out", "4 runs")
    assert "learning_rate=1e-3,lora_r=8" in pg.inner_text("#sweep-plan")
    assert studio.api.get("/sweeps").json()["items"] == []  # a preview queues nothing

    pg.locator("#sweep-launch").click()
    wait_text(pg, "#sweep-form-out", "queued: 4 runs")
    sweep_id = studio.api.get("/sweeps").json()["items"][0]["id"]
    wait_text(pg, "#sweep-table", "learning_rate=3e-3,lora_r=8")
    deadline = time.monotonic() + 4 * RUN_TIMEOUT_S
    while studio.api.get(f"/sweeps/{sweep_id}").json()["status"] != "finished":
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(1)
    pg.locator("#sweep-refresh").click()
    wait_text(pg, "#sweep-verdict-box", "Verdict:")
    summary = studio.api.get(f"/sweeps/{sweep_id}").json()["summary"]
    assert summary["verdict"]["text"] in pg.inner_text("#sweep-verdict-box")
    rows = pg.locator("#sweep-points tbody tr")
    assert rows.count() == 4
    first = summary["points"][0]
    assert pg.locator(f"#sweep-points a[data-run='{first['run_id']}']").count() == 1
    # The heat map: 2 x 2 cells of the objective, each with its interval's half-width.
    cells = pg.locator("#sweep-heatmap td").all_inner_texts()
    assert len(cells) == 4 and all("±" in c for c in cells), cells
    assert "learning_rate \\ lora_r" in pg.inner_text("#sweep-heatmap")
    diff = pg.inner_text("#sweep-diff")
    assert "learning_rate" in diff and "lora_r" in diff and "0.003" in diff
    # Every point's curve in one chart: one legend entry per point.
    pg.wait_for_function("() => document.querySelectorAll('#sweep-plot .role-legend-label text').length === 4",
                         timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "sweeps_page.png"), full_page=True)
    # A run link opens the run's page.
    pg.locator(f"#sweep-points a[data-run='{first['run_id']}']").click()
    pg.wait_for_function("(id) => (document.querySelector('#run-pick input')?.value || '').includes('#' + id)",
                         arg=str(first["run_id"]), timeout=20_000)


def test_compare_tests_any_runs_pair_by_pair_and_shows_what_differs(page: Any, studio: Studio) -> None:
    """Three runs (the newest finished ones, picked by default): every pair tested on the same problems, Holm-
    corrected, and the configuration fields that differ."""
    pg = page
    ids = [r["id"] for r in studio.api.get("/runs").json()["items"] if r["status"] == "succeeded"][:3]
    if len(ids) < 3:
        for lr in (1e-3, 2e-3, 3e-3)[: 3 - len(ids)]:
            run = studio.create_run(name=f"cmp {lr}", **{**dict(line.split("=") for line in BASE.splitlines()),
                                                         "learning_rate": lr})
            studio.wait_status(run["id"], {"succeeded"}, RUN_TIMEOUT_S)
        ids = [r["id"] for r in studio.api.get("/runs").json()["items"] if r["status"] == "succeeded"][:3]
    api = studio.api.get("/compare", params={"runs": ",".join(map(str, ids))}).json()
    pairs = api["suites"]["heldout"]["pairs"]
    assert len(pairs) == 3 and all(0 <= c["p_value"] <= c["p_holm"] <= 1 for c in pairs)
    open_ui(pg, f"{studio.url}/ui/?tab=compare")
    tab(pg, "Compare")
    pg.wait_for_selector("#cmp-pairs table[data-suite='heldout']", timeout=30_000)
    assert pg.locator("#cmp-pairs tbody tr").count() == 3
    diff = pg.inner_text("#sweep-diff")
    assert all(field in diff for field in api["diff"]), (diff, api["diff"])
    bad = studio.api.get("/compare", params={"runs": str(ids[0])})
    assert bad.status_code == 422 and bad.json()["detail"][0]["msg"] == "name at least two runs to compare"
