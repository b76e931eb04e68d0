"""Migrations up and down on SQLite and Postgres, and the models agree with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from backend.db import alembic_config, downgrade, upgrade
from backend.tables import Base

TABLES = {"runs", "log_lines", "metric_points", "evaluations", "datasets", "workers", "service_meta",
          "benchmark_results"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _no_drift(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def _roundtrip(url: str) -> None:
    upgrade(url)
    assert TABLES <= _tables(url)
    assert _no_drift(url) == [], "models and migrations disagree"
    upgrade(url)  # idempotent: a second start changes nothing
    downgrade(url, "base")
    assert _tables(url) & TABLES == set()
    upgrade(url)
    assert TABLES <= _tables(url)


def test_migrations_up_down_sqlite(tmp_path: Path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'nested' / 'distill.db'}")


def test_migrations_up_down_postgres(pg_url: str) -> None:
    _roundtrip(pg_url)


def test_migrations_have_one_head() -> None:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


def test_alembic_ini_at_root_points_to_migrations() -> None:
    from alembic.config import Config

    root = Path(__file__).resolve().parents[2]
    cfg = Config(str(root / "alembic.ini"))
    assert cfg.get_main_option("script_location") == "migrations"
    assert (root / "migrations" / "env.py").is_file()


@pytest.mark.parametrize("name", ["runs", "log_lines"])
def test_api_data_survives_a_second_upgrade(tmp_path: Path, name: str) -> None:
    """Starting the server again (upgrade head on an up-to-date database) keeps what is stored."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO runs (id, name, status, progress, cancel_requested, config, created_at, attempts) "
                             "VALUES (1, 'x', 'queued', 0, 0, '{}', '2026-01-01 00:00:00', 0)")
        conn.exec_driver_sql("INSERT INTO log_lines (run_id, seq, ts, level, message) "
                             "VALUES (1, 1, '2026-01-01 00:00:00', 'INFO', 'hello')")
    upgrade(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar() == 1
    engine.dispose()


def test_concurrent_starts_migrate_once_on_postgres(pg_url: str) -> None:
    """An API and workers starting together all run `upgrade head`: an advisory lock serializes them."""
    import subprocess
    import sys

    code = f"from backend.db import upgrade; upgrade({pg_url!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                              stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    assert TABLES <= _tables(pg_url)
