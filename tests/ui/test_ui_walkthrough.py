"""A newcomer's first session, end to end, in headless Chromium against the real server (``distill serve
--with-worker``, what ``make run`` starts): open /ui, launch a small run by editing the demo preset's fields,
follow it to the end, read the Run page, the Benchmarks page and the Playground, launch a benchmark job on an
uploaded file of problems, then compare two runs — asserting at each step what a person would see.

The pieces have their own tests (test_ui_newcomer_*.py); this one checks that they add up to a path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ui_support import TINY, Studio, ask_both_models, fill_number, open_ui, tab, wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]
RUN_S = 300
FINISHED = ("succeeded", "failed", "cancelled")
PROBLEMS = [{"problem": "What is 6 + 7?", "answer": "13"}, {"problem": "What is 3 * 4?", "answer": "12"}]


def field(pg: Any, name: str) -> Any:
    return pg.locator(f"#field-{name} input, #field-{name} textarea").first


def edit_into_a_small_run(pg: Any) -> None:
    """The demo preset's form, edited down to a run of a minute: the tiny model, 8 rows, 2 held-out problems."""
    field(pg, "name").fill("walkthrough first")
    model = pg.locator("#field-model input").first
    model.click()
    model.fill(TINY["model"])
    model.press("Enter")
    for f in ("max_samples", "batch_size", "gradient_accumulation", "eval_samples", "max_new_tokens",
              "max_seq_length"):
        fill_number(pg, f, TINY[f])
    pg.locator("#field-general_prompts input[type=checkbox]").uncheck()


def wait_finished(pg: Any) -> str:
    pg.wait_for_function("(done) => done.some(s => (document.querySelector('#run-progress')?.innerText || '')"
                         ".includes(s))", arg=list(FINISHED), timeout=RUN_S * 1000)
    return pg.inner_text("#run-progress")


def shown_run_id(pg: Any) -> int:
    return int(pg.locator("#run-pick input").first.input_value().split()[0].lstrip("#"))


