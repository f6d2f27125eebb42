"""A TrainerCallback that reports a service job's training to the job store: a metrics event per logged
step (OpenAI's `Step 3/10: training loss=…`), the step and estimated finish on the job, and a checkpoint
row for every complete checkpoint folder (rows of rotated-away folders are removed).
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import update
from transformers import TrainerCallback

from orgtune.service.db import Database
from orgtune.service.events import add_event, sync_checkpoints
from orgtune.service.models import Job
from orgtune.train.checkpoints import complete_checkpoints

_TRAIN = {
    "loss": "train_loss",
    "mean_token_accuracy": "train_mean_token_accuracy",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
}
_VALID = {"eval_loss": "valid_loss", "eval_mean_token_accuracy": "valid_mean_token_accuracy", "epoch": "epoch"}


class JobProgress(TrainerCallback):
    def __init__(self, db: Database, job_id: str, run_dir: Path, attempt: int):
        self.db, self.job_id, self.run_dir, self.attempt = db, job_id, Path(run_dir), attempt
        self.metrics: dict[int, dict] = {}
        self.started = self.first_step = None
        self.total = 0

    def _update(self, **values) -> None:
        with self.db.writing() as s:
            s.execute(update(Job).where(Job.id == self.job_id).values(**values))

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.first_step, self.total = time.time(), state.global_step, state.max_steps
        self._update(total_steps=state.max_steps, step=state.global_step)
        add_event(
            self.db,
            self.job_id,
            f"Training: {state.max_steps} steps"
            + (f", resuming after step {state.global_step}" if state.global_step else ""),
            data={"total_steps": state.max_steps, "resumed_from_step": state.global_step},
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        step = state.global_step
        if "loss" in logs:
            keys, what = _TRAIN, ("training loss", logs["loss"])
        elif "eval_loss" in logs:
            keys, what = _VALID, ("validation loss", logs["eval_loss"])
        else:
            return
        data = {
            "step": step,
            "total_steps": self.total,
            "attempt": self.attempt,
            **{out: logs[k] for k, out in keys.items() if k in logs},
        }
        self.metrics.setdefault(step, {"step": step}).update(
            {k: v for k, v in data.items() if k not in ("total_steps", "attempt")}
        )
        add_event(self.db, self.job_id, f"Step {step}/{self.total}: {what[0]}={what[1]:.4f}", type="metrics", data=data)
        done = step - (self.first_step or 0)
        eta = None
        if done > 0 and self.total:
            eta = int(time.time() + (time.time() - self.started) / done * (self.total - step))
        self._update(step=step, estimated_finish=eta)

    def on_save(self, args, state, control, **kwargs):
        on_disk = {}
        for p in complete_checkpoints(self.run_dir / "checkpoints"):
            step = int(p.name.split("-")[1])
            on_disk[step] = (str(p), self.metrics.get(step, {"step": step}))
        for step in sync_checkpoints(self.db, self.job_id, on_disk):
            add_event(self.db, self.job_id, f"Checkpoint created at step {step}", data={"step": step})
