"""Stage 2: SFT with TRL's SFTTrainer; the only subclassing is for the KL term.

loss = CE(assistant tokens) + kl_coef * KL(p_trained || p_base) on the same tokens. With LoRA the
base distribution is the same weights with the adapter disabled (no second copy in memory);
with full fine-tuning it is a frozen reference copy.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import EarlyStoppingCallback, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer

from distill.config import RunConfig

log = logging.getLogger("distill")
IGNORE = -100


def resolve_precision(precision: str) -> str:
    """'bf16' or 'fp32'. auto = bf16 only on CUDA cards that support it."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def token_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position, over the whole vocabulary, in float32."""
    logp = F.log_softmax(logits.float(), dim=-1)
    logq = F.log_softmax(ref_logits.float(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


class DistillSFTTrainer(SFTTrainer):
    """SFTTrainer plus an optional KL term to the base model, logging ce and kl separately."""

    def __init__(self, *args: Any, kl_coef: float = 0.0, ref_model: torch.nn.Module | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kl_coef = kl_coef
        self.ref_model = ref_model
        self._trained_tokens = 0

    def _reference_logits(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return self.ref_model(**inputs).logits
            with self.accelerator.unwrap_model(model).disable_adapter():
                return model(**inputs).logits

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        labels = inputs["labels"]
        mask = labels[:, 1:] != IGNORE
        n_here = int(mask.sum())
        if mode == "train":
            self._trained_tokens += n_here
            self._metrics[mode]["trained_tokens"] = [self._trained_tokens]
        # With accumulation the loss is normalised by the tokens of the whole optimizer step;
        # ce/kl are logged per micro-batch token so they read as plain means.
        per_token = float(num_items_in_batch) / max(n_here, 1) if num_items_in_batch is not None else 1.0
        if self.kl_coef <= 0:
            loss = super().compute_loss(model, inputs, return_outputs=False, num_items_in_batch=num_items_in_batch)
            self._metrics[mode]["ce"].append(float(loss.detach()) * per_token)
            self._metrics[mode]["kl"].append(0.0)
            return (loss, None) if return_outputs else loss

        forward = {k: v for k, v in inputs.items() if k != "labels"}
        forward["use_cache"] = False
        outputs = model(**forward)
        logits = outputs.logits[:, :-1]
        n = torch.as_tensor(num_items_in_batch if num_items_in_batch is not None else mask.sum()).clamp(min=1)
        logp = F.log_softmax(logits.float(), dim=-1)
        ce = -(logp.gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum() / n
        ref = self._reference_logits(model, forward)[:, :-1]
        kl = (token_kl(logits, ref) * mask).sum() / n
        loss = ce + self.kl_coef * kl
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        self._metrics[mode]["ce"].append(float(ce.detach()) * per_token)
        self._metrics[mode]["kl"].append(float(kl.detach()) * per_token)
        return (loss, outputs) if return_outputs else loss


class MetricsCallback(TrainerCallback):
    """Per-step points to metrics.jsonl and to an optional hook (the worker streams them)."""

    def __init__(self, path: Path, on_metrics: Callable[[dict], None] | None = None):
        self.path, self.on_metrics = path, on_metrics
        self._last: tuple[float, int] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        point: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        if "loss" in logs:
            now, tokens = time.perf_counter(), int(logs.get("trained_tokens", 0))
            t0, n0 = self._last or (now, 0)
            point.update(
                loss=logs["loss"], ce=logs.get("ce"), kl=logs.get("kl"), lr=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"), tokens_per_s=round((tokens - n0) / max(now - t0, 1e-9), 2),
                trained_tokens=tokens,
            )
            self._last = (now, tokens)
        elif "eval_loss" in logs:
            point.update(eval_loss=logs["eval_loss"], eval_ce=logs.get("eval_ce"), eval_kl=logs.get("eval_kl"))
        else:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(point) + "\n")
        if self.on_metrics:
            self.on_metrics(point)


class CancelCallback(TrainerCallback):
    """Stops at the next (sub)step when asked, saving a checkpoint so the run can resume."""

    def __init__(self, should_cancel: Callable[[], bool]):
        self.should_cancel, self.cancelled = should_cancel, False

    def _check(self, control):
        if not self.cancelled and self.should_cancel():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True
        return control

    def on_substep_end(self, args, state, control, **kwargs):
        return self._check(control)

    def on_step_end(self, args, state, control, **kwargs):
        return self._check(control)


@dataclass
class TrainOutcome:
    model: torch.nn.Module  # PeftModel with LoRA, else the fine-tuned model
    cancelled: bool
    global_step: int
    best_checkpoint: str | None
    train_seconds: float


def wrap_lora(model: torch.nn.Module, config: RunConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = config.lora_target_modules
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def sft_args(config: RunConfig, checkpoint_dir: Path, has_val: bool) -> SFTConfig:
    bf16 = resolve_precision(config.precision) == "bf16"
    return SFTConfig(
        output_dir=str(checkpoint_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a fraction of the steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=1,
        eval_strategy="epoch" if has_val else "no",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=has_val,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to="none",
        max_length=config.max_seq_length,
        completion_only_loss=True,
        padding_free=config.packing,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
    )


def train(
    config: RunConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    train_rows: list[dict],
    val_rows: list[dict],
    out_dir: Path,
    on_metrics: Callable[[dict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainOutcome:
    from datasets import Dataset

    ref_model = None
    if config.use_kl_regularization and not config.use_lora:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    if config.use_lora:
        model = wrap_lora(model, config)
    checkpoint_dir = out_dir / "checkpoints"
    cancel = CancelCallback(should_cancel or (lambda: False))
    callbacks: list[TrainerCallback] = [MetricsCallback(out_dir / "metrics.jsonl", on_metrics), cancel]
    if val_rows and config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = DistillSFTTrainer(
        model=model,
        args=sft_args(config, checkpoint_dir, bool(val_rows)),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
        processing_class=tokenizer,
        callbacks=callbacks,
        kl_coef=config.kl_coef if config.use_kl_regularization else 0.0,
        ref_model=ref_model,
    )
    if ref_model is not None:
        ref_model.to(trainer.args.device)
    resume_from = get_last_checkpoint(str(checkpoint_dir)) if config.resume and checkpoint_dir.is_dir() else None
    if config.resume:
        log.info("Resuming from %s", resume_from or "scratch (no checkpoint found)")
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    return TrainOutcome(
        model=trainer.model,
        cancelled=cancel.cancelled,
        global_step=trainer.state.global_step,
        best_checkpoint=trainer.state.best_model_checkpoint,
        train_seconds=time.perf_counter() - t0,
    )