def test_a_newcomers_first_session(page: Any, studio: Studio, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    pg = page
    # 1. The dashboard opens on Launch, on the demo preset, and the terminal preview says so.
    open_ui(pg, f"{studio.url}/ui/")
    wait_text(pg, "#cli-cmd", "distill --preset demo")
    assert pg.locator("#preset-pick input").first.input_value().startswith("demo: ")
    assert "about 6 min" in pg.locator("#preset-pick input").first.input_value()
    assert "$DISTILL_HOME/runs/run_N on the service" in pg.inner_text("#field-output_dir")  # where it really goes

    # 2. Edit it into a small run; opening the preset list and leaving it loses nothing.
    edit_into_a_small_run(pg)
    wait_text(pg, "#cli-cmd", "--no-general_prompts")
    before = pg.inner_text("#cli-cmd .cm-content").strip()
    pg.locator("#preset-pick input").first.click()
    pg.get_by_role("option").first.wait_for()
    pg.click("#ds-title")
    pg.wait_for_timeout(1500)
    assert pg.inner_text("#cli-cmd .cm-content").strip() == before and field(pg, "max_samples").input_value() == "8"
    assert before.startswith("distill --preset demo ") and "--model tiny-random" in before

    # 3. Launch: the Run page opens and follows the run; the bar never claims 100 % before the end.
    pg.click("#launch-btn")
    pg.wait_for_function("() => document.querySelector('#tab-run')?.offsetParent !== null")
    pg.wait_for_selector("#ds-log .ds-log-line", timeout=60_000)
    expect(pg.locator("button#run-cancel")).to_be_enabled(timeout=30_000)
    final = wait_finished(pg)
    assert "succeeded" in final, f"{final}\n{pg.inner_text('#ds-log')[-2000:]}"
    first = shown_run_id(pg)

    # 4. The finished run: nothing to cancel or resume, its results in plain words, colour only where tested.
    expect(pg.locator("button#run-cancel")).to_be_disabled(timeout=15_000)
    expect(pg.locator("button#run-resume")).to_be_disabled()
    pg.wait_for_selector("#run-benchmarks .ds-suite[data-suite=heldout]", timeout=30_000)
    card = pg.inner_text("#run-benchmarks .ds-suite[data-suite=heldout]")
    assert re.search(r"\d+\.\d% \[\d+\.\d, \d+\.\d\] → \d+\.\d%", card), card
    assert "2 problems × 1 sample" in card, card
    table = pg.inner_text("#eval-table")
    assert "Accuracy" in table and "Avg generation time" not in table  # one shared batch's time is no comparison
    assert pg.locator("#eval-table td.ds-good, #eval-table td.ds-bad").count() == 0  # 2 problems: nothing significant
    log = pg.inner_text("#ds-log")
    assert "evaluating heldout: 2/2 problems" in log, log[-1500:]

    # 5. The Benchmarks page lists the run on its suite.
    tab(pg, "Benchmarks")
    wait_text(pg, "#bench-board", f"#{first}", timeout=30_000)

    # 6. The Playground: both models of this run answer the same prompt, side by side.
    tab(pg, "Run")
    pg.click("button#run-playground")
    pg.wait_for_function("(p) => (document.querySelector('#pg-run input')?.value || '').startsWith(p)",
                         arg=f"#{first} ", timeout=20_000)
    expect(pg.locator("button#pg-stop")).to_be_hidden()  # nothing is generating yet
    ask_both_models(pg, "What is 5 + 9?", 12)
    assert pg.locator("#pg-base .ds-resp").count() == 1 and pg.locator("#pg-sft .ds-resp").count() == 1
    expect(pg.locator("button#pg-stop")).to_be_hidden()

    # 7. A benchmark job on a file of problems uploaded from the Run page, no shell needed.
    open_ui(pg, f"{studio.url}/ui/?run={first}")
    wait_text(pg, "#run-progress", "succeeded", timeout=30_000)
    pg.wait_for_selector("#bench-form", state="visible")
    path = tmp_path / "walk.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    with pg.expect_file_chooser() as chooser:
        pg.locator("button#bench-upload").click()
    chooser.value.set_files(str(path))
    wait_text(pg, "#bench-banner", "2 problems")
    pg.click("#bench-launch")
    wait_text(pg, "#bench-banner", "queued")
    job = int(re.search(r"#(\d+)", pg.inner_text("#bench-banner")).group(1))
    assert studio.wait_status(job, set(FINISHED), RUN_S)["status"] == "succeeded"
    pg.wait_for_selector("#run-benchmarks .ds-suite[data-suite=walk]", timeout=30_000)
    assert "2 problems × 1 sample" in pg.inner_text("#run-benchmarks .ds-suite[data-suite=walk]")

    # 8. A second run, then Compare: the two runs side by side, the job folded into its run, within the window.
    second = studio.create_run(name="walkthrough second", **dict(TINY, kl_coef=0.0))
    studio.wait_status(second["id"], {"succeeded"}, RUN_S)
    open_ui(pg, f"{studio.url}/ui/?tab=compare")
    tab(pg, "Compare")
    cmp_runs = pg.locator("#cmp-runs input").first
    for rid in (first, second["id"]):
        wait_text(pg, "#cmp-table", f"#{rid} ", timeout=30_000)
    compared = pg.inner_text("#cmp-table")
    assert f"#{job} " not in compared.replace(f"(job #{job})", "")  # the job is no run of its own here
    assert "walk" in compared and "Final loss" in compared, compared
    assert pg.evaluate("() => { const t = document.querySelector('#cmp-table table');"
                       " return t.scrollWidth <= t.parentElement.clientWidth + 1; }")
    assert cmp_runs.count() == 1
    assert not pg.js_errors, pg.js_errors
