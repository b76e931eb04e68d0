"""Padding-free batches (``packing``): the same losses as padded batches, and no attention across rows."""

from __future__ import annotations

import pytest
import torch

from distill.config import build_config
from distill.data.builtin import SYSTEM_PROMPT
from distill.data.prepare import to_prompt_completion
from distill.data.sources import load_examples
from distill.models import load_model
from distill.training import DistillSFTTrainer, restore_sdpa, segment_sdpa_attention, sft_args, use_segment_attention, wrap_lora


def _rows(n: int) -> list[dict]:
    examples, _ = load_examples("builtin:reasoning", n)
    return [to_prompt_completion(e, SYSTEM_PROMPT) for e in examples]


def _trainer(config, model, tok, rows, tmp_path, kl_coef=0.0):
    from datasets import Dataset

    return DistillSFTTrainer(
        model=model, args=sft_args(config, tmp_path / f"ck{config.packing}", has_val=False),
        train_dataset=Dataset.from_list(rows), processing_class=tok, kl_coef=kl_coef, tune_threads=False,
        packing=config.packing,
    )


def _pair(tiny_model_path, tiny_tokenizer, tmp_path, run, rows, kl_coef=0.0):
    """A padded and a padding-free trainer over the same weights, and the first batch of each."""
    torch.manual_seed(0)
    out = []
    weights = None
    for packing in (False, True):
        config = build_config({**run, "packing": packing, "precision": "fp32", "lora_dropout": 0.0,
                               "batch_size": 4, "use_kl_regularization": kl_coef > 0, "kl_coef": kl_coef or 0.1})
        model = wrap_lora(load_model(tiny_model_path), config)
        if weights is None:
            with torch.no_grad():  # a non-zero adapter, so that the KL term is not trivially zero
                for name, p in model.named_parameters():
                    if "lora_B" in name:
                        p.normal_(0, 0.3)
            weights = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            model.load_state_dict(weights)
        trainer = _trainer(config, model, tiny_tokenizer, rows, tmp_path, kl_coef)
        batch = next(iter(trainer.get_train_dataloader()))
        out.append((trainer, model, batch))
    return out


