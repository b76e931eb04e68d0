"""/runs/{id}/exports: queue an export job (``POST``), what the exports wrote under the run folder's ``exports/`` and
the run's export jobs (``GET``), each file; /export-jobs/{id}: one job's status, progress and log, and its cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.schemas import ExportJobOut, ExportJobRequest, ExportsOut
from backend.services.artifacts import artifact_path
from backend.services.exports import ExportService
from distill.export.run import EXPORTS, list_exports

router = APIRouter(tags=["exports"])


def export_service(svc: Services = Depends(services)) -> ExportService:
    return ExportService(svc.settings, svc.sessions, svc.dispatcher)


def _with_links(run_id: int, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    files = [{"name": f, "size": (folder / manifest["name"] / f).stat().st_size,
              "url": f"runs/{run_id}/exports/{manifest['name']}/{f}"}
             for f in manifest.get("files", []) if (folder / manifest["name"] / f).is_file()]
    return {**{k: v for k, v in manifest.items() if k != "ggufs"}, "ggufs": [
        {k: v for k, v in g.items() if k != "chat_template"} for g in manifest.get("ggufs", [])], "files": files}


@router.post("/runs/{run_id}/exports", status_code=202, response_model=ExportJobOut,
             summary="Queue an export job (GGUF, Ollama, the Hub) of a succeeded run's model; every refusable input "
                     "is refused now, in one line")
async def create_export_job(run_id: int, body: ExportJobRequest,
                            exports: ExportService = Depends(export_service)) -> ExportJobOut:
    return ExportJobOut.of(await run_in_threadpool(exports.create, run_id, body))


@router.get("/runs/{run_id}/exports", response_model=ExportsOut,
            summary="The run's finished exports, newest first, with download links, and its export jobs")
def get_exports(run_id: int, svc: Services = Depends(services), s: Session = Depends(session),
                exports: ExportService = Depends(export_service)) -> ExportsOut:
    out = svc.runs.get(s, run_id).output_dir
    items = [_with_links(run_id, Path(out) / EXPORTS, m) for m in list_exports(Path(out))] if out else []
    return ExportsOut(items=items, jobs=[ExportJobOut.of(j) for j in exports.of_run(s, run_id)])


@router.get("/export-jobs/{job_id}", response_model=ExportJobOut,
            summary="One export job: status, stage, progress, log")
def get_export_job(job_id: int, s: Session = Depends(session),
                   exports: ExportService = Depends(export_service)) -> ExportJobOut:
    return ExportJobOut.of(exports.get(s, job_id))


@router.post("/export-jobs/{job_id}/cancel", response_model=ExportJobOut,
             summary="Cancel an export job: a queued one at once, a running one before its next step")
def cancel_export_job(job_id: int, exports: ExportService = Depends(export_service)) -> ExportJobOut:
    return ExportJobOut.of(exports.cancel(job_id))


@router.get("/runs/{run_id}/exports/{export}/{name}", summary="One exported file (a GGUF, a Modelfile, …)",
            response_class=FileResponse)
def get_export_file(run_id: int, export: str, name: str, svc: Services = Depends(services),
                    s: Session = Depends(session)) -> FileResponse:
    exports = artifact_path(svc.runs.get(s, run_id).output_dir, EXPORTS)
    path = artifact_path(str(artifact_path(str(exports), export)), name)
    return FileResponse(path, filename=path.name)
