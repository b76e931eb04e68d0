"""The newcomer's path, in headless Chromium against the real server: Compare tells runs from benchmark jobs
(a job's results sit in its run's row), fits a 1280×800 window and shows the final losses; colour marks only a
difference a paired test calls significant; the charts' axes read cleanly; the Benchmarks page names a run's
own evaluation plainly.

One module fixture makes what every test reads: two finished tiny runs (one of 2 epochs, so it has two
validation points) and one benchmark job on the 2-epoch run."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from ui_support import TINY, Studio, open_ui, tab, wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]
RUN_TIMEOUT_S = 300
SUITE = "mine=mine.jsonl?problem=q&answer=a&grader=math"
ROWS = [{"q": "What is 2 + 2?", "a": "4"}, {"q": "What is 3 + 5?", "a": "8"}]
X_LABELS = "g.role-axis[aria-label^='X-axis'] .role-axis-label text"
Y_LABELS = "g.role-axis[aria-label^='Y-axis'] .role-axis-label text"


@pytest.fixture(scope="module")
def runs(studio: Studio) -> Iterator[dict[str, int]]:
    """{'one': a 1-epoch run, 'two': a 2-epoch run, 'job': a benchmark job on 'two'}, all succeeded."""
    once = dict(TINY, validations_per_epoch=1)  # one validation point per epoch: a lone point is drawn as a point
    one = studio.create_run(name="newcomer one", **once)
    two = studio.create_run(name="newcomer two", **dict(once, epochs=2))
    for r in (one, two):
        studio.wait_status(r["id"], {"succeeded"}, RUN_TIMEOUT_S)
    (studio.home / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    resp = studio.api.post(f"/runs/{two['id']}/benchmarks", json={"benchmarks": SUITE, "max_new_tokens": 8})
    assert resp.status_code == 202, resp.text
    studio.wait_status(resp.json()["id"], {"succeeded"}, RUN_TIMEOUT_S)
    yield {"one": one["id"], "two": two["id"], "job": resp.json()["id"]}


def open_compare(pg: Any, studio: Studio, ids: dict[str, int]) -> None:
    open_ui(pg, f"{studio.url}/ui/?tab=compare")
    tab(pg, "Compare")
    for key in ("one", "two"):  # the newest finished runs are picked by default
        wait_text(pg, "#cmp-table", f"#{ids[key]} newcomer {key}", timeout=30_000)


def final(studio: Studio, rid: int, key: str) -> float:
    points = studio.api.get(f"/runs/{rid}/metrics").json()["points"]
    return [p[key] for p in points if p.get(key) is not None][-1]


def labels(pg: Any, selector: str) -> list[str]:
    return [t.strip() for t in pg.locator(selector).all_text_contents()]


def y_labels_inside(pg: Any, plot: str) -> bool:
    """Whether every y label starts inside the chart's drawing (a clipped one starts left of it; a few pixels'
    slack: a text box is a little wider than its ink)."""
    return pg.evaluate(f"""() => {{ const svg = document.querySelector('{plot} svg.marks').getBoundingClientRect();
        return [...document.querySelectorAll("{plot} {Y_LABELS}")]
            .every(t => t.getBoundingClientRect().left >= svg.left - 4); }}""")


# --------------------------------------------------------------------------- 8. compare

def test_compare_folds_benchmark_jobs_into_their_run_and_fits(page: Any, studio: Studio, runs: dict[str, int]) -> None:
    pg = page
    open_compare(pg, studio, runs)
    # The job is not offered as a run to compare, and has no row of its own.
    pg.locator("#cmp-runs input").click()
    options = [o.split("\n")[-1] for o in pg.locator("ul[role=listbox] li").all_inner_texts()]
    assert any(o.startswith(f"#{runs['two']} ") for o in options), options
    assert not any(o.startswith(f"#{runs['job']} ") for o in options), options
    pg.keyboard.press("Escape")
    assert pg.locator(f"#cmp-table tr[data-run='{runs['job']}']").count() == 0
    # Its suite's result is in the row of the run it measures, marked as the job's.
    two = pg.inner_text(f"#cmp-table tr[data-run='{runs['two']}']")
    assert re.search(r"mine: \d+\.\d% \([+-]\d+\.\d pp\)", two) and f"(job #{runs['job']})" in two, two
    assert "heldout:" in two  # the run's own evaluation too
    assert "mine:" not in pg.inner_text(f"#cmp-table tr[data-run='{runs['one']}']")
    # Final training and validation losses, as the curves end.
    for key in ("one", "two"):
        row = pg.inner_text(f"#cmp-table tr[data-run='{runs[key]}']")
        assert f"train {final(studio, runs[key], 'loss'):.4g}" in row, row
        assert f"validation {final(studio, runs[key], 'eval_loss'):.4g}" in row, row
    # The table fits its area: nothing to scroll sideways to, the last column on screen.
    box = pg.evaluate("""() => { const t = document.querySelector('#cmp-table table');
        const c = t.parentElement; const last = t.querySelector('thead th:last-child').getBoundingClientRect();
        return {scroll: t.scrollWidth, client: c.clientWidth, right: last.right, view: window.innerWidth}; }""")
    assert box["scroll"] <= box["client"] and box["right"] <= box["view"], box
    # One epoch's single validation loss is drawn as a point (a line needs two).
    pg.locator("#cmp-series label", has_text="Validation loss").click()
    pg.wait_for_selector("#cmp-plot .mark-symbol path", timeout=20_000)
    assert pg.locator("#cmp-plot .mark-symbol path").count() >= 3  # 1 + 2 validation points
    assert not pg.js_errors, pg.js_errors


# --------------------------------------------------------------------------- 9. colour only for signal

def plant_noise(studio: Studio, ids: dict[str, int]) -> None:
    """Small untested differences, as a real evaluation on 3 prompts gives them: reasoning quality −0.001,
    % with reasoning −33.3 pp, the accuracy +33.3 pp (its test: not significant), and on the job's suite
    fewer answers stopped by the token limit (no test)."""
    from sqlalchemy.orm import Session

    from backend.config import Settings
    from backend.store import Store
    from backend.tables import BenchmarkResult, Evaluation, Run

    store = Store(Settings.from_env({"DISTILL_HOME": str(studio.home)}))
    try:
        with Session(store.engine) as s:
            ev = s.get(Evaluation, ids["one"])
            res = json.loads(json.dumps(ev.results))
            base, sft = res["summary"]["base"], res["summary"]["sft"]
            base.update(avg_quality_score=0.5, pct_with_reasoning=100.0, accuracy=0.0)
            sft.update(avg_quality_score=0.499, pct_with_reasoning=66.667, accuracy=0.333)
            res["deltas"].update(avg_quality_score=-0.001, pct_with_reasoning=-33.333, accuracy=0.333)
            res["accuracy_test"] = {"test": "mcnemar_exact", "p_value": 0.5, "significant": False}
            ev.results = res
            run = s.get(Run, ids["one"])
            run.summary = {**run.summary, "base": base, "sft": sft, "deltas": res["deltas"],
                           "accuracy_test": res["accuracy_test"]}
            row = s.query(BenchmarkResult).filter_by(job_id=ids["job"], suite="mine").one()
            block = json.loads(json.dumps(row.summary))
            block["sft"]["truncated_pct"] = 50.0
            row.summary = block
            s.commit()
    finally:
        store.engine.dispose()


def assert_uncoloured(pg: Any, selector: str) -> None:
    coloured = pg.locator(f"{selector} .ds-good, {selector} .ds-bad")
    assert coloured.count() == 0, coloured.all_inner_texts()


def test_colour_only_where_a_test_finds_a_difference(page: Any, studio: Studio, runs: dict[str, int]) -> None:
    plant_noise(studio, runs)
    pg = page
    # The Run page: the deltas are there, plain.
    open_ui(pg, f"{studio.url}/ui/?run={runs['one']}")
    pg.wait_for_selector("#eval-table table.ds-metrics", timeout=30_000)
    table = pg.inner_text("#eval-table")
    assert "-0.001" in table and "-33.3 pp" in table and "not significant" in table, table
    assert_uncoloured(pg, "#eval-table")
    cell = pg.locator("#eval-table tr", has_text="% with reasoning").locator("td").last
    style = cell.evaluate("e => [getComputedStyle(e).fontWeight, getComputedStyle(e).color]")
    muted = pg.evaluate("() => getComputedStyle(document.querySelector('.ds-muted')).color")
    assert int(style[0]) < 600 and style[1] == muted, style
    # Compare: the same run's row.
    open_compare(pg, studio, runs)
    row = f"#cmp-table tr[data-run='{runs['one']}']"
    assert "(-0.001)" in pg.inner_text(row)
    assert_uncoloured(pg, row)
    # Benchmarks: the job's suite card (only pass@1 has a test).
    open_ui(pg, f"{studio.url}/ui/?tab=benchmarks&run={runs['two']}&suite=mine")
    wait_text(pg, "#bench-summary", "% stopped by the token limit")
    assert "-50.0 pp" in pg.inner_text("#bench-summary")
    assert_uncoloured(pg, "#bench-summary")


# --------------------------------------------------------------------------- 10. charts

def test_compare_chart_axes_read_cleanly(page: Any, studio: Studio, runs: dict[str, int]) -> None:
    pg = page
    open_compare(pg, studio, runs)
    pg.wait_for_selector("#cmp-plot .mark-line path", timeout=20_000)
    steps = labels(pg, f"#cmp-plot {X_LABELS}")
    assert steps and all(re.fullmatch(r"\d+", s) for s in steps) and len(set(steps)) == len(steps), steps
    # The learning rate: short labels, all inside the chart (none clipped at the left edge).
    pg.locator("#cmp-series label", has_text="Learning rate").click()
    wait_text(pg, "#cmp-plot", "Learning rate")
    pg.wait_for_function(f"() => document.querySelectorAll(\"#cmp-plot {Y_LABELS}\").length > 1")
    lrs = labels(pg, f"#cmp-plot {Y_LABELS}")
    assert all(re.fullmatch(r"\d(\.\d+)?e-\d+|0", v) for v in lrs), lrs
    assert not any(re.search(r"\.\d*0e", v) for v in lrs), lrs
    assert y_labels_inside(pg, "#cmp-plot")
    # A value of its own is printed plainly (no 10.700000), and whole steps only.
    pg.locator("#cmp-series label", has_text="Validation loss").click()
    pg.wait_for_selector("#cmp-plot .mark-symbol path", timeout=20_000)
    values = labels(pg, f"#cmp-plot {Y_LABELS}")
    assert values and not any(re.search(r"\.\d*0$", v) for v in values), values
    assert all(re.fullmatch(r"\d+", s) for s in labels(pg, f"#cmp-plot {X_LABELS}"))
    assert not pg.js_errors, pg.js_errors


def test_run_page_charts_have_short_unclipped_lr_labels(page: Any, studio: Studio, runs: dict[str, int]) -> None:
    pg = page
    open_ui(pg, f"{studio.url}/ui/?run={runs['two']}")
    pg.wait_for_selector("#plot-lr .mark-line path", timeout=30_000)
    lrs = labels(pg, f"#plot-lr {Y_LABELS}")
    assert lrs and all(re.fullmatch(r"\d(\.\d+)?e-\d+|0", v) for v in lrs), lrs
    assert not any(re.search(r"\.\d*0e", v) for v in lrs), lrs  # 2e-4, not the longer 2.0e-4
    assert y_labels_inside(pg, "#plot-lr")
    tps = labels(pg, f"#plot-tokens_per_s {Y_LABELS}")
    assert tps and all(re.fullmatch(r"\d+(\.\d+)?", v) for v in tps), tps  # 350, not 3.5e+2


# --------------------------------------------------------------------------- 14. the result picker

def test_result_picker_names_the_runs_own_evaluation(page: Any, studio: Studio, runs: dict[str, int]) -> None:
    pg = page
    open_ui(pg, f"{studio.url}/ui/?tab=benchmarks&run={runs['two']}&suite=heldout")
    pg.wait_for_selector("#bench-problems .ds-problem", timeout=20_000)
    assert pg.locator("#bench-job input").input_value().startswith("The run's own evaluation · ")
    pg.locator("#bench-suite input").click()
    pg.locator("ul[role=listbox] li", has_text="mine").click()
    pg.wait_for_function("() => document.querySelector('#bench-job input').value.startsWith('Benchmark job #')")
    assert pg.locator("#bench-job input").input_value().startswith(f"Benchmark job #{runs['job']} · ")
    assert not pg.js_errors, pg.js_errors
