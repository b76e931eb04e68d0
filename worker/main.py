"""``distill worker``: one Celery worker process, one task at a time.

    distill worker                 # CPU, or every visible GPU, queues gpu+default
    distill worker --gpu 1         # CUDA_VISIBLE_DEVICES=1 for this worker (one worker per GPU)
    distill worker --gpu 0,1,2,3   # one worker with 4 GPUs: a run with num_gpus 2..4 trains on them (DDP)

The worker registers itself in the database (``/api/v1/health`` lists it with its GPUs) and sends
a heartbeat every 10 s. SIGTERM / Ctrl-C: the running pipeline stops at its next step (saving a
checkpoint), the run is marked failed with a resumable message, and the worker exits.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from typing import Any

WORKER_BEAT_S = 10.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distill worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", help="GPU id(s) for this worker: sets CUDA_VISIBLE_DEVICES (e.g. 0, or 0,1)")
    p.add_argument("--queues", default="gpu,default", help="Queues to consume (default: gpu,default)")
    p.add_argument("--pool", default="solo", choices=["solo", "prefork", "threads"],
                   help="Celery pool (solo: the task runs in the worker process; fine for one task at a time)")
    p.add_argument("--concurrency", type=int, default=1, help="Tasks at once (keep 1 per GPU)")
    p.add_argument("--name", help="Worker name (default distill-gpuN@host or distill@host)")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--no-migrate", action="store_true", help="Do not apply the database migrations on start")
    p.add_argument("--engine", choices=["hf", "vllm"], default="hf",
                   help="vllm: start a vLLM server on this worker's GPUs serving --engine-base and every finished "
                        "LoRA run on it; the API routes the Playground and new benchmark jobs there")
    p.add_argument("--engine-base", default=None, help="With --engine vllm: the base model to serve (default: the embedded one)")
    p.add_argument("--engine-port", type=int, default=8100, help="With --engine vllm: the vLLM server's port")
    p.add_argument("--engine-url", default=None,
                   help="Advertise an OpenAI-compatible server that already serves the runs' models (base model id "
                        "and run-N), e.g. another distill service's /v1; the API routes generation there")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = [g for g in (visible or "").split(",") if g.strip() and g.strip() != "-1"]
    name = args.name or (f"distill-gpu{args.gpu.replace(',', '_')}@{socket.gethostname()}" if args.gpu is not None
                         else f"distill@{socket.gethostname()}")

    if not args.no_migrate:  # a no-op when the API has applied them already
        from backend.config import Settings
        from backend.db import upgrade

        upgrade(Settings.from_env().database_url)

    from worker import tasks
    from worker.celery_app import app

    store = tasks.get_store()
    info: dict = {"visible": gpus}
    vllm_server = start_engine(args, store, info)
    connect_signals(store, name, info, vllm_server, f"queues {args.queues}, GPUs {gpus or 'none'}")
    argv_celery = ["worker", f"--hostname={name}", f"--queues={args.queues}", f"--pool={args.pool}",
                   f"--concurrency={args.concurrency}", f"--loglevel={args.loglevel}", "--without-gossip",
                   "--without-mingle", "--prefetch-multiplier=1"]
    if app.conf.worker_enable_remote_control is False:
        argv_celery.append("--without-heartbeat")
    app.worker_main(argv_celery)
    return 0


def start_engine(args: argparse.Namespace, store: Any, info: dict) -> Any:
    """The engine this worker advertises (``info["engine"]``): its own vLLM server (started now, returned), or a
    server that already runs (``--engine_url``); None when no vLLM server was started."""
    if args.engine == "vllm":
        from distill.config import EMBEDDED_MODEL
        from worker.serving import VLLMServer

        vllm_server = VLLMServer(store, args.engine_base or EMBEDDED_MODEL, args.engine_port)
        vllm_server.start()
        info["engine"] = {"url": vllm_server.url, "kind": "vllm", "base": vllm_server.base}
        return vllm_server
    if args.engine_url:
        info["engine"] = {"url": args.engine_url.rstrip("/"), "kind": "openai"}
    return None


def connect_signals(store: Any, name: str, info: dict, vllm_server: Any, described: str) -> None:
    """The worker's life in the database: online and beating once Celery is ready, offline at shutdown (the
    vLLM server stopped with it); a warm shutdown asks the running pipeline to stop."""
    from celery import signals

    from distill.errors import first_line
    from worker import tasks

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(WORKER_BEAT_S):
            try:
                store.worker_seen(name, info)
            except Exception as e:  # noqa: BLE001
                print(f"distill worker: heartbeat failed ({first_line(e)})", file=sys.stderr)

    @signals.worker_ready.connect(weak=False)
    def _ready(**_: object) -> None:
        store.worker_started(name, info)
        threading.Thread(target=beat, name="distill-worker-beat", daemon=True).start()
        engine = info.get("engine")
        print(f"distill worker {name} ready ({described}{', engine ' + engine['url'] if engine else ''})", flush=True)

    @signals.worker_shutting_down.connect(weak=False)
    def _shutting_down(**_: object) -> None:
        tasks.SHUTDOWN.set()

    @signals.worker_shutdown.connect(weak=False)
    def _shutdown(**_: object) -> None:
        stop.set()
        if vllm_server is not None:
            vllm_server.close()
        try:
            store.worker_seen(name, info, state="offline")
        except Exception:  # noqa: BLE001
            pass


if __name__ == "__main__":
    raise SystemExit(main())
