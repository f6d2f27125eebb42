"""/v1/files: upload (multipart, purpose=fine-tune), list, retrieve, delete, download."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from orgtune.serve.errors import APIError
from orgtune.service import files
from orgtune.service.api.deps import DB, Project, Settings

router = APIRouter(prefix="/v1/files")


@router.post("")
def upload(
    request: Request, file: UploadFile, db: DB, settings: Settings, p: Project, purpose: str = Form(...)
) -> dict:
    size = int(request.headers.get("content-length") or 0)
    if size > settings.max_upload_mb * 2**20 + 2**16:
        raise APIError(
            413,
            f"the upload is larger than this service's limit of {settings.max_upload_mb:g} MB",
            param="file",
            code="file_too_large",
        )
    return files.file_object(files.store_upload(db, settings, p.project_id, file.file, file.filename, purpose))


@router.get("")
def list_files(
    db: DB,
    p: Project,
    purpose: str | None = None,
    after: str | None = None,
    limit: int = Query(10000, ge=1, le=10000),
    order: Literal["asc", "desc"] = "desc",
) -> dict:
    return files.list_files(db, p.project_id, purpose=purpose, after=after, limit=limit, order=order)


@router.get("/{file_id}")
def retrieve(file_id: str, db: DB, p: Project) -> dict:
    with db.reading() as s:
        return files.file_object(files.own_file(s, p.project_id, file_id))


@router.delete("/{file_id}")
def delete(file_id: str, db: DB, p: Project) -> dict:
    return files.delete_file(db, p.project_id, file_id)


@router.get("/{file_id}/content")
def content(file_id: str, db: DB, p: Project):
    with db.reading() as s:
        f = files.own_file(s, p.project_id, file_id)
    return FileResponse(f.path, filename=f.filename, media_type="application/octet-stream")
