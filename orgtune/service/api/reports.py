"""/v1/orgtune/jobs/{id}/report: a job's resolved config, eval report and exports, read from its folder
(orgtune's own route, for the dashboard; the files themselves download through /v1/files/{id}/content)."""

from __future__ import annotations

from fastapi import APIRouter

from orgtune.service import jobs, reports
from orgtune.service.api.deps import DB, Project, Settings

router = APIRouter(prefix="/v1/orgtune/jobs")


@router.get("/{job_id}/report")
def job_report(job_id: str, db: DB, settings: Settings, p: Project) -> dict:
    with db.reading() as s:
        job = jobs.own_job(s, p.project_id, job_id)
    return reports.job_report(db, jobs.job_dir(settings, job_id), job)
