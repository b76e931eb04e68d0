"""/datasets: built-ins and uploads; upload (.jsonl/.json/.parquet, size-limited); preview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from backend.deps import Services, services
from backend.errors import FieldError, TooLarge
from backend.schemas import DatasetList, DatasetOut, PreviewOut

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get("", response_model=DatasetList)
def list_datasets(svc: Services = Depends(services)) -> DatasetList:
    return DatasetList(items=svc.datasets.list())


@router.post("", status_code=201, response_model=DatasetOut,
             summary="Upload a dataset as multipart field `file` (.jsonl/.json/.parquet)",
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file"],
                 "properties": {"file": {"type": "string", "format": "binary"}}}}}, "required": True}})
async def upload_dataset(request: Request, svc: Services = Depends(services)) -> DatasetOut:
    limit = svc.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # multipart framing slack
        raise TooLarge(f"upload is {declared} bytes; the limit is {svc.settings.max_upload_mb:g} MB "
                       "(DISTILL_MAX_UPLOAD_MB)")
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise FieldError("file", "a multipart file field named 'file' is required")
        out = await run_in_threadpool(svc.datasets.upload, upload.filename or "", upload.file, upload.size)
        return DatasetOut(**out)
    finally:
        await form.close()


@router.get("/{dataset_id}/preview", response_model=PreviewOut)
async def preview(dataset_id: str, n: Annotated[int, Query(ge=1, le=100)] = 5,
                  svc: Services = Depends(services)) -> PreviewOut:
    return PreviewOut(**await run_in_threadpool(svc.datasets.preview, dataset_id, n))
