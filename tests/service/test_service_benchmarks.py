"""Benchmark jobs through the API with a real Celery worker whose tasks run in a thread (``--pool threads``),
so math-verify grades off the main thread, where its SIGALRM timeouts cannot work. The worker advertises
the service's own ``/v1`` as its engine, so jobs generate through the ``openai`` engine, routed as they
would be to a GPU worker's vLLM server. A run learns to answer 4; a job benchmarks it on a file suite;
results land in the database and the run folder; a cancelled job stops its requests and resumes without
losing answers; an engine that goes down fails the job in one line naming it, and resuming continues;
bad requests are refused naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from distill.evaluation.suites import MATH_TEMPLATE
from distill.reasoning import Split
from svc_helpers import LiveServer, WorkerProcess, make_settings, migrate, wait_for, wait_status

pytestmark = pytest.mark.slow

# Full fine-tuning of the 2-layer test model on one fixed answer: it learns to say 4 (measured: 100 % after 80 steps).
LEARN_FOUR = {"model": "tiny-random", "use_lora": False, "use_kl_regularization": False, "epochs": 8,
              "learning_rate": 3e-3, "batch_size": 4,
              "gradient_accumulation": 1, "val_ratio": 0, "eval_samples": 6, "general_prompts": False,
              "max_new_tokens": 40, "max_seq_length": 128}


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, WorkerProcess, Path, LiveServer]]:
    root = tmp_path_factory.mktemp("bench")
    settings = make_settings(root / "home")
    settings.home.mkdir()
    migrate(settings)
    # The questions as a math suite asks them (its template), so the suite below asks what was learnt.
    _write(settings.home / "four.jsonl", [{"question": MATH_TEMPLATE.format(problem=f"What is 2 + 2? (variant {i})"),
                                           "answer": "2 + 2 = 4\n#### 4"} for i in range(46)])
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        worker = WorkerProcess(settings, root / "worker.log", args=("--pool", "threads", "--engine-url", api.v1))
        worker.start()
        try:
            yield http, worker, settings.home, api
        finally:
            worker.stop()


@pytest.fixture(scope="module")
def trained(stack) -> dict:
    http, worker, home, api = stack
    r = http.post("/runs", json={**LEARN_FOUR, "dataset": "four.jsonl", "name": "learns four"})
    assert r.status_code == 201, r.text
    run = wait_status(http, r.json()["id"], timeout=300, worker=worker)
    assert run["status"] == "succeeded", (run["error"], worker.tail())
    return run


def assert_kept_as_reported(kept: list[str], records: list[dict]) -> None:
    """The answers kept before a stop (problems are kept as they finish, not in order) are the ones reported."""
    stored = {r["id"]: r for r in (json.loads(line) for line in kept[1:])}
    assert stored == {r["id"]: r for r in _as_stored([r for r in records if r["id"] in stored])}


def _as_stored(records: list[dict]) -> list[dict]:
    """The API's records less the display parts it adds to each answer, after checking those parts."""
    out = []
    for record in records:
        record = dict(record)
        for model in ("base", "sft"):
            answers = []
            for answer in record.get(model) or []:
                answer = dict(answer)
                parts = {k: answer.pop(k) for k in ("thinking", "answer_part", "thinking_closed")}
                assert parts == Split.of(answer["text"]).api_fields()
                answers.append(answer)
            record[model] = answers
        out.append(record)
    return out


def test_the_runs_own_evaluation_is_a_benchmark_result(stack, trained) -> None:
    http, _, _, _ = stack
    out = http.get(f"/runs/{trained['id']}/benchmarks").json()
    (heldout,) = [r for r in out["results"] if r["suite"] == "heldout"]
    assert heldout["job_id"] == trained["id"] and out["jobs"] == []
    res = heldout["result"]
    assert (res["base"]["pass@1"], res["sft"]["pass@1"]) == (0.0, 1.0)
    assert res["p_value"] == 0.03125 and res["significant"] is True  # exact McNemar, 6 discordant pairs
    assert trained["summary"]["benchmarks"]["heldout"]["sft"]["pass@1"] == 1.0


