"""The Run page's Export panel: a small form (target, quantizations, the Hub repository) whose Export button posts
``POST /api/v1/runs/{id}/exports``, the newest export job's progress and log, and the exports with download links.

The button is enabled only for a run the API would export: a succeeded run with a model of its own (not a benchmark
job, not a trace generation); the Run page renders the panel again whenever the run's status moves (run_detail:
``_status_section``), so a run that finishes while the page is open can be exported at once. The panel polls with its
own timer only while one of the run's export jobs is live, and shows a Cancel button for that job meanwhile.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.client import ApiCallError
from ui.manager import Manager
from ui.pages.common import Ctx, to_int
from ui.pages.exports_view import exports_html, job_html
from ui.shared import banner_html, esc

PANEL = "export"
POLL_S = 1.0
TARGETS = [("GGUF (llama.cpp)", "gguf"), ("Ollama (GGUF + Modelfile)", "ollama"), ("Hugging Face Hub", "hub")]
# The converter's types; K-quants need llama.cpp's quantizer (the API says so in one line where it is not built).
QUANTS = ["f16", "bf16", "f32", "q8_0", "q4_k_m", "q5_k_m", "q6_k"]
LIVE = ("queued", "running")
NO_MODEL_MODES = ("evaluate", "generate")
# The same confirmation as the run's Cancel (run_detail.CONFIRM_CANCEL_JS); the second input (the run) passes through.
CONFIRM_CANCEL_JS = """(job, run) => [confirm('Cancel export job #' + job + '? A queued job stops at once, a running '
  + 'one before its next step; nothing of it is kept.') ? job : null, run]"""


def build(m: Manager) -> None:
    e: dict[str, Any] = {}
    with gr.Accordion("Export: GGUF, Ollama, the Hugging Face Hub", open=True, elem_id="export-acc"):
        with gr.Row(equal_height=False):
            e["to"] = gr.Radio(TARGETS, value="gguf", label="Export to", elem_id="export-to", scale=2)
            e["quants"] = gr.CheckboxGroup(QUANTS, value=["f16"], label="Quantizations", elem_id="export-quants",
                                           info="GGUF files; with the Hub: uploaded beside the model (none: the "
                                                "model only)", scale=3)
            e["repo_id"] = gr.Textbox(label="Hub repository", placeholder="owner/name", elem_id="export-repo",
                                      info="Hub only; private; the token is the server's HF_TOKEN", scale=2)
        with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
            e["btn"] = gr.Button("⬆ Export", variant="primary", size="sm", scale=0, min_width=140,
                                 interactive=False, elem_id="export-btn")
            # Shown only while the newest job is queued or running (panel).
            e["cancel"] = gr.Button("■ Cancel export", variant="stop", size="sm", scale=0, min_width=140,
                                    visible=False, elem_id="export-cancel")
            e["banner"] = gr.HTML("", elem_id="export-banner", elem_classes=["ds-collapse"])
        e["job"] = gr.HTML("", elem_id="export-job")
        e["list"] = gr.HTML("", elem_id="exports")
        # The live job's id, for Cancel's confirmation in the browser ("hidden": rendered, so the browser has it).
        e["job_id"] = gr.Number(None, precision=0, visible="hidden", elem_id="export-job-id")
    e["timer"] = gr.Timer(POLL_S, active=False)
    m.add(PANEL, e)


def exportable(run: dict[str, Any]) -> tuple[bool, str]:
    """Whether the API would queue an export of this run, and if not, why (shown beside the button)."""
    if run.get("parent_id"):
        return False, f"A benchmark job has no model of its own: export run #{run['parent_id']}."
    if (run.get("config") or {}).get("mode") in NO_MODEL_MODES:
        return False, "This run trains no model: there is nothing to export."
    if run.get("status") != "succeeded":
        return False, "A run can be exported once it has succeeded."
    return True, ""


def outputs(m: Manager) -> list[Any]:
    """What ``panel`` updates (the banner aside: it says what the last click did)."""
    return m.list(*(f"{PANEL}.{n}" for n in ("btn", "cancel", "job", "list", "job_id", "timer")))


def empty(m: Manager) -> dict[Any, Any]:
    """No run shown."""
    p = m.page(PANEL)
    return {p["btn"]: gr.update(interactive=False), p["cancel"]: gr.update(visible=False), p["job"]: "",
            p["list"]: "", p["job_id"]: None, p["timer"]: gr.Timer(active=False)}


def panel(ctx: Ctx, m: Manager, run: dict[str, Any]) -> dict[Any, Any]:
    """The panel for one run (as ``GET /runs/{id}`` returns it): the button, the newest job with its Cancel while it
    is live, the exports, and the timer on while a job is live."""
    p = m.page(PANEL)
    run_id = int(run["id"])
    try:
        data = ctx.api.run_exports(run_id)
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message), p["timer"]: gr.Timer(active=False)}
    ok, why = exportable(run)
    jobs = data.get("jobs") or []
    newest = jobs[0] if jobs else None
    live = newest is not None and newest.get("status") in LIVE
    link = ctx.artifact_link_base(run_id)
    note = "" if ok else f'<div class="ds-muted ds-small">{esc(why)}</div>'
    return {p["btn"]: gr.update(interactive=ok), p["cancel"]: gr.update(visible=live),
            p["job"]: note + job_html(newest), p["job_id"]: newest.get("id") if live else None,
            p["list"]: exports_html(data.get("items") or [], link.rsplit("/runs/", 1)[0] if link else None),
            p["timer"]: gr.Timer(active=any(j.get("status") in LIVE for j in jobs))}


def render(ctx: Ctx, m: Manager, run_id: int | None) -> dict[Any, Any]:
    """``panel`` for a run id (the panel's own timer, and after its buttons)."""
    p = m.page(PANEL)
    if run_id is None:
        return empty(m)
    try:
        run = ctx.api.get_run(run_id)
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message), p["timer"]: gr.Timer(active=False)}
    return panel(ctx, m, run)


