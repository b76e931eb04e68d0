"""Engines, sessions and migrations.

SQLite (the default) runs in WAL mode with a busy timeout so that the API and the worker
processes read and write the same file concurrently. Postgres uses a pre-pinged pool so that a
database restart costs one failed request at most.
"""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[tuple[str, str], Engine] = {}
_lock = threading.Lock()

def _json_dumps(obj: object) -> str:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (run configs, summaries, evaluations) decode several times faster with orjson.
_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str, role: str = "api") -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **_JSON)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    size = 10 if role == "api" else 2
    return create_engine(url, pool_pre_ping=True, pool_size=size, max_overflow=20 if role == "api" else 2,
                         pool_recycle=1800, **_JSON)


def get_engine(url: str, role: str = "api") -> Engine:
    """One engine per (url, role) and process."""
    key = (url, role)
    with _lock:
        if key not in _engines:
            _engines[key] = make_engine(url, role)
        return _engines[key]


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# --- migrations -----------------------------------------------------------------------------

def alembic_config(url: str):
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)
