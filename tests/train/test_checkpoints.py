"""Atomic folders and checkpoint rotation (newest and best are never deleted)."""

from __future__ import annotations

import json

import pytest

from orgtune import atomic
from orgtune.train.checkpoints import BEST_FILE, complete_checkpoints, last_checkpoint, rotate


def fake_checkpoint(root, step, complete=True):
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "adapter_model.safetensors").write_bytes(b"x")
    if complete:
        (d / atomic.COMPLETE_MARKER).write_text("ok\n")
    return d


def test_building_folder_is_all_or_nothing(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic.building_folder(final) as staging:
            (staging / "half.bin").write_bytes(b"12")
            raise RuntimeError("disk full")
    assert not final.exists() and not list(tmp_path.iterdir())
    with atomic.building_folder(final) as staging:
        (staging / "a.txt").write_text("1")
    assert atomic.is_complete(final) and (final / "a.txt").read_text() == "1"
    # Replacing keeps the old folder until the new one is complete.
    with pytest.raises(RuntimeError):
        with atomic.building_folder(final, replace=True) as staging:
            raise RuntimeError("killed")
    assert (final / "a.txt").read_text() == "1"


def test_rotation_keeps_newest_and_best(tmp_path):
    for step in (2, 4, 6, 8):
        fake_checkpoint(tmp_path, step)
    (tmp_path / BEST_FILE).write_text(json.dumps({"checkpoint": "checkpoint-2", "metric": 0.1}))
    removed = rotate(tmp_path, keep=1)
    assert sorted(p.name for p in removed) == ["checkpoint-4", "checkpoint-6"]
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-8"]


def test_resume_point_skips_partial_and_unmarked(tmp_path):
    fake_checkpoint(tmp_path, 4)
    fake_checkpoint(tmp_path, 8, complete=False)  # as HF leaves a folder killed mid-write
    (tmp_path / ".partial-checkpoint-12-abc").mkdir()
    assert last_checkpoint(tmp_path).name == "checkpoint-4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]
