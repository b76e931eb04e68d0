"""Shared by the benchmarks in bench/: machine facts, the matmul peak, child processes, JSON out.

Benchmarks run their variants as child processes, one after another and alternating round by
round, so that each variant starts clean (its own thread settings, its own peak memory) and a
change in the machine's load hits every variant alike. Ratios are of medians over rounds.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
RESULT_PREFIX = "BENCH_RESULT "


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    try:
        import torch

        info.update(torch=torch.__version__, cpu_capability=torch.backends.cpu.get_cpu_capability(),
                    threads=torch.get_num_threads())
        cpu = getattr(torch, "cpu", None)
        info["avx512_bf16"] = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
        info["amx"] = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def matmul_peak(dtype: str, n: int = 2048, seconds: float = 1.5, threads: int | None = None) -> float:
    """Best GFLOP/s of n x n matmuls over ~`seconds` (the best of short bursts: on a shared machine
    the best burst is the nearest to what the cores can do)."""
    import torch

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        dt = getattr(torch, dtype)
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        a @ b
        best = 0.0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
        return best
    finally:
        torch.set_num_threads(old)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def emit(result: dict[str, Any]) -> None:
    """A child's result: one line on stdout that the parent picks out."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(args: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Run `python <args>` and return the dict it emitted (or an error record)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *args], env=full_env, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(RESULT_PREFIX):
            out = json.loads(line[len(RESULT_PREFIX):])
            out["wall_s"] = time.perf_counter() - t0
            return out
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
    return {"error": f"exit {proc.returncode}", "tail": tail}


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=str))


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[("" if c is None else (f"{c:.3g}" if isinstance(c, float) else str(c))) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
