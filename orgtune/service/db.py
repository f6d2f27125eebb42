"""The job store's connection: SQLite under ORGTUNE_HOME by default, PostgreSQL when
ORGTUNE_DATABASE_URL says so (`postgresql://user@host/db`; psycopg 3 is the driver).

    db = Database.from_env()
    db.migrate()                      # Alembic, to the newest revision (safe to call from every process)
    with db.reading() as s: ...       # a read-only session
    with db.writing() as s: ...       # a write transaction, committed on exit

SQLite is opened in WAL mode with a busy timeout, and write transactions begin IMMEDIATE, so that
several processes (the API, the supervisor, each job's runner) can share one file without a read
that turns into a write failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from orgtune.errors import OrgtuneError

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "ot_alembic_version"


def database_url(url: str) -> str:
    """Check a store URL and name psycopg 3 as PostgreSQL's driver."""
    if url.startswith(("postgres://", "postgresql://")):  # the usual spelling; psycopg 3 is what we ship
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise OrgtuneError(
            f"database URL {url.split('://')[0]}://… is not supported",
            fix="use sqlite:///PATH or postgresql://USER@HOST/DB (ORGTUNE_DATABASE_URL)",
        )
    return url


def psycopg_conninfo(url: str) -> str:
    """A libpq connection string for the same PostgreSQL database (what Procrastinate's connector takes)."""
    u = make_url(url)
    if not u.drivername.startswith("postgresql"):
        raise OrgtuneError(
            "the queue engine (Procrastinate) needs PostgreSQL",
            fix="set ORGTUNE_DATABASE_URL=postgresql://USER@HOST/DB, or use the embedded executor",
        )
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str):
        self.url = database_url(url)
        self.is_sqlite = self.url.startswith("sqlite:")
        if self.is_sqlite:
            self.engine = self._sqlite_engine(begin="BEGIN")
            self.write_engine = self._sqlite_engine(begin="BEGIN IMMEDIATE")
        else:
            self.engine = self.write_engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    @classmethod
    def from_env(cls) -> Database:
        """ORGTUNE_DATABASE_URL, or SQLite in the service folder (see ServiceSettings)."""
        from orgtune.service.settings import ServiceSettings

        return cls(ServiceSettings().db_url())

    def _sqlite_engine(self, *, begin: str) -> Engine:
        eng = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            _wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(eng, "begin")
        def _begin(conn):
            conn.exec_driver_sql(begin)

        return eng

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as s:
            yield s

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        with self._write() as s, s.begin():
            yield s

    def migrate(self) -> str:
        """Upgrade the schema to the newest migration; returns the revision. Concurrent callers on
        PostgreSQL wait on an advisory lock, so that one migrates and the others find it done."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.write_engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(7301001)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            return self.revision(conn)

    def revision(self, conn=None) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


def _wal(cur) -> None:
    """Switch a SQLite file to WAL once (the mode persists in the file). The switch needs the file to
    itself and SQLite may refuse it at once, without waiting, while another connection writes (two
    services migrating a new store at once): retried for a minute."""
    import sqlite3

    deadline = time.monotonic() + 60
    while cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