def test_benchmark_job_grades_with_math_verify_in_a_thread_pool_worker(stack, trained) -> None:
    http, worker, home, api = stack
    _write(home / "suites" / "sums.jsonl", [{"q": f"What is 2 + 2? (variant {i})", "a": "4"} for i in range(100, 105)]
           + [{"q": "What is 3 + 3? (variant 100)", "a": "6"}])
    r = http.post(f"/runs/{trained['id']}/benchmarks", json={
        "benchmarks": "sums=suites/sums.jsonl?problem=q&answer=a&grader=math", "num_samples": 2, "temperature": 0})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["parent_id"] == trained["id"] and job["config"]["mode"] == "evaluate"
    assert job["config"]["sft_model_path"].endswith("final_model")
    # Routed to the engine the worker advertises (here the service's own /v1, as a GPU worker's vLLM would be).
    assert (job["config"]["engine"], job["config"]["engine_url"]) == ("openai", api.v1)
    assert (job["config"]["engine_base_model"], job["config"]["engine_sft_model"]) == ("tiny-random", f"run-{trained['id']}")
    health = http.get("/health").json()
    assert any(w["engine"] == {"url": api.v1, "kind": "openai"} for w in health["workers"])
    done = wait_status(http, job["id"], timeout=300, worker=worker)
    assert done["status"] == "succeeded", (done["error"], worker.tail())

    detail = http.get(f"/runs/{trained['id']}/benchmarks/sums").json()
    assert detail["job_id"] == job["id"] and len(detail["records"]) == 6
    for rec in detail["records"][:5]:
        assert [s["extracted"] for s in rec["sft"]] == ["4", "4"] and all(s["correct"] for s in rec["sft"])
        assert rec["gold"] == "4" and len(rec["base"]) == 2
    assert [s["correct"] for s in detail["records"][5]["sft"]] == [False, False]  # it says 4 to everything
    res = detail["result"]
    assert res["sft"]["pass@1"] == pytest.approx(5 / 6, abs=1e-4) and res["test"] == "paired_bootstrap"
    assert res["sft"]["pass@k"]["2"] == pytest.approx(5 / 6, abs=1e-4) and res["sft"]["cons@n"] == pytest.approx(5 / 6, abs=1e-4)
    lo, hi = res["sft"]["pass@1_ci"]
    assert lo < 5 / 6 < hi

    folder = Path(done["output_dir"])
    assert folder.parent.parent == Path(trained["output_dir"]) and (folder / "benchmarks" / "sums.jsonl").is_file()
    assert "sums" in json.loads((folder / "evaluation_results.json").read_text())["benchmarks"]
    board = http.get("/benchmarks").json()
    row = next(i for i in board["items"] if i["run_id"] == trained["id"] and i["suite"] == "sums")
    assert row["job_id"] == job["id"] and any(m["key"] == "pass@1" for m in board["metrics"])
    assert [j["id"] for j in http.get(f"/runs/{trained['id']}/benchmarks").json()["jobs"]] == [job["id"]]


def test_a_cancelled_job_resumes_from_the_answers_it_kept(stack, trained) -> None:
    http, worker, home, api = stack
    _write(home / "suites" / "many.jsonl", [{"q": f"What is {i} + {i}?", "a": str(2 * i)} for i in range(300)])
    r = http.post(f"/runs/{trained['id']}/benchmarks", json={
        "benchmarks": "many=suites/many.jsonl?problem=q&answer=a&grader=number", "eval_batch_size": 4,
        "max_new_tokens": 24})
    job = r.json()
    wait_for(lambda: http.get(f"/runs/{job['id']}").json()["progress"] > 0.02, 120, what="the job to answer some")
    assert http.post(f"/runs/{job['id']}/cancel").status_code == 202
    cancelled = wait_status(http, job["id"], timeout=120, worker=worker)
    assert cancelled["status"] == "cancelled", cancelled
    # The job's requests still out were closed, and the engine stopped generating for them.
    serving = api.app.state.services.serving
    wait_for(lambda: serving.load() == {"pending_rows": 0, "active_rows": 0}, 20, what="the engine to go idle")
    kept = (Path(cancelled["output_dir"]) / "benchmarks" / "many.jsonl").read_text().splitlines()
    assert 2 <= len(kept) < 301

    assert http.post(f"/runs/{job['id']}/resume").status_code == 202
    done = wait_status(http, job["id"], timeout=400, worker=worker)
    assert done["status"] == "succeeded", (done["error"], worker.tail())
    logs = " ".join(line["message"] for line in http.get(f"/runs/{job['id']}/logs?limit=2000").json()["lines"])
    assert f"{len(kept) - 1} of 300 problems already answered" in logs
    records = http.get(f"/runs/{trained['id']}/benchmarks/many").json()["records"]
    assert [r["index"] for r in records] == list(range(300))
    assert_kept_as_reported(kept, records)


