"""Export jobs through the API with a real Celery worker: a run trained once through the API is exported to GGUF
(the file downloads and reads back as GGUF), to Ollama (the Modelfile beside it), and to a stand-in Hub
(``tests/standin_hub.py``, reached by the worker's ``huggingface_hub`` through ``HF_ENDPOINT``); each job's stages
and log lines are read back through the API; a cancelled job and an unreachable Hub leave no export listed; every
bad request is refused before queueing, in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import svc_helpers
from backend.store import Store
from backend.tables import Run, utcnow
from distill.export.gguf import converter_dir, describe
from svc_helpers import TINY, LiveServer, WorkerProcess, make_settings, migrate, wait_for, wait_status
from tests.standin_hub import StandinHub

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (converter_dir() / "convert_hf_to_gguf.py").is_file(),
    reason="llama.cpp's converter is not installed: make setup installs it")]
TOKEN = "hf_standin_secret_token"
JOB_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def hub() -> Iterator[StandinHub]:
    server = StandinHub()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, hub: StandinHub) -> Iterator[tuple[httpx.Client, WorkerProcess,
                                                                                         Any]]:
    root = tmp_path_factory.mktemp("exports")
    settings = make_settings(root / "home")
    settings.home.mkdir()
    migrate(settings)
    # The worker uploads to the stand-in Hub with its own token (the suite runs offline: the worker may go online,
    # and only to the stand-in).
    base_env = svc_helpers.settings_env
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(svc_helpers, "settings_env", lambda s: {**base_env(s), "HF_HUB_OFFLINE": "0",
                                                           "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
        worker = WorkerProcess(settings, root / "worker.log").start()
    try:
        with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
            yield http, worker, settings
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def finished(stack) -> dict[str, Any]:
    """One tiny LoRA run trained through the API (mode train: its merged model is what is exported)."""
    http, worker, _ = stack
    r = http.post("/runs", json={**TINY, "mode": "train", "name": "exported"})
    assert r.status_code == 201, r.text
    run = wait_status(http, r.json()["id"], timeout=300, worker=worker)
    assert run["status"] == "succeeded", (run["error"], worker.tail())
    return run


def follow(http: httpx.Client, job_id: int, worker: WorkerProcess) -> tuple[dict[str, Any], set[str]]:
    """The job once it ended, and every stage seen while it ran."""
    seen: set[str] = set()

    def ended() -> dict[str, Any] | None:
        job = http.get(f"/export-jobs/{job_id}").json()
        seen.add(job["stage"] or "")
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    try:
        return wait_for(ended, JOB_TIMEOUT_S, interval=0.1, what=f"export job {job_id}"), seen - {""}
    except AssertionError:
        print(worker.tail())
        raise


def export(http: httpx.Client, run_id: int, worker: WorkerProcess, **body: Any) -> tuple[dict[str, Any], set[str]]:
    r = http.post(f"/runs/{run_id}/exports", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["request"]["to"] == body["to"]
    return follow(http, r.json()["id"], worker)


def leftovers(run: dict[str, Any]) -> list[str]:
    """Hidden (unfinished) folders under the run's exports/."""
    folder = Path(run["output_dir"]) / "exports"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


def test_gguf_job_reports_progress_lists_the_export_and_serves_a_readable_gguf(stack, finished, tmp_path):
    http, worker, _ = stack
    rid = finished["id"]
    job, stages = export(http, rid, worker, to="gguf", quants=["f16", "q8_0"])
    assert job["status"] == "succeeded", (job["error"], job["log"])
    assert (job["progress"], job["stage"], job["error"]) == (1.0, "converting", None)
    assert stages == {"converting"}
    messages = [line["message"] for line in job["log"]]
    assert any(m.startswith("Converting") and "f16, q8_0" in m for m in messages), messages
    assert any(m.startswith("Exported to") for m in messages), messages
    listed = http.get(f"/runs/{rid}/exports").json()
    assert listed["items"][0]["name"] == job["export"] and listed["jobs"][0]["id"] == job["id"]
    files = {f["name"]: f for f in listed["items"][0]["files"]}
    assert sorted(files) == [f"exported-{q}.gguf" for q in ("f16", "q8_0")]
    got = http.get(f"/{files['exported-f16.gguf']['url']}")
    assert got.status_code == 200 and int(got.headers["content-length"]) == files["exported-f16.gguf"]["size"]
    (tmp_path / "down.gguf").write_bytes(got.content)
    read = describe(tmp_path / "down.gguf")
    assert (read["architecture"], read["file_type"]) == ("llama", "MOSTLY_F16")
    assert "<|im_start|>" in read["chat_template"]
    assert leftovers(finished) == []


