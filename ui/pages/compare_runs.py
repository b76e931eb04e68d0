"""Compare runs: several trained runs in one table (their training, final losses, benchmark results with their
jobs' results folded in, the older per-model metrics), with their training curves overlaid. Benchmark jobs are
not runs of their own here: they measure a run's models, so their results show in that run's row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import pandas as pd

from ui.client import ApiCallError
from ui.manager import Manager
from ui.pages.common import Ctx, run_choices, to_int, y_format
from ui.pages.run_detail_view import metrics_frame
from ui.pages.sweeps_view import diff_html
from ui.shared import (
    Catalog,
    banner_html,
    counted,
    esc,
    finite,
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
# The only one of METRICS with a paired test (the run's accuracy_test); the others' deltas stay uncolored.
TESTED = {"accuracy": "accuracy_test"}
# Vega's category10, one colour per run.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# Up to this many distinct steps the x axis is categorical: a numeric axis over a few steps ticks at 1.2, 1.4…
FEW_STEPS = 30


# --------------------------------------------------------------------------- rendering

def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def fmt_loss(v: Any) -> str:
    return f"{v:.4g}" if finite(v) else "—"


def final_losses(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The last training loss and the last validation loss of a run's curve points."""
    last = {k: next((p[k] for p in reversed(points) if finite(p.get(k))), None) for k in ("loss", "eval_loss")}
    return {"train_loss": last["loss"], "val_loss": last["eval_loss"]}


