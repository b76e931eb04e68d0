"""Benchmark results as HTML: one suite's result in a cell (base → SFT pass@1 with its 95 % interval,
the delta and the paired test's verdict), the leaderboard of runs × suites, a suite's full card
(pass@k, cons@n, diagnostics) and the problem-by-problem view. Used by the Benchmarks page and the Run page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from ui.answers import sample_html
from ui.shared import Catalog, counted, esc, finite, fmt_time, significance, significance_html

HEADLINE = "pass@1"
MODELS = (("base", "Base"), ("sft", "SFT"))
# Keys of a side that are not rows of their own (pass@k is expanded, the interval goes with pass@1).
NOT_ROWS = {HEADLINE, "pass@1_ci", "pass@k"}
FILTERS = {
    "all": "All problems",
    "differ": "Base and SFT differ",
    "sft_wrong": "SFT wrong",
    "base_wrong": "Base wrong",
}
LEGEND = ('<div class="ds-small ds-muted ds-legend">pass@1 with its 95 % interval, base → SFT; Δ in percentage points '
          '(pp). <span class="ds-sig ds-sig-yes">★</span> significant at 5 % by a paired test over the same problems; '
          '<span class="ds-sig ds-sig-no">n.s.</span> not significant: the difference could be noise. '
          "Hover a mark for the test and its p-value; click a cell to see every problem.</div>")


def open_attrs(run_id: Any, suite: str, job_id: Any = None) -> str:
    """A link that opens the problem view: a real URL (new tab) and data-* for an in-page click."""
    query = {"tab": "benchmarks", "run": run_id, "suite": suite, **({"job": job_id} if job_id is not None else {})}
    job = f' data-job="{esc(job_id)}"' if job_id is not None else ""
    return (f'href="?{esc(urlencode(query))}" data-open="problems" data-run="{esc(run_id)}" '
            f'data-suite="{esc(suite)}"{job}')


def delta_html(block: dict[str, Any], catalog: Catalog) -> str:
    """``Δ +10.0 pp`` colored only when the test says it is not noise, then the test's mark."""
    delta = block.get("delta_pass@1")
    cls = catalog.delta_class(HEADLINE, delta) if block.get("significant") else "ds-neutral"
    ci = block.get("delta_ci")
    tip = ""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite(x) for x in ci):
        m = catalog[HEADLINE]
        tip = f' title="95 % interval of the difference: [{m.number(ci[0], True)}, {m.number(ci[1], True)}]"'
    return (f'<span class="ds-delta {cls}"{tip}>Δ {esc(catalog.fmt(HEADLINE, delta, signed=True))}</span> '
            f"{significance_html(block, short=True)}")


def cell_html(block: dict[str, Any], catalog: Catalog, size: bool = True) -> str:
    """``0.0% [0.0, 16.1] → 10.0% [2.8, 30.1]``, the delta with the test's mark (and problems × samples)."""
    base, sft = block.get("base") or {}, block.get("sft") or {}
    b = catalog.with_interval(HEADLINE, base.get(HEADLINE), base.get("pass@1_ci"))
    s = catalog.with_interval(HEADLINE, sft.get(HEADLINE), sft.get("pass@1_ci"))
    size_text = f"{block.get('n_problems', '?')} problems × {block.get('num_samples', '?')}"
    return (f'<div class="ds-cell-main"><span class="ds-cell-base">{esc(b)}</span> → '
            f'<b class="ds-cell-sft">{esc(s)}</b></div>'
            f'<div class="ds-cell-delta">{delta_html(block, catalog)}</div>'
            + (f'<div class="ds-small ds-muted">{esc(size_text)}</div>' if size else ""))


# --------------------------------------------------------------------------- leaderboard

