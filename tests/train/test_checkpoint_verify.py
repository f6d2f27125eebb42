"""A truncated or bit-flipped checkpoint is caught on resume: it is set aside (never deleted), the one
before it is used, and with none left the run starts over, saying so."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys

import pytest

from orgtune import atomic
from orgtune.train.checkpoints import complete_checkpoints, last_checkpoint
from orgtune.train.control import Stopped, StopWhen
from orgtune.train.sft import train
from tests.conftest import ROOT, run_cli
from tests.train.test_resume import losses

WEIGHTS = "adapter_model.safetensors"


def checkpoint(root, step, *, checksums=True):
    with atomic.building_folder(root / f"checkpoint-{step}", checksums=checksums) as staging:
        (staging / WEIGHTS).write_bytes(bytes(range(256)) * 16)
        (staging / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return root / f"checkpoint-{step}"


def truncate(folder):
    f = folder / WEIGHTS
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def flip(folder):
    f = folder / WEIGHTS
    data = bytearray(f.read_bytes())
    data[len(data) * 3 // 4] ^= 0x10  # in the tensor data, past the header: safetensors would load it
    f.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, flip])
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_previous_used(damage, tmp_path):
    for step in (4, 8):
        checkpoint(tmp_path, step)
    damage(tmp_path / "checkpoint-8")
    said = []
    assert last_checkpoint(tmp_path, log=said.append) == tmp_path / "checkpoint-4"
    assert len(said) == 1 and "skipping checkpoint-8" in said[0] and str(tmp_path / "checkpoint-8.corrupt") in said[0]
    assert ("2048 bytes, 4096" if damage is truncate else "sha256") in said[0]
    assert (tmp_path / "checkpoint-8.corrupt" / WEIGHTS).is_file()  # kept for a human to look at
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-4"]
    # the same step damaged again later gets its own name: nothing set aside is overwritten
    checkpoint(tmp_path, 8)
    damage(tmp_path / "checkpoint-8")
    assert last_checkpoint(tmp_path, log=said.append) == tmp_path / "checkpoint-4"
    assert (tmp_path / "checkpoint-8.corrupt-2").is_dir() and (tmp_path / "checkpoint-8.corrupt").is_dir()


def test_old_plain_markers_still_resume_and_none_valid_gives_none(tmp_path):
    old = checkpoint(tmp_path, 4, checksums=False)
    assert (old / atomic.COMPLETE_MARKER).read_text() == "ok\n"
    truncate(old)  # unverifiable: an old run folder resumes as it did before
    assert last_checkpoint(tmp_path) == old
    checkpoint(tmp_path, 8)
    flip(tmp_path / "checkpoint-8")
    (old / atomic.COMPLETE_MARKER).write_text('{"files": {"adapter_model.safetensors": {"size": 1, "sha256": "0"}}}')
    said = []
    assert last_checkpoint(tmp_path, log=said.append) is None
    assert [m.split(":")[0] for m in said] == ["skipping checkpoint-8", "skipping checkpoint-4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4.corrupt", "checkpoint-8.corrupt"]


def overrides(model):
    return {
        "model": {"name": str(model)},
        "training": {"max_steps": 12, "save_steps": 4, "per_device_train_batch_size": 4, "learning_rate": 1e-3},
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir) -> dict[int, float]:
    out = tmp_path_factory.mktemp("ref") / "run"
    train(ROOT / "orgtune/data/samples/demo_chat.jsonl", out, overrides=overrides(tiny_model_dir), log=lambda m: None)
    return losses(out)


@pytest.mark.parametrize("damage", [truncate, flip])
def test_resume_skips_a_damaged_checkpoint_with_the_same_losses(damage, reference, tiny_model_dir, demo_data, tmp_path):
    out = tmp_path / "run"
    steps = itertools.count(1)
    with pytest.raises(Stopped):  # stops after step 8, with checkpoint-8 written; the run stays unfinished
        train(
            demo_data,
            out,
            overrides=overrides(tiny_model_dir),
            log=lambda m: None,
            callbacks=[StopWhen(lambda: next(steps) >= 8)],
        )
    assert [p.name for p in complete_checkpoints(out / "checkpoints")] == ["checkpoint-4", "checkpoint-8"]
    damage(out / "checkpoints" / "checkpoint-8")
    said = []
    run = train(demo_data, out, overrides=overrides(tiny_model_dir), log=said.append)
    assert run.complete
    assert any(m.startswith("skipping checkpoint-8:") and "checkpoint-8.corrupt" in m for m in said), said
    assert f"resuming from {out / 'checkpoints' / 'checkpoint-4'}" in said
    assert (out / "checkpoints" / "checkpoint-8.corrupt" / WEIGHTS).is_file()
    got = losses(out)
    assert sorted(got) == sorted(reference) and max(abs(got[s] - reference[s]) for s in got) < 1e-4


DIE_AFTER_CHECKPOINT_8 = """
import os, signal, sys
from orgtune.train.trainer import OrgtuneSFTTrainer
original = OrgtuneSFTTrainer._save_checkpoint
def save_then_die(self, model, trial):
    original(self, model, trial)
    if self.state.global_step == 8:
        os.kill(os.getpid(), signal.SIGKILL)
OrgtuneSFTTrainer._save_checkpoint = save_then_die
from orgtune.cli import main
sys.argv = ["orgtune", *sys.argv[1:]]
main()
"""


def test_no_intact_checkpoint_starts_over_with_a_message(reference, tiny_model_dir, demo_data, tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(demo_data),
        "--model",
        str(tiny_model_dir),
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
    proc = subprocess.run(
        [sys.executable, "-c", DIE_AFTER_CHECKPOINT_8, *args],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    ckpts = out / "checkpoints"
    flip(ckpts / "checkpoint-4")
    truncate(ckpts / "checkpoint-8")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "skipping checkpoint-8:" in r.stderr and "skipping checkpoint-4:" in r.stderr
    assert "no complete, intact checkpoint to resume from; training starts over at step 0" in r.stderr
    assert (ckpts / "checkpoint-4.corrupt").is_dir() and (ckpts / "checkpoint-8.corrupt").is_dir()
    got = losses(out)  # the whole run again, from step 1, as if never interrupted
    assert sorted(got) == sorted(reference) and max(abs(got[s] - reference[s]) for s in got) < 1e-4
