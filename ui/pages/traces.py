"""Traces: one trace generation (a run with a ``teacher_model``): its funnel, the teacher's numbers, the samples
rejected by reason, and every problem with its samples and their verdicts, filtered and paged. "Train on this"
fills the Launch form to train on the generated dataset (wired in ``ui/app.py``: it crosses pages). While the
generation runs the page polls (only while it is visible) and the funnel and the problems follow."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.client import FINISHED, ApiCallError, Run
from ui.manager import Manager
from ui.pages.common import Ctx, to_int
from ui.pages.run_detail_view import progress_html
from ui.pages.traces_view import (
    STATUSES,
    VERDICTS,
    count_html,
    filters_text,
    problems_html,
    summary_html,
)
from ui.shared import banner_html

PAGE = "traces"
PAGE_SIZE = 20
POLL_S = 2.0
ANY = ""  # the filters' "any" choice
PICK_HINT = ('<div class="ds-muted">Pick a trace generation above (a run with a <code>teacher_model</code>: mode '
             "<code>generate</code>, or <code>all</code>), or launch one from the Launch page (Teacher fields).</div>")


@dataclass(frozen=True)
class Filters:
    """What the problem list is filtered by (None: any)."""

    verdict: str | None = None
    status: str | None = None
    q: str | None = None

    @classmethod
    def of(cls, verdict: Any, status: Any, q: Any) -> Filters:
        return cls(verdict or None, status or None, str(q or "").strip() or None)


def build(ctx: Ctx, m: Manager) -> None:
    e: dict[str, Any] = {}
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        e["run"] = gr.Dropdown(label="Trace generation", choices=[], value=None, scale=4, min_width=260,
                               elem_id="traces-run", filterable=True, info="Runs with a teacher_model, newest first")
        e["refresh_btn"] = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100, elem_id="traces-refresh")
        e["train_btn"] = gr.Button("▶ Train on this", variant="primary", size="sm", scale=0, min_width=160,
                                   elem_id="traces-train")
    e["banner"] = gr.HTML("", elem_id="traces-banner", elem_classes=["ds-collapse"])
    e["summary"] = gr.HTML(PICK_HINT, elem_id="traces-summary")
    gr.Markdown("### Problem by problem")
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        e["verdict"] = gr.Dropdown([("any verdict", ANY), *((v.replace("_", " "), v) for v in VERDICTS)], value=ANY,
                                   label="Has a sample", scale=1, min_width=150, elem_id="traces-verdict")
        e["status"] = gr.Dropdown([("any status", ANY), *((s, s) for s in STATUSES)], value=ANY,
                                  label="Problem status", scale=1, min_width=150, elem_id="traces-status")
        e["q"] = gr.Textbox(label="Text in the problem", placeholder="Enter to search", scale=2, min_width=200,
                            elem_id="traces-q")
        e["prev_btn"] = gr.Button("← Previous", size="sm", scale=0, min_width=100, elem_id="traces-prev")
        e["page"] = gr.Number(value=1, precision=0, minimum=1, label="Page", scale=0, min_width=90,
                              elem_id="traces-page")
        e["next_btn"] = gr.Button("Next →", size="sm", scale=0, min_width=100, elem_id="traces-next")
    e["count"] = gr.HTML("", elem_id="traces-count")
    e["problems"] = gr.HTML("", elem_id="traces-problems")
    e["state"] = gr.State({})
    e["timer"] = gr.Timer(POLL_S, active=False)
    m.add(PAGE, e)


# --------------------------------------------------------------------------- logic

def is_generation(run: dict[str, Any]) -> bool:
    return bool((run.get("config") or {}).get("teacher_model"))


def run_label(run: dict[str, Any]) -> str:
    """``#3 traces · teacher standin-r1 · generate`` (no status: the label would go stale as it runs)."""
    cfg = run.get("config") or {}
    return f"#{run.get('id')} {run.get('name') or cfg.get('name') or 'unnamed'} · teacher {cfg.get('teacher_model')} " \
           f"· {cfg.get('mode', '?')}"


