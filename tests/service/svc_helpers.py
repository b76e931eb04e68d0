"""Helpers and fixtures of the run-service tests (imported by conftest.py): databases (SQLite file, a fresh Postgres database per test),
brokers (embedded SQL broker, the machine's Redis under a private key prefix, a private
redis-server), the API in-process or served by uvicorn on a free port, and real worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("DISTILL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DISTILL_TEST_REDIS", "redis://127.0.0.1:6379/0")

# A run that trains and evaluates the 2-layer test model in seconds.
TINY = {"model": "tiny-random", "max_samples": 8, "epochs": 1, "batch_size": 2, "gradient_accumulation": 1,
        "eval_samples": 2, "general_prompts": False, "max_new_tokens": 8, "max_seq_length": 256}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def make_settings(home: Path, database_url: str | None = None, broker_url: str | None = None,
                  **kw: Any) -> Settings:
    base = Settings.from_env({"DISTILL_HOME": str(home)})
    return base.with_(database_url=database_url or base.database_url, broker_url=broker_url or base.broker_url,
                      heartbeat_s=0.5, worker_lost_s=5.0, maintenance_s=0.5, **kw)


def settings_env(settings: Settings) -> dict[str, str]:
    service_vars = ("DISTILL_HOME", "DISTILL_API_TOKEN", "DISTILL_BROKER_PREFIX", "DISTILL_HEARTBEAT_S",
                    "DISTILL_WORKER_LOST_S", "DISTILL_MAINTENANCE_S", "DISTILL_TRUST_REMOTE_CODE", "CELERY_BROKER_URL",
                    "REDIS_URL", "DATABASE_URL", "PORT")
    env = {k: v for k, v in os.environ.items() if k not in service_vars}  # DISTILL_MODEL_CACHE etc. stay
    env.update({
        "DISTILL_HOME": str(settings.home), "DATABASE_URL": settings.database_url,
        "CELERY_BROKER_URL": settings.broker_url, "DISTILL_BROKER_PREFIX": settings.broker_prefix,
        "DISTILL_HEARTBEAT_S": str(settings.heartbeat_s), "DISTILL_WORKER_LOST_S": str(settings.worker_lost_s),
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
    })
    return env


# --- databases ----------------------------------------------------------------------------------

def _pg_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001
        return f"PostgreSQL not reachable at {PG_ADMIN} ({str(e).splitlines()[0]})"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for one test, dropped afterwards."""
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"distill_svc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from backend.db import dispose_all

    dispose_all()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- brokers ------------------------------------------------------------------------------------

@pytest.fixture
def shared_redis() -> Iterator[tuple[str, str]]:
    """(url, key prefix) on the machine's Redis; the prefix keeps parallel test sessions apart."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({e})")
    prefix = f"distill-test-{uuid.uuid4().hex[:8]}:"
    yield REDIS_URL, prefix
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        client.delete(key)
    # kombu keeps its binding sets without the prefix for fanout exchanges; nothing else to clean.
    client.close()


class RedisServer:
    """A private redis-server without persistence: a restart empties it, like a crashed broker."""

    def __init__(self, workdir: Path):
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.binary
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        def up() -> bool:
            try:
                return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
            except Exception:  # noqa: BLE001
                return False

        wait_for(up, 15, what="redis-server")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server binary not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


# --- the API ------------------------------------------------------------------------------------

_template: dict[str, Path] = {}


def migrate(settings: Settings) -> None:
    """``upgrade head``; for SQLite files a copy of a database migrated once per session (the
    migrations themselves are tested in test_service_migrations.py)."""
    from backend.db import upgrade

    url = settings.database_url
    if not url.startswith("sqlite:///"):
        upgrade(url)
        return
    target = Path(url.removeprefix("sqlite:///"))
    if "db" not in _template:
        import tempfile

        tpl = Path(tempfile.mkdtemp(prefix="distill-tpl-")) / "template.db"
        upgrade(f"sqlite:///{tpl}")
        _template["db"] = tpl
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(_template["db"], target)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def settings(home: Path) -> Settings:
    s = make_settings(home)
    migrate(s)
    return s


@pytest.fixture
def client(settings: Settings) -> Iterator[Any]:
    """The API in-process (SQLite + embedded broker, no worker)."""
    from fastapi.testclient import TestClient

    from backend.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


class LiveServer:
    """The API served by uvicorn on a free port, in a thread of the test process."""

    def __init__(self, settings: Settings, port: int | None = None):
        import uvicorn

        from backend.app import create_app

        self.settings = settings
        self.app = create_app(settings)
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        wait_for(lambda: self.server.started, 30, what="uvicorn")
        return self

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.app.state.services.serving.close()


# --- workers ------------------------------------------------------------------------------------

class WorkerProcess:
    def __init__(self, settings: Settings, log_path: Path, name: str | None = None, args: tuple[str, ...] = ()):
        self.settings, self.log_path, self.args = settings, log_path, args
        self.name = name or f"test-{uuid.uuid4().hex[:6]}@localhost"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> "WorkerProcess":
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "distill.cli", "worker", "--name", self.name, "--loglevel", "INFO", *self.args],
            cwd=ROOT, env=settings_env(self.settings), stdout=self._log, stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            return f"distill worker {self.name} ready" in self.log_path.read_text(errors="replace")

        wait_for(ready, timeout, interval=0.2, what="the worker to be ready")
        return self

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def _start(settings: Settings, name: str | None = None) -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", name)
        started.append(w)
        return w.start()

    yield _start
    for w in started:
        w.stop()


# --- helpers for runs ---------------------------------------------------------------------------

def wait_status(http: Any, run_id: int, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
                timeout: float = 180, worker: WorkerProcess | None = None) -> dict:
    def done() -> dict | None:
        run = http.get(f"/runs/{run_id}").json()
        return run if run["status"] in statuses else None

    try:
        return wait_for(done, timeout, interval=0.2, what=f"run {run_id} to reach {statuses}")
    except AssertionError:
        if worker is not None:
            print(worker.tail(), file=sys.stderr)
        raise


def read_sse(response: httpx.Response) -> Iterator[tuple[str, str | None, str]]:
    """(event, id, data) of a text/event-stream response."""
    event, eid, data = "message", None, []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event, eid, "\n".join(data)
            event, eid, data = "message", None, []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                event = value
            elif key == "id":
                eid = value
            elif key == "data":
                data.append(value)


@pytest.fixture(scope="session")
def tiny_adapter_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on tiny-random (random init, saved once per session)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from distill.models import ensure_local_model, load_model

    out = tmp_path_factory.mktemp("adapter") / "tiny-adapter"
    torch.manual_seed(0)
    model = get_peft_model(load_model(ensure_local_model("tiny-random")),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM",
                                      init_lora_weights=False))
    model.save_pretrained(out)
    return out


def install_adapter(home: Path, source: Path, name: str = "adapters/tiny") -> Path:
    dest = home / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest)
    return dest


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]
