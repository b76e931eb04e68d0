"""Upload a staged export folder to the Hugging Face Hub with ``huggingface_hub``'s ``HfApi``.

The token comes from ``HF_TOKEN`` and is passed to the client only: never written, logged or stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from distill.errors import UserError, one_line

TOKEN_ENV = "HF_TOKEN"
MANIFEST = "export.json"  # the export's own record: kept in the run folder, not uploaded


class HubExportError(UserError, RuntimeError):
    """The Hub export cannot be done (no token, Hub unreachable, refused); one line."""


def hub_token() -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise HubExportError(f"no Hugging Face token: set {TOKEN_ENV} to a write token to export to the Hub")
    return token


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def upload(folder: Path, repo_id: str, private: bool, revision: str | None, create_pr: bool,
           token: str) -> dict[str, Any]:
    """create_repo (exist_ok) then upload_folder; the commit's url and, with ``create_pr``, the PR's."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(endpoint=endpoint(), token=token)
    try:
        repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision and not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, create_pr=create_pr,
                                   commit_message="Upload from distill-studio", ignore_patterns=[MANIFEST])
    except OfflineModeIsEnabled:
        raise HubExportError("the Hugging Face Hub cannot be used: offline mode is on (unset HF_HUB_OFFLINE)") from None
    except HfHubHTTPError as e:
        raise HubExportError(f"the Hub at {endpoint()} refused the upload to {repo_id}: {one_line(e)}") from None
    except OSError as e:  # httpx's connection errors are OSErrors underneath; the client's own are wrapped below
        raise HubExportError(f"the Hugging Face Hub at {endpoint()} cannot be reached ({one_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - httpx.ConnectError / TimeoutException are not OSError subclasses
        if type(e).__module__.startswith("httpx"):
            raise HubExportError(f"the Hugging Face Hub at {endpoint()} cannot be reached ({one_line(e)})") from None
        raise
    return {"repo_url": str(repo), "commit_url": commit.commit_url, "pr_url": commit.pr_url,
            "private": private, "revision": revision}
