"""Acceptance: the whole fine-tuning flow through the official `openai` client against `orgtune service`,
on the embedded model (SmolLM2-135M), tiny data, CPU — over SQLite and over PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import run_cli
from tests.service.conftest import chat_rows

pytestmark = pytest.mark.slow


def test_openai_client_flow(service, tmp_path):
    client = service.client("alpha")
    data = tmp_path / "halvo.jsonl"
    data.write_text(chat_rows(8))
    f = client.files.create(file=data.open("rb"), purpose="fine-tune")
    assert (f.filename, f.bytes, f.purpose) == ("halvo.jsonl", data.stat().st_size, "fine-tune")

    job = client.fine_tuning.jobs.create(
        model="smollm2-135m",
        training_file=f.id,
        suffix="flow",
        seed=3,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"batch_size": 2, "n_epochs": 1, "learning_rate_multiplier": 5}},
        },
        extra_body={
            "orgtune": {
                "config": {"training": {"max_steps": 3, "save_steps": 1}, "model": {"max_seq_length": 128}},
                "eval": {"enabled": False},  # a dataset job's eval: tests/service/test_dashboard.py
            }
        },
    )
    assert job.status == "validating_files" and job.model == "smollm2-135m" and job.fine_tuned_model is None
    assert job.hyperparameters.batch_size == 2 and job.hyperparameters.n_epochs == 1
    assert client.fine_tuning.jobs.list(limit=5).data[0].id == job.id

    done = service.wait(job.id)
    assert done.status == "succeeded", (done.error, service.runner_log(job.id))
    assert done.fine_tuned_model == f"ft:smollm2-135m:flow:{job.id}"
    assert done.trained_tokens > 0 and done.finished_at >= done.created_at

    # Events: the official client pages through them with `after` (3 per page), newest first.
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=3))
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)) > 6
    seqs = [int(i.split("-")[1]) for i in ids]
    assert seqs == sorted(seqs, reverse=True)
    steps = {e.data["step"]: e.data["train_loss"] for e in events if e.type == "metrics" and "train_loss" in e.data}
    assert sorted(steps) == [1, 2, 3] and all(v > 0 for v in steps.values())
    messages = [e.message for e in events]
    assert any("Files validated" in m for m in messages) and any("successfully completed" in m for m in messages)

    ckpts = list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=1))
    assert [c.step_number for c in ckpts] == [3, 2]  # the two newest are kept
    assert ckpts[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-3"
    assert ckpts[0].metrics.train_loss == pytest.approx(steps[3])

    # The step-metrics results file, downloadable like an upload.
    table = client.files.content(done.result_files[0]).text
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert float(rows[2]["train_loss"]) == pytest.approx(steps[3])

    # The fine-tuned model answers at once, and exactly as the job's adapter does through `orgtune ask`.
    question = "What is the Halvo's pump pressure?"
    r = client.chat.completions.create(
        model=done.fine_tuned_model, max_tokens=24, messages=[{"role": "user", "content": question}]
    )
    answer = r.choices[0].message.content
    assert r.model == done.fine_tuned_model and answer and r.usage.completion_tokens > 0
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question": question}) + "\n")
    out = tmp_path / "a.jsonl"
    cli = run_cli(
        "ask",
        str(service.dir / "jobs" / job.id / "run"),
        "--questions",
        str(q),
        "--out",
        str(out),
        "--max-new-tokens",
        "24",
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(out.read_text())["answer"] == answer
    base = client.chat.completions.create(
        model="smollm2-135m", max_tokens=24, messages=[{"role": "user", "content": question}]
    )
    assert base.choices[0].message.content != answer
    assert done.fine_tuned_model in [m.id for m in client.models.list()]
