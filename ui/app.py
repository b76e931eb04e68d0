"""The dashboard: ``build_dashboard(api_url, token)`` returns the Gradio Blocks.

Pages: Launch, Runs, Run, Traces, Benchmarks, Playground, Compare, Sweeps. Every call goes through the REST API
(``ui.client``); nothing here touches the database or imports the service. Long calls are
streamed (logs, generation) or polled with ``gr.Timer`` (only the visible page polls), and
every API error is shown as one readable line, so the page survives an API restart.

Each page module builds its components into the :class:`~ui.manager.Manager` under its name and
wires what stays inside it; this module wires what crosses pages (open a run, clone it into the
form, open a benchmark result, open a trace generation, train on its traces) and the query string (``?run=ID``,
``?tab=NAME``).
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import httpx

from ui.client import ApiCallError, ApiClient, AsyncApiClient
from ui.manager import Manager, merge
from ui.pages import benchmarks, compare_runs, launch, playground, run_detail, run_list, sweeps, traces
from ui.pages.common import Ctx, FormSchema, click_data, parse_schema, to_int
from ui.shared import banner_html, counted, esc
from ui.theme import CSS, THEME

TITLE = "Distill Studio"
HEALTH_S = 10.0
# (tab id, title, page module) in tab order.
PAGES = (("launch", "Launch", launch), ("runs", "Runs", run_list), ("run", "Run", run_detail),
         ("traces", "Traces", traces), ("benchmarks", "Benchmarks", benchmarks),
         ("playground", "Playground", playground), ("compare", "Compare", compare_runs), ("sweeps", "Sweeps", sweeps))
TAB_IDS = tuple(tab for tab, _, _ in PAGES)
# Gradio 6 leaves the divider of the footer's absent "api" link before "Settings": hide it.
FOOTER_CSS = '\nfooter[aria-label="Gradio footer navigation"] > div.divider:first-of-type { display: none; }\n'


def load_schema(api_url: str, token: str | None, transport: httpx.BaseTransport | None = None,
                attempts: int = 3) -> FormSchema:
    """The run-configuration schema from the API; an empty form (which says why) if it never answers."""
    for i in range(attempts):
        try:
            with ApiClient(api_url, token, timeout=3.0, transport=transport) as api:
                return parse_schema(api.config_schema(), "api")
        except ApiCallError as e:
            if e.status is not None:  # it answered, with an error: asking again will not help
                break
            if i + 1 < attempts:
                time.sleep(1.0)
    return FormSchema([], "none")


def health_html(api: ApiClient) -> str:
    try:
        h = api.health()
    except ApiCallError as e:
        what = "API unreachable: retrying" if e.status is None else f"API error ({e.status}): retrying"
        return f'<span class="ds-badge ds-st-failed" title="{esc(e.message)}">● {what}</span>'
    workers = h.get("workers") or []
    gpus = sum(len(w.get("gpus") or []) if isinstance(w.get("gpus"), list) else int(w.get("gpus") or 0)
               for w in workers if isinstance(w, dict))
    parts = [f"API {h.get('status', '?')}", counted(len(workers), "worker")]
    if gpus:
        parts.append(counted(gpus, "GPU"))
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
                    schema_transport: httpx.BaseTransport | None = None) -> gr.Blocks:
    """The dashboard against the API at ``api_url`` (server side), sending ``token`` as a Bearer token.

    ``public_api_url``: the API URL shown in copyable curl commands (default ``api_url``).
    ``link_base``: base URL the *browser* can reach the API at, for direct artifact links ("" = same
    origin, as when mounted in the API's own app); None = downloads go through the dashboard only.
    ``schema_transport``: how to reach the API for the form's schema while building (mount.py answers
    it in-process: the server is not listening yet).
    """
    api_url = api_url.rstrip("/")
    token = token or None
    ctx = Ctx(api_url=api_url, token=token, link_base=link_base, public_api_url=public_api_url or api_url,
              api=ApiClient(api_url, token), aapi=AsyncApiClient(api_url, token),
              schema=schema or load_schema(api_url, token, schema_transport))
    m = Manager()

    with gr.Blocks(title=TITLE, fill_width=False) as demo:
        with gr.Row(elem_id="ds-header", equal_height=True):
            gr.HTML(f"<h1>⚗ {TITLE}</h1>"
                    '<span class="ds-muted">LoRA SFT + KL on <code>&lt;think&gt;</code> chain-of-thought data, '
                    "then base vs SFT</span>", scale=4, elem_id="ds-title")
            health = gr.HTML("", elem_id="ds-health", scale=1, min_width=220)
        with gr.Tabs(selected="launch", elem_id="ds-tabs") as tabs:
            tab_blocks = {}
            for tab, title, page in PAGES:
                with gr.Tab(title, id=tab, elem_id=f"tab-{tab}") as t:
                    page.build(ctx, m)
                tab_blocks[tab] = t
        m.add("app", dict(tabs=tabs, health=health))
        for _, _, page in PAGES:
            page.wire(ctx, m)
        gr.HTML(footer_html(ctx), elem_id="ds-footer")
        wire_navigation(ctx, m, tab_blocks)
        wire_load(ctx, m, demo)
        gr.Timer(HEALTH_S).tick(lambda: health_html(ctx.api), None, health, show_progress="hidden")

    demo.queue(default_concurrency_limit=8)
    demo.ds_ctx = ctx  # type: ignore[attr-defined]  # for tests and for mount.py
    demo.ds_manager = m  # type: ignore[attr-defined]  # for tests
    return demo


# --------------------------------------------------------------------------- across pages

def timers(m: Manager, tab: str) -> dict[Any, Any]:
    """Only the visible page polls."""
    return {timer: gr.Timer(active=page == tab) for page, timer in m.named("timer").items()}


def timer_list(m: Manager) -> list[Any]:
    return list(m.named("timer").values())


def open_tab(m: Manager, tab: str) -> dict[Any, Any]:
    return {m["app.tabs"]: gr.Tabs(selected=tab), **timers(m, tab)}


def open_run(ctx: Ctx, m: Manager, run_id: Any) -> Any:
    rid = to_int(run_id)
    if rid is None:
        return gr.skip()
    return {**open_tab(m, "run"), m["run.pick"]: run_detail.pick_update(ctx, rid)}


def open_problems(ctx: Ctx, m: Manager, run_id: Any, suite: Any = None, job: Any = None) -> dict[Any, Any]:
    return merge(open_tab(m, "benchmarks"), benchmarks.refresh(ctx, m),
                 benchmarks.select(ctx, m, run_id, suite or None, job or None))


def open_traces(ctx: Ctx, m: Manager, run_id: Any) -> dict[Any, Any]:
    return {**open_tab(m, "traces"), **traces.select(ctx, m, run_id)}


def navigation_outputs(m: Manager) -> list[Any]:
    return [m["app.tabs"], m["run.pick"], *timer_list(m), m["benchmarks.board"], *benchmarks.outputs(m),
            *traces.outputs(m)]


def wire_navigation(ctx: Ctx, m: Manager, tab_blocks: dict[str, Any]) -> None:
    """Every way of moving between pages: opening a tab, a link inside a page, launch, clone, to the Playground."""
    wire_tabs(ctx, m, tab_blocks)
    wire_links(ctx, m)
    fields = launch.field_list(ctx, m)
    wire_launch(ctx, m, fields)
    clone_outs = [m["app.tabs"], m["launch.preset"], m["launch.preset_state"], m["launch.preset_info"], *fields,
                  *timer_list(m), m["launch.banner"]]
    wire_clone(ctx, m, clone_outs)
    wire_to_playground(ctx, m)
    wire_train_on_traces(ctx, m, clone_outs)


def wire_tabs(ctx: Ctx, m: Manager, tab_blocks: dict[str, Any]) -> None:
    """Opening a tab: its timer, and the pages that list things fill themselves (a table filled while
    its tab is hidden shows no rows)."""
    fills = {
        "runs": ([m["runs.status"]], lambda s: run_list.refresh(ctx, m, s), run_list.outputs(m)),
        "benchmarks": ([], lambda: benchmarks.refresh(ctx, m),
                       m.list("benchmarks.board", "benchmarks.banner", "benchmarks.run")),
        "playground": ([m["playground.run"]], lambda r: playground.refresh(ctx, m, r),
                       m.list("playground.run", "playground.banner", "playground.busy")),
        "compare": ([m["compare.runs"]], lambda c: compare_runs.refresh(ctx, m, c),
                    m.list("compare.runs", "compare.banner")),
        "traces": (m.list("traces.run", "traces.verdict", "traces.status", "traces.q", "traces.page"),
                   lambda *v: traces.refresh(ctx, m, *v), traces.outputs(m)),
        "sweeps": ([m["sweeps.pick"]], lambda c: sweeps.refresh(ctx, m, c), sweeps.outputs(m)),
    }
    for tab, block in tab_blocks.items():
        ins, fill, outs = fills.get(tab, ([], None, []))
        if fill is None:
            block.select(lambda tab=tab: timers(m, tab), None, timer_list(m), show_progress="hidden")
        else:
            block.select(lambda *v, tab=tab, fill=fill: {**timers(m, tab), **fill(*v)}, ins,
                         [*timer_list(m), *outs], show_progress="hidden")


def wire_links(ctx: Ctx, m: Manager) -> None:
    """A click on a link inside the HTML of a page: a run, a benchmark result's problems, a generation's traces."""
    def navigate(evt: gr.EventData) -> Any:
        data = click_data(evt)
        if data.get("open") == "run":
            return open_run(ctx, m, data.get("run"))
        if data.get("open") == "traces":
            return open_traces(ctx, m, data.get("run"))
        if data.get("open") == "problems":
            return open_problems(ctx, m, data.get("run"), data.get("suite"), data.get("job"))
        return gr.skip()

    nav_outs = navigation_outputs(m)
    for name in ("run.parent", "run.bench_results", "run.jobs", "benchmarks.board", "sweeps.table"):
        m[name].click(navigate, None, nav_outs, show_progress="hidden")


def wire_launch(ctx: Ctx, m: Manager, fields: list[Any]) -> None:
    """Launch → create the run → open its page; the Runs page's Open button."""
    run_open = [m["app.tabs"], m["run.pick"], *timer_list(m)]

    def do_launch(preset: str, *values: Any) -> dict[Any, Any]:
        updates, rid = launch.launch(ctx, m, preset, list(values))
        return {**updates, **(open_run(ctx, m, rid) if rid is not None else {})}

    m["launch.launch_btn"].click(do_launch, [m["launch.preset"], *fields],
                                 [m["launch.banner"], *fields, *run_open], concurrency_limit=4)
    m["runs.open_btn"].click(lambda r: open_run(ctx, m, r), [m["runs.selected"]], run_open)


