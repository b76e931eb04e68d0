"""``distill serve``: apply the migrations, serve the API (and the dashboard plugin) on $PORT.

    distill serve                  # API on 127.0.0.1:$PORT (default 8000)
    distill serve --with-worker    # plus one worker subprocess, stopped with the server (make run)

Everything lives under $DISTILL_HOME (default ./outputs): the SQLite database, the embedded
broker, the run folders and uploaded datasets, unless DATABASE_URL / REDIS_URL say otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from backend.config import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
WORKER_STOP_S = 60.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distill serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=None, help="Bind address (default $DISTILL_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="Port (default $PORT or 8000)")
    p.add_argument("--with-worker", action="store_true", help="Also start one worker; it stops with the server")
    p.add_argument("--gpu", default=None, help="With --with-worker: the worker's GPU id(s)")
    p.add_argument("--no-migrate", action="store_true", help="Do not apply migrations on start")
    return p


def open_bind_warning(token: str | None, host: str) -> str | None:
    if token or host in LOCAL_HOSTS:
        return None
    return (f"WARNING: the API is open (no DISTILL_API_TOKEN) and bound to {host}, reachable beyond this "
            "machine. Set DISTILL_API_TOKEN to require a bearer token.")


def _die_with_parent() -> None:
    """In the worker child: get SIGTERM if the server dies, even by SIGKILL (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_worker(gpu: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "distill.cli", "worker"] + (["--gpu", gpu] if gpu else [])
    # Own process group: a terminal Ctrl-C reaches the server only, which stops the worker once.
    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509


def stop_worker(proc: subprocess.Popen, timeout_s: float = WORKER_STOP_S) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # warm shutdown: the running pipeline stops at its next step
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print("distill: the worker did not stop in time; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "filelock", "alembic", "celery", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = server_settings(args)
    if not args.no_migrate:
        from backend.db import upgrade

        upgrade(settings.database_url)
    warning = open_bind_warning(settings.api_token, settings.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)

    from backend.app import create_app, mount_plugins

    app = create_app(settings)
    mounted = mount_plugins(app)
    worker = start_worker(args.gpu) if args.with_worker else None

    def _terminate(signum, frame):  # noqa: ANN001, ARG001
        raise SystemExit(128 + signum)

    # uvicorn captures SIGINT/SIGTERM while it serves and re-raises them afterwards: this handler
    # then turns SIGTERM into SystemExit so that the worker is stopped below.
    signal.signal(signal.SIGTERM, _terminate)
    announce(settings, mounted, worker)
    return serve(app, settings, worker)


def server_settings(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's host and port; the embedded model preloaded unless
    ``DISTILL_PRELOAD_MODEL`` says otherwise; ``DISTILL_HOME`` created and exported (the worker child and the core
    agree on it)."""
    from backend.config import Settings

    env_settings = Settings.from_env()
    settings = env_settings.with_(host=args.host or env_settings.host, port=args.port or env_settings.port)
    if "DISTILL_PRELOAD_MODEL" not in os.environ:  # the first prompt should not wait for the weights
        from distill.config import EMBEDDED_MODEL

        settings = settings.with_(preload_model=EMBEDDED_MODEL)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ["DISTILL_HOME"] = str(settings.home)
    return settings


def announce(settings: Settings, mounted: list[str], worker: subprocess.Popen | None) -> None:
    host = settings.host
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    url = f"http://{shown_host}:{settings.port}"
    print(f"distill: serving on {url}  (API docs: {url}/docs"
          f"{''.join(f'; dashboard: {url}{m}' if m.startswith('/') else f'; {m}' for m in mounted)})", flush=True)
    print(f"distill: DISTILL_HOME={settings.home}  database={settings.database_url.split('@')[-1]}  "
          f"broker={settings.broker_url.split('@')[-1]}"
          f"{'  worker pid ' + str(worker.pid) if worker else ''}", flush=True)


def serve(app: FastAPI, settings: Settings, worker: subprocess.Popen | None) -> int:
    """uvicorn until Ctrl-C or SIGTERM, then the worker stopped. Those signals are how this server is meant to
    stop: a clean exit (0), so that `make run` does not end in "Error 143"; anything else keeps its code."""
    import uvicorn

    rc = 0
    try:
        uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                      lifespan="on", timeout_graceful_shutdown=5)).run()
    except KeyboardInterrupt:
        rc = 0
    except SystemExit as e:
        rc = 0 if e.code in (128 + signal.SIGTERM, 128 + signal.SIGINT) else int(e.code or 0)
    finally:
        if worker is not None:
            print("distill: stopping the worker", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            stop_worker(worker)
            print(f"distill: worker stopped in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
