"""API latency benchmark (not a test): p50/p99 of GET /api/v1/runs and GET /api/v1/runs/{id} with
1,000 runs stored and 50 concurrent clients, on SQLite and on Postgres; and the log latency from a
worker writing a line to an SSE client receiving it.

    .venv/bin/python bench/api_latency.py                 # both databases
    .venv/bin/python bench/api_latency.py --db sqlite     # one
    .venv/bin/python bench/api_latency.py --requests 3000 --clients 50

The API runs as its own uvicorn process (as ``distill serve`` does); the clients are asyncio tasks
in this process, each sending its next request as soon as the previous one is answered (closed
loop: the figures include the queueing of 50 requests in flight, i.e. saturation), then 50 clients
each polling once a second (open loop, what 50 open dashboards do). The log writer is the worker's
own recorder (``worker.recorder.RunRecorder``: batched, flushed every 0.25 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.config import Settings  # noqa: E402
from backend.db import dispose_all, upgrade  # noqa: E402
from backend.store import Claim, Store  # noqa: E402
from backend.tables import Run, utcnow  # noqa: E402
from distill.config import RunConfig  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ERRORS: list[str] = []  # transport errors (counted and reported, not timed)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def seed_runs(settings: Settings, n: int) -> list[int]:
    store = Store(settings, role="api")
    statuses = ["succeeded"] * 6 + ["failed", "cancelled", "queued"]
    config = RunConfig(model="tiny-random").to_json()
    summary = {"base": {"n": 16, "accuracy": 0.1, "avg_quality_score": 0.2}, "sft": {"n": 16, "accuracy": 0.3},
               "deltas": {"accuracy": 0.2}}
    rng = random.Random(0)
    now = utcnow()
    with store.sessions() as s:
        rows = []
        for i in range(n):
            st = rng.choice(statuses)
            rows.append(Run(name=f"bench-{i}", status=st, config=dict(config, name=f"bench-{i}"),
                            output_dir=str(settings.home / "runs" / f"run_{i + 1}"), created_at=now - timedelta(minutes=n - i),
                            progress=1.0 if st == "succeeded" else 0.4, cancel_requested=False, attempts=1,
                            task_id=uuid.uuid4().hex, summary=summary if st == "succeeded" else None))
        s.add_all(rows)
        s.commit()
        return [r.id for r in rows]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_api(settings: Settings, port: int) -> subprocess.Popen:
    env = dict(os.environ, DISTILL_HOME=str(settings.home), DATABASE_URL=settings.database_url,
               CELERY_BROKER_URL=settings.broker_url, DISTILL_HEARTBEAT_S="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API did not start")


async def load(url_for, clients: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def one_client() -> None:
            for i in counter:
                t0 = time.perf_counter()
                try:
                    r = await client.get(url_for(i))
                except httpx.HTTPError as e:
                    ERRORS.append(f"{type(e).__name__}: {e}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return latencies, total / wall


async def paced(url_for, clients: int, period_s: float, duration_s: float) -> list[float]:
    """Open loop: each client sends one request per period (like a dashboard polling), random phase."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def one_client(k: int) -> None:
            rng = random.Random(k)
            await asyncio.sleep(rng.random() * period_s)
            end = time.perf_counter() + duration_s
            i = k
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                try:
                    r = await client.get(url_for(i))
                except httpx.HTTPError as e:
                    ERRORS.append(f"{type(e).__name__}: {e}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
                i += clients
                await asyncio.sleep(max(0.0, period_s - (time.perf_counter() - t0)))
        await asyncio.gather(*(one_client(k) for k in range(clients)))
    return latencies


def sse_latency(settings: Settings, base: str, lines: int, interval_s: float) -> list[float]:
    """Worker-side RunRecorder writes lines; an SSE client measures write -> receive (ms)."""
    store = Store(settings, role="worker")
    with store.sessions() as s:
        run = Run(name="sse", status="running", config={}, created_at=utcnow(), progress=0.0,
                  cancel_requested=False, attempts=1, task_id="sse-bench", heartbeat_at=utcnow(), started_at=utcnow())
        s.add(run)
        s.commit()
        rid = run.id
    from worker.recorder import RunRecorder

    claim = Claim(run_id=rid, task_id="sse-bench", config={}, output_dir="", attempt=1, next_log_seq=1,
                  next_metric_seq=1, worker="bench")
    recorder = RunRecorder(store, claim, epochs=1, heartbeat_s=settings.heartbeat_s)
    latencies: list[float] = []
    ready = threading.Event()

    def follow() -> None:
        with httpx.Client(timeout=120) as c, c.stream("GET", f"{base}/runs/{rid}/logs/stream") as r:
            ready.set()
            for line in r.iter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    if "message" in data:
                        sent = float(data["message"].split()[-1])
                        latencies.append((time.time() - sent) * 1000)
                        if len(latencies) >= lines:
                            return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    ready.wait(30)
    recorder.start()
    for i in range(lines):
        recorder.add_log("INFO", f"line {i} sent at {time.time():.6f}")
        time.sleep(interval_s)
    t.join(60)
    recorder.stop()
    store.finish(claim, "succeeded")
    return latencies


def bench(db: str, runs: int, clients: int, requests: int, sse_lines: int, paced_s: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"distill-bench-{db}-"))
    pg_name = None
    if db == "sqlite":
        url = f"sqlite:///{tmp / 'distill.db'}"
    else:
        import psycopg

        pg_name = f"distill_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    settings = Settings.from_env({"DISTILL_HOME": str(tmp)}).with_(database_url=url)
    upgrade(url)
    ids = seed_runs(settings, runs)
    port = 20000 + random.randrange(20000)
    proc = start_api(settings, port)
    base = f"http://127.0.0.1:{port}/api/v1"
    out: dict = {"db": db, "runs": runs, "clients": clients}
    try:
        asyncio.run(load(lambda i: f"{base}/runs/{ids[i % len(ids)]}", clients, 200))  # warm up
        for name, url_for in (("GET /runs", lambda i: f"{base}/runs"),
                              ("GET /runs/{id}", lambda i: f"{base}/runs/{ids[(i * 7919) % len(ids)]}")):
            c0 = cpu_s(proc.pid)
            lat, rps = asyncio.run(load(url_for, clients, requests))
            out[name] = {"p50_ms": round(statistics.median(lat), 1), "p99_ms": round(pct(lat, 99), 1),
                         "rps": round(rps), "n": len(lat),
                         "server_cpu_ms_per_request": round((cpu_s(proc.pid) - c0) * 1000 / len(lat), 2)}
            # 50 clients polling once a second each (open loop: what 50 dashboards do)
            latp = asyncio.run(paced(url_for, clients, 1.0, paced_s))
            out[name]["polling_1s"] = {"p50_ms": round(statistics.median(latp), 1), "p99_ms": round(pct(latp, 99), 1),
                                       "n": len(latp)}
            # one client at a time: the service time without queueing
            lat1, _ = asyncio.run(load(url_for, 1, min(300, requests)))
            out[name]["single_client_p50_ms"] = round(statistics.median(lat1), 1)
            out[name]["single_client_p99_ms"] = round(pct(lat1, 99), 1)
        sse = sse_latency(settings, base, sse_lines, 0.05)
        out["SSE log line"] = {"p50_ms": round(statistics.median(sse), 1), "p95_ms": round(pct(sse, 95), 1),
                               "max_ms": round(max(sse), 1), "n": len(sse)}
        out["transport_errors"] = len(ERRORS)
        out["server_alive"] = proc.poll() is None
        ERRORS.clear()
    finally:
        proc.terminate()
        proc.wait(10)
        dispose_all()
        if pg_name:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=2000, help="requests per endpoint")
    p.add_argument("--sse-lines", type=int, default=200)
    p.add_argument("--out", help="also write the JSON results to this file")
    p.add_argument("--paced-seconds", type=float, default=20.0, help="duration of the 1 request/s/client phase")
    args = p.parse_args()
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [bench(db, args.runs, args.clients, args.requests, args.sse_lines, args.paced_seconds) for db in dbs]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
