"""Stage 2 on the tiny random model: masking, the KL term, metrics, early stopping, cancel."""

from __future__ import annotations

import json

import pytest
import torch

from distill.config import build_config
from distill.data.builtin import SYSTEM_PROMPT
from distill.data.prepare import to_prompt_completion
from distill.data.sources import load_examples
from distill.models import load_model
from distill.training import DistillSFTTrainer, sft_args, token_kl, train, wrap_lora


def _rows(n: int) -> list[dict]:
    examples, _ = load_examples("builtin:reasoning", n)
    return [to_prompt_completion(e, SYSTEM_PROMPT) for e in examples]


def _trainer(config, model, tok, rows, tmp_path):
    from datasets import Dataset

    return DistillSFTTrainer(
        model=model, args=sft_args(config, tmp_path / "ck", has_val=False),
        train_dataset=Dataset.from_list(rows), processing_class=tok,
        kl_coef=config.kl_coef if config.use_kl_regularization else 0.0, packing=config.packing,
    )


def test_loss_is_on_assistant_tokens_only(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    config = build_config(tiny_run)
    rows = _rows(2)
    trainer = _trainer(config, wrap_lora(load_model(tiny_model_path), config), tiny_tokenizer, rows, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    labels = batch["labels"][0]
    trained = tiny_tokenizer.decode(labels[labels != -100])
    assert trained.startswith("<think>\n") and "</think>\n\n" in trained
    assert trained.rstrip().endswith("<|im_end|>")
    assert SYSTEM_PROMPT not in trained and rows[0]["prompt"][-1]["content"] not in trained
    # and every prompt token is masked
    n_prompt = len(tiny_tokenizer.apply_chat_template(rows[0]["prompt"], tokenize=True, add_generation_prompt=True, return_dict=False))
    assert (labels[:n_prompt] == -100).all()


def test_kl_is_zero_for_a_fresh_adapter_and_positive_after_a_change(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    config = build_config({**tiny_run, "use_kl_regularization": True, "kl_coef": 1.0, "lora_dropout": 0.0})
    model = wrap_lora(load_model(tiny_model_path), config)
    trainer = _trainer(config, model, tiny_tokenizer, _rows(2), tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    assert trainer.loss_parts["train"]["kl"][-1] == pytest.approx(0.0, abs=1e-6)
    assert float(loss.detach()) == pytest.approx(trainer.loss_parts["train"]["ce"][-1], rel=1e-5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    trainer.compute_loss(model, dict(batch))
    kl = trainer.loss_parts["train"]["kl"][-1]
    assert kl > 1e-4
    assert float(trainer.compute_loss(model, dict(batch)).detach()) == pytest.approx(trainer.loss_parts["train"]["ce"][-1] + kl, rel=1e-4)


def test_token_kl_matches_definition():
    p = torch.tensor([[2.0, 0.0, -1.0]])
    q = torch.tensor([[0.0, 0.0, 0.0]])
    lp, lq = p.log_softmax(-1), q.log_softmax(-1)
    expected = float((lp.exp() * (lp - lq)).sum())
    assert float(token_kl(p, q)[0]) == pytest.approx(expected)
    assert float(token_kl(p, p)[0]) == pytest.approx(0.0, abs=1e-7)


def test_full_finetune_kl_uses_a_frozen_reference(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    config = build_config({**tiny_run, "use_lora": False, "use_kl_regularization": True, "learning_rate": 1e-2,
                           "lr_scheduler_type": "constant", "warmup_ratio": 0.0})
    seen = []
    out = train(config, load_model(tiny_model_path), tiny_tokenizer, _rows(8), [], tmp_path, on_metrics=seen.append)
    kls = [p["kl"] for p in seen if "kl" in p]
    assert kls and kls[0] == pytest.approx(0.0, abs=1e-6) and max(kls) > 0
    assert not hasattr(out.model, "peft_config")


def test_the_trained_model_answers_in_its_own_dtype_after_bf16_training(tiny_model_path, tiny_tokenizer, tmp_path,
                                                                     tiny_run):
    """Evaluation in the same process asks the model the trainer hands back: bf16 autocast must not stay on it, or
    its base (adapter off) would answer differently from the same weights loaded from disk."""
    config = build_config({**tiny_run, "precision": "bf16"})
    out = train(config, load_model(tiny_model_path), tiny_tokenizer, _rows(8), [], tmp_path)
    ids = tiny_tokenizer("Tom has 3 apples and buys 4 more.", return_tensors="pt")["input_ids"]
    with torch.inference_mode(), out.model.disable_adapter():
        trained_base = out.model(input_ids=ids).logits
    with torch.inference_mode():
        fresh_base = load_model(tiny_model_path)(input_ids=ids).logits
    torch.testing.assert_close(trained_base, fresh_base, rtol=0, atol=1e-6)


def test_metrics_file_and_hook_agree(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    config = build_config(tiny_run)
    seen: list[dict] = []
    out = train(config, load_model(tiny_model_path), tiny_tokenizer, _rows(8), _rows(2), tmp_path, on_metrics=seen.append)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == seen
    steps = [p for p in lines if "loss" in p]
    assert [p["step"] for p in steps] == list(range(1, out.global_step + 1))
    for p in steps:
        assert set(p) >= {"step", "epoch", "loss", "ce", "kl", "lr", "grad_norm", "tokens_per_s"}
        assert p["tokens_per_s"] > 0 and p["ce"] == pytest.approx(p["loss"], rel=0.05)
    assert any("eval_loss" in p for p in lines)


def _validations(out_dir) -> list[dict]:
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if "eval_loss" in line]


def test_early_stopping_fires_at_the_default_patience(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    # Full fine-tuning at a learning rate this high makes the validation loss worse after the first steps. The
    # defaults (3 epochs, patience 3, validations_per_epoch 4) validate often enough for early stopping to fire.
    config = build_config({**tiny_run, "epochs": 3, "learning_rate": 1.0, "use_lora": False,
                           "lr_scheduler_type": "constant", "warmup_ratio": 0.0})
    assert (config.early_stopping_patience, config.validations_per_epoch) == (3, 4)
    out = train(config, load_model(tiny_model_path), tiny_tokenizer, _rows(16), _rows(2), tmp_path)
    evals = _validations(tmp_path)
    # 4 optimizer steps per epoch (16 rows, 2 x 2 per step), 12 in all; a validation pass every step.
    assert [p["step"] for p in evals] == list(range(1, out.global_step + 1))
    assert out.global_step < 12, "training should have stopped early"
    best = min(evals, key=lambda p: p["eval_loss"])
    assert len(evals) == evals.index(best) + 1 + 3  # the best pass, then 3 without a better loss
    assert out.best_checkpoint and out.best_checkpoint.endswith(f"checkpoint-{best['step']}")


def test_early_stopping_lets_a_falling_loss_train_to_the_end(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    # A small learning rate on validation rows that are the training rows: the validation loss falls at every pass.
    config = build_config({**tiny_run, "epochs": 3, "early_stopping_patience": 1, "learning_rate": 1e-3,
                           "lr_scheduler_type": "constant", "warmup_ratio": 0.0})
    rows = _rows(8)
    out = train(config, load_model(tiny_model_path), tiny_tokenizer, rows, rows, tmp_path)
    losses = [p["eval_loss"] for p in _validations(tmp_path)]
    assert len(losses) == 6 and all(b < a for a, b in zip(losses, losses[1:], strict=False))  # 2 steps per epoch, a pass each
    assert out.global_step == 6


def test_cancel_stops_training_and_saves_a_checkpoint(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    config = build_config({**tiny_run, "gradient_accumulation": 1, "epochs": 3})
    calls = {"n": 0}

    def should_cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    out = train(config, load_model(tiny_model_path), tiny_tokenizer, _rows(8), [], tmp_path, should_cancel=should_cancel)
    assert out.cancelled and out.global_step < 12
    assert list((tmp_path / "checkpoints").glob("checkpoint-*"))
