"""Pure formatting helpers for the dashboard (no Gradio, no HTTP): easy to unit-test.

HTML produced here uses only CSS classes defined in :data:`ui.theme.CSS` (colors come from
Gradio's theme variables, so it reads well in light and dark themes) and escapes every piece
of text that comes from the API or a model.
"""

from __future__ import annotations

import html
import json
import math
import shlex
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

STATUS_ICONS = {
    "queued": "◷", "running": "◔", "succeeded": "✔", "failed": "✖", "cancelled": "■",
}

# (key, label, better) for the metrics table; better: +1 higher is better, -1 lower is better, 0 neutral.
METRIC_ROWS: tuple[tuple[str, str, int], ...] = (
    ("accuracy", "Accuracy", +1),
    ("avg_quality_score", "Avg reasoning quality score", +1),
    ("pct_with_reasoning", "% with reasoning", +1),
    ("pct_with_think_tags", "% with think tags", +1),
    ("avg_steps", "Avg steps", +1),
    ("avg_new_tokens", "Avg new tokens", 0),
    ("avg_generation_time_s", "Avg generation time", -1),
    ("avg_tokens_per_s", "Avg tokens/s", +1),
)

CURVE_SERIES = ("loss", "ce", "kl", "eval_loss", "lr", "tokens_per_s", "grad_norm")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --------------------------------------------------------------------------- numbers and times

def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not _finite(seconds) or seconds < 0:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def fmt_time(value: str | None) -> str:
    """Local wall time of an ISO timestamp, short form (``2024-05-01 14:03``)."""
    dt = parse_time(value)
    return dt.astimezone().strftime("%Y-%m-%d %H:%M") if dt else "—"


def run_duration(run: dict[str, Any], now: datetime | None = None) -> float | None:
    start = parse_time(run.get("started_at"))
    if start is None:
        return None
    end = parse_time(run.get("finished_at")) or (now or datetime.now(UTC))
    return max(0.0, (end - start).total_seconds())


def fmt_value(key: str, value: Any, signed: bool = False) -> str:
    """One metric value as people read it: accuracy in %, deltas of accuracy in percentage points."""
    if not _finite(value):
        return "n/a"
    sign = "+" if signed else ""
    if key == "accuracy":
        return f"{value * 100:{sign}.1f} pp" if signed else f"{value * 100:.1f}%"
    if key.startswith("pct_"):
        return f"{value:{sign}.1f} pp" if signed else f"{value:.1f}%"
    if key == "avg_generation_time_s":
        return f"{value:{sign}.2f}s"
    if key in ("avg_tokens_per_s", "avg_new_tokens", "avg_steps"):
        return f"{value:{sign}.1f}"
    return f"{value:{sign}.3f}"


def fmt_accuracy(side: dict[str, Any] | None) -> str:
    side = side or {}
    acc = side.get("accuracy")
    if not _finite(acc):
        return "n/a (no ground truth)" if side else "—"
    n_ok, n_gt = side.get("n_correct"), side.get("n_with_ground_truth")
    return f"{acc * 100:.1f}% ({n_ok}/{n_gt})" if n_ok is not None and n_gt else f"{acc * 100:.1f}%"


def delta_class(delta: Any, better: int) -> str:
    if not _finite(delta) or better == 0 or abs(delta) < 1e-12:
        return "ds-neutral"
    return "ds-good" if (delta > 0) == (better > 0) else "ds-bad"


def fmt_bytes(n: Any) -> str:
    if not _finite(n):
        return "—"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


# --------------------------------------------------------------------------- runs

def run_label(run: dict[str, Any], with_status: bool = False) -> str:
    """``#3 demo · tiny-random`` (plus `` · succeeded`` with ``with_status``)."""
    cfg = run.get("config") or {}
    name = run.get("name") or cfg.get("name") or "unnamed"
    label = f"#{run.get('id')} {name}"
    if cfg.get("model"):
        label += f" · {cfg['model']}"
    if with_status:
        label += f" · {run.get('status', '?')}"
    return label


def status_text(run: dict[str, Any]) -> str:
    status = str(run.get("status", "?"))
    text = f"{STATUS_ICONS.get(status, '•')} {status}"
    if status == "running" and run.get("stage"):
        text += f" ({run['stage']})"
    if run.get("cancel_requested") and status in ("queued", "running"):
        text += " · cancelling"
    return text


