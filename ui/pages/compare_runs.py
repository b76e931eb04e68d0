"""Compare runs: several runs in one metrics table, with their training curves overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import pandas as pd

from ui.client import ApiCallError
from ui.manager import Manager
from ui.pages.common import Ctx, run_choices, to_int
from ui.pages.run_detail_view import metrics_frame
from ui.shared import (
    Catalog,
    banner_html,
    esc,
    fmt_duration,
    run_duration,
    run_label,
    significance_html,
    status_text,
)

PAGE = "compare"
SERIES = {"loss": "Training loss", "ce": "Cross-entropy", "kl": "KL to base", "eval_loss": "Validation loss",
          "lr": "Learning rate", "tokens_per_s": "Tokens/s"}
# The older per-model metrics shown per run (labels and units come from the catalog).
METRICS = ("accuracy", "avg_quality_score", "pct_with_think_tags", "avg_steps", "avg_new_tokens")


# --------------------------------------------------------------------------- rendering

def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _suites_cell(summary: dict[str, Any], catalog: Catalog) -> str:
    """Each suite's SFT pass@1 and its delta with the test's mark."""
    parts = []
    for suite, block in (summary.get("benchmarks") or {}).items():
        sft = (block.get("sft") or {}).get("pass@1")
        delta = block.get("delta_pass@1")
        parts.append(f"{esc(suite)}: {esc(catalog.fmt('pass@1', sft))} "
                     f'<span class="{catalog.delta_class("pass@1", delta) if block.get("significant") else "ds-neutral"}">'
                     f"({esc(catalog.fmt('pass@1', delta, signed=True))})</span> {significance_html(block, short=True)}")
    return "<br>".join(parts) or '<span class="ds-muted">—</span>'


def compare_html(runs: Sequence[dict[str, Any]], catalog: Catalog) -> str:
    """One row per run: config highlights, SFT pass@1 per suite, then per metric base → SFT with the colored delta."""
    if not runs:
        return '<div class="ds-muted">Pick runs above to compare them.</div>'
    head = ("<tr><th>Run</th><th>Status</th><th>Dataset</th><th>Rows</th><th>Epochs</th><th>LR</th><th>KL</th>"
            "<th>SFT pass@1<br><span class=ds-small>per suite (Δ vs base)</span></th>"
            + "".join(f"<th>{esc(catalog.label(k))}<br><span class=ds-small>base → SFT (Δ)</span></th>" for k in METRICS)
            + "<th>Duration</th></tr>")
    rows = []
    for r in runs:
        cfg = r.get("config") or {}
        summ = r.get("summary") or {}
        base, sft, d = summ.get("base") or {}, summ.get("sft") or {}, summ.get("deltas") or {}
        cells = [run_label(r), status_text(r), cfg.get("dataset", ""),
                 cfg.get("max_samples") if cfg.get("max_samples") is not None else "default",
                 _num(cfg.get("epochs")) if cfg.get("epochs") is not None else "—",
                 cfg.get("learning_rate", "—"), cfg.get("kl_coef") if cfg.get("use_kl_regularization") else "off"]
        tds = "".join(f"<td>{esc(c)}</td>" for c in cells) + f"<td>{_suites_cell(summ, catalog)}</td>"
        for key in METRICS:
            if not summ:
                tds += '<td class="ds-muted">—</td>'
                continue
            tds += (f"<td>{esc(catalog.fmt(key, base.get(key)))} → {esc(catalog.fmt(key, sft.get(key)))} "
                    f'<span class="{catalog.delta_class(key, d.get(key))}">'
                    f"({esc(catalog.fmt(key, d.get(key), signed=True))})</span></td>")
        tds += f"<td>{esc(fmt_duration(run_duration(r)))}</td>"
        rows.append(f"<tr>{tds}</tr>")
    return (f'<div class="ds-scroll"><table class="ds-table ds-compare"><thead>{head}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype=float), "value": pd.Series(dtype=float), "series": pd.Series(dtype=str),
                         "run": pd.Series(dtype=str)})


def curves(points_by_run: dict[str, list[dict[str, Any]]], series: str) -> pd.DataFrame:
    frames = [metrics_frame(points, (series,), label=label) for label, points in points_by_run.items()]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


# --------------------------------------------------------------------------- page

def build(ctx: Ctx, m: Manager) -> None:
    with gr.Row(equal_height=True):
        runs = gr.Dropdown(label="Runs to compare", choices=[], value=[], multiselect=True, scale=5, elem_id="cmp-runs")
        refresh_btn = gr.Button("↻", scale=0, min_width=50, elem_id="cmp-refresh")
    banner = gr.HTML("", elem_id="cmp-banner", elem_classes=["ds-collapse"])
    table = gr.HTML(compare_html([], Catalog()), elem_id="cmp-table")
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

    m.add(PAGE, dict(runs=runs, refresh_btn=refresh_btn, banner=banner, table=table, series=series,
                     points_state=points_state))


def compare(ctx: Ctx, m: Manager, run_ids: list[Any]) -> dict[Any, Any]:
    ids = [i for i in (to_int(r) for r in run_ids or []) if i is not None]
    runs, points, errors = [], {}, []
    for rid in ids:
        try:
            run = ctx.api.get_run(rid)
            runs.append(run)
            points[run_label(run)] = ctx.api.get_metrics(rid)
        except ApiCallError as e:
            errors.append(e.message)
    return {m["compare.table"]: compare_html(runs, ctx.catalog), m["compare.points_state"]: points,
            m["compare.banner"]: banner_html("; ".join(errors)) if errors else ""}


def refresh(ctx: Ctx, m: Manager, current: list[Any]) -> dict[Any, Any]:
    try:
        choices = run_choices(ctx.api, limit=200, with_status=True)
    except ApiCallError as e:
        return {m["compare.banner"]: banner_html(e.message)}
    ids = {v for _, v in choices}
    keep = [c for c in (to_int(x) for x in current or []) if c in ids]
    if not keep:  # by default the newest finished runs
        keep = [v for label, v in choices if "succeeded" in label][:3]
    return {m["compare.runs"]: gr.update(choices=choices, value=keep), m["compare.banner"]: ""}


def wire(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)
    p["refresh_btn"].click(lambda c: refresh(ctx, m, c), [p["runs"]], [p["runs"], p["banner"]])
    p["runs"].change(lambda r: compare(ctx, m, r), [p["runs"]], [p["table"], p["points_state"], p["banner"]],
                     trigger_mode="always_last")
