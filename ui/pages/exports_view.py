"""The Run page's Export panel as HTML: the newest export job (status, progress, its log) and what the exports wrote
for the run (GGUF, Ollama, Hub), each file a link. The panel's form and wiring: ``ui/pages/export_panel.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from ui.pages.run_detail_view import fmt_bytes, format_log_html
from ui.shared import esc

HOW = ("Export with the form above, or <code>distill export RUN_FOLDER --to gguf|ollama|hub</code> "
       "(files under the run folder's <code>exports/</code>).")
LOG_SHOWN = 12  # the job's last log lines shown under its bar


def _what(item: dict[str, Any]) -> str:
    ggufs = ", ".join(f"{g.get('file_type')} ({g.get('architecture')})" for g in item.get("ggufs") or [])
    hub = item.get("hub") or {}
    target = hub.get("pr_url") or hub.get("commit_url")
    parts = [ggufs, f'<a href="{esc(target)}" target="_blank">{esc(hub.get("repo_id"))}</a>' if target else ""]
    return " · ".join(p if p.startswith("<a") else esc(p) for p in parts if p)


def exports_html(items: Sequence[dict[str, Any]], api_base: str | None) -> str:
    """A table of exports, newest first; file names link to ``/api/v1/…`` when the browser can reach the API."""
    if not items:
        return f'<div class="ds-exports ds-muted">No exports yet. {HOW}</div>'
    rows = []
    for item in items:
        files = []
        for f in item.get("files") or []:
            label = f"{esc(f.get('name'))} ({esc(fmt_bytes(f.get('size')))})"
            url = f"{api_base.rstrip('/')}/{quote(str(f.get('url', '')))}" if api_base is not None else None
            files.append(f'<a href="{esc(url)}" download>{label}</a>' if url else label)
        rows.append(f"<tr><td>{esc(item.get('to'))}</td><td>{esc(item.get('created'))}</td><td>{_what(item)}</td>"
                    f"<td>{'<br>'.join(files)}</td></tr>")
    return ('<div class="ds-scroll ds-exports"><table class="ds-table"><thead><tr><th>Export</th><th>Created</th>'
            f'<th>What</th><th>Files</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def job_html(job: dict[str, Any] | None) -> str:
    """The newest export job: its status, step and progress bar, its error, and the end of its log."""
    if not job:
        return ""
    status = str(job.get("status") or "?")
    progress = min(1.0, max(0.0, float(job.get("progress") or 0.0)))
    request = job.get("request") or {}
    what = f"{request.get('to')}" + (f" {', '.join(request['quants'])}" if request.get("quants") else "") + (
        f" → {request['repo_id']}" if request.get("repo_id") else "")
    meta = [f'<span class="ds-badge ds-st-{esc(status)}">{esc(status)}</span>',
            f"<span>export job #{esc(job.get('id'))}: {esc(what)}</span>"]
    if status == "queued":
        meta.append("<span>waiting for a worker</span>")
    elif status == "running" and job.get("stage"):  # a finished job's last step says nothing more
        meta.append(f"<span>step: <b>{esc(job['stage'])}</b></span>")
    bar = {"failed": "ds-bar-failed", "cancelled": "ds-bar-cancelled", "succeeded": "ds-bar-done"}.get(status, "")
    error = f'<div class="ds-banner ds-banner-error">⚠ {esc(job["error"])}</div>' if job.get("error") else ""
    lines = list(job.get("log") or [])[-LOG_SHOWN:]
    # The job's log is a few lines: a short box that grows with them (ds-export-log), not the run log's tall one.
    log = f'<div class="ds-export-log">{format_log_html(lines, len(lines), LOG_SHOWN)}</div>' if lines else ""
    return (f'<div class="ds-progress ds-export-job" data-status="{esc(status)}" data-job="{esc(job.get("id"))}">'
            f'<div class="ds-progress-meta">{" · ".join(meta)}<span class="ds-pct">{progress * 100:.0f}%</span></div>'
            f'<div class="ds-bar {bar}"><div class="ds-bar-fill" style="width:{progress * 100:.1f}%"></div></div>'
            f"</div>{error}{log}")
