"""Execution under failure, with the embedded (local) executor, over SQLite and PostgreSQL: a killed
supervisor's job resumes from its checkpoint with the losses of an uninterrupted run; two runners racing
for one job run it once; cancel stops within a step and keeps that checkpoint; a job that keeps losing
its worker fails after max_attempts with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.service.conftest import chat_rows

pytestmark = pytest.mark.slow
STEPS, SAVE = 160, 20


@pytest.fixture(scope="module")
def dataset(service, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "halvo.jsonl"
    path.write_text(chat_rows(8))
    return service.client("alpha").files.create(file=path.open("rb"), purpose="fine-tune").id


def create(service, file_id, tiny_model_dir, *, steps=STEPS, **orgtune):
    return service.client("alpha").fine_tuning.jobs.create(
        model=str(tiny_model_dir),
        training_file=file_id,
        seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 2}}},
        extra_body={
            "orgtune": {
                "config": {"training": {"max_steps": steps, "save_steps": SAVE}, "model": {"max_seq_length": 128}},
                "eval": {"enabled": False},
                **orgtune,
            }
        },
    )


def losses(service, job_id) -> dict[int, float]:
    """The newest training loss logged for each step (a resumed run logs the steps after its checkpoint again)."""
    out = {}
    for e in service.events(job_id):
        if e.type == "metrics" and "train_loss" in (e.data or {}):
            out[e.data["step"]] = e.data["train_loss"]
    return out


def wait_event(service, job_id, text, timeout=300, attempt=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in service.events(job_id):
            if text in e.message and (attempt is None or (e.data or {}).get("attempt") == attempt):
                return e
        time.sleep(0.1)
    raise AssertionError(f"no event {text!r} for {job_id}:\n{service.runner_log(job_id)}")


def runner_pid(service, job_id, attempt) -> int:
    e = wait_event(service, job_id, f"Attempt {attempt} of")
    return int(e.data["runner"].split(":")[1])


@pytest.fixture(scope="module")
def uninterrupted(service, dataset, tiny_model_dir):
    job = create(service, dataset, tiny_model_dir)
    assert service.wait(job.id).status == "succeeded", service.runner_log(job.id)
    return losses(service, job.id)


def test_killed_service_resumes_from_its_checkpoint_with_the_same_losses(
    service, dataset, tiny_model_dir, uninterrupted
):
    job = create(service, dataset, tiny_model_dir)
    wait_event(service, job.id, "Checkpoint created at step 60")
    service.proc.send_signal(signal.SIGKILL)  # the supervisor and, with it, the runner it started
    service.proc.wait()
    service.start()
    done = service.wait(job.id)
    assert done.status == "succeeded", service.runner_log(job.id)
    messages = [e.message for e in service.events(job.id)]
    assert any(m.startswith("Worker lost") for m in messages)
    assert any("resuming after step" in m for m in messages)
    assert done.orgtune["attempts"] == 2
    got = losses(service, job.id)
    assert sorted(got) == list(range(1, STEPS + 1))
    assert got == pytest.approx(uninterrupted, rel=1e-5, abs=1e-6)


def test_two_runners_racing_for_one_job_run_it_once(service, dataset, tiny_model_dir):
    job = create(service, dataset, tiny_model_dir, steps=60)
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "orgtune.service.runner", job.id],
            cwd=ROOT,
            env=service.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    done = service.wait(job.id)
    codes = [r.wait(timeout=120) for r in racers]
    assert done.status == "succeeded", service.runner_log(job.id)
    events = service.events(job.id)
    assert sum(e.message.startswith("Attempt ") for e in events) == 1
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in (e.data or {})]
    assert steps == list(range(1, 61))  # each step trained once
    assert done.orgtune["attempts"] == 1 and set(codes) <= {0, 75}


def test_cancel_stops_within_a_step_keeps_the_checkpoint_and_resume_finishes(
    service, dataset, tiny_model_dir, uninterrupted
):
    client = service.client("alpha")
    job = create(service, dataset, tiny_model_dir)
    wait_event(service, job.id, "Step 60/")
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    events = service.events(job.id)
    asked = next(i for i, e in enumerate(events) if e.message.startswith("Cancellation requested"))
    after = [e.data["step"] for e in events[asked:] if e.type == "metrics" and "train_loss" in (e.data or {})]
    assert len(after) <= 1  # at most the step that was running when the cancel came
    stopped = cancelled.orgtune["step"]
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data[0].step_number == stopped
    assert max(losses(service, job.id)) == stopped < STEPS
    assert (service.dir / "jobs" / job.id / "run" / "checkpoints" / f"checkpoint-{stopped}" / "COMPLETE").is_file()
    time.sleep(1.0)
    assert max(losses(service, job.id)) == stopped  # nothing ran after the cancel

    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "queued"
    done = service.wait(job.id)
    assert done.status == "succeeded", service.runner_log(job.id)
    assert losses(service, job.id) == pytest.approx(uninterrupted, rel=1e-5, abs=1e-6)


def test_a_job_that_keeps_losing_its_runner_fails_after_max_attempts(service, dataset, tiny_model_dir):
    job = create(service, dataset, tiny_model_dir, steps=5000, max_attempts=2)
    for attempt in (1, 2):
        pid = runner_pid(service, job.id, attempt)
        wait_event(service, job.id, "training loss", attempt=attempt)  # it trains, then its worker dies
        os.kill(pid, signal.SIGKILL)
    done = service.wait(job.id)
    assert done.status == "failed"
    assert done.error.code == "max_attempts_exceeded"
    assert "ran 2 times" in done.error.message and "stopped sending heartbeats" in done.error.message
