"""The Traces page's HTML: a trace generation's funnel as bars (problems read → asked → answered; samples →
complete → correct → kept; what was dropped before asking), the teacher's numbers (pass@1 with its 95 %
interval, pass@k, tokens, % complete and looping), rejections by reason, and every problem with its samples
and their verdicts.

The API writes ``data_report.json`` when the generation ends; until then it answers the same
things over the problems finished so far (what cannot be known yet, such as problems read, stays empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ui.answers import extracted_html, text_parts
from ui.shared import Catalog, esc, finite, fmt_duration

# As GET /runs/{id}/traces?verdict=…&status=… accepts them (distill/traces/verdicts.py), in the order a
# trace is judged: the first that applies.
VERDICTS = ("kept", "failed", "looping", "incomplete", "no_answer", "wrong", "too_long", "duplicate", "not_selected")
REJECTIONS = VERDICTS[1:]
STATUSES = ("answered", "failed", "duplicate", "contaminated")
VERDICT_WORDS = {
    "kept": "kept: a training row",
    "failed": "the request failed, retries included",
    "looping": "the trace repeats itself",
    "incomplete": "stopped by the token limit, or the thought never closed",
    "no_answer": "no answer could be extracted",
    "wrong": "the extracted answer is not the gold answer",
    "too_long": "longer than max_seq_length in the student's tokens",
    "duplicate": "the same text as an earlier trace of this problem",
    "not_selected": "a good candidate the keep policy did not pick",
}
VERDICT_CLASS = {"kept": "ds-v-kept", "failed": "ds-v-bad", "wrong": "ds-v-bad", "no_answer": "ds-v-bad",
                 "looping": "ds-v-warn", "incomplete": "ds-v-warn", "too_long": "ds-v-warn",
                 "duplicate": "ds-v-muted", "not_selected": "ds-v-muted"}
STATUS_WORDS = {"answered": "answered", "failed": "every request failed",
                "duplicate": "a duplicate of an earlier problem: not asked",
                "contaminated": "in a benchmark: not asked"}
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


# --------------------------------------------------------------------------- the funnel

def _count(value: Any) -> str:
    return f"{int(value):,}" if finite(value) else "…"


def bar_row(key: str, label: str, value: Any, scale: Any, tip: str = "") -> str:
    """One bar of the funnel, as wide as ``value`` is of ``scale``, with the number and that share."""
    share = value / scale if finite(value) and finite(scale) and scale > 0 else None
    pct = f"{share * 100:.0f}%" if share is not None else ""
    width = min(100.0, max(0.0, share * 100)) if share is not None else 0.0
    title = f' title="{esc(tip)}"' if tip else ""
    return (f'<div class="ds-frow" data-key="{esc(key)}"{title}><span class="ds-flabel">{esc(label)}</span>'
            f'<span class="ds-fbar"><span class="ds-fbar-fill" style="width:{width:.1f}%"></span></span>'
            f'<span class="ds-fnum">{_count(value)}</span><span class="ds-fpct">{pct}</span></div>')


def _column(title: str, rows: Sequence[tuple[str, str, Any, str]]) -> str:
    """Bars scaled to the first row (or, while it is not known yet, to the largest known)."""
    known = [v for _, _, v, _ in rows if finite(v)]
    scale = rows[0][2] if finite(rows[0][2]) else max(known, default=0)
    bars = "".join(bar_row(key, label, value, scale, tip) for key, label, value, tip in rows)
    return f'<div class="ds-funnel-col"><div class="ds-col-title">{esc(title)}</div>{bars}</div>'


def _contaminated_text(report: dict[str, Any]) -> str:
    by = {s: n for s, n in (report.get("contaminated_by") or {}).items() if n}
    return f" ({', '.join(f'{s} {n}' for s, n in by.items())})" if by else ""


def dropped_html(report: dict[str, Any]) -> str:
    """What the teacher was never asked (duplicates, benchmark problems, held out), and what it failed."""
    f = report.get("funnel") or {}
    items = [("duplicates", "duplicates", f.get("duplicates"), ""),
             ("contaminated", "contaminated", f.get("contaminated"), _contaminated_text(report)),
             ("held_out", "held out for evaluation", f.get("held_out"), ""),
             ("failed", "failed (every request)", f.get("failed"), ""),
             ("unasked", "not asked (stopped)", f.get("unasked"), "")]
    chips = "".join(f'<span class="ds-drop" data-key="{key}">{esc(label)} <b>{_count(n)}</b>{esc(extra)}</span>'
                    for key, label, n, extra in items if finite(n) and (n or key in ("duplicates", "contaminated")))
    skipped = report.get("not_decontaminated") or {}
    notes = "".join(f'<div class="ds-small ds-muted">not checked against {esc(s)}: {esc(why)}</div>'
                    for s, why in skipped.items())
    against = report.get("decontaminated_against")
    checked = (f'<div class="ds-small ds-muted">checked against: {esc(", ".join(against))}</div>' if against
               else '<div class="ds-small ds-muted">checked against no benchmark</div>' if against == [] else "")
    return (f'<div class="ds-dropped"><div class="ds-col-title">Dropped before asking, or failed</div>'
            f'<div class="ds-drops">{chips}</div>{checked}{notes}</div>')


def funnel_html(report: dict[str, Any]) -> str:
    """Problems read → asked → answered, and samples → complete → correct → kept, as bars."""
    f = report.get("funnel") or {}
    problems = [("problems_read", "problems read", f.get("problems_read"), "rows of the dataset with an answer"),
                ("asked", "asked", f.get("asked"), "sent to the teacher: not a duplicate, not in a benchmark, "
                                                   "not held out"),
                ("answered", "answered", f.get("answered"), "at least one sample came back")]
    samples = [("samples", "samples", f.get("samples"), "traces written by the teacher"),
               ("complete", "complete", f.get("complete"), "a closed thought, not cut by the token limit"),
               ("correct", "correct", f.get("correct"), "the extracted answer is the gold answer"),
               ("kept", "kept", f.get("kept"), "training rows (the keep policy's pick)")]
    return (f'<div class="ds-funnel">{_column("Problems", problems)}{_column("Samples", samples)}</div>'
            f"{dropped_html(report)}")


# --------------------------------------------------------------------------- the teacher, rejections

def _pass_at_k(teacher: dict[str, Any], catalog: Catalog) -> str:
    ks = sorted((teacher.get("pass@k") or {}).items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0)
    return " · ".join(f"pass@{k} {catalog.fmt('pass@1', v)}" for k, v in ks)


def _num(value: Any) -> str:
    return f"{value:,.0f}" if finite(value) else "n/a"


def _pct(value: Any) -> str:
    return f"{value:.1f}%" if finite(value) else "n/a"


def teacher_rows(report: dict[str, Any], catalog: Catalog) -> list[tuple[str, str]]:
    """(label, value) of the teacher's numbers; while it runs they are over the problems answered so far."""
    t, tok = report.get("teacher") or {}, report.get("tokens") or {}
    live = bool(report.get("live"))
    size = f" over {t.get('problems', 0)} problems, {t.get('samples', 0)} samples"
    rows = [("Teacher", " · ".join(str(x) for x in (t.get("model"), t.get("engine"), t.get("url")) if x))] if t.get(
        "model") else []
    pass1 = catalog.with_interval("pass@1", t.get("pass@1"), t.get("pass@1_ci"))
    rows += [("pass@1 so far" if live else "pass@1 (95 % interval)", pass1 + size),
             ("pass@k", _pass_at_k(t, catalog) or "n/a"),
             ("Complete traces", _pct(t.get("complete_pct"))), ("Looping traces", _pct(t.get("looping_pct"))),
             ("Tokens per trace", f"p50 {_num(t.get('tokens_p50'))} · p95 {_num(t.get('tokens_p95'))}"),
             ("Kept rows, student tokens", f"p50 {_num(tok.get('kept_p50'))} · p95 {_num(tok.get('kept_p95'))}"),
             ("Tokens spent", f"{_num(tok.get('prompt'))} prompt + {_num(tok.get('completion'))} completion"),
             ("Keep policy", f"{report.get('keep', '?')} of {report.get('num_generations', '?')} samples per problem")]
    if not live:
        rows.append(("Time", fmt_duration(report.get("time_s"))))
    return rows


