"""The dashboard: ``build_dashboard(api_url, token)`` returns the Gradio Blocks.

Pages: Launch, Runs, Run, Playground, Compare. Every call goes through the REST API
(``ui.client``); nothing here touches the database or imports the service. Long calls are
streamed (logs, generation) or polled with ``gr.Timer`` (only the visible page polls), and
every API error is shown as one readable line, so the page survives an API restart.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.client import ApiClient, ApiError, AsyncApiClient
from ui.format import banner_html, esc
from ui.pages import compare, launch, playground, run, runs
from ui.pages.common import Ctx, FormSchema, local_schema, parse_schema, to_int
from ui.theme import CSS, THEME

TITLE = "Distill Studio"
HEALTH_S = 10.0
TAB_IDS = ("launch", "runs", "run", "playground", "compare")


def load_schema(api_url: str, token: str | None, fetch: bool = True) -> FormSchema:
    """The run-configuration schema: from the API when it answers, else from the installed core package."""
    if fetch:
        try:
            with ApiClient(api_url, token, timeout=3.0) as api:
                return parse_schema(api.config_schema(), "api")
        except ApiError:
            pass
    schema = local_schema()
    if schema is None:
        raise RuntimeError(f"cannot read the run configuration schema: the API at {api_url} does not answer "
                           "and the distill package is not installed here")
    return schema


def health_html(api: ApiClient) -> str:
    try:
        h = api.health()
    except ApiError as e:
        what = "API unreachable: retrying" if e.status is None else f"API error ({e.status}): retrying"
        return f'<span class="ds-badge ds-st-failed" title="{esc(e.message)}">● {what}</span>'
    workers = h.get("workers") or []
    gpus = sum(int(w.get("gpus") or 0) for w in workers if isinstance(w, dict))
    parts = [f"API {h.get('status', '?')}", f"{len(workers)} worker{'s' if len(workers) != 1 else ''}"]
    if gpus:
        parts.append(f"{gpus} GPU{'s' if gpus != 1 else ''}")
    bad = [k for k in ("database", "broker") if h.get(k) not in (None, "ok")]
    cls = "ds-st-succeeded" if h.get("status") == "ok" and not bad and workers else "ds-st-running"
    if not workers:
        parts.append("no worker seen: runs stay queued")
    for k in bad:
        parts.append(f"{k}: {h.get(k)}")
    version = f" · v{esc(h['version'])}" if h.get("version") else ""
    return f'<span class="ds-badge {cls}">● {esc(" · ".join(parts))}{version}</span>'


def build_dashboard(api_url: str, token: str | None = None, *, public_api_url: str | None = None,
                    link_base: str | None = None, schema: FormSchema | None = None,
                    fetch_schema: bool = True) -> gr.Blocks:
    """The dashboard against the API at ``api_url`` (server side), sending ``token`` as a Bearer token.

    ``public_api_url``: the API URL shown in copyable curl commands (default ``api_url``).
    ``link_base``: base URL the *browser* can reach the API at, for direct artifact links ("" = same
    origin, as when mounted in the API's own app); None = downloads go through the dashboard only.
    """
    api_url = api_url.rstrip("/")
    token = token or None
    ctx = Ctx(api_url=api_url, token=token, link_base=link_base, public_api_url=public_api_url or api_url,
              api=ApiClient(api_url, token), aapi=AsyncApiClient(api_url, token),
              schema=schema or load_schema(api_url, token, fetch_schema))

    with gr.Blocks(title=TITLE, fill_width=False) as demo:
        with gr.Row(elem_id="ds-header", equal_height=True):
            gr.HTML(f"<h1>⚗ {TITLE}</h1>"
                    '<span class="ds-muted">LoRA SFT + KL on <code>&lt;think&gt;</code> chain-of-thought data, '
                    "then base vs SFT</span>", scale=4, elem_id="ds-title")
            health = gr.HTML("", elem_id="ds-health", scale=1, min_width=220)
        with gr.Tabs(selected="launch", elem_id="ds-tabs") as tabs:
            with gr.Tab("Launch", id="launch", elem_id="tab-launch") as t_launch:
                lp = launch.build(ctx)
            with gr.Tab("Runs", id="runs", elem_id="tab-runs") as t_runs:
                rp = runs.build(ctx)
            with gr.Tab("Run", id="run", elem_id="tab-run") as t_run:
                up = run.build(ctx)
            with gr.Tab("Playground", id="playground", elem_id="tab-playground") as t_pg:
                pp = playground.build(ctx)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as t_cmp:
                cp = compare.build(ctx)
        health_timer = gr.Timer(HEALTH_S)

        launch.wire(ctx, lp)
        runs.wire(ctx, rp)
        run.wire(ctx, up)
        playground.wire(ctx, pp)
        compare.wire(ctx, cp)

        # Only the visible page polls.
        def timers(tab: str) -> list[Any]:
            return [gr.Timer(active=tab == "runs"), gr.Timer(active=tab == "run")]

        timer_outs = [rp.timer, up.timer]
        t_launch.select(lambda: timers("launch"), None, timer_outs, show_progress="hidden")
        t_runs.select(lambda s: [*timers("runs"), *runs.refresh(ctx, s)], [rp.status],
                      [*timer_outs, rp.table, rp.total, rp.banner], show_progress="hidden")
        t_run.select(lambda: timers("run"), None, timer_outs, show_progress="hidden")
        t_pg.select(lambda r: [*timers("playground"), *playground.refresh(ctx, r)], [pp.run],
                    [*timer_outs, pp.run, pp.banner], show_progress="hidden")
        t_cmp.select(lambda c: [*timers("compare"), *compare.refresh(ctx, c)], [cp.runs],
                     [*timer_outs, cp.runs, cp.banner], show_progress="hidden")

        def open_run(run_id: Any) -> list[Any]:
            rid = to_int(run_id)
            if rid is None:
                return [gr.skip(), gr.skip(), *([gr.skip()] * 2)]
            return [gr.Tabs(selected="run"), run.pick_update(ctx, rid), *timers("run")]

        open_outs = [tabs, up.pick, *timer_outs]

        # Launch → create the run → open its page.
        field_list = list(lp.fields.values())

        def do_launch(preset: str, presets: dict[str, Any], *values: Any) -> list[Any]:
            body = launch.request_body(ctx, preset, presets, list(values))
            try:
                created = ctx.api.create_run(body)
            except ApiError as e:
                unknown = {k: v for k, v in e.field_errors.items() if k not in lp.fields}
                msg = e.message if not e.field_errors or unknown else \
                    f"Not launched: fix the field{'s' if len(e.field_errors) > 1 else ''} marked in red ({', '.join(e.field_errors)})."
                return [banner_html(msg), *launch.field_updates(ctx, e.field_errors), *([gr.skip()] * len(open_outs))]
            rid = int(created["id"])
            return [banner_html(f"Launched run #{rid}.", "ok"), *launch.field_updates(ctx, {}), *open_run(rid)]

        lp.launch_btn.click(do_launch, [lp.preset, lp.presets_state, *field_list],
                            [lp.banner, *field_list, *open_outs], concurrency_limit=4)

        rp.open_btn.click(open_run, [rp.selected], open_outs)

        # Clone a run's configuration into the form.
        def clone(run_id: Any) -> list[Any]:
            rid = to_int(run_id)
            skip = [gr.skip()] * (3 + len(field_list) + 2)
            if rid is None:
                return [*skip, banner_html("Select a run first.", "info")]
            try:
                r = ctx.api.get_run(rid)
            except ApiError as e:
                return [*skip, banner_html(e.message)]
            cfg = dict(r.get("config") or {})
            cfg["name"] = f"{r.get('name') or cfg.get('name') or f'run {rid}'} (copy)"
            for k in ("output_dir", "resume"):
                cfg.pop(k, None)
            return [gr.Tabs(selected="launch"), gr.update(value=launch.NO_PRESET), "",
                    *launch.fill_updates(ctx, cfg), *timers("launch"),
                    banner_html(f"Form filled from run #{rid}: adjust and launch.", "info")]

        clone_outs = [tabs, lp.preset, lp.preset_info, *field_list, *timer_outs, lp.banner]
        rp.clone_btn.click(clone, [rp.selected], clone_outs)
        up.clone_btn.click(clone, [up.pick], clone_outs)

        def to_playground(run_id: Any) -> list[Any]:
            rid = to_int(run_id)
            upd, note = playground.refresh(ctx, rid)
            return [gr.Tabs(selected="playground"), upd, note, *timers("playground")]

        up.playground_btn.click(to_playground, [up.pick], [tabs, pp.run, pp.banner, *timer_outs])

        # Page load: presets, models, datasets; ?run=N opens that run, ?tab=NAME a page.
        def on_load(request: gr.Request) -> list[Any]:
            params = dict(request.query_params) if request is not None else {}
            out = list(launch.refresh(ctx))
            rid = to_int(params.get("run"))
            tab = params.get("tab") if params.get("tab") in TAB_IDS else None
            if rid is not None:
                out += [gr.Tabs(selected="run"), run.pick_update(ctx, rid), *timers("run")]
            else:
                out += [gr.Tabs(selected=tab) if tab else gr.skip(), run.pick_update(ctx, None),
                        *timers(tab or "launch")]
            out.append(health_html(ctx.api))
            return out

        load_outs = [lp.preset, lp.presets_state, lp.fields["model"], lp.fields["dataset"], lp.ds_pick,
                     lp.datasets_state, lp.banner, *open_outs, health]
        # Runs, Playground and Compare fill themselves when their tab opens (a table filled while its tab
        # is hidden shows no rows); with ?tab=NAME that page is filled once it is visible.
        def fill_opened(status: str, pg_run: Any, cmp_runs: list[Any], request: gr.Request) -> list[Any]:
            tab = dict(request.query_params).get("tab") if request is not None else None
            out: list[Any] = [gr.skip()] * 7
            if tab == "runs":
                out[0:3] = runs.refresh(ctx, status)
            elif tab == "playground":
                out[3:5] = playground.refresh(ctx, pg_run)
            elif tab == "compare":
                out[5:7] = compare.refresh(ctx, cmp_runs)
            return out

        demo.load(on_load, None, load_outs, show_progress="hidden").then(
            fill_opened, [rp.status, pp.run, cp.runs],
            [rp.table, rp.total, rp.banner, pp.run, pp.banner, cp.runs, cp.banner], show_progress="hidden")
        health_timer.tick(lambda: health_html(ctx.api), None, health, show_progress="hidden")

    demo.queue(default_concurrency_limit=8)
    demo.ds_ctx = ctx  # type: ignore[attr-defined]  # for tests and for mount.py
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Theme and CSS (Gradio 6 takes them at launch/mount time, not in ``gr.Blocks``)."""
    return {"theme": THEME, "css": CSS, "footer_links": ["api", "settings"]}
