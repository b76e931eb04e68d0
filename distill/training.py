"""Stage 2: SFT with TRL's SFTTrainer; the only subclassing is for the KL term and for speed.

loss = CE(assistant tokens) + kl_coef * KL(p_trained || p_base) on the same tokens. With LoRA the
base distribution is the same weights with the adapter disabled (no second copy in memory);
with full fine-tuning it is a frozen reference copy.

Fast paths (measured in bench/train_throughput.py, figures in docs/benchmarks.md):
- bf16 autocast where the hardware has bf16 matrix units (CUDA, and CPUs with AMX or AVX512-BF16);
- the LM head and the loss only on the labelled (completion) positions, never the (batch, seq, vocab)
  logits of the prompt and padding; TRL's fused head scores every position on CPU and computes
  entropy and accuracy metrics besides;
- padding-free batches (``packing``): the micro-batch's rows concatenated with per-row position ids,
  and attention computed per row (``segment_sdpa_attention``), so no pad token is computed and no
  token attends across rows;
- no gradient checkpointing, the fused AdamW;
- on CPU, the thread count measured per micro-batch (``ThreadTuner``): on a shared machine one
  thread can be several times faster than an OpenMP team that waits on preempted members.
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
from distill.rundir import RunDir
from distill.threads import ThreadTuner

log = logging.getLogger("distill")
IGNORE = -100
SEGMENT_ATTENTION = "distill_segment_sdpa"


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with bf16 matrix instructions (Intel AMX, or AVX512-BF16 as on AMD Zen 4):
    oneDNN runs bf16 matmuls there several times faster than fp32."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # noqa: BLE001 - a probe that cannot run means "no"
            pass
    return False


def resolve_precision(precision: str) -> str:
    """'bf16' or 'fp32'. auto = bf16 autocast on CUDA cards that support it and on CPUs with
    AMX or AVX512-BF16, else fp32. (Weights and the optimizer stay fp32 either way.)"""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def token_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position, over the whole vocabulary, in float32."""
    logp = F.log_softmax(logits.float(), dim=-1)
    logq = F.log_softmax(ref_logits.float(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def segment_sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """SDPA that, for a padding-free batch (one row holding several sequences, ``cu_seq_lens_q``
    marking where each starts), attends within each sequence only: one causal SDPA call per
    sequence, so the cost is the sum of the squares of the lengths, not the square of their sum,
    and no token sees another sequence. Anything else (generation, a single sequence) is plain SDPA.

    The trainer passes the bounds as a list too (``segment_bounds``), so that the layers do not each
    read them back from the tensor."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[0] != 1 or query.shape[2] != key.shape[2] or query.shape[2] < 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    bounds = list(kwargs.get("segment_bounds") or cu.tolist())
    gqa = query.shape[1] != key.shape[1]
    lengths = {e - s for s, e in zip(bounds[:-1], bounds[1:])}
    if len(lengths) == 1 and bounds[0] == 0 and bounds[-1] == query.shape[2]:  # equal rows: one batched call
        n = lengths.pop()
        h, hk, d = query.shape[1], key.shape[1], query.shape[3]
        q = query.reshape(h, -1, n, d).transpose(0, 1)
        k, v = (t.reshape(hk, -1, n, d).transpose(0, 1) for t in (key, value))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa)
        return out.transpose(0, 1).reshape(1, h, -1, d).transpose(1, 2).contiguous(), None
    outs = [
        F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=dropout,
                                       scale=scaling, is_causal=True, enable_gqa=gqa)
        for s, e in zip(bounds[:-1], bounds[1:]) if e > s
    ]
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def use_segment_attention(model: torch.nn.Module) -> bool:
    """Switch a model on SDPA to ``segment_sdpa_attention`` for training on padding-free batches. It is
    registered as an attention only, with no mask function: transformers then builds no mask for it
    (it would build a tokens x tokens block-diagonal one for a packed batch, 0.7 s for 8k tokens on a CPU).
    Models on another attention (flash attention reads cu_seq_lens itself) are left alone. True when switched."""
    from transformers import AttentionInterface

    configs = [m.config for m in model.modules() if hasattr(m, "config") and hasattr(m.config, "_attn_implementation")]
    if not configs or any(c._attn_implementation not in ("sdpa", SEGMENT_ATTENTION) for c in configs):
        return False
    AttentionInterface.register(SEGMENT_ATTENTION, segment_sdpa_attention)
    for c in configs:
        c._attn_implementation = SEGMENT_ATTENTION
    return True


def restore_sdpa(model: torch.nn.Module) -> None:
    for m in model.modules():
        c = getattr(m, "config", None)
        if c is not None and getattr(c, "_attn_implementation", None) == SEGMENT_ATTENTION:
            c._attn_implementation = "sdpa"


def compile_decoder_layers(model: torch.nn.Module, **kwargs: Any) -> int:
    """torch.compile each decoder layer in place (regional compilation: the layers share one compiled
    graph, so it compiles in a fraction of a whole-model compile). The number of layers compiled."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(getattr(inner, "base_model", None), "layers", None)
    if layers is None:
        return 0
    for layer in layers:
        layer.compile(**kwargs)
    return len(layers)


def _backbone(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder, lm_head) of a causal LM, through a PEFT wrapper; None where the model is not
    the plain kind (no output embeddings, a logit scale or softcap that the head applies)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    body = getattr(inner, "base_model", None) if hasattr(inner, "base_model_prefix") else None
    cfg = getattr(inner, "config", None)
    text_cfg = cfg.get_text_config() if cfg is not None and hasattr(cfg, "get_text_config") else cfg
    special = any(getattr(text_cfg, k, None) not in (None, 1.0) for k in ("final_logit_softcapping", "logit_scale",
                                                                           "logits_scaling", "output_multiplier"))
    if head is None or body is None or body is inner or special or getattr(head, "bias", None) is not None:
        return None
    return body, head


class DistillSFTTrainer(SFTTrainer):
    """SFTTrainer plus an optional KL term to the base model, logging ce and kl separately.

    One loss: CE (+ ``kl_coef`` x KL to the reference) over the labelled positions. Their logits come,
    where the model allows it (``labelled_loss``, an unwrapped plain causal LM), from the decoder's hidden
    states at the labelled positions through the LM head, never the (batch, seq, vocab) logits of the prompt
    and padding; otherwise from a full forward. With ``packing`` each micro-batch's rows are concatenated
    without padding (TRL's padding-free collator on the rows a padded batch would hold, truncated as usual)
    and attend within their row (``segment_sdpa_attention``).
    """

    # The labelled-positions loss is the big win on CPU (docs/benchmarks.md); on CUDA without KL, TRL's own
    # (fused) loss path is used instead, which measured faster there. None: decided per trainer from the
    # device it trains on (a subclass or an instance may set it).
    labelled_loss: bool | None = None

    def __init__(self, *args: Any, kl_coef: float = 0.0, ref_model: torch.nn.Module | None = None,
                 tune_threads: bool = True, packing: bool = False, segment_attention: bool = True, **kwargs: Any):
        if packing and kwargs.get("data_collator") is None:
            from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

            tok = kwargs.get("processing_class")
            tok = getattr(tok, "tokenizer", tok)
            pad_id = tok.pad_token_id if tok is not None and tok.pad_token_id is not None else getattr(tok, "eos_token_id", 0)
            kwargs["data_collator"] = DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True)
        super().__init__(*args, **kwargs)
        self.kl_coef = kl_coef
        self.ref_model = ref_model
        self.packing = packing
        if self.labelled_loss is None:
            self.labelled_loss = self.args.device.type != "cuda"
        self.segment_attention = packing and segment_attention and use_segment_attention(self.model)
        if self.segment_attention and ref_model is not None:
            use_segment_attention(ref_model)
        self.thread_tuner = ThreadTuner.for_device(self.args.device) if tune_threads else None
        # CE and KL of each (micro-)batch since the last log, per mode; trained (labelled) tokens so far.
        self.loss_parts: dict[str, dict[str, list[float]]] = {m: {"ce": [], "kl": []} for m in ("train", "eval")}
        self.trained_tokens = 0

    # --- speed: thread count per micro-batch on CPU ---
    def training_step(self, model, inputs, num_items_in_batch=None):
        tuner = self.thread_tuner
        if tuner is None:
            return super().training_step(model, inputs, num_items_in_batch)
        tuner.begin()
        loss = super().training_step(model, inputs, num_items_in_batch)
        tuner.end(float(inputs["input_ids"].numel()))
        return loss

    # --- the loss ---
    def _logits_at(self, model: torch.nn.Module, forward: dict[str, Any], mask: torch.Tensor,
                   outputs_wanted: bool = False) -> tuple[torch.Tensor, Any]:
        """(logits at the labelled positions, the model's outputs when a full forward ran)."""
        parts = None
        if self.labelled_loss and not outputs_wanted and self.accelerator.unwrap_model(model) is model:
            parts = _backbone(model)  # DDP and friends keep their full forward: their hooks must run
        # Mixed precision: accelerate applies autocast by wrapping model.forward, which the labelled path
        # does not call (it calls the decoder and the head), so it applies it here.
        with self.accelerator.autocast():
            if parts is not None:
                body, head = parts
                return head(body(**forward).last_hidden_state[:, :-1][mask]), None
            outputs = model(**forward)
            return outputs.logits[:, :-1][mask], outputs

    def _reference_logits(self, model: torch.nn.Module, forward: dict[str, Any], mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return self._logits_at(self.ref_model, forward, mask)[0]
            # The unwrapped model: under DDP a second forward through the wrapper would take part in
            # its gradient bookkeeping (and broadcast buffers) for a pass that has no backward.
            base = self.accelerator.unwrap_model(model)
            with base.disable_adapter():
                return self._logits_at(base, forward, mask)[0]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        labels = inputs["labels"]
        mask = labels[:, 1:] != IGNORE
        n_here = int(mask.sum())
        if mode == "train":
            self.trained_tokens += n_here
        # The parts are logged as per-token means of this micro-batch, whatever normalizes the loss.
        per_token = float(num_items_in_batch) / max(n_here, 1) if num_items_in_batch is not None else 1.0
        if self.kl_coef <= 0 and not self.labelled_loss:  # CUDA: TRL's own loss
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            # Under DDP the Trainer multiplies the loss by the process count (DDP averages the gradients,
            # num_items_in_batch counts all ranks' tokens); the metric is this rank's mean CE.
            scaled = (self.args.average_tokens_across_devices and num_items_in_batch is not None
                      and (self.model_accepts_loss_kwargs or self.compute_loss_func is not None))
            self._record(mode, float(loss.detach()) * per_token / (self.accelerator.num_processes if scaled else 1), 0.0)
            return (loss, outputs) if return_outputs else loss

        forward = {k: v for k, v in inputs.items() if k != "labels"}
        forward["use_cache"] = False
        if self.segment_attention and "cu_seq_lens_q" in forward:
            forward["segment_bounds"] = tuple(forward["cu_seq_lens_q"].tolist())
        n = torch.as_tensor(num_items_in_batch if num_items_in_batch is not None else n_here).clamp(min=1)
        logits, outputs = self._logits_at(model, forward, mask, return_outputs)
        y = labels[:, 1:][mask]
        ce = F.cross_entropy(logits.float(), y, reduction="sum") / n
        loss, kl = ce, None
        if self.kl_coef > 0:
            kl = token_kl(logits, self._reference_logits(model, forward, mask)).sum() / n
            loss = ce + self.kl_coef * kl
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        self._record(mode, float(ce.detach()) * per_token, float(kl.detach()) * per_token if kl is not None else 0.0)
        return (loss, outputs) if return_outputs else loss

    # --- validation that a cancel stops within a batch ---
    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        cancel = next((c for c in self.callback_handler.callbacks if isinstance(c, CancelCallback)), None)
        rows = len(self.eval_dataset) if self.eval_dataset is not None and hasattr(self.eval_dataset, "__len__") else 0
        batches = -(-rows // max(self.args.eval_batch_size, 1))
        if cancel is not None:
            cancel.val_total = batches
        log.info("Validation: %d rows in %d batches", rows, batches)
        try:
            return super().evaluate(*args, **kwargs)
        except ValidationCancelled:
            # An infinite loss is never a new best (the Trainer starts its best at inf), so the checkpoint saved
            # next is not mistaken for the best model; the cut pass's partial losses are dropped.
            self.loss_parts["eval"] = {"ce": [], "kl": []}
            self.model.train()
            return {"eval_loss": float("inf")}

    # --- logging ce, kl and trained tokens with the Trainer's own logs ---
    def _record(self, mode: str, ce: float, kl: float) -> None:
        self.loss_parts[mode]["ce"].append(ce)
        self.loss_parts[mode]["kl"].append(kl)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        parts = self.loss_parts[mode]
        # Under DDP each rank holds its own parts: the logged point shows all ranks' (mean ce and kl, summed
        # tokens). Every rank logs at the same steps, so the all-reduce matches.
        t = torch.tensor([sum(parts["ce"]), len(parts["ce"]), sum(parts["kl"]), len(parts["kl"]), self.trained_tokens],
                         dtype=torch.float64, device=self.args.device)
        if self.accelerator.num_processes > 1:
            t = self.accelerator.reduce(t, reduction="sum")
        prefix = "eval_" if mode == "eval" else ""
        if t[1] > 0:
            logs[f"{prefix}ce"] = round(float(t[0] / t[1]), 6)
        if t[3] > 0:
            logs[f"{prefix}kl"] = round(float(t[2] / t[3]), 6)
        if mode == "train":
            logs["trained_tokens"] = int(t[4])
        parts["ce"].clear()
        parts["kl"].clear()
        super().log(logs, start_time)


class MetricsCallback(TrainerCallback):
    """Per-step points to metrics.jsonl and to an optional hook (the worker streams them)."""

    def __init__(self, path: Path, on_metrics: Callable[[dict], None] | None = None):
        self.path, self.on_metrics = path, on_metrics
        self._last: tuple[float, int] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:  # under DDP, rank 0 writes (its logs hold all ranks' figures)
            return
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


class ValidationCancelled(Exception):
    """A cancel cut a validation pass short (raised between its batches, caught by the trainer's ``evaluate``)."""


class CancelCallback(TrainerCallback):
    """Stops at the next training (sub)step or validation batch when asked, saving a checkpoint so the run can
    resume. The Trainer itself only looks between training steps: without the per-batch check a cancel waited
    for a whole validation pass (and, at an epoch's end, started one)."""

    def __init__(self, should_cancel: Callable[[], bool]):
        self.should_cancel, self.cancelled = should_cancel, False
        self.val_batches, self.val_total, self.saved_step = 0, 0, -1

    def _check(self, state, control, where: str) -> bool:
        if self.cancelled or not self.should_cancel():
            return False
        self.cancelled = True
        control.should_training_stop = True
        control.should_save = True
        log.info("Cancel: stopped %s at step %d; saving a checkpoint so --resume continues", where, state.global_step)
        return True

    def on_substep_end(self, args, state, control, **kwargs):
        self._check(state, control, "after this training micro-batch")
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self.val_batches = 0  # a validation pass may follow
        self._check(state, control, "after this training step")
        if self.cancelled:  # the step's validation pass is not wanted
            control.should_evaluate = False
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        self.val_batches = 0
        if self.cancelled:  # the epoch's validation pass is not wanted, nor a second save of the same step
            control.should_evaluate = False
            control.should_save = self.saved_step != state.global_step
        return control

    def on_prediction_step(self, args, state, control, **kwargs):
        self.val_batches += 1
        if self._check(state, control, f"validation after batch {self.val_batches} of {self.val_total or '?'}"):
            raise ValidationCancelled()
        return control

    def on_save(self, args, state, control, **kwargs):
        self.saved_step = state.global_step
        if self.cancelled:
            log.info("Checkpoint saved at step %d: --resume continues from it", state.global_step)
        return control


@dataclass
class TrainOutcome:
    model: torch.nn.Module | None  # PeftModel with LoRA, else the fine-tuned model; None: saved by DDP rank 0
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


def validation_schedule(config: RunConfig, has_val: bool) -> dict[str, Any]:
    """When validation runs and checkpoints are saved: ``validations_per_epoch`` times per epoch (so that early
    stopping can fire within a run of a few epochs), a checkpoint at each (``load_best_model_at_end`` needs them
    together); without validation rows, a checkpoint per epoch. The Trainer reads a step count below 1 as a
    fraction of all its optimizer steps, rounded up: the tiny margin keeps an exact multiple from rounding up."""
    passes = config.epochs * config.validations_per_epoch
    if not has_val:
        return {"eval_strategy": "no", "save_strategy": "epoch"}
    if passes <= 1:
        return {"eval_strategy": "epoch", "save_strategy": "epoch"}
    every = 1 / passes - 1e-9
    return {"eval_strategy": "steps", "eval_steps": every, "save_strategy": "steps", "save_steps": every}


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
        bf16=bf16,  # autocast; weights and optimizer state stay fp32
        use_cpu=not torch.cuda.is_available(),
        logging_steps=1,
        **validation_schedule(config, has_val),
        save_total_limit=2,  # the best checkpoint and the latest
        load_best_model_at_end=has_val,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to="none",  # trackers (--report_to) are fed by distill/tracking.py, never from env settings
        max_length=config.max_seq_length,
        completion_only_loss=True,
        gradient_checkpointing=False,  # TRL's default is True: a second forward per step, not needed at this size
        # DDP: every parameter that trains takes part in each forward (LoRA adapters, or the whole causal LM);
        # the default (True for PEFT models) walks the autograd graph on every step looking for unused ones.
        ddp_find_unused_parameters=False,
        optim="adamw_torch_fused",
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
    checkpoint_dir = RunDir(out_dir).checkpoints
    cancel = CancelCallback(should_cancel or (lambda: False))
    callbacks: list[TrainerCallback] = [MetricsCallback(RunDir(out_dir).metrics, on_metrics), cancel]
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
        packing=config.packing,
    )
    if ref_model is not None:
        ref_model.to(trainer.args.device)
    resume_from = get_last_checkpoint(str(checkpoint_dir)) if config.resume and checkpoint_dir.is_dir() else None
    if config.resume:
        log.info("Resuming from %s", resume_from or "scratch (no checkpoint found)")
    log.info("Training: %s, %s batches%s", "bf16 autocast" if trainer.args.bf16 else "fp32",
             "padding-free" if trainer.packing else "padded",
             f", threads tuned from {torch.get_num_threads()}" if trainer.thread_tuner else "")
    t0 = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    finally:
        if trainer.thread_tuner is not None:
            log.info("Thread tuner: %s", trainer.thread_tuner.summary())
            trainer.thread_tuner.restore()
        restore_sdpa(trainer.model)
    # Mixed precision wraps the model's forward in bf16 autocast; the model handed on answers in its own dtype
    # (else evaluation in this process would generate in bf16 while a model loaded from disk answers in fp32).
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    return TrainOutcome(
        model=model,
        cancelled=cancel.cancelled,
        global_step=trainer.state.global_step,
        best_checkpoint=trainer.state.best_model_checkpoint,
        train_seconds=time.perf_counter() - t0,
    )
