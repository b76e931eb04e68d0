"""Run: status and progress with ETA, a live log (SSE), live training curves, the benchmark results
(pass@1 with its interval and the paired test, per suite), the run's benchmark jobs and a form to
launch one, the older per-model metrics and every evaluation prompt side by side, artifacts and the
configuration. A failed run shows its error and log tail at the top."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import gradio as gr
import pandas as pd

from ui.client import FINISHED, ApiCallError
from ui.manager import Manager
from ui.pages import export_panel
from ui.pages.benchmarks_view import suites_html
from ui.pages.common import CLICK_JS, Ctx, run_choices, to_int, y_format
from ui.pages.run_detail_view import (
    artifacts_html,
    by_set_html,
    failure_html,
    format_log_html,
    jobs_html,
    metrics_frame,
    metrics_table_html,
    parent_html,
    progress_html,
    samples_html,
)
from ui.shared import banner_html, counted, esc, kv_html

PAGE = "run"
LOG_LINES_SHOWN = 400
LOG_FLUSH_S = 0.3
POLL_S = 1.5
RECONNECT_S = 2.0
PICK_HINT = '<div class="ds-muted">Pick a run above, or launch one.</div>'
LIVE = ("queued", "running")  # what Cancel accepts
RESUMABLE = ("failed", "cancelled")  # the statuses the API's resume accepts (backend/services/runs.py: resume)
RESUME_LABEL, NO_RESUME_LABEL = "↻ Resume", "↻ Resume: no checkpoint yet"
CONFIRM_CANCEL_JS = """(run) => [confirm('Cancel run #' + run + '? It stops within a few seconds; '
  + 'a cancelled run can be resumed later.') ? run : null]"""
NO_EVAL_GENERATE = "No evaluation: a trace generation (mode generate) writes a dataset; it trains no model."

# Follow the end of the log unless the reader scrolled up (then stay where they are).
STICK_TO_BOTTOM_JS = """
let stick = true;
element.addEventListener('scroll', (e) => {
  const b = e.target;
  if (b && b.classList && b.classList.contains('ds-logbox')) stick = b.scrollTop + b.clientHeight >= b.scrollHeight - 30;
}, true);
watch('value', () => { const b = element.querySelector('.ds-logbox'); if (b && stick) b.scrollTop = b.scrollHeight; });
"""

PLOTS = {
    "plot_loss": ("Loss", ("loss", "ce", "eval_loss")),
    "plot_kl": ("KL to base", ("kl",)),
    "plot_lr": ("Learning rate", ("lr",)),
    "plot_tps": ("Tokens/s", ("tokens_per_s",)),
}
# The benchmark-job form: POST /runs/{id}/benchmarks fields (empty = the run's own value).
BENCH_FIELDS = {
    # The placeholder must work on any server: heldout needs neither the hub nor a file.
    "benchmarks": ("Benchmarks", "heldout",
                   ("Suites, comma-separated (which load here: listed below); NAME=FILE a file of problems inside "
                    "DISTILL_HOME (problem and answer columns), or upload one with the button below")),
    "benchmark_limit": ("benchmark_limit", "all problems", "Only the first N problems of each suite"),
    "num_samples": ("num_samples", "the run's own", "Answers per problem and model (pass@k, cons@n need > 1)"),
    "max_new_tokens": ("max_new_tokens", "the run's own", "Max tokens per answer"),
    "max_thinking_tokens": ("max_thinking_tokens", "none", "Thinking budget: </think> is forced at this many tokens"),
}


# --------------------------------------------------------------------------- page

def build(ctx: Ctx, m: Manager) -> None:
    e: dict[str, Any] = {}
    _build_toolbar(e)
    e["banner"] = gr.HTML("", elem_id="run-banner", elem_classes=["ds-collapse"])
    e["failure"] = gr.HTML("", elem_id="run-failure", elem_classes=["ds-collapse"])
    e["parent"] = gr.HTML("", elem_id="run-parent", elem_classes=["ds-collapse"], js_on_load=CLICK_JS)
    e["progress"] = gr.HTML(PICK_HINT, elem_id="run-progress")
    _build_log_and_curves(e)
    _build_benchmarks(e)
    _build_evaluation(e)
    _build_artifacts(e)
    export_panel.build(m)  # the Export panel (ui/pages/export_panel.py)
    with gr.Accordion("Configuration", open=False):
        e["config"] = gr.HTML("", elem_id="run-config")
    e["state"] = gr.State(RunView())
    e["timer"] = gr.Timer(POLL_S, active=False)
    m.add(PAGE, e)


def _build_toolbar(e: dict[str, Any]) -> None:
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        e["pick"] = gr.Dropdown(label="Run", choices=[], value=None, scale=3, min_width=260, elem_id="run-pick",
                                allow_custom_value=False, filterable=True)
        with gr.Column(scale=2, min_width=300):
            with gr.Row(elem_classes=["ds-btn-row"]):
                e["refresh_btn"] = gr.Button("↻ Refresh", size="sm", min_width=80, elem_id="run-refresh")
                # Disabled until a run is shown; then enabled by its state (button_updates).
                e["cancel_btn"] = gr.Button("■ Cancel", variant="stop", size="sm", min_width=80, elem_id="run-cancel",
                                            interactive=False)
                e["resume_btn"] = gr.Button(RESUME_LABEL, size="sm", min_width=80, elem_id="run-resume",
                                            interactive=False)
            with gr.Row(elem_classes=["ds-btn-row"]):
                e["clone_btn"] = gr.Button("✎ Clone into form", size="sm", min_width=120, elem_id="run-clone")
                e["playground_btn"] = gr.Button("▶ Prompt both models", size="sm", min_width=120,
                                                elem_id="run-playground", interactive=False)


def _build_log_and_curves(e: dict[str, Any]) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=340):
            gr.Markdown(f"**Log** <span class='ds-muted ds-small'>live; the last {LOG_LINES_SHOWN} lines; "
                        "scroll up to pause following</span>")
            e["log"] = gr.HTML(format_log_html([], 0, LOG_LINES_SHOWN), elem_id="ds-log", js_on_load=STICK_TO_BOTTOM_JS)
        with gr.Column(scale=6, min_width=340) as plots_box:
            names = list(PLOTS)
            for i in range(0, len(names), 2):
                with gr.Row(equal_height=True):
                    for name in names[i:i + 2]:
                        title, series = PLOTS[name]
                        e[name] = gr.LinePlot(
                            value=plot_frame([], series), x="step", y="value",
                            color="series" if len(series) > 1 else None, title=title, height=230, min_width=240,
                            x_title="step", y_title=title, elem_id=f"plot-{series[0]}", tooltip="all",
                            y_axis_format=y_format(series[0]), x_bin=1, x_axis_format="d",
                        )
    e["plots_box"] = plots_box


def _build_benchmarks(e: dict[str, Any]) -> None:
    gr.Markdown("### Benchmarks: base vs SFT on the same problems, pass@1 with its 95 % interval")
    e["bench_results"] = gr.HTML('<div class="ds-muted">Shown when the run has been evaluated.</div>',
                                 elem_id="run-benchmarks", js_on_load=CLICK_JS)
    with gr.Accordion("Benchmark jobs: measure this run's models on more suites", open=True, elem_id="bench-jobs-acc"):
        e["jobs"] = gr.HTML("", elem_id="run-jobs", js_on_load=CLICK_JS)
        with gr.Column(visible=False, elem_id="bench-form") as box:
            with gr.Group():
                with gr.Row(equal_height=False):
                    for name, (label, placeholder, info) in BENCH_FIELDS.items():
                        e[f"bench_{name}"] = gr.Textbox(label=label, placeholder=placeholder, info=info,
                                                        elem_id=f"bench-{name}", scale=3 if name == "benchmarks" else 1,
                                                        min_width=320 if name == "benchmarks" else 150)
            with gr.Row(equal_height=False):
                e["bench_upload"] = gr.UploadButton("⬆ Upload a benchmark file (.jsonl, .json, .parquet)", size="sm",
                                                    file_types=[".jsonl", ".json", ".parquet"], scale=0,
                                                    min_width=260, elem_id="bench-upload")
                e["bench_suites"] = gr.HTML("", elem_id="bench-suites")
            with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
                e["bench_btn"] = gr.Button("▶ Launch benchmark job", variant="primary", size="sm", scale=0,
                                           min_width=220, elem_id="bench-launch")
                e["bench_banner"] = gr.HTML("", elem_id="bench-banner", elem_classes=["ds-collapse"])
        e["bench_box"] = box
        e["bench_note"] = gr.HTML("", elem_id="bench-note")


def _build_evaluation(e: dict[str, Any]) -> None:
    gr.Markdown("### Evaluation details: the first answer of each model to each prompt")
    with gr.Row(equal_height=False, elem_classes=["ds-stack"]):
        e["eval_table"] = gr.HTML('<div class="ds-muted">Shown when the run has been evaluated.</div>',
                                  elem_id="eval-table", min_width=340)
        e["by_set"] = gr.HTML("", elem_id="eval-by-set", min_width=340)
    with gr.Accordion("Every evaluation prompt: base and SFT answers side by side", open=False, elem_id="samples-acc"):
        e["samples"] = gr.HTML("", elem_id="eval-samples")


def _build_artifacts(e: dict[str, Any]) -> None:
    with gr.Accordion("Artifacts", open=True):
        with gr.Row(equal_height=False, elem_classes=["ds-stack"]):
            e["artifacts"] = gr.HTML("", elem_id="artifacts", min_width=300)
            with gr.Column(min_width=260):
                e["art_pick"] = gr.Dropdown(label="Download through the dashboard", choices=[], value=None,
                                            elem_id="artifact-pick", info="Folders come as a zip")
                e["art_btn"] = gr.Button("⬇ Prepare download", size="sm", elem_id="artifact-btn")
                e["art_file"] = gr.File(label="File", interactive=False, elem_id="artifact-file", visible=False,
                                        height=80)


# --------------------------------------------------------------------------- rendering

def plot_frame(points: list[dict[str, Any]], series: tuple[str, ...]) -> pd.DataFrame:
    """A plot's data. Multi-series plots start with one empty (NaN) row per series: the chart fixes its
    color domain when it is first drawn and later updates only replace the data."""
    df = metrics_frame(points, series)
    if len(series) < 2:
        return df
    seed = pd.DataFrame({"step": [float("nan")] * len(series), "value": [float("nan")] * len(series),
                         "series": list(series)}).astype(df.dtypes.to_dict())
    return pd.concat([seed, df], ignore_index=True)


def _plots(m: Manager, points: list[dict[str, Any]]) -> dict[Any, Any]:
    return {m[f"run.{name}"]: plot_frame(points, series) for name, (_, series) in PLOTS.items()}


def _tail(ctx: Ctx, run_id: int, n: int = 12) -> list[dict[str, Any]]:
    """The last ``n`` log lines (for the failure banner)."""
    lines: list[dict[str, Any]] = []
    offset = 0
    try:
        # Page to the end; a failed run's log is bounded, and this runs once per view.
        for _ in range(500):
            page = ctx.api.get_logs(run_id, offset=offset, limit=1000)
            got = page.get("lines") or []
            lines = (lines + got)[-n:]
            nxt = to_int(page.get("next_offset"))
            if not got or nxt is None or nxt <= offset:
                break
            offset = nxt
    except ApiCallError:
        pass
    return lines


def _generates_only(run: dict[str, Any]) -> bool:
    """A trace generation (mode generate): no model of its own, so nothing to evaluate, benchmark or prompt."""
    return (run.get("config") or {}).get("mode") == "generate"


def has_model(run: dict[str, Any]) -> bool:
    """Whether "Prompt both models" has models to prompt: a job's parent has them (jobs are launched only on a
    succeeded run); a run once it has succeeded, unless it is a trace generation."""
    if run.get("parent_id"):
        return True
    return run.get("status") == "succeeded" and not _generates_only(run)


def button_updates(m: Manager, run: dict[str, Any]) -> dict[Any, Any]:
    """Cancel, Resume and Prompt enabled only when the API would accept them (else they answer 409)."""
    p, status = m.page(PAGE), run.get("status")
    return {p["cancel_btn"]: gr.update(interactive=status in LIVE),
            p["resume_btn"]: resume_update(run),
            p["playground_btn"]: gr.update(visible=not _generates_only(run), interactive=has_model(run))}


def resume_update(run: dict[str, Any]) -> dict[str, Any]:
    """Resume enabled only when the API says the run is ``resumable`` (its rule: backend/services/runs.py:
    resume_refusal). A stopped run with nothing to resume from says so on the button (Gradio buttons have no
    tooltip): a run stopped before its first checkpoint has to be launched again (Clone)."""
    ok = bool(run.get("resumable"))
    stopped_early = run.get("status") in RESUMABLE and not ok
    return gr.update(interactive=ok, value=NO_RESUME_LABEL if stopped_early else RESUME_LABEL)


def model_run_id(ctx: Ctx, run_id: Any) -> int | None:
    """The run the Playground opens for ``run_id``: a benchmark job's parent (a job has no model of its own)."""
    rid = to_int(run_id)
    if rid is None:
        return None
    try:
        return to_int(ctx.api.get_run(rid).get("parent_id")) or rid
    except ApiCallError:
        return rid


