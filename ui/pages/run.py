"""Run: status and progress with ETA, a live log (SSE), live training curves, the evaluation
(base vs SFT with colored deltas, every prompt side by side), artifacts and the configuration.
A failed run shows its error and log tail at the top."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import deque
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ui.client import FINISHED, ApiError
from ui.format import (
    artifacts_html,
    banner_html,
    by_set_html,
    failure_html,
    format_log_html,
    kv_html,
    metrics_frame,
    metrics_table_html,
    progress_html,
    samples_html,
)
from ui.pages.common import Ctx, run_choices, to_int

LOG_LINES_SHOWN = 400
LOG_FLUSH_S = 0.3
POLL_S = 1.5
RECONNECT_S = 2.0

# Follow the end of the log unless the reader scrolled up (then stay where they are).
STICK_TO_BOTTOM_JS = """
let stick = true;
element.addEventListener('scroll', (e) => {
  const b = e.target;
  if (b && b.classList && b.classList.contains('ds-logbox')) stick = b.scrollTop + b.clientHeight >= b.scrollHeight - 30;
}, true);
watch('value', () => { const b = element.querySelector('.ds-logbox'); if (b && stick) b.scrollTop = b.scrollHeight; });
"""

PLOTS = (
    ("Loss", ("loss", "ce", "eval_loss")),
    ("KL to base", ("kl",)),
    ("Learning rate", ("lr",)),
    ("Tokens/s", ("tokens_per_s",)),
)


@dataclass
class RunPageUI:
    pick: gr.Dropdown
    refresh_btn: gr.Button
    cancel_btn: gr.Button
    resume_btn: gr.Button
    clone_btn: gr.Button
    playground_btn: gr.Button
    banner: gr.HTML
    failure: gr.HTML
    progress: gr.HTML
    log: gr.HTML
    plots: list[gr.LinePlot]
    eval_table: gr.HTML
    by_set: gr.HTML
    samples: gr.HTML
    artifacts: gr.HTML
    art_pick: gr.Dropdown
    art_btn: gr.Button
    art_file: gr.File
    config: gr.HTML
    state: gr.State
    timer: gr.Timer


def build(ctx: Ctx) -> RunPageUI:
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        pick = gr.Dropdown(label="Run", choices=[], value=None, scale=3, min_width=260, elem_id="run-pick",
                           allow_custom_value=False, filterable=True)
        with gr.Column(scale=2, min_width=300):
            with gr.Row(elem_classes=["ds-btn-row"]):
                refresh_btn = gr.Button("↻ Refresh", size="sm", min_width=80, elem_id="run-refresh")
                cancel_btn = gr.Button("■ Cancel", variant="stop", size="sm", min_width=80, elem_id="run-cancel")
                resume_btn = gr.Button("↻ Resume", size="sm", min_width=80, elem_id="run-resume")
            with gr.Row(elem_classes=["ds-btn-row"]):
                clone_btn = gr.Button("✎ Clone into form", size="sm", min_width=120, elem_id="run-clone")
                playground_btn = gr.Button("▶ Prompt both models", size="sm", min_width=120, elem_id="run-playground")
    banner = gr.HTML("", elem_id="run-banner", elem_classes=["ds-collapse"])
    failure = gr.HTML("", elem_id="run-failure", elem_classes=["ds-collapse"])
    progress = gr.HTML('<div class="ds-muted">Pick a run above, or launch one.</div>', elem_id="run-progress")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=340):
            gr.Markdown(f"**Log** <span class='ds-muted ds-small'>live; the last {LOG_LINES_SHOWN} lines; "
                        "scroll up to pause following</span>")
            log = gr.HTML(format_log_html([], 0, LOG_LINES_SHOWN), elem_id="ds-log", js_on_load=STICK_TO_BOTTOM_JS)
        with gr.Column(scale=6, min_width=340):
            plots = []
            for i in range(0, len(PLOTS), 2):
                with gr.Row(equal_height=True):
                    for title, series in PLOTS[i:i + 2]:
                        plots.append(gr.LinePlot(
                            value=plot_frame([], series), x="step", y="value",
                            color="series" if len(series) > 1 else None, title=title, height=230, min_width=240,
                            x_title="step", y_title=title, elem_id=f"plot-{series[0]}", tooltip="all",
                            y_axis_format=".1e" if series == ("lr",) else None,
                        ))
    gr.Markdown("### Evaluation: base vs SFT on the same prompts")
    with gr.Row(equal_height=False, elem_classes=["ds-stack"]):
        eval_table = gr.HTML('<div class="ds-muted">Shown when the run has been evaluated.</div>', elem_id="eval-table",
                             min_width=340)
        by_set = gr.HTML("", elem_id="eval-by-set", min_width=340)
    with gr.Accordion("Every evaluation prompt: base and SFT answers side by side", open=True, elem_id="samples-acc"):
        samples = gr.HTML("", elem_id="eval-samples")
    with gr.Accordion("Artifacts", open=True):
        with gr.Row(equal_height=False, elem_classes=["ds-stack"]):
            artifacts = gr.HTML("", elem_id="artifacts", min_width=300)
            with gr.Column(min_width=260):
                art_pick = gr.Dropdown(label="Download through the dashboard", choices=[], value=None,
                                       elem_id="artifact-pick", info="Folders come as a zip")
                art_btn = gr.Button("⬇ Prepare download", size="sm", elem_id="artifact-btn")
                art_file = gr.File(label="File", interactive=False, elem_id="artifact-file", visible=False, height=80)
    with gr.Accordion("Configuration", open=False):
        config = gr.HTML("", elem_id="run-config")
    state = gr.State({})
    timer = gr.Timer(POLL_S, active=False)
    return RunPageUI(pick, refresh_btn, cancel_btn, resume_btn, clone_btn, playground_btn, banner, failure, progress,
                     log, plots, eval_table, by_set, samples, artifacts, art_pick, art_btn, art_file, config, state,
                     timer)


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


def _plot_values(points: list[dict[str, Any]]) -> list[Any]:
    return [plot_frame(points, series) for _, series in PLOTS]


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
    except ApiError:
        pass
    return lines


def render(ctx: Ctx, run_id: int | None, prev: dict[str, Any]) -> list[Any]:
    """All outputs of the page for one poll; unchanged parts are skipped (no re-render, no flicker)."""
    n_out = 10 + len(PLOTS)
    if run_id is None:
        return [gr.skip()] * (n_out - 1) + [{}]
    try:
        run = ctx.api.get_run(run_id)
    except ApiError as e:
        # Keep what is shown; say why it is not updating. The timer keeps trying (API restarts).
        out = [gr.skip()] * n_out
        out[0] = banner_html(e.message)
        out[-1] = dict(prev, error=e.message)
        return out
    status = run.get("status")
    same_run = prev.get("id") == run_id
    state = {"id": run_id, "status": status, "points": prev.get("points", 0) if same_run else -1,
             "eval": prev.get("eval", False) if same_run else False, "error": None,
             "artifacts": prev.get("artifacts") if same_run else None,
             "failure": prev.get("failure", False) if same_run else False}
    out: list[Any] = [""]  # banner
    # failure banner (once per failed view)
    if status == "failed" and not state["failure"]:
        out.append(failure_html(run, _tail(ctx, run_id)))
        state["failure"] = True
    elif status != "failed":
        out.append("" if (not same_run or prev.get("status") == "failed" or prev.get("failure")) else gr.skip())
        state["failure"] = False
    else:
        out.append(gr.skip())
    out.append(progress_html(run))
    # curves: only when new points arrived
    try:
        points = ctx.api.get_metrics(run_id) if (status != "queued" or not same_run) else []
    except ApiError:
        points = None
    if points is not None and len(points) != state["points"]:
        out += _plot_values(points)
        state["points"] = len(points)
    else:
        out += [gr.skip()] * len(PLOTS)
    # evaluation: once, when it exists
    if not state["eval"] and (status == "succeeded" or run.get("summary")):
        try:
            ev = ctx.api.get_evaluation(run_id)
        except ApiError as e:
            ev = None
            out[0] = banner_html(e.message)
        if ev:
            out += [metrics_table_html(ev.get("summary"), ev.get("deltas")),
                    by_set_html(ev.get("by_set")) + kv_html(ev.get("data_report"), "Training data"),
                    samples_html(ev.get("samples") or [])]
            state["eval"] = True
        elif status == "succeeded" and out[0] == "":
            # Finished without an evaluation (mode train, or eval_samples 0 and no general prompts).
            out += ['<div class="ds-muted">This run has no evaluation (see its mode and evaluation settings).</div>',
                    "", ""]
            state["eval"] = True
        else:
            out += [gr.skip()] * 3
    elif not same_run or (prev.get("status") != status and not state["eval"]):
        msg = {"failed": "No evaluation: the run failed.", "cancelled": "No evaluation: the run was cancelled."}.get(
            str(status), "Shown when the run has been evaluated.")
        if run.get("config", {}).get("mode") == "train" and status == "succeeded":
            msg = "No evaluation: this run was launched with mode train."
        out += [f'<div class="ds-muted">{msg}</div>', "", ""]
    else:
        out += [gr.skip()] * 3
    # artifacts: when the status changes (files appear at the end)
    if not same_run or prev.get("status") != status or state["artifacts"] is None:
        try:
            items = ctx.api.list_artifacts(run_id)
        except ApiError:
            items = []
        state["artifacts"] = [a.get("name") for a in items]
        out.append(artifacts_html(items, ctx.artifact_link_base(run_id)))
        out.append(gr.update(choices=state["artifacts"], value=None))
    else:
        out += [gr.skip(), gr.skip()]
    # configuration
    if not same_run:
        cfg = dict(run.get("config") or {})
        meta = {"output_dir": run.get("output_dir"), "created_at": run.get("created_at"),
                "started_at": run.get("started_at"), "finished_at": run.get("finished_at")}
        out.append(kv_html(cfg, "Run configuration") + kv_html(meta, "Run"))
    else:
        out.append(gr.skip())
    out.append(state)
    assert len(out) == n_out, (len(out), n_out)
    return out


def outputs(page: RunPageUI) -> list[Any]:
    return [page.banner, page.failure, page.progress, *page.plots, page.eval_table, page.by_set, page.samples,
            page.artifacts, page.art_pick, page.config, page.state]


def empty_outputs() -> list[Any]:
    return ["", "", '<div class="ds-muted">Pick a run above, or launch one.</div>', *_plot_values([]),
            "", "", "", "", gr.update(choices=[], value=None), "", {}]


# --------------------------------------------------------------------------- log stream

async def stream_log(ctx: Ctx, run_id: Any):  # noqa: ANN201
    """Follow the run's log over SSE; keeps the last LOG_LINES_SHOWN lines; reconnects with Last-Event-ID."""
    rid = to_int(run_id)
    if rid is None:
        yield format_log_html([], 0, LOG_LINES_SHOWN)
        return
    buf: deque[dict[str, Any]] = deque(maxlen=LOG_LINES_SHOWN)
    st = {"last": None, "total": 0, "dirty": True, "done": False, "note": "", "status": None}

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
                        st["last"] = str(seq) if ev.id is None else ev.id
                        st["dirty"], st["note"] = True, ""
                    elif ev.event == "end":
                        try:
                            st["status"] = (ev.json() or {}).get("status")
                        except ValueError:
                            pass
                        st["done"], st["dirty"] = True, True
                        return
                # The stream closed without "end": the API restarted or a proxy cut it; follow on.
            except ApiError as e:
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


