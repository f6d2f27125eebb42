"""/v1/orgtune/nightly: a project's nightly schedule, its history and promoted night, run now, rollback
(orgtune's own routes; OpenAI's API has no such thing). See orgtune/service/nightly.py."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from orgtune.errors import OrgtuneError
from orgtune.serve.errors import APIError
from orgtune.service import nightly
from orgtune.service.api.deps import DB, Project, Settings
from orgtune.service.catalog import base_id
from orgtune.service.jobs import base_of

router = APIRouter(prefix="/v1/orgtune/nightly")


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str = Field(description="When, in UTC: minute hour day month weekday (e.g. '0 2 * * *').")
    settings: dict = Field(
        default_factory=dict, description="`orgtune nightly` settings (model, replay, threshold, ...)."
    )
    enabled: bool = True


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = None


@router.put("")
def put_schedule(body: ScheduleBody, db: DB, settings: Settings, p: Project) -> dict:
    try:
        nightly.check_cron(body.cron)
    except OrgtuneError as e:
        raise APIError(400, e.render(), param="cron", code="invalid_cron") from None
    model = body.settings.get("model") or settings.base_models[0]
    with db.reading() as s:
        base, parent = base_of(s, p, model, settings)
    if parent is not None:
        raise APIError(
            400,
            "a nightly schedule trains a base model; its first night starts from the base",
            param="settings.model",
            code="model_not_available",
        )
    try:
        night_settings = nightly.check_settings({**body.settings, "model": base}, base)
    except OrgtuneError as e:
        raise APIError(400, e.render(), param="settings", code="invalid_settings") from None
    current = nightly.status(db, settings, p.project_id)
    if current["history"] and (saved := _saved_model(settings, p.project_id)) not in (None, base):
        raise APIError(
            400,
            f"this project's nights train {saved!r}; a schedule cannot switch its base model",
            param="settings.model",
            code="model_not_available",
        )
    nightly.set_schedule(db, p.project_id, body.cron, night_settings, body.enabled)
    return nightly.status(db, settings, p.project_id)


def _saved_model(settings, project_id: str) -> str | None:
    import json

    f = nightly.project_dir(settings, project_id) / "project" / "nightly.json"
    return json.loads(f.read_text())["model"] if f.is_file() else None


@router.get("")
def get_status(db: DB, settings: Settings, p: Project) -> dict:
    out = nightly.status(db, settings, p.project_id)
    promoted = nightly.promoted_run(settings, p.project_id)
    out["model"] = f"ft:{base_id(promoted[2])}:{p.project_name}:nightly" if promoted else None
    return out


@router.post("/run")
def run_now(db: DB, settings: Settings, p: Project) -> dict:
    if not nightly.run_now(db, p.project_id):
        raise APIError(404, "this project has no nightly schedule; PUT /v1/orgtune/nightly first", code="not_found")
    return nightly.status(db, settings, p.project_id)


@router.post("/rollback")
def rollback(body: RollbackBody, db: DB, settings: Settings, p: Project) -> dict:
    from orgtune.nightly.run import rollback as roll

    folder = nightly.project_dir(settings, p.project_id) / "project"
    try:
        was, now = roll(folder, to=body.to)
    except OrgtuneError as e:
        raise APIError(409 if folder.is_dir() else 404, e.render(), param="to", code="cannot_roll_back") from None
    return {**nightly.status(db, settings, p.project_id), "rolled_back": {"from": was, "to": now}}


@router.delete("")
def delete_schedule(db: DB, p: Project) -> dict:
    if not nightly.delete_schedule(db, p.project_id):
        raise APIError(404, "this project has no nightly schedule", code="not_found")
    return {"object": "nightly", "deleted": True}