def suites_note_html(suites: list[dict[str, Any]]) -> str:
    """Which suites load on this server (what to type in Benchmarks), and which do not, grouped by why."""
    ok = [f"<code>{esc(s.get('spec') or s.get('name'))}</code>" for s in suites if s.get("available")]
    off: dict[str, list[str]] = {}
    for s in suites:
        if not s.get("available"):
            off.setdefault(str(s.get("why") or "not available"), []).append(esc(s.get("name")))
    parts = [f"<b>Available here:</b> {', '.join(ok) if ok else 'none'}"]
    parts += [f"<b>Not here:</b> {', '.join(names)} <span class='ds-muted'>({esc(why)})</span>"
              for why, names in off.items()]
    return f'<div class="ds-small" id="bench-suites-list">{"<br>".join(parts)}</div>'


def _suites_note(ctx: Ctx) -> str:
    try:
        return suites_note_html(ctx.api.list_suites())
    except ApiCallError as e:
        return f'<div class="ds-muted ds-small">Suites not listed: {esc(e.message)}</div>'


def _benchmarks(ctx: Ctx, m: Manager, run: dict[str, Any]) -> tuple[dict[Any, Any], bool]:
    """The benchmark section (results, jobs, form) and whether a job is still going."""
    rid, parent = int(run["id"]), run.get("parent_id")
    p = m.page(PAGE)
    try:
        data = ctx.api.run_benchmarks(int(parent) if parent else rid)
    except ApiCallError as e:
        return {p["bench_results"]: banner_html(e.message)}, False
    results, jobs = data.get("results") or [], data.get("jobs") or []
    if parent:  # a job: its own results (they belong to the run it measures), no jobs of its own
        results, jobs = [r for r in results if r.get("job_id") == rid], []
    generates = _generates_only(run)
    can_launch = not parent and not generates and run.get("status") == "succeeded"
    note = ("" if can_launch else
            '<div class="ds-muted ds-small">A benchmark job is launched from the run it measures.</div>' if parent else
            '<div class="ds-muted ds-small">A trace generation trains no model, so there is nothing to benchmark: '
            "train on its traces (Traces page, Train on this), then measure that run.</div>" if generates else
            '<div class="ds-muted ds-small">Benchmark jobs can be launched once the run has succeeded '
            "(they need its trained model).</div>")
    shown = ('<div class="ds-muted">No benchmark results: a trace generation has no model to measure.</div>'
             if generates else suites_html(results, ctx.catalog))
    return ({p["bench_results"]: shown,
             p["jobs"]: "" if parent else jobs_html(jobs),
             p["bench_box"]: gr.update(visible=can_launch), p["bench_note"]: note,
             **({p["bench_suites"]: _suites_note(ctx)} if can_launch else {})},
            any(j.get("status") not in FINISHED for j in jobs))