# --------------------------------------------------------------------------- wiring

def wire(ctx: Ctx, page: RunPageUI) -> None:
    outs = outputs(page)

    def show(run_id: Any):  # noqa: ANN202
        rid = to_int(run_id)
        if rid is None:
            return empty_outputs()
        return render(ctx, rid, {})

    def poll(run_id: Any, prev: dict[str, Any]):  # noqa: ANN202
        rid = to_int(run_id)
        if rid is None:
            return [gr.skip()] * (len(outs) - 1) + [prev]
        # A finished run that is fully rendered needs no polling.
        if prev.get("id") == rid and prev.get("status") in FINISHED and not prev.get("error") and (
                prev.get("eval") or prev.get("status") != "succeeded"):
            return [gr.skip()] * (len(outs) - 1) + [prev]
        return render(ctx, rid, prev)

    show_ev = page.pick.change(show, [page.pick], outs, show_progress="hidden")
    async def follow_log(run_id: Any):  # noqa: ANN202
        async for text in stream_log(ctx, run_id):
            yield text

    log_ev = show_ev.then(follow_log, [page.pick], [page.log], show_progress="hidden", concurrency_limit=None)
    # A new pick stops the previous log stream before the new one starts (it starts after `show`).
    page.pick.change(None, None, None, cancels=[log_ev])
    page.timer.tick(poll, [page.pick, page.state], outs, show_progress="hidden", trigger_mode="always_last")

    def manual_refresh(run_id: Any):  # noqa: ANN202
        rid = to_int(run_id)
        try:
            choices = run_choices(ctx.api)
        except ApiError as e:
            return [gr.skip(), banner_html(e.message), *([gr.skip()] * (len(outs) - 1))]
        return [gr.update(choices=choices), *(render(ctx, rid, {}) if rid is not None else empty_outputs())]

    page.refresh_btn.click(manual_refresh, [page.pick], [page.pick, *outs], show_progress="hidden")

    def act(action: str, run_id: Any, prev: dict[str, Any]):  # noqa: ANN202
        rid = to_int(run_id)
        if rid is None:
            return [banner_html("Pick a run first.", "info"), *([gr.skip()] * (len(outs) - 2)), prev]
        try:
            if action == "cancel":
                ctx.api.cancel_run(rid)
            else:
                ctx.api.resume_run(rid)
        except ApiError as e:
            return [banner_html(e.message), *([gr.skip()] * (len(outs) - 2)), prev]
        out = render(ctx, rid, dict(prev, status="?", failure=False))
        out[0] = banner_html("Cancel requested: the run stops within a few seconds." if action == "cancel"
                             else "Queued again: it resumes from its last checkpoint.", "ok")
        return out

    cancel_ev = page.cancel_btn.click(lambda r, s: act("cancel", r, s), [page.pick, page.state], outs)
    resume_ev = page.resume_btn.click(lambda r, s: act("resume", r, s), [page.pick, page.state], outs)
    # After a resume the log continues: restart the stream.
    resume_ev.then(follow_log, [page.pick], [page.log], show_progress="hidden", concurrency_limit=None)
    del cancel_ev

    def download(run_id: Any, name: str | None):  # noqa: ANN202
        rid = to_int(run_id)
        if rid is None or not name:
            return gr.skip(), banner_html("Pick a run and an artifact first.", "info")
        folder = tempfile.mkdtemp(prefix=f"distill-run{rid}-")
        target = os.path.join(folder, os.path.basename(name) + (".zip" if "." not in os.path.basename(name) else ""))
        try:
            ctx.api.download_artifact(rid, name, target)
        except ApiError as e:
            return gr.skip(), banner_html(e.message)
        return gr.update(value=target, visible=True), ""

    page.art_btn.click(download, [page.pick, page.art_pick], [page.art_file, page.banner])


def pick_update(ctx: Ctx, run_id: int | None) -> Any:
    """A Run-picker update that lists recent runs and selects ``run_id``."""
    try:
        choices = run_choices(ctx.api)
    except ApiError:
        choices = []
    if run_id is not None and all(v != run_id for _, v in choices):
        choices = [(f"#{run_id}", run_id), *choices]
    return gr.update(choices=choices, value=run_id)
