"""Hub export against a stand-in Hub (tests/standin_hub.py) reached through huggingface_hub's HfApi: the staged
folder file by file, the calls recorded, the token sent but never written; the Hub unreachable is one line."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from distill.config import build_config
from distill.export.hub import HubExportError
from distill.export.run import ExportRequest, export_run
from distill.pipeline import run_pipeline
from tests.conftest import TINY_RUN
from tests.standin_hub import StandinHub

TOKEN = "hf_standin_secret_token"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "run_hub"
    run_pipeline(build_config({**TINY_RUN, "mode": "train", "output_dir": str(out)}))
    return out


@pytest.fixture()
def online(monkeypatch):
    """The suite runs with HF_HUB_OFFLINE=1; the library reads it once, so its constant is what counts."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


@pytest.fixture()
def hub(monkeypatch):
    server = StandinHub()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.close()


def test_upload_stages_model_card_and_report_and_records_the_calls(trained, tmp_path, online, hub):
    run = Path(shutil.copytree(trained, tmp_path / trained.name))
    done = export_run(run, ExportRequest(to="hub", repo_id="me/tiny-distill"))
    assert json.loads(hub.calls[0]["body"]) == {"name": "tiny-distill", "organization": "me",
                                                "visibility": "private", "type": "model"}
    assert all(c["auth"] == f"Bearer {TOKEN}" for c in hub.calls)
    uploaded = hub.files["me/tiny-distill@main"]
    staged = Path(done["path"])
    assert sorted(uploaded) == sorted(p.name for p in staged.iterdir() if p.name != "export.json")
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "data_report.json"} <= set(uploaded)
    assert all(uploaded[name] == (staged / name).read_bytes() for name in uploaded)
    assert b"base_model_relation: finetune" in uploaded["README.md"]
    assert (hub.cards[0]["library_name"], hub.cards[0]["base_model_relation"]) == ("transformers", "finetune")
    assert done["hub"]["commit_url"].endswith("/me/tiny-distill/commit/abc123")
    written = b"".join(p.read_bytes() for p in run.rglob("*") if p.is_file())
    assert TOKEN.encode() not in written


def test_second_upload_as_a_pr_to_an_existing_public_repo(trained, tmp_path, online, hub):
    run = Path(shutil.copytree(trained, tmp_path / trained.name))
    export_run(run, ExportRequest(to="hub", repo_id="me/r", private=False))
    done = export_run(run, ExportRequest(to="hub", repo_id="me/r", private=False, create_pr=True,
                                         weights="adapter"))
    creates = [json.loads(c["body"]) for c in hub.calls if c["path"] == "/api/repos/create"]
    assert [c["visibility"] for c in creates] == ["public", "public"]  # the second answered 409: exist_ok
    assert done["hub"]["pr_url"].endswith("/me/r/discussions/1")
    assert "adapter_model.safetensors" in hub.files["me/r@refs/pr/1"]
    assert "adapter_model.safetensors" not in hub.files["me/r@main"]
    assert len(list((run / "exports").iterdir())) == 2


def test_hub_unreachable_is_one_line_and_leaves_nothing(trained, tmp_path, online, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    run = Path(shutil.copytree(trained, tmp_path / trained.name))
    with pytest.raises(HubExportError) as err:
        export_run(run, ExportRequest(to="hub", repo_id="me/r"))
    assert str(err.value).startswith(f"the Hugging Face Hub at http://127.0.0.1:{port} cannot be reached")
    assert "\n" not in str(err.value) and not any((run / "exports").iterdir())


def test_real_hub_upload():
    pytest.skip("needs the real Hugging Face Hub and a write token; this machine has no route to it")


def test_revision_is_a_branch_created_then_committed_to(trained, tmp_path, online, hub):
    run = Path(shutil.copytree(trained, tmp_path / trained.name))
    export_run(run, ExportRequest(to="hub", repo_id="me/b", revision="dev"))
    assert "/api/models/me/b/branch/dev" in [c["path"] for c in hub.calls]
    assert "README.md" in hub.files["me/b@dev"] and "me/b@main" not in hub.files


def test_create_pr_with_a_revision_is_refused_before_anything(trained, tmp_path, online, hub):
    run = Path(shutil.copytree(trained, tmp_path / trained.name))
    with pytest.raises(Exception, match="--create-pr opens a pull request against the default branch"):
        export_run(run, ExportRequest(to="hub", repo_id="me/b", revision="dev", create_pr=True))
    assert hub.calls == [] and not (run / "exports").exists()
