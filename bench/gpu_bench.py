"""GPU training throughput and MFU on a Qwen2.5-0.5B-shaped random model (not a test).

    python bench/gpu_bench.py --out $OUT                # on the GPU machine (one script, everything)
    .venv/bin/python bench/gpu_bench.py --tiny          # a tiny shape on CPU: checks the script runs

The model is written by hand with Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 heads, 2 KV
heads, intermediate 4864, vocab 151,936, tied embeddings, q/k/v biases) and random weights, fp32
master weights with bf16 autocast. Data: random token ids in documents of --doc_len tokens, a
quarter of each a prompt (no loss) and the rest completion, packed padding-free: a micro-batch is
--rows rows of --seq_len (4,096) tokens, attention within each document.

Variants, each a fresh model, timed over --steps optimizer steps after --warmup:
  full, lora          DistillSFTTrainer (the project's path: labelled-positions loss, padding-free
                      batches, per-document SDPA, no gradient checkpointing, fused AdamW)
  full+compile, lora+compile   the same with each decoder layer torch.compile'd
  trl-full, trl-lora  plain TRL SFTTrainer with its defaults (bf16, gradient checkpointing on, TRL's
                      fused LM head) on padded batches of the same documents

MFU = useful FLOPs / time / the card's dense bf16 peak (H100/H200 SXM datasheet 989 TFLOP/s), and
against the measured 8192^3 bf16 matmul. Useful FLOPs per step: full fine-tuning 6*N_body per
token + 6*V*d per labelled token + attention 3 * 2*layers*d*L^2 per document; LoRA 4*N_frozen +
6*N_lora per token, 4*V*d per labelled token, the same attention. Gradient checkpointing's extra
forward and the LM head on prompt positions are not counted (they are not useful work).
Results: a table on stdout and gpu_bench.json in --out (written after every variant).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASHEET_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def qwen_config(tiny: bool):
    from transformers import Qwen2Config

    if tiny:
        return Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           intermediate_size=128, vocab_size=1024, tie_word_embeddings=True, max_position_embeddings=4096)
    return Qwen2Config(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True,
                       max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6)


def tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def dataset(n_docs: int, doc_len: int, vocab: int, seed: int):
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n_docs, doc_len), generator=g).tolist()
    prompt = doc_len // 4
    mask = [0] * prompt + [1] * (doc_len - prompt)
    return Dataset.from_dict({"input_ids": ids, "completion_mask": [mask] * n_docs})


def matmul_tflops(device: str, n: int) -> float:
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        if device == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            a @ b
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e) / 1e3)
        else:
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
    times.sort()
    return 2 * n**3 / times[len(times) // 2] / 1e12


def useful_flops(dims: dict, tokens: int, labelled: int, n_docs: int, doc_len: int) -> float:
    attn = 3 * 2 * dims["layers"] * dims["d_attn"] * doc_len**2 * n_docs
    if dims["lora"]:
        return 4 * dims["n_body"] * tokens + 6 * dims["n_trainable"] * tokens + 4 * dims["n_head"] * labelled + attn
    return 6 * dims["n_body"] * tokens + 6 * dims["n_head"] * labelled + attn


def model_dims(model, cfg) -> dict:
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    n_body = sum(m.base_layer.weight.numel() if hasattr(m, "base_layer") else m.weight.numel()
                 for name, m in inner.base_model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in name and not name.endswith("base_layer"))
    return {"n_body": n_body, "n_head": inner.get_output_embeddings().weight.numel(),
            "n_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "n_total": sum(p.numel() for p in inner.parameters()), "layers": cfg.num_hidden_layers,
            "d_attn": cfg.num_attention_heads * (cfg.hidden_size // cfg.num_attention_heads),
            "lora": hasattr(model, "get_base_model")}


def run_variant(name: str, a, cfg, tok, device: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from distill.training import DistillSFTTrainer, compile_decoder_layers, restore_sdpa

    torch.manual_seed(0)
    lora = "lora" in name
    ours = not name.startswith("trl")
    padded = name.endswith("-padded")  # ablations of ours: padded batches, TRL's loss path
    trlhead = name.endswith("-trlhead")
    docs_per_row = a.seq_len // a.doc_len
    docs_per_step = a.rows * docs_per_row
    n_steps = a.warmup + a.steps
    with torch.device(device):  # initialise on the device: a CPU init of 0.5B random weights takes seconds
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="sdpa")
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        if ours:
            from peft import get_peft_model

            model, peft_config = get_peft_model(model, peft_config), None
    if name.endswith("+compile"):
        compile_decoder_layers(model)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            self.t = time.perf_counter()

            if prof is not None and state.global_step == a.warmup:
                prof.start()

        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)
            if prof is not None and state.global_step == a.warmup + 2:
                prof.stop()

    prof = None
    if a.profile == name:
        from torch.profiler import ProfilerActivity, profile

        prof = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else []))

    out_dir = tempfile.mkdtemp(prefix="gpu_bench_")
    args = SFTConfig(output_dir=out_dir, per_device_train_batch_size=docs_per_step, gradient_accumulation_steps=1,
                     max_steps=n_steps, learning_rate=1e-5, bf16=device == "cuda", use_cpu=device != "cuda",
                     logging_steps=10_000, save_strategy="no", report_to="none", max_length=a.doc_len,
                     completion_only_loss=True, dataloader_num_workers=0, seed=0, disable_tqdm=True,
                     **({"padding_free": not padded, "gradient_checkpointing": False, "optim": "adamw_torch_fused"}
                        if ours else {}))
    common = dict(model=model, args=args, train_dataset=dataset(docs_per_step * n_steps, a.doc_len, cfg.vocab_size, 0),
                  processing_class=tok, callbacks=[Clock()])
    trainer = DistillSFTTrainer(**common) if ours else SFTTrainer(peft_config=peft_config, **common)
    if trlhead:
        trainer.labelled_loss = False
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    if ours:
        restore_sdpa(trainer.model)
    timed = sorted(times[a.warmup:]) or sorted(times)
    step_s = timed[len(timed) // 2]
    tokens = docs_per_step * a.doc_len
    labelled = docs_per_step * (a.doc_len - a.doc_len // 4 - 1)
    dims = model_dims(trainer.model, cfg)
    flops = useful_flops(dims, tokens, labelled, docs_per_step, a.doc_len)
    res = {"variant": name, "step_s_median": step_s, "tokens_per_step": tokens, "tokens_per_s": tokens / step_s,
           "useful_tflop_s": flops / step_s / 1e12, "first_steps_s": times[: a.warmup], "wall_s": wall,
           "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None, "dims": dims,
           "gradient_checkpointing": bool(trainer.args.gradient_checkpointing)}
    if prof is not None:
        key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=22, max_name_column_width=60)
        print(table, flush=True)
        res["profile"] = table
    del trainer, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--tiny", action="store_true", help="a tiny model shape (runs on CPU in seconds)")
    ap.add_argument("--variants", default="full,lora,full+compile,trl-full,lora+compile,trl-lora",
                    help="in priority order: the ones left when --budget_s runs out are skipped")
    ap.add_argument("--seq_len", type=int, default=4096)
    ap.add_argument("--doc_len", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=4, help="packed rows of seq_len per micro-batch")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", help="a variant to profile for 2 steps after warm-up (torch.profiler table)")
    ap.add_argument("--budget_s", type=float, default=1e9, help="skip the variants left once this much time has passed")
    ap.add_argument("--out", default=os.environ.get("OUT") or "bench/results")
    a = ap.parse_args()
    if a.tiny and a.seq_len == 4096 and a.doc_len == 1024:  # unless the shape of the data was given
        a.seq_len, a.doc_len, a.rows, a.steps, a.warmup = 128, 32, 2, 3, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t_start = time.perf_counter()
    import datasets
    import torch
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak_sheet = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in gpu), None)
    measured = matmul_tflops(device, 8192 if device == "cuda" else 512)
    env = {"device": gpu, "torch": torch.__version__, "transformers": transformers.__version__,
           "datasheet_bf16_tflops": peak_sheet, "measured_bf16_matmul_tflops": measured}
    print(json.dumps(env), flush=True)
    cfg = qwen_config(a.tiny)
    tok = tokenizer()
    results = []
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in a.variants.split(","):
        if time.perf_counter() - t_start > a.budget_s:
            results.append({"variant": name, "error": "skipped: out of time budget"})
            continue
        t0 = time.perf_counter()
        try:
            res = run_variant(name, a, cfg, tok, device)
            res["mfu_datasheet"] = res["useful_tflop_s"] / peak_sheet if peak_sheet else None
            res["mfu_measured"] = res["useful_tflop_s"] / measured
            print(f"{name}: {res['tokens_per_s']:.0f} tok/s, {res['useful_tflop_s']:.1f} TFLOP/s useful, "
                  f"MFU {100 * (res['mfu_datasheet'] or 0):.1f}% of datasheet, {100 * res['mfu_measured']:.1f}% of measured "
                  f"matmul, step {res['step_s_median'] * 1e3:.0f} ms, peak {res['peak_mem_gb'] or 0:.1f} GB, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        except Exception as e:  # noqa: BLE001 - one variant failing must not lose the others
            res = {"variant": name, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
            print(f"{name}: FAILED {res['error']}", flush=True)
            if device == "cuda":
                torch.cuda.empty_cache()
        results.append(res)
        (out / "gpu_bench.json").write_text(json.dumps({"env": env, "args": vars(a), "results": results}, indent=2))
    print(f"\n{gpu}: bf16 datasheet {peak_sheet} TFLOP/s, measured 8192^3 matmul {measured:.0f} TFLOP/s; "
          f"micro-batch {a.rows} x {a.seq_len} tokens packed from documents of {a.doc_len}")
    print("| variant | tokens/s | useful TFLOP/s | MFU (datasheet) | MFU (measured matmul) | step ms | peak GB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['variant']} | {r['error'][:60]} | | | | | |")
        else:
            print(f"| {r['variant']} | {r['tokens_per_s']:.0f} | {r['useful_tflop_s']:.1f} | "
                  f"{100 * (r['mfu_datasheet'] or 0):.1f}% | {100 * r['mfu_measured']:.1f}% | {r['step_s_median'] * 1e3:.0f} | "
                  f"{r['peak_mem_gb'] or 0:.1f} |")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