def test_ollama_job_writes_a_modelfile_beside_its_gguf(stack, finished):
    http, worker, _ = stack
    job, stages = export(http, finished["id"], worker, to="ollama", quants=["q8_0"])
    assert job["status"] == "succeeded", (job["error"], job["log"])
    assert stages <= {"converting", "modelfile"} and job["stage"] == "modelfile"
    item = next(i for i in http.get(f"/runs/{finished['id']}/exports").json()["items"] if i["name"] == job["export"])
    files = {f["name"]: f for f in item["files"]}
    assert set(files) == {"Modelfile", "exported-q8_0.gguf"}
    assert http.get(f"/{files['Modelfile']['url']}").text.startswith("FROM ./exported-q8_0.gguf\n")


def test_hub_job_uploads_with_the_workers_token_and_an_unreachable_hub_leaves_nothing(stack, finished, hub,
                                                                                        monkeypatch):
    http, worker, settings = stack
    monkeypatch.setenv("HF_TOKEN", "hf_api_side")  # the API checks that a token is configured; the worker's is used
    job, stages = export(http, finished["id"], worker, to="hub", repo_id="me/tiny-export")
    assert job["status"] == "succeeded", (job["error"], job["log"])
    assert stages <= {"staging", "uploading"} and job["stage"] == "uploading"
    uploaded = hub.files["me/tiny-export@main"]
    assert {"model.safetensors", "config.json", "README.md"} <= set(uploaded)
    writes = [c for c in hub.calls if c["path"].startswith("/api/repos/create") or "/commit/" in c["path"]]
    assert len(writes) == 2 and {c["auth"] for c in writes} == {f"Bearer {TOKEN}"}  # the worker's token, not the API's
    assert not any("hf_api_side" in (c["auth"] or "") for c in hub.calls)
    assert json.loads(writes[0]["body"])["visibility"] == "private"
    listed = http.get(f"/runs/{finished['id']}/exports").json()
    assert next(i for i in listed["items"] if i["name"] == job["export"])["hub"]["repo_id"] == "me/tiny-export"
    # The token is in no answer, row or log.
    assert TOKEN not in json.dumps(listed) and TOKEN not in Path(finished["output_dir"], "exports").joinpath(
        job["export"], "export.json").read_text()
    assert TOKEN not in worker.tail(400)

    names_before = [i["name"] for i in listed["items"]]
    hub.close()
    failed, _ = export(http, finished["id"], worker, to="hub", repo_id="me/tiny-export-2")
    assert failed["status"] == "failed" and "cannot be reached" in failed["error"], failed
    assert "\n" not in failed["error"] and failed["export"] is None
    assert [i["name"] for i in http.get(f"/runs/{finished['id']}/exports").json()["items"]] == names_before
    assert leftovers(finished) == []


