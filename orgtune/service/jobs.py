"""Fine-tuning jobs as the API sees them: create (every choice resolved and checked up front), validate
the files, list, cancel, resume, and the OpenAI `fine_tuning.job` object.

    validating_files ─▶ queued ─▶ running ─▶ succeeded
            │             │          ├──────▶ failed      (a user error at once; a crash or a lost worker
            ▼             ▼          ▼                     after max_attempts runs)
          failed      cancelled  cancelled ─(resume)─▶ queued

A job's folder, ORGTUNE_HOME/service/jobs/<id>/, holds its own links to its input files (so deleting
an upload never breaks it), the data built from documents, and the run folder `orgtune train` writes.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from sqlalchemy import func, select

from orgtune.config import deep_merge, resolve_config
from orgtune.errors import OrgtuneError
from orgtune.serve.errors import APIError, not_found
from orgtune.service.db import Database
from orgtune.service.events import add_event
from orgtune.service.files import link_input, own_file
from orgtune.service.keys import Principal
from orgtune.service.models import Job, new_id, now
from orgtune.service.schemas import Hyperparameters, JobCreate
from orgtune.service.settings import ServiceSettings

FINAL = ("succeeded", "failed", "cancelled")


def job_dir(settings: ServiceSettings, job_id: str) -> Path:
    return settings.jobs_dir() / job_id


def own_job(s, project_id: str, job_id: str) -> Job:
    j = s.scalar(select(Job).where(Job.id == job_id, Job.project_id == project_id))
    if j is None:
        raise not_found("fine-tuning job", job_id, param="fine_tuning_job_id")
    return j


def base_of(s, p: Principal, model: str, settings: ServiceSettings) -> tuple[str, Job | None]:
    """(the base weights, the parent job when `model` is one of the project's fine-tuned models)."""
    from orgtune.models.presets import find_preset

    if model.startswith("ft:"):
        parent = s.scalar(
            select(Job).where(Job.fine_tuned_model == model, Job.project_id == p.project_id, Job.status == "succeeded")
        )
        if parent is None:
            raise APIError(404, f"model {model!r} does not exist", param="model", code="model_not_found")
        return parent.base_model, parent
    preset = find_preset(model)
    offered = {(find_preset(b).name if find_preset(b) else b) for b in settings.base_models}
    if preset is not None and preset.name in offered:
        return preset.name, None
    folder = Path(model).expanduser()
    if folder.is_dir() and any(folder.resolve().is_relative_to(Path(r).resolve()) for r in settings.model_paths):
        return str(folder.resolve()), None
    raise APIError(
        400,
        f"model {model!r} is not offered by this service; base models: {', '.join(sorted(offered))}"
        + (" (or a folder under ORGTUNE_MODEL_PATHS)" if settings.model_paths else ""),
        param="model",
        code="model_not_available",
    )


def _resolve_method(req: JobCreate, base: str, parent: Job | None, seed: int) -> tuple[dict, dict]:
    """OpenAI's method with every "auto" replaced by the value used, and the run config overrides."""
    mtype = req.method.type if req.method else "supervised"
    if mtype == "reinforcement":
        raise APIError(
            400,
            "reinforcement fine-tuning is not offered; use supervised or dpo",
            param="method.type",
            code="unsupported_method",
        )
    body = getattr(req.method, mtype, None) if req.method else None
    hp = body.hyperparameters if body else (req.hyperparameters or Hyperparameters())
    user = deep_merge(req.orgtune.config, {"model": {"name": base}})
    try:
        defaults = resolve_config(overrides=user)
    except OrgtuneError as e:
        raise APIError(400, e.render(), param="orgtune.config", code="invalid_config") from None
    t = defaults.training
    dpo = mtype == "dpo"
    base_lr = t.learning_rate
    if dpo:  # as `orgtune train --method dpo`: a twentieth of the parent's learning rate
        base_lr = 0.05 * (parent.options["config"]["training"]["learning_rate"] if parent else t.learning_rate)
    given_lr = (req.orgtune.config.get("training") or {}).get("learning_rate")
    mult = 1.0 if hp.learning_rate_multiplier == "auto" else float(hp.learning_rate_multiplier)
    resolved = {
        "batch_size": t.per_device_train_batch_size if hp.batch_size == "auto" else hp.batch_size,
        "learning_rate_multiplier": mult,
        "n_epochs": (1 if dpo else t.num_epochs) if hp.n_epochs == "auto" else hp.n_epochs,
    }
    if float(resolved["n_epochs"]).is_integer():
        resolved["n_epochs"] = int(resolved["n_epochs"])
    training = {
        "num_epochs": resolved["n_epochs"],
        "per_device_train_batch_size": resolved["batch_size"],
        "learning_rate": (given_lr or base_lr) * mult,
        "seed": seed,
    }
    overrides = deep_merge(user, {"training": training})
    if dpo:
        resolved["beta"] = defaults.dpo.beta if hp.beta == "auto" else hp.beta
        overrides = deep_merge(overrides, {"dpo": {"beta": resolved["beta"]}})
    try:
        final = resolve_config(overrides=overrides)
    except OrgtuneError as e:
        raise APIError(400, e.render(), param="method", code="invalid_hyperparameters") from None
    overrides["training"]["learning_rate"] = final.training.learning_rate
    return {"type": mtype, mtype: {"hyperparameters": resolved}}, overrides


def create_job(db: Database, settings: ServiceSettings, p: Principal, req: JobCreate) -> Job:
    """Check and resolve everything a job needs, record it (status validating_files), link its inputs."""
    if req.integrations:
        raise APIError(400, "integrations are not supported by this service", param="integrations")
    seed = req.seed if req.seed is not None else random.randrange(2**31)
    with db.reading() as s:
        base, parent = base_of(s, p, req.model, settings)
        training = own_file(s, p.project_id, req.training_file, param="training_file")
        validation = (
            own_file(s, p.project_id, req.validation_file, param="validation_file") if req.validation_file else None
        )
        docs = [own_file(s, p.project_id, d, param="orgtune.documents") for d in req.orgtune.documents]
    if training.purpose != "fine-tune":
        raise APIError(
            400,
            f"{training.id} has purpose {training.purpose!r}; upload training data with purpose 'fine-tune'",
            param="training_file",
            code="invalid_training_file",
        )
    if validation is not None and validation.kind != "jsonl":
        raise APIError(
            400,
            f"{validation.id} ({validation.filename}) is not a JSONL file",
            param="validation_file",
            code="invalid_validation_file",
        )
    if any(d.kind not in ("document", "archive") for d in docs):
        raise APIError(400, "orgtune.documents takes document or archive files only", param="orgtune.documents")
    method, overrides = _resolve_method(req, base, parent, seed)
    from_docs = training.kind in ("document", "archive")
    if from_docs and method["type"] == "dpo":
        raise APIError(
            400,
            "DPO trains on preference pairs: a JSONL file (prompt/chosen/rejected); documents build supervised data",
            param="training_file",
            code="invalid_training_file",
        )
    if docs and not from_docs:
        raise APIError(
            400,
            "orgtune.documents joins a training file that holds documents; this one is JSONL data",
            param="orgtune.documents",
        )
    job_id = new_id("ftjob-")
    base_name = Path(base).name
    options = {
        "config": overrides,
        "build": req.orgtune.build.model_dump(),
        "eval": req.orgtune.eval.model_dump(),
        "export": req.orgtune.export.model_dump(),
        "from_documents": from_docs,
        "stop_after": req.orgtune.stop_after,
        "model_name": f"ft:{base_name}:{req.suffix or p.project_name}:{job_id}",
    }
    folder = job_dir(settings, job_id) / "inputs"
    inputs = {"training": str(link_input(Path(training.path), folder / "training" / training.filename))}
    if validation is not None:
        inputs["validation"] = str(link_input(Path(validation.path), folder / "validation" / validation.filename))
    inputs["documents"] = [str(link_input(Path(d.path), folder / "documents" / d.id / d.filename)) for d in docs]
    options["inputs"] = inputs
    job = Job(
        id=job_id,
        project_id=p.project_id,
        model=req.model,
        base_model=base,
        parent_job_id=parent.id if parent else None,
        training_file=training.id,
        validation_file=validation.id if validation else None,
        documents=[d.id for d in docs],
        suffix=req.suffix,
        seed=seed,
        method=method,
        options=options,
        metadata_=req.metadata,
        status="validating_files",
        max_attempts=req.orgtune.max_attempts or settings.max_attempts,
        result_files=[],
    )
    with db.writing() as s:
        s.add(job)
        add_event(db, job_id, f"Validating training file: {training.id}", session=s)
    return job


def _invalid_file(e: OrgtuneError, path: str, filename: str) -> str:
    return e.render().replace(path, filename)


def validate_job(db: Database, job_id: str) -> str:
    """Check the job's JSONL rows (`data check`'s reader: every bad line named); queued or failed."""
    from orgtune.data.formats import SFT_FORMATS, load_rows

    with db.reading() as s:
        j = s.scalar(select(Job).where(Job.id == job_id))
    if j is None or j.status != "validating_files":
        return j.status if j else "missing"
    allowed = ("preference",) if j.method["type"] == "dpo" else SFT_FORMATS
    error = None
    for param, key in (("training_file", "training"), ("validation_file", "validation")):
        path = j.options["inputs"].get(key)
        if path is None or (key == "training" and j.options["from_documents"]):
            continue
        try:
            load_rows(path, allowed=allowed)
        except OrgtuneError as e:
            error = {"code": f"invalid_{param}", "param": param, "message": _invalid_file(e, path, Path(path).name)}
            break
    with db.writing() as s:
        j = s.scalar(select(Job).where(Job.id == job_id))
        if j.status != "validating_files":  # cancelled meanwhile
            return j.status
        if error:
            j.status, j.error, j.finished_at = "failed", error, now()
            add_event(db, job_id, error["message"], level="error", session=s)
        else:
            j.status = "queued"
            add_event(db, job_id, "Files validated, moving job to queued state", session=s)
        return j.status


def queue_position(s, j: Job) -> int | None:
    if j.status != "queued":
        return None
    return 1 + s.scalar(select(func.count()).select_from(Job).where(Job.status == "queued", Job.seq < j.seq))


def job_object(j: Job, position: int | None = None) -> dict:
    hp = j.method[j.method["type"]]["hyperparameters"]
    return {
        "id": j.id,
        "object": "fine_tuning.job",
        "created_at": j.created_at,
        "error": j.error,
        "fine_tuned_model": j.fine_tuned_model,
        "finished_at": j.finished_at,
        "hyperparameters": {k: hp[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")},
        "model": j.model,
        "organization_id": j.project_id,
        "result_files": j.result_files,
        "seed": j.seed,
        "status": j.status,
        "trained_tokens": j.trained_tokens,
        "training_file": j.training_file,
        "validation_file": j.validation_file,
        "estimated_finish": j.estimated_finish,
        "integrations": [],
        "metadata": j.metadata_,
        "method": j.method,
        "user_provided_suffix": j.suffix,
        "orgtune": {
            "base_model": j.base_model,
            "stage": j.stage,
            "step": j.step,
            "total_steps": j.total_steps,
            "attempts": j.attempts,
            "max_attempts": j.max_attempts,
            "queue_position": position,
            "documents": j.documents,
            "started_at": j.started_at,
            "parent_job": j.parent_job_id,
        },
    }


def get_job(db: Database, project_id: str, job_id: str) -> dict:
    with db.reading() as s:
        j = own_job(s, project_id, job_id)
        return job_object(j, queue_position(s, j))


def list_jobs(
    db: Database, project_id: str, *, after: str | None, limit: int, metadata: dict[str, str] | None = None
) -> dict:
    with db.reading() as s:
        q = select(Job).where(Job.project_id == project_id)
        if after:
            q = q.where(Job.seq < own_job(s, project_id, after).seq)
        rows = list(s.scalars(q.order_by(Job.seq.desc()).limit(limit + 1 if not metadata else 10_000)))
        if metadata:
            rows = [j for j in rows if all((j.metadata_ or {}).get(k) == v for k, v in metadata.items())][: limit + 1]
        data = [job_object(j, queue_position(s, j)) for j in rows[:limit]]
    return {"object": "list", "data": data, "has_more": len(rows) > limit}


def cancel_job(db: Database, project_id: str, job_id: str, *, wait: float = 0.0) -> dict:
    """Not started: cancelled at once. Running: its runner stops after the current step, keeping that
    step's checkpoint; this waits up to `wait` seconds for that."""
    with db.writing() as s:
        j = own_job(s, project_id, job_id)
        if j.status in ("succeeded", "failed"):
            raise APIError(
                400, f"job {job_id} has already {j.status}; there is nothing to cancel", code="job_already_finished"
            )
        if j.status in ("validating_files", "queued"):
            j.status, j.finished_at, j.cancel_requested = "cancelled", now(), True
            add_event(db, job_id, "Job cancelled before it started", session=s)
        elif j.status == "running" and not j.cancel_requested:
            j.cancel_requested = True
            add_event(
                db,
                job_id,
                "Cancellation requested: the run stops after its current step and keeps that checkpoint",
                session=s,
            )
    deadline = time.time() + wait
    while time.time() < deadline:
        with db.reading() as s:
            if own_job(s, project_id, job_id).status != "running":
                break
        time.sleep(0.2)
    return get_job(db, project_id, job_id)


def resume_job(db: Database, project_id: str, job_id: str) -> dict:
    """A cancelled (or failed, after its runs) job back in the queue; it continues from its last checkpoint."""
    with db.writing() as s:
        j = own_job(s, project_id, job_id)
        if j.status not in ("cancelled", "failed") or (j.error or {}).get("code", "").startswith("invalid_"):
            raise APIError(
                400,
                f"job {job_id} is {j.status}"
                + (" with invalid files" if j.status == "failed" else "")
                + "; only a cancelled job, or one that failed while running, can be resumed",
                code="job_not_resumable",
            )
        j.status, j.cancel_requested, j.error, j.finished_at = "queued", False, None, None
        j.attempts, j.last_error, j.runner, j.heartbeat_at = 0, None, None, None
        add_event(db, job_id, "Job resumed: it continues from its last checkpoint", session=s)
    return get_job(db, project_id, job_id)
