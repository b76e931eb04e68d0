"""``distill serve --with-worker`` (what ``make run`` starts): migrations applied, URL printed,
and Ctrl-C / SIGTERM stop the server and its worker, leaving no orphan and no run stuck ``running``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from svc_helpers import ROOT, TINY, free_port, make_settings, settings_env, wait_for

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _serve(tmp_path: Path) -> tuple[subprocess.Popen, str, Path]:
    settings = make_settings(tmp_path / "home")
    port = free_port()
    env = settings_env(settings) | {"PORT": str(port)}
    env.pop("DATABASE_URL")  # the defaults: SQLite and the embedded broker under DISTILL_HOME
    env.pop("CELERY_BROKER_URL")
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", "--with-worker"], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/v1"

    def worker_up() -> int | None:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            workers = httpx.get(f"{base}/health", timeout=2).json()["workers"]
        except httpx.HTTPError:
            return None
        return bool(workers)

    wait_for(worker_up, 120, interval=0.3, what="the server and its worker")
    return proc, base, log


def _worker_pid(server_pid: int) -> int:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_ctrl_c_stops_server_and_worker(tmp_path: Path) -> None:
    proc, base, log = _serve(tmp_path)
    text = log.read_text()
    assert f"http://localhost:{base.split(':')[2].split('/')[0]}" in text
    assert (tmp_path / "home" / "distill.db").is_file() and (tmp_path / "home" / "broker.sqlite").is_file()
    worker = _worker_pid(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    proc.wait(60)
    wait_for(lambda: not _alive(worker), 30, what="the worker to exit")


def test_sigterm_mid_run_stops_everything_and_leaves_the_run_resumable(tmp_path: Path) -> None:
    proc, base, log = _serve(tmp_path)
    worker = _worker_pid(proc.pid)
    run = httpx.post(f"{base}/runs", json=dict(TINY, max_samples=64, batch_size=1, val_ratio=0.0)).json()
    wait_for(lambda: httpx.get(f"{base}/runs/{run['id']}/metrics").json()["points"], 180, interval=0.3,
             what="a first training step")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(90)
    wait_for(lambda: not _alive(worker), 30, what="the worker to exit")
    stopped_in = time.monotonic() - t0

    from backend.tables import Run
    from backend.store import Store

    store = Store(make_settings(tmp_path / "home"), role="api")
    with store.sessions() as s:
        r = s.get(Run, run["id"])
        assert r.status == "failed" and r.error.startswith("interrupted"), (r.status, r.error, log.read_text()[-3000:])
    assert list((Path(run["output_dir"]) / "checkpoints").glob("checkpoint-*"))
    assert stopped_in < 60
