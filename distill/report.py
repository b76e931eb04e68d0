"""``report.md``: the evaluation results (``evaluation_results.json``) written for a person.

Sections: the seed's summary block, a base | SFT | Δ metrics table, the per-prompt-set
breakdown, training and data reports when present, a one-row-per-prompt answers table, and per prompt a
side-by-side table with both full responses in collapsible ``<details>`` blocks.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from distill.evaluation.summary import (
    METRIC,
    format_accuracy,
    format_delta,
    format_pass1,
    format_summary_block,
    format_value,
    significance_note,
)
from distill.evaluation.results import load
from distill.evaluation.summary import deltas as compute_deltas

# Summary keys of the metrics table after accuracy, which has its own row format.
_METRIC_ROWS = ("avg_quality_score", "pct_with_reasoning", "pct_with_think_tags", "avg_steps", "avg_new_tokens")
# Per-suite rows after pass@1 and pass@k.
_SUITE_ROWS = ("cons@n", "think_closed_pct", "truncated_pct", "looping_pct", "forced_pct", "tokens_p50", "tokens_p95",
               "think_tokens_mean", "answer_tokens_mean")
_PROMPT_PREVIEW_CHARS = 120
_MISSING = "—"


def escape_cell(value: Any) -> str:
    """Text safe inside one Markdown table cell: ``|`` escaped, newlines as ``<br>``, and
    ``<``/``>`` as entities so ``<think>`` shows instead of vanishing as an HTML tag."""
    if value is None:
        return _MISSING
    text = html.escape(str(value), quote=False).replace("|", "\\|")
    return "<br>".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _row(*cells: Any) -> str:
    return "| " + " | ".join(escape_cell(c) for c in cells) + " |"


def _table(header: tuple[str, ...], rows: list[str]) -> list[str]:
    return [_row(*header), "|" + "---|" * len(header), *rows]


def _fenced(text: str, info: str = "text") -> list[str]:
    # A fence longer than any backtick run inside, so model output cannot close it early.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text, fence]


def _marked_answer(side: dict[str, Any]) -> str:
    answer = side.get("answer")
    mark = {True: " ✓", False: " ✗"}.get(side.get("correct"), "")
    return f"{answer if answer is not None else '(none)'}{mark}"


def _metrics_section(summary: dict[str, dict[str, Any]], deltas: dict[str, Any],
                     accuracy_test: dict[str, Any] | None) -> list[str]:
    base, sft = summary["base"], summary["sft"]
    accuracy_delta = format_value("accuracy", deltas.get("accuracy"), signed=True)
    if accuracy_test and deltas.get("accuracy") is not None:
        accuracy_delta += f", {significance_note(accuracy_test)}"
    rows = [_row("Accuracy", format_accuracy(base), format_accuracy(sft), accuracy_delta)]
    for key in _METRIC_ROWS:
        rows.append(
            _row(
                METRIC[key].label,
                format_value(key, base.get(key)),
                format_value(key, sft.get(key)),
                format_value(key, deltas.get(key), signed=True),
            )
        )
    return ["## Metrics", "", *_table(("Metric", "Base", "SFT", "Δ"), rows), ""]


def _delta(base: Any, sft: Any, key: str) -> str:
    return format_value(key, sft - base, signed=True) if base is not None and sft is not None else "n/a"


def _benchmarks_section(benchmarks: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Benchmarks", "",
             "pass@1 is the mean over samples with its 95 % interval (Wilson with one sample per problem, a bootstrap "
             "over problems otherwise); the difference is tested pairwise over problems (exact McNemar, or a paired "
             "bootstrap).", ""]
    for name, b in benchmarks.items():
        base, sft = b["base"], b["sft"]
        rows = [_row("pass@1", format_pass1(base), format_pass1(sft), format_delta(b))]
        for k in base.get("pass@k", {}):
            if k != "1":
                bk, sk = base["pass@k"][k], sft["pass@k"].get(k)
                rows.append(_row(f"pass@{k}", format_value("pass@1", bk), format_value("pass@1", sk),
                                 _delta(bk, sk, "pass@1")))
        rows += [_row(METRIC[key].label, format_value(key, base.get(key)), format_value(key, sft.get(key)),
                      _delta(base.get(key), sft.get(key), key)) for key in _SUITE_ROWS]
        lines += [f"### {name}", "", f"{b['n_problems']} problems x {b['num_samples']} samples, grader `{b['grader']}`,"
                  f" source `{b['source']}`.", "", *_table(("Metric", "Base", "SFT", "Δ (SFT − base)"), rows), ""]
    return lines


def _key_value_section(title: str, data: dict[str, Any]) -> list[str]:
    rows = [
        _row(key, value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(value))
        for key, value in data.items()
    ]
    return [f"## {title}", "", *_table(("Key", "Value"), rows), ""]


def _by_set_section(by_set: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    rows = [
        _row(name, models["sft"].get("n"), format_accuracy(models["base"]), format_accuracy(models["sft"]),
             format_value("avg_quality_score", models["base"].get("avg_quality_score")),
             format_value("avg_quality_score", models["sft"].get("avg_quality_score")))
        for name, models in by_set.items()
    ]
    header = ("Prompt set", "n", "Base accuracy", "SFT accuracy", "Base quality", "SFT quality")
    return ["## By prompt set", "", *_table(header, rows), ""]


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _PROMPT_PREVIEW_CHARS else flat[: _PROMPT_PREVIEW_CHARS - 1] + "…"


def _answers_section(samples: list[dict[str, Any]]) -> list[str]:
    rows = [
        _row(i, _preview(str(s.get("prompt", ""))), s.get("ground_truth"),
             _marked_answer(s.get("base", {})), _marked_answer(s.get("sft", {})))
        for i, s in enumerate(samples, start=1)
    ]
    header = ("#", "Prompt", "Ground truth", "Base answer", "SFT answer")
    return ["## Answers", "", *_table(header, rows), ""]


def _side_value(side: dict[str, Any], key: str) -> str:
    value = side.get(key)
    if value is None:
        return _MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "generation_time_s":
        return f"{value:.2f}s"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _sample_section(index: int, sample: dict[str, Any]) -> list[str]:
    base, sft = sample.get("base", {}), sample.get("sft", {})
    rows = [
        _row("Answer", _marked_answer(base), _marked_answer(sft)),
        *(
            _row(label, _side_value(base, key), _side_value(sft, key))
            for label, key in (
                ("Quality score", "quality_score"),
                ("Steps", "num_steps"),
                ("Think tags", "has_think_tags"),
                ("New tokens", "new_tokens"),
                ("Generation time", "generation_time_s"),
            )
        ),
    ]
    lines = [f"### Prompt {index}", "", *_fenced(str(sample.get("prompt", ""))), ""]
    lines += [f"Ground truth: {escape_cell(sample.get('ground_truth'))}", ""]
    lines += [*_table(("", "Base", "SFT"), rows), ""]
    for title, side in (("Base response", base), ("SFT response", sft)):
        # The blank lines around the fence make GitHub render Markdown inside <details>.
        response = str(side.get("response", ""))
        lines += [f"<details><summary>{title}</summary>", "", *_fenced(response), "", "</details>", ""]
    return lines


def render_report_md(results: dict[str, Any], base_name: str, sft_name: str) -> str:
    """The report as Markdown text, from the ``evaluation_results.json`` structure (any version: ``results.load``)."""
    results = load(results)
    summary = results["summary"]
    deltas = results.get("deltas") or compute_deltas(summary["base"], summary["sft"])
    samples: list[dict[str, Any]] = results.get("samples", [])
    run = results.get("run") or {}
    named = [f"- Run: {escape_cell(run['name'])}"] if run.get("name") else []
    named += [f"- Preset: `{run['preset']}`"] if run.get("preset") else []
    lines = [
        "# Reasoning distillation: evaluation report",
        "",
        *named,
        f"- Base model: `{base_name}`",
        f"- SFT model: `{sft_name}`",
        f"- Prompts: {len(samples)}",
        "",
        "## Summary",
        "",
        *_fenced(format_summary_block(summary, deltas, base_name, sft_name, results.get("benchmarks"),
                                      results.get("accuracy_test"))),
        "",
    ]
    if results.get("benchmarks"):
        lines += _benchmarks_section(results["benchmarks"])
    lines += _metrics_section(summary, deltas, results.get("accuracy_test"))
    if results.get("by_set"):
        lines += _by_set_section(results["by_set"])
    if results.get("training"):
        lines += _key_value_section("Training", results["training"])
    if results.get("data_report"):
        lines += _key_value_section("Data", results["data_report"])
    if samples:
        lines += _answers_section(samples)
        lines += ["## Responses", ""]
        for i, sample in enumerate(samples, start=1):
            lines += _sample_section(i, sample)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report_md(path: str | Path, results: dict[str, Any], base_name: str, sft_name: str) -> None:
    """Write :func:`render_report_md` to ``path`` (UTF-8), creating its folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report_md(results, base_name, sft_name), encoding="utf-8")
