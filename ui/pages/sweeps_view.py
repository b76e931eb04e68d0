"""The Sweeps page's HTML: the verdict, the table of points, the heat map of two numeric axes, the configuration
diff. Colour marks a difference only where a test calls it significant."""

from __future__ import annotations

from typing import Any

from ui.shared import esc, finite, significance_html


def _pct(x: Any, signed: bool = False) -> str:
    return "—" if not finite(x) else (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}")


def verdict_html(summary: dict[str, Any] | None) -> str:
    verdict = (summary or {}).get("verdict") or {}
    if not verdict:
        return ""
    cls = "ds-banner-ok" if verdict.get("winner") else "ds-banner-info"
    n = verdict.get("n_problems_compared", 0)
    return (f'<div class="ds-banner {cls}" id="sweep-verdict" role="status"><b>Verdict:</b> {esc(verdict["text"])}'
            f'<div class="ds-small">Compared on the {esc(n)} problems every finished point answered; best against '
            "each other point with a paired test, Holm-corrected.</div></div>")


def _objective_cell(row: dict[str, Any]) -> str:
    ci = row.get("objective_ci") or [None, None]
    if not finite(row.get("objective")):
        return "—"
    return f"{_pct(row['objective'])} <span class=ds-small>[{_pct(ci[0])}, {_pct(ci[1])}]</span>"


def _vs_base_cell(row: dict[str, Any]) -> str:
    d = row.get("delta_vs_base")
    if not finite(d):
        return "—"
    test = {"p_value": row.get("p_vs_base"), "significant": finite(row.get("p_vs_base")) and row["p_vs_base"] < 0.05}
    cls = ("ds-good" if d > 0 else "ds-bad") if test["significant"] else "ds-neutral"
    return f'<span class="{cls}">{_pct(d, signed=True)}</span> {significance_html(test, short=True)}'


def _status_cell(row: dict[str, Any]) -> str:
    text = esc(row.get("status", ""))
    if row.get("error"):
        text += f'<div class="ds-small ds-bad">{esc(row["error"])}</div>'
    if row.get("run_id"):
        rid = esc(row["run_id"])
        text = f'<a href="?run={rid}" data-open="run" data-run="{rid}">#{rid}</a> {text}'
    return text


COLUMNS = ("Point", "Run · status", "Objective % [95 % CI]", "SFT − base (pp)", "Thought closed %", "Looping %",
           "Truncated %", "Tokens p50", "Wall s")


def points_html(summary: dict[str, Any] | None) -> str:
    rows = (summary or {}).get("points") or []
    if not rows:
        return '<div class="ds-muted">No sweep selected.</div>'
    best = ((summary or {}).get("verdict") or {}).get("best")
    tied = set(((summary or {}).get("verdict") or {}).get("tied_with_best") or [])
    body = []
    for r in rows:
        mark = " ★" if r["name"] == best else " ≈" if r["name"] in tied else ""
        title = "best" if mark == " ★" else "tied with the best" if mark == " ≈" else ""
        merged = (f'<div class="ds-small ds-muted">also {esc(", ".join(r["merged"]))}</div>'
                  if r.get("merged") else "")
        cells = [_status_cell(r), _objective_cell(r), _vs_base_cell(r), esc(r.get("think_closed_pct", "—")),
                 esc(r.get("looping_pct", "—")),
                 esc(r.get("truncated_pct", "—")), esc(r.get("tokens_p50", "—")), esc(r.get("wall_s") or "—")]
        body.append(f'<tr data-point="{esc(r["name"])}"><th scope=row title="{title}">{esc(r["name"])}{mark}{merged}'
                    "</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    return (f'<div class="ds-scroll"><table class="ds-table" id="sweep-points"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def numeric_axes(spec: dict[str, Any]) -> list[str]:
    """The grid's axes whose values are all numbers (a heat map needs two)."""
    def number(v: Any) -> bool:
        try:
            float(v)
            return not isinstance(v, bool) and str(v).lower() not in ("true", "false")
        except (TypeError, ValueError):
            return False
    return [k for k, vals in (spec.get("grid") or {}).items() if len(vals) > 1 and all(number(v) for v in vals)]


def heatmap_html(summary: dict[str, Any] | None, spec: dict[str, Any]) -> str:
    """The objective over two numeric axes, each cell shaded by its value, with its interval's half-width."""
    axes = numeric_axes(spec)
    rows = (summary or {}).get("points") or []
    if len(axes) != 2 or not rows:
        return ""
    (a, b), grid = axes, spec["grid"]
    cell = {(str(r["overrides"].get(a)), str(r["overrides"].get(b))): r for r in rows}
    values = [r["objective"] for r in rows if finite(r.get("objective"))]
    top = max(values) if values else 0.0

    def td(r: dict[str, Any] | None) -> str:
        if r is None or not finite(r.get("objective")):
            return '<td class="ds-muted">—</td>'
        lo, hi = r.get("objective_ci") or [r["objective"], r["objective"]]
        shade = 0.15 + 0.6 * (r["objective"] / top if top else 0)
        return (f'<td style="background: rgba(21,128,61,{shade:.2f})" title="{esc(r["name"])}">'
                f"{_pct(r['objective'])}<div class=ds-small>± {_pct((hi - lo) / 2)}</div></td>")

    head = f"<tr><th>{esc(a)} \\ {esc(b)}</th>" + "".join(f"<th>{esc(v)}</th>" for v in grid[b]) + "</tr>"
    body = "".join(f"<tr><th scope=row>{esc(va)}</th>" + "".join(td(cell.get((str(va), str(vb)))) for vb in grid[b])
                   + "</tr>" for va in grid[a])
    return (f'<div id="sweep-heatmap"><div class="ds-small">Objective % by {esc(a)} and {esc(b)} (± half the 95 % '
            f'interval)</div><table class="ds-table">{head}{body}</table></div>')


def diff_html(diff: dict[str, dict[str, Any]] | None, defaults: dict[str, Any] | None = None,
              noun: str = "point") -> str:
    """The fields that differ between points; a value equal to the field's default is greyed."""
    if not diff:
        return ""
    names = list(next(iter(diff.values())))
    defaults = defaults or {}

    def td(field: str, value: Any) -> str:
        grey = field in defaults and defaults[field] == value
        return f'<td class="{"ds-muted" if grey else ""}">{esc(value)}</td>'

    head = f"<tr><th>{noun.capitalize()}</th>" + "".join(f"<th>{esc(f)}</th>" for f in diff) + "</tr>"
    body = "".join(f"<tr><th scope=row>{esc(n)}</th>" + "".join(td(f, diff[f][n]) for f in diff) + "</tr>"
                   for n in names)
    return (f'<div id="sweep-diff"><div class="ds-small">Configuration that differs between {noun}s (defaults '
            f'greyed)</div><table class="ds-table">{head}{body}</table></div>')