def wire_clone(ctx: Ctx, m: Manager, clone_outs: list[Any]) -> None:
    """Clone (Runs and Run pages): a run's configuration into the Launch form, renamed, without its folder."""
    def clone(run_id: Any) -> dict[Any, Any]:
        rid = to_int(run_id)
        banner = m["launch.banner"]
        if rid is None:
            return {banner: banner_html("Select a run first.", "info")}
        try:
            r = ctx.api.get_run(rid)
        except ApiCallError as e:
            return {banner: banner_html(e.message)}
        cfg = dict(r.get("config") or {})
        cfg["name"] = f"{r.get('name') or cfg.get('name') or f'run {rid}'} (copy)"
        for k in ("output_dir", "resume"):
            cfg.pop(k, None)
        return {**open_tab(m, "launch"), **launch.fill_form(ctx, m, cfg),
                banner: banner_html(f"Form filled from run #{rid}: adjust and launch.", "info")}

    m["runs.clone_btn"].click(clone, [m["runs.selected"]], clone_outs)
    m["run.clone_btn"].click(clone, [m["run.pick"]], clone_outs)


def wire_to_playground(ctx: Ctx, m: Manager) -> None:
    """The Run page's Playground button: the Playground opened on that run's model."""
    def to_playground(run_id: Any) -> dict[Any, Any]:
        return {**open_tab(m, "playground"), **playground.refresh(ctx, m, run_detail.model_run_id(ctx, run_id))}

    m["run.playground_btn"].click(to_playground, [m["run.pick"]],
                                  [m["app.tabs"], m["playground.run"], m["playground.banner"], m["playground.busy"],
                                   *timer_list(m)])


