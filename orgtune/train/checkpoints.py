"""Crash-safe checkpoints for transformers/TRL trainers: atomic folders, resume from the last complete one.

transformers writes `checkpoint-N` in place, so a kill mid-write leaves a folder that looks
resumable. Here each checkpoint is written under a `.partial-` name with HF's own save helpers, gets
a COMPLETE marker recording each file's size and sha256, and is renamed into place; resume picks the
newest folder whose files still match their marker (one that doesn't is renamed `checkpoint-N.corrupt`
for a human to look at, and the one before is tried) and deletes partial ones. Rotation keeps the
newest `keep` checkpoints and never deletes the best.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from orgtune import atomic
from orgtune.train import distributed

_STEP = re.compile(r"^checkpoint-(\d+)$")
BEST_FILE = "best.json"


def complete_checkpoints(folder: Path) -> list[Path]:
    """Complete `checkpoint-N` folders under `folder`, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _STEP.match(p.name)) and p.is_dir() and atomic.is_complete(p)
    ]
    return [p for _, p in sorted(found)]


def last_checkpoint(folder: Path, log=None) -> Path | None:
    """The checkpoint to resume from: the newest complete one whose files match their marker. Removes
    partial checkpoints (and marker-less folders) first; a complete one that fails verification is
    renamed `checkpoint-N.corrupt`, never deleted, and `log` (when given) says which and why."""
    folder = Path(folder)
    atomic.remove_partials(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if _STEP.match(p.name) and p.is_dir() and not atomic.is_complete(p):
                shutil.rmtree(p)
    for p in reversed(complete_checkpoints(folder)):
        problem = atomic.verify(p)
        if problem is None:
            return p
        aside = _corrupt_name(p)
        p.rename(aside)
        if log is not None:
            log(f"skipping {p.name}: {problem}; moved it to {aside} (inspect or delete it)")
    return None


def _corrupt_name(p: Path) -> Path:
    aside, n = p.with_name(f"{p.name}.corrupt"), 1
    while aside.exists():
        n += 1
        aside = p.with_name(f"{p.name}.corrupt-{n}")
    return aside


def best_checkpoint(folder: Path) -> Path | None:
    f = Path(folder) / BEST_FILE
    if not f.is_file():
        return None
    p = Path(folder) / json.loads(f.read_text())["checkpoint"]
    return p if atomic.is_complete(p) else None


def rotate(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints; the best one is never deleted."""
    done = complete_checkpoints(folder)
    best = best_checkpoint(folder)
    doomed = [p for p in done[:-keep] if p != best] if keep > 0 else []
    for p in doomed:
        shutil.rmtree(p)
    return doomed


def save_checkpoint(trainer, keep: int) -> Path:
    """Write `checkpoint-<step>` for a transformers Trainer atomically with HF's own save helpers, record
    the best checkpoint, rotate; return the folder."""
    root = Path(trainer.args.output_dir)
    name = f"checkpoint-{trainer.state.global_step}"
    trainer.store_flos()
    best_step = trainer.state.best_global_step
    if best_step:
        trainer.state.best_model_checkpoint = str(root / f"checkpoint-{best_step}")
    # Under torchrun every rank writes its part (its RNG state; its shard under ZeRO/FSDP) into one folder.
    with distributed.shared_building_folder(root / name, replace=True, checksums=True) as staging:
        trainer.save_model(str(staging), _internal_call=True)
        if not trainer.args.save_only_model:
            trainer._save_optimizer_and_scheduler(str(staging))
            trainer._save_scaler(str(staging))
            trainer._save_rng_state(str(staging))
        if distributed.is_main():
            trainer.state.save_to_json(str(staging / "trainer_state.json"))
    if not distributed.is_main():
        return root / name
    if best_step and (root / f"checkpoint-{best_step}").is_dir():
        atomic.write_json(
            root / BEST_FILE, {"checkpoint": f"checkpoint-{best_step}", "metric": trainer.state.best_metric}
        )
    rotate(root, keep)
    return root / name


class SaveAtEpochEnd(TrainerCallback):
    """Checkpoint at every epoch end (after that epoch's evaluation, so 'best' is known) and at the last
    step, so a crash while the final adapter is written never costs a re-train."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_save = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = True
        return control
