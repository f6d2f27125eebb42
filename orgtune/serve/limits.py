"""Request limits shared by `orgtune serve` and `orgtune service`: a cap on the request body, before any
route parses it, and API keys compared safely whatever their characters.

    app.add_middleware(BodyLimit, max_bytes=4 * 2**20, exempt=("/v1/files",))
    same_key(bearer(request), api_key)
"""

from __future__ import annotations

import secrets

from orgtune.serve.errors import APIError


def same_key(token: str, key: str) -> bool:
    """Constant-time comparison of a bearer token with a key. Headers arrive as latin-1 text, so the token's
    latin-1 bytes are what the client sent; `compare_digest` on str refuses anything beyond ASCII."""
    return secrets.compare_digest(token.encode("latin-1", errors="replace"), key.encode("utf-8"))


class BodyLimit:
    """Pure ASGI middleware: a request body over `max_bytes` gets 413 in OpenAI's error shape, by its
    Content-Length or by counting the bytes as they stream in, and never reaches a route. Paths under
    `exempt` (uploads with their own cap) pass through untouched."""

    def __init__(self, app, *, max_bytes: int, exempt: tuple[str, ...] = ()):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or any(path == e or path.startswith(e + "/") for e in self.exempt):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        chunks, total = [], 0
        while True:  # read the body here, counting (a chunked body has no Content-Length)
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return await self._too_large(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as the route expects

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        mib = self.max_bytes / 2**20
        err = APIError(
            413, f"the request body is larger than this server's limit of {mib:g} MiB", code="request_too_large"
        )
        await err.response()(scope, receive, send)
