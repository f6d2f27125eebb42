"""The dashboard's server time with a full store: 1,000 jobs (and their events, checkpoints, result files)
in SQLite, and every page and API call the dashboard makes, timed inside the server.

    .venv/bin/python benchmarks/dashboard_pages.py                 # 1,000 jobs, 60 events each, 30 rounds
    .venv/bin/python benchmarks/dashboard_pages.py --jobs 5000 --rounds 50

The app is the real `orgtune service` app (create_service_app) over a fresh SQLite store, called in-process
through Starlette's TestClient; an ASGI wrapper times each request from its arrival to the last byte of the
response (for the event stream: the whole replay of a finished job's events up to `end`). No runner starts:
the executor is an idle one, so the 100 queued jobs stay queued and the job list computes their queue
positions. One job has a run folder shaped as eval and export leave it (metrics.json, 2,000 probe answers,
documents, export.json, Modelfile) for the report. Prints median / p95 / max in ms per call; the target is
every call under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MS = 300.0


class IdleExecutor:
    """Runs nothing: the benchmark measures the pages, not training."""

    name = "idle"

    def start(self):
        pass

    def stop(self):
        pass

    def submit(self, job_id):
        pass

    def cancel(self, job_id):
        pass

    def running(self):
        return []


class Timed:
    """ASGI wrapper: the server time of each request, from its arrival to its last response byte."""

    def __init__(self, app):
        self.app, self.times = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()

        async def timed_send(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.times.append(time.perf_counter() - t0)

        await self.app(scope, receive, timed_send)


def _job_row(i: int, project_id: str, status: str, now: int) -> dict:
    jid = f"ftjob-bench{i:019d}"
    method = {
        "type": "supervised",
        "supervised": {"hyperparameters": {"batch_size": 4, "learning_rate_multiplier": 1.0, "n_epochs": 1}},
    }
    done = status in ("succeeded", "failed", "cancelled")
    return {
        "id": jid,
        "project_id": project_id,
        "created_at": now - 100_000 + i * 60,
        "model": "smollm2-135m",
        "base_model": "smollm2-135m",
        "training_file": "file-bench",
        "documents": [],
        "seed": i,
        "method": method,
        "options": {"model_name": f"ft:smollm2-135m:bench:{jid}", "config": {"training": {"max_steps": 60}}},
        "status": status,
        "step": 60 if done else 20,
        "total_steps": 60,
        "started_at": now - 100_000 + i * 60 + 5,
        "finished_at": now - 100_000 + i * 60 + 50 if done else None,
        "result_files": [],
        "attempts": 1,
        "max_attempts": 3,
        "fine_tuned_model": f"ft:smollm2-135m:bench:{jid}" if status == "succeeded" else None,
    }


def fill(db, project_id: str, n_jobs: int, n_events: int) -> list[str]:
    """n_jobs jobs (the newest 100 queued, one running, the rest finished), n_events events and two
    checkpoints each; returns the job ids, oldest first."""
    from sqlalchemy import insert

    from orgtune.service.models import Checkpoint, Event, Job

    now = int(time.time())
    rnd = random.Random(0)
    statuses = [rnd.choice(["succeeded"] * 8 + ["failed", "cancelled"]) for _ in range(n_jobs)]
    for i in range(max(0, n_jobs - 100), n_jobs):
        statuses[i] = "queued"
    statuses[n_jobs - 101] = "running"
    jobs = [_job_row(i, project_id, s, now) for i, s in enumerate(statuses)]
    events, ckpts = [], []
    for j in jobs:
        for step in range(1, n_events + 1):
            loss = 2.5 * 0.98**step + rnd.random() * 0.05
            events.append(
                {
                    "job_id": j["id"],
                    "created_at": j["created_at"] + step,
                    "level": "info",
                    "type": "metrics",
                    "message": f"Step {step}/{n_events}: training loss={loss:.4f}",
                    "data": {"step": step, "total_steps": n_events, "train_loss": loss},
                }
            )
        for step in (n_events - 10, n_events):
            ckpts.append(
                {
                    "id": f"ftckpt-{j['id'][-12:]}{step:05d}",
                    "job_id": j["id"],
                    "step_number": step,
                    "metrics": {"step": step, "train_loss": 1.0},
                    "path": "/nonexistent",
                }
            )
    with db.writing() as s:
        s.execute(insert(Job), jobs)
        for k in range(0, len(events), 20_000):
            s.execute(insert(Event), events[k : k + 20_000])
        s.execute(insert(Checkpoint), ckpts)
    return [j["id"] for j in jobs]


def run_folder(folder: Path, job_id: str, n_probes: int = 2000) -> None:
    """A run folder as eval and export leave it, for the report page (synthetic figures, real shapes)."""
    run = folder / "run"
    (run / "eval").mkdir(parents=True)
    (run / "export").mkdir()
    (folder / "data").mkdir()
    docs = [{"doc_id": f"d{k}", "path": f"/docs/manual-{k}.md", "text": "lorem ipsum " * 5000} for k in range(20)]
    (folder / "data" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    tasks = ["SPEC", "PROCEDURE", "TROUBLESHOOT", "EXPLAIN"]
    probes = [
        {
            "plain_question": f"question {k}?",
            "task": tasks[k % 4],
            "held_out": k % 7 == 0,
            "expected": "9 bar",
            "source": {
                "doc_id": f"d{k % 20}",
                "path": f"/docs/manual-{k % 20}.md",
                "span": [100, 160],
                "section_path": ["Specs", "Pump"],
            },
            "answers": {"base": "x", "tuned": "9 bar"},
        }
        for k in range(n_probes)
    ]
    (run / "eval" / "answers.jsonl").write_text("".join(json.dumps(p) + "\n" for p in probes))
    by_task = {t: {"n": 100, "accuracy": 0.5} for t in tasks}
    scopes = {s: {"overall": {"n": 400, "accuracy": 0.5}, "by_task": by_task} for s in ("trained", "held_out")}
    samples = [
        {
            "question": f"question {k}?",
            "task": tasks[k % 4],
            "held_out": False,
            "expected": "9 bar",
            "base": "x",
            "tuned": "9 bar",
            "base_correct": False,
            "tuned_correct": True,
        }
        for k in range(12)
    ]
    metrics = {
        "base_model": "smollm2-135m",
        "seconds": 10,
        "plots": ["plots/loss.png", "plots/probes.png"],
        "backends": {
            b: {"probes": scopes, "val": {"loss": 1.0, "perplexity": 2.7, "tokens": 1000}} for b in ("base", "tuned")
        },
        "regression": {
            "rule": "r",
            "total": 40,
            "base_right": 30,
            "tuned_right": 29,
            "worse": 2,
            "better": 1,
            "changed": 5,
            "rows": [],
        },
        "samples": samples,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    gguf = {
        t: {
            "file": f"/x/model-{t}.gguf",
            "size_bytes": 10**8,
            "problems": [],
            "val": {"perplexity": 2.8, "perplexity_change": 0.01},
        }
        for t in ("q8_0", "q4_k_m")
    }
    (run / "export" / "export.json").write_text(json.dumps({"gguf": gguf, "seconds": 30}))
    (run / "export" / "Modelfile").write_text("FROM ./model-q4_k_m.gguf\n" + "PARAMETER temperature 0\n" * 20)
    (run / "config.yaml").write_text("model:\n  name: smollm2-135m\ntraining:\n  max_steps: 60\n")


def calls(ids: list[str]) -> dict[str, tuple[str, str, dict]]:
    """{label: (method, path, headers)}: what the dashboard's pages request."""
    done, queued, report = ids[len(ids) // 4], ids[-1], ids[0]  # quarter: finished; newest: queued
    j = "/v1/fine_tuning/jobs"
    return {
        "GET / (page)": ("GET", "/", {}),
        "GET /static/job.js": ("GET", "/static/job.js", {}),
        "jobs list, first 50 (50 queued)": ("GET", f"{j}?limit=50", {}),
        "jobs list, a page in the middle": ("GET", f"{j}?limit=50&after={done}", {}),
        "job (queued: queue position)": ("GET", f"{j}/{queued}", {}),
        "job (finished)": ("GET", f"{j}/{done}", {}),
        "checkpoints": ("GET", f"{j}/{done}/checkpoints?limit=20", {}),
        "stream token": ("POST", f"{j}/{done}/events/stream_token", {}),
        "stream: full replay to end": ("GET", f"{j}/{done}/events/stream", {}),
        "stream: Last-Event-ID replay": ("GET", f"{j}/{done}/events/stream", {"Last-Event-ID": "LAST"}),
        "events list (100)": ("GET", f"{j}/{done}/events?limit=100", {}),
        "report (run folder, 2,000 probes)": ("GET", f"/v1/orgtune/jobs/{report}/report", {}),
        "report (no run folder)": ("GET", f"/v1/orgtune/jobs/{done}/report", {}),
        "models (new job form)": ("GET", "/v1/models", {}),
        "nightly": ("GET", "/v1/orgtune/nightly", {}),
    }


def measure(client, timed: Timed, key: str, plan: dict, rounds: int, last_id: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {label: [] for label in plan}
    for _ in range(rounds):
        for label, (method, path, headers) in plan.items():
            h = {"Authorization": f"Bearer {key}", **{k: v.replace("LAST", str(last_id)) for k, v in headers.items()}}
            r = client.request(method, path, headers=h)
            assert r.status_code == 200, (label, r.status_code, r.text[:300])
            out[label].append(1000 * timed.times[-1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--events", type=int, default=60, help="metrics events per job")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from orgtune.service.app import create_service_app
    from orgtune.service.db import Database
    from orgtune.service.keys import create_key
    from orgtune.service.settings import ServiceSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = ServiceSettings(service_dir=Path(tmp), nightly_tick=3600)
        db = Database(settings.db_url())
        db.migrate()
        row, key = create_key(db, project="bench")
        t0 = time.time()
        ids = fill(db, row.project_id, args.jobs, args.events)
        run_folder(settings.jobs_dir() / ids[0], ids[0])
        print(
            f"store: {args.jobs} jobs, {args.jobs * args.events} events, {2 * args.jobs} checkpoints "
            f"({time.time() - t0:.1f} s to fill, SQLite {db.engine.url.database})"
        )
        timed = Timed(create_service_app(settings, db=db, executor=IdleExecutor(), log=lambda *a: None))
        with TestClient(timed) as client:
            plan = calls(ids)
            measure(client, timed, key, plan, 2, args.events // 2)  # warm-up: imports, caches, first queries
            times = measure(client, timed, key, plan, args.rounds, _mid_seq(db, ids[len(ids) // 4]))
    width = max(map(len, times))
    print(f"{'server time, ms':<{width}}  median     p95     max   ({args.rounds} requests each)")
    worst = 0.0
    for label, ms in times.items():
        ms.sort()
        p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
        worst = max(worst, ms[-1])
        print(f"{label:<{width}}  {statistics.median(ms):6.1f}  {p95:6.1f}  {ms[-1]:6.1f}")
    print(
        f"slowest request: {worst:.1f} ms; target: every page and call under {TARGET_MS:.0f} ms: "
        + ("met" if worst < TARGET_MS else "NOT met")
    )
    return 0 if worst < TARGET_MS else 1


def _mid_seq(db, job_id: str) -> int:
    """The seq of the job's middle event: a reconnect that missed the second half."""
    from sqlalchemy import select

    from orgtune.service.models import Event

    with db.reading() as s:
        seqs = list(s.scalars(select(Event.seq).where(Event.job_id == job_id).order_by(Event.seq)))
    return seqs[len(seqs) // 2]


if __name__ == "__main__":
    sys.exit(main())
