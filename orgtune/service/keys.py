"""API keys: each belongs to a project (or is an admin key, which manages keys and projects).

    orgtune service keys create --project research          # prints the key once
    orgtune service keys create --admin
    orgtune service keys list
    orgtune service keys revoke key_…

A key is 40 random characters after `ot-`; only its sha256 is stored (a key of that entropy needs no
slow hash), with its first characters for display.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from orgtune.errors import OrgtuneError
from orgtune.service.db import Database
from orgtune.service.models import ApiKey, Project, new_id, now

_PROJECT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for."""

    key_id: str
    project_id: str | None
    project_name: str | None
    admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_project(db: Database, name: str) -> Project:
    import re

    if not re.match(_PROJECT_NAME, name):
        raise OrgtuneError(
            f"project name {name!r} is not usable",
            fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    with db.writing() as s:
        p = s.scalar(select(Project).where(Project.name == name))
        if p is None:
            p = Project(id=new_id("proj_"), name=name)
            s.add(p)
        return p


def create_key(db: Database, *, project: str | None, admin: bool = False, name: str = "") -> tuple[ApiKey, str]:
    """A new key; returns (row, the key itself). The key is not stored and cannot be shown again."""
    if admin == (project is not None):
        raise OrgtuneError("a key belongs to a project, or is an admin key", fix="pass --project NAME or --admin")
    project_id = ensure_project(db, project).id if project else None
    key = "ot-" + secrets.token_urlsafe(30)
    row = ApiKey(
        id=new_id("key_", 16), project_id=project_id, name=name, key_hash=hash_key(key), prefix=key[:10], admin=admin
    )
    with db.writing() as s:
        s.add(row)
    return row, key


def authenticate(db: Database, key: str) -> Principal | None:
    if not key.startswith("ot-"):
        return None
    with db.reading() as s:
        row = s.execute(
            select(ApiKey, Project.name)
            .outerjoin(Project, Project.id == ApiKey.project_id)
            .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    k, project_name = row
    return Principal(key_id=k.id, project_id=k.project_id, project_name=project_name, admin=k.admin)


def list_keys(db: Database) -> list[dict]:
    with db.reading() as s:
        rows = s.execute(
            select(ApiKey, Project.name).outerjoin(Project, Project.id == ApiKey.project_id).order_by(ApiKey.created_at)
        ).all()
    return [
        {
            "id": k.id,
            "object": "api_key",
            "name": k.name,
            "prefix": k.prefix,
            "project": name,
            "admin": k.admin,
            "created_at": k.created_at,
            "revoked_at": k.revoked_at,
        }
        for k, name in rows
    ]


def revoke_key(db: Database, key_id: str) -> None:
    with db.writing() as s:
        k = s.get(ApiKey, key_id)
        if k is None:
            raise OrgtuneError(f"no API key {key_id!r}", fix="`orgtune service keys list` shows the ids")
        k.revoked_at = k.revoked_at or now()
