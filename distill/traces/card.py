"""The generated dataset's card (``README.md`` beside ``dataset.jsonl``), written with ``huggingface_hub``'s
``DatasetCard``: the funnel, the teacher's pass@1 with its interval, the settings that made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.config import RunConfig


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def card_text(config: RunConfig, report: dict[str, Any]) -> str:
    f, t, r = report["funnel"], report["teacher"], report["rejected"]
    ci = t.get("pass@1_ci")
    interval = f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
    pass_k = ", ".join(f"pass@{k} {_pct(v)}" for k, v in (t.get("pass@k") or {}).items())
    funnel = " → ".join(f"{name.replace('_', ' ')} {f[name]}" for name in (
        "problems_read", "asked", "answered", "samples", "complete", "correct", "kept"))
    dropped = ", ".join(f"{f[k]} {k.replace('_', ' ')}" for k in ("duplicates", "contaminated", "held_out", "failed"))
    rejected = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.items() if v) or "none"
    against = ", ".join(report["decontaminated_against"]) or "no benchmark"
    return "\n".join([
        f"# Reasoning traces from {config.teacher_model}",
        "",
        f"{f['kept']} training rows (`dataset.jsonl`, `messages` with the thought as `<think>…</think>` before the "
        f"answer) written by **{config.teacher_model}**"
        + (f" at {config.teacher_url}" if config.teacher_url else " (in-process)")
        + f" on the problems of `{config.dataset}`, {config.num_generations} samples per problem at temperature "
        f"{config.teacher_temperature} / top-p {config.teacher_top_p}, kept by `--keep {config.keep}`. "
        "`generations.jsonl` holds every problem with all its samples and their verdicts.",
        "",
        "## Funnel",
        "",
        funnel,
        "",
        f"Dropped before asking: {dropped}; decontaminated against {against} (a shared word 8-gram).",
        f"Traces not kept, by reason: {rejected}.",
        "" if not report.get("stopped") else f"Stopped early: {report['stopped']} (the token budget was spent).",
        "## Teacher",
        "",
        f"pass@1 {_pct(t.get('pass@1'))}{interval} (95 % interval) on {t['problems']} problems"
        + (f"; {pass_k}" if pass_k else "") + f". Complete traces {t.get('complete_pct')} %, looping "
        f"{t.get('looping_pct')} %, tokens per trace p50 {t.get('tokens_p50')} / p95 {t.get('tokens_p95')}.",
        "",
        "## Settings",
        "",
        f"teacher prompt: `{config.teacher_prompt!r}`; system: `{config.teacher_system!r}`; max tokens "
        f"{config.teacher_max_tokens}; thinking budget {config.max_thinking_tokens}; student tokens limit "
        f"(`--max_seq_length`) {config.max_seq_length} for `{config.model}`; seed {config.seed}.",
        "",
        "Train on it: `distill --mode train --dataset dataset.jsonl` (or `--mode all` to evaluate too).",
        "",
    ])


def write_card(path: Path, config: RunConfig, report: dict[str, Any]) -> None:
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(pretty_name=f"traces from {config.teacher_model}", task_categories=["text-generation"],
                           tags=["reasoning", "distillation", "synthetic", "chain-of-thought"],
                           size_categories=_size_category(report["funnel"]["kept"]))
    card = DatasetCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + card_text(config, report))
    card.save(path)
