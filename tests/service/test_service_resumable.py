"""``resumable`` in ``GET /runs/{id}`` agrees with what ``POST /runs/{id}/resume`` answers, case by case."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.store import Store
from backend.tables import Run, utcnow

API = "/api/v1"


def _run(settings: Settings, status: str, **config: Any) -> int:
    store = Store(settings, role="api")
    with store.sessions() as s:
        run = Run(name="r", status=status, config={"mode": "all", "model": "tiny-random", **config},
                  created_at=utcnow(), progress=0.0, cancel_requested=False, attempts=1, task_id="t")
        s.add(run)
        s.flush()
        run.output_dir = str(settings.runs_dir / f"run_{run.id}")
        s.commit()
        return run.id


def _checkpoint(settings: Settings, rid: int) -> None:
    folder = settings.runs_dir / f"run_{rid}" / "checkpoints" / "checkpoint-2"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x")


CASES = [  # (status, config, with a checkpoint, resumable, why not)
    ("failed", {}, False, False, "has no checkpoint to resume from"),
    ("cancelled", {}, True, True, None),
    ("succeeded", {}, True, False, "only a failed or cancelled run can be resumed"),
    ("running", {}, False, False, "only a failed or cancelled run can be resumed"),
    ("failed", {"mode": "evaluate"}, False, True, None),
    ("cancelled", {"mode": "generate"}, False, True, None),
    ("failed", {"teacher_model": "teacher"}, False, True, None),
]


@pytest.mark.parametrize("status,config,checkpoint,resumable,why", CASES)
def test_resumable_agrees_with_resume(client: TestClient, settings: Settings, status: str, config: dict,
                                      checkpoint: bool, resumable: bool, why: str | None) -> None:
    rid = _run(settings, status, **config)
    if checkpoint:
        _checkpoint(settings, rid)
    run = client.get(f"{API}/runs/{rid}").json()
    assert run["resumable"] is resumable
    if why is None:
        assert run["resume_refused"] is None
    else:
        assert why in run["resume_refused"]
    r = client.post(f"{API}/runs/{rid}/resume")
    assert r.status_code == (202 if resumable else 409), r.text
    if not resumable:
        assert r.json()["detail"] == run["resume_refused"]  # the same sentence, from the same rule
    else:  # queued now: no longer resumable
        assert client.get(f"{API}/runs/{rid}").json()["resumable"] is False
