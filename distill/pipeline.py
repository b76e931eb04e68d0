"""The three stages wired together: data -> SFT -> base-vs-SFT evaluation, writing the run folder.

The CLI, the Celery worker and the tests all call ``run_pipeline``; the worker passes hooks to
stream stages and metrics and to cancel.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from distill.config import RunConfig
from distill.data.builtin import SYSTEM_PROMPT
from distill.data.prepare import data_report, ensure_chat_template, split_train_val, to_prompt_completion
from distill.data.schema import ReasoningExample
from distill.data.sources import load_examples
from distill.distributed import launches_processes
from distill.evaluation.compare import EvalItem, ModelPair, evaluate_pair
from distill.evaluation.generate import GenerationCancelled
from distill.evaluation.prompts import GENERAL_PROMPTS
from distill.evaluation.summary import format_summary_block
from distill.models import ensure_local_model, load_model, load_tokenizer
from distill.report import write_report_md

log = logging.getLogger("distill")
LOG_FILE = "distillation_pipeline.log"


class RunCancelled(Exception):
    """The run was asked to stop; what was saved so far is consistent (checkpoint, logs, metrics)."""


@dataclass
class PipelineHooks:
    on_stage: Callable[[str], None] | None = None
    on_metrics: Callable[[dict], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    def stage(self, name: str) -> None:
        log.info("Stage: %s", name)
        if self.on_stage:
            self.on_stage(name)

    def check_cancel(self) -> None:
        if self.should_cancel and self.should_cancel():
            raise RunCancelled("cancelled")


@dataclass
class RunResult:
    output_dir: Path
    evaluation: dict[str, Any] | None = None
    data_report: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def distill_home() -> Path:
    return Path(os.environ.get("DISTILL_HOME", "outputs"))


def resolve_output_dir(config: RunConfig) -> Path:
    if config.output_dir:
        return Path(config.output_dir)
    return distill_home() / "distillation" / datetime.now().strftime("run_%Y%m%d_%H%M%S")


def _system_for(dataset: str) -> str | None:
    return SYSTEM_PROMPT if dataset.startswith("builtin:") else None


def load_splits(config: RunConfig) -> tuple[list[ReasoningExample], Any, list[ReasoningExample]]:
    """(training examples, their read stats, held-out examples). builtin has its own eval split;
    other sources hold out the ``eval_samples`` rows that follow the first ``max_samples``."""
    n_train = config.effective_max_samples
    if config.dataset.startswith("builtin:"):
        train, stats = load_examples(config.dataset, n_train, split="train") if config.mode != "evaluate" else ([], None)
        held = load_examples(config.dataset, config.eval_samples, split="eval")[0] if config.eval_samples else []
        return train, stats, held
    want = None if n_train is None else n_train + config.eval_samples
    examples, stats = load_examples(config.dataset, want)
    cut = max(len(examples) - config.eval_samples, 0) if n_train is None else min(n_train, len(examples))
    if config.mode == "evaluate":
        return [], stats, examples[-config.eval_samples :] if config.eval_samples else []
    return examples[:cut], stats, examples[cut:]


def eval_items(config: RunConfig, held_out: list[ReasoningExample]) -> list[EvalItem]:
    default_system = _system_for(config.dataset)
    items = []
    for ex in held_out:
        messages = to_prompt_completion(ex, default_system)["prompt"]
        items.append(EvalItem(messages=messages, ground_truth=ex.ground_truth, set="heldout"))
    if config.general_prompts:
        system = [{"role": "system", "content": default_system}] if default_system else []
        for p in GENERAL_PROMPTS:
            items.append(EvalItem(messages=system + [{"role": "user", "content": p["prompt"]}],
                                  ground_truth=p["ground_truth"], set="general"))
    return items


def prepare_rows(config: RunConfig, tokenizer: Any, examples: list[ReasoningExample], stats: Any) -> tuple[list[dict], list[dict], dict]:
    default_system = _system_for(config.dataset)
    rows = [to_prompt_completion(ex, default_system) for ex in examples]
    lengths = [
        len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=False))
        for r in tqdm(rows, desc="tokenize", unit="row")
    ]
    report = data_report(stats, lengths, config.max_seq_length)
    train_rows, val_rows = split_train_val(rows, config.val_ratio, config.seed)
    report.update(train_rows=len(train_rows), val_rows=len(val_rows))
    if report["truncated"]:
        log.warning("%d of %d rows are longer than --max_seq_length %d and will be truncated",
                    report["truncated"], len(rows), config.max_seq_length)
    return train_rows, val_rows, report


def _attach_log_file(out_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(out_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


def _save_tokenizer(tokenizer: Any, path: Path) -> None:
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(path)


def final_model_dir(config: RunConfig, out_dir: Path) -> Path:
    return out_dir / ("final_model" if config.use_lora else "merged_model")


def save_trained(model: Any, tokenizer: Any, path: Path) -> None:
    model.save_pretrained(path)
    _save_tokenizer(tokenizer, path)
    log.info("Saved %s", path)


def run_pipeline(config: RunConfig, hooks: PipelineHooks | None = None) -> RunResult:
    hooks = hooks or PipelineHooks()
    out_dir = resolve_output_dir(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = _attach_log_file(out_dir)
    try:
        return _run(config, hooks, out_dir)
    finally:
        log.removeHandler(handler)
        handler.close()


def _run(config: RunConfig, hooks: PipelineHooks, out_dir: Path) -> RunResult:
    result = RunResult(output_dir=out_dir)
    (out_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2))
    log.info("Run folder: %s", out_dir)
    t_start = time.perf_counter()

    hooks.stage("load")
    model_path = ensure_local_model(config.model)
    tokenizer = load_tokenizer(model_path, config.trust_remote_code)
    ensure_chat_template(tokenizer)
    hooks.check_cancel()

    hooks.stage("data")
    train_examples, stats, held_out = load_splits(config)
    pair: ModelPair | None = None
    if config.mode in ("all", "train"):
        train_rows, val_rows, report = prepare_rows(config, tokenizer, train_examples, stats)
        (out_dir / "data_report.json").write_text(json.dumps(report, indent=2))
        result.data_report = report
        log.info("Data: %d train rows, %d validation rows, %d held-out prompts (token length p50 %s, p95 %s, max %s)",
                 len(train_rows), len(val_rows), len(held_out), report["token_length"]["p50"],
                 report["token_length"]["p95"], report["token_length"]["max"])
        hooks.check_cancel()

        hooks.stage("train")
        final_dir = final_model_dir(config, out_dir)
        if launches_processes(config):
            from distill.distributed import train_distributed

            outcome = train_distributed(config, model_path, train_rows, val_rows, out_dir,
                                        on_metrics=hooks.on_metrics, should_cancel=hooks.should_cancel)
        else:
            from distill.training import train

            model = load_model(model_path, trust_remote_code=config.trust_remote_code)
            outcome = train(config, model, tokenizer, train_rows, val_rows, out_dir,
                            on_metrics=hooks.on_metrics, should_cancel=hooks.should_cancel)
        result.timings["train_s"] = outcome.train_seconds
        if outcome.cancelled:
            raise RunCancelled(f"cancelled at step {outcome.global_step}; checkpoint saved")
        if outcome.model is None:  # rank 0 of the training processes saved it
            pair = load_pair(config.model_copy(update={"sft_model_path": str(final_dir)}), model_path)
        else:
            save_trained(outcome.model, tokenizer, final_dir)
            pair = ModelPair(sft=outcome.model) if config.use_lora else ModelPair(sft=outcome.model, base=load_model(model_path))

    if config.mode in ("all", "evaluate"):
        hooks.stage("evaluate")
        pair = pair or load_pair(config, model_path)
        pair.gen_kwargs = dict(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                               top_p=config.top_p, batch_size=config.eval_batch_size)
        items = eval_items(config, held_out)
        t0 = time.perf_counter()
        try:
            results = evaluate_pair(pair, tokenizer, items, should_cancel=hooks.should_cancel)
        except GenerationCancelled:
            raise RunCancelled("cancelled during evaluation") from None
        result.timings["evaluate_s"] = time.perf_counter() - t0
        sft_name = config.sft_model_path or str(out_dir / "final_model")
        results["models"] = {"base": config.model, "sft": sft_name}
        if result.data_report:
            results["data_report"] = result.data_report
        result.evaluation = results
        (out_dir / "evaluation_results.json").write_text(json.dumps(results, indent=2))
        write_report_md(out_dir / "report.md", results, config.model, sft_name)
        block = format_summary_block(results["summary"], results["deltas"], config.model, sft_name)
        log.info("\n%s", block)

    if config.mode in ("all", "train") and config.use_lora and pair is not None:
        hooks.stage("save")
        merged = pair.sft.merge_and_unload()
        merged.save_pretrained(out_dir / "merged_model")
        _save_tokenizer(tokenizer, out_dir / "merged_model")
        log.info("Saved %s", out_dir / "merged_model")

    result.timings["total_s"] = time.perf_counter() - t_start
    (out_dir / "timings.json").write_text(json.dumps(result.timings, indent=2))
    log.info("Done in %.1f s: %s", result.timings["total_s"], out_dir)
    return result


def load_pair(config: RunConfig, model_path: str) -> ModelPair:
    """For --mode evaluate: an adapter folder rides on the base weights; a merged model is loaded beside the base."""
    from peft import PeftModel

    sft_path = Path(config.sft_model_path or "")
    if not sft_path.is_dir():
        raise FileNotFoundError(f"--sft_model_path: folder not found: {sft_path}")
    base = load_model(model_path, trust_remote_code=config.trust_remote_code)
    if (sft_path / "adapter_config.json").is_file():
        return ModelPair(sft=PeftModel.from_pretrained(base, str(sft_path)))
    if (sft_path / "config.json").is_file():
        return ModelPair(sft=load_model(str(sft_path), trust_remote_code=config.trust_remote_code), base=base)
    raise FileNotFoundError(f"--sft_model_path: {sft_path} holds neither adapter_config.json nor config.json")
