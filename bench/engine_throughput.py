"""Engine throughput: the same prompts through each way the project generates (not a test).

    .venv/bin/python bench/engine_throughput.py --quick    # 16 prompts x 64 tokens
    .venv/bin/python bench/engine_throughput.py            # 64 prompts x 256 tokens

  (a) in-process   distill.generation.hf.HFEngine.generate on all prompts at once (batched, grouped by length)
  (b) /v1, C clients  `distill serve` in a child process (the base model preloaded at start), C clients
                   streaming chat completions at once from a shared queue of the prompts (the OpenAI API,
                   httpx + SSE); C = 1 is clients taking turns
  (c) vLLM         with --vllm_url URL: the same clients against a vLLM server (on a GPU machine)

Per way: generated tokens per second of wall time, time to first token (p50/p95) and latency per request
(p50/p95). Greedy, the embedded model's base weights (model id ``smollm2-135m``), GSM8K questions
(builtin:reasoning when GSM8K is absent). The server is started before timing; `distill serve` loads
the base at start, so the first request's time to first token is printed apart too.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import GSM8K, ROOT, load_line, machine, median, table, write_json  # noqa: E402

MODEL = "smollm2-135m"


def questions(n: int) -> list[str]:
    from distill.data.sources import load_examples

    source = str(GSM8K) if GSM8K.is_file() else "builtin:reasoning"
    return [e.prompt for e in load_examples(source, n)[0]]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def in_process(prompts: list[str], max_tokens: int, batch_size: int) -> dict:
    from distill.data.prepare import ensure_chat_template
    from distill.generation.engine import Prompt, Sampling
    from distill.generation.hf import HFEngine
    from distill.models import ensure_local_model, load_model, load_tokenizer

    path = ensure_local_model(MODEL)
    tok = load_tokenizer(path)
    ensure_chat_template(tok)
    engine = HFEngine(tok, {MODEL: (load_model(path).eval(), None)}, batch_size=batch_size)
    first: dict[int, float] = {}
    s = Sampling(max_new_tokens=max_tokens)
    t0 = time.perf_counter()
    gens = engine.generate([Prompt(model=MODEL, messages=[{"role": "user", "content": q}], sampling=s) for q in prompts],
                           on_delta=lambda i, d: first.setdefault(i, time.perf_counter() - t0))
    wall = time.perf_counter() - t0
    done = [wall] * len(gens)  # a static batch returns its rows together
    return {"tokens": sum(g.new_tokens for g in gens), "wall_s": wall, "ttft": list(first.values()), "latency": done}


class Server:
    def __init__(self, home: Path, port: int):
        env = {**os.environ, "DISTILL_HOME": str(home), "PORT": str(port), "HF_HUB_OFFLINE": "1",
               "DISTILL_PRELOAD_MODEL": MODEL, "PYTHONUNBUFFERED": "1"}
        self.log = (home / "server.log").open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", "--port", str(port)], env=env,
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"

    def wait_loaded(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                serving = httpx.get(f"{self.url}/api/v1/health", timeout=2).json().get("serving", {})
                if MODEL in serving:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"the server did not load {MODEL} in {timeout} s")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def one_request(url: str, question: str, max_tokens: int, model: str) -> tuple[float, float, int]:
    """(time to first token, latency, completion tokens) of one streamed chat completion."""
    body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, tokens = None, 0
    with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=900) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if ttft is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                ttft = time.perf_counter() - t0
            tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
    return ttft if ttft is not None else time.perf_counter() - t0, time.perf_counter() - t0, tokens


def clients(url: str, prompts: list[str], n_clients: int, max_tokens: int, model: str = MODEL) -> dict:
    todo: queue.Queue[str] = queue.Queue()
    for q in prompts:
        todo.put(q)
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def client() -> None:
        while True:
            try:
                q = todo.get_nowait()
            except queue.Empty:
                return
            r = one_request(url, q, max_tokens, model)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"tokens": sum(r[2] for r in results), "wall_s": wall, "ttft": [r[0] for r in results],
            "latency": [r[1] for r in results]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--quick", action="store_true", help="16 prompts x 64 tokens")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max_new_tokens", type=int, default=256)
    ap.add_argument("--clients", default="1,8,32", help="concurrent /v1 clients to try, comma-separated")
    ap.add_argument("--turns_prompts", type=int, default=16,
                    help="prompts for the 1-client run (one at a time is slow; its tokens/s does not depend on how many)")
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--vllm_url", help="a vLLM server's /v1 URL serving the same model as --vllm_model")
    ap.add_argument("--vllm_model", default=MODEL)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.quick:
        a.prompts, a.max_new_tokens, a.turns_prompts = 16, 64, 8
    a.out = a.out or str(ROOT / "bench" / "results" / f"engine_throughput{'_quick' if a.quick else ''}.json")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    prompts = questions(a.prompts)
    print(f"{len(prompts)} prompts x {a.max_new_tokens} new tokens, greedy; {load_line()}", flush=True)
    results: dict[str, dict] = {"in-process (a)": in_process(prompts, a.max_new_tokens, a.batch_size)}
    print(f"  in-process: {results['in-process (a)']['tokens']} tokens in {results['in-process (a)']['wall_s']:.1f} s",
          flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = Server(Path(tmp), port)
        try:
            server.wait_loaded()
            v1 = f"{server.url}/v1"
            first = one_request(v1, prompts[0], a.max_new_tokens, MODEL)
            results["first request after start"] = {"tokens": first[2], "wall_s": first[1], "ttft": [first[0]],
                                                    "latency": [first[1]]}
            for c in [int(x) for x in a.clients.split(",")]:
                subset = prompts[:a.turns_prompts] if c == 1 else prompts
                results[f"/v1, {c} client{'s' if c > 1 else ''} (b)"] = clients(v1, subset, c, a.max_new_tokens)
                r = results[f"/v1, {c} client{'s' if c > 1 else ''} (b)"]
                print(f"  /v1 x{c}: {r['tokens']} tokens in {r['wall_s']:.1f} s", flush=True)
        finally:
            server.close()
    if a.vllm_url:
        for c in [int(x) for x in a.clients.split(",")]:
            results[f"vLLM, {c} clients (c)"] = clients(a.vllm_url, prompts, c, a.max_new_tokens, a.vllm_model)

    rows = [[name, r["tokens"] / r["wall_s"], median(r["ttft"]), pct(r["ttft"], 0.95), median(r["latency"]),
             pct(r["latency"], 0.95), len(r["latency"])] for name, r in results.items()]
    header = ["way", "tokens/s", "TTFT p50 s", "TTFT p95 s", "latency p50 s", "latency p95 s", "requests"]
    print()
    print(table(rows, header))
    one = next((r for name, r in results.items() if name.startswith("/v1, 1 ")), None)
    eight = next((r for name, r in results.items() if name.startswith("/v1, 8 ")), None)
    if one and eight:
        ratio = (eight["tokens"] / eight["wall_s"]) / (one["tokens"] / one["wall_s"])
        print(f"v1_8_clients_vs_taking_turns={ratio:.2f}")
    print(f"first_request_ttft_s={results['first request after start']['ttft'][0]:.3f}")
    write_json(a.out, {"args": vars(a), "machine": machine(), "results": results,
                       "table": {"header": header, "rows": rows}})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
