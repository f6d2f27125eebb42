"""The queue under load: N fine-tuning jobs through the API into Procrastinate on PostgreSQL, run by
W `orgtune worker`s; checks that none is lost and none runs twice, and prints jobs/s and the queue's
overhead per job.

    .venv/bin/python benchmarks/service_queue.py                       # 200 jobs, 2 workers, no-op stage
    .venv/bin/python benchmarks/service_queue.py --jobs 40 --stage train   # each job trains 1 step (tiny model)

Each job is a real job: validated by the service, deferred to the queue, fetched by a worker, run by the
same runner subprocess as any job (lease, heartbeat, events), recorded succeeded. The no-op stage is
`orgtune.stop_after = "data"` (the files are checked, no training); `--stage train` trains one step of a
tiny random model. A throwaway PostgreSQL is started unless --database-url is given.

Figures: wall time from the workers' start to the last job's end, and jobs/s from the first job's start
to the last one's end (worker start-up, about 5 s for imports, left out); per job, the queue's wait
(a worker starts it), the runner's start (a new Python process: imports, store connection, lease) and
the runner's own time (claim → release); and the overhead per job:
(workers × steady wall − Σ runner time) / jobs, i.e. every second of worker capacity not spent inside a job's
stages (queue fetch, subprocess start, imports, store round trips), shared out per job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tiny_model(folder: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from orgtune.models.loading import resolve_source
    from orgtune.models.presets import find_preset

    cfg = find_preset("smollm2-135m").hf_config()
    cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size = 2, 64, 128
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 4, 2, 16
    torch.manual_seed(0)
    out = folder / "tiny"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(resolve_source("smollm2-135m").path).save_pretrained(out)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stage", choices=["noop", "train"], default="noop")
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    from tests.service.conftest import Service, chat_rows
    from tests.service.pg import TempPostgres

    pg = None
    if args.database_url:
        url = args.database_url
    else:
        pg = TempPostgres().start()
        url = pg.create_database("bench")
    tmp = Path(tempfile.mkdtemp(prefix="orgtune-bench-"))
    model = tiny_model(tmp) if args.stage == "train" else None
    svc = Service(url, tmp, model or tmp, executor="procrastinate", heartbeat_interval=2, heartbeat_timeout=30)
    svc.env.pop("ORGTUNE_MAX_UPLOAD_MB", None)
    workers = []
    try:
        svc.start()
        key = {"Authorization": f"Bearer {svc.key('bench')}"}
        v1 = svc.url + "/v1"
        fid = httpx.post(
            f"{v1}/files",
            headers=key,
            data={"purpose": "fine-tune"},
            files={"file": ("rows.jsonl", chat_rows(8).encode())},
        ).json()["id"]
        body = {
            "model": str(model) if model else "smollm2-135m",
            "training_file": fid,
            "seed": 1,
            "orgtune": {"stop_after": "data"}
            if args.stage == "noop"
            else {
                "config": {
                    "training": {"max_steps": 1, "per_device_train_batch_size": 2},
                    "model": {"max_seq_length": 64},
                },
                "eval": {"enabled": False},
            },
        }
        t0 = time.time()
        ids = [
            httpx.post(f"{v1}/fine_tuning/jobs", headers=key, json=body, timeout=60).json()["id"]
            for _ in range(args.jobs)
        ]
        print(f"created {len(ids)} jobs through the API in {time.time() - t0:.1f} s")
        deadline = time.time() + 120
        while time.time() < deadline:  # all validated and deferred before the workers start
            with psycopg.connect(url) as c:
                n = c.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name='orgtune.run_job' AND status='todo'"
                ).fetchone()[0]
            if n == len(ids):
                break
            time.sleep(0.5)
        started = time.time()
        for i in range(args.workers):
            log = open(tmp / f"worker-{i}.log", "w")
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "orgtune", "worker", "--name", f"bench-{i}"],
                    cwd=ROOT,
                    env=svc.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        sql = "SELECT status, count(*) FROM ot_jobs GROUP BY status"
        while True:
            with psycopg.connect(url) as c:
                counts = dict(c.execute(sql).fetchall())
            if sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled")) >= len(ids):
                break
            if time.time() - started > 3600:
                raise SystemExit(f"timed out: {counts}")
            time.sleep(0.2)
        wall = time.time() - started
        for _ in range(300):  # a queue job is marked done a moment after its runner has recorded the job's end
            with psycopg.connect(url) as c:
                todo = c.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name='orgtune.run_job' "
                    "AND status IN ('todo', 'doing')"
                ).fetchone()[0]
            if not todo:
                break
            time.sleep(0.1)
        with psycopg.connect(url) as c:
            attempts = c.execute("SELECT job_id, data FROM ot_events WHERE message LIKE 'Attempt %'").fetchall()
            finals = c.execute("SELECT job_id, data FROM ot_events WHERE data::jsonb ? 'status'").fetchall()
            queue = c.execute("""
                SELECT j.queueing_lock, j.status,
                       min(e.at) FILTER (WHERE e.type = 'deferred'), min(e.at) FILTER (WHERE e.type = 'started')
                  FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id
                 WHERE j.task_name = 'orgtune.run_job' GROUP BY j.id""").fetchall()
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
        svc.stop()
        if pg:
            pg.stop()

    per_job: dict[str, int] = {}
    starts = {}
    for job_id, data in attempts:
        per_job[job_id] = per_job.get(job_id, 0) + 1
        starts[job_id] = data["t"]
    end_t = {job_id: data["t"] for job_id, data in finals}
    ours = set(ids)
    succeeded = counts.get("succeeded", 0)
    twice = [j for j, n in per_job.items() if n > 1]
    lost = [j for j in ours if j not in end_t]
    runner = [end_t[j] - starts[j] for j in ours if j in end_t and j in starts]
    waits = [s.timestamp() - max(d.timestamp(), started) for lock, _, d, s in queue if lock in ours and d and s]
    spawn = [starts[lock] - s.timestamp() for lock, _, _, s in queue if lock in starts and s]
    queue_ok = sum(1 for lock, status, _, _ in queue if lock in ours and status == "succeeded")
    print(
        json.dumps(
            {
                "jobs": len(ids),
                "succeeded": succeeded,
                "lost": len(lost),
                "run_twice": len(twice),
                "queue_jobs_succeeded": queue_ok,
                "workers": args.workers,
                "stage": args.stage,
            }
        )
    )
    first = min(s.timestamp() for lock, _, _, s in queue if lock in ours and s)
    steady = max(end_t[j] for j in ours if j in end_t) - first
    print(
        f"wall {wall:.1f} s for {len(ids)} jobs on {args.workers} workers, worker start-up included; "
        f"{steady:.1f} s from the first job's start to the last one's end: {len(ids) / steady:.2f} jobs/s"
    )
    print(
        f"queue wait (deferred, or workers up → a worker starts it), s: median {statistics.median(waits):.2f}  "
        f"p95 {pct(waits, 0.95):.2f}"
    )
    print(
        f"runner start (worker starts it → the runner holds the lease), s: median {statistics.median(spawn):.2f}  "
        f"p95 {pct(spawn, 0.95):.2f}"
    )
    print(
        f"runner's own time (claim → release), s: median {statistics.median(runner):.3f}  p95 {pct(runner, 0.95):.3f}"
    )
    overhead = (args.workers * steady - sum(runner)) / len(ids)
    print(
        f"queue overhead per job: {overhead:.2f} s of worker time "
        f"({args.workers} workers × {steady:.1f} s − {sum(runner):.1f} s inside jobs, over {len(ids)} jobs)"
    )
    if lost or twice or succeeded != len(ids) or queue_ok != len(ids):
        raise SystemExit("FAILED: lost or duplicated jobs")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
