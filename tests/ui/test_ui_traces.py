"""The Traces page in headless Chromium, against the real server (``distill serve --with-worker``) and a stand-in
teacher on a real socket (``tests/standin_teacher.py``, which the worker reaches on 127.0.0.1).

Launch a generation from the Launch form's Teacher fields, see the Run page speak in problems and link to the
Traces page, watch the funnel fill while it runs, then check every number of the funnel and the teacher against
the API's report, filter by a verdict, unfold a problem (thought and answer apart, escaped), and "Train on this"
fills the Launch form. Screenshots go to test-artifacts/ui/ (traces_problem.png also to docs/img/traces.png with
DISTILL_UPDATE_DOCS_IMG=1).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ui_support import ARTIFACTS, ROOT, Studio, fill_number, open_ui, wait_text

sys.path.insert(0, str(ROOT / "tests"))
from standin_teacher import MODEL, StandinTeacher  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]
GEN_TIMEOUT_S = 240
# Each problem's four samples, scripted: every verdict but too_long / failed / not_selected shows up.
PROBLEMS = {
    "What is 11 plus 31 apples in the basket?": ("42", ["right", "wrong", "right_long", "cut"]),
    "How many legs do 3 spiders have in total?": ("24", ["wrong", "wrong", "no_answer", "wrong"]),
    "A train travels 60 km each hour for 2 hours. How far?": ("120", ["loop", "loop", "right", "loop"]),
    "Tom has 5 marbles and gets 4 more. How many now?": ("9", ["right", "right", "right_long", "wrong"]),
    # Markup in a problem must show as text.
    "Is 3 < 5 true? Reply 1 for <b>yes</b> and 0 for no.": ("1", ["right", "right", "wrong", "right"]),
}
DUPLICATE = "  what is 11 PLUS 31 apples in   the basket?"  # the first problem again: never asked
PLANTED = "Compute the sum of all positive divisors of the number one hundred and twenty please."
PROBLEMS_FILE = "traces_problems.jsonl"  # in the studio's DISTILL_HOME, where datasets must be
BENCH_FILE = "traces_bench.jsonl"
DECONTAMINATE = f"mybench={BENCH_FILE}?problem=problem&answer=answer&grader=math"


@pytest.fixture(scope="module")
def teacher() -> Iterator[StandinTeacher]:
    # A short delay per answer, one request at a time: the generation lasts long enough to be watched.
    t = StandinTeacher(answers={q: a for q, (a, _) in PROBLEMS.items()} | {PLANTED: "360"},
                       script={q: s for q, (_, s) in PROBLEMS.items()}, delay_s=0.6)
    with t:
        yield t


def write_problems(studio: Studio) -> None:
    rows = [{"question": q, "answer": a} for q, (a, _) in PROBLEMS.items()]
    rows += [{"question": DUPLICATE, "answer": "42"}, {"question": PLANTED, "answer": "360"}]
    (studio.home / PROBLEMS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (studio.home / BENCH_FILE).write_text(json.dumps({"problem": PLANTED, "answer": "360"}) + "\n")


def generation_config(t: StandinTeacher) -> dict[str, Any]:
    return {"name": "traces e2e", "mode": "generate", "dataset": PROBLEMS_FILE, "model": "tiny-random",
            "teacher_model": MODEL, "teacher_url": t.url, "teacher_max_tokens": 40, "engine_concurrency": 1,
            "decontaminate": DECONTAMINATE, "max_seq_length": 512}


def pick(pg: Any, field: str, value: str) -> None:
    """Choose ``value`` in a dropdown of the form (typed: a custom value is accepted with Enter)."""
    box = pg.locator(f"#field-{field} input").first
    box.click()
    box.fill(value)
    box.press("Enter")


def fill_generation_form(pg: Any, t: StandinTeacher) -> None:
    cfg = generation_config(t)
    pg.locator("#field-name textarea, #field-name input").first.fill(cfg["name"])
    for field in ("mode", "dataset", "model"):
        pick(pg, field, cfg[field])
    for field in ("teacher_model", "teacher_url", "teacher_max_tokens", "engine_concurrency", "decontaminate",
                  "max_seq_length"):
        fill_number(pg, field, cfg[field])


def funnel_shown(pg: Any) -> dict[str, str]:
    return pg.evaluate("() => Object.fromEntries([...document.querySelectorAll('#traces-summary .ds-frow')]"
                       ".map(r => [r.dataset.key, r.querySelector('.ds-fnum').innerText]))")


def generated_run(studio: Studio, t: StandinTeacher) -> int:
    """The generation the first test launched from the form, or one launched through the API."""
    if "traces_run" not in studio.shared:
        write_problems(studio)
        studio.shared["traces_run"] = studio.create_run(**generation_config(t))["id"]
    rid = studio.shared["traces_run"]
    studio.wait_status(rid, {"succeeded"}, GEN_TIMEOUT_S)
    return rid


def test_launch_a_generation_and_watch_its_funnel_fill(page: Any, studio: Studio, teacher: StandinTeacher) -> None:
    pg = page
    write_problems(studio)
    open_ui(pg, f"{studio.url}/ui/")
    pg.wait_for_selector("#group-teacher #field-teacher_model")  # the Teacher fields are on the form
    fill_generation_form(pg, teacher)
    wait_text(pg, "#cli-cmd", "--mode generate")
    wait_text(pg, "#cli-cmd", "--engine_concurrency 1")
    pg.click("#launch-btn")

    # The Run page: progress in problems, no benchmark form (no model), a link to the Traces page.
    pg.wait_for_function("() => document.querySelector('#tab-run')?.offsetParent !== null")
    wait_text(pg, "#run-progress", "of the problems answered", timeout=60_000)
    rid = int(pg.locator("#run-pick input").first.input_value().split()[0].lstrip("#"))
    studio.shared["traces_run"] = rid
    assert studio.api.get(f"/runs/{rid}").json()["config"]["mode"] == "generate"
    assert pg.locator("#bench-form").is_hidden()
    assert pg.locator("#run-playground").is_hidden() and pg.locator("#plot-loss").is_hidden()  # no model, no curves
    wait_text(pg, "#eval-table", "trace generation")
    pg.screenshot(path=str(ARTIFACTS / "run_generate.png"), full_page=True)
    pg.click("#run-traces-link")

    # The Traces page follows the generation while it runs: the funnel grows, then the final report replaces it.
    pg.wait_for_function("() => document.querySelector('#tab-traces')?.offsetParent !== null")
    assert pg.locator("#traces-run input").input_value().startswith(f"#{rid} ")
    seen: list[tuple[bool, str]] = []
    deadline = time.monotonic() + GEN_TIMEOUT_S
    while time.monotonic() < deadline:
        live = pg.locator("#traces-summary [data-live]").count() > 0
        if live and not any(was for was, _ in seen):
            pg.screenshot(path=str(ARTIFACTS / "traces_live.png"), full_page=True)
        seen.append((live, funnel_shown(pg).get("answered", "")))
        if "succeeded" in pg.inner_text("#traces-summary .ds-progress"):
            break
        time.sleep(0.3)
    wait_text(pg, "#traces-summary .ds-frow[data-key=problems_read]", "7", timeout=20_000)
    answered_live = [int(n) for live, n in seen if live and n.isdigit()]
    assert answered_live and min(answered_live) < len(PROBLEMS), seen  # seen before every problem was answered
    assert len(set(answered_live)) > 1, seen  # and it grew under the open page
    assert pg.locator("#traces-summary [data-live]").count() == 0
    assert not pg.js_errors, pg.js_errors


def test_funnel_filters_problems_and_train_on_this(page: Any, studio: Studio, teacher: StandinTeacher) -> None:
    rid = generated_run(studio, teacher)
    traces = studio.api.get(f"/runs/{rid}/traces").json()
    report, f = traces["report"], traces["report"]["funnel"]
    pg = page
    open_ui(pg, f"{studio.url}/ui/?tab=traces&run={rid}")
    pg.wait_for_selector("#traces-summary .ds-frow[data-key=kept]", timeout=30_000)

    # Every bar's number is the API's report.
    shown = funnel_shown(pg)
    assert shown == {k: str(f[k]) for k in ("problems_read", "asked", "answered", "samples", "complete", "correct",
                                            "kept")}
    assert (f["problems_read"], f["duplicates"], f["contaminated"], f["asked"]) == (7, 1, 1, 5)
    drops = pg.inner_text("#traces-summary .ds-dropped")
    assert "duplicates 1" in drops and "contaminated 1 (mybench 1)" in drops and "checked against: mybench" in drops
    teacher_box = pg.inner_text("#traces-summary .ds-teacher")
    t = report["teacher"]
    lo, hi = t["pass@1_ci"]
    assert f"{t['pass@1'] * 100:.1f}% [{lo * 100:.1f}, {hi * 100:.1f}]" in teacher_box
    assert f"pass@4 {t['pass@k']['4'] * 100:.1f}%" in teacher_box
    assert f"{t['looping_pct']:.1f}%" in teacher_box and f"{t['complete_pct']:.1f}%" in teacher_box
    rejected = pg.evaluate("() => Object.fromEntries([...document.querySelectorAll('#traces-summary .ds-rejections "
                           ".ds-verdict')].map(b => [b.dataset.verdict, b.innerText]))")
    assert rejected == {v: f"{v.replace('_', ' ')} {n}" for v, n in report["rejected"].items()}
    assert "stopped: budget" not in pg.inner_text("#traces-summary")
    problems = pg.locator("#traces-problems details.ds-tproblem")
    assert problems.count() == traces["total"] == 7
    pg.screenshot(path=str(ARTIFACTS / "traces.png"), full_page=True)

    # Filter by a verdict: the problems the API names, each with such a sample.
    looping = studio.api.get(f"/runs/{rid}/traces", params={"verdict": "looping"}).json()
    pg.locator("#traces-verdict input").click()
    pg.locator("ul[role=listbox] li", has_text="looping").first.click()
    wait_text(pg, "#traces-count", "with a sample looping")
    ids = [problems.nth(i).get_attribute("data-id") for i in range(problems.count())]
    assert ids == [item["id"] for item in looping["items"]] and len(ids) == 1
    assert problems.first.locator("summary .ds-verdict[data-verdict=looping]").count() == 3

    # Unfold a problem: its samples, the thought and the answer apart, the extracted answer against the gold one.
    problems.first.locator(":scope > summary").click()
    traces_shown = problems.first.locator(".ds-trace")
    assert traces_shown.count() == 4
    right = problems.first.locator(".ds-trace[data-verdict=kept]")
    assert right.count() == 1
    assert "Working it out gives 120" in right.locator(".ds-think-body").inner_text()
    assert right.locator(".ds-answer-text").inner_text() == "The answer is \\boxed{120}."
    assert "Extracted answer: 120" in right.locator(".ds-extracted").inner_text()
    assert "(expected 120)" in right.locator(".ds-extracted").inner_text()
    assert "finish: stop" in right.inner_text()
    loop = problems.first.locator(".ds-trace[data-verdict=looping]").first
    assert "not closed (cut off)" in loop.inner_text() and "finish: length" in loop.inner_text()
    pg.screenshot(path=str(ARTIFACTS / "traces_problem.png"), full_page=True)
    if os.environ.get("DISTILL_UPDATE_DOCS_IMG") == "1":
        shutil.copy(ARTIFACTS / "traces_problem.png", ROOT / "docs" / "img" / "traces.png")

    # Text search; markup in a problem shows as text, not as markup.
    pg.locator("#traces-verdict input").click()
    pg.locator("ul[role=listbox] li", has_text="any verdict").first.click()
    pg.locator("#traces-q textarea, #traces-q input").first.fill("<b>yes</b>")
    pg.locator("#traces-q textarea, #traces-q input").first.press("Enter")
    wait_text(pg, "#traces-count", "Problems 1–1 of 1")
    assert "Reply 1 for <b>yes</b>" in problems.first.locator(".ds-tq").inner_text()
    assert problems.first.locator(".ds-tq b").count() == 0

    # Train on this: the Launch form, to train the same student on the kept traces.
    ref = next(d["ref"] for d in studio.api.get("/datasets").json()["items"] if d.get("run_id") == rid)
    pg.click("#traces-train")
    pg.wait_for_function("() => document.querySelector('#tab-launch')?.offsetParent !== null")
    wait_text(pg, "#launch-banner", f"traces kept by run #{rid}")
    assert pg.locator("#field-dataset input").input_value() == ref
    assert pg.locator("#field-mode input").input_value() == "all"
    assert pg.locator("#field-model input").input_value() == "tiny-random"
    assert pg.locator("#field-teacher_model input, #field-teacher_model textarea").first.input_value() == ""
    assert pg.locator("#field-name input, #field-name textarea").first.input_value() == f"train on traces of run {rid}"
    assert f"generated by run #{rid}" in pg.locator("#dataset-pick input").input_value()
    wait_text(pg, "#dataset-report", "kept")
    # mode all is the default (not in the command); the traces were judged against max_seq_length 512: it goes along.
    for part in (f"--dataset {ref}", "--max_seq_length 512", "--name 'train on traces of run"):
        wait_text(pg, "#cli-cmd", part)
    assert "--teacher_model" not in pg.inner_text("#cli-cmd")
    assert not pg.js_errors, pg.js_errors


def test_traces_page_fits_a_narrow_window_in_dark(browser: Any, studio: Studio, teacher: StandinTeacher) -> None:
    rid = generated_run(studio, teacher)
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    ctx.set_default_timeout(20_000)
    pg = ctx.new_page()
    try:
        open_ui(pg, f"{studio.url}/ui/?__theme=dark&tab=traces&run={rid}")
        pg.wait_for_selector("#traces-summary .ds-frow[data-key=kept]", timeout=30_000)
        pg.locator("#traces-problems details.ds-tproblem > summary").first.click()
        pg.wait_for_selector("#traces-problems .ds-trace")
        overflow = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 390px wide"
        # Verdict badges keep a colour of their own in the dark theme (not the text's, not black or white).
        colors = pg.evaluate("() => ['kept', 'wrong', 'incomplete'].map(v => getComputedStyle("
                             "document.querySelector(`#traces-problems .ds-verdict[data-verdict=${v}]`)).color)")
        text = pg.evaluate("() => getComputedStyle(document.querySelector('#traces-problems .ds-prompt')).color")
        assert len(set(colors)) == 3 and not set(colors) & {"rgb(0, 0, 0)", "rgb(255, 255, 255)", text}, colors
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "traces_narrow_dark.png"), full_page=True)
        ctx.close()
