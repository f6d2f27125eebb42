"""OpenAI's error shape for every HTTP API orgtune serves: {"error": {"message", "type", "param", "code"}}.

raise APIError(404, "model 'x' does not exist", param="model", code="model_not_found")
install_error_handlers(app)   # also maps FastAPI's validation errors and 404s onto that shape
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def not_found(what: str, ident: str, *, param: str | None = None) -> APIError:
    return APIError(404, f"No {what} found with id {ident!r}.", param=param, code="not_found")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        errs = e.errors()
        if any(x.get("type") == "json_invalid" for x in errs):
            return APIError(400, "request body is not valid JSON", code="invalid_json").response()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path", "form"))
        return APIError(
            422, f"{where or 'body'}: {first.get('msg', 'invalid')}", param=where or None, code="invalid_value"
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, e):
        return APIError(e.status_code, str(e.detail), code="not_found" if e.status_code == 404 else None).response()