# --------------------------------------------------------------------------- view model

@dataclass
class RunView:
    """What the page keeps between refreshes (its ``gr.State``): which run it shows, in which status, and how much of
    it is on screen already, so that a poll sends only what changed (a re-render resets the reader's view)."""

    id: int | None = None
    status: str | None = None
    points: int = -1  # curve points drawn (-1: none yet, so an empty run still draws its empty plots)
    evaluated: bool = False  # the evaluation section is final (results shown, or why there are none)
    error: str | None = None  # the API's last refusal; the timer keeps trying
    artifacts: list[str] | None = None  # the artifact picker's names (None: not asked yet)
    failure: bool = False  # the failure banner is shown
    jobs_active: bool = False  # a benchmark job is going: its section is asked every poll
    shown: dict[str, str] = field(default_factory=dict)  # the HTML last sent, by component name

    def following(self, run_id: int, status: str | None) -> RunView:
        """The view this refresh builds: the same run keeps what is on screen; another run starts afresh."""
        if self.id != run_id:
            return RunView(id=run_id, status=status)
        return replace(self, status=status, error=None, shown=dict(self.shown))


@dataclass
class Refresh:
    """One refresh: the run as the API returns it now, the view before, and the view being built (the sections
    update ``view`` as they send things)."""

    run_id: int
    run: dict[str, Any]
    prev: RunView
    view: RunView

    @property
    def status(self) -> str | None:
        return self.run.get("status")

    @property
    def same_run(self) -> bool:
        return self.prev.id == self.view.id

    @property
    def changed(self) -> bool:
        """A new run, or the run's status moved: the parts that follow the status are sent again."""
        return not self.same_run or self.prev.status != self.status


