"""`orgtune service`: one FastAPI app — OpenAI's files and fine-tuning jobs API over the job store, and
the inference API serving the base models and every succeeded job's model, behind project API keys.

    GET  /health
    /v1/files…                      service/api/files.py
    /v1/fine_tuning/jobs…           service/api/jobs.py
    /v1/admin/keys…                 service/api/admin.py
    /v1/models, /v1/chat/completions, /v1/completions     serve/routes.py, per project (catalog.py)
    /v1/fine_tuning/jobs/{id}/events/stream, /v1/orgtune/jobs/{id}/report   service/api/stream.py, reports.py
    /, /login, /static/*            the web dashboard, service/dashboard/

On start the schema is migrated, jobs left in `validating_files` are checked again, and the executor
starts (the local supervisor, or the Procrastinate queue for `orgtune worker`s).
"""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import func, select

from orgtune.serve.errors import install_error_handlers
from orgtune.serve.limits import BodyLimit
from orgtune.serve.routes import inference_router, set_limits
from orgtune.service import jobs
from orgtune.service.api import admin, files
from orgtune.service.api import jobs as jobs_api
from orgtune.service.api import nightly as nightly_api
from orgtune.service.api import reports as reports_api
from orgtune.service.api import stream as stream_api
from orgtune.service.api.deps import project
from orgtune.service.catalog import Engines, ProjectCatalog
from orgtune.service.dashboard import routes as dashboard
from orgtune.service.db import Database
from orgtune.service.executors import make_executor
from orgtune.service.keys import Principal
from orgtune.service.models import Job
from orgtune.service.nightly import Scheduler
from orgtune.service.settings import ServiceSettings

MAX_BODY_MB = 4  # JSON bodies of every route but the file upload


def catalog(request: Request, p: Annotated[Principal, Depends(project)]) -> ProjectCatalog:
    st = request.app.state
    return ProjectCatalog(st.db, st.settings, st.engines, p)


def recover(db: Database, executor) -> None:
    """Jobs a stopped service left behind: files still to check, and queued jobs for the executor."""
    with db.reading() as s:
        pending = list(s.scalars(select(Job.id).where(Job.status == "validating_files")))
        queued = list(s.scalars(select(Job.id).where(Job.status == "queued")))
    for job_id in pending:
        if jobs.validate_job(db, job_id) == "queued":
            queued.append(job_id)
    for job_id in queued:
        executor.submit(job_id)


def create_service_app(
    settings: ServiceSettings | None = None, *, db: Database | None = None, executor=None, log=print
) -> FastAPI:
    settings = settings or ServiceSettings()
    db = db or Database(settings.db_url())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        db.migrate()
        ex = app.state.executor
        ex.start()
        recover(db, ex)
        scheduler = Scheduler(db, settings, log=log)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
            ex.stop()
            app.state.engines.stop()

    app = FastAPI(title="orgtune service", docs_url=None, redoc_url=None, lifespan=lifespan)
    install_error_handlers(app)
    set_limits(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_MB * 2**20, exempt=("/v1/files",))  # uploads: their own cap
    app.state.db, app.state.settings = db, settings
    app.state.executor = executor or make_executor(db, settings, log=log)
    app.state.engines = Engines(settings)
    for r in (
        files.router,
        stream_api.router,
        jobs_api.router,
        admin.router,
        nightly_api.router,
        reports_api.router,
        inference_router(catalog),
        dashboard.router,
    ):
        app.include_router(r)

    @app.get("/health")
    def health() -> dict:
        with db.reading() as s:
            counts = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        return {
            "status": "ok",
            "executor": app.state.executor.name,
            "database": db.engine.dialect.name,
            "jobs": counts,
            "running_here": app.state.executor.running(),
        }

    return app
