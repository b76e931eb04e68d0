"""Typed settings of the run service, read from the environment.

Every process (API, worker, migrations, tests) builds its ``Settings`` from the same variables,
so an API and its workers agree on the database, the broker and ``DISTILL_HOME``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    broker_url: str
    broker_prefix: str = ""  # kombu global_keyprefix for Redis (several deployments on one Redis)
    api_token: str | None = None
    max_upload_mb: float = 200.0
    trust_remote_code: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    heartbeat_s: float = 2.0  # worker -> database heartbeat of a running run
    worker_lost_s: float = 30.0  # a running run without heartbeat for this long is failed "worker lost"
    maintenance_s: float = 2.0  # API background loop: reap lost runs, re-dispatch unsent ones
    max_adapters: int = 4  # serving: LoRA adapters kept attached (LRU)
    max_batch_rows: int = 32  # serving: rows of concurrent requests generated together
    max_pending_rows: int = 64  # serving: rows waiting beyond this are refused with 429
    preload_model: str | None = None  # serving: base model loaded at start (distill serve: the embedded one)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("sqla+")

    @property
    def redis_broker(self) -> bool:
        return self.broker_url.startswith(("redis://", "rediss://", "redis+socket://"))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def with_(self, **kw) -> "Settings":
        return replace(self, **kw)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("DISTILL_HOME") or "outputs").expanduser().resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{home / 'distill.db'}"
        if database_url.startswith("postgres://"):
            database_url = "postgresql+psycopg://" + database_url.removeprefix("postgres://")
        elif database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
        broker_url = (
            env.get("CELERY_BROKER_URL") or env.get("REDIS_URL") or f"sqla+sqlite:///{home / 'broker.sqlite'}"
        )
        port_raw = env.get("PORT") or "8000"
        try:
            port = int(port_raw)
        except ValueError:
            raise ValueError(f"PORT must be an integer, got {port_raw!r}") from None
        return cls(
            home=home,
            database_url=database_url,
            broker_url=broker_url,
            broker_prefix=env.get("DISTILL_BROKER_PREFIX", ""),
            api_token=env.get("DISTILL_API_TOKEN") or None,
            max_upload_mb=_float(env, "DISTILL_MAX_UPLOAD_MB", 200.0),
            trust_remote_code=_bool(env.get("DISTILL_TRUST_REMOTE_CODE")),
            host=env.get("DISTILL_HOST") or "127.0.0.1",
            port=port,
            heartbeat_s=_float(env, "DISTILL_HEARTBEAT_S", 2.0),
            worker_lost_s=_float(env, "DISTILL_WORKER_LOST_S", 30.0),
            maintenance_s=_float(env, "DISTILL_MAINTENANCE_S", 2.0),
            max_adapters=int(_float(env, "DISTILL_MAX_ADAPTERS", 4)),
            max_batch_rows=int(_float(env, "DISTILL_MAX_BATCH_ROWS", 32)),
            max_pending_rows=int(_float(env, "DISTILL_MAX_PENDING_ROWS", 64)),
            preload_model=env.get("DISTILL_PRELOAD_MODEL") or None,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
