"""Benchmarks: the leaderboard of runs × suites (base → SFT pass@1 with its 95 % interval, the delta
and whether the paired test finds it significant), and every problem of one result side by side,
filtered and paged. A cell of the leaderboard (or the pickers below it) opens a result."""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from ui.client import ApiCallError
from ui.manager import Manager
from ui.pages.benchmarks_view import (
    FILTERS,
    keep,
    leaderboard_html,
    problems_html,
    suite_card_html,
)
from ui.pages.common import CLICK_JS, Ctx, to_int
from ui.shared import banner_html, esc, fmt_time

PAGE = "benchmarks"
PAGE_SIZE = 20
PICK_HINT = '<div class="ds-muted">Click a cell of the leaderboard, or pick a run and a suite, to see every problem.</div>'


def build(ctx: Ctx, m: Manager) -> None:
    e: dict[str, Any] = {}
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        gr.Markdown("Each run's newest result per suite. Base and SFT answer the same problems, so the difference is "
                    "tested pair by pair (exact McNemar with one answer per problem, else a paired bootstrap).",
                    elem_classes=["ds-muted"])
        e["refresh_btn"] = gr.Button("↻ Refresh", size="sm", scale=0, min_width=110, elem_id="bench-refresh")
    e["banner"] = gr.HTML("", elem_id="bench-page-banner", elem_classes=["ds-collapse"])
    e["board"] = gr.HTML('<div class="ds-muted">Loading…</div>', elem_id="bench-board", js_on_load=CLICK_JS)
    gr.Markdown("### Problem by problem")
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        e["run"] = gr.Dropdown(label="Run", choices=[], value=None, scale=3, min_width=240, elem_id="bench-run")
        e["suite"] = gr.Dropdown(label="Suite", choices=[], value=None, scale=2, min_width=160, elem_id="bench-suite")
        e["job"] = gr.Dropdown(label="Result (newest first)", choices=[], value=None, scale=2, min_width=200,
                               elem_id="bench-job")
    e["summary"] = gr.HTML("", elem_id="bench-summary")
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        e["filter"] = gr.Radio([(v, k) for k, v in FILTERS.items()], value="all", label="Show", scale=4,
                               elem_id="bench-filter", info="A model is wrong on a problem when any of its answers is")
        e["prev_btn"] = gr.Button("← Previous", size="sm", scale=0, min_width=100, elem_id="bench-prev")
        e["page"] = gr.Number(value=1, precision=0, minimum=1, label="Page", scale=0, min_width=90, elem_id="bench-page")
        e["next_btn"] = gr.Button("Next →", size="sm", scale=0, min_width=100, elem_id="bench-next")
    e["count"] = gr.HTML("", elem_id="bench-count")
    e["problems"] = gr.HTML(PICK_HINT, elem_id="bench-problems")
    e["data"] = gr.State({})
    m.add(PAGE, e)


# --------------------------------------------------------------------------- logic

def refresh(ctx: Ctx, m: Manager) -> dict[Any, Any]:
    """The leaderboard, and the runs that have results for the picker (its value is select()'s to set:
    this also runs when the tab opens, maybe just after a result was opened)."""
    p = m.page(PAGE)
    try:
        board = ctx.api.leaderboard()
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    items = board.get("items") or []
    choices: list[tuple[str, int]] = []
    for it in items:
        rid = int(it["run_id"])
        if all(v != rid for _, v in choices):
            label = f"#{rid} {it.get('run_name') or ''}" + (f" · {it['model']}" if it.get("model") else "")
            choices.append((label, rid))
    return {p["board"]: leaderboard_html(items, ctx.catalog), p["banner"]: "", p["run"]: gr.update(choices=choices)}


def page_view(m: Manager, data: dict[str, Any], how: str, page: Any) -> dict[Any, Any]:
    """One page of the filtered problems, and where it is in the list."""
    p = m.page(PAGE)
    records = data.get("records")
    if records is None:
        return {p["problems"]: PICK_HINT, p["count"]: "", p["page"]: 1}
    shown = [r for r in records if keep(r, how or "all")]
    pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
    n = min(max(1, to_int(page) or 1), pages)
    chunk = shown[(n - 1) * PAGE_SIZE: n * PAGE_SIZE]
    if shown:
        where = (f"Problems {(n - 1) * PAGE_SIZE + 1}–{(n - 1) * PAGE_SIZE + len(chunk)} of {len(shown)}"
                 f"{'' if how in (None, 'all') else f' ({FILTERS.get(how, how).lower()}; {len(records)} in all)'}"
                 f" · page {n} of {pages}")
    else:
        where = f"No problem of {len(records)} matches “{FILTERS.get(how, how)}”."
    return {p["problems"]: problems_html(chunk), p["count"]: f'<div class="ds-muted">{esc(where)}</div>', p["page"]: n}