def needs_poll(run_id: int, prev: RunView) -> bool:
    """A finished run that is fully rendered, with no benchmark job going, needs no polling."""
    return not (prev.id == run_id and prev.status in FINISHED and not prev.error
                and (prev.evaluated or prev.status != "succeeded") and not prev.jobs_active)


# --------------------------------------------------------------------------- rendering, one function per section

def render(ctx: Ctx, m: Manager, run_id: int | None, prev: RunView) -> dict[Any, Any]:
    """The page's updates for one poll; unchanged parts are not sent (no re-render, no flicker)."""
    p = m.page(PAGE)
    if run_id is None:
        return {p["state"]: RunView()}
    try:
        run = ctx.api.get_run(run_id)
    except ApiCallError as e:
        # Keep what is shown; say why it is not updating. The timer keeps trying (API restarts).
        return {p["banner"]: banner_html(e.message), p["state"]: replace(prev, error=e.message)}
    r = Refresh(run_id, run, prev, prev.following(run_id, run.get("status")))
    out: dict[Any, Any] = {p["banner"]: "", p["progress"]: progress_html(run)}
    for section in (_status_section, _curves_section, _benchmarks_section, _evaluation_section,
                    _artifacts_section, _config_section):
        out.update(section(ctx, m, r))
    out[p["state"]] = r.view
    return out


