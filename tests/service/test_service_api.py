"""The REST API in-process (SQLite + embedded broker, no worker): shapes, validation, auth,
404/409/413, paths kept inside DISTILL_HOME, datasets, artifacts, logs, the maintenance loop."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.app import create_app
from backend.config import Settings
from backend.tables import LogLine, MetricPoint, Run, utcnow
from backend.services.dispatch import Dispatcher
from backend.services.maintenance import reap_lost_runs, redispatch
from backend.store import Store
from svc_helpers import install_adapter, make_settings, migrate, read_sse

API = "/api/v1"


# GET /runs/{id} answers the run as POST /runs does, plus what only the detail knows.
DETAIL_ONLY = ("resumable", "resume_refused", "tracking")


def as_run(detail: dict) -> dict:
    return {k: v for k, v in detail.items() if k not in DETAIL_ONLY}


def _runs_total(client: TestClient) -> int:
    return client.get(f"{API}/runs").json()["total"]


def _store(settings: Settings) -> Store:
    return Store(settings, role="api")


def _fake_run(settings: Settings, status: str = "succeeded", **fields: Any) -> int:
    """A run row as a worker would leave it, without running anything."""
    store = _store(settings)
    with store.sessions() as s:
        run = Run(name="fake", status=status, config={"mode": "all", "model": "tiny-random",
                                                        "dataset": "builtin:reasoning", "epochs": 1},
                  created_at=utcnow(), progress=0.0, cancel_requested=False, attempts=1, task_id="t", **fields)
        s.add(run)
        s.flush()
        if run.output_dir is None:
            run.output_dir = str(settings.runs_dir / f"run_{run.id}")
        s.commit()
        return run.id


# --- runs ---------------------------------------------------------------------------------------

def test_create_run_returns_the_run_with_full_config(client: TestClient, settings: Settings) -> None:
    r = client.post(f"{API}/runs", json={"name": "demo", "model": "tiny-random", "epochs": 2})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "queued" and run["name"] == "demo" and run["progress"] == 0.0
    assert run["config"]["epochs"] == 2 and run["config"]["model"] == "tiny-random"
    assert run["config"]["learning_rate"] == 1e-3  # every RunConfig field, defaults filled
    assert run["output_dir"] == str(settings.runs_dir / f"run_{run['id']}")
    assert run["created_at"].endswith("Z") and run["summary"] is None
    detail = client.get(f"{API}/runs/{run['id']}").json()
    assert as_run(detail) == run
    assert detail["resumable"] is False and "is queued" in detail["resume_refused"] and detail["tracking"] is None


def test_preset_fills_fields_and_explicit_fields_win(client: TestClient) -> None:
    run = client.post(f"{API}/runs", json={"preset": "demo", "epochs": 3}).json()
    assert run["config"]["max_samples"] == 200 and run["config"]["epochs"] == 3


def test_empty_body_is_the_default_config(client: TestClient) -> None:
    r = client.post(f"{API}/runs")
    assert r.status_code == 201, r.text
    assert r.json()["config"]["model"] == "smollm2-135m"


def test_list_is_newest_first_paginated_and_filtered(client: TestClient) -> None:
    ids = [client.post(f"{API}/runs", json={"name": f"r{i}"}).json()["id"] for i in range(5)]
    client.post(f"{API}/runs/{ids[1]}/cancel")
    page = client.get(f"{API}/runs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [r["id"] for r in page["items"]] == [ids[3], ids[2]]
    cancelled = client.get(f"{API}/runs", params={"status": "cancelled"}).json()
    assert [r["id"] for r in cancelled["items"]] == [ids[1]] and cancelled["total"] == 1
    assert client.get(f"{API}/runs", params={"status": "bogus"}).status_code == 422
    assert client.get(f"{API}/runs", params={"limit": 201}).status_code == 422


BAD_CONFIGS = [
    ({"epochs": 0}, "epochs"),
    ({"epochs": -1}, "epochs"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"mode": "bogus"}, "mode"),
    ({"preset": "nope"}, "preset"),
    ({"max_samples": 0}, "max_samples"),
    ({"max_seq_length": 10**9}, "max_seq_length"),
    ({"lora_r": 10**7}, "lora_r"),
    ({"gradient_accumulation": 10**6}, "gradient_accumulation"),
    ({"epochs": "many"}, "epochs"),
    ({"not_a_field": 1}, "not_a_field"),
    ({"dataset": "upload:999"}, "dataset"),
    ({"dataset": "builtin:nope"}, "dataset"),
    ({"dataset": "../outside.jsonl"}, "dataset"),
    ({"dataset": "/etc/passwd"}, "dataset"),
    ({"dataset": "missing.jsonl"}, "dataset"),
    ({"output_dir": "../escape"}, "output_dir"),
    ({"output_dir": "a/../../escape"}, "output_dir"),
    ({"output_dir": "/tmp/elsewhere"}, "output_dir"),
    ({"output_dir": "~/x"}, "output_dir"),
    ({"output_dir": "."}, "output_dir"),
    ({"output_dir": "datasets/x"}, "output_dir"),
    ({"output_dir": "runs/run_7"}, "output_dir"),
    ({"sft_model_path": "/etc"}, "sft_model_path"),
    ({"model": "/etc"}, "model"),
    ({"model": "../model"}, "model"),
    ({"mode": "evaluate"}, ""),  # needs sft_model_path: a model-level error
    ({"trust_remote_code": True}, "trust_remote_code"),
    ({"num_gpus": 0}, "num_gpus"),
    ({"num_gpus": 65}, "num_gpus"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CONFIGS, ids=[json.dumps(b) for b, _ in BAD_CONFIGS])
def test_bad_config_is_422_naming_the_field_and_stores_nothing(client: TestClient, settings: Settings,
                                                               body: dict, field: str) -> None:
    keep = client.post(f"{API}/runs", json={"name": "keep"}).json()
    before = sorted(p.name for p in settings.home.rglob("*"))
    r = client.post(f"{API}/runs", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail[0]["msg"]
    if field:
        assert detail[0]["loc"][:2] == ["body", field], detail
    assert _runs_total(client) == 1
    assert as_run(client.get(f"{API}/runs/{keep['id']}").json()) == keep
    assert sorted(p.name for p in settings.home.rglob("*")) == before


def test_paths_inside_home_are_accepted_and_made_absolute(client: TestClient, settings: Settings) -> None:
    data = settings.home / "mine" / "d.jsonl"
    data.parent.mkdir()
    data.write_text(json.dumps({"prompt": "1+1?", "response": "<think>1+1=2</think> 2"}) + "\n")
    r = client.post(f"{API}/runs", json={"dataset": "mine/d.jsonl", "output_dir": "experiments/a"})
    assert r.status_code == 201, r.text
    assert r.json()["config"]["dataset"] == str(data)
    assert r.json()["output_dir"] == str(settings.home / "experiments" / "a")
    again = client.post(f"{API}/runs", json={"output_dir": "experiments/a"})
    assert again.status_code == 422 and "run" in again.json()["detail"][0]["msg"]
    parent = client.post(f"{API}/runs", json={"output_dir": "experiments"})
    assert parent.status_code == 422  # would contain the other run's folder


def test_hub_ids_are_accepted_for_the_worker_to_resolve(client: TestClient) -> None:
    r = client.post(f"{API}/runs", json={"model": "someone/some-model", "dataset": "open-thoughts/OpenThoughts-114k"})
    assert r.status_code == 201, r.text


def test_multi_gpu_runs_are_accepted_for_the_worker_to_launch(client: TestClient) -> None:
    r = client.post(f"{API}/runs", json={"num_gpus": 2, "model": "tiny-random"})
    assert r.status_code == 201, r.text
    assert r.json()["config"]["num_gpus"] == 2


def test_trust_remote_code_allowed_when_the_operator_enables_it(home: Path) -> None:
    s = make_settings(home, trust_remote_code=True)
    migrate(s)
    with TestClient(create_app(s)) as c:
        r = c.post(f"{API}/runs", json={"trust_remote_code": True})
        assert r.status_code == 201 and r.json()["config"]["trust_remote_code"] is True


@pytest.mark.parametrize("method,path,body", [
    ("get", "/runs/999", None), ("delete", "/runs/999", None), ("post", "/runs/999/cancel", None),
    ("post", "/runs/999/resume", None), ("get", "/runs/999/logs", None), ("get", "/runs/999/logs/stream", None),
    ("get", "/runs/999/metrics", None), ("get", "/runs/999/evaluation", None), ("get", "/runs/999/artifacts", None),
    ("get", "/runs/999/artifacts/report.md", None), ("post", "/generate", {"run_id": 999, "prompt": "hi"}),
    ("post", "/generate/stream", {"run_id": 999, "prompt": "hi"}), ("get", "/datasets/upload:999/preview", None),
])
def test_unknown_ids_are_404(client: TestClient, method: str, path: str, body: dict | None) -> None:
    r = client.request(method.upper(), API + path, json=body)
    assert r.status_code == 404, r.text
    assert isinstance(r.json()["detail"], str)


def test_cancel_a_queued_run_then_409(client: TestClient) -> None:
    run = client.post(f"{API}/runs", json={}).json()
    r = client.post(f"{API}/runs/{run['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert client.post(f"{API}/runs/{run['id']}/cancel").status_code == 409
    assert client.post(f"{API}/runs/{run['id']}/resume").status_code == 409  # no checkpoint


def test_cancel_a_running_run_sets_the_flag(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings, status="running")
    r = client.post(f"{API}/runs/{rid}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "running" and r.json()["cancel_requested"] is True


def test_resume_requeues_a_failed_run_with_a_checkpoint(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings, status="failed", error="worker lost")
    out = settings.runs_dir / f"run_{rid}"
    (out / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-3" / "adapter_model.safetensors").write_bytes(b"x")
    with _store(settings).sessions() as s:
        s.add_all([MetricPoint(run_id=rid, seq=i, step=i, data={"step": i, "loss": 1.0}) for i in range(1, 6)])
        s.commit()
    assert client.post(f"{API}/runs/{_fake_run(settings)}/resume").status_code == 409  # succeeded
    r = client.post(f"{API}/runs/{rid}/resume")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["config"]["resume"] is True and r.json()["error"] is None
    assert [p["step"] for p in client.get(f"{API}/runs/{rid}/metrics").json()["points"]] == [1, 2, 3]
    assert client.post(f"{API}/runs/{rid}/resume").status_code == 409  # queued now


def test_delete_removes_row_and_folder_but_not_a_running_run(client: TestClient, settings: Settings) -> None:
    run = client.post(f"{API}/runs", json={}).json()
    folder = Path(run["output_dir"])
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("x")
    assert client.delete(f"{API}/runs/{run['id']}").status_code == 204
    assert not folder.exists() and client.get(f"{API}/runs/{run['id']}").status_code == 404
    rid = _fake_run(settings, status="running")
    assert client.delete(f"{API}/runs/{rid}").status_code == 409
    assert client.get(f"{API}/runs/{rid}").status_code == 200


# --- logs, metrics, evaluation ------------------------------------------------------------------

def _add_lines(settings: Settings, rid: int, n: int) -> None:
    with _store(settings).sessions() as s:
        s.add_all([LogLine(run_id=rid, seq=i, ts=utcnow(), level="INFO", message=f"line {i}") for i in range(1, n + 1)])
        s.commit()


def test_logs_pages_by_sequence_number(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings)
    _add_lines(settings, rid, 7)
    page = client.get(f"{API}/runs/{rid}/logs", params={"offset": 2, "limit": 3}).json()
    assert [l["seq"] for l in page["lines"]] == [3, 4, 5] and page["next_offset"] == 5
    assert page["lines"][0]["message"] == "line 3" and page["lines"][0]["level"] == "INFO"
    end = client.get(f"{API}/runs/{rid}/logs", params={"offset": 7}).json()
    assert end == {"lines": [], "next_offset": 7}


def test_log_stream_resumes_after_last_event_id_and_ends(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings, status="failed")
    _add_lines(settings, rid, 5)
    with client.stream("GET", f"{API}/runs/{rid}/logs/stream", headers={"Last-Event-ID": "3"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(read_sse(r))
    assert [(e, i) for e, i, _ in events] == [("log", "4"), ("log", "5"), ("end", None)]
    assert json.loads(events[0][2])["message"] == "line 4"
    assert json.loads(events[-1][2]) == {"status": "failed"}


def test_evaluation_is_404_until_done(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings, status="running")
    r = client.get(f"{API}/runs/{rid}/evaluation")
    assert r.status_code == 404 and "no evaluation" in r.json()["detail"]
    assert client.get(f"{API}/runs/{rid}/metrics").json() == {"points": []}


def test_an_evaluation_written_before_schema_version_reads_through_the_store_and_api(client: TestClient,
                                                                                     settings: Settings) -> None:
    """tests/data/evaluation_results_v1.json was written by the code before schema_version: the worker's store
    keeps it, and /evaluation, the run and its benchmarks answer it as schema 1."""
    from backend.store import Claim

    v1 = json.loads((Path(__file__).parents[1] / "data" / "evaluation_results_v1.json").read_text())
    rid = _fake_run(settings, status="running")
    claim = Claim(run_id=rid, task_id="t", config={}, output_dir="", attempt=1, next_log_seq=1, next_metric_seq=1,
                  worker="w")
    assert _store(settings).finish(claim, "succeeded", evaluation=v1)
    ev = client.get(f"{API}/runs/{rid}/evaluation").json()
    assert ev["schema_version"] == 1 and "benchmark_samples" not in ev  # the answers went to benchmark_results
    assert ev["summary"] == v1["summary"] and ev["accuracy_test"] == v1["accuracy_test"]
    assert ev["benchmarks"]["arith"]["sft"]["pass@1"] == 0.8333
    first = ev["samples"][0]["sft"]
    assert (first["thinking"], first["answer_part"], first["thinking_closed"]) == \
        ("2 + 3 = 5", "The answer is \\boxed{5}.", True)
    summary = client.get(f"{API}/runs/{rid}").json()["summary"]
    assert summary["sft"]["accuracy"] == 1.0 and summary["benchmarks"]["halves"]["base"]["pass@1"] == 1.0
    suite = client.get(f"{API}/runs/{rid}/benchmarks/arith").json()
    assert len(suite["records"]) == 3 and suite["records"][0]["sft"][0]["thinking"] == "2 + 3 = 5"


# --- artifacts ----------------------------------------------------------------------------------

def test_artifacts_list_files_and_zip_folders(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings)
    out = settings.runs_dir / f"run_{rid}"
    (out / "final_model").mkdir(parents=True)
    (out / "final_model" / "adapter_config.json").write_text("{}")
    (out / "report.md").write_text("# report")
    items = {i["name"]: i for i in client.get(f"{API}/runs/{rid}/artifacts").json()["items"]}
    assert items["report.md"] == {"name": "report.md", "size": 8, "kind": "file"}
    assert items["final_model"]["kind"] == "folder"
    assert client.get(f"{API}/runs/{rid}/artifacts/report.md").text == "# report"
    z = client.get(f"{API}/runs/{rid}/artifacts/final_model")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(z.content)).namelist() == ["final_model/adapter_config.json"]


@pytest.mark.parametrize("name", ["../../distill.db", "..", "%2e%2e", "..%2F..%2Fdistill.db", "final_model/../../x",
                                  "%2Fetc%2Fpasswd", ".hidden"])
def test_artifact_names_cannot_leave_the_run_folder(client: TestClient, settings: Settings, name: str) -> None:
    rid = _fake_run(settings)
    (settings.runs_dir / f"run_{rid}").mkdir(parents=True)
    (settings.runs_dir / f"run_{rid}" / ".hidden").write_text("x")
    r = client.get(f"{API}/runs/{rid}/artifacts/{name}")
    # 400/404 from the service (the HTTP client may collapse a literal '..' into another route first)
    assert "content-disposition" not in r.headers, r.text
    assert b"SQLite" not in r.content


@pytest.mark.parametrize("name", ["..", "../x", "/etc/passwd", "a/b", ".", "", ".hidden", "a\\b"])
def test_artifact_path_refuses_anything_but_a_plain_name(tmp_path: Path, name: str) -> None:
    from backend.errors import ApiError
    from backend.services.artifacts import artifact_path

    with pytest.raises(ApiError) as e:
        artifact_path(str(tmp_path), name)
    assert e.value.status_code in (400, 404)


def test_unknown_artifact_is_404(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings)
    assert client.get(f"{API}/runs/{rid}/artifacts/nothing.txt").status_code == 404


# --- datasets -----------------------------------------------------------------------------------

ROWS = [{"prompt": f"What is {i}+{i}?", "response": f"<think>{i}+{i}={2 * i}</think> The answer is {2 * i}."}
        for i in range(6)]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_upload_list_preview_and_use_a_dataset(client: TestClient, settings: Settings) -> None:
    r = client.post(f"{API}/datasets", files={"file": ("../../my data.jsonl", _jsonl(ROWS))})
    assert r.status_code == 201, r.text
    ds = r.json()
    stored = list(settings.datasets_dir.glob("*/*.jsonl"))
    assert len(stored) == 1 and stored[0].is_relative_to(settings.datasets_dir)
    # ref is the file: the API takes it (inside DISTILL_HOME) and the CLI reads it as the dashboard prints it.
    assert ds["kind"] == "upload" and ds["rows"] == 6 and ds["id"] == "upload:1" and ds["ref"] == str(stored[0])
    assert ds["report"]["rows_kept"] == 6 and ds["uses"] == ["training"]
    listed = client.get(f"{API}/datasets").json()["items"]
    assert [d["ref"] for d in listed] == ["builtin:reasoning", str(stored[0])]
    preview = client.get(f"{API}/datasets/upload:1/preview", params={"n": 2}).json()
    assert len(preview["rows"]) == 2 and preview["rows"][0]["prompt"] == "What is 0+0?"
    assert "<think>" in preview["rows"][0]["completion"] and preview["report"]["rows_kept"] == 6
    run = client.post(f"{API}/runs", json={"dataset": "upload:1"})
    # Resolved once, at submission: the run's configuration holds the upload's file, as the worker reads it.
    assert run.status_code == 201 and run.json()["config"]["dataset"] == str(stored[0])


def test_a_file_of_problems_uploads_as_a_benchmark(client: TestClient, settings: Settings) -> None:
    """Problems with answers (no reasoning): a benchmark to pick in the form, or a teacher's problems."""
    rows = [{"problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(5)]
    r = client.post(f"{API}/datasets", files={"file": ("sums.jsonl", _jsonl(rows))})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["uses"] == ["problems"] and ds["rows"] == 5 and ds["report"]["problems"] == 5
    preview = client.get(f"{API}/datasets/{ds['id']}/preview", params={"n": 2}).json()
    assert preview["rows"][1] == {"system": None, "prompt": "What is 1 + 1?", "completion": "(answer) 2"}
    suites = {s["name"]: s for s in client.get(f"{API}/suites").json()["items"]}
    assert suites["sums"]["spec"] == f"sums={ds['ref']}" and suites["sums"]["available"]
    assert not suites["gsm8k"]["available"] and "cannot be reached" in suites["gsm8k"]["why"]  # HF_HUB_OFFLINE
    assert suites["heldout"]["available"]
    resolved = client.post(f"{API}/config/resolve", json={"mode": "evaluate", "engine": "openai",
                                                          "engine_url": "http://127.0.0.1:9/v1", "engine_sft_model": "x",
                                                          "benchmarks": [suites["sums"]["spec"]]})
    assert resolved.status_code == 200, resolved.text
    bad = client.post(f"{API}/datasets", files={"file": ("notes.jsonl", _jsonl([{"text": "hello"}]))})
    assert bad.status_code == 422 and "neither training rows nor problems" in bad.text


def test_builtin_preview(client: TestClient) -> None:
    preview = client.get(f"{API}/datasets/builtin:reasoning/preview", params={"n": 3}).json()
    assert len(preview["rows"]) == 3 and all("<think>" in r["completion"] for r in preview["rows"])
    assert preview["rows"][0]["system"] and preview["report"]["rows_kept"] == 1000


@pytest.mark.parametrize("filename,content", [
    ("data.txt", b"hello"),
    ("data.jsonl", b"not json at all\n"),
    ("data.jsonl", b'{"unrelated": 1}\n' * 30),
    ("data.jsonl", b""),
    ("data.parquet", b"PAR1 garbage"),
])
def test_bad_upload_is_422_and_stores_nothing(client: TestClient, settings: Settings, filename: str,
                                             content: bytes) -> None:
    r = client.post(f"{API}/datasets", files={"file": (filename, content)})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "file"]
    assert [d["kind"] for d in client.get(f"{API}/datasets").json()["items"]] == ["builtin"]
    assert not [p for p in settings.datasets_dir.rglob("*") if p.is_file()]


def test_upload_without_file_field_is_422(client: TestClient) -> None:
    assert client.post(f"{API}/datasets", data={"x": "1"}).status_code == 422


def test_upload_over_the_limit_is_413_and_stores_nothing(home: Path) -> None:
    s = make_settings(home, max_upload_mb=0.01)  # ~10 kB
    migrate(s)
    with TestClient(create_app(s)) as c:
        big = _jsonl(ROWS * 200)
        r = c.post(f"{API}/datasets", files={"file": ("big.jsonl", big)})
        assert r.status_code == 413, r.text
        assert "limit" in r.json()["detail"]
        ok = c.post(f"{API}/datasets", files={"file": ("small.jsonl", _jsonl(ROWS))})
        assert ok.status_code == 201
        assert [d["id"] for d in c.get(f"{API}/datasets").json()["items"]] == ["builtin:reasoning", "upload:1"]
        assert len([p for p in s.datasets_dir.rglob("*") if p.is_file()]) == 1


# --- models, schema, health, auth ------------------------------------------------------------------

def test_models_and_config_schema(client: TestClient) -> None:
    m = client.get(f"{API}/models").json()
    assert m["embedded"] == "smollm2-135m" and m["builtin"] == ["smollm2-135m", "tiny-random"]
    assert "demo" in m["presets"] and m["presets"]["demo"]["config"]["max_samples"] == 200
    schema = client.get(f"{API}/config/schema").json()
    for name, prop in schema["properties"].items():
        assert {"group", "description", "default"} <= set(prop), name
    assert schema["properties"]["epochs"]["group"] == "training"


def test_health(client: TestClient) -> None:
    h = client.get(f"{API}/health").json()
    assert h["status"] == "ok" and h["database"] == "ok" and h["broker"] == "ok"
    assert h["workers"] == [] and h["version"]


def test_token_required_except_health(home: Path) -> None:
    s = make_settings(home, api_token="s3cret-token")
    migrate(s)
    with TestClient(create_app(s)) as c:
        assert c.get(f"{API}/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"},
                        {"Authorization": "Bearer s3cret-token-and-more"}):
            r = c.get(f"{API}/runs", headers=headers)
            assert r.status_code == 401, headers
        assert c.post(f"{API}/runs", json={}).status_code == 401
        assert c.post(f"{API}/datasets", files={"file": ("a.jsonl", b"{}")}).status_code == 401
        assert _runs_total_with(c, "s3cret-token") == 0
        ok = c.post(f"{API}/runs", json={}, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 201


def _runs_total_with(c: TestClient, token: str) -> int:
    return c.get(f"{API}/runs", headers={"Authorization": f"Bearer {token}"}).json()["total"]


def test_open_bind_warning() -> None:
    from backend.server import open_bind_warning

    assert open_bind_warning(None, "127.0.0.1") is None
    assert open_bind_warning("t", "0.0.0.0") is None
    assert "DISTILL_API_TOKEN" in (open_bind_warning(None, "0.0.0.0") or "")


# --- maintenance --------------------------------------------------------------------------------

def test_reaper_fails_runs_without_heartbeat(settings: Settings) -> None:
    store = _store(settings)
    old = utcnow() - timedelta(seconds=60)
    lost = _fake_run(settings, status="running", heartbeat_at=old, started_at=old, worker="w1")
    alive = _fake_run(settings, status="running", heartbeat_at=utcnow(), started_at=old)
    _add_lines(settings, lost, 2)
    assert reap_lost_runs(store, lost_after_s=30) == [lost]
    with store.sessions() as s:
        run = s.get(Run, lost)
        assert run.status == "failed" and run.error.startswith("worker lost") and run.finished_at
        assert s.get(Run, alive).status == "running"
        lines = s.scalars(select(LogLine).where(LogLine.run_id == lost).order_by(LogLine.seq)).all()
        assert [l.seq for l in lines] == [1, 2, 3] and lines[-1].message.startswith("worker lost")
    assert reap_lost_runs(store, lost_after_s=30) == []


def test_a_broker_outage_at_submission_loses_nothing(home: Path) -> None:
    """The broker is down: the run is stored as queued and sent by the maintenance loop later."""
    from svc_helpers import free_port

    down = make_settings(home, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    migrate(down)
    with TestClient(create_app(down, maintenance=False)) as c:
        r = c.post(f"{API}/runs", json={})
        assert r.status_code == 201 and r.json()["status"] == "queued"
    store = _store(down)
    with store.sessions() as s:
        assert s.get(Run, 1).dispatched_at is None
    up = down.with_(broker_url=make_settings(home).broker_url)
    assert redispatch(store.sessions, Dispatcher(up), grace_s=0) == [1]
    with store.sessions() as s:
        assert s.get(Run, 1).dispatched_at is not None
    assert redispatch(store.sessions, Dispatcher(up), grace_s=0) == []


# --- generate -----------------------------------------------------------------------------------

def test_generate_without_a_model_is_409(client: TestClient, settings: Settings) -> None:
    rid = _fake_run(settings, status="running")
    r = client.post(f"{API}/generate", json={"run_id": rid, "prompt": "hi"})
    assert r.status_code == 409 and "no trained model" in r.json()["detail"]
    assert client.post(f"{API}/generate", json={"run_id": rid, "prompt": ""}).status_code == 422
    assert client.post(f"{API}/generate", json={"run_id": rid, "prompt": "x", "max_new_tokens": 0}).status_code == 422


def test_generate_base_and_sft_from_one_adapter(client: TestClient, settings: Settings,
                                                tiny_adapter_source: Path) -> None:
    rid = _fake_run(settings)
    install_adapter(settings.home, tiny_adapter_source, f"runs/run_{rid}/final_model")
    r = client.post(f"{API}/generate", json={"run_id": rid, "prompt": "What is 2+3?", "max_new_tokens": 6})
    assert r.status_code == 200, r.text
    out = r.json()
    for side in ("base", "sft"):
        assert set(out[side]) == {"text", "thinking", "answer_part", "thinking_closed", "new_tokens", "time_s"}
        assert 1 <= out[side]["new_tokens"] <= 6
    with client.stream("POST", f"{API}/generate/stream",
                       json={"run_id": rid, "prompt": "What is 2+3?", "max_new_tokens": 6}) as s:
        events = list(read_sse(s))
    names = [e for e, _, _ in events]
    assert names[-1] == "done" and {"base", "sft"} <= set(names[:-1])
    done = json.loads(events[-1][2])
    assert done["base"]["new_tokens"] == out["base"]["new_tokens"]  # greedy: the same answer both ways
    streamed = [json.loads(d) for e, _, d in events if e == "sft"]
    # the random adapter writes no <think>: every delta is labelled answer, and together they are the text
    assert {d["part"] for d in streamed} == {"answer"}
    assert "".join(d["delta"] for d in streamed).strip() == out["sft"]["text"] == out["sft"]["answer_part"]


def test_an_api_restart_loses_nothing(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        run = c.post(f"{API}/runs", json={"name": "before restart"}).json()
        ds = c.post(f"{API}/datasets", files={"file": ("d.jsonl", _jsonl(ROWS))}).json()
    _add_lines(settings, run["id"], 3)
    from backend.db import dispose_all

    dispose_all()
    with TestClient(create_app(settings)) as c:
        assert as_run(c.get(f"{API}/runs/{run['id']}").json()) == run
        assert [l["seq"] for l in c.get(f"{API}/runs/{run['id']}/logs").json()["lines"]] == [1, 2, 3]
        assert ds["ref"] in [d["ref"] for d in c.get(f"{API}/datasets").json()["items"]]


def test_generate_for_a_full_finetune_and_with_adapters_evicted(home: Path, tiny_adapter_source: Path) -> None:
    """max_adapters=1: two LoRA runs take turns (LRU eviction); a full fine-tune run answers with
    its merged model beside the base."""
    from distill.models import ensure_local_model, load_model

    s = make_settings(home, max_adapters=1)
    migrate(s)
    lora = [_fake_run(s) for _ in range(2)]
    for rid in lora:
        install_adapter(s.home, tiny_adapter_source, f"runs/run_{rid}/final_model")
    full = _fake_run(s)
    load_model(ensure_local_model("tiny-random")).save_pretrained(s.runs_dir / f"run_{full}" / "final_model")
    with TestClient(create_app(s)) as c:
        answers = {}
        for rid in (lora[0], lora[1], lora[0], full):
            r = c.post(f"{API}/generate", json={"run_id": rid, "prompt": "2+2?", "max_new_tokens": 4})
            assert r.status_code == 200, r.text
            answers.setdefault(rid, r.json())
        loaded = c.app.state.services.serving.loaded()["tiny-random"]
        assert f"run-{lora[0]}" in loaded and f"run-{full}" in loaded
        assert f"run-{lora[1]}" not in loaded  # evicted: one adapter at a time
        # the merged model is tiny-random itself: greedy answers of base and "sft" agree
        assert answers[full]["base"]["text"] == answers[full]["sft"]["text"]
        with c.stream("POST", f"{API}/generate/stream", json={"run_id": full, "prompt": "2+2?", "max_new_tokens": 4}) as st:
            names = [e for e, _, _ in read_sse(st)]
        assert names[-1] == "done" and names.index("sft") > max(i for i, n in enumerate(names) if n == "base")
