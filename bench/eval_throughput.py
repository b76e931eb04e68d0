"""Evaluation throughput: base + SFT answers to held-out prompts, batched vs one prompt at a time, and the
rolling batch vs static batches on the demo's length mix (not a test).

    .venv/bin/python bench/eval_throughput.py --quick     # last lines eval_speedup_vs_sequential=X.XX,
                                                          # eval_rolling_vs_static=X.XX
    .venv/bin/python bench/eval_throughput.py             # 32 prompts x 128 new tokens, 2 rounds, plus --mode evaluate end to end
    .venv/bin/python bench/eval_throughput.py --prompts 32 --max_new_tokens 256 --rounds 1 --adapter outputs/.../final_model

Both sides answer the same 32 held-out prompts (GSM8K rows past the training ones, or
builtin:reasoning's eval split) with the base model and with the SFT model (a LoRA adapter:
--adapter, or by default a fresh one with random B so that it answers differently from the base),
greedy, up to --max_new_tokens, stopping at <|im_end|>/EOS.

  sequential   what a user writes: model.generate on one prompt at a time, the base side under
               disable_adapter(); plain torch threads.
  batched      distill.generation.hf.HFEngine with static batches (rolling=False): base and SFT rows in
               the same left-padded batches (PEFT adapter_names per row), rows grouped by length,
               the thread tuner on (CPU).
  batched-fixed  the same with the thread tuner off (what batching alone gives).
  unsorted     batched-fixed without grouping rows by length (what grouping gives).
  continuous   transformers' continuous batching (model.generate_batch, paged attention): the base
               rows with the adapter off, then the SFT rows (it takes no per-row adapters).

Throughput is generated tokens (up to and including the stop token) per second of wall time. The
outputs must be identical token for token; the script counts the rows that differ.

Rolling vs static (``--mix_problems`` of the demo's held-out problems, builtin:reasoning's eval split with
its system prompt, base + SFT, greedy, ``--mix_tokens`` new tokens, ``--batch_size`` rows in flight), in
alternated rounds, medians: the whole evaluation's wall time; useful tokens/s (the answers' tokens);
row-steps/s (rows decoded per second, finished rows that a static batch still carries included). Static
batches run each batch until its longest row stops; the rolling batch replaces a finished row at once
(distill/generation/rolling.py). The answers must be identical token for token.

--quick: 32 prompts, 48 new tokens, one round (rolling vs static: 48 problems, 256 new tokens, 32 rows
in flight, 2 rounds); the sequential side answers every 4th prompt only
(8 prompts, 16 generations: its tokens/s does not depend on how many prompts it is given, and all
32 one at a time take over 10 minutes on a busy 2-core machine); outputs are compared on those 8.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    GSM8K,
    ROOT,
    load_line,
    machine,
    median,
    peak_rss_mb,
    table,
    write_json,
)


def held_out(data: str, n: int, skip: int = 200) -> list[list[dict]]:
    from distill.data.builtin import SYSTEM_PROMPT
    from distill.data.prepare import to_prompt_completion
    from distill.data.sources import load_examples

    if data == "builtin":
        examples, _ = load_examples("builtin:reasoning", n, split="eval")
        return [to_prompt_completion(e, SYSTEM_PROMPT)["prompt"] for e in examples]
    examples, _ = load_examples(str(GSM8K), skip + n)
    return [to_prompt_completion(e, None)["prompt"] for e in examples[skip:]]


def sft_model(model_name: str, adapter: str | None, seed: int):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from distill.models import ensure_local_model, load_model

    base = load_model(ensure_local_model(model_name))
    if adapter:
        return PeftModel.from_pretrained(base, adapter)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def sequential(model, tok, convs, max_new_tokens: int):
    """One model.generate per prompt and side: what one writes without batching."""
    import torch

    from distill.generation.engine import Prompt
    from distill.generation.hf import render, stop_token_ids

    stops = stop_token_ids(tok)
    out = {"base": [], "sft": []}
    model.eval()
    for side in ("base", "sft"):
        for conv in convs:
            enc = tok(render(tok, Prompt(model=side, messages=conv)), return_tensors="pt", add_special_tokens=False)
            ctx = model.disable_adapter() if side == "base" else torch.no_grad()
            with ctx, torch.inference_mode():
                seq = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                     pad_token_id=tok.pad_token_id, top_k=None)
            new = seq[0, enc["input_ids"].shape[1]:].tolist()
            n = next((k + 1 for k, t in enumerate(new) if t in stops), len(new))
            out[side].append((tok.decode([t for t in new[:n] if t not in stops], skip_special_tokens=True).strip(), n))
    return out


def batched(model, tok, convs, max_new_tokens: int, batch_size: int, tune: bool, group: bool = True):
    from distill.generation.engine import Prompt, Sampling
    from distill.generation.hf import HFEngine

    engine = HFEngine.for_pair(model, tok, batch_size=batch_size, tune_threads=tune, group_by_length=group,
                               rolling=False)
    s = Sampling(max_new_tokens=max_new_tokens)
    gens = engine.generate([Prompt(model=m, messages=c, sampling=s) for c in convs for m in ("base", "sft")])
    return {"base": [(g.text, g.new_tokens) for g in gens[0::2]], "sft": [(g.text, g.new_tokens) for g in gens[1::2]]}


def continuous(model, tok, convs, max_new_tokens: int):
    """transformers' continuous batching: each side in one generate_batch call (no per-row adapters)."""
    import torch
    from transformers import GenerationConfig

    from distill.generation.engine import Prompt
    from distill.generation.hf import render, stop_token_ids

    stops = stop_token_ids(tok)
    ids = [tok(render(tok, Prompt(model="x", messages=c)), add_special_tokens=False)["input_ids"] for c in convs]
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                              pad_token_id=tok.pad_token_id)
    out = {}
    model.eval()
    for side in ("base", "sft"):
        ctx = model.disable_adapter() if side == "base" else torch.no_grad()
        with ctx:
            res = model.generate_batch(inputs=ids, generation_config=config, max_new_tokens=max_new_tokens)
        rows = []
        for r in sorted(res.values(), key=lambda r: int(r.request_id.rsplit("_", 1)[-1])):
            new = list(r.generated_tokens)
            n = next((k + 1 for k, t in enumerate(new) if t in stops), len(new))
            rows.append((tok.decode([t for t in new[:n] if t not in stops], skip_special_tokens=True).strip(), n))
        out[side] = rows
    return out


