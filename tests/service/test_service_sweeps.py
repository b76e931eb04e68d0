"""Sweeps through the API: points validated before anything is queued (422 naming each bad one), a dry run that
says how many runs, then a real sweep on a real Celery worker — at most max_parallel runs at once, the table and
the verdict, cancel (no further point queued), resume (finished points not run again)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from svc_helpers import LiveServer, WorkerProcess, make_settings, migrate, wait_for

TINY = {"model": "tiny-random", "max_samples": 8, "epochs": 1, "batch_size": 2, "gradient_accumulation": 1,
        "eval_samples": 3, "general_prompts": False, "max_new_tokens": 8, "max_seq_length": 128}


def test_dry_run_lists_the_runs_and_merges_points_that_are_the_same_run(client):
    r = client.post("/api/v1/sweeps", json={"base": {**TINY, "use_kl_regularization": False},
                                            "grid": {"learning_rate": [1e-3, 2e-3], "kl_coef": [0.1, 0.5]},
                                            "dry_run": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_runs"] == 2
    assert [(p["name"], p["merged"]) for p in body["points"]] == [
        ("learning_rate=0.001,kl_coef=0.1", ["learning_rate=0.001,kl_coef=0.5"]),
        ("learning_rate=0.002,kl_coef=0.1", ["learning_rate=0.002,kl_coef=0.5"])]
    assert client.get("/api/v1/sweeps").json()["items"] == []  # nothing was stored or queued
    assert client.get("/api/v1/runs").json()["total"] == 0


@pytest.mark.parametrize("body, messages", [
    ({"grid": {"lr": [1e-3]}}, ["axis 'lr': not a run configuration field"]),
    ({"grid": {}}, ["the sweep has no axis: give at least one field with values (or seeds)"]),
    ({"base": TINY, "grid": {"epochs": [1, -1]}}, ["point epochs=-1: --epochs: Input should be greater than 0"]),
    ({"base": TINY, "grid": {"lora_r": list(range(1, 5))}, "max_points": 3},
     ["the sweep has 4 points, more than max_points=3"]),
    ({"base": TINY, "grid": {"dataset": ["missing.jsonl"]}},
     ["point dataset=missing.jsonl: --dataset: file or folder not found: missing.jsonl"]),
])
def test_bad_sweeps_are_refused_before_anything_is_queued(client, body, messages):
    r = client.post("/api/v1/sweeps", json=body)
    assert r.status_code == 422, r.text
    assert [d["msg"] for d in r.json()["detail"]] == messages
    assert client.get("/api/v1/runs").json()["total"] == 0


def test_an_unknown_sweep_is_404(client):
    assert client.get("/api/v1/sweeps/7").status_code == 404
    assert client.post("/api/v1/sweeps/7/cancel").status_code == 404


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, WorkerProcess]]:
    root = tmp_path_factory.mktemp("sweeps")
    settings = make_settings(root / "home")
    settings.home.mkdir()
    migrate(settings)
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        worker = WorkerProcess(settings, root / "worker.log")
        worker.start()
        try:
            yield http, worker
        finally:
            worker.stop()


def _sweep(http: httpx.Client, sweep_id: int) -> dict:
    return http.get(f"/sweeps/{sweep_id}").json()


def _runs(http: httpx.Client, sweep_id: int) -> list[dict]:
    return [r for r in http.get("/runs", params={"limit": 100}).json()["items"] if r.get("sweep_id") == sweep_id]


@pytest.mark.slow
def test_a_sweep_runs_its_points_one_at_a_time_and_ends_with_a_verdict(stack):
    http, _ = stack
    r = http.post("/sweeps", json={"base": TINY, "grid": {"learning_rate": [1e-3, 3e-3]}, "max_parallel": 1,
                                   "name": "lr"})
    assert r.status_code == 202, r.text
    sweep_id = r.json()["id"]
    assert [r["name"] for r in _runs(http, sweep_id)] == ["lr: learning_rate=0.001"]  # max_parallel 1
    seen_active = []

    def finished() -> dict | None:
        runs = _runs(http, sweep_id)
        seen_active.append(sum(r["status"] in ("queued", "running") for r in runs))
        s = _sweep(http, sweep_id)
        return s if s["status"] == "finished" else None

    sweep = wait_for(finished, 240, interval=0.5, what="the sweep to finish")
    assert max(seen_active) == 1
    rows = sweep["summary"]["points"]
    assert [(row["name"], row["status"]) for row in rows] == [("learning_rate=0.001", "done"),
                                                              ("learning_rate=0.003", "done")]
    assert all(0 <= row["objective"] <= 1 and row["objective_ci"][0] <= row["objective"] <= row["objective_ci"][1]
               and row["run_id"] for row in rows)
    verdict = sweep["summary"]["verdict"]
    assert verdict["n_problems_compared"] == TINY["eval_samples"] and verdict["best"] in ("learning_rate=0.001",
                                                                                           "learning_rate=0.003")
    assert verdict["winner"] is None  # 3 problems cannot separate two points
    assert sweep["summary"]["diff"] == {"learning_rate": {"learning_rate=0.001": 0.001, "learning_rate=0.003": 0.003}}
    # The base model answered the held-out problems once; the second point read its answers.
    lines = http.get(f"/runs/{rows[1]['run_id']}/logs", params={"limit": 1000}).json()["lines"]
    assert any(f"{TINY['eval_samples']} of the base model's answers read" in x["message"] for x in lines)
    assert rows[0]["base"] == rows[1]["base"]


@pytest.mark.slow
def test_cancel_stops_the_sweep_and_resume_runs_only_what_did_not_finish(stack):
    http, _ = stack
    sweep_id = http.post("/sweeps", json={"base": TINY, "grid": {"lora_r": [2, 4, 8]}, "max_parallel": 1,
                                          "name": "rank"}).json()["id"]
    first = _runs(http, sweep_id)[0]
    wait_for(lambda: http.get(f"/runs/{first['id']}").json()["status"] == "succeeded", 180, interval=0.3,
             what="the first point")
    second = wait_for(lambda: next((r for r in _runs(http, sweep_id) if r["id"] != first["id"]), None), 30,
                      what="the second point to be queued")
    assert http.post(f"/sweeps/{sweep_id}/cancel").json()["status"] == "cancelled"
    wait_for(lambda: http.get(f"/runs/{second['id']}").json()["status"] == "cancelled", 120, what="its cancel")
    assert http.post(f"/sweeps/{sweep_id}/cancel").status_code == 409
    kept = Path(first["output_dir"]) / "evaluation_results.json"
    mtime = kept.stat().st_mtime_ns
    assert len(_runs(http, sweep_id)) == 2  # the third point was never queued

    assert http.post(f"/sweeps/{sweep_id}/resume").json()["status"] == "running"
    sweep = wait_for(lambda: (s := _sweep(http, sweep_id))["status"] == "finished" and s, 300, interval=0.5,
                     what="the resumed sweep")
    assert [row["status"] for row in sweep["summary"]["points"]] == ["done", "done", "done"]
    assert sweep["summary"]["points"][0]["run_id"] == first["id"] and kept.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_fails_its_point_the_sweep_goes_on_and_resume_finishes_it(stack):
    http, worker = stack
    sweep_id = http.post("/sweeps", json={"base": {**TINY, "max_samples": 40, "epochs": 3},
                                          "grid": {"lora_r": [2, 4]}, "max_parallel": 1, "name": "killed"}).json()["id"]
    first = _runs(http, sweep_id)[0]
    wait_for(lambda: http.get(f"/runs/{first['id']}").json()["status"] == "running", 120, interval=0.2,
             what="the first point to start")
    worker.kill()
    # The API marks the run failed once its heartbeats stop, and the sweep goes on with its next point.
    wait_for(lambda: http.get(f"/runs/{first['id']}").json()["status"] == "failed", 60, what="the point to fail")
    assert "worker lost" in http.get(f"/runs/{first['id']}").json()["error"]
    second = wait_for(lambda: next((r for r in _runs(http, sweep_id) if r["id"] != first["id"]), None), 30,
                      what="the next point to be queued")
    worker.start()
    sweep = wait_for(lambda: (s := _sweep(http, sweep_id))["status"] == "finished" and s, 300, interval=0.5,
                     what="the sweep to finish")
    assert [row["status"] for row in sweep["summary"]["points"]] == ["failed", "done"]
    kept = Path(http.get(f"/runs/{second['id']}").json()["output_dir"]) / "evaluation_results.json"
    mtime = kept.stat().st_mtime_ns
    assert http.post(f"/sweeps/{sweep_id}/resume").json()["status"] == "running"
    sweep = wait_for(lambda: (s := _sweep(http, sweep_id))["status"] == "finished" and s, 300, interval=0.5,
                     what="the resumed sweep")
    assert [row["status"] for row in sweep["summary"]["points"]] == ["done", "done"]
    assert kept.stat().st_mtime_ns == mtime  # the point that finished was not run again