def newest_suites(summary: dict[str, Any], results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each suite's newest result: the run's own evaluation's, or a benchmark job's (results come newest first)."""
    out = {s: {"result": b, "job_id": None} for s, b in (summary.get("benchmarks") or {}).items()}
    for r in reversed(list(results)):
        out[r["suite"]] = {"result": r.get("result") or {}, "job_id": r.get("job_id")}
    return out


def _suite_line(suite: str, item: dict[str, Any], rid: Any, catalog: Catalog) -> str:
    block = item["result"]
    sft, delta = (block.get("sft") or {}).get("pass@1"), block.get("delta_pass@1")
    cls = catalog.delta_class("pass@1", delta) if block.get("significant") else "ds-neutral"
    job = item.get("job_id")
    origin = f' <span class="ds-small ds-muted">(job #{esc(job)})</span>' if job not in (None, rid) else ""
    return (f'<div class="ds-cmp-suite" data-suite="{esc(suite)}">{esc(suite)}: {esc(catalog.fmt("pass@1", sft))} '
            f'<span class="{cls}">({esc(catalog.fmt("pass@1", delta, signed=True))})</span> '
            f"{significance_html(block, short=True)}{origin}</div>")


def _suites_cell(suites: dict[str, dict[str, Any]], rid: Any, catalog: Catalog) -> str:
    return "".join(_suite_line(s, it, rid, catalog) for s, it in suites.items()) or '<span class="ds-muted">—</span>'


def _training_cell(cfg: dict[str, Any]) -> str:
    rows = cfg.get("max_samples") if cfg.get("max_samples") is not None else "all"
    epochs = _num(cfg.get("epochs")) if cfg.get("epochs") is not None else "—"
    kl = cfg.get("kl_coef") if cfg.get("use_kl_regularization") else "off"
    return (f"<div>{esc(cfg.get('dataset', ''))}</div><div class=ds-small>{esc(counted(rows, 'row'))} · "
            f"{esc(counted(epochs, 'epoch'))} · "
            f"LR {esc(cfg.get('learning_rate', '—'))} · KL {esc(kl)}</div>")


def _metric_cell(key: str, summ: dict[str, Any], catalog: Catalog) -> str:
    """``base → SFT`` and the delta, colored only when a paired test calls it significant."""
    if not summ:
        return '<td class="ds-muted">—</td>'
    base, sft, d = summ.get("base") or {}, summ.get("sft") or {}, (summ.get("deltas") or {}).get(key)
    test = summ.get(TESTED[key]) if key in TESTED else None
    cls = catalog.delta_class(key, d) if (test or {}).get("significant") else "ds-neutral"
    mark = f" {significance_html(test, short=True)}" if test else ""
    return (f"<td>{esc(catalog.fmt(key, base.get(key)))} → {esc(catalog.fmt(key, sft.get(key)))}<br>"
            f'<span class="{cls}">({esc(catalog.fmt(key, d, signed=True))})</span>{mark}</td>')


def _row(r: dict[str, Any], extra: dict[str, Any], catalog: Catalog) -> str:
    summ = r.get("summary") or {}
    suites = extra.get("suites") or newest_suites(summ, [])
    run = (f"<th scope=row>{esc(run_label(r))}<div class='ds-small ds-muted'>{esc(status_text(r))} · "
           f"{esc(fmt_duration(run_duration(r)))}</div></th>")
    losses = (f'<td class="ds-cmp-loss">train {esc(fmt_loss(extra.get("train_loss")))}<br>'
              f'validation {esc(fmt_loss(extra.get("val_loss")))}</td>')
    return (f'<tr data-run="{esc(r.get("id"))}">{run}<td>{_training_cell(r.get("config") or {})}</td>{losses}'
            f"<td>{_suites_cell(suites, r.get('id'), catalog)}</td>"
            + "".join(_metric_cell(k, summ, catalog) for k in METRICS) + "</tr>")


def compare_html(runs: Sequence[dict[str, Any]], catalog: Catalog,
                 extras: dict[Any, dict[str, Any]] | None = None) -> str:
    """One row per run: its training, final losses, SFT pass@1 per suite (its jobs' too), then per metric
    base → SFT with the delta. ``extras[id]``: ``suites`` (:func:`newest_suites`), ``train_loss``, ``val_loss``."""
    if not runs:
        return '<div class="ds-muted">Pick runs above to compare them.</div>'
    head = ("<tr><th>Run</th><th>Training</th><th>Final loss</th>"
            "<th>SFT pass@1 per suite<br><span class=ds-small>(Δ vs base)</span></th>"
            + "".join(f"<th>{esc(catalog.label(k))}<br><span class=ds-small>base → SFT (Δ)</span></th>" for k in METRICS)
            + "</tr>")
    rows = "".join(_row(r, (extras or {}).get(r.get("id")) or {}, catalog) for r in runs)
    return (f'<div class="ds-scroll"><table class="ds-table ds-compare"><thead>{head}</thead>'
            f"<tbody>{rows}</tbody></table></div>")


def pairs_html(suites: dict[str, Any]) -> str:
    """Per suite, every pair of runs' fine-tuned models on the same problems, Holm-corrected across the pairs."""
    parts = []
    for suite, block in (suites or {}).items():
        rows = "".join(
            f"<tr><td>{esc(c['a'])}</td><td>{esc(c['b'])}</td>"
            f'<td class="{("ds-good" if c["delta"] > 0 else "ds-bad") if c["significant"] else "ds-neutral"}">'
            f"{100 * c['delta']:+.1f} pp</td><td>{c['p_value']:.2g}</td><td>{c['p_holm']:.2g}</td>"
            f"<td>{'yes' if c['significant'] else 'no: could be noise'}</td></tr>" for c in block["pairs"])
        parts.append(f'<div class="ds-small">{esc(suite)}: fine-tuned models pair by pair on the '
                     f"{esc(block['n_problems_compared'])} problems all answered (Holm-corrected)</div>"
                     f'<table class="ds-table ds-pairs" data-suite="{esc(suite)}"><thead><tr><th>run A</th><th>run B'
                     "</th><th>B − A</th><th>p</th><th>p (Holm)</th><th>different</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table>")
    return f'<div id="cmp-pairs">{"".join(parts)}</div>' if parts else ""


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype=float), "value": pd.Series(dtype=float), "series": pd.Series(dtype=str),
                         "run": pd.Series(dtype=str)})


def curves(points_by_run: dict[str, list[dict[str, Any]]], series: str) -> pd.DataFrame:
    frames = [metrics_frame(points, (series,), label=label) for label, points in points_by_run.items()]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def integer_steps(df: pd.DataFrame, few: int = FEW_STEPS) -> pd.DataFrame:
    """Steps as categories when there are few of them: the axis then labels each step, never 1.2 or 1.4
    (integers, so the chart still orders them as numbers). Only for a chart drawn afresh with its data: an
    existing chart keeps its axis type when a new value replaces its data."""
    steps = df["step"].dropna()
    if steps.empty or steps.nunique() > few or not (steps % 1 == 0).all():
        return df
    cats = sorted(int(s) for s in steps.unique())
    return df.assign(step=pd.Categorical(df["step"].map(lambda s: int(s) if pd.notna(s) else None), categories=cats))


