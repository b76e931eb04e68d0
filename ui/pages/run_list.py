"""Runs: every run in a table that refreshes itself; filter by status; open / cancel / resume / delete / clone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import gradio as gr
import pandas as pd

from ui.client import STATUSES, ApiCallError
from ui.manager import Manager
from ui.pages.common import Ctx, to_int
from ui.shared import (
    Catalog,
    banner_html,
    finite,
    fmt_duration,
    fmt_time,
    run_duration,
    significance,
    status_text,
)

PAGE = "runs"
ALL = "all"
REFRESH_S = 3.0
COLUMNS = ["ID", "Name", "Model", "Dataset", "Status", "Progress", "Started", "Duration", "SFT accuracy", "Δ accuracy"]


# --------------------------------------------------------------------------- rendering

def sft_accuracy(run: dict[str, Any], catalog: Catalog) -> tuple[str, str]:
    """The SFT model's accuracy and its delta to base, with "n.s." when the paired test says noise."""
    summary = run.get("summary") or {}
    sft = (summary.get("sft") or {}).get("accuracy")
    delta = (summary.get("deltas") or {}).get("accuracy")
    delta_text = catalog.fmt("accuracy", delta, signed=True) if finite(delta) else "—"
    if finite(delta) and summary.get("accuracy_test"):
        _, _, cls = significance(summary["accuracy_test"])
        delta_text += " (n.s.)" if cls == "ds-sig-no" else " ★" if cls == "ds-sig-yes" else ""
    return (catalog.fmt("accuracy", sft) if finite(sft) else "—"), delta_text


def runs_frame(items: Sequence[dict[str, Any]], catalog: Catalog, now: datetime | None = None) -> pd.DataFrame:
    rows = []
    for r in items:
        cfg = r.get("config") or {}
        progress = r.get("progress")
        acc, delta = sft_accuracy(r, catalog)
        name = r.get("name") or cfg.get("name") or ""
        if r.get("parent_id"):
            name = f"{name} (benchmarks of #{r['parent_id']})" if name else f"benchmarks of #{r['parent_id']}"
        rows.append([
            r.get("id"), name, cfg.get("model", ""), cfg.get("dataset", ""), status_text(r),
            f"{progress * 100:.0f}%" if finite(progress) else "—",
            fmt_time(r.get("started_at") or r.get("created_at")), fmt_duration(run_duration(r, now)), acc, delta,
        ])
    return pd.DataFrame(rows, columns=COLUMNS)


# --------------------------------------------------------------------------- page

def build(ctx: Ctx, m: Manager) -> None:
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        status = gr.Radio([ALL, *STATUSES], value=ALL, label="Status", scale=4, elem_id="runs-status")
        refresh_btn = gr.Button("↻ Refresh", size="sm", scale=0, min_width=110, elem_id="runs-refresh")
    banner = gr.HTML("", elem_id="runs-banner", elem_classes=["ds-collapse"])
    table = gr.Dataframe(headers=COLUMNS, value=runs_frame([], Catalog()), interactive=False, wrap=True,
                         max_height=520, elem_id="runs-table",
                         label="Runs (click a row to select it; refreshes every few seconds)",
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
    m.add(PAGE, dict(status=status, refresh_btn=refresh_btn, banner=banner, table=table, total=total, selected=selected,
                     open_btn=open_btn, cancel_btn=cancel_btn, resume_btn=resume_btn, delete_btn=delete_btn,
                     clone_btn=clone_btn, timer=timer))


def refresh(ctx: Ctx, m: Manager, status: str | None) -> dict[Any, Any]:
    try:
        page = ctx.api.list_runs(status=None if status in (None, ALL) else status, limit=200)
    except ApiCallError as e:
        return {m["runs.banner"]: banner_html(e.message)}
    items = page.get("items", [])
    total = page.get("total", len(items))
    note = f"{total} run{'s' if total != 1 else ''}" + (f" (showing the newest {len(items)})" if total > len(items) else "")
    return {m["runs.table"]: runs_frame(items, ctx.catalog), m["runs.total"]: note, m["runs.banner"]: ""}


def outputs(m: Manager) -> list[Any]:
    return m.list("runs.table", "runs.total", "runs.banner")


def wire(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)
    gr.on([p["status"].change, p["refresh_btn"].click, p["timer"].tick], lambda s: refresh(ctx, m, s), [p["status"]],
          outputs(m), show_progress="hidden", trigger_mode="always_last")

    def on_select(evt: gr.SelectData) -> Any:
        row = evt.row_value or []
        rid = to_int(row[0]) if row else None
        return str(rid) if rid is not None else gr.skip()

    p["table"].select(on_select, None, [p["selected"]], show_progress="hidden")

    def act(action: str, run_id: Any, status: str) -> dict[Any, Any]:
        rid = to_int(run_id)
        if rid is None:
            return {p["banner"]: banner_html("Select a run first: click its row in the table.", "info")}
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
        except ApiCallError as e:
            return {**refresh(ctx, m, status), p["banner"]: banner_html(e.message)}
        out = refresh(ctx, m, status)
        if not out.get(p["banner"]):
            out[p["banner"]] = banner_html(msg, "ok")
        return out

    ins = [p["selected"], p["status"]]
    p["cancel_btn"].click(lambda r, s: act("cancel", r, s), ins, outputs(m))
    p["resume_btn"].click(lambda r, s: act("resume", r, s), ins, outputs(m))
    p["delete_btn"].click(lambda r, s: act("delete", r, s) if r else gr.skip(), ins, outputs(m),
                          js="(r, s) => [(r && confirm('Delete run #' + r + ' and its files?')) ? r : null, s]")
