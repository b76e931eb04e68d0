"""--report_to: each tracker's points read back from its own store; a missing tracker warns and the run goes on;
no secret reaches a tracker; a benchmark job logs into its run's tracker run; two runs in one process stay apart."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from distill.config import ConfigError, build_config
from distill.pipeline import run_pipeline
from distill.tracking import read_tracking

SECRET = "sk-test-SECRET-4f1c9a"


@pytest.fixture()
def secrets_set(monkeypatch):
    for var in ("HF_TOKEN", "DISTILL_ENGINE_API_KEY", "DISTILL_TEACHER_API_KEY", "WANDB_API_KEY"):
        monkeypatch.setenv(var, SECRET)


def _run(tiny_run, distill_home, name, **over):
    cfg = {**tiny_run, "max_samples": 6, "eval_samples": 2, "val_ratio": 0.0, "output_dir": str(distill_home / name),
           **over}
    return run_pipeline(build_config(cfg)).output_dir


def _trained_steps(out: Path) -> list[int]:
    return [p["step"] for p in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in p]


def test_bad_tracker_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"--report_to: unknown tracker 'comet'; known: none, trackio"):
        build_config({"report_to": "trackio,comet"})
    assert build_config({"report_to": "none"}).report_to == ["none"]


def test_mlflow_and_tensorboard_read_back_and_a_benchmark_job_logs_into_the_same_run(
        distill_home, tiny_run, secrets_set, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = _run(tiny_run, distill_home, "tracked", report_to="mlflow,tensorboard",
               engine_url="http://user:" + SECRET + "@127.0.0.1:1/v1")
    steps = _trained_steps(out)
    info = read_tracking(out)["trackers"]
    assert info["mlflow"]["tracking_uri"] == f"sqlite:///{distill_home.resolve() / 'mlruns.db'}"

    client = MlflowClient(info["mlflow"]["tracking_uri"])
    run = client.get_run(info["mlflow"]["run_id"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == steps
    assert run.data.params["max_samples"] == "6" and run.data.params["report_to"] == '["mlflow", "tensorboard"]'
    assert SECRET not in json.dumps(run.data.params) and "127.0.0.1:1" in run.data.params["engine_url"]
    results = json.loads((out / "evaluation_results.json").read_text())
    held = results["benchmarks"]["heldout"]
    assert run.data.metrics["heldout/sft/pass_at_1"] == held["sft"]["pass@1"]
    assert run.data.metrics["heldout/p_value"] == held["p_value"]
    assert run.data.metrics["heldout/base/pass_at_1_ci_high"] == held["base"]["pass@1_ci"][1]
    assert {"report.md", "evaluation_results.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}

    acc = EventAccumulator(info["tensorboard"]["logdir"])
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == steps
    assert [round(e.value, 4) for e in acc.Scalars("heldout/sft/pass_at_1")] == [held["sft"]["pass@1"]]

    # A benchmark job (mode evaluate on the run's adapter) reopens the same MLflow run.
    job = _run(tiny_run, distill_home, "tracked/benchmark_jobs/job_1", mode="evaluate", report_to="none",
               sft_model_path=str(out / "final_model"), benchmarks="heldout", eval_samples=1)
    assert not (job / "tracking.json").exists()
    assert len(client.get_metric_history(run.info.run_id, "heldout/sft/pass_at_1")) == 2
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_trackio_three_steps_read_back_from_its_sqlite(distill_home, tiny_run, secrets_set):
    pytest.importorskip("trackio")
    out = _run(tiny_run, distill_home, "trackio_run", report_to="trackio", max_samples=12, epochs=1)
    info = read_tracking(out)["trackers"]["trackio"]
    assert info["db"] == str(distill_home.resolve() / "trackio" / "distill.db")
    steps = _trained_steps(out)
    assert len(steps) == 3
    with sqlite3.connect(info["db"]) as db:
        rows = db.execute("SELECT step, metrics FROM metrics WHERE run_name = ? ORDER BY id", (info["run"],)).fetchall()
        stored = db.execute("SELECT config FROM configs WHERE run_name = ?", (info["run"],)).fetchone()[0]
    losses = [(s, json.loads(m)["train/loss"]) for s, m in rows if "train/loss" in json.loads(m)]
    curve = [(p["step"], p["loss"]) for p in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if "loss" in p]
    assert losses == curve
    assert any("heldout/sft/pass_at_1" in json.loads(m) for _, m in rows)
    stored = stored.decode() if isinstance(stored, bytes) else stored
    assert SECRET not in stored and json.loads(stored)["max_samples"] == 12


def test_missing_tracker_warns_once_and_runs_apart(distill_home, tiny_run, caplog, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: `import wandb` raises ImportError
    with caplog.at_level(logging.WARNING, logger="distill"):
        out = _run(tiny_run, distill_home, "no_wandb", report_to="wandb,tensorboard")
    warned = [r.getMessage() for r in caplog.records if "Tracker" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("Tracker wandb is not installed, the run goes on")
    assert (out / "evaluation_results.json").is_file()
    assert set(read_tracking(out)["trackers"]) == {"tensorboard"}
    # The next run in the same process asks for nothing: nothing of the first leaks into it.
    plain = _run(tiny_run, distill_home, "plain")
    assert not (plain / "tracking.json").exists() and not (plain / "tensorboard").exists()


def test_wandb_offline_writes_its_run_file(distill_home, tiny_run, secrets_set, monkeypatch):
    """wandb 0.31 ships no reader for an offline run's ``.wandb`` log (its datastore module is gone), so the
    points are counted in the file's bytes (protobuf keeps the keys as plain strings) rather than parsed."""
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = _run(tiny_run, distill_home, "wandb_run", report_to="wandb")
    info = read_tracking(out)["trackers"]["wandb"]
    assert info["mode"] == "offline"
    [log_file] = Path(info["dir"]).glob(f"run-{info['id']}.wandb")
    # wandb-core (its own process) may still be writing the file when finish() returns: wait for it, up to 20 s.
    deadline = time.monotonic() + 20
    while (data := log_file.read_bytes()).count(b"train/loss") < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert data.count(b"train/loss") >= len(_trained_steps(out)) and b"heldout/sft/pass_at_1" in data
    assert SECRET.encode() not in data


