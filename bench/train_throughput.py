"""Training throughput: the project's trainer against plain TRL, side by side (not a test).

    .venv/bin/python bench/train_throughput.py --quick          # trl vs ours; last line train_speedup_vs_trl=X.XX
    .venv/bin/python bench/train_throughput.py                  # the docs' table: default-run shape, 2 rounds
    .venv/bin/python bench/train_throughput.py --levers         # ablation: ours without one lever at a time
    .venv/bin/python bench/train_throughput.py --variants trl,ours --steps 4 --accum 4 --rounds 3
    .venv/bin/python bench/train_throughput.py --thread_probe --rounds 3   # 1 vs 2 threads under the current load

Variants (each a child process, run alternately round by round; ratios are of medians):
  trl          SFTTrainer as TRL's documentation has it, on this CPU: SFTConfig defaults (gradient
               checkpointing on, fused AdamW, batches padded to the longest row, no packing, TRL's
               fused LM head) with fp32 (bf16=False: SFTConfig's default bf16=True is refused on a
               machine without a GPU unless use_cpu=True), the same LoRA rank, alpha and target modules
               (peft_config=) with lora_dropout 0.05 as in TRL's PEFT examples, the same learning rate
               and schedule as ours.
  trl-kl       the same plus a KL term written the plain way (a compute_loss override with the full
               logits and an adapter-disabled forward: the trainer this project started from).
  ours, ours-kl  distill.training.DistillSFTTrainer with sft_args() from the run defaults.
  ours-<lever> ours without one lever: -fp32 (no bf16 autocast), -padded (no padding-free batches),
               -hfmask (padding-free batches, but transformers' own packed-sequence mask with plain SDPA
               instead of segment_sdpa_attention), -threads (no thread tuner), -trlhead (TRL's loss path, LM head on every position),
               -gc (gradient checkpointing on), -adamw (foreach AdamW, not fused), -dropout0 (lora_dropout
               0.05 as in TRL's examples instead of our default 0: with dropout PEFT draws a mask and
               keeps a dropped copy of the input per LoRA layer and token), and on top of ours:
               +compile (each decoder layer torch.compile'd), +mb4x (micro-batches 4x larger, 4x fewer
               accumulation steps: the same effective batch and the same gradients up to rounding).

Every variant sees the same rows in the same order (same seed), the same effective batch and the
same number of optimizer steps. Throughput counts trained tokens (labelled completion tokens) from
the second micro-batch to the end of the last optimizer step (the first pays one-off costs).
Validation loss is computed the same way for every variant after training: fp32, no autocast,
mean token CE on the completions of held-out rows.

MFU counts useful FLOPs only, the same for every variant: LoRA, per real (non-pad) token,
4*N_frozen (forward + the backward's input gradient through frozen weights; no weight gradient) +
6*N_lora, the LM head 4*V*d only on labelled positions, attention 6*layers*d*L per token of a row of
length L (causal half of QK^T and AV, forward and backward); full fine-tuning 6*N; the KL term adds
a forward (2*N). Peaks are the best 2048^2 matmul bursts (fp32, bf16) measured by this script.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    GSM8K,
    ROOT,
    emit,
    load_line,
    machine,
    matmul_peak,
    median,
    peak_rss_mb,
    run_child,
    table,
    write_json,
)

BASELINES = {"trl": False, "trl-kl": True}
# TRL's PEFT examples use LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05): what the baseline's user writes.
TRL_DOCS_LORA_DROPOUT = 0.05
LEVERS = ["ours-fp32", "ours-padded", "ours-hfmask", "ours-threads", "ours-trlhead", "ours-gc", "ours-adamw",
          "ours-dropout0", "ours+mb4x", "ours+compile"]


# ----------------------------------------------------------------------------- child side
def _rows(data: str, n_train: int, n_val: int):
    from distill.data.builtin import SYSTEM_PROMPT
    from distill.data.prepare import to_prompt_completion
    from distill.data.sources import load_examples

    if data == "builtin":
        train, _ = load_examples("builtin:reasoning", n_train, split="train")
        val, _ = load_examples("builtin:reasoning", n_val, split="eval")
        return [to_prompt_completion(e, SYSTEM_PROMPT) for e in train], [to_prompt_completion(e, SYSTEM_PROMPT) for e in val]
    examples, _ = load_examples(str(GSM8K), n_train + n_val)
    rows = [to_prompt_completion(e, None) for e in examples]
    return rows[:n_train], rows[n_train:]


def _val_loss(model, tok, rows) -> float:
    import torch

    from distill.threads import ThreadTuner

    total, count = 0.0, 0
    was = model.training
    model.eval()
    tuner = ThreadTuner.for_device("cpu")  # not timed; only so that it ends sooner on a busy machine
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        for r in rows:
            if tuner:
                tuner.begin()
            prompt = tok.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True, return_dict=False)
            full = tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=False)
            ids = torch.tensor([full])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            target = ids[0, 1:]
            keep = torch.arange(len(full) - 1) >= len(prompt) - 1
            total += float(torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum"))
            count += int(keep.sum())
            if tuner:
                tuner.end(len(full))
    if tuner:
        tuner.restore()
    model.train(was)
    return total / max(count, 1)


def _model_dims(model) -> dict:
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.get_output_embeddings()
    body = inner.base_model
    n_body = sum(m.base_layer.weight.numel() if hasattr(m, "base_layer") else m.weight.numel()
                 for name, m in body.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in name and not name.endswith("base_layer"))
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cfg = inner.config.get_text_config()
    return {"n_body": n_body, "n_head": head.weight.numel(), "n_trainable": n_train, "layers": cfg.num_hidden_layers,
            "d_attn": cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads),
            "lora": hasattr(model, "get_base_model")}


def _useful_flops(dims: dict, mbs: list[dict], kl: bool) -> float:
    total = 0.0
    for mb in mbs:
        real, trained, sq = mb["real"], mb["trained"], mb["len_sq"]
        attn_fwd = 2 * dims["layers"] * dims["d_attn"] * sq  # causal: half of 2 matmuls x 2 FLOP/MAC
        if dims["lora"]:
            f = 4 * dims["n_body"] * real + 6 * dims["n_trainable"] * real + 4 * dims["n_head"] * trained + 3 * attn_fwd
        else:
            f = 6 * dims["n_body"] * real + 6 * dims["n_head"] * trained + 3 * attn_fwd
        if kl:
            f += 2 * dims["n_body"] * real + 2 * dims["n_head"] * trained + attn_fwd
        total += f
    return total


def child(spec: dict) -> None:
    import dataclasses

    import torch
    from transformers import TrainerCallback

    from distill.config import build_config
    from distill.data.prepare import ensure_chat_template
    from distill.models import ensure_local_model, load_model, load_tokenizer

    variant, kl = spec["variant"], spec["variant"].endswith("-kl")
    path = ensure_local_model(spec["model"])
    tok = load_tokenizer(path)
    ensure_chat_template(tok)
    train_rows, val_rows = _rows(spec["data"], spec["n_train"], spec["n_val"])
    torch.manual_seed(spec["seed"])
    model = load_model(path)
    lever = variant.replace("-kl", "")
    overrides = {"ours-fp32": {"precision": "fp32"}, "ours-padded": {"packing": False},
                 "ours-dropout0": {"lora_dropout": TRL_DOCS_LORA_DROPOUT},
                 "ours+mb4x": {"batch_size": spec["batch"] * 4, "gradient_accumulation": max(1, spec["accum"] // 4)},
                 }.get(lever, {})
    config = build_config({"model": spec["model"], "batch_size": spec["batch"], "gradient_accumulation": spec["accum"],
                           "use_kl_regularization": kl, "use_lora": not spec["full"], **overrides})
    out_dir = tempfile.mkdtemp(prefix="bench_train_")
    from datasets import Dataset

    mbs: list[dict] = []
    marks: dict[str, float] = {}

    class Timed:
        def training_step(self, model, inputs, num_items_in_batch=None):
            t0 = time.perf_counter()
            loss = super().training_step(model, inputs, num_items_in_batch)
            labels = inputs["labels"]
            if "attention_mask" in inputs:
                lengths = inputs["attention_mask"].sum(1).tolist()
            else:
                starts = (inputs["position_ids"][0] == 0).nonzero().flatten().tolist() + [inputs["input_ids"].shape[1]]
                lengths = [b - a for a, b in zip(starts[:-1], starts[1:])]
            mbs.append({"t0": t0, "t1": time.perf_counter(), "trained": int((labels[:, 1:] != -100).sum()),
                        "real": int(sum(lengths)), "processed": int(inputs["input_ids"].numel()),
                        "len_sq": float(sum(n * n for n in lengths))})
            return loss

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks["last_step_end"] = time.perf_counter()

    common = dict(train_dataset=Dataset.from_list(train_rows), processing_class=tok, callbacks=[StepEnd()])
    if variant in BASELINES:
        from peft import LoraConfig
        from trl import SFTConfig, SFTTrainer

        class NaiveKL(SFTTrainer):
            """The KL term as the project first wrote it: full logits, an adapter-disabled forward."""

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                import torch.nn.functional as F

                labels = inputs["labels"]
                mask = labels[:, 1:] != -100
                forward = {k: v for k, v in inputs.items() if k != "labels"}
                forward["use_cache"] = False
                logits = model(**forward).logits[:, :-1]
                n = torch.as_tensor(num_items_in_batch if num_items_in_batch is not None else mask.sum()).clamp(min=1)
                logp = F.log_softmax(logits.float(), dim=-1)
                ce = -(logp.gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum() / n
                with torch.no_grad(), self.accelerator.unwrap_model(model).disable_adapter():
                    ref = model(**forward).logits[:, :-1]
                logq = F.log_softmax(ref.float(), dim=-1)
                kl_ = ((logp.exp() * (logp - logq)).sum(-1) * mask).sum() / n
                return ce + config.kl_coef * kl_

        cls = type("TimedTRL", (Timed, NaiveKL if kl else SFTTrainer), {})
        args = SFTConfig(output_dir=out_dir, per_device_train_batch_size=config.batch_size,
                         gradient_accumulation_steps=config.gradient_accumulation, max_steps=spec["steps"],
                         learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler_type,
                         warmup_steps=config.warmup_ratio, seed=config.seed, bf16=False, use_cpu=True,
                         report_to="none", logging_steps=1, save_strategy="no")
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=TRL_DOCS_LORA_DROPOUT,
                          target_modules=config.lora_target_modules, task_type="CAUSAL_LM")
        trainer = cls(model=model, args=args, peft_config=lora if config.use_lora else None, **common)
    else:
        from distill.training import (
            DistillSFTTrainer,
            restore_sdpa,
            sft_args,
            wrap_lora,
        )

        args = sft_args(config, Path(out_dir), has_val=False)
        changes = {"max_steps": spec["steps"], "save_strategy": "no"}
        if lever == "ours-gc":
            changes["gradient_checkpointing"] = True
        if lever == "ours-adamw":
            changes["optim"] = "adamw_torch"
        args = dataclasses.replace(args, **changes)
        ref = None
        if kl and not config.use_lora:
            import copy

            ref = copy.deepcopy(model).eval().requires_grad_(False)
        if config.use_lora:
            model = wrap_lora(model, config)
        if lever == "ours+compile":
            from distill.training import compile_decoder_layers

            compile_decoder_layers(model, dynamic=True)
        cls = type("TimedOurs", (Timed, DistillSFTTrainer), {})
        if lever == "ours-trlhead":
            cls.labelled_loss = False
        trainer = cls(model=model, args=args, kl_coef=config.kl_coef if kl else 0.0, ref_model=ref,
                      tune_threads=lever != "ours-threads", packing=config.packing,
                      segment_attention=lever != "ours-hfmask", **common)
    t_start = time.perf_counter()
    trainer.train()
    t_train = time.perf_counter() - t_start
    tuner = getattr(trainer, "thread_tuner", None)
    tuner_summary = tuner.summary() if tuner is not None else None
    if tuner is not None:
        tuner.restore()
    if variant not in BASELINES:
        restore_sdpa(trainer.model)
    timed = mbs[1:]
    span = marks["last_step_end"] - timed[0]["t0"] if timed else float("nan")
    dims = _model_dims(trainer.model)
    flops = _useful_flops(dims, timed, kl)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    t_val = time.perf_counter()
    vloss = _val_loss(trainer.model, tok, val_rows)
    emit({
        "variant": variant, "bf16": bool(trainer.args.bf16), "micro_batches": len(mbs), "timed_s": span,
        "trained_tok_s": sum(m["trained"] for m in timed) / span, "real_tok_s": sum(m["real"] for m in timed) / span,
        "pad_fraction": 1 - sum(m["real"] for m in mbs) / max(sum(m["processed"] for m in mbs), 1),
        "useful_gflop_s": flops / span / 1e9, "train_s": t_train, "val_loss": vloss, "val_s": time.perf_counter() - t_val,
        "train_losses": losses, "peak_rss_mb": peak_rss_mb(), "threads": tuner_summary, "dims": dims,
        "load": os.getloadavg(),
    })


def thread_child(threads: int) -> None:
    """Median seconds of a bf16 forward of the default model on 2 x 210 tokens with `threads` threads."""
    import statistics

    import torch

    from distill.models import ensure_local_model, load_model

    torch.set_num_threads(threads)
    model = load_model(ensure_local_model("smollm2-135m")).eval()
    ids = torch.randint(0, 49152, (2, 210))

    def fwd() -> float:
        t = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model.model(input_ids=ids)
        return time.perf_counter() - t

    fwd()
    emit({"threads": threads, "s": statistics.median(fwd() for _ in range(3)), "load": os.getloadavg()})


def thread_probe(rounds: int) -> None:
    """1 vs all threads, with OpenMP's default (spinning) wait policy and with OMP_WAIT_POLICY=PASSIVE,
    each a child process (the policy is read when the OpenMP runtime loads), alternating."""
    import os as _os

    n = _os.cpu_count() or 2
    cells = [(pol, t) for pol in ("default", "PASSIVE") for t in sorted({1, n})]
    res: dict[str, list[float]] = {f"{p}/{t}": [] for p, t in cells}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        for pol, t in cells:
            env = {"OMP_WAIT_POLICY": "PASSIVE"} if pol == "PASSIVE" else {}
            out = run_child([__file__, "--thread_child", str(t)], env=env)
            res[f"{pol}/{t}"].append(out.get("s"))
            loads.append(os.getloadavg()[0])
        print(f"  round {r + 1}: " + ", ".join(f"{k} {median(v):.2f} s" for k, v in res.items()), flush=True)
    base = median(res[f"default/{n}"])
    rows = [[k.split("/")[0], int(k.split("/")[1]), median(v), base / median(v)] for k, v in res.items()]
    print()
    print(table(rows, ["OpenMP wait policy", "threads", "forward s (median)", "x vs default/all threads"]))
    print(f"load average (1 min): min {min(loads):.2f}, median {median(loads):.2f}, max {max(loads):.2f}")
    write_json(ROOT / "bench" / "results" / "thread_probe.json", {"machine": machine(), "loads": loads, "results": res})


# ----------------------------------------------------------------------------- parent side
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--quick", action="store_true", help="small: trl and ours, 3 optimizer steps of 2 rows, 1 round")
    ap.add_argument("--levers", action="store_true", help="ablation: ours, and ours without each lever (or with one more)")
    ap.add_argument("--variants", help="comma-separated variants (default: trl,ours,trl-kl,ours-kl)")
    ap.add_argument("--data", choices=["gsm8k", "builtin"], default="gsm8k", help="GSM8K (falls back to builtin when absent)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--accum", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per variant")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n_val", type=int, default=48)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", help="JSON results (default: bench/results/train_throughput.json, or train_throughput_quick.json with --quick)")
    ap.add_argument("--thread_probe", action="store_true",
                    help="only: a forward pass with 1 vs all threads, OpenMP wait policy default vs PASSIVE")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--thread_child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.out = a.out or str(ROOT / "bench" / "results" / f"train_throughput{'_quick' if a.quick else ''}.json")
    if a.child:
        child(json.loads(a.child))
        return 0
    if a.thread_child:
        thread_child(a.thread_child)
        return 0
    if a.thread_probe:
        thread_probe(a.rounds)
        return 0
    if a.quick:
        a.accum, a.steps, a.rounds, a.n_val = 1, 3, 1, 8
        a.variants = a.variants or "trl,ours"
    data = a.data
    if data == "gsm8k" and not GSM8K.is_file():
        print(f"note: {GSM8K} absent; using builtin:reasoning")
        data = "builtin"
    variants = a.variants.split(",") if a.variants else (["ours"] + LEVERS if a.levers else ["trl", "ours", "trl-kl", "ours-kl"])
    n_train = a.batch * a.accum * a.steps
    print(f"{len(variants)} variants x {a.rounds} rounds; {data}, {n_train} rows, batch {a.batch} x accum {a.accum}, "
          f"{a.steps} steps, {'full FT' if a.full else 'LoRA'}; {load_line()}", flush=True)
    peaks = {"fp32": max(matmul_peak("float32", threads=t) for t in (1, None)),
             "bf16": max(matmul_peak("bfloat16", threads=t) for t in (1, None))}
    results: dict[str, list[dict]] = {v: [] for v in variants}
    loads = [os.getloadavg()[0]]
    for r in range(a.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            spec = {"variant": v, "model": a.model, "data": data, "n_train": n_train, "n_val": a.n_val, "batch": a.batch,
                    "accum": a.accum, "steps": a.steps, "seed": a.seed, "full": a.full}
            res = run_child([__file__, "--child", json.dumps(spec)])
            results[v].append(res)
            loads.append(os.getloadavg()[0])
            msg = res.get("error") or (f"{res['trained_tok_s']:.1f} trained tok/s, val loss {res['val_loss']:.4f}, "
                                       f"wall {res['wall_s']:.0f} s")
            print(f"  round {r + 1} {v}: {msg}", flush=True)
            if "error" in res:
                print("    " + "\n    ".join(res.get("tail", [])), flush=True)
    for dt in ("float32", "bfloat16"):
        key = "fp32" if dt == "float32" else "bf16"
        peaks[key] = max(peaks[key], max(matmul_peak(dt, threads=t) for t in (1, None)))

    def med(v: str, key: str) -> float:
        return median([x.get(key) for x in results[v] if "error" not in x])

    rows = []
    for v in variants:
        ok = [x for x in results[v] if "error" not in x]
        if not ok:
            rows.append([v, "error"] + [None] * 9)
            continue
        peak = peaks["bf16"] if ok[0]["bf16"] else peaks["fp32"]
        base = "trl-kl" if v.endswith("-kl") else "trl"
        ratio = med(v, "trained_tok_s") / med(base, "trained_tok_s") if base in results and med(base, "trained_tok_s") else None
        ours = "ours-kl" if v.endswith("-kl") else "ours"
        vs_ours = med(v, "trained_tok_s") / med(ours, "trained_tok_s") if v.startswith("ours") and ours in results else None
        rows.append([v, "bf16" if ok[0]["bf16"] else "fp32", med(v, "trained_tok_s"), ratio, vs_ours,
                     med(v, "useful_gflop_s"), 100 * med(v, "useful_gflop_s") / peak, med(v, "val_loss"),
                     med(v, "pad_fraction"), med(v, "peak_rss_mb"), len(ok)])
    header = ["variant", "precision", "trained tok/s", "x vs TRL", "x vs ours", "useful GFLOP/s", "MFU %", "val loss",
              "pad share", "peak RSS MB", "runs"]
    print()
    print(table(rows, header))
    print(f"\nmatmul peak (best 2048^2 burst): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; "
          f"MFU vs the variant's own precision's peak")
    print(f"load average (1 min) during the run: min {min(loads):.2f}, median {median(loads):.2f}, max {max(loads):.2f}")
    write_json(a.out, {"args": vars(a), "machine": machine(), "peaks_gflop_s": peaks, "loads": loads, "results": results,
                       "table": {"header": header, "rows": rows}})
    print(f"wrote {a.out}")
    if "ours" in results and "trl" in results and med("trl", "trained_tok_s"):
        print(f"train_speedup_vs_trl={med('ours', 'trained_tok_s') / med('trl', 'trained_tok_s'):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
