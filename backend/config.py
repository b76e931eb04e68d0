"""Typed settings of the run service, read from the environment (pydantic-settings).

Every process (API, worker, migrations, tests) builds its ``Settings`` from the same variables,
so an API and its workers agree on the database, the broker and ``DISTILL_HOME``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> Any:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    home: Path = Field(Path("outputs"), validation_alias=_env("DISTILL_HOME"))
    database_url: str = Field("", validation_alias=_env("DATABASE_URL"))  # "": SQLite in home
    broker_url: str = Field("", validation_alias=_env("CELERY_BROKER_URL", "REDIS_URL"))  # "": embedded, in home
    broker_prefix: str = Field("", validation_alias=_env("DISTILL_BROKER_PREFIX"))  # several deployments on one Redis
    api_token: str | None = Field(None, validation_alias=_env("DISTILL_API_TOKEN"))
    max_upload_mb: float = Field(200.0, validation_alias=_env("DISTILL_MAX_UPLOAD_MB"))
    trust_remote_code: bool = Field(False, validation_alias=_env("DISTILL_TRUST_REMOTE_CODE"))
    host: str = Field("127.0.0.1", validation_alias=_env("DISTILL_HOST"))
    port: int = Field(8000, validation_alias=_env("PORT"))
    heartbeat_s: float = Field(2.0, validation_alias=_env("DISTILL_HEARTBEAT_S"))  # worker -> database, while running
    worker_lost_s: float = Field(30.0, validation_alias=_env("DISTILL_WORKER_LOST_S"))  # then the run is "worker lost"
    maintenance_s: float = Field(2.0, validation_alias=_env("DISTILL_MAINTENANCE_S"))  # the API's background loop
    max_adapters: int = Field(4, validation_alias=_env("DISTILL_MAX_ADAPTERS"))  # serving: LoRA adapters attached (LRU)
    max_batch_rows: int = Field(32, validation_alias=_env("DISTILL_MAX_BATCH_ROWS"))  # serving: rows generated together
    max_pending_rows: int = Field(64, validation_alias=_env("DISTILL_MAX_PENDING_ROWS"))  # serving: beyond, 429
    # serving: a base model loaded at start (distill serve: the embedded one unless set, "" for none)
    preload_model: str | None = Field(None, validation_alias=_env("DISTILL_PRELOAD_MODEL"))

    @field_validator("api_token", "preload_model", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return v or None

    @model_validator(mode="after")
    def _derived(self) -> "Settings":
        home = self.home.expanduser().resolve()
        url = self.database_url or f"sqlite:///{home / 'distill.db'}"
        for scheme in ("postgres://", "postgresql://"):  # the driver SQLAlchemy should use
            if url.startswith(scheme):
                url = "postgresql+psycopg://" + url.removeprefix(scheme)
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "database_url", url)
        object.__setattr__(self, "broker_url", self.broker_url or f"sqla+sqlite:///{home / 'broker.sqlite'}")
        return self

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

    def with_(self, **kw: Any) -> "Settings":
        return self.model_copy(update=kw)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """From the process environment, or from ``env`` alone; a bad value is one line naming the variable."""
        try:
            return cls() if env is None else cls.model_validate(dict(env))
        except ValidationError as e:
            err = e.errors()[0]
            names = {n for f in cls.model_fields.values() for n in getattr(f.validation_alias, "choices", [])}
            var = next((str(x) for x in err["loc"] if str(x) in names), ".".join(map(str, err["loc"])))
            raise ValueError(f"{var}: {err['msg']} (got {err.get('input')!r})") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