def _status_section(ctx: Ctx, m: Manager, r: Refresh) -> dict[Any, Any]:
    """The failure banner (with the log's tail), the parent link, the curves' box, the buttons and the Export panel
    (they follow the run's status)."""
    p, v = m.page(PAGE), r.view
    out: dict[Any, Any] = {}
    if r.status == "failed" and not v.failure:
        out[p["failure"]] = failure_html(r.run, _tail(ctx, r.run_id))
        v.failure = True
    elif r.status != "failed":
        if not r.same_run or r.prev.status == "failed" or r.prev.failure:
            out[p["failure"]] = ""
        v.failure = False
    if not r.same_run:
        out[p["parent"]] = parent_html(r.run)
        # A trace generation has no model: no curves to draw.
        out[p["plots_box"]] = gr.update(visible=not _generates_only(r.run))
    if r.changed:
        out.update(button_updates(m, r.run))
        out.update(export_panel.panel(ctx, m, r.run))
    return out


def _curves_section(ctx: Ctx, m: Manager, r: Refresh) -> dict[Any, Any]:
    """The training curves: only when new points arrived."""
    try:
        points = ctx.api.get_metrics(r.run_id) if (r.status != "queued" or not r.same_run) else []
    except ApiCallError:
        return {}
    if len(points) == r.view.points:
        return {}
    r.view.points = len(points)
    return _plots(m, points)


def _benchmarks_section(ctx: Ctx, m: Manager, r: Refresh) -> dict[Any, Any]:
    """Benchmark results, jobs and form: when the status changes, and every poll while a job is going."""
    p, v = m.page(PAGE), r.view
    if not (r.changed or v.jobs_active):
        return {}
    section, v.jobs_active = _benchmarks(ctx, m, r.run)
    # While a job runs this is asked every poll: send only what changed (a re-render resets the reader's view).
    for name in ("bench_results", "jobs"):
        html = section.pop(p[name], None)
        if html is not None and v.shown.get(name) != html:
            section[p[name]] = v.shown[name] = html
    return section


def _evaluation_section(ctx: Ctx, m: Manager, r: Refresh) -> dict[Any, Any]:
    """The older per-model metrics, by set, and every prompt: asked once the run has an evaluation; else why not."""
    v = r.view
    if not v.evaluated and (r.status == "succeeded" or r.run.get("summary")):
        return _evaluation(ctx, m, r)
    if not r.same_run or (r.changed and not v.evaluated):
        return _evaluation_placeholder(m, r.run)
    return {}


def _evaluation(ctx: Ctx, m: Manager, r: Refresh) -> dict[Any, Any]:
    p = m.page(PAGE)
    try:
        ev = ctx.api.get_evaluation(r.run_id)
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    if ev:
        summary = ev.get("summary") or {}
        test = ev.get("accuracy_test") or (r.run.get("summary") or {}).get("accuracy_test")
        r.view.evaluated = True
        return {p["eval_table"]: metrics_table_html(summary, ev.get("deltas"), ctx.catalog, test),
                p["by_set"]: by_set_html(ev.get("by_set"), ctx.catalog) + kv_html(ev.get("data_report"),
                                                                                  "Training data"),
                p["samples"]: samples_html(ev.get("samples") or [])}
    if r.status != "succeeded":
        return {}
    # Finished without an evaluation (mode train or generate, or no suite).
    r.view.evaluated = True
    msg = (NO_EVAL_GENERATE if _generates_only(r.run) else
           "This run has no evaluation (see its mode and evaluation settings).")
    return {p["eval_table"]: f'<div class="ds-muted">{msg}</div>', p["by_set"]: "", p["samples"]: ""}


def _evaluation_placeholder(m: Manager, run: dict[str, Any]) -> dict[Any, Any]:
    """Why the evaluation is not shown (yet)."""
    p, status = m.page(PAGE), run.get("status")
    msg = {"failed": "No evaluation: the run failed.", "cancelled": "No evaluation: the run was cancelled."}.get(
        str(status), "Shown when the run has been evaluated.")
    if run.get("config", {}).get("mode") == "train" and status == "succeeded":
        msg = "No evaluation: this run was launched with mode train."
    if _generates_only(run):
        msg = NO_EVAL_GENERATE
    return {p["eval_table"]: f'<div class="ds-muted">{msg}</div>', p["by_set"]: "", p["samples"]: ""}


def _artifacts_section(ctx: Ctx, m: Manager, r: Refresh) -> dict[Any, Any]:
    """The artifact list, asked on a status change and every poll while the run is live (files grow: the log);
    sent only when it changed, and the picker only when the names did (resetting it loses the reader's pick)."""
    p, v = m.page(PAGE), r.view
    if not (r.changed or v.artifacts is None or r.status in LIVE):
        return {}
    try:
        items = ctx.api.list_artifacts(r.run_id)
    except ApiCallError:
        items = []
    out: dict[Any, Any] = {}
    html = artifacts_html(items, ctx.artifact_link_base(r.run_id))
    if v.shown.get("artifacts") != html:
        out[p["artifacts"]] = v.shown["artifacts"] = html
    names = [a.get("name") for a in items]
    if names != v.artifacts:
        out[p["art_pick"]] = gr.update(choices=names, value=None)
    v.artifacts = names
    return out