def result_name(job_id: Any, run_id: int) -> str:
    """A result is the run's own evaluation (its job is the run itself) or a benchmark job's."""
    return "The run's own evaluation" if job_id == run_id else f"Benchmark job #{job_id}"


def select(ctx: Ctx, m: Manager, run_id: Any, suite: Any = None, job_id: Any = None, how: str = "all") -> dict[Any, Any]:
    """Open one result: the run's suites and results for the pickers, the suite's card, page 1 of its problems."""
    p = m.page(PAGE)
    rid = to_int(run_id)
    if rid is None:
        return {p["suite"]: gr.update(choices=[], value=None), p["job"]: gr.update(choices=[], value=None),
                p["summary"]: "", p["data"]: {}, **page_view(m, {}, how, 1)}
    try:
        results = ctx.api.run_benchmarks(rid).get("results") or []
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    suites = list(dict.fromkeys(r["suite"] for r in results))
    suite = suite if suite in suites else (suites[0] if suites else None)
    mine = [r for r in results if r["suite"] == suite]
    jobs = [(f"{result_name(r['job_id'], rid)} · {fmt_time(r.get('created_at'))}", int(r["job_id"])) for r in mine]
    job = to_int(job_id)
    job = job if job in {v for _, v in jobs} else (jobs[0][1] if jobs else None)
    out: dict[Any, Any] = {p["run"]: gr.update(value=rid), p["suite"]: gr.update(choices=suites, value=suite),
                           p["job"]: gr.update(choices=jobs, value=job), p["banner"]: "", p["filter"]: how}
    if suite is None:
        return {**out, p["summary"]: f'<div class="ds-muted">Run #{rid} has no benchmark result yet.</div>',
                p["data"]: {}, **page_view(m, {}, how, 1)}
    try:
        got = ctx.api.benchmark_samples(rid, suite, job)
    except ApiCallError as e:
        return {**out, p["banner"]: banner_html(e.message)}
    result = next((r for r in mine if r["job_id"] == job), {"suite": suite, "run_id": rid, "job_id": job,
                                                              "result": got.get("result") or {}})
    data = {"run": rid, "suite": suite, "job": job, "records": got.get("records") or []}
    return {**out, p["summary"]: suite_card_html(result, ctx.catalog, link=False), p["data"]: data, **page_view(m, data, how, 1)}


def outputs(m: Manager) -> list[Any]:
    """Everything ``select`` may update."""
    names = ("run", "suite", "job", "banner", "filter", "summary", "data", "problems", "count", "page")
    return m.list(*(f"{PAGE}.{n}" for n in names))


def wire(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)
    p["refresh_btn"].click(lambda: refresh(ctx, m), None, [p["board"], p["banner"], p["run"]], show_progress="hidden")
    # .input, not .change: select() sets these pickers itself, and must not set itself off again.
    p["run"].input(lambda r, f: select(ctx, m, r, how=f), [p["run"], p["filter"]], outputs(m))
    p["suite"].input(lambda r, s, f: select(ctx, m, r, s, how=f), [p["run"], p["suite"], p["filter"]], outputs(m))
    p["job"].input(lambda r, s, j, f: select(ctx, m, r, s, j, f), [p["run"], p["suite"], p["job"], p["filter"]],
                   outputs(m))
    views = [p["problems"], p["count"], p["page"]]
    p["filter"].input(lambda d, f: page_view(m, d, f, 1), [p["data"], p["filter"]], views, show_progress="hidden")
    p["prev_btn"].click(lambda d, f, n: page_view(m, d, f, (to_int(n) or 1) - 1), [p["data"], p["filter"], p["page"]],
                        views, show_progress="hidden")
    p["next_btn"].click(lambda d, f, n: page_view(m, d, f, (to_int(n) or 1) + 1), [p["data"], p["filter"], p["page"]],
                        views, show_progress="hidden")
    p["page"].submit(lambda d, f, n: page_view(m, d, f, n), [p["data"], p["filter"], p["page"]], views,
                     show_progress="hidden")
