"""Who starts a queued job's runner: one small interface, two backends.

    executor.submit(job_id)   # the job is queued (or queued again)
    executor.cancel(job_id)   # a cancel was recorded; a runner polls the job store and stops by itself
    executor.start() / executor.stop()

- LocalExecutor (the embedded default): a supervisor thread in `orgtune service` that starts each job
  as `python -m orgtune.service.runner JOB_ID`, one slot per GPU (CUDA_VISIBLE_DEVICES pinned) or one
  on CPU, and re-starts jobs whose runner died (the runner's lease decides, see lease.py).
- ProcrastinateExecutor (queue.py): jobs go to a PostgreSQL queue that `orgtune worker`s on many
  machines consume.

A runner dies with the process that started it (PR_SET_PDEATHSIG), so a killed supervisor or worker
never leaves a training process behind that a new runner would race.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select

from orgtune.home import home
from orgtune.service.db import Database
from orgtune.service.jobs import job_dir
from orgtune.service.lease import stale_jobs
from orgtune.service.models import Job
from orgtune.service.runner import BUSY
from orgtune.service.settings import ServiceSettings

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the thread that started it dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def runner_env(db: Database, settings: ServiceSettings, gpu: int | None) -> dict[str, str]:
    """The environment a runner needs to see the same store, home and settings as its starter."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"ORGTUNE_{name.upper()}"] = json.dumps(value, default=str) if isinstance(value, list) else str(value)
    env.update(ORGTUNE_DATABASE_URL=db.url, ORGTUNE_HOME=str(home()), PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def runner_command(job_id: str) -> list[str]:
    return [sys.executable, "-m", "orgtune.service.runner", job_id]


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return 0


class LocalExecutor:
    name = "local"

    def __init__(self, db: Database, settings: ServiceSettings, log=print):
        self.db, self.settings, self.log = db, settings, log
        gpus = gpu_count()
        self.slots = settings.slots or max(gpus, 1)
        self.gpus = gpus
        self.children: dict[str, tuple[subprocess.Popen, int]] = {}
        self.hold: dict[str, float] = {}  # job -> time before which it is not started again (runner said busy)
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._loop, name="orgtune-supervisor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, job_id: str) -> None:
        self.wake.set()

    def cancel(self, job_id: str) -> None:
        self.wake.set()

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM every runner (each stops after its step, keeping the checkpoint, and requeues)."""
        self.stopping.set()
        self.wake.set()
        for proc, _ in self.children.values():
            proc.send_signal(signal.SIGTERM)
        deadline = time.time() + timeout
        for proc, _ in self.children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.thread.join(timeout=5)

    def running(self) -> list[str]:
        return list(self.children)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self._reap()
                self._dispatch()
            except Exception as e:  # noqa: BLE001 - keep supervising; the store may be briefly away
                self.log(f"supervisor: {type(e).__name__}: {e}")
            self.wake.wait(self.settings.poll_interval)
            self.wake.clear()

    def _reap(self) -> None:
        for job_id, (proc, _) in list(self.children.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.children[job_id]
            if code == BUSY:
                self.hold[job_id] = time.time() + self.settings.heartbeat_timeout
            elif code != 0:  # killed, or died before it could record anything: the lease goes stale
                self.log(f"runner of {job_id} exited with {code}")

    def _dispatch(self) -> None:
        free = [s for s in range(self.slots) if s not in {slot for _, slot in self.children.values()}]
        if not free or self.stopping.is_set():
            return
        with self.db.reading() as s:
            queued = list(s.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.seq).limit(50)))
        candidates = [
            j
            for j in [*queued, *stale_jobs(self.db, self.settings.heartbeat_timeout)]
            if j not in self.children and self.hold.get(j, 0) < time.time()
        ]
        for job_id, slot in zip(dict.fromkeys(candidates), free, strict=False):
            self._spawn(job_id, slot)

    def _spawn(self, job_id: str, slot: int) -> None:
        folder = job_dir(self.settings, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "runner.log", "ab") as log:
            proc = subprocess.Popen(
                runner_command(job_id),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=runner_env(self.db, self.settings, slot if self.gpus else None),
                preexec_fn=die_with_parent,
                cwd=str(Path.cwd()),
            )
        self.children[job_id] = (proc, slot)


def make_executor(db: Database, settings: ServiceSettings, log=print):
    if settings.executor == "procrastinate":
        from orgtune.service.queue import ProcrastinateExecutor

        return ProcrastinateExecutor(db, settings)
    return LocalExecutor(db, settings, log=log)
