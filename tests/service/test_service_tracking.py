"""GET /api/v1/runs/{id} says where --report_to sent the run: its folder's tracking.json, as written."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from backend.config import Settings

API = "/api/v1"


def test_run_detail_carries_the_tracking_record(client: TestClient, settings: Settings) -> None:
    r = client.post(f"{API}/runs", json={"model": "tiny-random", "report_to": "trackio,mlflow"})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["config"]["report_to"] == ["trackio", "mlflow"]
    assert client.get(f"{API}/runs/{run['id']}").json()["tracking"] is None  # nothing tracked yet
    record = {"project": "distill", "run_name": f"run_{run['id']}",
              "trackers": {"mlflow": {"tracking_uri": "sqlite:///x.db", "experiment_id": "1", "run_id": "abc"}}}
    folder = Path(run["output_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tracking.json").write_text(json.dumps(record))
    assert client.get(f"{API}/runs/{run['id']}").json()["tracking"] == record


def test_unknown_tracker_is_a_422_naming_the_field(client: TestClient) -> None:
    r = client.post(f"{API}/runs", json={"report_to": ["comet"]})
    assert r.status_code == 422
    assert "report_to" in r.text and "unknown tracker 'comet'" in r.text
