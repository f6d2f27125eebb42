"""/v1/fine_tuning/jobs: create, list, retrieve, cancel, resume, events, checkpoints."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Query, Request

from orgtune.service import events, jobs
from orgtune.service.api.deps import DB, Project, Settings
from orgtune.service.schemas import JobCreate

router = APIRouter(prefix="/v1/fine_tuning/jobs")


def validate_and_queue(request: Request, job_id: str) -> None:
    """After the response: check the files; a valid job goes to the executor."""
    if jobs.validate_job(request.app.state.db, job_id) == "queued":
        request.app.state.executor.submit(job_id)


@router.post("")
def create(
    req: JobCreate, request: Request, background: BackgroundTasks, db: DB, settings: Settings, p: Project
) -> dict:
    job = jobs.create_job(db, settings, p, req)
    background.add_task(validate_and_queue, request, job.id)
    return jobs.get_job(db, p.project_id, job.id)


@router.get("")
def list_jobs(
    request: Request, db: DB, p: Project, after: str | None = None, limit: int = Query(20, ge=1, le=100)
) -> dict:
    meta = {
        k[len("metadata[") : -1]: v
        for k, v in request.query_params.items()
        if k.startswith("metadata[") and k.endswith("]")
    }
    return jobs.list_jobs(db, p.project_id, after=after, limit=limit, metadata=meta or None)


@router.get("/{job_id}")
def retrieve(job_id: str, db: DB, p: Project) -> dict:
    return jobs.get_job(db, p.project_id, job_id)


@router.post("/{job_id}/cancel")
def cancel(job_id: str, request: Request, db: DB, settings: Settings, p: Project) -> dict:
    jobs.get_job(db, p.project_id, job_id)  # 404 before anything is touched
    request.app.state.executor.cancel(job_id)
    return jobs.cancel_job(db, p.project_id, job_id, wait=settings.cancel_wait)


@router.post("/{job_id}/resume")
def resume(job_id: str, request: Request, db: DB, p: Project) -> dict:
    job = jobs.resume_job(db, p.project_id, job_id)
    request.app.state.executor.submit(job_id)
    return job


@router.get("/{job_id}/events")
def list_events(
    job_id: str, db: DB, p: Project, after: str | None = None, limit: int = Query(20, ge=1, le=1000)
) -> dict:
    jobs.get_job(db, p.project_id, job_id)
    return events.list_events(db, job_id, after=after, limit=limit)


@router.get("/{job_id}/checkpoints")
def list_checkpoints(
    job_id: str, db: DB, p: Project, after: str | None = None, limit: int = Query(10, ge=1, le=100)
) -> dict:
    with db.reading() as s:
        job = jobs.own_job(s, p.project_id, job_id)
    return events.list_checkpoints(db, job, after=after, limit=limit)