def _config_section(ctx: Ctx, m: Manager, r: Refresh) -> dict[Any, Any]:
    """The run's configuration and dates: once per run (they do not change)."""
    if r.same_run:
        return {}
    run = r.run
    meta = {"output_dir": run.get("output_dir"), "created_at": run.get("created_at"),
            "started_at": run.get("started_at"), "finished_at": run.get("finished_at"),
            **({"benchmark job of run": run["parent_id"]} if run.get("parent_id") else {})}
    return {m[f"{PAGE}.config"]: kv_html(dict(run.get("config") or {}), "Run configuration") + kv_html(meta, "Run")}


def empty(m: Manager) -> dict[Any, Any]:
    p = m.page(PAGE)
    blank = ("banner", "failure", "parent", "bench_results", "jobs", "bench_note", "eval_table", "by_set", "samples",
             "artifacts", "config")
    return {**{p[k]: "" for k in blank}, p["progress"]: PICK_HINT, **_plots(m, []),
            p["bench_box"]: gr.update(visible=False), p["art_pick"]: gr.update(choices=[], value=None),
            p["state"]: RunView(), p["plots_box"]: gr.update(visible=True),
            p["playground_btn"]: gr.update(visible=True, interactive=False),
            p["cancel_btn"]: gr.update(interactive=False),
            p["resume_btn"]: gr.update(interactive=False, value=RESUME_LABEL),
            p["bench_suites"]: "", **export_panel.empty(m)}


def outputs(m: Manager) -> list[Any]:
    """Everything ``render`` may update (the Export panel's parts that follow the run included)."""
    names = ("banner", "failure", "parent", "cancel_btn", "resume_btn", "playground_btn", "plots_box", "progress",
             *PLOTS, "bench_results", "jobs", "bench_box", "bench_note", "bench_suites", "eval_table", "by_set",
             "samples", "artifacts", "art_pick", "config", "state")
    return [*m.list(*(f"{PAGE}.{n}" for n in names)), *export_panel.outputs(m)]


# --------------------------------------------------------------------------- log stream

async def stream_log(ctx: Ctx, run_id: Any):  # noqa: ANN201
    """Follow the run's log over SSE; keeps the last LOG_LINES_SHOWN lines; reconnects with Last-Event-ID."""
    rid = to_int(run_id)
    if rid is None:
        yield format_log_html([], 0, LOG_LINES_SHOWN)
        return
    buf: deque[dict[str, Any]] = deque(maxlen=LOG_LINES_SHOWN)
    st: dict[str, Any] = {"last": None, "total": 0, "dirty": True, "done": False, "note": "", "status": None}

    async def reader() -> None:
        while not st["done"]:
            try:
                async for ev in ctx.aapi.stream_logs(rid, st["last"]):
                    if ev.event == "log":
                        try:
                            line = ev.json() or {}
                        except ValueError:
                            line = {"message": ev.data}
                        seq = to_int(line.get("seq")) or (st["total"] + 1)
                        if st["last"] is not None and seq <= int(st["last"]):
                            continue
                        buf.append(line)
                        st["total"] = max(st["total"], seq)
                        st["last"] = ev.id or str(seq)
                        st["dirty"], st["note"] = True, ""
                    elif ev.event == "end":
                        try:
                            st["status"] = (ev.json() or {}).get("status")
                        except ValueError:
                            pass
                        st["done"], st["dirty"] = True, True
                        return
                # The stream closed without "end": the API restarted or a proxy cut it; follow on.
            except ApiCallError as e:
                if e.status in (401, 403, 404):
                    st["note"], st["done"], st["dirty"] = f"[log unavailable: {e.message}]", True, True
                    return
                st["note"], st["dirty"] = f"[connection lost: {e.message} Reconnecting…]", True
            await asyncio.sleep(RECONNECT_S)

    task = asyncio.create_task(reader())
    try:
        while True:
            await asyncio.sleep(LOG_FLUSH_S)
            if st["dirty"]:
                st["dirty"] = False
                end = f"[end of log: run {st['status']}]" if st["done"] and st["status"] else ""
                yield format_log_html(list(buf), st["total"], LOG_LINES_SHOWN, [st["note"], end])
            if st["done"] and not st["dirty"]:
                return
    finally:
        task.cancel()


# --------------------------------------------------------------------------- benchmark jobs

def bench_request(values: dict[str, Any]) -> dict[str, Any]:
    """The POST /runs/{id}/benchmarks body: filled fields only; numbers as numbers (else as typed:
    the API's 422 names the field)."""
    body: dict[str, Any] = {}
    for name, raw in values.items():
        text = str(raw or "").strip()
        if not text:
            continue
        if name == "benchmarks":
            body[name] = text
            continue
        try:
            body[name] = int(text)
        except ValueError:
            body[name] = text
    return body


