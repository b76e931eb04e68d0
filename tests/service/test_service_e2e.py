"""End to end on the embedded defaults (SQLite, embedded SQL broker) with a real Celery worker
process: a tiny-model run through POST /runs to succeeded, an unreachable hub model, and cancels
during data loading, training and evaluation. One API and one worker serve the whole module."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from svc_helpers import (
    TINY,
    LiveServer,
    WorkerProcess,
    install_adapter,
    make_settings,
    migrate,
    read_sse,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.slow


class Stack:
    def __init__(self, api: LiveServer, worker: WorkerProcess, http: httpx.Client):
        self.api, self.worker, self.http = api, worker, http
        self.settings = api.settings

    def submit(self, **config: Any) -> dict:
        r = self.http.post("/runs", json=config)
        assert r.status_code == 201, r.text
        return r.json()

    def wait(self, run_id: int, timeout: float = 240) -> dict:
        return wait_status(self.http, run_id, timeout=timeout, worker=self.worker)

    def wait_stage(self, run_id: int, stage: str, timeout: float = 120) -> dict:
        def at() -> dict | None:
            run = self.http.get(f"/runs/{run_id}").json()
            assert run["status"] in ("queued", "running"), run
            return run if run["stage"] == stage else None

        return wait_for(at, timeout, interval=0.1, what=f"run {run_id} to reach stage {stage}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("e2e")
    settings = make_settings(root / "home")
    settings.home.mkdir()
    migrate(settings)
    worker = WorkerProcess(settings, root / "worker.log")
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        worker.start()
        try:
            yield Stack(api, worker, http)
        finally:
            worker.stop()


def test_tiny_run_end_to_end(stack: Stack) -> None:
    http = stack.http
    run = stack.submit(name="e2e", **TINY)
    rid = run["id"]
    streamed: list[tuple[str, str | None, str]] = []

    def follow() -> None:
        with httpx.Client(base_url=stack.api.url, timeout=300) as c, c.stream("GET", f"/runs/{rid}/logs/stream") as r:
            streamed.extend(read_sse(r))

    follower = threading.Thread(target=follow)
    follower.start()
    done = stack.wait(rid)
    follower.join(30)
    assert done["status"] == "succeeded", (done, stack.worker.tail())
    assert done["progress"] == 1.0 and done["error"] is None and done["started_at"] and done["finished_at"]
    assert done["attempts"] == 1 and done["worker"] == stack.worker.name

    # logs: the stream followed the run live and ended with its status; the pages say the same
    assert streamed and streamed[-1][0] == "end" and json.loads(streamed[-1][2]) == {"status": "succeeded"}
    stream_lines = [json.loads(d) for e, _, d in streamed if e == "log"]
    lines = http.get(f"/runs/{rid}/logs", params={"limit": 10000}).json()["lines"]
    assert stream_lines == lines
    assert [l["seq"] for l in lines] == list(range(1, len(lines) + 1))
    text = "\n".join(l["message"] for l in lines)
    for needle in ("Stage: load", "Stage: data", "Stage: train", "Stage: evaluate", "Stage: save", "Done in"):
        assert needle in text

    # metrics, evaluation, summary
    points = http.get(f"/runs/{rid}/metrics").json()["points"]
    train = [p for p in points if "loss" in p]
    assert train and [p["step"] for p in train] == sorted(p["step"] for p in train)
    assert {"step", "epoch", "loss", "ce", "kl", "lr", "grad_norm", "tokens_per_s"} <= set(train[0])
    ev = http.get(f"/runs/{rid}/evaluation").json()
    assert {"summary", "deltas", "samples", "models"} <= set(ev) and len(ev["samples"]) == 2
    assert {"base", "sft", "deltas", "accuracy_test"} <= set(done["summary"]) and done["summary"]["base"]["n"] == 2
    assert done["summary"]["accuracy_test"]["p_value"] == ev["accuracy_test"]["p_value"]
    assert 0 <= done["summary"]["accuracy_test"]["p_value"] <= 1

    # artifacts: the run folder, files and zipped folders
    names = {i["name"]: i["kind"] for i in http.get(f"/runs/{rid}/artifacts").json()["items"]}
    for name in ("final_model", "merged_model", "report.md", "evaluation_results.json", "distillation_pipeline.log"):
        assert name in names
    assert names["final_model"] == "folder"
    assert http.get(f"/runs/{rid}/artifacts/report.md").text.startswith("#")

    # the inference service answers with both models
    g = http.post("/generate", json={"run_id": rid, "prompt": "What is 2+3?", "max_new_tokens": 8})
    assert g.status_code == 200, g.text
    assert g.json()["base"]["new_tokens"] >= 1 and g.json()["sft"]["new_tokens"] >= 1
    assert isinstance(g.json()["base"]["text"], str) and isinstance(g.json()["sft"]["text"], str)

    health = http.get("/health").json()
    assert health["status"] == "ok" and stack.worker.name in [w["name"] for w in health["workers"]]


def test_unreachable_hub_model_fails_with_its_message(stack: Stack) -> None:
    run = stack.submit(**dict(TINY, model="no-such-org/no-such-model"))
    done = stack.wait(run["id"], timeout=120)
    assert done["status"] == "failed", done
    assert "no-such-org/no-such-model" in done["error"] and "\n" not in done["error"]
    assert "Hub" in done["error"] or "hub" in done["error"]
    lines = [l["message"] for l in stack.http.get(f"/runs/{run['id']}/logs").json()["lines"]]
    assert any(done["error"] in l for l in lines)
    assert done["error"] in (Path(done["output_dir"]) / "distillation_pipeline.log").read_text()


def test_cancel_during_data_loading(stack: Stack) -> None:
    run = stack.submit(**dict(TINY, max_samples=5000))
    stack.wait_stage(run["id"], "data")
    assert stack.http.post(f"/runs/{run['id']}/cancel").status_code == 202
    done = stack.wait(run["id"], timeout=120)
    assert done["status"] == "cancelled" and done["stage"] == "data" and done["error"] is None, done
    out = Path(done["output_dir"])
    assert json.loads((out / "config.json").read_text())["max_samples"] == 5000
    assert not (out / "checkpoints").exists() and not (out / "final_model").exists()
    assert stack.http.post(f"/runs/{run['id']}/cancel").status_code == 409


def test_cancel_during_training_leaves_a_resumable_checkpoint(stack: Stack) -> None:
    run = stack.submit(**dict(TINY, max_samples=64, batch_size=1, val_ratio=0.0))
    rid = run["id"]
    wait_for(lambda: stack.http.get(f"/runs/{rid}/metrics").json()["points"], 180, what="a first training step")
    assert stack.http.post(f"/runs/{rid}/cancel").status_code == 202
    done = stack.wait(rid, timeout=120)
    assert done["status"] == "cancelled" and done["stage"] == "train", done
    out = Path(done["output_dir"])
    ckpts = list((out / "checkpoints").glob("checkpoint-*"))
    assert len(ckpts) == 1 and (ckpts[0] / "adapter_model.safetensors").is_file()
    assert (ckpts[0] / "trainer_state.json").is_file()
    assert not (out / "final_model").exists() and not (out / "evaluation_results.json").exists()
    steps = [p["step"] for p in stack.http.get(f"/runs/{rid}/metrics").json()["points"]]
    assert steps and max(steps) <= int(ckpts[0].name.split("-")[1])
    assert stack.http.get(f"/runs/{rid}/evaluation").status_code == 404


def test_cancel_during_evaluation(stack: Stack, tiny_adapter_source: Path) -> None:
    adapter = install_adapter(stack.settings.home, tiny_adapter_source, "adapters/cancel-eval")
    run = stack.submit(model="tiny-random", mode="evaluate", sft_model_path=str(adapter), eval_samples=16,
                       general_prompts=True, max_new_tokens=64, eval_batch_size=1)
    stack.wait_stage(run["id"], "evaluate")
    assert stack.http.post(f"/runs/{run['id']}/cancel").status_code == 202
    done = stack.wait(run["id"], timeout=120)
    assert done["status"] == "cancelled" and done["stage"] == "evaluate", done
    out = Path(done["output_dir"])
    assert (out / "config.json").is_file() and not (out / "evaluation_results.json").exists()
    assert not (out / "report.md").exists() and done["summary"] is None
    assert stack.http.get(f"/runs/{run['id']}/evaluation").status_code == 404
