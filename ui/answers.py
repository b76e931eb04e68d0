"""A model's answer as HTML: the ``<think>`` part collapsible, the answer, the extracted answer
with ✓/✗, and (for benchmark samples) tokens and badges. Used by the Run page, the Benchmarks
page's problem view and the Playground."""

from __future__ import annotations

from typing import Any

from ui.shared import esc, finite

MARK = {True: "✓", False: "✗", None: "–"}
MARK_CLASS = {True: "ds-good", False: "ds-bad", None: "ds-neutral"}


def text_parts(answer: dict[str, Any], streaming: bool = False, open_thought: bool = False) -> list[str]:
    """The thought (collapsible) and the answer, as the API split them (``thinking``, ``answer_part``,
    ``thinking_closed``); a stored trace comes as one text in a fixed format, split by
    ``traces_view.split_trace``."""
    reasoning, closed = answer.get("thinking"), answer.get("thinking_closed", True)
    text = str(answer.get("answer_part") or "").strip()
    out = []
    if reasoning is not None:
        words = len(str(reasoning).split())
        note = "" if closed else (" · thinking…" if streaming else " · not closed (cut off)")
        is_open = " open" if open_thought or (streaming and not closed) else ""
        out.append(f'<details class="ds-think"{is_open}><summary>Reasoning ({words} words{note})</summary>'
                   f'<div class="ds-think-body">{esc(str(reasoning).strip())}</div></details>')
    if text:
        out.append(f'<div class="ds-answer-text">{esc(text)}</div>')
    elif not streaming:
        empty = "(empty response)" if reasoning is None else "(no answer after the reasoning)"
        out.append(f'<div class="ds-answer-text ds-muted">{empty}</div>')
    return out


def extracted_html(extracted: Any, correct: bool | None, gold: Any = None) -> str:
    mark, cls = MARK[correct] if correct in (True, False) else "", MARK_CLASS.get(correct, "ds-neutral")
    said = "correct" if correct else "wrong" if correct is False else "ungraded"
    shown = esc(extracted) if extracted not in (None, "") else '<span class="ds-muted">none found</span>'
    truth = f' <span class="ds-muted">(expected {esc(gold)})</span>' if gold not in (None, "") else ""
    return (f'<div class="ds-extracted {cls}">Extracted answer: <b>{shown}</b> '
            f'<span class="ds-mark" aria-label="{said}">{mark}</span>{truth}</div>')


def response_html(side: dict[str, Any], *, streaming: bool = False, graded: bool = True,
                  ground_truth: Any = None) -> str:
    """One answer of the evaluation's ``samples`` or the Playground: reasoning, answer, its mark."""
    out = ['<div class="ds-resp">', *text_parts(side, streaming)]
    if streaming:
        out.append('<span class="ds-cursor">▍</span>')
    if graded:
        out.append(extracted_html(side.get("answer"), side.get("correct"), ground_truth))
        bits = []
        if finite(side.get("quality_score")):
            bits.append(f"quality {side['quality_score']:.2f}")
        if side.get("num_steps") is not None:
            bits.append(f"{side['num_steps']} steps")
        if side.get("new_tokens") is not None:
            bits.append(f"{side['new_tokens']} tokens")
        if finite(side.get("generation_time_s")):
            bits.append(f"{side['generation_time_s']:.2f}s")
        if bits:
            out.append(f'<div class="ds-small ds-muted">{esc(" · ".join(bits))}</div>')
    out.append("</div>")
    return "".join(out)


def badges(sample: dict[str, Any]) -> list[tuple[str, str]]:
    """(short text, explanation) for what went wrong in the shape of one benchmark answer."""
    out = []
    if sample.get("truncated"):
        out.append(("truncated", "stopped by the token limit (max_new_tokens) before it finished"))
    if sample.get("looping"):
        out.append(("looping", "repeats itself"))
    started = (sample.get("think_tokens") or 0) > 0 or sample.get("thinking") is not None
    if started and not sample.get("think_closed"):
        out.append(("thought not closed", "no </think>: the reasoning never ended"))
    if sample.get("forced"):
        out.append(("forced", "the thinking budget ran out: </think> was inserted and the model made to answer"))
    return out


def sample_html(sample: dict[str, Any], title: str = "") -> str:
    """One benchmark answer: its text (reasoning collapsible), extracted answer ✓/✗, tokens, badges."""
    tags = "".join(f'<span class="ds-chip ds-flag" title="{esc(why)}">{esc(text)}</span>' for text, why in badges(sample))
    bits = []
    if sample.get("tokens") is not None:
        think = sample.get("think_tokens")
        bits.append(f"{sample['tokens']} tokens" + (f" ({think} thinking)" if think else ""))
    if finite(sample.get("time_s")):
        bits.append(f"{sample['time_s']:.2f}s")
    if sample.get("finish_reason"):
        bits.append(f"finish: {sample['finish_reason']}")
    head = f'<div class="ds-sample-title">{esc(title)}{tags}</div>' if title or tags else ""
    return (f'<div class="ds-resp ds-bench-sample">{head}{"".join(text_parts(sample))}'
            f'{extracted_html(sample.get("extracted"), sample.get("correct"))}'
            f'<div class="ds-small ds-muted">{esc(" · ".join(bits))}</div></div>')
