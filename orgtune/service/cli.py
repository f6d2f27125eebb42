"""`orgtune service` and `orgtune worker`: start the service, manage API keys, consume the queue.

orgtune service keys create --project research       # prints a project key, once
orgtune service                                      # http://127.0.0.1:8000, SQLite, local executor
ORGTUNE_DATABASE_URL=postgresql://… ORGTUNE_EXECUTOR=procrastinate orgtune service --host 0.0.0.0
ORGTUNE_DATABASE_URL=postgresql://… orgtune worker --slots 1
"""

from __future__ import annotations

from orgtune.service.db import Database
from orgtune.service.settings import ServiceSettings


def settings_with(**overrides) -> ServiceSettings:
    """Settings from the environment, with the flags that were given on top."""
    return ServiceSettings(**{k: v for k, v in overrides.items() if v is not None})


def run_service(settings: ServiceSettings, *, host: str, port: int, log=print) -> None:
    import uvicorn

    from orgtune.service.app import create_service_app
    from orgtune.service.keys import list_keys

    db = Database(settings.db_url())
    db.migrate()
    if not list_keys(db):
        log("no API keys yet: create one with `orgtune service keys create --project NAME`")
    app = create_service_app(settings, db=db, log=log)
    log(f"orgtune service on http://{host}:{port}/v1 ({db.engine.dialect.name}, {settings.executor} executor)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
