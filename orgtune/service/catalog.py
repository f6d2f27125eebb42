"""The models a project may call through /v1/chat/completions of the service: the base models the
service offers, and the project's own fine-tuned models (`ft:<base>:<suffix>:<job>`) and their
checkpoints (`…:ckpt-step-N`), and its nightly schedule's promoted model (`ft:<base>:<project>:nightly`, the
night's adapter: a promotion or a rollback switches it at the next call). Each base is loaded once, on first use; a fine-tuned model is its
job's adapter, loaded onto that base when first called, so a job that has just succeeded is servable
at once. Another project's model is "not found".
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from orgtune.models.presets import find_preset
from orgtune.serve.errors import APIError
from orgtune.service.db import Database
from orgtune.service.keys import Principal
from orgtune.service.models import Checkpoint, Job
from orgtune.service.nightly import promoted_run
from orgtune.service.settings import ServiceSettings


def base_id(spec: str) -> str:
    """The name a base model is called by: its preset name, or its folder's name."""
    p = find_preset(spec)
    return p.name if p else Path(spec).name


class Engines:
    """One HF engine per base model, shared by every project; loaded on first use."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.engines: dict[str, object] = {}
        self.lock = threading.Lock()

    def get(self, spec: str):
        with self.lock:
            if spec not in self.engines:
                from orgtune.serve.engine import HFEngine

                self.engines[spec] = HFEngine(spec, device=self.settings.device, name=base_id(spec), log=lambda m: None)
            return self.engines[spec]

    def stop(self) -> None:
        for e in self.engines.values():
            e.stop()


class ProjectCatalog:
    def __init__(self, db: Database, settings: ServiceSettings, engines: Engines, principal: Principal):
        self.db, self.settings, self.engines, self.p = db, settings, engines, principal

    def _jobs(self, s):
        return s.scalars(
            select(Job).where(Job.project_id == self.p.project_id, Job.status == "succeeded").order_by(Job.seq)
        )

    def models(self) -> list[dict]:
        out = [
            {"id": base_id(b), "object": "model", "created": 0, "owned_by": "orgtune"}
            for b in self.settings.base_models
        ]
        promoted = promoted_run(self.settings, self.p.project_id)
        if promoted:
            out.append(
                {
                    "id": self._nightly_name(promoted[2]),
                    "object": "model",
                    "created": 0,
                    "owned_by": self.p.project_name,
                    "root": base_id(promoted[2]),
                    "night": promoted[0],
                }
            )
        with self.db.reading() as s:
            out += [
                {
                    "id": j.fine_tuned_model,
                    "object": "model",
                    "created": j.finished_at or j.created_at,
                    "owned_by": self.p.project_name,
                    "root": base_id(j.base_model),
                    "parent": base_id(j.base_model),
                }
                for j in self._jobs(s)
            ]
        return out

    def resolve(self, name: str):
        bases = {base_id(b): b for b in self.settings.base_models}
        if name in bases:
            engine = self.engines.get(bases[name])
            return engine, engine.base_name
        if not name.startswith("ft:"):
            raise self._missing(name)
        if name.endswith(":nightly"):
            return self._nightly(name)
        model, _, step = name.partition(":ckpt-step-")
        with self.db.reading() as s:
            job = s.scalar(select(Job).where(Job.project_id == self.p.project_id, Job.id == model.rsplit(":", 1)[-1]))
            if job is None or job.options.get("model_name") != model:
                raise self._missing(name)
            if step:
                ckpt = s.scalar(
                    select(Checkpoint).where(
                        Checkpoint.job_id == job.id, Checkpoint.step_number == (int(step) if step.isdigit() else -1)
                    )
                )
                if ckpt is None:
                    raise self._missing(name)
                adapter = Path(ckpt.path)
            elif job.status == "succeeded":
                adapter = self.settings.jobs_dir() / job.id / "run"
            else:
                raise APIError(
                    404, f"model {name!r} is not ready: its job is {job.status}", param="model", code="model_not_found"
                )
        engine = self.engines.get(job.base_model)
        if name not in engine.adapters:
            engine.load_adapter(name, adapter)
        return engine, name

    def _nightly_name(self, base: str) -> str:
        return f"ft:{base_id(base)}:{self.p.project_name}:nightly"

    def _nightly(self, name: str):
        promoted = promoted_run(self.settings, self.p.project_id)
        if promoted is None or name != self._nightly_name(promoted[2]):
            raise self._missing(name)
        night, run, base = promoted
        engine = self.engines.get(base)
        key = f"{name}@{night}"  # the adapter of this night; a later promotion loads its own
        if key not in engine.adapters:
            engine.load_adapter(key, run)
        return engine, key

    def _missing(self, name: str) -> APIError:
        return APIError(
            404, f"model {name!r} does not exist or you do not have access to it", param="model", code="model_not_found"
        )
