"""The dashboard's API: a job's events over Server-Sent Events (Last-Event-ID replays from the store, an
`end` closes a finished job's stream), stream tokens bound to one job of one project, the job report,
and 404 for another project's key on every one of them — over both stores, on a job that fails its
file check (no training: these stay fast)."""

from __future__ import annotations

import json

import httpx
import pytest


def sse(text: str) -> list[dict]:
    """The frames of an event stream: [{"id": …, "event": …, "data": …}] (comments and retry dropped)."""
    frames = []
    for block in text.split("\n\n"):
        f = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("id", "event", "data"):
                f[name] = value
        if "data" in f:
            frames.append(f)
    return frames


@pytest.fixture(scope="module")
def failed_job(service, tmp_path_factory, tiny_model_dir):
    """A finished job of project alpha with a few events: its file fails the check."""
    path = tmp_path_factory.mktemp("s") / "broken.jsonl"
    path.write_text('{"messages": []}\nnot json\n')
    a = service.client("alpha")
    f = a.files.create(file=path.open("rb"), purpose="fine-tune")
    job = a.fine_tuning.jobs.create(
        model=str(tiny_model_dir), training_file=f.id, extra_body={"orgtune": {"eval": {"enabled": False}}}
    )
    assert service.wait(job.id, timeout=60).status == "failed"
    return job.id


def auth(service, project: str) -> dict:
    return {"Authorization": f"Bearer {service.key(project)}"}


def test_stream_replays_after_last_event_id_and_ends(service, failed_job):
    url = f"{service.url}/v1/fine_tuning/jobs/{failed_job}/events/stream"
    r = httpx.get(url, headers=auth(service, "alpha"), timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    frames = sse(r.text)
    events, end = frames[:-1], frames[-1]
    assert end["event"] == "end" and json.loads(end["data"]) == {"status": "failed"}
    seqs = [int(f["id"]) for f in events]
    assert len(seqs) >= 2 and seqs == sorted(seqs)
    assert [json.loads(f["data"])["seq"] for f in events] == seqs
    listed = [e.id for e in reversed(list(service.client("alpha").fine_tuning.jobs.list_events(failed_job)))]
    assert [f"ftevent-{s}" for s in seqs] == listed  # the same events as the JSON list, oldest first

    # A reconnect with Last-Event-ID (header, or the query parameter after a reload) gets only what followed.
    again = sse(httpx.get(url, headers={**auth(service, "alpha"), "Last-Event-ID": str(seqs[0])}, timeout=30).text)
    assert [int(f["id"]) for f in again[:-1]] == seqs[1:]
    query = sse(httpx.get(url, params={"last_event_id": seqs[-2]}, headers=auth(service, "alpha"), timeout=30).text)
    assert [int(f["id"]) for f in query[:-1]] == seqs[-1:] and query[-1]["event"] == "end"
    bad = httpx.get(url, params={"last_event_id": "yesterday"}, headers=auth(service, "alpha"))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "last_event_id"


def test_stream_token_opens_one_job_of_one_project(service, failed_job, tmp_path):
    base = f"{service.url}/v1/fine_tuning/jobs/{failed_job}/events"
    r = httpx.post(f"{base}/stream_token", headers=auth(service, "alpha"))
    token = r.json()["token"]
    assert r.status_code == 200 and service.key("alpha") not in token
    ok = httpx.get(f"{base}/stream", params={"token": token, "last_event_id": 0}, timeout=30)
    assert ok.status_code == 200 and sse(ok.text)[-1]["event"] == "end"
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert httpx.get(f"{base}/stream", params={"token": forged}).status_code == 401
    assert httpx.get(f"{base}/stream").status_code == 401  # neither a key nor a token
    other = f"{service.url}/v1/fine_tuning/jobs/ftjob-other/events/stream"
    assert httpx.get(other, params={"token": token}).status_code == 401  # bound to its job


def test_another_projects_key_gets_404_on_stream_token_and_report(service, failed_job):
    beta = auth(service, "beta")
    jobs = f"{service.url}/v1/fine_tuning/jobs/{failed_job}"
    for r in (
        httpx.get(f"{jobs}/events/stream", headers=beta),
        httpx.post(f"{jobs}/events/stream_token", headers=beta),
        httpx.get(f"{service.url}/v1/orgtune/jobs/{failed_job}/report", headers=beta),
    ):
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    alpha = httpx.get(f"{service.url}/v1/orgtune/jobs/{failed_job}/report", headers=auth(service, "alpha")).json()
    assert alpha["job_id"] == failed_job and alpha["eval"] is None and alpha["export"] is None
    assert "training" in alpha["config"]["text"] and alpha["result_files"] == []


def test_dashboard_pages_are_static_and_hold_no_data(service):
    for path, kind in (
        ("/", "text/html"),
        ("/login", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
    ):
        r = httpx.get(service.url + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
        assert "default-src 'self'" in r.headers["content-security-policy"]
    for path in ("/static/..%2Froutes.py", "/static/routes.py", "/static/missing.js", "/static/.hidden.css"):
        assert httpx.get(service.url + path).status_code == 404, path


def test_live_tail_follows_new_events_until_the_job_ends(tmp_path):
    """The generator itself on a real store: replay, then each new event as it is written, then `end`; a
    connection past its time closes without `end` (the client reconnects from its last id)."""
    import asyncio

    from sqlalchemy import update

    from orgtune.service import sse
    from orgtune.service.db import Database
    from orgtune.service.events import add_event
    from orgtune.service.keys import ensure_project
    from orgtune.service.models import Job

    db = Database(f"sqlite:///{tmp_path}/s.db")
    db.migrate()
    project = ensure_project(db, "p").id
    method = {"type": "supervised", "supervised": {"hyperparameters": {}}}
    with db.writing() as s:
        s.add(
            Job(
                id="ftjob-live",
                project_id=project,
                model="m",
                base_model="m",
                training_file="f",
                seed=1,
                method=method,
                options={},
                status="running",
                result_files=[],
            )
        )
    add_event(db, "ftjob-live", "Step 1/3: training loss=2.0", type="metrics", data={"step": 1, "train_loss": 2.0})

    async def never():
        return False

    def set_status(status: str) -> None:
        with db.writing() as s:
            s.execute(update(Job).where(Job.id == "ftjob-live").values(status=status))

    async def follow() -> list[str]:
        frames = []
        stream = sse.event_stream(db, "ftjob-live", 0, never, poll=0.05)
        async for chunk in stream:
            frames.append(chunk)
            if len(frames) == 2:  # retry + the replayed event: now the run logs its next step, then ends
                await asyncio.to_thread(
                    add_event,
                    db,
                    "ftjob-live",
                    "Step 2/3: training loss=1.5",
                    type="metrics",
                    data={"step": 2, "train_loss": 1.5},
                )
            if len(frames) == 3:
                set_status("cancelled")
        return frames

    frames = asyncio.run(follow())
    assert frames[0].startswith("retry:")
    assert [json.loads(f.split("data: ", 1)[1])["data"]["step"] for f in frames[1:3]] == [1, 2]
    assert frames[-1].startswith("event: end") and '"cancelled"' in frames[-1]

    set_status("running")

    async def short() -> list[str]:
        return [f async for f in sse.event_stream(db, "ftjob-live", 10**9, never, poll=0.05, max_seconds=0.3)]

    assert all(not f.startswith("event: end") for f in asyncio.run(short()))
