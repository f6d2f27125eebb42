"""A job's events as a Server-Sent Events stream, for the dashboard's live view.

    POST /v1/fine_tuning/jobs/{id}/events/stream_token   (Authorization: Bearer KEY) → {"token": …}
    GET  /v1/fine_tuning/jobs/{id}/events/stream?token=…&last_event_id=41

A browser's EventSource cannot send an Authorization header, and an API key must never sit in a URL (it
would land in logs and history); so the page trades its key for a short-lived token signed for one job
of one project, and opens the stream with that. Every event goes out with `id: <seq>`: a reconnect sends
`Last-Event-ID` (or, for the first connect after a reload, `last_event_id=`) and gets everything after
that seq replayed from the database before the live tail. The stream ends with an `end` event once the
job is finished and every event of it was sent. A connection lasts at most STREAM_SECONDS, then closes
without `end` and the client reconnects where it was: a stopping server (uvicorn waits for open responses)
is never held up longer than that.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from orgtune.service.db import Database
from orgtune.service.events import event_object
from orgtune.service.models import Event, Job

TOKEN_SECONDS = 300
STREAM_SECONDS = 20.0
FINAL = ("succeeded", "failed", "cancelled")


def stream_secret(root: Path) -> bytes:
    """The signing key, in the service folder so that every service process behind one store shares it.
    Created once (0600, written under a temp name and renamed so no half-written key is ever read)."""
    path = Path(root) / "stream.secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".stream.secret.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        if not path.exists():
            os.replace(tmp, path)
        else:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def make_token(secret: bytes, project_id: str, job_id: str, ttl: int = TOKEN_SECONDS) -> tuple[str, int]:
    """A token that opens the stream of this one job of this one project until it expires."""
    expires = int(time.time()) + ttl
    body = base64.urlsafe_b64encode(json.dumps([project_id, job_id, expires]).encode()).decode().rstrip("=")
    return f"{body}.{_sign(secret, body)}", expires


def check_token(secret: bytes, token: str, job_id: str) -> str | None:
    """The project the token was issued to, when it is genuine, unexpired and for this job; else None."""
    body, _, sig = token.partition(".")
    if not sig or not hmac.compare_digest(sig, _sign(secret, body)):
        return None
    try:
        project_id, for_job, expires = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return None
    return project_id if for_job == job_id and expires >= time.time() else None


def _read(db: Database, job_id: str, after: int, limit: int) -> tuple[str, list[dict]]:
    """The job's status, then its events after `after`: read in this order, an `end` is never sent before
    the events written ahead of the final status."""
    with db.reading() as s:
        status = s.scalar(select(Job.status).where(Job.id == job_id))
        rows = list(
            s.scalars(select(Event).where(Event.job_id == job_id, Event.seq > after).order_by(Event.seq).limit(limit))
        )
        return status, [{"seq": e.seq, **event_object(e)} for e in rows]


def frame(event: dict) -> str:
    return f"id: {event['seq']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def event_stream(
    db: Database,
    job_id: str,
    after: int,
    disconnected,
    *,
    poll: float = 0.5,
    keepalive: float = 10.0,
    batch: int = 500,
    max_seconds: float = STREAM_SECONDS,
):
    """Replay the events after `after`, then follow new ones until the job is final (or the client left,
    or max_seconds passed: the client reconnects from its last id)."""
    yield "retry: 1000\n\n"
    quiet, deadline = 0.0, time.monotonic() + max_seconds
    while True:
        status, rows = await run_in_threadpool(_read, db, job_id, after, batch)
        for e in rows:
            yield frame(e)
            after = e["seq"]
        if len(rows) == batch:
            continue
        if status in FINAL:
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        if await disconnected() or time.monotonic() > deadline:
            return
        await asyncio.sleep(poll)
        quiet = 0.0 if rows else quiet + poll
        if quiet >= keepalive:  # a comment line keeps proxies from closing an idle stream
            quiet = 0.0
            yield ": keep-alive\n\n"
