"""/runs/{id}/artifacts: the run folder's files; folders as zips."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from backend.deps import Services, services, session
from backend.schemas import ArtifactList
from backend.services.artifacts import artifact_path, list_artifacts, zip_folder

router = APIRouter(prefix="/runs/{run_id}/artifacts", tags=["artifacts"])


@router.get("", response_model=ArtifactList)
def get_artifacts(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> ArtifactList:
    run = svc.runs.get(s, run_id)
    return ArtifactList(items=list_artifacts(run.output_dir))


@router.get("/{name:path}", summary="One artifact; a folder comes as a zip", response_class=FileResponse)
async def get_artifact(name: str, run_id: int, svc: Services = Depends(services)) -> FileResponse:
    def locate():  # noqa: ANN202
        with svc.sessions() as s:
            return artifact_path(svc.runs.get(s, run_id).output_dir, name)

    path = await run_in_threadpool(locate)
    if path.is_dir():
        archive = await run_in_threadpool(zip_folder, path)
        return FileResponse(archive, filename=f"{path.name}.zip", media_type="application/zip",
                            background=BackgroundTask(os.unlink, archive))
    media = "text/markdown" if path.suffix == ".md" else None
    return FileResponse(path, filename=path.name, media_type=media)
