"""Runs: every run in a table that refreshes itself; filter by status; open / cancel / resume / delete / clone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.client import STATUSES, ApiError
from ui.format import RUNS_COLUMNS, banner_html, runs_frame
from ui.pages.common import Ctx, to_int

ALL = "all"
REFRESH_S = 3.0


@dataclass
class RunsPage:
    status: gr.Radio
    table: gr.Dataframe
    total: gr.Markdown
    selected: gr.Textbox
    open_btn: gr.Button
    cancel_btn: gr.Button
    resume_btn: gr.Button
    delete_btn: gr.Button
    clone_btn: gr.Button
    refresh_btn: gr.Button
    banner: gr.HTML
    timer: gr.Timer


def build(ctx: Ctx) -> RunsPage:
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        status = gr.Radio([ALL, *STATUSES], value=ALL, label="Status", scale=4, elem_id="runs-status")
        refresh_btn = gr.Button("↻ Refresh", size="sm", scale=0, min_width=110, elem_id="runs-refresh")
    banner = gr.HTML("", elem_id="runs-banner", elem_classes=["ds-collapse"])
    table = gr.Dataframe(headers=RUNS_COLUMNS, value=runs_frame([]), interactive=False, wrap=True, max_height=520,
                         elem_id="runs-table", label="Runs (click a row to select it; refreshes every few seconds)",
                         column_widths=["5%", "13%", "13%", "13%", "12%", "7%", "12%", "8%", "9%", "8%"])
    total = gr.Markdown("", elem_classes=["ds-muted"])
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        selected = gr.Textbox(label="Selected run ID", value="", scale=1, min_width=140, elem_id="runs-selected",
                              placeholder="click a row")
        with gr.Column(scale=4, min_width=300):
            with gr.Row(elem_classes=["ds-btn-row"]):
                open_btn = gr.Button("Open →", variant="primary", size="sm", min_width=90, elem_id="runs-open")
                cancel_btn = gr.Button("■ Cancel", variant="stop", size="sm", min_width=90, elem_id="runs-cancel")
                resume_btn = gr.Button("↻ Resume", size="sm", min_width=90, elem_id="runs-resume")
                delete_btn = gr.Button("✖ Delete", size="sm", min_width=90, elem_id="runs-delete")
                clone_btn = gr.Button("✎ Clone into form", size="sm", min_width=130, elem_id="runs-clone")
    timer = gr.Timer(REFRESH_S, active=False)
    return RunsPage(status, table, total, selected, open_btn, cancel_btn, resume_btn, delete_btn, clone_btn,
                    refresh_btn, banner, timer)


def refresh(ctx: Ctx, status: str | None):  # noqa: ANN201
    try:
        page = ctx.api.list_runs(status=None if status in (None, ALL) else status, limit=200)
    except ApiError as e:
        return gr.skip(), gr.skip(), banner_html(e.message)
    items = page.get("items", [])
    total = page.get("total", len(items))
    note = f"{total} run{'s' if total != 1 else ''}" + (f" (showing the newest {len(items)})" if total > len(items) else "")
    return runs_frame(items), note, ""


def wire(ctx: Ctx, page: RunsPage) -> None:
    outs = [page.table, page.total, page.banner]
    gr.on([page.status.change, page.refresh_btn.click, page.timer.tick], lambda s: refresh(ctx, s), [page.status], outs,
          show_progress="hidden", trigger_mode="always_last")

    def on_select(evt: gr.SelectData):  # noqa: ANN202
        row = evt.row_value or []
        rid = to_int(row[0]) if row else None
        return str(rid) if rid is not None else gr.skip()

    page.table.select(on_select, None, page.selected, show_progress="hidden")

    def act(action: str, run_id: Any, status: str):  # noqa: ANN202
        rid = to_int(run_id)
        if rid is None:
            return gr.skip(), gr.skip(), banner_html("Select a run first: click its row in the table.", "info")
        try:
            if action == "cancel":
                ctx.api.cancel_run(rid)
                msg = f"Cancel requested for run #{rid}: it stops within a few seconds."
            elif action == "resume":
                ctx.api.resume_run(rid)
                msg = f"Run #{rid} queued again; it resumes from its last checkpoint."
            else:
                ctx.api.delete_run(rid)
                msg = f"Run #{rid} deleted with its files."
        except ApiError as e:
            table, total, _ = refresh(ctx, status)
            return table, total, banner_html(e.message)
        table, total, err = refresh(ctx, status)
        return table, total, err or banner_html(msg, "ok")

    page.cancel_btn.click(lambda r, s: act("cancel", r, s), [page.selected, page.status], outs)
    page.resume_btn.click(lambda r, s: act("resume", r, s), [page.selected, page.status], outs)
    page.delete_btn.click(lambda r, s: act("delete", r, s) if r else (gr.skip(), gr.skip(), ""),
                          [page.selected, page.status], outs,
                          js="(r, s) => [(r && confirm('Delete run #' + r + ' and its files?')) ? r : null, s]")
