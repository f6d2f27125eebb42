"""The queue engine for many machines: `orgtune service` with the Procrastinate executor on PostgreSQL
and `orgtune worker` processes. A worker killed with SIGKILL mid-training: another picks its job up
after the heartbeat timeout and resumes from the checkpoint with the losses of an uninterrupted run;
two workers share the queue and every job runs exactly once; a queued job is cancelled in the queue."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.conftest import ROOT
from tests.service.conftest import Service, chat_rows
from tests.service.test_workers import create, losses, wait_event

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def queue(postgres, tmp_path_factory, tiny_model_dir):
    url = postgres.create_database("queue")
    svc = Service(url, tmp_path_factory.mktemp("queue-service"), tiny_model_dir, executor="procrastinate").start()
    svc.workers = []

    def worker(name):
        log = open(svc.dir / f"worker-{name}.log", "w")
        p = subprocess.Popen(
            [sys.executable, "-m", "orgtune", "worker", "--name", name],
            cwd=ROOT,
            env=svc.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        svc.workers.append(p)
        return p

    svc.worker = worker
    yield svc
    for p in svc.workers:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=60)
    svc.stop()


def queue_rows(svc, sql: str) -> list[tuple]:
    with psycopg.connect(svc.db_url) as c:
        return c.execute(sql).fetchall()


@pytest.fixture(scope="module")
def dataset(queue, tmp_path_factory):
    path = tmp_path_factory.mktemp("qdata") / "halvo.jsonl"
    path.write_text(chat_rows(8))
    return queue.client("alpha").files.create(file=path.open("rb"), purpose="fine-tune").id


def test_a_queued_job_is_cancelled_in_the_queue(queue, dataset, tiny_model_dir):
    job = create(queue, dataset, tiny_model_dir)  # no worker runs yet: it waits in the queue
    queue.wait(job.id, until=("queued",))
    assert queue.client("alpha").fine_tuning.jobs.cancel(job.id).status == "cancelled"
    assert queue_rows(queue, f"SELECT status FROM procrastinate_jobs WHERE queueing_lock = '{job.id}'") == [
        ("cancelled",)
    ]


def test_two_workers_share_the_queue_and_run_each_job_once(queue, dataset, tiny_model_dir):
    queue.worker("w1"), queue.worker("w2")
    jobs = [create(queue, dataset, tiny_model_dir, steps=30) for _ in range(4)]
    for j in jobs:
        assert queue.wait(j.id).status == "succeeded", queue.runner_log(j.id)
        assert sum(e.message.startswith("Attempt ") for e in queue.events(j.id)) == 1
    want = sorted((j.id, "succeeded") for j in jobs)
    for _ in range(100):  # the queue job ends a moment after the runner has recorded the fine-tuning job's end
        runs = queue_rows(
            queue, "SELECT queueing_lock, status FROM procrastinate_jobs WHERE task_name = 'orgtune.run_job'"
        )
        ours = sorted(r for r in runs if r[0] in {j.id for j in jobs})
        if ours == want:
            break
        time.sleep(0.1)
    assert ours == want
    hosts = {e.data["runner"] for j in jobs for e in queue.events(j.id) if e.message.startswith("Attempt ")}
    assert len(hosts) == 4


def test_a_worker_killed_mid_training_is_resumed_by_another(queue, dataset, tiny_model_dir):
    base = create(queue, dataset, tiny_model_dir)
    assert queue.wait(base.id).status == "succeeded"
    uninterrupted = losses(queue, base.id)
    for p in queue.workers:  # one worker only, so that we know which to kill
        p.terminate()
        p.wait(timeout=60)
    victim = queue.worker("victim")
    job = create(queue, dataset, tiny_model_dir)
    wait_event(queue, job.id, "Checkpoint created at step 60")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    queue.worker("rescuer")
    done = queue.wait(job.id)
    assert done.status == "succeeded", queue.runner_log(job.id)
    assert done.orgtune["attempts"] == 2
    messages = [e.message for e in queue.events(job.id)]
    assert any(m.startswith("Worker lost") for m in messages) and any("resuming after step" in m for m in messages)
    assert losses(queue, job.id) == pytest.approx(uninterrupted, rel=1e-5, abs=1e-6)
