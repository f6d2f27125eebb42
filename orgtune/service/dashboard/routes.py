"""The dashboard's pages: `/` (the app), `/login`, and `/static/*` (plain ES modules, CSS).

The pages hold no data: the browser keeps the API key in sessionStorage and calls the same /v1 API as any
client, so the dashboard is behind the same keys and sees one project only. Nothing is built: the files
under static/ are served as they are.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from orgtune.serve.errors import not_found

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The pages load nothing from elsewhere; a strict policy says so to the browser too.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=TYPES[".html"], headers=HEADERS)


@router.get("/")
def index() -> FileResponse:
    return _page("index.html")


@router.get("/login")
def login() -> FileResponse:
    return _page("login.html")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """One of the files directly in static/ (a name with a slash or an unknown suffix is not one)."""
    path = STATIC / name
    if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        raise not_found("dashboard file", name)
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)
