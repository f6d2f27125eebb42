"""The inference routes, shared by `orgtune serve` and `orgtune service`:

    GET  /v1/models             every model the caller may use
    POST /v1/chat/completions   chat, `stream: true` as server-sent events
    POST /v1/completions        raw text completion

Which models exist, and which engine answers for one, is the app's *catalog* (a dependency): one
engine and its adapters for `orgtune serve`, a project's base models and fine-tuned jobs for the
service. Model resolution and tokenization run in the thread pool; generation on the engine's worker
thread; the event loop only waits.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orgtune.errors import OrgtuneError
from orgtune.serve.engine import Job
from orgtune.serve.errors import APIError


class Catalog(Protocol):
    def models(self) -> list[dict]:
        """OpenAI model objects the caller may use."""

    def resolve(self, name: str) -> tuple[Any, str]:
        """(engine, the engine's name for it) or APIError 404. May load a model: called in the thread pool."""


MAX_STOPS, MAX_STOP_CHARS = 4, 256  # OpenAI's limit on stop strings; a long one would slow every token's scan
MAX_PROMPTS = 64  # prompts in one /v1/completions request


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
    seed: int | None = Field(None, ge=0, lt=2**63)  # what torch.manual_seed takes

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, v):
        stops = [v] if isinstance(v, str) else v or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop strings, not {len(stops)}")
        if any(len(x) > MAX_STOP_CHARS for x in stops):
            raise ValueError(f"a stop string may have at most {MAX_STOP_CHARS} characters")
        return v

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)

    @field_validator("prompt")
    @classmethod
    def _few_prompts(cls, v):
        if isinstance(v, list) and len(v) > MAX_PROMPTS:
            raise ValueError(f"at most {MAX_PROMPTS} prompts in one request, not {len(v)}")
        return v


def _text_of(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for p in content:
        if p.get("type") != "text":
            raise APIError(
                400,
                f"content part of type {p.get('type')!r} is not supported (text only)",
                param="messages",
                code="unsupported_content",
            )
        parts.append(str(p.get("text", "")))
    return "".join(parts)


def _budget(engine, prompt: str, asked: int | None, limits: dict) -> tuple[int, int]:
    n_prompt = engine.count(prompt)
    if asked is not None and asked > limits["max_tokens_limit"]:
        raise APIError(
            400,
            f"max_tokens {asked} is over this server's limit of {limits['max_tokens_limit']}",
            param="max_tokens",
            code="max_tokens_too_large",
        )
    room = engine.context - n_prompt
    want = asked if asked is not None else min(limits["default_max_tokens"], limits["max_tokens_limit"], max(room, 0))
    if n_prompt + want > engine.context or room <= 0:
        raise APIError(
            400,
            f"this model's context window is {engine.context} tokens; the prompt has {n_prompt} "
            f"and max_tokens asks for {want} more",
            param="messages",
            code="context_length_exceeded",
        )
    return n_prompt, want


def _chat_job(engine, name: str, req: ChatRequest, limits: dict) -> Job:
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": _text_of(m.content)} for m in req.messages
    ]
    try:
        prompt = engine.render_chat(messages)
    except Exception as e:  # noqa: BLE001 - templates raise on role orders they do not support
        raise APIError(400, f"the chat template rejects these messages: {e}", param="messages") from None
    n_prompt, want = _budget(engine, prompt, req.max_completion_tokens or req.max_tokens, limits)
    return Job(
        model=name,
        prompt=prompt,
        max_tokens=want,
        temperature=req.temperature,
        top_p=req.top_p,
        seed=req.seed,
        stop=req.stops(),
        prompt_tokens=n_prompt,
    )


def _completion_jobs(engine, name: str, req: CompletionRequest, limits: dict) -> list[Job]:
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if not prompts:
        raise APIError(400, "prompt is empty", param="prompt")
    if req.stream and len(prompts) > 1:
        raise APIError(400, "stream one prompt at a time", param="prompt")
    jobs = []
    for p in prompts:
        n_prompt, want = _budget(engine, p, req.max_tokens, limits)
        jobs.append(
            Job(
                model=name,
                prompt=p,
                max_tokens=want,
                temperature=req.temperature,
                top_p=req.top_p,
                seed=req.seed,
                stop=req.stops(),
                prompt_tokens=n_prompt,
            )
        )
    return jobs


async def _generate(engine, job: Job) -> dict:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def done(r):
        loop.call_soon_threadsafe(
            lambda: fut.done() or (fut.set_exception(r) if isinstance(r, BaseException) else fut.set_result(r))
        )

    job.done = done
    engine.submit(job)
    try:
        return await fut
    except OrgtuneError as e:
        raise APIError(400, str(e), code="generation_failed") from None
    except Exception as e:  # noqa: BLE001
        raise APIError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error") from None


def _stream(engine, job: Job, chunk: Callable, *, strip: bool = False) -> StreamingResponse:
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
                    held = value[len(body) :]
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

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def inference_router(catalog: Callable[..., Catalog]) -> APIRouter:
    """The routes above, answering from the catalog that the `catalog` dependency returns per request."""
    router = APIRouter()
    dep = Depends(catalog)  # a default, not an Annotated alias: this module's annotations are strings

    @router.get("/v1/models")
    def models(cat: Catalog = dep):
        return {"object": "list", "data": cat.models()}

    @router.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request, cat: Catalog = dep):
        engine, name = await run_in_threadpool(cat.resolve, req.model)
        job = await run_in_threadpool(_chat_job, engine, name, req, request.app.state.limits)
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:

            def chunk(text, finish, first=False, usage=None):
                delta: dict[str, Any] = (
                    {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
                )
                body = {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": req.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                if usage:
                    body["usage"] = _usage(usage)
                return body

            return _stream(engine, job, chunk, strip=True)
        r = await _generate(engine, job)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": r["text"].strip()},
                    "finish_reason": r["finish_reason"],
                }
            ],
            "usage": _usage(r),
        }

    @router.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request, cat: Catalog = dep):
        engine, name = await run_in_threadpool(cat.resolve, req.model)
        jobs = await run_in_threadpool(_completion_jobs, engine, name, req, request.app.state.limits)
        rid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:

            def chunk(text, finish, first=False, usage=None):
                body = {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": req.model,
                    "choices": [{"index": 0, "text": text or "", "finish_reason": finish}],
                }
                if usage:
                    body["usage"] = _usage(usage)
                return body

            return _stream(engine, jobs[0], chunk)
        results = await asyncio.gather(*(_generate(engine, j) for j in jobs))
        total = {
            "prompt_tokens": sum(r["prompt_tokens"] for r in results),
            "completion_tokens": sum(r["completion_tokens"] for r in results),
        }
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "choices": [
                {"index": i, "text": r["text"], "finish_reason": r["finish_reason"], "logprobs": None}
                for i, r in enumerate(results)
            ],
            "usage": _usage(total),
        }

    return router


def set_limits(app, *, max_tokens_limit: int = 2048, default_max_tokens: int = 512) -> None:
    app.state.limits = {"max_tokens_limit": max_tokens_limit, "default_max_tokens": default_max_tokens}


def _usage(r: dict) -> dict:
    return {
        "prompt_tokens": r["prompt_tokens"],
        "completion_tokens": r["completion_tokens"],
        "total_tokens": r["prompt_tokens"] + r["completion_tokens"],
    }


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
