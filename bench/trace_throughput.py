"""Trace generation throughput: samples per second against a teacher that answers after a fixed delay (not a test).

    .venv/bin/python bench/trace_throughput.py --quick    # 1, 8, 64 in flight; last line trace_speedup_64_vs_1=X.XX
    .venv/bin/python bench/trace_throughput.py            # 1, 8, 64, 256 in flight, 2 rounds alternated

The teacher is the tests' stand-in (``tests/standin_teacher.py``) in a process of its own, answering every request
after ``--delay`` seconds (0.5) with a right trace in ``reasoning_content``. Each level runs the real path in a
child process: ``--mode generate`` through the ``openai`` engine (the official SDK), every sample graded with
math-verify, judged, appended to ``generations.jsonl``, then ``dataset.jsonl`` and the report. Reported per level:
samples/s while the teacher is asked (from the first request to the last problem written; the stage's fixed start —
loading the student's tokenizer, starting the grading process — is left out and shown as the stage's wall time), its
speed-up over one request at a time, the most requests the teacher saw at once, and the client's own CPU per sample
(the whole child process and its grading child: start-up, parsing, grading, writing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, emit, load_line, machine, median, run_child, table, write_json  # noqa: E402

NUM_GENERATIONS = 4


def problems(n: int) -> dict[str, str]:
    return {f"Problem {i}: what is {i} plus {i + 7}?": str(2 * i + 7) for i in range(n)}


def serve(delay: float, n: int) -> None:
    """The teacher: prints its URL, answers until killed."""
    sys.path.insert(0, str(ROOT / "tests"))
    from standin_teacher import StandinTeacher

    with StandinTeacher(answers=problems(n), delay_s=delay) as teacher:
        print(teacher.url, flush=True)
        while True:
            time.sleep(3600)


def client(url: str, concurrency: int, n_problems: int, folder: str) -> None:
    from distill.pipeline import run_pipeline
    from distill.resolve import resolve_config

    data = Path(folder) / "problems.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in problems(n_problems).items()))
    config = resolve_config({"mode": "generate", "dataset": str(data), "teacher_model": "standin-r1",
                             "teacher_url": url, "model": "tiny-random", "num_generations": NUM_GENERATIONS,
                             "teacher_max_tokens": 64, "engine_concurrency": concurrency,
                             "output_dir": str(Path(folder) / "run")})
    cpu0 = _cpu()
    result = run_pipeline(config)
    report = result.data_report
    samples = report["funnel"]["samples"]
    emit({"concurrency": concurrency, "samples": samples, "ask_s": report["ask_s"], "generate_s": report["time_s"],
          "kept": report["funnel"]["kept"], "client_cpu_ms_per_sample": 1000 * (_cpu() - cpu0) / samples})


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def teacher_stats(url: str, reset: bool = False) -> dict:
    """The teacher's own count: the most requests it held at once, and its process's CPU seconds."""
    request = urllib.request.Request(url.removesuffix("/v1") + ("/stats/reset" if reset else "/stats"),
                                     method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=5) as r:
        return json.loads(r.read())


def measure(url: str, concurrency: int, n_problems: int) -> dict:
    before = teacher_stats(url, reset=True)
    with tempfile.TemporaryDirectory() as folder:
        out = run_child([__file__, "--client", url, "--concurrency", str(concurrency), "--problems",
                         str(n_problems), "--folder", folder], timeout=900)
    after = teacher_stats(url)
    out["teacher_max_in_flight"] = after["max_in_flight"]
    if "error" not in out:
        out["samples_per_s"] = out["samples"] / out["ask_s"]
        out["teacher_cpu_ms_per_sample"] = 1000 * (after["cpu_s"] - before["cpu_s"]) / out["samples"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1, 8 and 64 in flight, one round")
    ap.add_argument("--delay", type=float, default=0.5, help="seconds the teacher takes per request")
    ap.add_argument("--levels", default=None, help="requests in flight, comma-separated (default 1,8,64,256)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds, levels alternated (default 2, --quick 1)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--client", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--problems", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.delay, args.problems)
        return 0
    if args.client:
        client(args.client, args.concurrency, args.problems, args.folder)
        return 0
    levels = [int(x) for x in (args.levels or ("1,8,64" if args.quick else "1,8,64,256")).split(",")]
    rounds = args.rounds or (1 if args.quick else 2)
    # Enough samples that each level runs a few seconds: 8 delays' worth at each level (4 at one in flight).
    sizes = {c: max(4, 8 * c // NUM_GENERATIONS) if c > 1 else 4 for c in levels}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--delay", str(args.delay), "--problems",
                               str(max(sizes.values()))], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        url = (server.stdout.readline() if server.stdout else "").strip()
        print(f"teacher at {url}, delay {args.delay} s; {load_line()}", flush=True)
        results: dict[int, list[dict]] = {c: [] for c in levels}
        for r in range(rounds):
            for c in (levels if r % 2 == 0 else levels[::-1]):
                out = measure(url, c, sizes[c])
                results[c].append(out)
                print(f"round {r + 1}, {c} in flight: {out}", flush=True)
    finally:
        server.kill()
    rate = {c: median([o.get("samples_per_s") for o in outs]) for c, outs in results.items()}
    rows = [[c, sizes[c] * NUM_GENERATIONS, rate[c], rate[c] / rate[levels[0]],
             max((o.get("teacher_max_in_flight") or 0) for o in results[c]),
             median([o.get("generate_s") for o in results[c]]),
             median([o.get("client_cpu_ms_per_sample") for o in results[c]]),
             median([o.get("teacher_cpu_ms_per_sample") for o in results[c]])] for c in levels]
    print(table(rows, ["in flight", "samples", "samples/s (median)", "× one at a time", "teacher saw at once",
                       "stage wall s", "client CPU ms/sample", "teacher CPU ms/sample"]))
    name = "trace_throughput_quick.json" if args.quick else "trace_throughput.json"
    write_json(ROOT / "bench" / "results" / name, {"machine": machine(), "delay_s": args.delay, "levels": levels,
                                                  "rounds": rounds, "results": results, "samples_per_s": rate})
    if 64 in rate and 1 in rate:
        print(f"trace_speedup_64_vs_1={rate[64] / rate[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
