"""Trace generation as a run of the service (Postgres, Redis, real worker processes), against a stand-in teacher:
POST /runs with mode generate → the worker asks the teacher → /runs/{id}/traces and GET /datasets show the result
→ a second run trains on it; a cancel and a killed worker both keep every finished problem, and resume asks only
the others; a teacher that is not there fails the run in one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from standin_teacher import MODEL, StandinTeacher
from svc_helpers import TINY, LiveServer, make_settings, migrate, wait_for, wait_status

pytestmark = pytest.mark.slow

PROBLEMS = {f"Sam has {i} apples and buys {i + 1} more. How many apples now?": str(2 * i + 1) for i in range(1, 13)}
SCRIPT = ["right", "wrong", "right_long", "loop"]


def _stack(tmp_path: Path, pg_url: str, shared_redis: tuple[str, str]):
    url, prefix = shared_redis
    settings = make_settings(tmp_path / "home", database_url=pg_url, broker_url=url, broker_prefix=prefix)
    migrate(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "problems.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS.items()))
    return settings


def _generate(t: StandinTeacher, **kw) -> dict:
    return {"mode": "generate", "dataset": "problems.jsonl", "teacher_model": MODEL, "teacher_url": t.url,
            "model": "tiny-random", "num_generations": 4, "teacher_max_tokens": 40, "engine_concurrency": 1, **kw}


def _rows(run: dict) -> list[dict]:
    return [json.loads(line) for line in (Path(run["output_dir"]) / "generations.jsonl").read_text().splitlines()]


def test_a_generate_run_builds_a_dataset_that_the_next_run_trains_on(tmp_path, pg_url, shared_redis,
                                                                     start_worker) -> None:
    settings = _stack(tmp_path, pg_url, shared_redis)
    teacher = StandinTeacher(answers=PROBLEMS, default=SCRIPT)
    with teacher, LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        start_worker(settings)
        rid = http.post("/runs", json=_generate(teacher, name="traces")).json()["id"]
        run = wait_status(http, rid, timeout=240)
        assert run["status"] == "succeeded", run
        assert run["progress"] == 1.0 and run["config"]["mode"] == "generate"
        log = "\n".join(line["message"] for line in http.get(f"/runs/{rid}/logs", params={"limit": 5000}).json()["lines"])
        assert "Stage: generate" in log and "generate: 12/12 problems" in log

        page = http.get(f"/runs/{rid}/traces").json()
        f = page["report"]["funnel"]
        assert (f["asked"], f["samples"], f["correct"], f["kept"]) == (12, 48, 24, 24)
        assert page["report"]["rejected"]["looping"] == 12 and page["report"]["rejected"]["wrong"] == 12
        assert page["total"] == 12 and all(item["verdicts"] == ["kept", "wrong", "kept", "looping"]
                                           for item in page["items"])
        assert http.get(f"/runs/{rid}/traces", params={"verdict": "too_long"}).json()["total"] == 0
        assert http.get(f"/runs/{rid}/traces", params={"q": "Sam has 3 apples"}).json()["total"] == 1
        assert http.get(f"/runs/{rid}/traces", params={"verdict": "bogus"}).status_code == 422

        datasets = [d for d in http.get("/datasets").json()["items"] if d["kind"] == "generated"]
        assert len(datasets) == 1 and datasets[0]["rows"] == 24 and datasets[0]["run_id"] == rid
        assert datasets[0]["ref"] == str(Path(run["output_dir"]) / "dataset.jsonl")
        preview = http.get(f"/datasets/{datasets[0]['id']}/preview", params={"n": 2}).json()
        assert len(preview["rows"]) == 2 and preview["rows"][0]["completion"].startswith("<think>\n")

        train = http.post("/runs", json=dict(TINY, mode="train", dataset=datasets[0]["ref"])).json()["id"]
        trained = wait_status(http, train, timeout=240)
        assert trained["status"] == "succeeded", trained
        report = json.loads((Path(trained["output_dir"]) / "data_report.json").read_text())
        assert report["rows_kept"] == 8  # TINY's max_samples of the 24 rows


def test_cancel_and_a_killed_worker_keep_finished_problems_and_resume_asks_the_rest(tmp_path, pg_url, shared_redis,
                                                                                     start_worker) -> None:
    settings = _stack(tmp_path, pg_url, shared_redis)
    teacher = StandinTeacher(answers=PROBLEMS, default=SCRIPT, delay_s=0.3)
    with teacher, LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        worker = start_worker(settings)
        rid = http.post("/runs", json=_generate(teacher, engine_concurrency=1)).json()["id"]

        def answered(n: int) -> dict | None:
            run = http.get(f"/runs/{rid}").json()
            return run if run["progress"] >= n / 12 else None

        wait_for(lambda: answered(2), 120, interval=0.1, what="two problems answered")
        assert http.post(f"/runs/{rid}/cancel").status_code == 202
        cancelled = wait_status(http, rid, timeout=60)
        assert cancelled["status"] == "cancelled", cancelled
        kept = {r["problem"] for r in _rows(cancelled) if r["status"] == "answered"}
        assert 2 <= len(kept) < 12 and all(teacher.asked[q] == 4 for q in kept)

        assert http.post(f"/runs/{rid}/resume").status_code == 202
        wait_for(lambda: answered(len(kept) + 2), 120, interval=0.1, what="two more problems answered")
        worker.kill()
        lost = wait_status(http, rid, timeout=60)
        assert lost["status"] == "failed" and lost["error"].startswith("worker lost"), lost
        survived = {r["problem"] for r in _rows(lost) if r["status"] == "answered"}
        asked_at_kill = {q: teacher.asked[q] for q in survived}  # one in flight at the cancel was asked again
        assert kept < survived

        start_worker(settings)
        assert http.post(f"/runs/{rid}/resume").status_code == 202
        done = wait_status(http, rid, timeout=240)
        assert done["status"] == "succeeded", done
    rows = _rows(done)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12 and all(r["status"] == "answered" for r in rows)
    assert all(teacher.asked[q] == asked_at_kill[q] for q in survived)  # a finished problem is never asked again
    assert all(teacher.asked[q] == 4 for q in kept)
    assert done["attempts"] == 3


def test_a_teacher_that_is_not_there_fails_the_run_in_one_line(tmp_path, pg_url, shared_redis, start_worker) -> None:
    settings = _stack(tmp_path, pg_url, shared_redis)
    absent = StandinTeacher()  # never started: its port refuses connections
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        start_worker(settings)
        rid = http.post("/runs", json=_generate(absent)).json()["id"]
        run = wait_status(http, rid, timeout=120)
        assert run["status"] == "failed"
        assert run["error"] == f"cannot reach the teacher at {absent.url} for model 'standin-r1' (connection refused)"
        assert not (Path(run["output_dir"]) / "generations.jsonl").exists()
        # Bad input never reaches a worker: 422 naming the field.
        r = http.post("/runs", json=_generate(absent, keep="shortest"))
        assert r.status_code == 422 and "keep" in r.text
        r = http.post("/runs", json=_generate(absent, teacher_model="run-999", teacher_url=None))
        assert r.status_code == 422 and "run-999 cannot teach: no such run" in r.text