def run_choices(ctx: Ctx, selected: int | None = None) -> list[tuple[str, int]]:
    runs = ctx.api.list_runs(limit=100).get("items", [])
    choices = [(run_label(r), int(r["id"])) for r in runs if is_generation(r)]
    if selected is not None and all(v != selected for _, v in choices):
        choices.insert(0, (f"#{selected}", selected))  # older than the list: still openable by ?run=
    return choices


def training_config(run: Run, dataset_ref: str) -> dict[str, Any]:
    """The Launch form's values for "Train on this": train and evaluate the generation's student on its dataset.
    max_seq_length goes along: the traces were judged too_long against it."""
    cfg = run.get("config") or {}
    out = {"mode": "all", "dataset": dataset_ref, "model": cfg.get("model"),
           "name": f"train on traces of run {run.get('id')}"}
    if cfg.get("max_seq_length") is not None:
        out["max_seq_length"] = cfg["max_seq_length"]
    return out


def nothing_to_train(run: Run) -> str:
    """Why "Train on this" cannot fill the form: GET /datasets lists a generation's dataset once it has succeeded
    and kept at least one trace."""
    rid, status = run.get("id"), run.get("status")
    if status != "succeeded":
        return f"Run #{rid} is {status}: its traces can be trained on once the generation has succeeded."
    return f"Run #{rid} kept no trace: there is nothing to train on (see the rejections by reason)."


def _digest(html: str) -> str:
    return hashlib.sha1(html.encode()).hexdigest()


def problems_update(ctx: Ctx, m: Manager, run_id: int | None, filters: Filters, page: Any,
                    state: dict[str, Any], force: bool = True) -> dict[Any, Any]:
    """One page of the filtered problems. ``force`` False (a poll): sent only when it changed, as re-sending
    would fold every problem the reader unfolded."""
    p = m.page(PAGE)
    if run_id is None:
        return {p["problems"]: "", p["count"]: "", p["page"]: 1}
    n = max(1, to_int(page) or 1)
    args = dict(verdict=filters.verdict, status=filters.status, q=filters.q, limit=PAGE_SIZE)
    try:
        got = ctx.api.traces(run_id, offset=(n - 1) * PAGE_SIZE, **args)
        pages = max(1, math.ceil(int(got.get("total") or 0) / PAGE_SIZE))
        if n > pages:  # past the end (the filter left fewer problems): the last page
            n = pages
            got = ctx.api.traces(run_id, offset=(n - 1) * PAGE_SIZE, **args)
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    items = got.get("items") or []
    html = problems_html(items)
    count = count_html(int(got.get("total") or 0), (n - 1) * PAGE_SIZE, len(items), n, pages,
                       filters_text(filters.verdict, filters.status, filters.q))
    out: dict[Any, Any] = {p["count"]: count, p["page"]: n, p["state"]: dict(state, shown=_digest(html))}
    if force or state.get("shown") != _digest(html):
        out[p["problems"]] = html
    return out


def render(ctx: Ctx, m: Manager, run_id: int, filters: Filters, page: Any, prev: dict[str, Any]) -> dict[Any, Any]:
    """The summary and the problems of one generation; {} when nothing changed since ``prev`` (a poll)."""
    p = m.page(PAGE)
    try:
        run = ctx.api.get_run(run_id)
        head = ctx.api.traces(run_id, limit=1)
        report = head.get("report")
        # Problems finished, the stage, the report appearing: what can change what is shown.
        mark = [run.get("status"), run.get("stage"), head.get("total"), (report or {}).get("funnel")]
        same = prev.get("run") == run_id and not prev.get("error")
        if same and prev.get("mark") == mark:
            return {}
    except ApiCallError as e:
        # Keep what is shown; say why it is not updating. The timer keeps trying (API restarts).
        return {p["banner"]: banner_html(e.message), p["state"]: dict(prev, error=e.message)}
    state = {"run": run_id, "status": run.get("status"), "mark": mark, "shown": prev.get("shown") if same else None}
    out = {p["banner"]: "", p["summary"]: progress_html(run) + summary_html(report, ctx.catalog, run.get("status")),
           p["state"]: state}
    return {**out, **problems_update(ctx, m, run_id, filters, page, state, force=not same)}