def bench_field_updates(m: Manager, errors: dict[str, str]) -> dict[Any, Any]:
    out = {}
    for name, (_, _, info) in BENCH_FIELDS.items():
        msg = errors.get(name)
        out[m[f"run.bench_{name}"]] = (gr.update(info=f"⚠ {msg}", elem_classes=["ds-field-error"]) if msg
                                       else gr.update(info=info, elem_classes=[]))
    return out


def launch_benchmark(ctx: Ctx, m: Manager, run_id: Any, prev: RunView, values: dict[str, Any]) -> dict[Any, Any]:
    p = m.page(PAGE)
    rid = to_int(run_id)
    if rid is None:
        return {p["bench_banner"]: banner_html("Pick a run first.", "info")}
    body = bench_request(values)
    if not body.get("benchmarks"):
        return {p["bench_banner"]: banner_html("Name at least one suite, e.g. gsm8k.", "info"),
                **bench_field_updates(m, {"benchmarks": "name at least one suite"})}
    try:
        job = ctx.api.create_benchmark_job(rid, **body)
    except ApiCallError as e:
        known = {k: v for k, v in e.field_errors.items() if k in BENCH_FIELDS}
        msg = e.message if not known or len(known) < len(e.field_errors) else \
            f"Not launched: fix the field{'s' if len(known) > 1 else ''} marked in red ({', '.join(known)})."
        return {p["bench_banner"]: banner_html(msg), **bench_field_updates(m, known)}
    out = render(ctx, m, rid, replace(prev, status="?"))
    out[p["state"]] = replace(out.get(p["state"]) or prev, jobs_active=True)
    out[p["bench_banner"]] = banner_html(f"Benchmark job #{job['id']} queued: it is listed in the jobs table above "
                                         "this form; click it to follow its log.", "ok")
    out.update(bench_field_updates(m, {}))
    return out


def upload_benchmark(ctx: Ctx, m: Manager, path: str | None, current: Any) -> dict[Any, Any]:
    """An uploaded file of problems becomes a suite: its entry (NAME=FILE, as GET /suites spells it) is added to
    the Benchmarks field, so the job reads the file the server keeps."""
    p = m.page(PAGE)
    if not path:
        return {}
    try:
        ds = ctx.api.upload_dataset(path)
        suites = ctx.api.list_suites()
    except ApiCallError as e:
        return {p["bench_banner"]: banner_html(f"Not uploaded: {e.message}")}
    spec = next((s.get("spec") for s in suites if s.get("dataset_id") == ds.get("id")), None)
    if "problems" not in (ds.get("uses") or []) or not spec:
        return {p["bench_banner"]: banner_html(f"{ds.get('name')} has no problems with answers (columns problem and "
                                               "answer): it can train a model, not measure one.")}
    entries = [x.strip() for x in str(current or "").split(",") if x.strip()]
    n = to_int(ds.get("rows")) or 0
    return {p["bench_benchmarks"]: gr.update(value=",".join([*entries, spec] if spec not in entries else entries),
                                             info=BENCH_FIELDS["benchmarks"][2], elem_classes=[]),
            p["bench_suites"]: suites_note_html(suites),
            p["bench_banner"]: banner_html(f"Uploaded {ds.get('name')}: {counted(n, 'problem')}, added to "
                                           f"Benchmarks as {spec.split('=', 1)[0]}.", "ok")}


# --------------------------------------------------------------------------- wiring

def wire(ctx: Ctx, m: Manager) -> None:
    _wire_show(ctx, m)
    _wire_run_actions(ctx, m)
    _wire_benchmark_form(ctx, m)
    _wire_download(ctx, m)
    export_panel.wire(ctx, m, m[f"{PAGE}.pick"])


def _follow_log(ctx: Ctx):  # noqa: ANN202
    async def follow_log(run_id: Any):  # noqa: ANN202
        async for text in stream_log(ctx, run_id):
            yield text
    return follow_log


