"""The job store: migrations build exactly the tables the models describe (SQLite and PostgreSQL),
are idempotent and safe to run from several processes at once; API keys are stored hashed."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from orgtune.errors import OrgtuneError
from orgtune.service.db import VERSION_TABLE, Database
from orgtune.service.keys import authenticate, create_key, revoke_key
from orgtune.service.models import ApiKey, Base


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = request.getfixturevalue("postgres").create_database(f"store_{tmp_path.name[-20:].lower()}")
    d = Database(url)
    yield d
    d.dispose()


def test_migrations_match_the_models_and_run_concurrently(db):
    errors = []

    def migrate():
        try:
            Database(db.url).migrate()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.migrate() == db.revision() == "0002"
    with db.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []
    assert {"ot_jobs", "ot_events", "ot_files", "ot_api_keys", "ot_projects", "ot_checkpoints", "ot_nightly"} <= set(
        inspect(db.engine).get_table_names()
    )


def test_keys_are_hashed_at_rest_and_revocable(db):
    db.migrate()
    row, key = create_key(db, project="alpha", name="ci")
    with db.reading() as s:
        stored = s.scalar(select(ApiKey).where(ApiKey.id == row.id))
    assert key not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
    p = authenticate(db, key)
    assert (p.project_name, p.admin) == ("alpha", False)
    assert authenticate(db, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    revoke_key(db, row.id)
    assert authenticate(db, key) is None
    with pytest.raises(OrgtuneError, match="--project NAME or --admin"):
        create_key(db, project=None)
    with pytest.raises(OrgtuneError, match="not usable"):
        create_key(db, project="../etc")


def test_an_unsupported_database_url_is_refused_with_the_fix():
    with pytest.raises(OrgtuneError, match="ORGTUNE_DATABASE_URL"):
        Database("mysql://u@h/db")