def test_a_cancelled_job_leaves_no_export(stack, finished):
    http, worker, _ = stack
    before = [i["name"] for i in http.get(f"/runs/{finished['id']}/exports").json()["items"]]
    r = http.post(f"/runs/{finished['id']}/exports", json={"to": "gguf", "quants": ["f32", "bf16", "f16", "q8_0"]})
    assert r.status_code == 202, r.text
    cancel = http.post(f"/export-jobs/{r.json()['id']}/cancel")
    assert cancel.status_code == 200 and cancel.json()["cancel_requested"] is True
    job, _ = follow(http, r.json()["id"], worker)
    assert job["status"] == "cancelled" and job["export"] is None, job
    assert [i["name"] for i in http.get(f"/runs/{finished['id']}/exports").json()["items"]] == before
    assert leftovers(finished) == []
    again = http.post(f"/export-jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["detail"] == f"export job {job['id']} already cancelled"


def _row(settings: Any, **values: Any) -> int:
    with Store(settings).sessions() as s:
        run = Run(config={"mode": "all", "model": "tiny-random"}, created_at=utcnow(), progress=0.0,
                  cancel_requested=False, attempts=0, task_id="not-sent", **values)
        s.add(run)
        s.commit()
        return run.id


@pytest.mark.parametrize("case, status, needle", [
    ("unknown run", 404, "run 999999 not found"),
    ("unfinished run", 409, "is running: a run can be exported once it has succeeded"),
    ("benchmark job", 409, "is a benchmark job: it has no model of its own; export run"),
    ("unknown quantization", 422, "unknown quantization q3_x: use one of f16"),
    ("hub without repo_id", 422, "--repo-id must be owner/name, got None"),
    ("hub without a token", 400, "no Hugging Face token: set HF_TOKEN"),
    ("unknown target", 422, "Input should be 'gguf', 'ollama' or 'hub'"),
])
def test_bad_requests_are_refused_in_one_line_before_queueing(stack, finished, monkeypatch, case, status, needle):
    http, _, settings = stack
    rid, body = finished["id"], {"to": "gguf"}
    monkeypatch.setenv("HF_TOKEN", "hf_api_side")
    if case == "unknown run":
        rid = 999999
    elif case == "unfinished run":
        rid = _row(settings, status="running")
    elif case == "benchmark job":
        rid = _row(settings, status="succeeded", parent_id=finished["id"])
    elif case == "unknown quantization":
        body["quants"] = ["f16", "q3_x"]
    elif case == "hub without repo_id":
        body = {"to": "hub"}
    elif case == "hub without a token":
        body = {"to": "hub", "repo_id": "me/model"}
        monkeypatch.delenv("HF_TOKEN")
    elif case == "unknown target":
        body = {"to": "onnx"}
    jobs_before = http.get(f"/runs/{finished['id']}/exports").json()["jobs"]
    r = http.post(f"/runs/{rid}/exports", json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    line = detail if isinstance(detail, str) else detail[0]["msg"]
    assert needle in line and "\n" not in line, line
    if status == 422 and case != "unknown target":
        assert detail[0]["loc"] == ["body", "quants" if case == "unknown quantization" else "repo_id"]
    assert http.get(f"/runs/{finished['id']}/exports").json()["jobs"] == jobs_before


def _export_row(settings: Any, run_id: int, **values: Any) -> int:
    from backend.tables import ExportJob

    with Store(settings).sessions() as s:
        job = ExportJob(run_id=run_id, progress=0.0, request={"to": "gguf", "quants": ["f16"]}, log=[],
                        cancel_requested=False, **values)
        s.add(job)
        s.commit()
        return job.id


def test_the_maintenance_loop_fails_a_silent_job_and_sends_one_the_broker_never_took(stack, finished):
    """A running job whose worker stopped beating (and one that never beat) fails as "worker lost"; a queued job
    that never reached the broker is sent by the API's maintenance loop and the worker exports it."""
    from datetime import timedelta

    http, worker, settings = stack
    long_ago = utcnow() - timedelta(minutes=10)
    silent = _export_row(settings, finished["id"], status="running", task_id="gone-1", worker="w-killed",
                         created_at=long_ago, started_at=long_ago, heartbeat_at=long_ago)
    never_beat = _export_row(settings, finished["id"], status="running", task_id="gone-2", worker="w-killed",
                             created_at=long_ago, started_at=long_ago)
    unsent = _export_row(settings, finished["id"], status="queued", task_id="never-sent-" + str(utcnow().timestamp()),
                         created_at=long_ago)
    for job_id in (silent, never_beat):
        job = wait_for(lambda j=job_id: (lambda d: d if d["status"] == "failed" else None)(
            http.get(f"/export-jobs/{j}").json()), timeout=30)
        assert job["error"] == "worker lost: no heartbeat from its worker; export again", job
        assert job["export"] is None and job["finished_at"] is not None
    job, _ = follow(http, unsent, worker)
    assert job["status"] == "succeeded" and job["export"], (job, worker.tail())
    assert job["export"] in [i["name"] for i in http.get(f"/runs/{finished['id']}/exports").json()["items"]]
