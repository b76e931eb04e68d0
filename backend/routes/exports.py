"""/runs/{id}/exports: what ``distill export`` wrote under the run folder's ``exports/``, and each file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.services.artifacts import artifact_path
from distill.export.run import EXPORTS, list_exports

router = APIRouter(prefix="/runs/{run_id}/exports", tags=["exports"])


def _with_links(run_id: int, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    files = [{"name": f, "size": (folder / manifest["name"] / f).stat().st_size,
              "url": f"runs/{run_id}/exports/{manifest['name']}/{f}"}
             for f in manifest.get("files", []) if (folder / manifest["name"] / f).is_file()]
    return {**{k: v for k, v in manifest.items() if k != "ggufs"}, "ggufs": [
        {k: v for k, v in g.items() if k != "chat_template"} for g in manifest.get("ggufs", [])], "files": files}


@router.get("", summary="The run's finished exports (GGUF, Ollama, Hub), newest first, with download links")
def get_exports(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> dict[str, Any]:
    out = svc.runs.get(s, run_id).output_dir
    if not out:
        return {"items": []}
    return {"items": [_with_links(run_id, Path(out) / EXPORTS, m) for m in list_exports(Path(out))]}


@router.get("/{export}/{name}", summary="One exported file (a GGUF, a Modelfile, …)", response_class=FileResponse)
def get_export_file(run_id: int, export: str, name: str, svc: Services = Depends(services),
                    s: Session = Depends(session)) -> FileResponse:
    exports = artifact_path(svc.runs.get(s, run_id).output_dir, EXPORTS)
    path = artifact_path(str(artifact_path(str(exports), export)), name)
    return FileResponse(path, filename=path.name)
