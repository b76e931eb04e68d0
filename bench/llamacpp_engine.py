"""The hf engine against the llamacpp engine (f16 and q8_0 GGUFs), side by side in one run (not a test).

    .venv/bin/python bench/llamacpp_engine.py --quick    # 8 prompts x 32 new tokens, 2 rounds
    .venv/bin/python bench/llamacpp_engine.py            # 16 prompts x 64 new tokens, 3 rounds

The embedded model (``smollm2-135m``, its safetensors folder in the model cache) and its GGUFs (f16, q8_0, converted
once by llama.cpp's converter into the GGUF cache), the demo's held-out prompts (builtin:reasoning, eval split, with
the demo's system prompt), greedy. Per engine and file: single stream (batch 1: one prompt after another) and batched
(``--batch`` rows at once: the hf engine's rolling batch; llama.cpp's slots in one context, one decode per step).
Each variant runs in its own child process, variants alternate round by round; figures are medians over rounds of
generated tokens per second of generation wall time (the model load excluded, a one-prompt warm-up first), and each
llamacpp variant's greedy agreement with hf: prompts whose first ``--agree`` tokens are the same, and the median
length of the common prefix (tokens of the hf tokenizer).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, emit, load_line, machine, median, run_child, table, write_json  # noqa: E402

MODEL = "smollm2-135m"


def prompts(n: int) -> list[list[dict[str, str]]]:
    from distill.data.builtin import SYSTEM_PROMPT
    from distill.data.sources import load_examples

    held = load_examples("builtin:reasoning", n, split="eval")[0]
    return [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": e.prompt}] for e in held]


def engine(kind: str, batch: int):
    from distill.data.prepare import ensure_chat_template
    from distill.generation.hf import HFEngine
    from distill.generation.llamacpp import LlamaCppEngine, cached_gguf
    from distill.models import ensure_local_model, load_model, load_tokenizer

    path = ensure_local_model(MODEL)
    tok = load_tokenizer(path)
    ensure_chat_template(tok)
    if kind == "hf":
        return HFEngine(tok, {MODEL: (load_model(path).eval(), None)}, batch_size=batch)
    return LlamaCppEngine({MODEL: cached_gguf(path, kind)}, tok, batch_size=batch)


def child(kind: str, batch: int, n: int, tokens: int) -> None:
    from distill.generation.engine import Prompt, Sampling

    t0 = time.perf_counter()
    eng = engine(kind, batch)
    load_s = time.perf_counter() - t0
    chats = prompts(n)
    s = Sampling(max_new_tokens=tokens)
    eng.generate([Prompt(model=MODEL, messages=chats[0], sampling=Sampling(max_new_tokens=4))])  # warm-up
    t0 = time.perf_counter()
    gens = eng.generate([Prompt(model=MODEL, messages=c, sampling=s) for c in chats])
    wall = time.perf_counter() - t0
    made = sum(g.new_tokens for g in gens)
    emit({"kind": kind, "batch": batch, "load_s": load_s, "gen_s": wall, "tokens": made, "tok_s": made / wall,
          "texts": [g.text for g in gens], "load": os.getloadavg()})


def prepare() -> dict[str, float]:
    """The GGUFs converted before any timing (seconds each, 0 when cached)."""
    from distill.generation.llamacpp import cached_gguf
    from distill.models import ensure_local_model

    path, took = ensure_local_model(MODEL), {}
    for quant in ("f16", "q8_0"):
        t0 = time.perf_counter()
        took[quant] = {"file": str(cached_gguf(path, quant)), "s": time.perf_counter() - t0}
    return took


def agreement(reference: list[str], texts: list[str], first: int) -> dict[str, float]:
    from distill.models import ensure_local_model, load_tokenizer

    tok = load_tokenizer(ensure_local_model(MODEL))
    prefix = []
    for r, t in zip(reference, texts, strict=True):
        a, b = tok.encode(r, add_special_tokens=False), tok.encode(t, add_special_tokens=False)
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        prefix.append(n)
    return {"first_n_same": sum(p >= first or r == t for p, r, t in zip(prefix, reference, texts, strict=True)),
            "identical": sum(r == t for r, t in zip(reference, texts, strict=True)),
            "median_common_prefix": median(prefix), "prompts": len(texts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 prompts x 32 tokens, 2 rounds")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8, help="rows at once in the batched variants")
    ap.add_argument("--agree", type=int, default=16, help="greedy agreement: the first N tokens")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", nargs=4, metavar=("KIND", "BATCH", "PROMPTS", "TOKENS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, batch, n, tokens = args.child
        child(kind, int(batch), int(n), int(tokens))
        return
    if args.quick:
        args.prompts, args.tokens, args.rounds = 8, 32, 2
    print(f"machine: {machine()}\n{load_line()}", flush=True)
    ggufs = prepare()
    variants = [(k, b) for k in ("hf", "f16", "q8_0") for b in (1, args.batch)]
    runs: dict[str, list[dict]] = {f"{k}/{b}": [] for k, b in variants}
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for k, b in order:
            out = run_child([str(Path(__file__).resolve()), "--child", k, str(b), str(args.prompts), str(args.tokens)],
                            timeout=1800)
            runs[f"{k}/{b}"].append(out)
            print(f"round {r + 1} {k} batch {b}: {out.get('tok_s', out.get('error'))} tok/s "
                  f"(load {out.get('load', ['?'])[0]})", flush=True)
    summary = {}
    for key, rs in runs.items():
        ok = [x for x in rs if "tok_s" in x]
        summary[key] = {"tok_s": median([x["tok_s"] for x in ok]), "tokens": median([x["tokens"] for x in ok]),
                        "load_s": median([x["load_s"] for x in ok]), "rounds": len(ok)}
    rows = []
    for k, b in variants:
        s, ref = summary[f"{k}/{b}"], runs[f"hf/{b}"]
        hf_ok = [x for x in ref if "texts" in x]
        mine = [x for x in runs[f"{k}/{b}"] if "texts" in x]
        agree = agreement(hf_ok[0]["texts"], mine[0]["texts"], args.agree) if k != "hf" and hf_ok and mine else None
        s["agreement_vs_hf"] = agree
        s["x_hf"] = s["tok_s"] / summary[f"hf/{b}"]["tok_s"]
        rows.append([k if k == "hf" else f"llamacpp {k}", "single" if b == 1 else f"batch {b}", s["tok_s"], s["x_hf"],
                     None if agree is None else f"{agree['first_n_same']}/{agree['prompts']}",
                     s["load_s"]])
    print(table(rows, ["engine", "mode", "tokens/s", "x hf", f"first {args.agree} same", "load s"]))
    print(load_line())
    write_json(args.out or ROOT / "bench" / "results" / f"llamacpp_engine{'_quick' if args.quick else ''}.json",
               {"machine": machine(), "args": vars(args), "ggufs": ggufs, "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
