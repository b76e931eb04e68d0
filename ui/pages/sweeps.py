"""Sweeps: launch a grid of runs (several values per field), follow it, read its table and verdict (a winner only
when the paired tests separate it from every other point), the heat map of two numeric axes, the curves of all its
points overlaid, and the configuration that differs between points."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.client import ApiCallError
from ui.manager import Manager
from ui.pages.common import CLICK_JS, Ctx, to_int
from ui.pages.compare_runs import SERIES, chart, curves
from ui.pages.sweeps_view import diff_html, heatmap_html, points_html, verdict_html
from ui.shared import banner_html, esc

PAGE = "sweeps"
REFRESH_S = 3.0
GRID_HINT = "learning_rate=3e-4,1e-3\nuse_kl_regularization=true,false"


class FormError(ValueError):
    """A line of the sweep form that is not FIELD=VALUE(S)."""


def _lines(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise FormError(f"{what}, line {n}: expected FIELD=VALUE, got {line.strip()!r}")
        out.append((name.strip(), value.strip()))
    return out


def sweep_body(preset: str | None, base_text: str, grid_text: str, seeds: str, max_parallel: Any,
               objective: str, name: str) -> dict[str, Any]:
    """The POST /sweeps body from the form; a ``FormError`` names the line that is not FIELD=VALUE(S)."""
    base = dict(_lines(base_text, "Base fields"))
    if preset and preset.strip():
        base["preset"] = preset.strip()
    grid = {k: [v.strip() for v in vals.split(",") if v.strip()] for k, vals in _lines(grid_text, "Axes")}
    seed_list = [s.strip() for s in (seeds or "").split(",") if s.strip()]
    if not all(s.lstrip("-").isdigit() for s in seed_list):
        raise FormError(f"Seeds: expected comma-separated whole numbers, got {seeds!r}")
    body: dict[str, Any] = {"base": base, "grid": grid, "seeds": [int(s) for s in seed_list],
                            "max_parallel": to_int(max_parallel) or 1}
    if objective and objective.strip():
        body["objective"] = objective.strip()
    if name and name.strip():
        body["name"] = name.strip()
    return body


def sweep_label(s: dict[str, Any]) -> str:
    return f"#{s['id']} {s.get('name') or ''} · {len(s.get('points') or [])} points · {s.get('status')}"


# --------------------------------------------------------------------------- page

def build(ctx: Ctx, m: Manager) -> None:
    with gr.Accordion("New sweep", open=False, elem_id="sweep-new"):
        with gr.Row():
            preset = gr.Textbox("demo", label="Preset (empty: the plain defaults)", elem_id="sweep-preset", scale=1)
            sweep_name = gr.Textbox(label="Name", placeholder="optional", elem_id="sweep-name", scale=1)
            max_parallel = gr.Number(1, precision=0, minimum=1, label="Runs at once", elem_id="sweep-parallel", scale=1)
        with gr.Row():
            grid = gr.Textbox(label="Axes: FIELD=V1,V2 per line (every combination is a run)", lines=3,
                              placeholder=GRID_HINT, elem_id="sweep-grid")
            base = gr.Textbox(label="Base fields: FIELD=VALUE per line (shared by every run)", lines=3,
                              placeholder="max_samples=100\nepochs=1", elem_id="sweep-base")
        with gr.Row():
            seeds = gr.Textbox(label="Seeds (each point repeated per seed)", placeholder="e.g. 1,2,3",
                               elem_id="sweep-seeds")
            objective = gr.Textbox(label="Objective (SUITE or SUITE:METRIC)", placeholder="first suite's pass@1",
                                   elem_id="sweep-objective")
        with gr.Row():
            preview_btn = gr.Button("Preview runs", elem_id="sweep-preview")
            launch_btn = gr.Button("Launch sweep", variant="primary", elem_id="sweep-launch")
        form_out = gr.HTML("", elem_id="sweep-form-out")
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(label="Sweep", choices=[], value=None, scale=5, elem_id="sweep-pick")
        refresh_btn = gr.Button("↻", scale=0, min_width=50, elem_id="sweep-refresh")
        cancel_btn = gr.Button("Cancel sweep", variant="stop", visible=False, scale=1, elem_id="sweep-cancel")
        resume_btn = gr.Button("Resume sweep", visible=False, scale=1, elem_id="sweep-resume")
    banner = gr.HTML("", elem_id="sweep-banner", elem_classes=["ds-collapse"])
    verdict = gr.HTML("", elem_id="sweep-verdict-box")
    table = gr.HTML(points_html(None), elem_id="sweep-table", js_on_load=CLICK_JS)
    heatmap = gr.HTML("", elem_id="sweep-heat")
    series = gr.Radio([(v, k) for k, v in SERIES.items()], value="loss", label="Curves of every point",
                      elem_id="sweep-series")
    points_state = gr.State({})

    @gr.render(inputs=[points_state, series])
    def _plot(points: dict[str, Any], which: str) -> None:
        df = curves(points or {}, which)
        if not df.empty:
            chart(df, which, elem_id="sweep-plot")

    diff = gr.HTML("", elem_id="sweep-diff-box")
    timer = gr.Timer(REFRESH_S, active=False)
    m.add(PAGE, dict(preset=preset, sweep_name=sweep_name, max_parallel=max_parallel, grid=grid, base=base,
                     seeds=seeds, objective=objective, preview_btn=preview_btn, launch_btn=launch_btn,
                     form_out=form_out, pick=pick, refresh_btn=refresh_btn, cancel_btn=cancel_btn,
                     resume_btn=resume_btn, banner=banner, verdict=verdict, table=table, heatmap=heatmap,
                     series=series, points_state=points_state, diff=diff, timer=timer))


def outputs(m: Manager) -> list[Any]:
    return m.list(*(f"{PAGE}.{n}" for n in ("pick", "banner", "verdict", "table", "heatmap", "points_state", "diff",
                                              "cancel_btn", "resume_btn")))


def show(ctx: Ctx, m: Manager, sweep_id: Any) -> dict[Any, Any]:
    p = m.page(PAGE)
    sid = to_int(sweep_id)
    if sid is None:
        return {p["table"]: points_html(None), p["verdict"]: "", p["heatmap"]: "", p["diff"]: "",
                p["points_state"]: {}, p["cancel_btn"]: gr.update(visible=False),
                p["resume_btn"]: gr.update(visible=False)}
    try:
        sweep = ctx.api.get_sweep(sid)
        summary = sweep.get("summary") or {}
        curves_by_point = {r["name"]: ctx.api.get_metrics(r["run_id"]) for r in summary.get("points", [])
                           if r.get("run_id")}
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    unfinished = any(r.get("status") != "done" for r in summary.get("points", []))
    return {p["banner"]: "", p["verdict"]: verdict_html(summary), p["table"]: points_html(summary),
            p["heatmap"]: heatmap_html(summary, sweep.get("spec") or {}), p["points_state"]: curves_by_point,
            p["diff"]: diff_html(summary.get("diff"), ctx.schema.defaults),
            p["cancel_btn"]: gr.update(visible=sweep["status"] == "running"),
            p["resume_btn"]: gr.update(visible=sweep["status"] != "running" and unfinished)}


def refresh(ctx: Ctx, m: Manager, current: Any = None) -> dict[Any, Any]:
    p = m.page(PAGE)
    try:
        sweeps = ctx.api.list_sweeps()
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    ids = [s["id"] for s in sweeps]
    sid = to_int(current) if to_int(current) in ids else (ids[0] if ids else None)
    return {p["pick"]: gr.update(choices=[(sweep_label(s), s["id"]) for s in sweeps], value=sid),
            **show(ctx, m, sid)}


def submit(ctx: Ctx, m: Manager, dry_run: bool, *values: Any) -> dict[Any, Any]:
    p = m.page(PAGE)
    try:
        body = sweep_body(*values)
        answer = ctx.api.create_sweep({**body, "dry_run": dry_run})
    except FormError as e:
        return {p["form_out"]: banner_html(str(e))}
    except ApiCallError as e:
        return {p["form_out"]: banner_html(e.message)}
    if dry_run:
        names = "".join(f"<li>{esc(x['name'])}" + (f" (also {esc(', '.join(x['merged']))})" if x["merged"] else "")
                        + "</li>" for x in answer["points"])
        return {p["form_out"]: f'<div id="sweep-plan"><b>{answer["n_runs"]} runs</b><ul>{names}</ul></div>'}
    return {p["form_out"]: banner_html(f"Sweep #{answer['id']} queued: {len(answer['points'])} runs", "ok"),
            **refresh(ctx, m, answer["id"])}


def act(ctx: Ctx, m: Manager, what: str, sweep_id: Any) -> dict[Any, Any]:
    sid = to_int(sweep_id)
    if sid is None:
        return gr.skip()
    try:
        (ctx.api.cancel_sweep if what == "cancel" else ctx.api.resume_sweep)(sid)
    except ApiCallError as e:
        return {m[f"{PAGE}.banner"]: banner_html(e.message)}
    return refresh(ctx, m, sid)


def wire(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)
    form = [p[n] for n in ("preset", "base", "grid", "seeds", "max_parallel", "objective", "sweep_name")]
    outs = [*outputs(m), p["form_out"]]
    p["preview_btn"].click(lambda *v: submit(ctx, m, True, *v), form, outs)
    p["launch_btn"].click(lambda *v: submit(ctx, m, False, *v), form, outs)
    p["pick"].input(lambda s: show(ctx, m, s), [p["pick"]], outputs(m))
    gr.on([p["refresh_btn"].click, p["timer"].tick], lambda s: refresh(ctx, m, s), [p["pick"]], outputs(m),
          show_progress="hidden")
    p["cancel_btn"].click(lambda s: act(ctx, m, "cancel", s), [p["pick"]], outputs(m),
                          js="(s) => [confirm('Cancel sweep #' + s + ' and its unfinished runs?') ? s : null]")
    p["resume_btn"].click(lambda s: act(ctx, m, "resume", s), [p["pick"]], outputs(m))
