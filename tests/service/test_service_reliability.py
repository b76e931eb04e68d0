"""Reliability, each with real worker processes on the real services:

- SIGKILL of the worker mid-training: the run is marked ``failed`` "worker lost" by the heartbeat
  reaper well within 60 s (the chosen behaviour: the embedded SQL broker cannot redeliver, and a
  Redis redelivery only comes after its visibility timeout), then ``POST /resume`` on a new worker
  continues from the last checkpoint to ``succeeded``. (Postgres + Redis)
- Redis restarted mid-run (a private redis-server without persistence, so the restart also loses
  the queued message): the running run finishes, the queued one is sent again, nothing written is
  lost. (SQLite + Redis)
- 50 runs submitted at once: all recorded, run one at a time, in order, none lost or duplicated.
  (Postgres + Redis)
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from svc_helpers import (
    TINY,
    LiveServer,
    RedisServer,
    install_adapter,
    make_settings,
    migrate,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.slow


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _lines(http: httpx.Client, rid: int) -> list[dict]:
    return http.get(f"/runs/{rid}/logs", params={"limit": 10000}).json()["lines"]


def _points(http: httpx.Client, rid: int) -> list[dict]:
    return http.get(f"/runs/{rid}/metrics").json()["points"]


def test_sigkill_mid_training_marks_worker_lost_then_resumes_from_checkpoint(
        tmp_path: Path, pg_url: str, shared_redis: tuple[str, str], start_worker) -> None:
    url, prefix = shared_redis
    settings = make_settings(tmp_path / "home", database_url=pg_url, broker_url=url, broker_prefix=prefix)
    migrate(settings)
    # 8 rows, batch 2, no validation split: 4 steps per epoch, a checkpoint at the end of each epoch.
    config = dict(TINY, mode="train", max_samples=8, epochs=2, val_ratio=0.0)
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        first = start_worker(settings)
        rid = http.post("/runs", json=config).json()["id"]
        wait_for(lambda: any(p["step"] >= 5 for p in _points(http, rid)), 240, interval=0.1,
                 what="training past the first checkpoint (step 4)")
        before = _lines(http, rid)
        first.kill()
        killed_at = time.monotonic()

        lost = wait_status(http, rid, ("failed", "succeeded", "cancelled"), timeout=60)
        lost_after = time.monotonic() - killed_at
        assert lost["status"] == "failed" and lost["error"].startswith("worker lost"), lost
        assert lost_after < 60
        lines = _lines(http, rid)
        assert lines[: len(before)] == before  # nothing written before the kill is lost
        assert lines[-1]["message"].startswith("worker lost") and lines[-1]["level"] == "ERROR"

        start_worker(settings)
        r = http.post(f"/runs/{rid}/resume")
        assert r.status_code == 202, r.text
        done = wait_status(http, rid, timeout=300)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2 and done["config"]["resume"] is True
        text = "\n".join(l["message"] for l in _lines(http, rid))
        assert "Resuming from" in text and "checkpoint-4" in text
        steps = [p["step"] for p in _points(http, rid) if "loss" in p]
        assert steps == list(range(1, 9)), steps  # points after the checkpoint were superseded, none doubled
        seqs = [l["seq"] for l in _lines(http, rid)]
        assert seqs == list(range(1, len(seqs) + 1))
    print(f"\nworker lost detected {lost_after:.1f} s after SIGKILL")


def test_redis_restart_mid_run_loses_nothing(tmp_path: Path, private_redis: RedisServer, start_worker,
                                             tiny_adapter_source: Path) -> None:
    settings = make_settings(tmp_path / "home", broker_url=private_redis.url)
    migrate(settings)
    adapter = install_adapter(settings.home, tiny_adapter_source)
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        start_worker(settings)
        running = http.post("/runs", json=dict(TINY, mode="train", max_samples=16, val_ratio=0.0)).json()["id"]
        queued = http.post("/runs", json={"model": "tiny-random", "mode": "evaluate", "sft_model_path": str(adapter),
                                          "eval_samples": 1, "general_prompts": False, "max_new_tokens": 2}).json()["id"]
        wait_for(lambda: len([p for p in _points(http, running) if "loss" in p]) >= 3, 240, interval=0.2,
                 what="a few training steps")
        lines_before, points_before = _lines(http, running), _points(http, running)
        assert http.get(f"/runs/{queued}").json()["status"] == "queued"

        private_redis.restart()  # no persistence: the queued run's message is gone with it

        done = wait_status(http, running, timeout=300)
        assert done["status"] == "succeeded", done
        other = wait_status(http, queued, timeout=180)
        assert other["status"] == "succeeded" and other["attempts"] == 1, other
        lines, points = _lines(http, running), _points(http, running)
        assert lines[: len(lines_before)] == lines_before and points[: len(points_before)] == points_before
        assert [l["seq"] for l in lines] == list(range(1, len(lines) + 1))
        assert [p["step"] for p in points if "loss" in p] == list(range(1, 9))
        # the worker reconnected: a run submitted after the restart runs too
        after = http.post("/runs", json={"model": "tiny-random", "mode": "evaluate", "sft_model_path": str(adapter),
                                         "eval_samples": 1, "general_prompts": False, "max_new_tokens": 2}).json()["id"]
        assert wait_status(http, after, timeout=120)["status"] == "succeeded"
        assert http.get("/health").json()["broker"] == "ok"


def test_fifty_runs_at_once_run_one_at_a_time_in_order(tmp_path: Path, pg_url: str, shared_redis: tuple[str, str],
                                                       start_worker, tiny_adapter_source: Path) -> None:
    url, prefix = shared_redis
    settings = make_settings(tmp_path / "home", database_url=pg_url, broker_url=url, broker_prefix=prefix)
    migrate(settings)
    adapter = install_adapter(settings.home, tiny_adapter_source)
    # The cheapest honest run: evaluate mode, one held-out prompt, one new token (the whole
    # pipeline: load, data, evaluate with base and SFT, results and report written).
    config = {"model": "tiny-random", "mode": "evaluate", "sft_model_path": str(adapter), "eval_samples": 1,
              "general_prompts": False, "max_new_tokens": 1}
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60,
                                                   limits=httpx.Limits(max_connections=60)) as http:
        start_worker(settings)

        def submit(i: int) -> dict:
            r = http.post("/runs", json=dict(config, name=f"batch-{i}"))
            assert r.status_code == 201, r.text
            return r.json()

        with ThreadPoolExecutor(50) as pool:
            created = list(pool.map(submit, range(50)))
        ids = sorted(r["id"] for r in created)
        assert len(set(ids)) == 50 and http.get("/runs").json()["total"] == 50
        assert sorted(r["name"] for r in created) == sorted(f"batch-{i}" for i in range(50))

        def all_done() -> list[dict] | None:
            runs = http.get("/runs", params={"limit": 200}).json()["items"]
            return runs if all(r["status"] in ("succeeded", "failed", "cancelled") for r in runs) else None

        runs = sorted(wait_for(all_done, 480, interval=1.0, what="all 50 runs"), key=lambda r: r["id"])
        assert [r["id"] for r in runs] == ids
        assert all(r["status"] == "succeeded" for r in runs), [(r["id"], r["status"], r["error"]) for r in runs]
        assert all(r["attempts"] == 1 for r in runs)  # none ran twice
        starts = [_ts(r["started_at"]) for r in runs]
        assert starts == sorted(starts)  # in submission order
        for prev, nxt in zip(runs, runs[1:]):  # one at a time
            assert _ts(prev["finished_at"]) <= _ts(nxt["started_at"]), (prev["id"], nxt["id"])
        for r in runs[:: 7]:
            text = [l["message"] for l in _lines(http, r["id"])]
            assert sum(m.startswith(f"Run {r['id']} (attempt") for m in text) == 1
            assert http.get(f"/runs/{r['id']}/evaluation").status_code == 200
        span = (_ts(runs[-1]["finished_at"]) - _ts(runs[0]["started_at"])).total_seconds()
    print(f"\n50 runs processed in {span:.0f} s")