def wire_train_on_traces(ctx: Ctx, m: Manager, clone_outs: list[Any]) -> None:
    """"Train on this" (Traces page): the Launch form filled to train on the generated dataset, its preview shown."""
    banner = m["traces.banner"]

    def train_on(run_id: Any) -> dict[Any, Any]:
        rid = to_int(run_id)
        if rid is None:
            return {banner: banner_html("Pick a trace generation first.", "info")}
        try:
            run = ctx.api.get_run(rid)
            datasets = ctx.api.list_datasets()
        except ApiCallError as e:
            return {banner: banner_html(e.message)}
        item = next((d for d in datasets if d.get("kind") == "generated" and d.get("run_id") == rid), None)
        if item is None:
            return {banner: banner_html(traces.nothing_to_train(run), "info")}
        if "ds_pick" not in form:  # no form: the API did not answer when the dashboard started
            return {banner: banner_html(launch.NO_SCHEMA)}
        return merge(launch.refresh(ctx, m), open_tab(m, "launch"),
                     launch.fill_form(ctx, m, traces.training_config(run, item["ref"])),
                     {form["ds_pick"]: gr.update(value=item["id"])}, launch.show_dataset(ctx, m, item),
                     {form["banner"]: banner_html(f"Form filled to train on the {item.get('rows')} traces kept by "
                                                  f"run #{rid}: adjust and launch.", "info"), banner: ""})

    form = m.page("launch")
    outs = list(dict.fromkeys([*clone_outs, *launch.outputs(ctx, m), form["ds_preview"], form["ds_report"], banner]))
    m["traces.train_btn"].click(train_on, [m["traces.run"]], outs)


