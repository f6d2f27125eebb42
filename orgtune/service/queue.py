"""The queue engine for teams with many machines: Procrastinate on the job store's PostgreSQL.

    orgtune service                        # with ORGTUNE_EXECUTOR=procrastinate: jobs go to the queue
    orgtune worker --slots 2               # on each GPU machine (same ORGTUNE_DATABASE_URL, shared ORGTUNE_HOME)

The service defers one `orgtune.run_job` queue job per fine-tuning job (queueing lock = the job id, so
it is queued once; lock = the job id, so two never run at once). A worker runs it as the same runner
subprocess as the embedded executor, one per slot (CUDA_VISIBLE_DEVICES pinned). Procrastinate's worker
heartbeats mark a killed worker's jobs stalled; a periodic task re-queues them, and the next runner
takes the job's lease over and resumes from the last checkpoint (lease.py counts the attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from sqlalchemy import select

from orgtune.service.db import Database, psycopg_conninfo
from orgtune.service.executors import die_with_parent, gpu_count, runner_command, runner_env
from orgtune.service.jobs import job_dir
from orgtune.service.models import Job
from orgtune.service.settings import ServiceSettings

QUEUE = "orgtune"
TASK = "orgtune.run_job"


def make_app(db: Database, settings: ServiceSettings, *, gpus: int = 0):
    """The Procrastinate app with orgtune's two tasks: run a job (on one of this worker's slots: a GPU
    each, or the CPU), and re-queue the jobs of workers that stopped sending heartbeats."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=psycopg_conninfo(db.url)))
    slots: list[int] = list(range(settings.slots or max(gpus, 1)))

    @app.task(name=TASK, queue=QUEUE)
    async def run_job(job_id: str) -> None:
        slot = slots.pop(0)  # the worker runs at most len(slots) jobs at once
        try:
            await _run(db, settings, job_id, slot if gpus else None)
        finally:
            slots.append(slot)
        with db.reading() as s:
            status = s.scalar(select(Job.status).where(Job.id == job_id))
        if status == "queued":  # requeued by its runner (a crash with attempts left, or SIGTERM)
            await defer_async(app, job_id)

    # Higher priority than any job: when a slot frees, stalled jobs go back into the queue first.
    @app.periodic(cron=f"*/{max(1, int(settings.heartbeat_interval))} * * * * *", periodic_id="stalled")
    @app.task(name="orgtune.retry_stalled", queue=QUEUE, queueing_lock="orgtune.retry_stalled", priority=100)
    async def retry_stalled(timestamp: int) -> None:
        for job in await app.job_manager.get_stalled_jobs(
            task_name=TASK, seconds_since_heartbeat=settings.heartbeat_timeout
        ):
            await app.job_manager.retry_job(job)

    return app


async def _run(db: Database, settings: ServiceSettings, job_id: str, gpu: int | None) -> int:
    folder = job_dir(settings, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "runner.log", "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *runner_command(job_id),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env=runner_env(db, settings, gpu),
            preexec_fn=die_with_parent,
        )
    try:
        return await proc.wait()
    except asyncio.CancelledError:  # the worker is shutting down: the runner checkpoints and requeues itself
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        await asyncio.shield(proc.wait())
        raise


def _deferrer(app, job_id: str):
    return app.tasks[TASK].configure(lock=job_id, queueing_lock=job_id)


async def defer_async(app, job_id: str) -> None:
    import procrastinate.exceptions as pe

    with contextlib.suppress(pe.AlreadyEnqueued):
        await _deferrer(app, job_id).defer_async(job_id=job_id)


def ensure_schema(app) -> None:
    """Apply Procrastinate's schema once (the first service or worker on a new database does it)."""
    import psycopg

    conninfo = app.connector._pool_args.get("conninfo") if hasattr(app.connector, "_pool_args") else None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7301002)")
        try:
            exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
            if exists is None:
                conn.execute(app.schema_manager.get_schema())
        finally:
            conn.execute("SELECT pg_advisory_unlock(7301002)")


class ProcrastinateExecutor:
    name = "procrastinate"

    def __init__(self, db: Database, settings: ServiceSettings):
        self.db, self.settings = db, settings
        self.app = make_app(db, settings)

    def start(self) -> None:
        ensure_schema(self.app)
        self.app.open()

    def stop(self) -> None:
        self.app.close()

    def submit(self, job_id: str) -> None:
        import procrastinate.exceptions as pe

        with contextlib.suppress(pe.AlreadyEnqueued):
            _deferrer(self.app, job_id).defer(job_id=job_id)

    def cancel(self, job_id: str) -> None:
        """A queued run is dropped from the queue; a running one is stopped by its runner (it polls)."""
        for qjob in self.app.job_manager.list_jobs(queueing_lock=job_id, status="todo"):
            self.app.job_manager.cancel_job_by_id(qjob.id)

    def running(self) -> list[str]:
        return []


def run_worker(settings: ServiceSettings, *, name: str | None = None) -> None:
    """`orgtune worker`: consume the queue until SIGINT/SIGTERM (running jobs checkpoint and requeue)."""
    db = Database(settings.db_url())
    db.migrate()
    gpus = gpu_count()
    app = make_app(db, settings, gpus=gpus)
    ensure_schema(app)
    app.run_worker(
        queues=[QUEUE],
        concurrency=settings.slots or max(gpus, 1),
        name=name,
        update_heartbeat_interval=settings.heartbeat_interval,
        stalled_worker_timeout=settings.heartbeat_timeout,
        shutdown_graceful_timeout=30,
        fetch_job_polling_interval=settings.poll_interval,
        listen_notify=True,
    )
