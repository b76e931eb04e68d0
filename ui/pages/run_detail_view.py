"""The Run page's HTML: progress, failure banner, log, curves' data, the older per-model metrics
table (with the paired test of the accuracy delta), every evaluation prompt, benchmark jobs, artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from ui.answers import MARK, MARK_CLASS, response_html
from ui.shared import (
    Catalog,
    counted,
    esc,
    finite,
    fmt_duration,
    fmt_time,
    run_duration,
    significance_html,
    status_text,
)

CURVE_SERIES = ("loss", "ce", "kl", "eval_loss", "lr", "tokens_per_s", "grad_norm")
# Shown inside the accuracy cell ("50.0% (2/4)"), not as rows of their own.
FOLDED = {"n", "n_correct", "n_with_ground_truth"}


# --------------------------------------------------------------------------- status

# The stages the bar weighs (worker/recorder.py), as the bar's text names them.
RUN_STAGES = {"train": "training", "evaluate": "evaluating base and SFT", "save": "saving the model"}

def progress_html(run: dict[str, Any], now: datetime | None = None) -> str:
    """Status badge, stage, a progress bar with ETA and elapsed time."""
    status = str(run.get("status", "?"))
    progress = run.get("progress") if finite(run.get("progress")) else 0.0
    progress = min(1.0, max(0.0, float(progress)))
    eta = run.get("eta_s")
    parts = [f'<span class="ds-badge ds-st-{esc(status)}">{esc(status_text(run))}</span>']
    elapsed = run_duration(run, now)
    if status in ("queued", "running"):
        if status == "running":
            parts.append(f"<span>elapsed {fmt_duration(elapsed)}</span>")
        if finite(eta) and status == "running" and run.get("stage") not in RUN_STAGES:  # else in the bar's text
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
    mode = (run.get("config") or {}).get("mode")
    if mode == "generate" or (status == "running" and stage == "generate"):
        # While a teacher writes traces, the progress is the share of the problems it has answered
        # (--mode all: training's progress follows).
        pct = f"{pct} of the problems answered" + (" · preparing" if status == "running" and stage in ("load", "data")
                                                  else "")
    elif status == "running" and stage in RUN_STAGES:
        # The bar covers the whole run (training, evaluation and saving weighed by their expected work): say which
        # part is going on, with the whole run's ETA.
        pct = f"{RUN_STAGES[stage]} · {pct}" + (f" · ETA {fmt_duration(eta)}" if finite(eta) else "")
    elif status == "running" and stage in ("load", "data"):
        pct = f"{pct} · preparing"
    return (
        f'<div class="ds-progress" data-status="{esc(status)}">'
        f'<div class="ds-progress-meta">{" · ".join(parts)}<span class="ds-pct">{esc(pct)}</span></div>'
        f'<div class="ds-bar {bar_cls}"><div class="ds-bar-fill" style="width:{progress * 100:.1f}%"></div></div>'
        f"</div>"
    )


def traces_link_html(run: dict[str, Any]) -> str:
    """For a run with a teacher: where its traces, their verdicts and the funnel are (a link to the Traces page)."""
    cfg = run.get("config") or {}
    if not cfg.get("teacher_model"):
        return ""
    rid = int(run["id"])
    what = ("It trains no model: train on its traces from there (Train on this)." if cfg.get("mode") == "generate"
            else "Training and evaluation use the traces it keeps.")
    return (f'<div class="ds-banner ds-banner-info">ℹ Trace generation with teacher {esc(cfg["teacher_model"])}. '
            f'<a href="?tab=traces&amp;run={rid}" data-open="traces" data-run="{rid}" id="run-traces-link">'
            f"Open its traces, verdicts and funnel on the Traces page →</a> {esc(what)}</div>")


def tracking_html(run: dict[str, Any]) -> str:
    """Where --report_to sent the run (``tracking`` of ``GET /runs/{id}``): each tracker's run, with the command that
    opens it; trackio's run links to trackio's dashboard on this server (``/trackio``, backend/trackio_mount.py), with
    the project open and the run selected; MLflow's to the run's address in ``mlflow ui`` (127.0.0.1:5000)."""
    trackers = (run.get("tracking") or {}).get("trackers") or {}
    items = []
    for name, i in trackers.items():
        if name == "trackio":
            # trackio's page reads the project and the selected runs from its query.
            link = "/trackio/?" + urlencode({"project": i.get("project") or "", "runs": i.get("run") or ""})
            how = (f'<a href="{esc(link)}" target="_blank" rel="noopener" class="ds-trackio-link">'
                   f'run {esc(i.get("run"))} in trackio\'s dashboard</a> (or <code>TRACKIO_DIR={esc(i.get("dir"))} '
                   f'trackio show --project {esc(i.get("project"))}</code>)')
        elif name == "mlflow":
            url = f'http://127.0.0.1:5000/#/experiments/{esc(i.get("experiment_id"))}/runs/{esc(i.get("run_id"))}'
            how = (f'<a href="{url}" target="_blank" rel="noopener">run {esc(i.get("run_id"))}</a> after '
                   f'<code>mlflow ui --backend-store-uri {esc(i.get("tracking_uri"))}</code>')
        elif name == "tensorboard":
            how = f'<code>tensorboard --logdir {esc(i.get("logdir"))}</code>'
        else:
            how = (f'{esc(i.get("mode"))} run {esc(i.get("id"))} in {esc(i.get("dir"))} '
                   "(<code>wandb sync</code> uploads)")
        items.append(f"<li><b>{esc(name)}</b>: {how}</li>")
    return f'<div class="ds-banner ds-banner-info" id="run-tracking">Tracked in:<ul>{"".join(items)}</ul></div>' \
        if items else ""


def parent_html(run: dict[str, Any]) -> str:
    """For a benchmark job: which run's models it measures (a link to that run); for a trace generation, a link to
    its Traces page; where the run is tracked (``tracking_html``)."""
    pid = run.get("parent_id")
    if not pid:
        return traces_link_html(run) + tracking_html(run)
    return (f'<div class="ds-banner ds-banner-info">ℹ Benchmark job of '
            f'<a href="?run={int(pid)}" data-open="run" data-run="{int(pid)}">run #{int(pid)}</a>: it measures that '
            "run's base and SFT models; its results show on that run's page and on the Benchmarks page.</div>")


def _log_line(line: dict[str, Any]) -> str:
    ts = str(line.get("ts") or "")
    t = ts[11:19] if len(ts) >= 19 else ts
    level = str(line.get("level") or "").upper()
    lvl = "" if level in ("", "INFO") else f"{level} "
    return f"{t} {lvl}{line.get('message', '')}".strip()


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


def metrics_frame(points: Sequence[dict[str, Any]], series: Sequence[str] = CURVE_SERIES,
                  label: str | None = None) -> pd.DataFrame:
    """Long format (step, value, series[, run]) for ``gr.LinePlot``."""
    rows = []
    for p in points:
        step = p.get("step")
        if not finite(step):
            continue
        for key in series:
            v = p.get(key)
            if finite(v):
                rows.append({"step": float(step), "value": float(v), "series": key,
                             **({"run": label} if label is not None else {})})
    cols = ["step", "value", "series"] + (["run"] if label is not None else [])
    # Typed even when empty: the plot takes its axis types from the dtypes (object = categorical axis).
    df = pd.DataFrame(rows, columns=cols)
    return df.astype({"step": "float64", "value": "float64", "series": "str",
                      **({"run": "str"} if label is not None else {})})


# --------------------------------------------------------------------------- the older per-model metrics

def fmt_accuracy(side: dict[str, Any] | None, catalog: Catalog) -> str:
    side = side or {}
    acc = side.get("accuracy")
    if not finite(acc):
        return "n/a (no ground truth)" if side else "—"
    n_ok, n_gt = side.get("n_correct"), side.get("n_with_ground_truth")
    text = catalog.fmt("accuracy", acc)
    return f"{text} ({n_ok}/{n_gt})" if n_ok is not None and n_gt else text


def metrics_table_html(summary: dict[str, Any] | None, deltas: dict[str, Any] | None, catalog: Catalog,
                       accuracy_test: dict[str, Any] | None = None) -> str:
    """Base | SFT | Δ for each metric the summary has, in the catalog's order, labelled by the catalog;
    the accuracy delta with its paired test, colored (better or worse) only when that test finds it significant."""
    if not summary:
        return '<div class="ds-muted">No evaluation yet.</div>'
    base, sft = summary.get("base") or {}, summary.get("sft") or {}
    deltas = deltas or {}
    present = [k for k in {**base, **sft} if k not in FOLDED]
    keys = [k for k in catalog.order() if k in present] if catalog else present
    rows = []
    for key in keys:
        b, s, d = base.get(key), sft.get(key), deltas.get(key)
        if not finite(d) and finite(b) and finite(s):
            d = s - b
        if key == "accuracy":
            bv, sv = fmt_accuracy(base, catalog), fmt_accuracy(sft, catalog)
        else:
            bv, sv = catalog.fmt(key, b), catalog.fmt(key, s)
        arrow = "▲ " if finite(d) and d > 0 else ("▼ " if finite(d) and d < 0 else "")
        # Color says "signal": only a difference the paired test calls significant gets it (accuracy's);
        # a metric without a test stays neutral, however large its delta looks on a few prompts.
        tested = key == "accuracy" and bool(accuracy_test) and finite(d)
        cls = catalog.delta_class(key, d) if tested and (accuracy_test or {}).get("significant") else "ds-neutral"
        test = " " + significance_html(accuracy_test) if tested else ""
        rows.append(f"<tr><th scope=row>{esc(catalog.label(key))}</th><td>{esc(bv)}</td><td>{esc(sv)}</td>"
                    f'<td class="{cls}">{arrow}{esc(catalog.fmt(key, d, signed=True))}{test}</td></tr>')
    n = sft.get("n") or base.get("n")
    caption = (f"<caption>{esc(counted(n, 'prompt'))}, the first answer of each model to each, "
               "all suites pooled</caption>"
               if n else "")
    return (f'<div class="ds-scroll"><table class="ds-table ds-metrics">{caption}<thead><tr><th>Metric</th>'
            f"<th>Base</th><th>SFT</th><th>Δ (SFT − base)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def by_set_html(by_set: dict[str, Any] | None, catalog: Catalog) -> str:
    if not by_set:
        return ""
    q = "avg_quality_score"
    rows = []
    for name, models in by_set.items():
        b, s = models.get("base") or {}, models.get("sft") or {}
        rows.append(f"<tr><th scope=row>{esc(name)}</th><td>{esc(s.get('n') or b.get('n'))}</td>"
                    f"<td>{esc(fmt_accuracy(b, catalog))}</td><td>{esc(fmt_accuracy(s, catalog))}</td>"
                    f"<td>{esc(catalog.fmt(q, b.get(q)))}</td><td>{esc(catalog.fmt(q, s.get(q)))}</td></tr>")
    acc, qual = esc(catalog.label("accuracy")), esc(catalog.label(q))
    return ('<div class="ds-scroll"><table class="ds-table"><thead><tr><th>Prompt set</th><th>n</th>'
            f"<th>Base: {acc}</th><th>SFT: {acc}</th><th>Base: {qual}</th><th>SFT: {qual}</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def samples_html(samples: Sequence[dict[str, Any]], limit: int | None = None) -> str:
    """Every evaluation prompt: the prompt, then base and SFT side by side."""
    if not samples:
        return '<div class="ds-muted">No prompts were evaluated.</div>'
    shown = samples if limit is None else samples[:limit]
    cards = []
    for i, s in enumerate(shown, start=1):
        base, sft = s.get("base") or {}, s.get("sft") or {}
        marks = "".join(
            f'<span class="ds-chip {MARK_CLASS[side.get("correct")]}">{who} {MARK[side.get("correct")]}</span>'
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
            f'{response_html(base)}</div>'
            f'<div class="ds-col"><div class="ds-col-title">SFT</div>'
            f'{response_html(sft)}</div></div></div>'
        )
    more = ""
    if limit is not None and len(samples) > limit:
        k = len(samples) - limit
        more = (f'<div class="ds-muted">… and {counted(k, "more prompt")} '
                "(see report.md under Artifacts)</div>")
    return "".join(cards) + more


# --------------------------------------------------------------------------- benchmark jobs, artifacts

def jobs_html(jobs: Sequence[dict[str, Any]]) -> str:
    """The run's benchmark jobs; a click opens the job's own Run page (log, cancel, resume)."""
    if not jobs:
        return '<div class="ds-muted ds-small">No benchmark jobs yet.</div>'
    rows = []
    for j in jobs:
        cfg = j.get("config") or {}
        progress = j.get("progress") if finite(j.get("progress")) else 0.0
        suites = ", ".join(str(b).split("=", 1)[0] for b in cfg.get("benchmarks") or [])
        rid = int(j["id"])
        rows.append(
            f'<tr><td><a href="?run={rid}" data-open="run" data-run="{rid}" title="open job #{rid}">#{rid}</a></td>'
            f"<td>{esc(suites)}</td><td>{esc(status_text(j))}</td><td>{progress * 100:.0f}%</td>"
            f"<td>{esc(fmt_time(j.get('created_at')))}</td><td>{esc(fmt_duration(run_duration(j)))}</td></tr>")
    return ('<div class="ds-scroll"><table class="ds-table ds-jobs"><thead><tr><th>Job</th><th>Suites</th><th>Status</th>'
            f"<th>Progress</th><th>Queued</th><th>Duration</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def fmt_bytes(n: Any) -> str:
    if not finite(n):
        return "—"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


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
