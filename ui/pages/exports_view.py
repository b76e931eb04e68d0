"""The Run page's Export panel: what ``distill export`` wrote for the run (GGUF, Ollama, Hub), each file a link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from ui.pages.run_detail_view import fmt_bytes
from ui.shared import esc

HOW = ("Export with <code>distill export RUN_FOLDER --to gguf|ollama|hub</code> "
       "(files under the run folder's <code>exports/</code>).")


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
