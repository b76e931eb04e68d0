"""What every page renders the same way: escaping, banners, times, run labels, and metric values
formatted from the API's metric catalog (``GET /metric-definitions``), with the paired test's verdict.

HTML produced here uses only CSS classes defined in :data:`ui.theme.CSS` and escapes every piece
of text that comes from the API or a model. No Gradio here: plain functions, easy to unit-test.
"""

from __future__ import annotations

import html
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STATUS_ICONS = {"queued": "◷", "running": "◔", "succeeded": "✔", "failed": "✖", "cancelled": "■"}
TEST_NAMES = {"mcnemar_exact": "exact McNemar", "paired_bootstrap": "paired bootstrap"}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def counted(n: Any, word: str) -> str:
    """``1 epoch``, ``3 epochs``, ``? samples`` (English plurals by ``s``)."""
    return f"{n} {word}" if str(n) == "1" else f"{n} {word}s"


def banner_html(message: str | None, kind: str = "error") -> str:
    if not message:
        return ""
    icon = {"error": "⚠", "info": "ℹ", "ok": "✔"}.get(kind, "")
    return f'<div class="ds-banner ds-banner-{esc(kind)}" role="status">{icon} {esc(message)}</div>'


def kv_html(data: dict[str, Any] | None, title: str = "") -> str:
    if not data:
        return ""
    rows = "".join(
        f"<tr><th scope=row>{esc(k)}</th><td>{esc(v if isinstance(v, (str, int, float)) or v is None else json.dumps(v))}</td></tr>"
        for k, v in data.items()
    )
    cap = f"<caption>{esc(title)}</caption>" if title else ""
    return f'<div class="ds-scroll"><table class="ds-table ds-kv">{cap}<tbody>{rows}</tbody></table></div>'


# --------------------------------------------------------------------------- times

def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not finite(seconds) or seconds < 0:
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


# --------------------------------------------------------------------------- metrics

@dataclass(frozen=True)
class MetricDef:
    key: str
    label: str
    unit: str = ""
    scale: float = 1.0
    decimals: int = 3
    delta_unit: str = ""
    better: int = 0
    shown: bool = True  # False: kept in the results, not compared in the base-vs-SFT table

    def number(self, value: Any, signed: bool = False) -> str:
        """The scaled number alone (``12.5``), for intervals."""
        if not finite(value):
            return "n/a"
        return f"{value * self.scale:{'+' if signed else ''}.{self.decimals}f}"

    def format(self, value: Any, signed: bool = False) -> str:
        """``12.5%``; signed: ``+2.0 pp`` (the delta unit when there is one)."""
        if not finite(value):
            return "n/a"
        unit = f" {self.delta_unit}" if signed and self.delta_unit else self.unit
        return self.number(value, signed) + unit


def _raw(key: str) -> MetricDef:
    """What an unknown key (or any key while the API is down) looks like: its name, the plain number."""
    return MetricDef(key, key, decimals=3)


class Catalog:
    """Labels, units and "better" of each metric, as the API defines them."""

    def __init__(self, definitions: Iterable[dict[str, Any]] = ()) -> None:
        self.defs: dict[str, MetricDef] = {}
        for d in definitions:
            try:
                self.defs[str(d["key"])] = MetricDef(
                    key=str(d["key"]), label=str(d.get("label") or d["key"]), unit=str(d.get("unit") or ""),
                    scale=float(d.get("scale", 1.0)), decimals=int(d.get("decimals", 3)),
                    delta_unit=str(d.get("delta_unit") or ""), better=int(d.get("better", 0)),
                    shown=bool(d.get("shown", True)))
            except (KeyError, TypeError, ValueError):
                continue

    def __bool__(self) -> bool:
        return bool(self.defs)

    def __getitem__(self, key: str) -> MetricDef:
        return self.defs.get(key) or _raw(key)

    def order(self) -> list[str]:
        """The keys shown in comparisons, in the catalog's display order."""
        return [k for k, d in self.defs.items() if d.shown]

    def label(self, key: str) -> str:
        return self[key].label

    def fmt(self, key: str, value: Any, signed: bool = False) -> str:
        return self[key].format(value, signed)

    def with_interval(self, key: str, value: Any, interval: Any) -> str:
        """``10.0% [2.8, 30.1]``: a value with its 95 % interval in the same scale."""
        m = self[key]
        text = m.format(value)
        if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(finite(x) for x in interval):
            text += f" [{m.number(interval[0])}, {m.number(interval[1])}]"
        return text

    def delta_class(self, key: str, delta: Any) -> str:
        return delta_class(delta, self[key].better)


def delta_class(delta: Any, better: int) -> str:
    if not finite(delta) or better == 0 or abs(delta) < 1e-12:
        return "ds-neutral"
    return "ds-good" if (delta > 0) == (better > 0) else "ds-bad"


class CatalogCache:
    """The catalog, fetched once and kept; while the API does not answer, raw keys (asked again later)."""

    RETRY_S = 10.0

    def __init__(self, fetch: Callable[[], list[dict[str, Any]]]) -> None:
        self._fetch = fetch
        self._catalog: Catalog | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    def get(self) -> Catalog:
        if self._catalog is not None:
            return self._catalog
        with self._lock:
            if self._catalog is None and time.monotonic() >= self._next_try:
                try:
                    catalog = Catalog(self._fetch())
                except Exception:  # noqa: BLE001 - the page still renders, with raw keys
                    catalog = Catalog()
                if catalog:
                    self._catalog = catalog
                    return catalog
                self._next_try = time.monotonic() + self.RETRY_S
        return self._catalog or Catalog()


# --------------------------------------------------------------------------- the paired test

def fmt_p(p: Any) -> str:
    return f"{p:.2g}" if finite(p) else "n/a"


def significance(test: dict[str, Any] | None) -> tuple[str, str, str]:
    """(short mark, words, CSS class) for a paired test ``{p_value, significant, test}``."""
    test = test or {}
    p = test.get("p_value")
    if not finite(p):
        return "no test", "no paired test", "ds-sig-none"
    name = TEST_NAMES.get(str(test.get("test")), str(test.get("test") or ""))
    how = f", {name}" if name else ""
    if test.get("significant"):
        return f"★ p = {fmt_p(p)}", f"significant (p = {fmt_p(p)}{how})", "ds-sig-yes"
    return f"n.s. p = {fmt_p(p)}", f"not significant (p = {fmt_p(p)}{how})", "ds-sig-no"


def significance_html(test: dict[str, Any] | None, short: bool = False) -> str:
    """★ with p when significant; a grey "n.s." (short) or "not significant" with p otherwise; the
    words are also the tooltip."""
    mark, words, cls = significance(test)
    tip = words + ("" if cls != "ds-sig-no" else ": the difference could be noise")
    text = mark if short else ("★ " if cls == "ds-sig-yes" else "") + words
    return f'<span class="ds-sig {cls}" title="{esc(tip)}">{esc(text)}</span>'
