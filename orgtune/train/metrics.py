"""Training metrics: metrics.jsonl (one JSON line per log record) and a quiet console progress bar.

MetricsLog(run_dir / "metrics.jsonl")     # loss, lr, grad norm, eval loss, appended as they come
truncate_metrics(path, up_to_step=40)     # on resume, forget what was logged after the checkpoint
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from orgtune import atomic


class MetricsLog(TrainerCallback):
    """Append every log record (loss, lr, grad norm, eval loss) to metrics.jsonl as one JSON line."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs}
        atomic.append_jsonl(self.path, record)  # one write of a whole line, fsynced: a kill cuts at most the last


class QuietProgress(ProgressCallback):
    """transformers' progress bar, printing only evaluations and the final summary (the per-step
    records go to metrics.jsonl) instead of a dict per step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            if "eval_loss" in logs:
                self.training_bar.write(
                    f"epoch {state.epoch:.2f}  step {state.global_step}  eval loss {logs['eval_loss']:.4f}"
                )
            elif "train_loss" in logs:
                self.training_bar.write(
                    f"trained {state.global_step} steps in {logs.get('train_runtime', 0):.0f}s, "
                    f"mean train loss {logs['train_loss']:.4f}"
                )


def truncate_metrics(path: Path, up_to_step: int) -> None:
    """On resume, drop records logged after the checkpoint we resume from (they will be logged again)."""
    path = Path(path)
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if rec.get("step", 0) <= up_to_step:
            keep.append(line + "\n")
    atomic.write_text(path, "".join(keep))
