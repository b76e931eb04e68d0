"""Compare: several runs in one metrics table, with their training curves overlaid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ui.client import ApiError
from ui.format import banner_html, compare_html, esc, metrics_frame, run_label
from ui.pages.common import Ctx, run_choices, to_int

SERIES = {"loss": "Training loss", "ce": "Cross-entropy", "kl": "KL to base", "eval_loss": "Validation loss",
          "lr": "Learning rate", "tokens_per_s": "Tokens/s"}


@dataclass
class ComparePage:
    runs: gr.Dropdown
    refresh_btn: gr.Button
    series: gr.Radio
    banner: gr.HTML
    table: gr.HTML
    points_state: gr.State


def build(ctx: Ctx) -> ComparePage:
    with gr.Row(equal_height=True):
        runs = gr.Dropdown(label="Runs to compare", choices=[], value=[], multiselect=True, scale=5, elem_id="cmp-runs")
        refresh_btn = gr.Button("↻", scale=0, min_width=50, elem_id="cmp-refresh")
    banner = gr.HTML("", elem_id="cmp-banner", elem_classes=["ds-collapse"])
    table = gr.HTML(compare_html([]), elem_id="cmp-table")
    series = gr.Radio([(v, k) for k, v in SERIES.items()], value="loss", label="Curve", elem_id="cmp-series")
    points_state = gr.State({})

    # Drawn afresh for each selection: a chart learns its set of colors (one per run) when it is created.
    @gr.render(inputs=[points_state, series])
    def _plot(points: dict[str, Any], which: str) -> None:
        title = SERIES.get(which, which)
        df = curves(points or {}, which)
        if df.empty:
            gr.HTML(f'<div class="ds-muted">No {esc(title.lower())} points for the selected runs.</div>')
            return
        gr.LinePlot(value=df, x="step", y="value", color="run", title=title, height=340, elem_id="cmp-plot",
                    x_title="step", y_title=title, tooltip="all",
                    y_axis_format=".1e" if which == "lr" else None)

    return ComparePage(runs, refresh_btn, series, banner, table, points_state)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype=float), "value": pd.Series(dtype=float), "series": pd.Series(dtype=str),
                         "run": pd.Series(dtype=str)})


def curves(points_by_run: dict[str, list[dict[str, Any]]], series: str) -> pd.DataFrame:
    frames = [metrics_frame(points, (series,), label=label) for label, points in points_by_run.items()]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def compare(ctx: Ctx, run_ids: list[Any]):  # noqa: ANN201
    ids = [i for i in (to_int(r) for r in run_ids or []) if i is not None]
    runs, points, errors = [], {}, []
    for rid in ids:
        try:
            run = ctx.api.get_run(rid)
            runs.append(run)
            points[run_label(run)] = ctx.api.get_metrics(rid)
        except ApiError as e:
            errors.append(e.message)
    return compare_html(runs), points, banner_html("; ".join(errors)) if errors else ""


def refresh(ctx: Ctx, current: list[Any]):  # noqa: ANN201
    try:
        choices = run_choices(ctx.api, limit=200, with_status=True)
    except ApiError as e:
        return gr.skip(), banner_html(e.message)
    ids = {v for _, v in choices}
    keep = [c for c in (to_int(x) for x in current or []) if c in ids]
    if not keep:  # by default the newest finished runs
        keep = [v for label, v in choices if "succeeded" in label][:3]
    return gr.update(choices=choices, value=keep), ""


def wire(ctx: Ctx, page: ComparePage) -> None:
    page.refresh_btn.click(lambda c: refresh(ctx, c), [page.runs], [page.runs, page.banner])
    page.runs.change(lambda r: compare(ctx, r), [page.runs], [page.table, page.points_state, page.banner],
                     trigger_mode="always_last")