def wire_load(ctx: Ctx, m: Manager, demo: gr.Blocks) -> None:
    """Page load: presets, models, datasets; ``?run=N`` opens that run, ``?tab=NAME`` a page
    (``?tab=benchmarks&run=N&suite=NAME[&job=J]`` one benchmark result, ``?tab=traces&run=N`` one generation)."""

    def params(request: gr.Request | None) -> dict[str, str]:
        return dict(request.query_params) if request is not None else {}

    def on_load(request: gr.Request) -> dict[Any, Any]:
        q = params(request)
        tab = q.get("tab") if q.get("tab") in TAB_IDS else None
        rid = to_int(q.get("run"))
        out = {**launch.refresh(ctx, m), m["app.health"]: health_html(ctx.api)}
        if tab in (None, "run") and rid is not None:
            return {**out, **open_run(ctx, m, rid)}
        return {**out, **(open_tab(m, tab) if tab else timers(m, "launch")), m["run.pick"]: run_detail.pick_update(ctx, None)}

    # Pages that list things are filled once their tab is visible (see wire_navigation).
    def fill_opened(status: str, pg_run: Any, cmp_runs: list[Any], request: gr.Request) -> Any:
        q = params(request)
        tab = q.get("tab")
        if tab == "runs":
            return run_list.refresh(ctx, m, status)
        if tab == "playground":
            return playground.refresh(ctx, m, pg_run)
        if tab == "compare":
            return compare_runs.refresh(ctx, m, cmp_runs)
        if tab == "traces":
            return traces.select(ctx, m, q.get("run"))
        if tab == "benchmarks":
            if to_int(q.get("run")) is not None:
                return open_problems(ctx, m, q.get("run"), q.get("suite"), q.get("job"))
            return benchmarks.refresh(ctx, m)
        return gr.skip()

    load_outs = [*launch.outputs(ctx, m), m["app.tabs"], m["run.pick"], *timer_list(m), m["app.health"]]
    fill_outs = [*run_list.outputs(m), m["playground.run"], m["playground.banner"], m["playground.busy"],
                 m["compare.runs"], m["compare.banner"], *navigation_outputs(m)]
    demo.load(on_load, None, load_outs, show_progress="hidden").then(
        fill_opened, [m["runs.status"], m["playground.run"], m["compare.runs"]], fill_outs, show_progress="hidden")


def launch_kwargs() -> dict[str, Any]:
    """Theme and CSS (Gradio 6 takes them at launch/mount time, not in ``gr.Blocks``)."""
    # No "api" link: it documents Gradio's internal endpoints, not the service's REST API (footer_html links that).
    return {"theme": THEME, "css": CSS + FOOTER_CSS, "footer_links": ["settings"]}


def docs_url(ctx: Ctx) -> str:
    """The API's OpenAPI page (FastAPI's ``/docs``, which needs no token) as the browser reaches it."""
    base = ctx.link_base if ctx.link_base is not None else ctx.public_api_url
    return f"{base.rstrip('/')}/docs"


def footer_html(ctx: Ctx) -> str:
    return ('<div style="text-align:center; font-size:.9em">'
            f'<a href="{esc(docs_url(ctx))}" target="_blank" rel="noopener">REST API (/docs)</a>'
            ' <span class="ds-muted">· the service\'s endpoints, which this dashboard also uses</span></div>')