def test_padding_free_batches_hold_the_same_rows_without_padding(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    (_, _, padded), (trainer, _, packed) = _pair(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run, _rows(8))
    assert trainer.segment_attention
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    lengths = padded["attention_mask"].sum(1).tolist()
    assert packed["input_ids"].shape[1] == sum(lengths) < padded["input_ids"].numel()
    starts = (packed["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == len(lengths)
    # the same tokens and the same labelled tokens, row by row
    for row, start in enumerate(starts):
        n = lengths[row]
        assert torch.equal(packed["input_ids"][0, start : start + n], padded["input_ids"][row, :n])
        assert torch.equal(packed["position_ids"][0, start : start + n], torch.arange(n))
        assert torch.equal(packed["labels"][0, start + 1 : start + n], padded["labels"][row, 1:n])


@pytest.mark.parametrize("kl_coef", [0.0, 1.0])
def test_packed_and_padded_losses_agree(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run, kl_coef):
    (t_pad, m_pad, padded), (t_pack, m_pack, packed) = _pair(
        tiny_model_path, tiny_tokenizer, tmp_path, tiny_run, _rows(8), kl_coef)
    m_pad.train()
    m_pack.train()
    loss_pad = t_pad.compute_loss(m_pad, dict(padded))
    loss_pack = t_pack.compute_loss(m_pack, dict(packed))
    assert float(loss_pack.detach()) == pytest.approx(float(loss_pad.detach()), rel=1e-5, abs=1e-6)
    if kl_coef:
        kl_pad, kl_pack = t_pad.loss_parts["train"]["kl"][-1], t_pack.loss_parts["train"]["kl"][-1]
        assert kl_pad > 1e-4 and kl_pack == pytest.approx(kl_pad, rel=1e-4)
    # and the same gradients
    loss_pad.backward()
    loss_pack.backward()
    g_pad = {n: p.grad for n, p in m_pad.named_parameters() if p.grad is not None}
    g_pack = {n: p.grad for n, p in m_pack.named_parameters() if p.grad is not None}
    assert g_pad.keys() == g_pack.keys() and g_pad
    for name in g_pad:
        torch.testing.assert_close(g_pack[name], g_pad[name], rtol=1e-4, atol=1e-6)


def test_no_attention_across_rows_of_a_packed_batch(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run):
    (_, _, _), (trainer, model, packed) = _pair(tiny_model_path, tiny_tokenizer, tmp_path, tiny_run, _rows(8))
    model.eval()
    body = model.get_base_model().model
    inputs = {k: v for k, v in packed.items() if k != "labels"}
    starts = (packed["position_ids"][0] == 0).nonzero().flatten().tolist()
    second = starts[1]
    with torch.no_grad():
        ref = body(**inputs).last_hidden_state
        changed = dict(inputs)
        ids = inputs["input_ids"].clone()
        ids[0, :second] = torch.randint(0, 1000, (second,))  # rewrite the whole first row
        changed["input_ids"] = ids
        out = body(**changed).last_hidden_state
    assert not torch.allclose(out[0, :second], ref[0, :second])
    torch.testing.assert_close(out[0, second:], ref[0, second:], rtol=0, atol=0)


def test_segment_attention_matches_a_block_diagonal_mask(tiny_model_path):
    """The per-row SDPA against transformers' own block-diagonal mask (sdpa, position ids only)."""
    model = load_model(tiny_model_path).eval()
    lengths = [5, 9, 3]
    ids = torch.randint(0, 1000, (1, sum(lengths)))
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    with torch.no_grad():
        # without a cache, transformers derives the block-diagonal mask from the position ids
        masked = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        assert use_segment_attention(model)
        try:
            seg = model(input_ids=ids, position_ids=pos, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                        max_length_q=9, max_length_k=9, use_cache=False).logits
            plain = model(input_ids=ids[:, 5:14]).logits  # the middle row alone
        finally:
            restore_sdpa(model)
    torch.testing.assert_close(seg, masked, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(seg[:, 5:14], plain, rtol=1e-4, atol=1e-5)
    assert model.config._attn_implementation == "sdpa"


def test_segment_attention_is_plain_sdpa_without_sequence_bounds():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    class M(torch.nn.Module):
        is_causal = True
        num_key_value_groups = 2

    q, k, v = torch.randn(2, 4, 7, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 8)
    ours, _ = segment_sdpa_attention(M(), q, k, v, None, scaling=0.3)
    ref, _ = sdpa_attention_forward(M(), q, k, v, None, scaling=0.3)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("lengths", [[6, 6, 6], [4, 7, 1, 5]])
def test_segment_attention_equals_each_row_alone(lengths):
    """Equal rows take one batched call, unequal ones a call each: both are each row's own causal attention."""
    class M(torch.nn.Module):
        is_causal = True
        num_key_value_groups = 2

    n = sum(lengths)
    q = torch.randn(1, 4, n, 8).transpose(1, 2).contiguous().transpose(1, 2)  # non-contiguous, as in the model
    k, v = torch.randn(1, 2, n, 8), torch.randn(1, 2, n, 8)
    cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32)
    out, _ = segment_sdpa_attention(M(), q, k, v, None, scaling=0.35, cu_seq_lens_q=cu)
    assert out.shape == (1, n, 4, 8)
    start = 0
    for L in lengths:
        ref = torch.nn.functional.scaled_dot_product_attention(
            q[:, :, start:start + L], k[:, :, start:start + L], v[:, :, start:start + L], scale=0.35, is_causal=True,
            enable_gqa=True)
        torch.testing.assert_close(out[:, start:start + L], ref.transpose(1, 2))
        start += L
