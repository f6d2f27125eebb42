"""/v1/admin: API keys and projects, for admin keys only."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from orgtune.errors import OrgtuneError
from orgtune.serve.errors import APIError
from orgtune.service import keys
from orgtune.service.api.deps import DB, Admin

router = APIRouter(prefix="/v1/admin")


class KeyCreate(BaseModel):
    project: str | None = Field(None, description="The project the key belongs to (created if new).")
    admin: bool = False
    name: str = Field("", max_length=64)


@router.post("/keys")
def create_key(req: KeyCreate, db: DB, _: Admin) -> dict:
    try:
        row, key = keys.create_key(db, project=req.project, admin=req.admin, name=req.name)
    except OrgtuneError as e:
        raise APIError(400, e.render(), param="project") from None
    return {
        "id": row.id,
        "object": "api_key",
        "key": key,
        "project": req.project,
        "admin": row.admin,
        "name": row.name,
        "created_at": row.created_at,
    }


@router.get("/keys")
def list_keys(db: DB, _: Admin) -> dict:
    return {"object": "list", "data": keys.list_keys(db)}


@router.delete("/keys/{key_id}")
def revoke_key(key_id: str, db: DB, _: Admin) -> dict:
    try:
        keys.revoke_key(db, key_id)
    except OrgtuneError as e:
        raise APIError(404, e.message, param="key_id", code="not_found") from None
    return {"id": key_id, "object": "api_key", "deleted": True}