def launch(ctx: Ctx, m: Manager, run_id: Any, to: str, quants: list[str] | None, repo_id: str | None) -> dict[Any, Any]:
    p = m.page(PANEL)
    rid = to_int(run_id)
    if rid is None:
        return {p["banner"]: banner_html("Pick a run first.", "info")}
    options: dict[str, Any] = {"quants": list(quants or [])}
    if to == "hub":
        options["repo_id"] = (repo_id or "").strip() or None
    try:
        job = ctx.api.create_export_job(rid, to, **options)
    except ApiCallError as e:
        return {p["banner"]: banner_html(f"Not exported: {e.message}")}
    return {**render(ctx, m, rid), p["banner"]: banner_html(f"Export job #{job['id']} queued.", "ok")}


def cancel(ctx: Ctx, m: Manager, job_id: Any, run_id: Any) -> Any:
    """Cancel the live export job the reader confirmed (None: they dismissed the confirmation)."""
    p = m.page(PANEL)
    jid = to_int(job_id)
    if jid is None:
        return gr.skip()
    try:
        job = ctx.api.cancel_export_job(jid)
    except ApiCallError as e:
        return {**render(ctx, m, to_int(run_id)), p["banner"]: banner_html(f"Not cancelled: {e.message}")}
    msg = (f"Export job #{jid} cancelled." if job.get("status") == "cancelled" else
           f"Cancel requested: export job #{jid} stops before its next step.")
    return {**render(ctx, m, to_int(run_id)), p["banner"]: banner_html(msg, "ok")}


def wire(ctx: Ctx, m: Manager, pick: Any) -> None:
    """``pick``: the Run page's run picker (the Run page renders the panel on a pick, Refresh and a status change)."""
    p = m.page(PANEL)
    outs = [*outputs(m), p["banner"]]
    p["timer"].tick(lambda r: render(ctx, m, to_int(r)), [pick], outs, show_progress="hidden",
                    trigger_mode="always_last")
    p["btn"].click(lambda r, to, q, repo: launch(ctx, m, r, to, q, repo),
                   [pick, p["to"], p["quants"], p["repo_id"]], outs, concurrency_limit=4)
    p["cancel"].click(lambda job, r: cancel(ctx, m, job, r), [p["job_id"], pick], outs, js=CONFIRM_CANCEL_JS)
