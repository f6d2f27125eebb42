"""One job, run to the end in its own process: `python -m orgtune.service.runner JOB_ID`.

Both executors start this (the service's supervisor, or an `orgtune worker` through Procrastinate);
it calls the same stage functions as the CLI — `data build`, `train` (SFT or DPO), `eval`, `export`
— with the job's resolved settings, and reports to the job store as it goes.

- The lease (lease.py) makes it the job's only runner; a heartbeat thread renews it. When the lease
  is lost (this runner was presumed dead and another took over) it exits at once, writing nothing.
- A run folder that holds this job's unfinished run resumes from its last complete checkpoint, so a
  runner started after a crash continues where the killed one stopped, with the same losses.
- Cancel: the run stops after its current step and keeps that checkpoint. SIGTERM (a worker shutting
  down) does the same and puts the job back in the queue without counting the attempt.
- A user error (OrgtuneError) fails the job with its message; any other error is retried on the next
  attempt, until max_attempts.

Exit codes: 0 handled (finished, failed, cancelled, requeued), 75 another runner holds the job.
"""

from __future__ import annotations

import _thread
import contextlib
import csv
import fcntl
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError
from orgtune.service.db import Database
from orgtune.service.events import add_event
from orgtune.service.files import archive_limits, link_input, register_result
from orgtune.service.jobs import job_dir
from orgtune.service.lease import beat, claim_job, release
from orgtune.service.models import Job
from orgtune.service.settings import ServiceSettings

BUSY = 75


class Interrupted(BaseException):
    """A cancel or SIGTERM ended the attempt: raised in the main thread outside training, and for training's
    own stop (after a step, with that step's checkpoint)."""

    def __init__(self, step: int | None = None):
        super().__init__(step)
        self.step = step


class Heartbeat(threading.Thread):
    def __init__(self, db: Database, job_id: str, runner: str, interval: float):
        super().__init__(name="orgtune-heartbeat", daemon=True)
        self.db, self.job_id, self.runner, self.interval = db, job_id, runner, interval
        self.cancel = self.terminate = False
        self.in_training = False
        self.done = threading.Event()

    def stop_requested(self) -> bool:
        """Asked after every optimizer step: a cancel in the job store, or SIGTERM."""
        if not (self.cancel or self.terminate):
            from sqlalchemy import select

            with self.db.reading() as s:
                self.cancel = bool(s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))
        return self.cancel or self.terminate

    def interrupt(self) -> None:
        if not self.in_training:
            _thread.interrupt_main(signal.SIGUSR1)

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                ours, cancel = beat(self.db, self.job_id, self.runner)
            except Exception as e:  # noqa: BLE001 - the database may be away for a while; keep trying
                print(f"heartbeat failed: {e}", file=sys.stderr, flush=True)
                continue
            if not ours:
                print("lease lost: another runner has taken this job over; exiting", file=sys.stderr, flush=True)
                os._exit(BUSY)
            if cancel and not self.cancel:
                self.cancel = True
                self.interrupt()


