"""The model card (``README.md``) of a run's ``final_model/`` and ``merged_model/``, with the run's evidence.

Written with ``huggingface_hub``'s ``ModelCard`` / ``ModelCardData`` so that the Hub reads its metadata
(``base_model``, ``eval_results`` as model-index); the body carries what this studio knows and others do
not: pass@1 of base and SFT with their 95 % intervals, the paired test and its verdict, the diagnostics, the
training data funnel and the hyper-parameters. ``ModelCard.load`` reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.config import EMBEDDED_MODEL, RunConfig
from distill.evaluation.summary import format_delta, format_pass1, format_value
from distill.hub import HUB_ID, where
from distill.rundir import RunDir, model_kind

# The embedded default is a GGUF copy of this Hub model (distill/models.py): the card names the original.
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TAGS = ["reasoning", "chain-of-thought", "distillation", "sft", "distill-studio"]
# The diagnostics shown per suite: (key in the suite's side block, label).
DIAGNOSTICS = (("think_closed_pct", "thought closed (%)"), ("truncated_pct", "truncated (%)"),
               ("looping_pct", "looping (%)"), ("tokens_p50", "tokens p50"), ("tokens_p95", "tokens p95"))
HYPERPARAMETERS = ("mode", "dataset", "max_samples", "max_seq_length", "epochs", "batch_size", "gradient_accumulation",
                   "learning_rate", "lr_scheduler_type", "warmup_ratio", "weight_decay", "use_lora", "lora_r",
                   "lora_alpha", "lora_dropout", "lora_target_modules", "use_kl_regularization", "kl_coef", "seed")


def hub_model_id(model: str) -> str | None:
    """The Hub id a card names as ``base_model``: the embedded model's original, a hub id as given; None for a
    local folder or the random test model (a card must never carry a local path)."""
    if model == EMBEDDED_MODEL:
        return EMBEDDED_HUB_ID
    return model.split(":")[0] if where(model) == "hub" else None


def _hub_datasets(config: RunConfig) -> list[str] | None:
    value = config.dataset
    return [value.split(":")[0]] if HUB_ID.match(value) and where(value) == "hub" else None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _eval_results(benchmarks: dict[str, Any], model_name: str) -> list[Any] | None:
    from huggingface_hub import EvalResult

    results = [EvalResult(task_type="text-generation", task_name="reasoning", dataset_type=name,
                          dataset_name=f"{name} ({b['n_problems']} problems)", metric_type="pass@1",
                          metric_name="pass@1", metric_value=b["sft"]["pass@1"])
               for name, b in benchmarks.items() if b.get("sft", {}).get("pass@1") is not None]
    return results or None


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def evaluation_section(evaluation: dict[str, Any] | None) -> list[str]:
    benchmarks = (evaluation or {}).get("benchmarks") or {}
    if not benchmarks:
        return ["## Evaluation", "", "This run was not evaluated (trained with `--mode train`).", ""]
    rows = [(name, f"{b['n_problems']} × {b['num_samples']}", format_pass1(b["base"]), format_pass1(b["sft"]),
             format_delta(b)) for name, b in benchmarks.items()]
    lines = ["## Evaluation", "",
             "pass@1 with its 95 % interval (Wilson with one sample per problem, a bootstrap over problems "
             "otherwise); SFT − base tested pairwise over the same problems (exact McNemar or a paired bootstrap). "
             "A difference marked NOT significant could be noise at this sample size.", "",
             *_table(("suite", "problems × samples", "base pass@1", "SFT pass@1", "SFT − base, paired test"), rows),
             "### Diagnostics", ""]
    diag = [(name, side, *(format_value(key, b[side].get(key)) if key.endswith("pct")
                           else b[side].get(key, "—") for key, _ in DIAGNOSTICS))
            for name, b in benchmarks.items() for side in ("base", "sft")]
    return lines + _table(("suite", "model", *(label for _, label in DIAGNOSTICS)), diag)


def data_section(report: dict[str, Any] | None) -> list[str]:
    if not report:
        return []
    rows = [(key, report[key]) for key in ("rows_read", "rows_kept", "truncated", "train_rows", "val_rows")
            if key in report]
    rows += [(f"skipped: {reason}", n) for reason, n in (report.get("skipped") or {}).items()]
    rows += [(f"teacher funnel: {stage}", n) for stage, n in (report.get("funnel") or {}).items()]
    lengths = report.get("token_length") or {}
    if lengths:
        rows.append(("token length p50 / p95 / max", f"{lengths.get('p50')} / {lengths.get('p95')} / "
                                                     f"{lengths.get('max')}"))
    return ["## Training data", "", *_table(("step", "rows"), rows)]


def hyperparameter_section(config: RunConfig) -> list[str]:
    values = config.to_json()
    rows = [(key, f"`{values[key]}`") for key in HYPERPARAMETERS if key in values]
    return ["## Hyper-parameters", "", *_table(("field", "value"), rows)]


def usage_section(kind: str, base_id: str | None) -> list[str]:
    if kind == "adapter":
        code = ["from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer", "",
                'model = AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER_OR_REPO")',
                'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER_OR_REPO")']
        note = f"A LoRA adapter on `{base_id or 'its base model'}`."
    else:
        code = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER_OR_REPO")',
                'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER_OR_REPO")']
        note = "Full weights (a LoRA adapter merged into its base, or a full fine-tune): loads alone."
    return ["## Use", "", note, "The model answers `<think>…</think>` then the answer; ask it through its chat "
            "template.", "", "```python", *code, "```", ""]


def model_card(run: RunDir, folder: Path, config: RunConfig, evaluation: dict[str, Any] | None = None) -> Any:
    """The card of ``folder`` (an adapter or a full model) of ``run``."""
    from huggingface_hub import ModelCard, ModelCardData

    kind = model_kind(folder) or "full"
    base_id = hub_model_id(config.model)
    name = config.name or run.root.name
    evaluation = evaluation if evaluation is not None else _read_json(run.evaluation)
    data = ModelCardData(
        base_model=base_id, base_model_relation="adapter" if kind == "adapter" else "finetune",
        library_name="peft" if kind == "adapter" else "transformers", pipeline_tag="text-generation",
        datasets=_hub_datasets(config), tags=[*TAGS, "lora" if config.use_lora else "full-fine-tune"],
        model_name=name, eval_results=_eval_results((evaluation or {}).get("benchmarks") or {}, name))
    base_line = f"`{base_id}`" if base_id else f"`{config.model}` (not on the Hub)"
    body = [f"# {name}", "", f"Reasoning distillation of {base_line}: supervised fine-tuning on `<think>` "
            f"chain-of-thought data (`{config.dataset}`), then base and SFT asked the same problems.", "",
            *evaluation_section(evaluation), *data_section(_read_json(run.data_report)),
            *hyperparameter_section(config), *usage_section(kind, base_id)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def write_model_cards(run: RunDir, config: RunConfig, evaluation: dict[str, Any] | None = None) -> list[Path]:
    """``README.md`` in each saved model folder of the run (replacing PEFT's empty template)."""
    written = []
    for folder in (run.final_model, run.merged_model):
        if model_kind(folder):
            model_card(run, folder, config, evaluation).save(folder / "README.md")
            written.append(folder / "README.md")
    return written
