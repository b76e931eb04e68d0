"""Helpers of the dashboard's browser tests: constants, the real and the fake studio."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("DISTILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
# Fast settings for the tiny test model: a run takes well under a minute on 2 CPU cores.
TINY = {"model": "tiny-random", "max_samples": 8, "epochs": 1, "batch_size": 2, "gradient_accumulation": 1,
        "eval_samples": 2, "general_prompts": False, "max_new_tokens": 16, "max_seq_length": 256}

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, ok: Callable[[httpx.Response], bool] = lambda r: r.status_code < 500,
              proc: subprocess.Popen | None = None) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            r = httpx.get(url, timeout=5)
            if ok(r):
                return r
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout}s ({last})")



class Studio:
    def __init__(self, url: str, home: Path, proc: subprocess.Popen) -> None:
        self.url, self.home, self.proc = url, home, proc
        self.api = httpx.Client(base_url=f"{url}/api/v1", timeout=30)
        self.shared: dict[str, Any] = {}  # runs made by one test and used by the next

    def create_run(self, **config: Any) -> dict[str, Any]:
        r = self.api.post("/runs", json=config)
        assert r.status_code == 201, r.text
        return r.json()

    def wait_status(self, run_id: int, statuses: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.api.get(f"/runs/{run_id}").json()
            if run["status"] in statuses:
                return run
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} still {run.get('status')} after {timeout}s: {run.get('error')}")



class ThreadServer:
    """A uvicorn server in a thread that can be stopped and started again on the same port."""

    def __init__(self, app: Any, port: int) -> None:
        self.app, self.port = app, port
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_http(f"http://127.0.0.1:{self.port}/api/v1/health", 20)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self.thread is not None:
                self.thread.join(timeout=10)
        self.server = None


class FakeStudio:
    def __init__(self, api: ThreadServer, ui_url: str, token: str | None) -> None:
        self.api_server, self.url, self.token = api, ui_url, token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{api.port}/api/v1", timeout=10, headers=headers)

    def create_run(self, **config: Any) -> dict[str, Any]:
        r = self.api.post("/runs", json=config)
        assert r.status_code == 201, r.text
        return r.json()


