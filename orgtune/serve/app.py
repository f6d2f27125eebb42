"""The OpenAI-compatible HTTP API of `orgtune serve` (FastAPI): one engine, its base and adapters.

    POST /v1/chat/completions   chat, `stream: true` as server-sent events     (serve/routes.py)
    POST /v1/completions        raw text completion
    GET  /v1/models             the base and every adapter; `model` in a request picks one
    POST /v1/adapters           {"name": ..., "path": RUN_DIR}   (admin key)
    DELETE /v1/adapters/NAME                                     (admin key)
    GET  /health

Errors use OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with the matching status:
404 unknown model, 400 context or max_tokens over the limit and malformed JSON, 422 a body of the wrong
shape or a value out of range, 401 a missing or wrong API key, 413 a body over --max-body-mb. Generation
runs on the engine's worker thread, never on the event loop. With an API key set, /health without the key
says only {"status": "ok"}.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI, Request
from pydantic import Field

from orgtune.errors import OrgtuneError
from orgtune.serve.errors import APIError, install_error_handlers
from orgtune.serve.limits import BodyLimit, same_key
from orgtune.serve.routes import _Body, inference_router, set_limits


class AdapterRequest(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    path: str


class EngineCatalog:
    """Every name one engine serves (its base and adapters), for every caller."""

    def __init__(self, engine, started: int):
        self.engine, self.started = engine, started

    def models(self) -> list[dict]:
        e = self.engine
        return [
            {
                "id": n,
                "object": "model",
                "created": self.started,
                "owned_by": "orgtune",
                "root": e.base_name,
                "parent": None if n == e.base_name else e.base_name,
            }
            for n in e.names()
        ]

    def resolve(self, name: str):
        if name not in self.engine.names():
            raise APIError(
                404,
                f"model {name!r} does not exist; served: {', '.join(self.engine.names())}",
                param="model",
                code="model_not_found",
            )
        return self.engine, name


def bearer(request: Request) -> str:
    got = request.headers.get("authorization", "")
    return got[7:].strip() if got.lower().startswith("bearer ") else ""


def create_app(
    engine,
    *,
    api_key: str | None = None,
    admin_key: str | None = None,
    max_tokens_limit: int = 2048,
    default_max_tokens: int = 512,
    max_body_mb: float = 4,
):
    app = FastAPI(title="orgtune serve", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=int(max_body_mb * 2**20))
    set_limits(app, max_tokens_limit=max_tokens_limit, default_max_tokens=default_max_tokens)
    catalog = EngineCatalog(engine, int(time.time()))

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            token = bearer(request)
            if not token:
                return APIError(
                    401,
                    "missing API key (Authorization: Bearer KEY)",
                    type="authentication_error",
                    code="missing_api_key",
                ).response()
            if not same_key(token, api_key) and not (admin_key and same_key(token, admin_key)):
                return APIError(401, "wrong API key", type="authentication_error", code="invalid_api_key").response()
        return await call_next(request)

    app.include_router(inference_router(lambda: catalog))

    @app.get("/health")
    async def health(request: Request):
        token = bearer(request)
        if api_key and not (same_key(token, api_key) or (admin_key and same_key(token, admin_key))):
            return {"status": "ok"}  # what is served is for key holders
        return {"status": "ok", "engine": engine.kind, "models": engine.names(), "queued": engine.pending()}

    def need_admin(request: Request) -> None:
        if not admin_key:
            raise APIError(
                403,
                "adapter management is off; start the server with --admin-key",
                type="permission_error",
                code="admin_disabled",
            )
        if not same_key(bearer(request), admin_key):
            raise APIError(
                401, "adapter management needs the admin key", type="authentication_error", code="invalid_admin_key"
            )

    @app.post("/v1/adapters")
    async def add_adapter(req: AdapterRequest, request: Request):
        need_admin(request)
        try:
            folder = await asyncio.to_thread(engine.load_adapter, req.name, req.path)
        except OrgtuneError as e:
            raise APIError(400, f"{e} (fix: {e.fix})" if e.fix else str(e), param="path", code="bad_adapter") from None
        return {"id": req.name, "object": "model", "adapter": str(folder), "models": engine.names()}

    @app.delete("/v1/adapters/{name}")
    async def remove_adapter(name: str, request: Request):
        need_admin(request)
        try:
            await asyncio.to_thread(engine.unload_adapter, name)
        except KeyError:
            raise APIError(404, f"adapter {name!r} is not loaded", param="name", code="model_not_found") from None
        return {"id": name, "object": "model", "deleted": True, "models": engine.names()}

    return app
