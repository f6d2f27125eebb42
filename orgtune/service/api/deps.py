"""Dependencies of the service's routes: the store, the settings, and who is calling.

Every /v1 route needs `Authorization: Bearer <key>`. A project key sees its own project only; an
admin key manages keys and projects and sees no project's data.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from orgtune.serve.app import bearer
from orgtune.serve.errors import APIError
from orgtune.service.db import Database
from orgtune.service.keys import Principal, authenticate
from orgtune.service.settings import ServiceSettings


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def caller(request: Request) -> Principal:
    token = bearer(request)
    if not token:
        raise APIError(
            401, "missing API key (Authorization: Bearer KEY)", type="authentication_error", code="missing_api_key"
        )
    p = authenticate(request.app.state.db, token)
    if p is None:
        raise APIError(401, "invalid or revoked API key", type="authentication_error", code="invalid_api_key")
    return p


def project(p: Annotated[Principal, Depends(caller)]) -> Principal:
    if p.project_id is None:
        raise APIError(
            403,
            "an admin key manages keys; use a project key for files, jobs and models",
            type="permission_error",
            code="project_key_required",
        )
    return p


def admin(p: Annotated[Principal, Depends(caller)]) -> Principal:
    if not p.admin:
        raise APIError(403, "this needs an admin key", type="permission_error", code="admin_key_required")
    return p


DB = Annotated[Database, Depends(get_db)]
Settings = Annotated[ServiceSettings, Depends(get_settings)]
Project = Annotated[Principal, Depends(project)]
Admin = Annotated[Principal, Depends(admin)]