def rolling_vs_static(model, tok, convs, max_new_tokens: int, batch_size: int, rounds: int) -> dict:
    """The same rows through static batches and through the rolling batch, alternated rounds."""
    from distill.generation.engine import Prompt, Sampling
    from distill.generation.hf import HFEngine

    s = Sampling(max_new_tokens=max_new_tokens)
    prompts = [Prompt(model=m, messages=c, sampling=s) for c in convs for m in ("base", "sft")]
    runs: dict[str, list[dict]] = {"static": [], "rolling": []}
    outputs: dict[str, list] = {}
    for r in range(rounds):
        for side in (("static", "rolling") if r % 2 == 0 else ("rolling", "static")):
            engine = HFEngine.for_pair(model, tok, batch_size=batch_size, rolling=side == "rolling")
            t0 = time.perf_counter()
            gens = engine.generate(prompts)
            wall = time.perf_counter() - t0
            useful = sum(g.new_tokens for g in gens)
            steps = engine.stats["row_steps"] + len(gens) if side == "rolling" else static_row_steps(engine, prompts,
                                                                                                     gens)
            runs[side].append({"wall_s": wall, "useful_tokens": useful, "row_steps": steps,
                               "useful_tok_s": useful / wall, "row_steps_s": steps / wall})
            outputs.setdefault(side, [(g.text, g.new_tokens) for g in gens])
            print(f"  round {r + 1} {side}: {useful} answer tokens, {steps} row-steps in {wall:.1f} s", flush=True)
    lengths = sorted(n for _, n in outputs["static"])
    return {"runs": runs, "differing_rows": sum(a != b for a, b in zip(outputs["static"], outputs["rolling"], strict=True)),
            "rows": len(prompts), "answer_tokens_p50": lengths[len(lengths) // 2], "answer_tokens_max": lengths[-1],
            "outputs": outputs}


def bf16_vs_fp32(model, tok, convs, max_new_tokens: int, batch_size: int, rounds: int) -> dict:
    """The same rows through the rolling batch with the model in float32 and in a bfloat16 copy, alternated rounds:
    wall time, and how many answers agree token for token and by their final answer."""
    import copy

    import torch

    from distill.evaluation.answers import extract_answer
    from distill.generation.engine import Prompt, Sampling
    from distill.generation.hf import HFEngine

    s = Sampling(max_new_tokens=max_new_tokens)
    prompts = [Prompt(model=m, messages=c, sampling=s) for c in convs for m in ("base", "sft")]
    models = {"fp32": model, "bf16": copy.deepcopy(model).to(torch.bfloat16)}
    runs: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    outputs: dict[str, list[str]] = {}
    for r in range(rounds):
        for side in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            engine = HFEngine.for_pair(models[side], tok, batch_size=batch_size)
            t0 = time.perf_counter()
            gens = engine.generate(prompts)
            wall = time.perf_counter() - t0
            useful = sum(g.new_tokens for g in gens)
            runs[side].append({"wall_s": wall, "useful_tokens": useful, "useful_tok_s": useful / wall})
            outputs.setdefault(side, [g.text for g in gens])
            print(f"  round {r + 1} {side}: {useful} answer tokens in {wall:.1f} s", flush=True)
    pairs = list(zip(outputs["fp32"], outputs["bf16"], strict=True))
    return {"runs": runs, "rows": len(pairs), "same_text": sum(a == b for a, b in pairs),
            "same_final_answer": sum(extract_answer(a) == extract_answer(b) for a, b in pairs), "outputs": outputs}


def static_row_steps(engine, prompts, gens) -> int:
    """Rows a static batch decodes: every row of a batch for as many steps as its longest row."""
    from distill.generation.hf import render

    lengths = [len(engine.tok(render(engine.tok, p), add_special_tokens=False)["input_ids"]) for p in prompts]
    batches = engine._batches(list(range(len(prompts))), lengths)
    return sum(len(b) * max(gens[i].new_tokens for i in b) for b in batches)


def mode_evaluate(model, tok, model_name: str, data: str, n: int, max_new_tokens: int) -> dict:
    """End-to-end `--mode evaluate` on an adapter folder: process start to results written."""
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        adapter = Path(tmp) / "adapter"
        model.save_pretrained(adapter)
        tok.save_pretrained(adapter)
        dataset = "builtin:reasoning" if data == "builtin" else str(GSM8K)
        cmd = [sys.executable, str(ROOT / "run_distillation_pipeline.py"), "--mode", "evaluate", "--model", model_name,
               "--sft_model_path",
               str(adapter), "--dataset", dataset, "--eval_samples", str(n), "--no-general_prompts",
               "--max_new_tokens", str(max_new_tokens), "--output_dir", str(Path(tmp) / "run")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wall = time.perf_counter() - t0
        timings = Path(tmp) / "run" / "timings.json"
        import json

        inner = json.loads(timings.read_text()) if timings.is_file() else {}
        return {"rc": proc.returncode, "wall_s": wall, "evaluate_s": inner.get("evaluate_s"),
                "tail": proc.stderr.strip().splitlines()[-3:] if proc.returncode else []}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--quick", action="store_true", help="32 prompts x 48 new tokens, 1 round, no end-to-end run")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max_new_tokens", type=int, default=128)
    from distill.config import RunConfig

    ap.add_argument("--batch_size", type=int, default=RunConfig.model_fields["eval_batch_size"].default,
                    help="rows per batch on the batched side, base and SFT rows counted apart (default: the run default)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", choices=["gsm8k", "builtin"], default="gsm8k")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--adapter", help="a trained LoRA adapter folder (default: a random one)")
    ap.add_argument("--no_e2e", action="store_true", help="skip the end-to-end --mode evaluate run")
    ap.add_argument("--seq_every", type=int, default=1, help="the sequential side answers every Nth prompt (1: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix_problems", type=int, default=100,
                    help="rolling vs static: this many of the demo's held-out problems (0: skip)")
    ap.add_argument("--mix_tokens", type=int, default=256, help="rolling vs static: new tokens per answer")
    ap.add_argument("--mix_rounds", type=int, default=2, help="rolling vs static: rounds, alternated, medians")
    ap.add_argument("--bf16_problems", type=int, default=0,
                    help="bf16 vs fp32 generation: this many of the demo's held-out problems through the rolling batch "
                         "(0: skip); speed and answer agreement")
    ap.add_argument("--out", help="JSON results (default: bench/results/eval_throughput.json, or eval_throughput_quick.json with --quick)")
    a = ap.parse_args()
    a.out = a.out or str(ROOT / "bench" / "results" / f"eval_throughput{'_quick' if a.quick else ''}.json")
    if a.quick:
        a.max_new_tokens, a.rounds, a.no_e2e, a.seq_every = 48, 1, True, 4
        a.mix_problems, a.batch_size = min(a.mix_problems, 48), min(a.batch_size, 32)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = a.data if (a.data == "builtin" or GSM8K.is_file()) else "builtin"
    from distill.data.prepare import ensure_chat_template
    from distill.models import ensure_local_model, load_tokenizer

    tok = load_tokenizer(ensure_local_model(a.model))
    ensure_chat_template(tok)
    convs = held_out(data, a.prompts)
    model = sft_model(a.model, a.adapter, a.seed)
    print(f"{len(convs)} prompts x (base + SFT), up to {a.max_new_tokens} new tokens, {data}; {load_line()}", flush=True)
    variants = ["sequential", "batched", "batched-fixed", "unsorted", "continuous"]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    outputs: dict[str, dict] = {}
    loads = [os.getloadavg()[0]]
    seq_idx = list(range(0, len(convs), a.seq_every))
    for r in range(a.rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            t0 = time.perf_counter()
            if v == "sequential":
                out = sequential(model, tok, [convs[i] for i in seq_idx], a.max_new_tokens)
            elif v == "continuous":
                out = continuous(model, tok, convs, a.max_new_tokens)
            else:
                out = batched(model, tok, convs, a.max_new_tokens, a.batch_size, tune=v == "batched", group=v != "unsorted")
            wall = time.perf_counter() - t0
            tokens = sum(n for side in out.values() for _, n in side)
            runs[v].append({"wall_s": wall, "tokens": tokens, "tok_s": tokens / wall})
            outputs.setdefault(v, out)
            loads.append(os.getloadavg()[0])
            print(f"  round {r + 1} {v}: {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tok/s", flush=True)
    ref = outputs["sequential"]
    diffs = {v: 0 if v == "sequential" else
             sum(a_ != outputs[v][side][i] for side in ("base", "sft") for a_, i in zip(ref[side], seq_idx))
             for v in variants}
    seq_tok_s = median([x["tok_s"] for x in runs["sequential"]])
    rows = [[v, median([x["tok_s"] for x in runs[v]]), median([x["tok_s"] for x in runs[v]]) / seq_tok_s,
             median([x["wall_s"] for x in runs[v]]), f"{diffs[v]} / {2 * len(seq_idx)}"] for v in variants]
    header = ["variant", "generated tok/s", "x vs sequential", "wall s", "rows differing from sequential"]
    print()
    print(table(rows, header))
    mix = None
    if a.mix_problems:
        mix_convs = held_out("builtin", a.mix_problems)
        print(f"\nrolling vs static: {len(mix_convs)} of the demo's held-out problems x (base + SFT), greedy, up to "
              f"{a.mix_tokens} new tokens, {a.batch_size} rows in flight", flush=True)
        mix = rolling_vs_static(model, tok, mix_convs, a.mix_tokens, a.batch_size, a.mix_rounds)
        med = {side: {k: median([x[k] for x in mix["runs"][side]]) for k in mix["runs"][side][0]}
               for side in ("static", "rolling")}
        mix["median"] = med
        print(table([[side, med[side]["wall_s"], med[side]["useful_tok_s"], med[side]["row_steps_s"],
                      med[side]["row_steps"]] for side in ("static", "rolling")],
                    ["batching", "wall s", "useful tok/s", "row-steps/s", "row-steps"]))
        print(f"answers: p50 {mix['answer_tokens_p50']} tokens, max {mix['answer_tokens_max']}; rows differing "
              f"between the two: {mix['differing_rows']} / {mix['rows']}")
    precision = None
    if a.bf16_problems:
        print(f"\nbf16 vs fp32: {a.bf16_problems} of the demo's held-out problems x (base + SFT), rolling batch, greedy, "
              f"up to {a.mix_tokens} new tokens", flush=True)
        precision = bf16_vs_fp32(model, tok, held_out("builtin", a.bf16_problems), a.mix_tokens, a.batch_size,
                                 a.mix_rounds)
        med = {side: {k: median([x[k] for x in precision["runs"][side]]) for k in precision["runs"][side][0]}
               for side in ("fp32", "bf16")}
        precision["median"] = med
        print(table([[side, med[side]["wall_s"], med[side]["useful_tok_s"], med[side]["useful_tokens"]]
                     for side in ("fp32", "bf16")], ["precision", "wall s", "useful tok/s", "answer tokens"]))
        print(f"answers agreeing: {precision['same_text']} / {precision['rows']} token for token, "
              f"{precision['same_final_answer']} / {precision['rows']} by final answer")
    e2e = None
    if not a.no_e2e:
        e2e = mode_evaluate(model, tok, a.model, data, a.prompts, a.max_new_tokens)
        print(f"\n--mode evaluate end to end ({a.prompts} prompts, base + SFT, {a.max_new_tokens} new tokens): "
              f"{e2e['wall_s']:.1f} s wall, of which generation and scoring {e2e['evaluate_s'] or float('nan'):.1f} s (rc {e2e['rc']})")
    print(f"load average (1 min) during the run: min {min(loads):.2f}, median {median(loads):.2f}, max {max(loads):.2f}; "
          f"peak RSS {peak_rss_mb():.0f} MB")
    write_json(a.out, {"args": vars(a), "machine": machine(), "loads": loads, "runs": runs, "differing_rows": diffs,
                       "e2e": e2e, "outputs": outputs, "table": {"header": header, "rows": rows},
                       "rolling_vs_static": mix, "bf16_vs_fp32": precision})
    print(f"wrote {a.out}")
    if diffs["batched"]:
        print(f"WARNING: {diffs['batched']} rows differ from one-at-a-time generation")
    print(f"eval_speedup_vs_sequential={median([x['tok_s'] for x in runs['batched']]) / seq_tok_s:.2f}")
    if mix is not None:
        if mix["differing_rows"]:
            print(f"WARNING: {mix['differing_rows']} rows differ between the rolling batch and static batches")
        print(f"eval_rolling_vs_static={mix['median']['static']['wall_s'] / mix['median']['rolling']['wall_s']:.2f}")
    if precision is not None:
        print(f"eval_bf16_vs_fp32={precision['median']['fp32']['wall_s'] / precision['median']['bf16']['wall_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
