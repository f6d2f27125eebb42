"""Who runs a job: at most one runner at a time holds its lease and renews a heartbeat; a runner whose
heartbeat is older than the timeout is presumed dead and the next one takes over (the run resumes
from its last checkpoint). Every take-over counts an attempt; past `max_attempts` the job fails with
the reason. This is the guard the executors rely on, whichever of them started the runner: a second
runner for the same job finds the lease held and leaves without touching anything.

    claim = claim_job(db, job_id, runner="host:pid:abc", timeout=60)
    beat(db, job_id, runner)      # -> (still ours, cancel requested)
    release(db, job_id, runner, status="succeeded", ...)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select, update

from orgtune.service.db import Database
from orgtune.service.events import add_event
from orgtune.service.models import Job, now


@dataclass
class Claim:
    outcome: str  # "run" | "busy" | "done"
    job: Job | None = None
    reason: str = ""


def claim_job(db: Database, job_id: str, runner: str, *, timeout: float) -> Claim:
    """Take the job's lease (status running, one more attempt) unless it is finished, cancelled, held by a
    live runner, or out of attempts (then it fails, with the reason)."""
    t = time.time()
    with db.writing() as s:
        j = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if j is None:
            return Claim("done", reason="no such job")
        if j.status in ("succeeded", "failed", "cancelled", "validating_files"):
            return Claim("done", j, f"job is {j.status}")
        if j.cancel_requested:
            j.status, j.finished_at, j.runner = "cancelled", now(), None
            add_event(db, job_id, "Job cancelled", session=s)
            return Claim("done", j, "cancelled")
        held = j.runner is not None and j.runner != runner and (j.heartbeat_at or 0) > t - timeout
        if held:
            return Claim("busy", j, f"held by {j.runner} (heartbeat {t - (j.heartbeat_at or 0):.1f} s ago)")
        if j.runner is not None and j.runner != runner:
            j.last_error = (
                f"runner {j.runner} stopped sending heartbeats {t - (j.heartbeat_at or 0):.0f} s ago "
                f"(during attempt {j.attempts})"
            )
            add_event(db, job_id, f"Worker lost: {j.last_error}", level="warn", session=s)
        if j.attempts >= j.max_attempts:
            j.status, j.finished_at, j.runner = "failed", now(), None
            j.error = {
                "code": "max_attempts_exceeded",
                "param": None,
                "message": f"the job ran {j.attempts} times without finishing; last: {j.last_error}",
            }
            add_event(db, job_id, f"Job failed: {j.error['message']}", level="error", session=s)
            return Claim("done", j, "out of attempts")
        j.attempts += 1
        j.runner, j.heartbeat_at, j.status = runner, t, "running"
        j.started_at = j.started_at or now()
        add_event(
            db,
            job_id,
            f"Attempt {j.attempts} of {j.max_attempts} started on {runner}",
            session=s,
            data={"attempt": j.attempts, "runner": runner, "t": t},
        )
        return Claim("run", j)


def beat(db: Database, job_id: str, runner: str) -> tuple[bool, bool]:
    """Renew the lease; returns (still ours, cancel requested)."""
    with db.writing() as s:
        n = s.execute(
            update(Job).where(Job.id == job_id, Job.runner == runner).values(heartbeat_at=time.time())
        ).rowcount
        cancel = bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
    return n == 1, cancel


def release(
    db: Database,
    job_id: str,
    runner: str,
    *,
    status: str,
    error: dict | None = None,
    last_error: str | None = None,
    message: str | None = None,
    level: str = "info",
    undo_attempt: bool = False,
    **fields,
) -> bool:
    """End this runner's hold on the job with `status` (and any other job fields); False when the lease
    was no longer ours (someone took the job over: then nothing is written)."""
    with db.writing() as s:
        j = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if j is None or j.runner != runner:
            return False
        j.status, j.runner, j.heartbeat_at = status, None, None
        if status in ("succeeded", "failed", "cancelled"):
            j.finished_at, j.estimated_finish = now(), None
        if error is not None:
            j.error = error
        if last_error is not None:
            j.last_error = last_error
        if undo_attempt:
            j.attempts = max(0, j.attempts - 1)
        for k, v in fields.items():
            setattr(j, k, v)
        if message:
            add_event(db, job_id, message, level=level, session=s, data={"status": status, "t": time.time()})
        return True


def stale_jobs(db: Database, timeout: float) -> list[str]:
    """Running jobs whose runner has been silent longer than `timeout`."""
    with db.reading() as s:
        return list(s.scalars(select(Job.id).where(Job.status == "running", Job.heartbeat_at < time.time() - timeout)))
