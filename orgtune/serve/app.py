"""The OpenAI-compatible HTTP API of `orgtune serve` (FastAPI).

    POST /v1/chat/completions   chat, `stream: true` as server-sent events
    POST /v1/completions        raw text completion
    GET  /v1/models             the base and every adapter; `model` in a request picks one
    POST /v1/adapters           {"name": ..., "path": RUN_DIR}   (admin key)
    DELETE /v1/adapters/NAME                                     (admin key)
    GET  /health

Errors use OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with the matching status:
404 unknown model, 400 context or max_tokens over the limit and malformed JSON, 422 a body of the wrong
shape, 401 a missing or wrong API key. Generation runs on the engine's worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from orgtune.errors import OrgtuneError
from orgtune.serve.engine import Job


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send fields we do not use (user, logprobs, ...)


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict] | None = None


class _Sampling(_Body):
    model: str
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)


class AdapterRequest(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    path: str


def _text_of(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for p in content:
        if p.get("type") != "text":
            raise APIError(400, f"content part of type {p.get('type')!r} is not supported (text only)",
                           param="messages", code="unsupported_content")
        parts.append(str(p.get("text", "")))
    return "".join(parts)


def create_app(engine, *, api_key: str | None = None, admin_key: str | None = None, max_tokens_limit: int = 2048,
               default_max_tokens: int = 512):
    app = FastAPI(title="orgtune serve", docs_url=None, redoc_url=None)
    started = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        errs = e.errors()
        if any(x.get("type") == "json_invalid" for x in errs):
            return JSONResponse(APIError(400, "request body is not valid JSON", code="invalid_json").body(), 400)
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse(APIError(422, f"{where or 'body'}: {first.get('msg', 'invalid')}", param=where or None,
                                     code="invalid_value").body(), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, e):
        return JSONResponse(APIError(e.status_code, str(e.detail), code="not_found" if e.status_code == 404 else None)
                            .body(), e.status_code)

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            got = request.headers.get("authorization", "")
            token = got[7:] if got.lower().startswith("bearer ") else ""
            if not token:
                return JSONResponse(APIError(401, "missing API key (Authorization: Bearer KEY)",
                                             type="authentication_error", code="missing_api_key").body(), 401)
            if not secrets.compare_digest(token, api_key) and not (admin_key and secrets.compare_digest(token, admin_key)):
                return JSONResponse(APIError(401, "wrong API key", type="authentication_error",
                                             code="invalid_api_key").body(), 401)
        return await call_next(request)

    def need_model(name: str) -> None:
        if name not in engine.names():
            raise APIError(404, f"model {name!r} does not exist; served: {', '.join(engine.names())}",
                           param="model", code="model_not_found")

    def budget(prompt: str, asked: int | None) -> tuple[int, int]:
        n_prompt = engine.count(prompt)
        if asked is not None and asked > max_tokens_limit:
            raise APIError(400, f"max_tokens {asked} is over this server's limit of {max_tokens_limit}",
                           param="max_tokens", code="max_tokens_too_large")
        room = engine.context - n_prompt
        want = asked if asked is not None else min(default_max_tokens, max_tokens_limit, max(room, 0))
        if n_prompt + want > engine.context or room <= 0:
            raise APIError(400, f"this model's context window is {engine.context} tokens; the prompt has {n_prompt} "
                           f"and max_tokens asks for {want} more", param="messages", code="context_length_exceeded")
        return n_prompt, want

    async def generate(job: Job) -> dict:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(r):
            loop.call_soon_threadsafe(lambda: fut.done() or (fut.set_exception(r) if isinstance(r, BaseException)
                                                              else fut.set_result(r)))

        job.done = done
        engine.submit(job)
        try:
            return await fut
        except OrgtuneError as e:
            raise APIError(400, str(e), code="generation_failed") from None
        except Exception as e:  # noqa: BLE001
            raise APIError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error") from None

    def stream(job: Job, chunk, *, strip: bool = False) -> StreamingResponse:
        """Server-sent events; with `strip`, the text adds up to the stripped answer (as non-streamed chat)."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        job.on_text = lambda piece: loop.call_soon_threadsafe(q.put_nowait, ("text", piece))
        job.done = lambda r: loop.call_soon_threadsafe(q.put_nowait, ("done", r))
        engine.submit(job)

        async def events():
            yield _sse(chunk(None, None, first=True))
            started, held = not strip, ""
            while True:
                kind, value = await q.get()
                if kind == "text":
                    if strip:
                        value = held + value
                        if not started:
                            value = value.lstrip()
                        body = value.rstrip()
                        held = value[len(body):]
                        value = body
                    if value:
                        started = True
                        yield _sse(chunk(value, None))
                else:
                    if isinstance(value, BaseException):
                        yield _sse(APIError(500, f"generation failed: {value}", type="server_error").body())
                    else:
                        yield _sse(chunk(None, value["finish_reason"], usage=value))
                    break
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/health")
    async def health():
        return {"status": "ok", "engine": engine.kind, "models": engine.names(), "queued": engine.pending()}

    @app.get("/v1/models")
    async def models():
        data = [{"id": n, "object": "model", "created": started, "owned_by": "orgtune",
                 "root": engine.base_name, "parent": None if n == engine.base_name else engine.base_name}
                for n in engine.names()]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        need_model(req.model)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": _text_of(m.content)}
                    for m in req.messages]
        try:
            prompt = engine.render_chat(messages)
        except Exception as e:  # noqa: BLE001 - templates raise on role orders they do not support
            raise APIError(400, f"the chat template rejects these messages: {e}", param="messages") from None
        n_prompt, want = budget(prompt, req.max_completion_tokens or req.max_tokens)
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        job = Job(model=req.model, prompt=prompt, max_tokens=want, temperature=req.temperature, top_p=req.top_p,
                  seed=req.seed, stop=stops, prompt_tokens=n_prompt)
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            def chunk(text, finish, first=False, usage=None):
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
                body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                if usage:
                    body["usage"] = _usage(usage)
                return body
            return stream(job, chunk, strip=True)
        r = await generate(job)
        return {"id": rid, "object": "chat.completion", "created": created, "model": req.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": r["text"].strip()},
                             "finish_reason": r["finish_reason"]}], "usage": _usage(r)}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        need_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise APIError(400, "prompt is empty", param="prompt")
        if req.stream and len(prompts) > 1:
            raise APIError(400, "stream one prompt at a time", param="prompt")
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        jobs = []
        for p in prompts:
            n_prompt, want = budget(p, req.max_tokens)
            jobs.append(Job(model=req.model, prompt=p, max_tokens=want, temperature=req.temperature, top_p=req.top_p,
                            seed=req.seed, stop=stops, prompt_tokens=n_prompt))
        rid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            def chunk(text, finish, first=False, usage=None):
                body = {"id": rid, "object": "text_completion", "created": created, "model": req.model,
                        "choices": [{"index": 0, "text": text or "", "finish_reason": finish}]}
                if usage:
                    body["usage"] = _usage(usage)
                return body
            return stream(jobs[0], chunk)
        results = await asyncio.gather(*(generate(j) for j in jobs))
        total = {"prompt_tokens": sum(r["prompt_tokens"] for r in results),
                 "completion_tokens": sum(r["completion_tokens"] for r in results)}
        return {"id": rid, "object": "text_completion", "created": created, "model": req.model,
                "choices": [{"index": i, "text": r["text"], "finish_reason": r["finish_reason"], "logprobs": None}
                            for i, r in enumerate(results)], "usage": _usage(total)}

    def need_admin(request: Request) -> None:
        if not admin_key:
            raise APIError(403, "adapter management is off; start the server with --admin-key",
                           type="permission_error", code="admin_disabled")
        got = request.headers.get("authorization", "")
        if not secrets.compare_digest(got[7:] if got.lower().startswith("bearer ") else "", admin_key):
            raise APIError(401, "adapter management needs the admin key", type="authentication_error",
                           code="invalid_admin_key")

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


def _usage(r: dict) -> dict:
    return {"prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
            "total_tokens": r["prompt_tokens"] + r["completion_tokens"]}


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