def select(ctx: Ctx, m: Manager, run_id: Any) -> dict[Any, Any]:
    """Open one generation: the picker (listing every generation), the filters cleared, page 1."""
    p = m.page(PAGE)
    rid = to_int(run_id)
    try:
        choices = run_choices(ctx, rid)
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    if rid is None and choices:
        rid = choices[0][1]  # the newest generation
    reset = {p["run"]: gr.update(choices=choices, value=rid), p["verdict"]: ANY, p["status"]: ANY, p["q"]: ""}
    if rid is None:
        return {**reset, p["summary"]: PICK_HINT, p["banner"]: "", p["state"]: {},
                **problems_update(ctx, m, None, Filters(), 1, {})}
    return {**reset, **render(ctx, m, rid, Filters(), 1, {})}


def refresh(ctx: Ctx, m: Manager, run_id: Any, verdict: Any = ANY, status: Any = ANY, q: Any = "",
            page: Any = 1) -> dict[Any, Any]:
    """The picker's list again and the open generation as it is now, the filters kept (a tab opened, ↻)."""
    rid = to_int(run_id)
    if rid is None:
        return select(ctx, m, None)
    p = m.page(PAGE)
    try:
        choices = run_choices(ctx, rid)
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    return {p["run"]: gr.update(choices=choices, value=rid), **render(ctx, m, rid, Filters.of(verdict, status, q),
                                                                      page, {})}


def needs_poll(run_id: int, state: dict[str, Any]) -> bool:
    """A finished generation, rendered without error, does not change any more."""
    return not (state.get("run") == run_id and state.get("status") in FINISHED and not state.get("error"))


def outputs(m: Manager) -> list[Any]:
    """Everything ``select`` / ``refresh`` may update."""
    names = ("run", "verdict", "status", "q", "banner", "summary", "problems", "count", "page", "state")
    return m.list(*(f"{PAGE}.{n}" for n in names))


# --------------------------------------------------------------------------- wiring

def wire(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)
    outs = outputs(m)
    view = [p["run"], p["verdict"], p["status"], p["q"]]
    view_outs = [p["problems"], p["count"], p["page"], p["banner"], p["state"]]

    def show(run_id: Any, verdict: Any, status: Any, q: Any, page: Any, state: dict[str, Any]) -> dict[Any, Any]:
        return problems_update(ctx, m, to_int(run_id), Filters.of(verdict, status, q), page, state)

    p["run"].input(lambda r: select(ctx, m, r), [p["run"]], outs)
    p["refresh_btn"].click(lambda *v: refresh(ctx, m, *v), [*view, p["page"]], outs, show_progress="hidden")
    # A new filter starts at page 1; .input, not .change: select() resets them and must not set them off.
    for event in (p["verdict"].input, p["status"].input, p["q"].submit):
        event(lambda r, v, s, q, st: show(r, v, s, q, 1, st), [*view, p["state"]], view_outs, show_progress="hidden")
    steps = ((p["prev_btn"].click, -1), (p["next_btn"].click, 1), (p["page"].submit, 0))
    for event, step in steps:
        event(lambda r, v, s, q, n, st, step=step: show(r, v, s, q, (to_int(n) or 1) + step, st),
              [*view, p["page"], p["state"]], view_outs, show_progress="hidden")

    def poll(run_id: Any, verdict: Any, status: Any, q: Any, page: Any, state: dict[str, Any]) -> Any:
        rid = to_int(run_id)
        if rid is None or not needs_poll(rid, state):
            return gr.skip()
        return render(ctx, m, rid, Filters.of(verdict, status, q), page, state) or gr.skip()

    p["timer"].tick(poll, [*view, p["page"], p["state"]], outs, show_progress="hidden", trigger_mode="always_last")