def test_run_page_lists_where_the_run_is_tracked():
    from ui.pages.run_detail_view import parent_html

    run = {"id": 3, "config": {}, "tracking": {"trackers": {
        "mlflow": {"tracking_uri": "sqlite:///h/mlruns.db", "experiment_id": "2", "run_id": "ab12"},
        "trackio": {"project": "distill", "run": "run_3", "dir": "/h/trackio"}}}}
    html = parent_html(run)
    assert 'href="http://127.0.0.1:5000/#/experiments/2/runs/ab12"' in html
    assert "trackio show --project distill" in html and "run_3" in html
    # trackio's dashboard on this server (/trackio), its project open and the run selected.
    assert 'href="/trackio/?project=distill&amp;runs=run_3"' in html
    assert parent_html({"id": 4, "config": {}}) == ""


def test_unreachable_mlflow_server_warns_once_naming_it_and_the_run_goes_on(distill_home, tiny_run, caplog,
                                                                          monkeypatch):
    """A closed local port: MLflow's own client would retry for minutes (246 s measured here); the run goes on after
    one short check, with one warning line naming mlflow and the URL, and no password from the URL."""
    import socket

    pytest.importorskip("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is: nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:{SECRET}@127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, logger="distill"):
        started = time.time()  # the clock of a log record's `created`
        out = _run(tiny_run, distill_home, "mlflow_down", report_to="mlflow")
    warned = [r for r in caplog.records if "Tracker" in r.getMessage()]
    assert [r.getMessage() for r in warned] == [
        f"Tracker mlflow could not be opened, the run goes on without it: cannot reach http://127.0.0.1:{port} "
        "(ConnectionError within 5 s)"]
    # The trackers open first thing in the run: the warning came after the one short check (0.6 s measured).
    assert warned[0].created - started < 10, f"the warning came {warned[0].created - started:.0f} s in"
    assert SECRET not in caplog.text
    assert (out / "evaluation_results.json").is_file() and not (out / "tracking.json").exists()
