"""Uploaded files (purpose `fine-tune`) and the results jobs write (purpose `fine-tune-results`).

An upload is streamed to disk under a size cap, its kind is decided (JSONL dataset, one document, or
an archive of documents, whose members are checked before anything is kept), and it is stored at
ORGTUNE_HOME/service/files/<file-id>/<its name>. Rows are the project's own: a file of another
project is "not found".
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from orgtune.errors import OrgtuneError
from orgtune.serve.errors import APIError, not_found
from orgtune.service.archives import ArchiveLimits, detect_kind, inspect_archive
from orgtune.service.db import Database
from orgtune.service.models import File, new_id
from orgtune.service.settings import ServiceSettings

PURPOSES = ("fine-tune",)
_CHUNK = 1 << 20


def safe_filename(name: str | None) -> str:
    """The last path component of a client's filename, without control characters; never empty."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    return base[:200] or "upload"


def archive_limits(settings: ServiceSettings) -> ArchiveLimits:
    return ArchiveLimits(max_entries=settings.archive_max_entries, max_total_bytes=int(settings.archive_max_mb * 2**20))


def store_upload(
    db: Database, settings: ServiceSettings, project_id: str, stream: BinaryIO, filename: str | None, purpose: str
) -> File:
    """Stream an upload to disk (size-capped), check it, and record it; a rejected upload leaves nothing."""
    if purpose not in PURPOSES:
        raise APIError(
            400,
            f"purpose {purpose!r} is not accepted here; this service stores `fine-tune` files",
            param="purpose",
            code="invalid_purpose",
        )
    name = safe_filename(filename)
    cap = int(settings.max_upload_mb * 2**20)
    incoming = settings.files_dir() / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=incoming)
    h, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise APIError(
                        413,
                        f"{name} is larger than this service's upload limit of {settings.max_upload_mb:g} MB",
                        param="file",
                        code="file_too_large",
                    )
                h.update(chunk)
                out.write(chunk)
        if size == 0:
            raise APIError(400, f"{name} is empty", param="file", code="empty_file")
        with open(tmp, "rb") as f:
            head = f.read(512)
        try:
            kind = detect_kind(name, head)
            if kind == "archive":
                inspect_archive(Path(tmp), archive_limits(settings))
        except OrgtuneError as e:
            raise APIError(400, e.render().replace(tmp, name), param="file", code="invalid_file") from None
        file_id = new_id("file-")
        final = settings.files_dir() / file_id / name
        final.parent.mkdir(parents=True)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    row = File(
        id=file_id,
        project_id=project_id,
        filename=name,
        purpose=purpose,
        kind=kind,
        bytes=size,
        sha256=h.hexdigest(),
        path=str(final),
        status="processed",
    )
    with db.writing() as s:
        s.add(row)
    return row


def register_result(db: Database, project_id: str, job_id: str, path: Path) -> File:
    """A file a job wrote (report, metrics, GGUF, Modelfile), downloadable like an upload."""
    path = Path(path)
    row = File(
        id=new_id("file-"),
        project_id=project_id,
        filename=path.name,
        purpose="fine-tune-results",
        kind="result",
        bytes=path.stat().st_size,
        sha256=_sha256(path),
        path=str(path),
        status="processed",
        job_id=job_id,
    )
    with db.writing() as s:
        s.add(row)
    return row


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def own_file(s, project_id: str, file_id: str, *, param: str | None = None) -> File:
    row = s.scalar(select(File).where(File.id == file_id, File.project_id == project_id, File.deleted.is_(False)))
    if row is None:
        raise not_found("file", file_id, param=param)
    return row


def file_object(f: File) -> dict:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        "status": f.status,
        "status_details": f.status_details,
        "expires_at": None,
    }


def list_files(
    db: Database, project_id: str, *, purpose: str | None, after: str | None, limit: int, order: str
) -> dict:
    with db.reading() as s:
        q = select(File).where(File.project_id == project_id, File.deleted.is_(False))
        if purpose:
            q = q.where(File.purpose == purpose)
        if after:
            anchor = own_file(s, project_id, after, param="after")
            q = q.where(File.seq < anchor.seq if order == "desc" else File.seq > anchor.seq)
        q = q.order_by(File.seq.desc() if order == "desc" else File.seq).limit(limit + 1)
        rows = list(s.scalars(q))
    data = [file_object(f) for f in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def delete_file(db: Database, project_id: str, file_id: str) -> dict:
    """Forget an upload and remove its bytes (jobs keep their own copy of their inputs)."""
    with db.writing() as s:
        f = own_file(s, project_id, file_id)
        f.deleted = True
        path, purpose = Path(f.path), f.purpose
    if purpose != "fine-tune-results":
        shutil.rmtree(path.parent, ignore_errors=True)
    return {"id": file_id, "object": "file", "deleted": True}


def link_input(src: Path, dest: Path) -> Path:
    """A job's own copy of an input file: a hard link where the filesystem allows, else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
    return dest