def sft_accuracy(run: dict[str, Any]) -> tuple[str, str]:
    summary = run.get("summary") or {}
    sft = (summary.get("sft") or {}).get("accuracy")
    delta = (summary.get("deltas") or {}).get("accuracy")
    return (fmt_value("accuracy", sft) if _finite(sft) else "—",
            fmt_value("accuracy", delta, signed=True) if _finite(delta) else "—")


RUNS_COLUMNS = ["ID", "Name", "Model", "Dataset", "Status", "Progress", "Started", "Duration", "SFT accuracy", "Δ accuracy"]


def runs_frame(items: Sequence[dict[str, Any]], now: datetime | None = None) -> pd.DataFrame:
    rows = []
    for r in items:
        cfg = r.get("config") or {}
        progress = r.get("progress")
        acc, delta = sft_accuracy(r)
        rows.append([
            r.get("id"),
            r.get("name") or cfg.get("name") or "",
            cfg.get("model", ""),
            cfg.get("dataset", ""),
            status_text(r),
            f"{progress * 100:.0f}%" if _finite(progress) else "—",
            fmt_time(r.get("started_at") or r.get("created_at")),
            fmt_duration(run_duration(r, now)),
            acc,
            delta,
        ])
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def progress_html(run: dict[str, Any], now: datetime | None = None) -> str:
    """Status badge, stage, a progress bar with ETA and elapsed time."""
    status = str(run.get("status", "?"))
    progress = run.get("progress") if _finite(run.get("progress")) else 0.0
    progress = min(1.0, max(0.0, float(progress)))
    eta = run.get("eta_s")
    parts = [f'<span class="ds-badge ds-st-{esc(status)}">{esc(status_text(run))}</span>']
    elapsed = run_duration(run, now)
    if status in ("queued", "running"):
        if status == "running":
            parts.append(f"<span>elapsed {fmt_duration(elapsed)}</span>")
        if _finite(eta) and status == "running":
            parts.append(f"<span>ETA {fmt_duration(eta)}</span>")
        elif status == "queued":
            parts.append("<span>waiting for a worker</span>")
    elif elapsed is not None:
        parts.append(f"<span>took {fmt_duration(elapsed)}</span>")
    stage = run.get("stage")
    if stage and status == "running":
        parts.append(f"<span>stage: <b>{esc(stage)}</b></span>")
    bar_cls = {"failed": "ds-bar-failed", "cancelled": "ds-bar-cancelled", "succeeded": "ds-bar-done"}.get(status, "")
    pct = f"{progress * 100:.0f}%"
    if status == "running" and stage in ("evaluate", "save"):
        # Training is done; generation for the evaluation has no progress of its own in the API.
        pct = "training done · evaluating base and SFT…" if stage == "evaluate" else "saving…"
        bar_cls = "ds-bar-busy"
    elif status == "running" and stage in ("load", "data"):
        pct = f"{pct} · preparing"
    return (
        f'<div class="ds-progress" data-status="{esc(status)}">'
        f'<div class="ds-progress-meta">{" · ".join(parts)}<span class="ds-pct">{esc(pct)}</span></div>'
        f'<div class="ds-bar {bar_cls}"><div class="ds-bar-fill" style="width:{progress * 100:.1f}%"></div></div>'
        f"</div>"
    )


def failure_html(run: dict[str, Any], log_tail: Sequence[dict[str, Any]] | Sequence[str] = ()) -> str:
    """The banner at the top of a failed run: the error line and the last log lines."""
    if run.get("status") != "failed":
        return ""
    lines = [ln if isinstance(ln, str) else _log_line(ln) for ln in log_tail]
    tail = "\n".join(lines[-12:])
    tail_html = f'<pre class="ds-tail">{esc(tail)}</pre>' if tail else ""
    return (
        f'<div class="ds-failure" role="alert"><div class="ds-failure-title">✖ Run failed: '
        f"{esc(run.get('error') or 'no error message recorded')}</div>"
        f"{'<div class=ds-small>Last log lines:</div>' if tail else ''}{tail_html}</div>"
    )