@contextlib.contextmanager
def folder_lock(folder: Path, timeout: float):
    """An exclusive lock on the job folder (released by the kernel when this process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    f = open(folder / ".runner.lock", "w")
    deadline = time.time() + timeout
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.time() > deadline:  # not the user's doing: the attempt ends and the job is retried
                f.close()
                raise RuntimeError(f"{folder} is still locked by another runner process") from None
            time.sleep(0.2)
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


class JobRun:
    """The stages of one attempt."""

    def __init__(self, db: Database, settings: ServiceSettings, job: Job, hb: Heartbeat):
        self.db, self.settings, self.job, self.hb = db, settings, job, hb
        self.folder = job_dir(settings, job.id)
        self.opts = job.options

    def log(self, message: str, **kw) -> None:
        add_event(self.db, self.job.id, message, **kw)

    def stage(self, name: str) -> None:
        from sqlalchemy import update

        with self.db.writing() as s:
            s.execute(update(Job).where(Job.id == self.job.id).values(stage=name))

    def documents(self) -> Path:
        """The job's documents in one folder: single uploads linked, archives extracted (checked again)."""
        from orgtune.service.archives import extract_documents

        docs = self.folder / "docs"
        if atomic.is_complete(docs):
            return docs
        atomic.remove_partials(self.folder)
        with atomic.building_folder(docs, replace=True) as staging:
            for i, path in enumerate([self.opts["inputs"]["training"], *self.opts["inputs"]["documents"]]):
                path = Path(path)
                if path.suffix.lower() in (".zip", ".tar", ".tgz") or path.name.lower().endswith(".tar.gz"):
                    extract_documents(path, staging / f"{i}-{path.stem}", archive_limits(self.settings))
                else:
                    link_input(path, staging / f"{i}" / path.name)
        return docs

    def build_data(self) -> Path:
        from orgtune.data.build import BuildSettings, build
        from orgtune.models.presets import find_preset

        data = self.folder / "data"
        if (data / "manifest.json").is_file():
            return data
        self.stage("data")
        docs = self.documents()
        b = self.opts["build"]
        preset = find_preset(self.job.base_model)
        fmt = (
            preset.defaults.get("model", {}).get("task_prefix_format") if preset else None
        ) or "[{TASK}] {instruction}"
        from orgtune.service.archives import DOCUMENT_SUFFIXES

        n = sum(1 for p in docs.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES)
        self.log(f"Building training data from {n} document(s)")
        result = build(
            [docs],
            data,
            BuildSettings(
                examples_per_fact=b["examples_per_fact"],
                max_examples_per_doc=b["max_examples_per_doc"],
                val_fraction=b["val_fraction"],
                holdout_fraction=b["holdout"],
                abstain_holdout=b["abstain_holdout"],
                seed=self.job.seed,
                task_prefix_format=fmt,
            ),
            log=self.log,
        )
        c = result.manifest.get("counts", {})
        self.log("Data built: " + ", ".join(f"{k} {v}" for k, v in c.items() if isinstance(v, int)), data={"counts": c})
        return data

    def train(self, data: Path, val: Path | None):
        from orgtune.service.progress import JobProgress
        from orgtune.train.control import Stopped, StopWhen

        self.stage("train")
        parent = job_dir(self.settings, self.job.parent_job_id) / "run" if self.job.parent_job_id else None
        if self.job.method["type"] == "dpo":
            from orgtune.train.dpo import train_dpo as fn
        else:
            from orgtune.train.sft import train as fn
        progress = JobProgress(self.db, self.job.id, self.folder / "run", self.job.attempts)
        self.hb.in_training = True
        try:
            return fn(
                data,
                self.folder / "run",
                overrides=self.opts["config"],
                val=val,
                init_adapter=parent,
                log=self.log,
                callbacks=[progress, StopWhen(self.hb.stop_requested)],
            )
        except Stopped as e:
            raise Interrupted(e.step) from None
        finally:
            self.hb.in_training = False

    def evaluate(self, run) -> None:
        from orgtune.evaluate.report import summary_table
        from orgtune.evaluate.run import evaluate

        e = self.opts["eval"]
        if not e["enabled"]:
            self.log("Evaluation skipped: turned off")
            return
        self.stage("eval")
        m = evaluate(
            run.path,
            max_probes=e["max_probes"],
            batch_size=e["batch_size"],
            general_items=e.get("general_items"),
            general_samples=e.get("general_samples", 8),
            log=self.log,
        )
        summary = {name: b["probes"] for name, b in m["backends"].items()}
        self.log(
            "Evaluation:\n" + summary_table(m),
            type="metrics",
            data={"eval": summary, "regression": m.get("regression")},
        )

    def export(self, run) -> None:
        from orgtune.export.run import export

        x = self.opts["export"]
        if not x["gguf"]:
            return
        self.stage("export")
        self.log(f"Exporting: merge, GGUF {', '.join(x['gguf'])}" + (", verified in llama.cpp" if x["verify"] else ""))
        export(
            run.path,
            gguf_types=x["gguf"],
            verify=x["verify"],
            max_probes=x["max_probes"],
            system=x["system"],
            log=self.log,
        )

    def results(self, run) -> list[str]:
        """Register what the job produced as downloadable files: a step-metrics CSV (as OpenAI's results
        file), the eval report and metrics, and the exports."""
        rows = atomic.read_jsonl_appended(run.path / "metrics.jsonl") if (run.path / "metrics.jsonl").is_file() else []
        cols = ["step", "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy"]
        by_step: dict[int, dict] = {}
        for r in rows:
            d = by_step.setdefault(r["step"], {"step": r["step"]})
            if "loss" in r:
                d.update(train_loss=r["loss"], train_mean_token_accuracy=r.get("mean_token_accuracy"))
            if "eval_loss" in r:
                d.update(valid_loss=r["eval_loss"], valid_mean_token_accuracy=r.get("eval_mean_token_accuracy"))
        out = self.folder / "results"
        out.mkdir(exist_ok=True)
        with open(out / "step_metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(by_step[k] for k in sorted(by_step))
        paths = [
            out / "step_metrics.csv",
            run.path / "report.md",
            run.path / "metrics.json",
            *sorted((run.path / "plots").glob("*.png")),
            run.path / "export" / "export_report.md",
            *sorted((run.path / "export").glob("*.gguf")),
            run.path / "export" / "Modelfile",
        ]
        return [register_result(self.db, self.job.project_id, self.job.id, p).id for p in paths if p.is_file()]

    def execute(self) -> dict:
        if self.opts["from_documents"]:
            data, val = self.build_data(), None
        else:
            v = self.opts["inputs"].get("validation")
            data, val = Path(self.opts["inputs"]["training"]), Path(v) if v else None
        if self.opts.get("stop_after") == "data":
            self.log(f"Stopping after the data stage, as asked: {data}")
            return {
                "stage": None,
                "result_files": [
                    register_result(self.db, self.job.project_id, self.job.id, p).id
                    for p in sorted(Path(data).glob("*.jsonl"))
                    if p.is_file()
                ],
            }
        run = self.train(data, val)
        self.evaluate(run)
        self.export(run)
        s = run.manifest.get("summary", {})
        epochs = self.job.method[self.job.method["type"]]["hyperparameters"]["n_epochs"]
        tokens = s.get("trained_tokens_per_epoch")
        return {
            "fine_tuned_model": self.opts["model_name"],
            "result_files": self.results(run),
            "stage": None,
            "trained_tokens": int(tokens * epochs) if tokens else None,
        }


def _failure(job: Job, e: OrgtuneError) -> dict:
    msg = e.render()
    for key, param in (("training", "training_file"), ("validation", "validation_file")):
        path = job.options["inputs"].get(key)
        if path and path in msg:
            return {"code": f"invalid_{param}", "param": param, "message": msg.replace(path, Path(path).name)}
    return {"code": "job_failed", "param": None, "message": msg}


def run_job(db: Database, settings: ServiceSettings, job_id: str, runner: str) -> int:
    claim = claim_job(db, job_id, runner, timeout=settings.heartbeat_timeout)
    deadline = time.time() + settings.heartbeat_timeout + 2 * settings.heartbeat_interval
    while claim.outcome == "busy" and time.time() < deadline:  # e.g. a queue retried us before the lease expired
        time.sleep(settings.heartbeat_interval)
        claim = claim_job(db, job_id, runner, timeout=settings.heartbeat_timeout)
    if claim.outcome != "run":
        print(f"{job_id}: not run ({claim.reason})", file=sys.stderr)
        return BUSY if claim.outcome == "busy" else 0
    job = claim.job
    hb = Heartbeat(db, job_id, runner, settings.heartbeat_interval)
    hb.start()

    def on_signal(signum, frame):
        if signum == signal.SIGTERM:
            hb.terminate = True
        if not hb.in_training:  # in training, StopWhen stops after this step, with its checkpoint
            raise Interrupted()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)
    try:
        with folder_lock(job_dir(settings, job_id), timeout=settings.heartbeat_timeout):
            fields = JobRun(db, settings, job, hb).execute()
        model = fields.get("fine_tuned_model")
        release(
            db,
            job_id,
            runner,
            status="succeeded",
            **fields,
            message=(f"New fine-tuned model created: {model}. " if model else "")
            + "The job has successfully completed",
        )
    except Interrupted as e:
        where = f" after step {e.step}, whose checkpoint is kept" if e.step is not None else ""
        if hb.cancel:
            release(
                db,
                job_id,
                runner,
                status="cancelled",
                stage=None,
                message=f"Job cancelled{where}; resuming continues from there",
            )
        else:
            release(
                db,
                job_id,
                runner,
                status="queued",
                undo_attempt=True,
                message=f"Runner stopped (SIGTERM){where}; the job is queued to continue",
            )
    except OrgtuneError as e:
        err = _failure(job, e)
        release(db, job_id, runner, status="failed", error=err, message=f"Job failed: {err['message']}", level="error")
    except Exception as e:  # noqa: BLE001 - a crash: retried while attempts remain
        traceback.print_exc()
        reason = f"{type(e).__name__}: {e}"
        if job.attempts < job.max_attempts:
            release(
                db,
                job_id,
                runner,
                status="queued",
                last_error=reason,
                level="error",
                message=f"Attempt {job.attempts} crashed ({reason}); the job is queued to run again",
            )
        else:
            release(
                db,
                job_id,
                runner,
                status="failed",
                last_error=reason,
                level="error",
                error={
                    "code": "job_failed",
                    "param": None,
                    "message": f"the job ran {job.attempts} times without finishing; last: {reason}",
                },
                message=f"Job failed after {job.attempts} attempts: {reason}",
            )
    finally:
        hb.done.set()
    return 0


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6.*", category=FutureWarning)
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m orgtune.service.runner JOB_ID", file=sys.stderr)
        return 2
    settings = ServiceSettings()
    db = Database(settings.db_url())
    runner = os.environ.get("ORGTUNE_RUNNER_ID") or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
    return run_job(db, settings, args[0], runner)


if __name__ == "__main__":
    sys.exit(main())
