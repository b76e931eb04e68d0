"""GET /runs/{id}/exports: a real GGUF export of a run folder listed with its download links, each file served,
and names that would leave the folder refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.store import Store
from backend.tables import Run, utcnow
from distill.config import build_config
from distill.export.gguf import converter_dir
from distill.export.run import ExportRequest, export_run

API = "/api/v1"
pytestmark = pytest.mark.skipif(not (converter_dir() / "convert_hf_to_gguf.py").is_file(),
                                reason="llama.cpp's converter is not installed: make setup installs it")


def _finished_run(settings: Settings, tiny_model_path: str) -> tuple[int, Path]:
    """A run row and a finished run folder whose merged model is the tiny model (nothing trained: the route is
    what is tested; the export itself is real)."""
    store = Store(settings)
    with store.sessions() as s:
        run = Run(name="exp", status="succeeded", config={"mode": "all", "model": "tiny-random"}, created_at=utcnow(),
                  progress=1.0, cancel_requested=False, attempts=1, task_id="t")
        s.add(run)
        s.flush()
        out = settings.runs_dir / f"run_{run.id}"
        run.output_dir = str(out)
        s.commit()
        rid = run.id
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(build_config({"model": "tiny-random"}).to_json()))
    (out / "timings.json").write_text("{}")
    shutil.copytree(tiny_model_path, out / "merged_model")
    return rid, out


def test_exports_are_listed_with_links_and_served(client: TestClient, settings: Settings, tiny_model_path: str):
    rid, out = _finished_run(settings, tiny_model_path)
    assert client.get(f"{API}/runs/{rid}/exports").json() == {"items": [], "jobs": []}
    done = export_run(out, ExportRequest(to="ollama"))
    (out / "exports" / ".gguf-unfinished.x").mkdir()  # an export being written is not listed
    items = client.get(f"{API}/runs/{rid}/exports").json()["items"]
    assert [i["name"] for i in items] == [done["name"]]
    files = {f["name"]: f for f in items[0]["files"]}
    assert set(files) == {"Modelfile", f"run_{rid}-f16.gguf"}
    assert items[0]["ggufs"][0]["file_type"] == "MOSTLY_F16"
    gguf = client.get(f"{API}/{files[f'run_{rid}-f16.gguf']['url']}")
    assert gguf.status_code == 200 and gguf.content == (Path(done["path"]) / f"run_{rid}-f16.gguf").read_bytes()
    assert client.get(f"{API}/{files['Modelfile']['url']}").text.startswith(f"FROM ./run_{rid}-f16.gguf")
    for bad in (f"{done['name']}/..%2F..%2Fconfig.json", ".gguf-unfinished.x/x", f"{done['name']}/.hidden"):
        r = client.get(f"{API}/runs/{rid}/exports/{bad}")
        assert r.status_code in (400, 404) and "content-disposition" not in r.headers