def config_rows(config: dict[str, Any], groups: dict[str, list[str]] | None = None) -> list[list[str]]:
    order = [k for names in (groups or {}).values() for k in names if k in config]
    order += [k for k in config if k not in order]
    return [[k, json.dumps(config[k]) if not isinstance(config[k], str) else config[k]] for k in order]


# --------------------------------------------------------------------------- logs

def _log_line(line: dict[str, Any]) -> str:
    ts = str(line.get("ts") or "")
    t = ts[11:19] if len(ts) >= 19 else ts
    level = str(line.get("level") or "").upper()
    lvl = "" if level in ("", "INFO") else f"{level} "
    return f"{t} {lvl}{line.get('message', '')}".strip()


def format_log(lines: Iterable[dict[str, Any] | str], total: int, shown_max: int) -> str:
    """The log panel text: the last ``shown_max`` lines, with a note on how many are hidden above."""
    body = [ln if isinstance(ln, str) else _log_line(ln) for ln in lines]
    hidden = max(0, total - len(body))
    head = [f"… {hidden:,} earlier lines not shown (full log under Artifacts) …"] if hidden else []
    return "\n".join(head + body)


def format_log_html(lines: Sequence[dict[str, Any]], total: int, shown_max: int, notes: Sequence[str] = ()) -> str:
    """The log panel: escaped lines in a scroll box, warnings and errors colored, notes at the end."""
    out = []
    hidden = max(0, total - len(lines))
    if hidden:
        out.append(f'<span class="ds-log-note">… {hidden:,} earlier lines not shown (the full log is under Artifacts) …</span>')
    for ln in lines:
        level = str(ln.get("level") or "").upper()
        cls = " ds-log-err" if level in ("ERROR", "CRITICAL") else (" ds-log-warn" if level.startswith("WARN") else "")
        out.append(f'<span class="ds-log-line{cls}">{esc(_log_line(ln))}</span>')
    out += [f'<span class="ds-log-note">{esc(n)}</span>' for n in notes if n]
    if not out:
        out.append('<span class="ds-log-note">No log lines yet.</span>')
    return f'<pre class="ds-logbox" data-lines="{len(lines)}" data-total="{total}">{"".join(out)}</pre>'


# --------------------------------------------------------------------------- metrics and curves

def metrics_frame(points: Sequence[dict[str, Any]], series: Sequence[str] = CURVE_SERIES,
                  label: str | None = None) -> pd.DataFrame:
    """Long format (step, value, series[, run]) for ``gr.LinePlot``."""
    rows = []
    for p in points:
        step = p.get("step")
        if not _finite(step):
            continue
        for key in series:
            v = p.get(key)
            if _finite(v):
                rows.append({"step": float(step), "value": float(v), "series": key,
                             **({"run": label} if label is not None else {})})
    cols = ["step", "value", "series"] + (["run"] if label is not None else [])
    # Typed even when empty: the plot takes its axis types from the dtypes (object = categorical axis).
    df = pd.DataFrame(rows, columns=cols)
    return df.astype({"step": "float64", "value": "float64", "series": "str",
                      **({"run": "str"} if label is not None else {})})


