"""Helpers of the dashboard's browser tests: constants and the real studio (``distill serve``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("DISTILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
# Fast settings for the tiny test model: a run takes well under a minute on 2 CPU cores.
TINY = {"model": "tiny-random", "max_samples": 8, "epochs": 1, "batch_size": 2, "gradient_accumulation": 1,
        "eval_samples": 2, "general_prompts": False, "max_new_tokens": 16, "max_seq_length": 256}
# Not in the local cache, and the Hub is unreachable (HF_HUB_OFFLINE=1): such a run fails at load.
MISSING_MODEL = "someorg/not-cached-model"
RUN_TIMEOUT_S = 240  # a tiny run takes ~40 s on 2 busy cores; leave room
API_TOKEN = "s3cret-token"  # the second server's DISTILL_API_TOKEN
SERVER_STOP_S = 90  # the server waits up to 60 s for its worker

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


# --------------------------------------------------------------------------- driving the page

def open_ui(pg: Any, url: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("#ds-tabs", state="visible", timeout=30_000)
    pg.wait_for_function("() => document.querySelector('#ds-health')?.innerText.includes('API')", timeout=20_000)


def wait_text(pg: Any, selector: str, text: str, timeout: float = 20_000) -> None:
    """Until ``selector``'s text contains ``text`` (the element may not be rendered yet, or re-rendered)."""
    pg.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, text],
                         timeout=timeout)


def tab(pg: Any, name: str) -> None:
    pg.get_by_role("tab", name=name, exact=True).click()


def fill_number(pg: Any, field: str, value: Any) -> None:
    pg.locator(f"#field-{field} input, #field-{field} textarea").first.fill(str(value))


def ask_both_models(pg: Any, prompt: str, max_new_tokens: int, wait: bool = True) -> None:
    """The Playground: ``prompt`` to both models with ``max_new_tokens``; until both answers end (if ``wait``)."""
    pg.locator("#pg-prompt textarea").fill(prompt)
    max_new = pg.locator("#pg-max-new input[type=number]")
    max_new.fill(str(max_new_tokens))
    max_new.press("Enter")
    pg.click("#pg-send")
    if wait:
        pg.wait_for_function("() => ['#pg-base-timing', '#pg-sft-timing'].every("
                             "s => document.querySelector(s).innerText.includes('tokens in'))", timeout=180_000)


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
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer in {timeout}s ({last})")


def server_env(home: Path, port: int, token: str | None = None) -> dict[str, str]:
    """This environment minus what would point the server elsewhere; its own DISTILL_HOME and port."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DISTILL_API_URL", "DISTILL_API_TOKEN")}
    env.update(DISTILL_HOME=str(home), PORT=str(port), PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1")
    if token:
        env["DISTILL_API_TOKEN"] = token
    return env


class Studio:
    """``distill serve [--with-worker]`` (what ``make run`` starts) on ``port`` with ``home`` as DISTILL_HOME."""

    def __init__(self, home: Path, port: int, *, with_worker: bool = True, token: str | None = None,
                 log_name: str = "server.log") -> None:
        self.home, self.port, self.with_worker, self.token = home, port, with_worker, token
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = ARTIFACTS / log_name
        self.proc: subprocess.Popen | None = None
        self._log: IO[str] | None = None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.api = httpx.Client(base_url=f"{self.url}/api/v1", timeout=30, headers=headers)
        self.shared: dict[str, Any] = {}  # runs made by one test and used by the next

    # --- the process -----------------------------------------------------------------------------
    def start(self, wait_worker: bool = True) -> None:
        """Start the server and wait for the API and the dashboard (and, if asked, the worker)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.log_path, "w")  # noqa: SIM115
        cmd = [sys.executable, "-m", "distill.cli", "serve", "--port", str(self.port)]
        if self.with_worker:
            cmd.append("--with-worker")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env(self.home, self.port, self.token),
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"{self.url}/api/v1/health", 120, lambda r: r.status_code == 200, self.proc)
        wait_http(f"{self.url}/ui/", 60, lambda r: r.status_code == 200, self.proc)
        if self.with_worker and wait_worker:
            try:  # runs stay queued until the worker is up; waiting here keeps the tests' timings honest
                wait_http(f"{self.url}/api/v1/health", 90, lambda r: bool(r.json().get("workers")), self.proc)
            except TimeoutError:
                pass

    def terminate(self) -> None:
        """SIGTERM, as Ctrl-C or ``docker stop`` would: the server stops its worker, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def close(self) -> None:
        self.stop()
        self.api.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- the API ---------------------------------------------------------------------------------
    def create_run(self, **config: Any) -> dict[str, Any]:
        r = self.api.post("/runs", json=config)
        assert r.status_code == 201, r.text
        return r.json()

    def finished_run(self) -> int:
        """A succeeded tiny run, made once and shared by the tests that only read one."""
        if "run_id" not in self.shared:
            run = self.create_run(name="tiny for ui", **TINY)
            self.wait_status(run["id"], {"succeeded"}, RUN_TIMEOUT_S)
            self.shared["run_id"] = run["id"]
        return self.shared["run_id"]

    def wait_status(self, run_id: int, statuses: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.api.get(f"/runs/{run_id}").json()
            if run["status"] in statuses:
                return run
            time.sleep(0.25)
        raise TimeoutError(f"run {run_id} still {run.get('status')} after {timeout}s: {run.get('error')}")