def test_an_engine_that_goes_down_fails_the_job_in_one_line_and_resuming_continues(stack, trained) -> None:
    http, worker, home, api = stack
    _write(home / "suites" / "longer.jsonl", [{"q": f"What is {i} + 1?", "a": str(i + 1)} for i in range(200)])
    engine = LiveServer(api.settings).__enter__()  # a second server on the same database: the engine
    port = engine.port
    r = http.post(f"/runs/{trained['id']}/benchmarks", json={
        "benchmarks": "longer=suites/longer.jsonl?problem=q&answer=a&grader=number", "eval_batch_size": 4,
        "max_new_tokens": 24, "engine": "openai", "engine_url": engine.v1})
    assert r.status_code == 202, r.text
    job = r.json()
    wait_for(lambda: http.get(f"/runs/{job['id']}").json()["progress"] > 0.02, 120, what="the job to answer some")
    engine.__exit__(None, None, None)  # the engine goes down mid-job
    failed = wait_status(http, job["id"], timeout=120, worker=worker)
    assert failed["status"] == "failed" and engine.v1 in failed["error"] and "\n" not in failed["error"]
    kept = (Path(failed["output_dir"]) / "benchmarks" / "longer.jsonl").read_text().splitlines()
    assert 2 <= len(kept) < 201

    with LiveServer(api.settings, port=port):  # back up: resuming continues from the kept answers
        assert http.post(f"/runs/{job['id']}/resume").status_code == 202
        done = wait_status(http, job["id"], timeout=400, worker=worker)
    assert done["status"] == "succeeded", (done["error"], worker.tail())
    logs = " ".join(line["message"] for line in http.get(f"/runs/{job['id']}/logs?limit=5000").json()["lines"])
    assert f"{len(kept) - 1} of 200 problems already answered" in logs
    records = http.get(f"/runs/{trained['id']}/benchmarks/longer").json()["records"]
    assert_kept_as_reported(kept, records)


@pytest.mark.parametrize("body, needle", [
    ({"benchmarks": "nope"}, "'nope'"),
    ({"benchmarks": "math500=/etc/passwd"}, "DISTILL_HOME"),
    ({"benchmarks": "mine=four.jsonl?problem=q&answer=a&grader=math"}, "[question, answer]"),
    ({"benchmarks": "gsm8k"}, "Hugging Face Hub"),
    ({"benchmarks": "heldout", "num_samples": 0}, "num_samples"),
    ({"benchmarks": "heldout", "bogus": 1}, "bogus"),
])
def test_bad_benchmark_requests_name_the_field(stack, trained, body, needle) -> None:
    http, _, _, _ = stack
    r = http.post(f"/runs/{trained['id']}/benchmarks", json=body)
    assert r.status_code == 422, r.text
    assert needle in json.dumps(r.json()["detail"])


def test_benchmark_needs_a_trained_model(stack, trained) -> None:
    http, _, _, _ = stack
    assert http.post("/runs/99999/benchmarks", json={"benchmarks": "heldout"}).status_code == 404
    job_id = http.get(f"/runs/{trained['id']}/benchmarks").json()["jobs"][0]["id"]
    r = http.post(f"/runs/{job_id}/benchmarks", json={"benchmarks": "heldout"})
    assert r.status_code == 409 and f"benchmark its run {trained['id']}" in r.json()["detail"]
