"""A job's events (OpenAI's `fine_tuning.job.event`: messages and metrics) and checkpoints, newest first.

    add_event(db, job_id, "Step 3/10: training loss=1.92", type="metrics", data={"step": 3, ...})

Events are append-only; their integer `seq` orders them, pages them (`after=ftevent-<seq>`) and lets a
live view replay what it missed. A resumed run logs the steps after its checkpoint again; the newest
record of a step is the one that counts.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from orgtune.serve.errors import APIError
from orgtune.service.db import Database
from orgtune.service.models import Checkpoint, Event, Job


def add_event(
    db: Database,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict | None = None,
    session=None,
) -> None:
    row = Event(job_id=job_id, level=level, type=type, message=message, data=data)
    if session is not None:
        session.flush()  # the job row (when new) goes in first: no ORM relationship orders them
        session.add(row)
        return
    with db.writing() as s:
        s.add(row)


def event_object(e: Event) -> dict:
    return {
        "id": f"ftevent-{e.seq}",
        "object": "fine_tuning.job.event",
        "created_at": e.created_at,
        "level": e.level,
        "message": e.message,
        "data": e.data,
        "type": e.type,
    }


def _seq(cursor: str, prefix: str) -> int:
    try:
        return int(cursor.removeprefix(prefix))
    except ValueError:
        raise APIError(400, f"after={cursor!r} is not an id this list returned", param="after") from None


def list_events(db: Database, job_id: str, *, after: str | None, limit: int) -> dict:
    with db.reading() as s:
        q = select(Event).where(Event.job_id == job_id)
        if after:
            q = q.where(Event.seq < _seq(after, "ftevent-"))
        rows = list(s.scalars(q.order_by(Event.seq.desc()).limit(limit + 1)))
    return {"object": "list", "data": [event_object(e) for e in rows[:limit]], "has_more": len(rows) > limit}


def events_since(db: Database, job_id: str, after_seq: int, limit: int = 500) -> list[Event]:
    """Oldest first, for a live stream that resumes after the last event it sent."""
    with db.reading() as s:
        return list(
            s.scalars(
                select(Event).where(Event.job_id == job_id, Event.seq > after_seq).order_by(Event.seq).limit(limit)
            )
        )


def checkpoint_object(c: Checkpoint, job: Job) -> dict:
    return {
        "id": c.id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": c.created_at,
        "fine_tuned_model_checkpoint": f"{job.options['model_name']}:ckpt-step-{c.step_number}",
        "fine_tuning_job_id": job.id,
        "metrics": c.metrics,
        "step_number": c.step_number,
    }


def list_checkpoints(db: Database, job: Job, *, after: str | None, limit: int) -> dict:
    with db.reading() as s:
        q = select(Checkpoint).where(Checkpoint.job_id == job.id)
        if after:
            anchor = s.scalar(select(Checkpoint).where(Checkpoint.id == after, Checkpoint.job_id == job.id))
            if anchor is None:
                raise APIError(400, f"after={after!r} is not a checkpoint of this job", param="after")
            q = q.where(Checkpoint.step_number < anchor.step_number)
        rows = list(s.scalars(q.order_by(Checkpoint.step_number.desc()).limit(limit + 1)))
    data = [checkpoint_object(c, job) for c in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def sync_checkpoints(db: Database, job_id: str, on_disk: dict[int, tuple[str, dict]]) -> list[int]:
    """Make the job's checkpoint rows match the complete checkpoint folders on disk ({step: (path, metrics)}):
    rotated-away folders lose their row, new ones get one (their steps are returned)."""
    from orgtune.service.models import new_id

    with db.writing() as s:
        have = {c.step_number: c for c in s.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id))}
        gone = [c.seq for step, c in have.items() if step not in on_disk]
        if gone:
            s.execute(delete(Checkpoint).where(Checkpoint.seq.in_(gone)))
        new = [step for step in on_disk if step not in have]
        for step in new:
            path, metrics = on_disk[step]
            s.add(Checkpoint(id=new_id("ftckpt-"), job_id=job_id, step_number=step, path=path, metrics=metrics))
    return new
