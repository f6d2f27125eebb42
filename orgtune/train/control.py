"""Stopping a training run on request at a step boundary, with that step's checkpoint kept.

    stop = StopWhen(lambda: cancel_requested())      # polled after every optimizer step
    try:
        train(data, out, callbacks=[stop])
    except Stopped as s:
        print(f"stopped at step {s.step}; re-running the same command resumes from there")

When the check says stop, the trainer saves a checkpoint for the step just finished (atomically, as
every checkpoint) and `Stopped` ends the run before the final adapter is written: the run stays
unfinished and resumable, never marked complete with half the steps.
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import TrainerCallback


class Stopped(Exception):
    def __init__(self, step: int):
        super().__init__(f"training stopped on request after step {step}")
        self.step = step


class StopWhen(TrainerCallback):
    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.requested = False

    def on_step_end(self, args, state, control, **kwargs):
        if not self.requested and self.should_stop():
            self.requested = True
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if self.requested:
            raise Stopped(state.global_step)
        return control