def chart(df: pd.DataFrame, which: str, elem_id: str = "cmp-plot") -> None:
    """A line per run; points when a run has only one (a single point draws no line: one epoch's validation loss).
    The colours are given run by run: without a colour map a re-rendered chart keeps the colour domain of its first
    drawing and drops the lines of runs added since."""
    title = SERIES.get(which, which)
    single = bool((df.groupby("run")["step"].count() < 2).any())
    kind = gr.ScatterPlot if single else gr.LinePlot
    kind(value=integer_steps(df), x="step", y="value", color="run", title=title, height=340, elem_id=elem_id,
         x_title="step", y_title=title, tooltip="all", y_axis_format=y_format(which),
         color_map={run: PALETTE[i % len(PALETTE)] for i, run in enumerate(dict.fromkeys(df["run"]))})


# --------------------------------------------------------------------------- page

def build(ctx: Ctx, m: Manager) -> None:
    with gr.Row(equal_height=True):
        runs = gr.Dropdown(label="Runs to compare", choices=[], value=[], multiselect=True, scale=5, elem_id="cmp-runs",
                           info="Trained runs; a benchmark job's results show in the row of the run it measures")
        refresh_btn = gr.Button("↻", scale=0, min_width=50, elem_id="cmp-refresh")
    banner = gr.HTML("", elem_id="cmp-banner", elem_classes=["ds-collapse"])
    table = gr.HTML(compare_html([], Catalog()), elem_id="cmp-table")
    series = gr.Radio([(v, k) for k, v in SERIES.items()], value="loss", label="Curve", elem_id="cmp-series")
    points_state = gr.State({})

    # Drawn afresh for each selection: a chart learns its set of colors (one per run) when it is created.
    @gr.render(inputs=[points_state, series])
    def _plot(points: dict[str, Any], which: str) -> None:
        df = curves(points or {}, which)
        if df.empty:
            title = SERIES.get(which, which)
            gr.HTML(f'<div class="ds-muted">No {esc(title.lower())} points for the selected runs.</div>')
            return
        chart(df, which)

    m.add(PAGE, dict(runs=runs, refresh_btn=refresh_btn, banner=banner, table=table, series=series,
                     points_state=points_state))


def _fetch(ctx: Ctx, rid: int) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A run, its curve points, and what its row needs besides the run (final losses, newest suite results)."""
    run = ctx.api.get_run(rid)
    points = ctx.api.get_metrics(rid)
    try:
        results = ctx.api.run_benchmarks(rid).get("results") or []
    except ApiCallError:
        results = []  # the row still shows the run's own evaluation
    return run, points, {**final_losses(points), "suites": newest_suites(run.get("summary") or {}, results)}


def compare(ctx: Ctx, m: Manager, run_ids: list[Any]) -> dict[Any, Any]:
    ids = [i for i in (to_int(r) for r in run_ids or []) if i is not None]
    runs, points, extras, errors = [], {}, {}, []
    for rid in ids:
        try:
            run, pts, extra = _fetch(ctx, rid)
        except ApiCallError as e:
            errors.append(e.message)
            continue
        if run.get("parent_id") is not None:
            errors.append(f"#{rid} is a benchmark job of run #{run['parent_id']}: its results are in that run's row")
            continue
        runs.append(run)
        points[run_label(run)], extras[rid] = pts, extra
    tests = ""
    if len(runs) >= 2:
        try:
            both = ctx.api.compare_runs([r["id"] for r in runs])
            tests = pairs_html(both.get("suites") or {}) + diff_html(both.get("diff"), both.get("defaults"), noun="run")
        except ApiCallError as e:
            errors.append(e.message)
    return {m["compare.table"]: compare_html(runs, ctx.catalog, extras) + tests, m["compare.points_state"]: points,
            m["compare.banner"]: banner_html("; ".join(errors), "info") if errors else ""}


def refresh(ctx: Ctx, m: Manager, current: list[Any]) -> dict[Any, Any]:
    try:  # trained runs only: a benchmark job or a trace generation has no training to compare
        choices = run_choices(ctx.api, limit=200, with_status=True, trained_only=True)
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
