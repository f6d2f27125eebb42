"""SIGKILL mid-run and during a checkpoint write; the resumed run reproduces the uninterrupted losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

STEPS = "40"  # 16 steps per epoch on the demo data at batch 4: the runs cross epoch boundaries


def train_args(data: Path, model: Path, out: Path) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--model",
        str(model),
        "--out",
        str(out),
        "--max-steps",
        STEPS,
        "--save-steps",
        "4",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
    ]


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir) -> dict[int, float]:
    out = tmp_path_factory.mktemp("ref") / "run"
    r = run_cli(*train_args(ROOT / "orgtune/data/samples/demo_chat.jsonl", tiny_model_dir, out))
    assert r.returncode == 0, r.stderr
    ref = losses(out)
    assert len(ref) == int(STEPS)
    return ref


def assert_same(ref: dict[int, float], got: dict[int, float]) -> None:
    assert sorted(got) == sorted(ref)
    worst = max(abs(ref[s] - got[s]) for s in ref)
    assert worst < 1e-4, f"per-step losses differ by up to {worst}"


def kill_after_step(args: list[str], metrics: Path, step: int) -> None:
    """Start `orgtune ARGS`, SIGKILL it once metrics.jsonl logs `step`; fail if it finished first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "orgtune", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any(
            json.loads(x).get("step", 0) >= step for x in metrics.read_text().splitlines() if x.strip().endswith("}")
        ):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training ended before it could be killed"


def test_sigkill_mid_run_then_rerun_same_command(reference, tiny_model_dir, demo_data, tmp_path):
    out = tmp_path / "run"
    args = train_args(demo_data, tiny_model_dir, out)
    kill_after_step(args, out / "metrics.jsonl", 6)
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert not (out / "adapter").exists()

    r = run_cli(*args)  # the same command again
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr
    assert_same(reference, losses(out))
    # Rotation kept two complete checkpoints, the newest among them.
    done = sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint-"))
    assert f"checkpoint-{STEPS}" in done and len(done) == 2
    assert all((out / "checkpoints" / d / "COMPLETE").is_file() for d in done)


DIE_IN_CHECKPOINT = """
import os, signal, sys
from orgtune.train.trainer import OrgtuneSFTTrainer
original = OrgtuneSFTTrainer._save_rng_state
def dying(self, output_dir):  # model and optimizer are already written into the staging folder
    if self.state.global_step == 8:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, output_dir)
OrgtuneSFTTrainer._save_rng_state = dying
from orgtune.cli import main
sys.argv = ["orgtune", *sys.argv[1:]]
main()
"""


def test_sigkill_during_checkpoint_write(reference, tiny_model_dir, demo_data, tmp_path):
    out = tmp_path / "run"
    args = train_args(demo_data, tiny_model_dir, out)
    proc = subprocess.run(
        [sys.executable, "-c", DIE_IN_CHECKPOINT, *args],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL
    ckpts = out / "checkpoints"
    partial = [p.name for p in ckpts.iterdir() if p.name.startswith(".partial-checkpoint-8")]
    assert partial and not (ckpts / "checkpoint-8").exists(), "a half-written checkpoint must not look complete"
    assert (ckpts / "checkpoint-4" / "COMPLETE").is_file()

    r = run_cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert "checkpoint-4" in r.stderr  # resumed from the last complete one
    assert not any(p.name.startswith(".partial") for p in ckpts.iterdir())
    assert_same(reference, losses(out))
