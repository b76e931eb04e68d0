"""Start-up: from process start to the first training step, cold and warm (not a test).

    .venv/bin/python bench/startup.py                 # 2 rounds of (warm, cold)
    .venv/bin/python bench/startup.py --rounds 3 --no_cold

Each measurement is a fresh Python process running what `run_distillation_pipeline.py --mode train`
runs (``distill.pipeline.run_pipeline``) on the default model (smollm2-135m) and 8 builtin rows,
batch 2, no validation split. Times are from the parent's spawn of the process:
  imports      the pipeline's modules imported (what the CLI imports before it parses flags)
  load         stage "data" begins: model located (cold: the embedded GGUF converted) and tokenizer loaded
  train        stage "train" begins: rows tokenized
  first step   the trainer's on_train_begin: model loaded, LoRA wrapped, TRL trainer built (the
               first step starts right after)
  step done    the first optimizer step logged
cold: an empty model cache (DISTILL_MODEL_CACHE pointed at a new folder), so the embedded GGUF is
de-quantized and converted; warm: the converted model in the cache. The OS file cache is warm in
both (the wheel and the libraries were read before).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    ROOT,
    emit,
    load_line,
    machine,
    median,
    run_child,
    table,
    write_json,
)

PHASES = ["imports", "load", "train", "first step", "step done"]


class _Stop(Exception):
    pass


def child(spawned: float) -> None:
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks.setdefault(name, time.time() - spawned)

    import distill.training as training
    from distill.config import build_config
    from distill.pipeline import PipelineHooks, run_pipeline

    mark("imports")
    begin = training.MetricsCallback.on_train_begin

    def on_train_begin(self, *a, **k):
        mark("first step")
        return begin(self, *a, **k)

    training.MetricsCallback.on_train_begin = on_train_begin

    def on_stage(name: str) -> None:
        if name == "data":
            mark("load")
        elif name == "train":
            mark("train")

    def on_metrics(point: dict) -> None:
        if "loss" in point:
            mark("step done")
            raise _Stop()

    out = tempfile.mkdtemp(prefix="bench_startup_")
    config = build_config({"mode": "train", "max_samples": 8, "epochs": 1, "batch_size": 2, "gradient_accumulation": 1,
                           "val_ratio": 0.0, "output_dir": out})
    try:
        run_pipeline(config, PipelineHooks(on_stage=on_stage, on_metrics=on_metrics))
    except _Stop:
        pass
    shutil.rmtree(out, ignore_errors=True)
    emit({"marks": marks})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no_cold", action="store_true", help="warm runs only")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "startup.json"))
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child)
        return 0
    kinds = ["warm"] + ([] if a.no_cold else ["cold"])
    print(f"{a.rounds} rounds of {', '.join(kinds)}; {load_line()}", flush=True)
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    loads = [os.getloadavg()[0]]
    for r in range(a.rounds):
        for kind in kinds:
            env = {}
            cache = None
            if kind == "cold":
                cache = tempfile.mkdtemp(prefix="bench_cold_cache_")
                env["DISTILL_MODEL_CACHE"] = cache
            res = run_child([__file__, "--child", repr(time.time())], env=env)
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
            runs[kind].append(res)
            loads.append(os.getloadavg()[0])
            msg = res.get("error") or ", ".join(f"{k} {v:.1f} s" for k, v in res["marks"].items())
            print(f"  round {r + 1} {kind}: {msg}", flush=True)
    rows = []
    for kind in kinds:
        ok = [x["marks"] for x in runs[kind] if "marks" in x]
        rows.append([kind] + [median([m.get(p) for m in ok]) for p in PHASES])
    header = ["start"] + [f"{p} (s)" for p in PHASES]
    print()
    print(table(rows, header))
    print(f"load average (1 min) during the run: min {min(loads):.2f}, median {median(loads):.2f}, max {max(loads):.2f}")
    write_json(a.out, {"machine": machine(), "loads": loads, "runs": runs, "table": {"header": header, "rows": rows}})
    print(f"wrote {a.out}")
    warm = rows[0][PHASES.index("first step") + 1]
    print(f"warm_start_to_first_step_s={warm:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