def _wire_show(ctx: Ctx, m: Manager) -> None:
    """Picking a run (then its log stream), the poll, Refresh."""
    p, outs = m.page(PAGE), outputs(m)
    # A new pick or Refresh clears what the forms said about the previous run.
    cleared = [p[f"bench_{n}"] for n in BENCH_FIELDS] + [p["bench_banner"], m[f"{export_panel.PANEL}.banner"]]

    def show(run_id: Any) -> dict[Any, Any]:
        rid = to_int(run_id)
        return empty(m) if rid is None else {**bench_field_updates(m, {}), p["bench_banner"]: "",
                                             m[f"{export_panel.PANEL}.banner"]: "", **render(ctx, m, rid, RunView())}

    show_ev = p["pick"].change(show, [p["pick"]], outs + cleared, show_progress="hidden")
    log_ev = show_ev.then(_follow_log(ctx), [p["pick"]], [p["log"]], show_progress="hidden", concurrency_limit=None)
    # A new pick stops the previous log stream before the new one starts (it starts after `show`).
    p["pick"].change(None, None, None, cancels=[log_ev])

    def poll(run_id: Any, prev: RunView) -> Any:
        rid = to_int(run_id)
        if rid is None or not needs_poll(rid, prev):
            return gr.skip()
        return render(ctx, m, rid, prev)

    p["timer"].tick(poll, [p["pick"], p["state"]], outs, show_progress="hidden", trigger_mode="always_last")

    def manual_refresh(run_id: Any) -> dict[Any, Any]:
        rid = to_int(run_id)
        try:
            choices = run_choices(ctx.api)
        except ApiCallError as e:
            return {p["banner"]: banner_html(e.message)}
        return {p["pick"]: gr.update(choices=choices), m[f"{export_panel.PANEL}.banner"]: "",
                **(render(ctx, m, rid, RunView()) if rid is not None else empty(m))}

    p["refresh_btn"].click(manual_refresh, [p["pick"]], [p["pick"], *outs, cleared[-1]], show_progress="hidden")


def _wire_run_actions(ctx: Ctx, m: Manager) -> None:
    """Cancel (after the browser's confirm) and Resume."""
    p, outs = m.page(PAGE), outputs(m)

    def act(action: str, run_id: Any, prev: RunView) -> dict[Any, Any]:
        rid = to_int(run_id)
        if rid is None:
            return {p["banner"]: banner_html("Pick a run first.", "info")}
        try:
            if action == "cancel":
                ctx.api.cancel_run(rid)
            else:
                ctx.api.resume_run(rid)
        except ApiCallError as e:
            return {p["banner"]: banner_html(e.message)}
        out = render(ctx, m, rid, replace(prev, status="?", failure=False))
        out[p["banner"]] = banner_html("Cancel requested: the run stops within a few seconds." if action == "cancel"
                                       else "Queued again: it resumes from its last checkpoint.", "ok")
        return out

    def cancel(run_id: Any) -> Any:
        # None: the reader dismissed the confirmation (CONFIRM_CANCEL_JS).
        return gr.skip() if to_int(run_id) is None else act("cancel", run_id, RunView())

    # Only the pick goes through the browser's confirm(); the state stays on the server (a full render follows).
    p["cancel_btn"].click(cancel, [p["pick"]], outs, js=CONFIRM_CANCEL_JS)
    resume_ev = p["resume_btn"].click(lambda r, s: act("resume", r, s), [p["pick"], p["state"]], outs)
    # After a resume the log continues: restart the stream.
    resume_ev.then(_follow_log(ctx), [p["pick"]], [p["log"]], show_progress="hidden", concurrency_limit=None)


def _wire_benchmark_form(ctx: Ctx, m: Manager) -> None:
    p, outs = m.page(PAGE), outputs(m)
    bench_outs = [p[f"bench_{n}"] for n in BENCH_FIELDS] + [p["bench_banner"]]

    def bench(run_id: Any, prev: RunView, *values: Any) -> dict[Any, Any]:
        return launch_benchmark(ctx, m, run_id, prev, dict(zip(BENCH_FIELDS, values, strict=True)))

    p["bench_btn"].click(bench, [p["pick"], p["state"], *bench_outs[:-1]], outs + bench_outs, concurrency_limit=4)
    p["bench_upload"].upload(lambda f, cur: upload_benchmark(ctx, m, f, cur),
                             [p["bench_upload"], p["bench_benchmarks"]],
                             [p["bench_benchmarks"], p["bench_suites"], p["bench_banner"]])


def _wire_download(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)

    def download(run_id: Any, name: str | None) -> dict[Any, Any]:
        rid = to_int(run_id)
        if rid is None or not name:
            return {p["banner"]: banner_html("Pick a run and an artifact first.", "info")}
        folder = tempfile.mkdtemp(prefix=f"distill-run{rid}-")
        target = os.path.join(folder, os.path.basename(name) + (".zip" if "." not in os.path.basename(name) else ""))
        try:
            ctx.api.download_artifact(rid, name, target)
        except ApiCallError as e:
            return {p["banner"]: banner_html(e.message)}
        return {p["art_file"]: gr.update(value=target, visible=True), p["banner"]: ""}

    p["art_btn"].click(download, [p["pick"], p["art_pick"]], [p["art_file"], p["banner"]])


def pick_update(ctx: Ctx, run_id: int | None) -> Any:
    """A Run-picker update that lists recent runs and selects ``run_id``."""
    try:
        choices = run_choices(ctx.api)
    except ApiCallError:
        choices = []
    if run_id is not None and all(v != run_id for _, v in choices):
        choices = [(f"#{run_id}", run_id), *choices]
    return gr.update(choices=choices, value=run_id)
