"""/v1/fine_tuning/jobs/{id}/events/stream: a job's events over Server-Sent Events (see service/sse.py).
The stream takes the caller's API key (Authorization header) or a token from …/stream_token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from orgtune.serve.errors import APIError
from orgtune.service import jobs, sse
from orgtune.service.api.deps import DB, Project, caller

router = APIRouter(prefix="/v1/fine_tuning/jobs")


def _secret(request: Request) -> bytes:
    st = request.app.state
    if getattr(st, "stream_secret", None) is None:
        st.stream_secret = sse.stream_secret(st.settings.root)
    return st.stream_secret


@router.post("/{job_id}/events/stream_token")
def stream_token(job_id: str, request: Request, db: DB, p: Project) -> dict:
    jobs.get_job(db, p.project_id, job_id)  # 404 for another project's job
    token, expires = sse.make_token(_secret(request), p.project_id, job_id)
    return {"object": "stream_token", "token": token, "expires_at": expires}


def _project_of(request: Request, job_id: str, token: str | None) -> str:
    """Who opens the stream: a token for this job, or else the Authorization header (a project key)."""
    if token:
        project_id = sse.check_token(_secret(request), token, job_id)
        if project_id is None:
            raise APIError(
                401,
                "the stream token is invalid or expired; get a new one from "
                f"POST /v1/fine_tuning/jobs/{job_id}/events/stream_token",
                type="authentication_error",
                code="invalid_stream_token",
            )
        return project_id
    p = caller(request)
    if p.project_id is None:
        raise APIError(
            403, "use a project key for a job's events", type="permission_error", code="project_key_required"
        )
    return p.project_id


def _last_event_id(request: Request, last_event_id: str | None) -> int:
    raw = request.headers.get("last-event-id") or last_event_id or "0"
    try:
        return max(0, int(raw.removeprefix("ftevent-")))
    except ValueError:
        raise APIError(
            400, f"Last-Event-ID {raw!r} is not an event id this stream sent", param="last_event_id"
        ) from None


@router.get("/{job_id}/events/stream")
def stream(
    job_id: str, request: Request, db: DB, token: str | None = None, last_event_id: str | None = None
) -> StreamingResponse:
    project_id = _project_of(request, job_id, token)
    with db.reading() as s:
        jobs.own_job(s, project_id, job_id)  # 404 for another project's job, whichever way it authenticated
    after = _last_event_id(request, last_event_id)
    body = sse.event_stream(
        db, job_id, after, request.is_disconnected, poll=min(0.5, request.app.state.settings.poll_interval * 2)
    )
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
