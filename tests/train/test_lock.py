"""One training process per run folder: a second `orgtune train` on a live run fails at once, naming the
holder, and touches nothing; a SIGKILLed holder leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from orgtune.errors import OrgtuneError
from orgtune.train import lock
from orgtune.train.dpo import train_dpo
from orgtune.train.sft import train
from tests.conftest import ROOT, run_cli


def test_hold_is_exclusive_names_the_holder_and_cleans_up_what_it_created(tmp_path):
    folder = tmp_path / "run"
    with lock.hold(folder) as path:
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(OrgtuneError) as e:  # a second open file, even in this process, is refused
            with lock.hold(folder):
                pass
        msg = str(e.value)
        assert str(folder) in msg and f"pid {os.getpid()}" in msg and f"kill {os.getpid()}" in msg and "wait" in msg
    assert not folder.exists()  # made only for the lock, nothing else written: gone again
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with lock.hold(folder):
        pass
    with lock.hold(folder):  # released: taken again at once
        pass
    assert (folder / "keep.txt").is_file()


def test_sft_and_dpo_refuse_a_locked_folder_before_writing(tiny_model_dir, demo_data, tmp_path):
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        "".join(json.dumps({"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no"}) + "\n" for i in range(4))
    )
    out = tmp_path / "run"
    overrides = {"model": {"name": str(tiny_model_dir)}, "training": {"max_steps": 1, "general_replay": 0}}
    with lock.hold(out):
        for fn, data in ((train, demo_data), (train_dpo, prefs)):
            with pytest.raises(OrgtuneError, match=f"pid {os.getpid()}"):
                fn(data, out, overrides=overrides, log=lambda m: None)
            assert [p.name for p in out.iterdir()] == [lock.LOCK_NAME]
            assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.jsonl", "run"]  # no staging folder either


# Training that pauses inside checkpoint-8's staging folder (model and optimizer written) until GATE exists.
PAUSED = """
import os, sys, time
from pathlib import Path
from orgtune.train.trainer import OrgtuneSFTTrainer
gate = Path(os.environ["GATE"])
original = OrgtuneSFTTrainer._save_rng_state
def paused(self, output_dir):
    if self.state.global_step == 8 and not gate.exists():
        Path(str(gate) + ".waiting").write_text(output_dir)
        while not gate.exists():
            time.sleep(0.05)
    return original(self, output_dir)
OrgtuneSFTTrainer._save_rng_state = paused
from orgtune.cli import main
sys.argv = ["orgtune", *sys.argv[1:]]
main()
"""


def train_args(data, model, out) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--model",
        str(model),
        "--out",
        str(out),
        "--max-steps",
        "12",
        "--save-steps",
        "4",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
    ]


def start_paused(args: list[str], gate) -> tuple[subprocess.Popen, str]:
    with open(gate.with_name(gate.name + ".stderr"), "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", PAUSED, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(ROOT), "GATE": str(gate)},
        )
    waiting = gate.with_name(gate.name + ".waiting")
    deadline = time.time() + 400
    while not waiting.exists():
        assert proc.poll() is None, gate.with_name(gate.name + ".stderr").read_text()[-3000:]
        assert time.time() < deadline, "training never reached checkpoint-8"
        time.sleep(0.05)
    return proc, waiting.read_text()


def logged_steps(out) -> list[int]:
    return [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if "loss" in json.loads(x)]


def test_second_train_on_a_live_run_fails_fast_and_a_killed_run_leaves_no_lock(tiny_model_dir, demo_data, tmp_path):
    out = tmp_path / "run"
    args = train_args(demo_data, tiny_model_dir, out)
    first, staging = start_paused(args, tmp_path / "gate")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()}
    metrics = (out / "metrics.jsonl").read_bytes()
    started = time.time()
    r = run_cli(*args)  # the same command again, while the first is writing checkpoint-8
    took = time.time() - started
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"{out} is in use" in r.stderr and f"pid {first.pid}" in r.stderr and f"kill {first.pid}" in r.stderr
    assert took < 90, f"the second command took {took:.0f}s to fail"
    # nothing of the live run was touched: its staging folder, checkpoints and metrics are as they were
    assert os.path.isdir(staging)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()} == before
    assert (out / "metrics.jsonl").read_bytes() == metrics
    (tmp_path / "gate").touch()
    assert first.wait(timeout=600) == 0, (tmp_path / "gate.stderr").read_text()[-3000:]
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert logged_steps(out) == list(range(1, 13))

    # SIGKILLed while holding the lock (in the middle of a checkpoint write): the kernel drops it
    out2 = tmp_path / "run2"
    args2 = train_args(demo_data, tiny_model_dir, out2)
    second, _ = start_paused(args2, tmp_path / "gate2")
    second.send_signal(signal.SIGKILL)
    assert second.wait() == -signal.SIGKILL
    assert (out2 / lock.LOCK_NAME).read_text() == f"{second.pid}\n"  # the pid stays; the lock does not
    r = run_cli(*args2)
    assert r.returncode == 0, r.stderr
    assert f"resuming from {out2 / 'checkpoints' / 'checkpoint-4'}" in r.stderr
    assert logged_steps(out2) == list(range(1, 13))