def metrics_table_html(summary: dict[str, Any] | None, deltas: dict[str, Any] | None = None) -> str:
    """Base | SFT | Δ with the delta colored by whether the change is an improvement."""
    if not summary:
        return '<div class="ds-muted">No evaluation yet.</div>'
    base, sft = summary.get("base") or {}, summary.get("sft") or {}
    deltas = deltas or {}
    rows = []
    for key, label, better in METRIC_ROWS:
        b, s, d = base.get(key), sft.get(key), deltas.get(key)
        if not _finite(d) and _finite(b) and _finite(s):
            d = s - b
        if key == "accuracy":
            bv, sv = fmt_accuracy(base), fmt_accuracy(sft)
        else:
            bv, sv = fmt_value(key, b), fmt_value(key, s)
        arrow = "▲ " if _finite(d) and d > 0 else ("▼ " if _finite(d) and d < 0 else "")
        rows.append(
            f"<tr><th scope=row>{esc(label)}</th><td>{esc(bv)}</td><td>{esc(sv)}</td>"
            f'<td class="{delta_class(d, better)}">{arrow}{esc(fmt_value(key, d, signed=True))}</td></tr>'
        )
    n = sft.get("n") or base.get("n")
    caption = f"<caption>{esc(n)} prompts, same prompts for both models</caption>" if n else ""
    return (f'<div class="ds-scroll"><table class="ds-table ds-metrics">{caption}<thead><tr><th>Metric</th>'
            f"<th>Base</th><th>SFT</th><th>Δ (SFT − base)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def by_set_html(by_set: dict[str, Any] | None) -> str:
    if not by_set:
        return ""
    rows = []
    for name, models in by_set.items():
        b, s = models.get("base") or {}, models.get("sft") or {}
        rows.append(f"<tr><th scope=row>{esc(name)}</th><td>{esc(s.get('n') or b.get('n'))}</td>"
                    f"<td>{esc(fmt_accuracy(b))}</td><td>{esc(fmt_accuracy(s))}</td>"
                    f"<td>{esc(fmt_value('avg_quality_score', b.get('avg_quality_score')))}</td>"
                    f"<td>{esc(fmt_value('avg_quality_score', s.get('avg_quality_score')))}</td></tr>")
    return ('<div class="ds-scroll"><table class="ds-table"><thead><tr><th>Prompt set</th><th>n</th><th>Base accuracy</th>'
            "<th>SFT accuracy</th><th>Base quality</th><th>SFT quality</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


COMPARE_METRICS: tuple[tuple[str, str, int], ...] = (
    ("accuracy", "accuracy", +1),
    ("avg_quality_score", "quality", +1),
    ("pct_with_think_tags", "% think tags", +1),
    ("avg_steps", "steps", +1),
    ("avg_new_tokens", "new tokens", 0),
)


def compare_html(runs: Sequence[dict[str, Any]]) -> str:
    """One row per run: config highlights, then per metric base → SFT with the colored delta."""
    if not runs:
        return '<div class="ds-muted">Pick runs above to compare them.</div>'
    head = ("<tr><th>Run</th><th>Status</th><th>Dataset</th><th>Rows</th><th>Epochs</th><th>LR</th><th>KL</th>"
            + "".join(f"<th>{esc(label)}<br><span class=ds-small>base → SFT (Δ)</span></th>" for _, label, _ in COMPARE_METRICS)
            + "<th>Duration</th></tr>")
    rows = []
    for r in runs:
        cfg = r.get("config") or {}
        summ = r.get("summary") or {}
        base, sft, d = summ.get("base") or {}, summ.get("sft") or {}, summ.get("deltas") or {}
        cells = [run_label(r), status_text(r), cfg.get("dataset", ""),
                 cfg.get("max_samples") if cfg.get("max_samples") is not None else "default",
                 _num(cfg.get("epochs")) if cfg.get("epochs") is not None else "—",
                 cfg.get("learning_rate", "—"), cfg.get("kl_coef") if cfg.get("use_kl_regularization") else "off"]
        tds = "".join(f"<td>{esc(c)}</td>" for c in cells)
        for key, _, better in COMPARE_METRICS:
            b, sv, dv = base.get(key), sft.get(key), d.get(key)
            if not summ:
                tds += '<td class="ds-muted">—</td>'
                continue
            tds += (f"<td>{esc(fmt_value(key, b))} → {esc(fmt_value(key, sv))} "
                    f'<span class="{delta_class(dv, better)}">({esc(fmt_value(key, dv, signed=True))})</span></td>')
        tds += f"<td>{esc(fmt_duration(run_duration(r)))}</td>"
        rows.append(f"<tr>{tds}</tr>")
    return (f'<div class="ds-scroll"><table class="ds-table ds-compare"><thead>{head}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


# --------------------------------------------------------------------------- responses

def split_think(text: str) -> tuple[str | None, str, bool]:
    """(reasoning or None, answer part, reasoning closed) following docs/metrics.md's parts."""
    text = text or ""
    if "<think>" in text:
        pre, _, rest = text.partition("<think>")
        if "</think>" in rest:
            reasoning, _, _ = rest.partition("</think>")
            answer = text.rsplit("</think>", 1)[1]
            return reasoning.strip("\n"), (pre + answer).strip(), True
        return rest.strip("\n"), pre.strip(), False
    if "</think>" in text:
        reasoning, _, _ = text.partition("</think>")
        return reasoning.strip("\n"), text.rsplit("</think>", 1)[1].strip(), True
    return None, text.strip(), True


def response_html(text: str, side: dict[str, Any] | None = None, *, streaming: bool = False,
                  ground_truth: Any = None) -> str:
    """One model's answer: the ``<think>`` part in a collapsible block, then the answer and its mark."""
    reasoning, answer, closed = split_think(text)
    out = ['<div class="ds-resp">']
    if reasoning is not None:
        words = len(reasoning.split())
        note = "" if closed else (" · thinking…" if streaming else " · not closed (cut off)")
        is_open = " open" if streaming and not closed else ""
        out.append(f'<details class="ds-think"{is_open}><summary>Reasoning ({words} words{note})</summary>'
                   f'<div class="ds-think-body">{esc(reasoning)}</div></details>')
    if answer:
        out.append(f'<div class="ds-answer-text">{esc(answer)}</div>')
    elif not streaming:
        empty = "(empty response)" if not (text or "").strip() else "(no answer after the reasoning)"
        out.append(f'<div class="ds-answer-text ds-muted">{empty}</div>')
    if streaming:
        out.append('<span class="ds-cursor">▍</span>')
    if side:
        extracted = side.get("answer")
        correct = side.get("correct")
        mark, cls = {True: ("✓", "ds-good"), False: ("✗", "ds-bad")}.get(correct, ("", "ds-neutral"))
        truth = f' <span class="ds-muted">(expected {esc(ground_truth)})</span>' if ground_truth not in (None, "") else ""
        shown = esc(extracted) if extracted not in (None, "") else '<span class="ds-muted">none found</span>'
        out.append(f'<div class="ds-extracted {cls}">Extracted answer: <b>{shown}</b> '
                   f'<span class="ds-mark" aria-label="{"correct" if correct else "wrong" if correct is False else "ungraded"}">'
                   f"{mark}</span>{truth}</div>")
        bits = []
        if _finite(side.get("quality_score")):
            bits.append(f"quality {side['quality_score']:.2f}")
        if side.get("num_steps") is not None:
            bits.append(f"{side['num_steps']} steps")
        if side.get("new_tokens") is not None:
            bits.append(f"{side['new_tokens']} tokens")
        if _finite(side.get("generation_time_s")):
            bits.append(f"{side['generation_time_s']:.2f}s")
        if bits:
            out.append(f'<div class="ds-small ds-muted">{esc(" · ".join(bits))}</div>')
    out.append("</div>")
    return "".join(out)


_MARK = {True: "✓", False: "✗", None: "–"}
_MARK_CLASS = {True: "ds-good", False: "ds-bad", None: "ds-neutral"}


def samples_html(samples: Sequence[dict[str, Any]], limit: int | None = None) -> str:
    """Every evaluation prompt: the prompt, then base and SFT side by side."""
    if not samples:
        return '<div class="ds-muted">No prompts were evaluated.</div>'
    shown = samples if limit is None else samples[:limit]
    cards = []
    for i, s in enumerate(shown, start=1):
        base, sft = s.get("base") or {}, s.get("sft") or {}
        marks = "".join(
            f'<span class="ds-chip {_MARK_CLASS[side.get("correct")]}">'
            f'{who} {_MARK[side.get("correct")]}</span>'
            for who, side in (("base", base), ("SFT", sft))
        )
        gt = s.get("ground_truth")
        cards.append(
            f'<div class="ds-sample" data-index="{i}">'
            f'<div class="ds-sample-head"><span class="ds-sample-n">#{i}</span>'
            f'<span class="ds-chip ds-neutral">{esc(s.get("set") or "")}</span>{marks}'
            f'{f"<span class=ds-muted>ground truth: <b>{esc(gt)}</b></span>" if gt not in (None, "") else ""}</div>'
            f'<div class="ds-prompt">{esc(s.get("prompt"))}</div>'
            f'<div class="ds-pair"><div class="ds-col"><div class="ds-col-title">Base</div>'
            f'{response_html(str(base.get("response", "")), base, ground_truth=None)}</div>'
            f'<div class="ds-col"><div class="ds-col-title">SFT</div>'
            f'{response_html(str(sft.get("response", "")), sft, ground_truth=None)}</div></div></div>'
        )
    more = ""
    if limit is not None and len(samples) > limit:
        more = f'<div class="ds-muted">… and {len(samples) - limit} more prompts (see report.md under Artifacts)</div>'
    return "".join(cards) + more


# --------------------------------------------------------------------------- launch form

def config_diff(values: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Fields whose value differs from ``baseline`` (defaults + preset), dropping empty optionals."""
    out = {}
    for k, v in values.items():
        if v is None and baseline.get(k) is None:
            continue
        if k in baseline and _same(v, baseline[k]):
            continue
        out[k] = v
    return out


def _same(a: Any, b: Any) -> bool:
    if _finite(a) and _finite(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


def cli_command(body: dict[str, Any]) -> str:
    """``distill --flag value …`` for a POST /runs body (booleans as --flag / --no-flag)."""
    parts = ["distill"]
    for k, v in body.items():
        if v is None:
            continue
        if isinstance(v, bool):
            parts.append(f"--{k}" if v else f"--no-{k}")
        else:
            parts += [f"--{k}", shlex.quote(_num(v))]
    return " ".join(parts)


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def curl_command(api_base: str, body: dict[str, Any], with_token: bool) -> str:
    auth = ' \\\n  -H "Authorization: Bearer $DISTILL_API_TOKEN"' if with_token else ""
    data = json.dumps(body, separators=(", ", ": "))
    return (f"curl -sS -X POST {shlex.quote(api_base.rstrip('/') + '/api/v1/runs')}{auth} \\\n"
            f"  -H 'Content-Type: application/json' \\\n  -d {shlex.quote(data)}")


def preview_html(rows: Sequence[dict[str, Any]]) -> str:
    """Converted training rows: system, prompt, and the completion with its ``<think>`` block."""
    if not rows:
        return '<div class="ds-muted">No rows.</div>'
    cards = []
    for i, r in enumerate(rows, start=1):
        system = r.get("system")
        cards.append(
            f'<div class="ds-sample"><div class="ds-sample-head"><span class="ds-sample-n">row {i}</span></div>'
            + (f'<div class="ds-small ds-muted">system: {esc(system)}</div>' if system else "")
            + f'<div class="ds-prompt">{esc(r.get("prompt"))}</div>'
            + f'<div class="ds-col-title">completion (as trained)</div>'
            + f'<pre class="ds-raw">{esc(r.get("completion"))}</pre></div>'
        )
    return "".join(cards)


def kv_html(data: dict[str, Any] | None, title: str = "") -> str:
    if not data:
        return ""
    rows = "".join(
        f"<tr><th scope=row>{esc(k)}</th><td>{esc(v if isinstance(v, (str, int, float)) or v is None else json.dumps(v))}</td></tr>"
        for k, v in data.items()
    )
    cap = f"<caption>{esc(title)}</caption>" if title else ""
    return f'<div class="ds-scroll"><table class="ds-table ds-kv">{cap}<tbody>{rows}</tbody></table></div>'


def banner_html(message: str | None, kind: str = "error") -> str:
    if not message:
        return ""
    icon = {"error": "⚠", "info": "ℹ", "ok": "✔"}.get(kind, "")
    return f'<div class="ds-banner ds-banner-{esc(kind)}" role="status">{icon} {esc(message)}</div>'


def artifacts_html(items: Sequence[dict[str, Any]], link_base: str | None) -> str:
    """Artifact list; names are direct download links when the browser can reach the API itself."""
    if not items:
        return '<div class="ds-muted">No artifacts yet.</div>'
    from urllib.parse import quote

    rows = []
    for a in items:
        name = str(a.get("name", ""))
        kind = a.get("kind", "file")
        label = esc(name) + (" (zip)" if kind == "folder" else "")
        cell = f'<a href="{esc(link_base.rstrip("/") + "/" + quote(name))}" download>{label}</a>' if link_base is not None else label
        rows.append(f"<tr><td>{cell}</td><td>{esc(fmt_bytes(a.get('size')))}</td></tr>")
    return (f'<div class="ds-scroll"><table class="ds-table ds-artifacts"><thead><tr><th>Artifact</th><th>Size</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')