def teacher_html(report: dict[str, Any], catalog: Catalog) -> str:
    body = "".join(f"<tr><th scope=row>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in teacher_rows(report, catalog))
    return f'<div class="ds-scroll"><table class="ds-table ds-kv ds-teacher"><tbody>{body}</tbody></table></div>'


def verdict_badge(verdict: Any, count: Any = None) -> str:
    """A verdict as a coloured badge (its meaning in the tooltip), with a count when given."""
    v = str(verdict)
    label = v.replace("_", " ") + (f" {_count(count)}" if count is not None else "")
    zero = " ds-zero" if count == 0 else ""
    return (f'<span class="ds-verdict {VERDICT_CLASS.get(v, "ds-v-muted")}{zero}" data-verdict="{esc(v)}" '
            f'title="{esc(VERDICT_WORDS.get(v, v))}">{esc(label)}</span>')


def rejections_html(report: dict[str, Any]) -> str:
    rejected = report.get("rejected") or {}
    badges = "".join(verdict_badge(v, rejected.get(v, 0)) for v in REJECTIONS)
    return (f'<div class="ds-rejections"><div class="ds-col-title">Samples rejected, by reason</div>'
            f'<div class="ds-drops">{badges}</div></div>')


def stopped_html(report: dict[str, Any]) -> str:
    if report.get("stopped") != "budget":
        return ""
    unasked = (report.get("funnel") or {}).get("unasked")
    return (f'<div class="ds-banner ds-banner-warn" data-stopped="budget">⚠ stopped: budget — the teacher token '
            f"budget (max_teacher_tokens) ran out; {_count(unasked)} problems were not asked (--resume with a larger "
            "budget asks them).</div>")


def summary_html(report: dict[str, Any] | None, catalog: Catalog, status: str | None = None) -> str:
    """The funnel, the teacher and the rejections of one generation (``report`` None: nothing written yet)."""
    if report is None:
        return '<div class="ds-muted">No trace yet: the teacher has not finished a problem.</div>'
    note = ""
    if report.get("live"):
        why = {"failed": "the run failed", "cancelled": "the run was cancelled"}.get(str(status), "still generating")
        note = (f'<div class="ds-banner ds-banner-info" data-live="1">ℹ So far ({why}): counts over the problems '
                "finished; the full funnel, the interval and pass@k come when the generation ends.</div>")
    return (f'{note}{stopped_html(report)}<div class="ds-traces-summary">'
            f'<div class="ds-traces-funnel">{funnel_html(report)}{rejections_html(report)}</div>'
            f'<div class="ds-traces-teacher"><div class="ds-col-title">Teacher</div>{teacher_html(report, catalog)}'
            "</div></div>")


# --------------------------------------------------------------------------- problem by problem

def split_trace(text: Any) -> dict[str, Any]:
    """A stored trace (``<think>\\n…\\n</think>\\n\\n{answer}``; an unclosed thought has no ``</think>``) as
    the thought and the answer; the API hands generations over as that one text."""
    s = str(text or "")
    if not s.startswith(THINK_OPEN):
        return {"thinking": None, "answer_part": s, "thinking_closed": True}
    thought, closed, answer = s[len(THINK_OPEN):].partition(THINK_CLOSE)
    return {"thinking": thought.strip("\n"), "answer_part": answer.strip(), "thinking_closed": bool(closed)}


def _at(row: dict[str, Any], key: str, k: int) -> Any:
    values = row.get(key) or []
    return values[k] if k < len(values) else None


def trace_html(row: dict[str, Any], k: int) -> str:
    """Sample ``k`` of a problem: its verdict, tokens and finish reason, the thought and the answer apart, the
    extracted answer against the gold one."""
    n = len(row.get("generations") or [])
    error = _at(row, "errors", k)
    bits = [f"{_at(row, 'sample_tokens', k)} tokens" if _at(row, "sample_tokens", k) is not None else "",
            f"{_at(row, 'student_tokens', k)} in the student's tokens" if _at(row, "student_tokens", k) else "",
            f"finish: {_at(row, 'finish_reasons', k)}" if _at(row, "finish_reasons", k) else ""]
    meta = " · ".join(b for b in bits if b)
    failed = f'<div class="ds-small ds-bad">request failed: {esc(error)}</div>' if error else ""
    verdict = _at(row, "verdicts", k)
    # Shown unfolded: the problem itself is folded, and the thought is what a reader opens it for.
    text = "".join(text_parts(split_trace(_at(row, "generations", k)), open_thought=True))
    graded = extracted_html(_at(row, "extracted", k), None if error else bool(_at(row, "correctness_math_verify", k)),
                            row.get("answer"))
    return (f'<div class="ds-trace" data-sample="{k + 1}" data-verdict="{esc(verdict)}">'
            f'<div class="ds-sample-title"><b>sample {k + 1}/{n}</b>{verdict_badge(verdict) if verdict else ""}'
            f'<span>{esc(meta)}</span></div>{failed}{text}{graded}</div>')


def _why_not_asked(row: dict[str, Any]) -> str:
    status = row.get("status")
    if status == "duplicate":
        return f"Not asked: a duplicate of problem id {row.get('duplicate_of')}."
    if status == "contaminated":
        return f"Not asked: also in {', '.join(row.get('contaminated_by') or []) or 'a benchmark'}."
    if status == "failed":
        return f"Every request failed: {row.get('failure') or 'no message'}"
    return ""


def problem_html(row: dict[str, Any]) -> str:
    """One problem, folded: its verdicts and gold answer on the line; unfolded, the problem and every sample."""
    number = int(row.get("index", 0)) + 1
    status = str(row.get("status") or "?")
    verdicts = row.get("verdicts") or []
    chips = "".join(verdict_badge(v) for v in verdicts)
    words = esc(STATUS_WORDS.get(status, status))
    status_chip = "" if status == "answered" else f'<span class="ds-chip ds-flag" title="{words}">{esc(status)}</span>'
    score = (f'<span class="ds-small ds-muted">{row.get("correctness_count", 0)}/{len(verdicts)} correct</span>'
             if status == "answered" else "")
    why = _why_not_asked(row)
    note = f'<div class="ds-small ds-muted ds-why">{esc(why)}</div>' if why else ""
    traces = "".join(trace_html(row, k) for k in range(len(row.get("generations") or [])))
    return (f'<details class="ds-sample ds-tproblem" data-index="{number}" data-id="{esc(row.get("id"))}" '
            f'data-status="{esc(status)}"><summary><span class="ds-sample-n">#{number}</span>{status_chip}{chips}'
            f'{score}<span class="ds-tq">{esc(row.get("problem"))}</span>'
            f'<span class="ds-gold">gold: <b>{esc(row.get("answer"))}</b></span></summary>'
            f'<div class="ds-prompt">{esc(row.get("problem"))}</div>{note}'
            f'<div class="ds-traces">{traces}</div></details>')


def problems_html(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return '<div class="ds-muted">No problem matches these filters.</div>'
    return "".join(problem_html(r) for r in rows)


def filters_text(verdict: str | None, status: str | None, q: str | None) -> str:
    """``with a sample wrong, status answered, containing "apples"`` (empty for no filter)."""
    parts = ([f"with a sample {verdict.replace('_', ' ')}"] if verdict else []) + \
            ([f"status {status}"] if status else []) + ([f"containing “{q}”"] if q else [])
    return ", ".join(parts)


def count_html(total: int, offset: int, shown: int, page: int, pages: int, filters: str) -> str:
    which = f" {filters}" if filters else ""
    if not total:
        return f'<div class="ds-muted">No problem{esc(which)}.</div>'
    return (f'<div class="ds-muted">Problems {offset + 1}–{offset + shown} of {total}{esc(which)} · '
            f"page {page} of {pages}</div>")