def leaderboard_html(items: Sequence[dict[str, Any]], catalog: Catalog) -> str:
    """Runs × suites; each cell one run's newest result on one suite, a link to its problems."""
    if not items:
        return ('<div class="ds-muted">No benchmark results yet. A run\'s own evaluation adds its suites '
                "(heldout by default); launch more from a finished run's page.</div>")
    suites: list[str] = []
    runs: dict[int, dict[str, Any]] = {}
    for it in items:
        if it["suite"] not in suites:
            suites.append(it["suite"])
        runs.setdefault(int(it["run_id"]), {"name": it.get("run_name"), "model": it.get("model"), "cells": {}})
        runs[int(it["run_id"])]["cells"][it["suite"]] = it
    head = "".join(f'<th scope="col">{esc(s)}</th>' for s in suites)
    rows = []
    for rid, r in runs.items():
        tds = []
        for s in suites:
            it = r["cells"].get(s)
            if it is None:
                tds.append('<td class="ds-muted">—</td>')
                continue
            when = fmt_time(it.get("created_at"))
            tds.append(f'<td><a class="ds-cell" {open_attrs(rid, s, it.get("job_id"))} '
                       f'title="run #{rid} on {esc(s)}, job #{esc(it.get("job_id"))}, {esc(when)}: open every problem">'
                       f"{cell_html(it.get('result') or {}, catalog)}</a></td>")
        model = f'<div class="ds-small ds-muted">{esc(r["model"])}</div>' if r.get("model") else ""
        rows.append(f'<tr data-run="{rid}"><th scope="row"><a href="?run={rid}" data-open="run" data-run="{rid}">'
                    f"#{rid} {esc(r.get('name') or '')}</a>{model}</th>{''.join(tds)}</tr>")
    return (f'<div class="ds-scroll"><table class="ds-table ds-board"><thead><tr><th>Run</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>{LEGEND}")


# --------------------------------------------------------------------------- one suite in full

def _rows(block: dict[str, Any], catalog: Catalog) -> list[tuple[str, str, Any, Any, str | None]]:
    """(label, metric key for formatting, base, sft, note) for every number the suite has."""
    base, sft = block.get("base") or {}, block.get("sft") or {}
    out: list[tuple[str, str, Any, Any, str | None]] = []
    ks = sorted({*(base.get("pass@k") or {}), *(sft.get("pass@k") or {})}, key=lambda k: int(k) if k.isdigit() else 0)
    for k in ks:
        if k != "1":
            out.append((f"pass@{k}", HEADLINE, (base.get("pass@k") or {}).get(k), (sft.get("pass@k") or {}).get(k), None))
    keys = [k for k in {**base, **sft} if k not in NOT_ROWS]
    # The catalog says which numbers are worth a row, and in what order (all of them, raw, without it).
    ordered = [k for k in catalog.order() if k in keys] if catalog else keys
    for k in ordered:
        note = "needs num_samples > 1" if k == "cons@n" and (block.get("num_samples") or 1) < 2 else None
        out.append((catalog.label(k), k, base.get(k), sft.get(k), note))
    return out


def settings_line(block: dict[str, Any]) -> str:
    st = block.get("settings") or {}
    bits = [f"{k} {st[k]}" for k in ("temperature", "top_p", "max_new_tokens", "max_thinking_tokens", "seed")
            if st.get(k) is not None]
    bits += [f"grader {block['grader']}"] if block.get("grader") else []
    bits += [f"source {block['source']}"] if block.get("source") else []
    return " · ".join(bits)


def suite_card_html(result: dict[str, Any], catalog: Catalog, link: bool = True) -> str:
    """One result of ``GET /runs/{id}/benchmarks``: the cell, then pass@k, cons@n and the diagnostics;
    ``link``: with a link to its problems."""
    block = result.get("result") or {}
    suite, rid, job = result.get("suite", "?"), result.get("run_id"), result.get("job_id")
    origin = "the run's own evaluation" if job == rid else f"benchmark job #{job}"
    b, s = block.get("base") or {}, block.get("sft") or {}
    body = [(f"<tr><th scope=row>{esc(catalog.label(HEADLINE))} (95 % interval)</th>"
             f"<td>{esc(catalog.with_interval(HEADLINE, b.get(HEADLINE), b.get('pass@1_ci')))}</td>"
             f"<td>{esc(catalog.with_interval(HEADLINE, s.get(HEADLINE), s.get('pass@1_ci')))}</td>"
             f"<td>{delta_html(block, catalog)}</td></tr>")]
    for label, key, bv, sv, note in _rows(block, catalog):
        d = sv - bv if finite(bv) and finite(sv) else None
        note_html = f' <span class="ds-small ds-muted">({esc(note)})</span>' if note else ""
        # Only pass@1 has a paired test (its row above); these differences are shown uncolored.
        body.append(f"<tr><th scope=row>{esc(label)}{note_html}</th><td>{esc(catalog.fmt(key, bv))}</td>"
                    f"<td>{esc(catalog.fmt(key, sv))}</td>"
                    f'<td class="ds-neutral">{esc(catalog.fmt(key, d, signed=True))}</td></tr>')
    _, words, _ = significance(block)
    n_problems, n_samples = block.get("n_problems", "?"), block.get("num_samples", "?")
    head = (f'<b>{esc(suite)}</b> <span class="ds-muted">{esc(counted(n_problems, "problem"))} × '
            f"{esc(counted(n_samples, 'sample'))} · {esc(origin)} · "
            f"{esc(fmt_time(result.get('created_at')))}</span>")
    if link:
        head += f'<a class="ds-open-link" {open_attrs(rid, suite, job)}>Problem by problem →</a>'
    return (f'<div class="ds-suite" data-suite="{esc(suite)}" data-job="{esc(job)}">'
            f'<div class="ds-suite-head">{head}</div><div class="ds-suite-cell">{cell_html(block, catalog, size=False)}</div>'
            f'<div class="ds-small ds-muted">SFT − base: {esc(words)}</div>'
            f'<div class="ds-scroll"><table class="ds-table ds-metrics ds-suite-table"><thead><tr><th>Metric</th>'
            f"<th>Base</th><th>SFT</th><th>Δ (SFT − base)</th></tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            f'<div class="ds-small ds-muted">{esc(settings_line(block))}</div></div>')


def suites_html(results: Sequence[dict[str, Any]], catalog: Catalog) -> str:
    if not results:
        return '<div class="ds-muted">No benchmark results yet.</div>'
    return f'<div class="ds-suites">{"".join(suite_card_html(r, catalog) for r in results)}</div>'


# --------------------------------------------------------------------------- problem by problem

def _n_right(samples: Sequence[dict[str, Any]]) -> int:
    return sum(bool(s.get("correct")) for s in samples)


def keep(record: dict[str, Any], how: str) -> bool:
    """Filters of the problem view; a model is "wrong" on a problem when any of its answers is wrong."""
    base, sft = record.get("base") or [], record.get("sft") or []
    if how == "differ":
        return _n_right(base) != _n_right(sft)
    if how == "sft_wrong":
        return _n_right(sft) < len(sft)
    if how == "base_wrong":
        return _n_right(base) < len(base)
    return True


def _score_chip(who: str, samples: Sequence[dict[str, Any]]) -> str:
    n, right = len(samples), _n_right(samples)
    if n == 1:
        ok = bool(samples[0].get("correct"))
        return f'<span class="ds-chip {"ds-good" if ok else "ds-bad"}">{who} {"✓" if ok else "✗"}</span>'
    cls = "ds-good" if right == n else "ds-bad" if right == 0 else "ds-neutral"
    return f'<span class="ds-chip {cls}">{who} {right}/{n} right</span>'


def problem_html(record: dict[str, Any]) -> str:
    base, sft = record.get("base") or [], record.get("sft") or []
    cols = []
    for key, title in MODELS:
        samples = record.get(key) or []
        many = len(samples) > 1
        body = "".join(sample_html(s, f"answer {i}/{len(samples)}" if many else "") for i, s in enumerate(samples, 1))
        cols.append(f'<div class="ds-col ds-col-{key}"><div class="ds-col-title">{title}</div>{body}</div>')
    system = record.get("system")
    sys_html = (f'<details class="ds-system"><summary>system prompt</summary><div class="ds-small">{esc(system)}</div>'
                "</details>") if system else ""
    number = int(record.get("index", 0)) + 1
    return (f'<div class="ds-sample ds-problem" data-index="{number}" data-id="{esc(record.get("id"))}">'
            f'<div class="ds-sample-head"><span class="ds-sample-n">#{number}</span>'
            f'<span class="ds-muted ds-small">id {esc(record.get("id"))}</span>{_score_chip("base", base)}'
            f'{_score_chip("SFT", sft)}<span class="ds-gold">gold answer: <b>{esc(record.get("gold"))}</b></span></div>'
            f'<div class="ds-prompt">{esc(record.get("prompt"))}</div>{sys_html}'
            f'<div class="ds-pair">{"".join(cols)}</div></div>')


def problems_html(records: Sequence[dict[str, Any]]) -> str:
    if not records:
        return '<div class="ds-muted">No problem matches this filter.</div>'
    return "".join(problem_html(r) for r in records)
