"""The job store's tables (SQLAlchemy 2): projects, API keys, files, fine-tuning jobs, their events and
checkpoints, and each project's nightly schedule. The schema itself is created by the migrations in `migrations/versions/`, never by
`create_all`; a test checks that the two agree.

Public ids look like OpenAI's (`file-…`, `ftjob-…`, `ftckpt-…`); each table that is listed newest
first also has an integer `seq`, the order pagination (`after=`) and event replay (`Last-Event-ID`)
follow. Times are Unix seconds (floats where a lease compares them).
"""

from __future__ import annotations

import secrets
import string
import time

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(n))


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "ot_projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(Integer, default=now)


class ApiKey(Base):
    """A key is shown once; only its sha256 is stored. An admin key has no project and manages keys."""

    __tablename__ = "ot_api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("ot_projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    revoked_at: Mapped[int | None] = mapped_column(Integer)


class File(Base):
    __tablename__ = "ot_files"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("ot_projects.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # jsonl | document | archive | result
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="processed")
    status_details: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(40))  # result files: the job that wrote them
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    __tablename__ = "ot_jobs"
    __table_args__ = (Index("ix_ot_jobs_status_seq", "status", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("ot_projects.id"), index=True)
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    model: Mapped[str] = mapped_column(Text)  # as requested: a preset, a local folder, or ft:… of a parent job
    base_model: Mapped[str] = mapped_column(Text)  # what the weights are
    parent_job_id: Mapped[str | None] = mapped_column(String(40))
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40))
    documents: Mapped[list] = mapped_column(JSON, default=list)  # further document file ids
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    method: Mapped[dict] = mapped_column(JSON)  # {"type": ..., "<type>": {"hyperparameters": {...}}}, resolved
    options: Mapped[dict] = mapped_column(JSON, default=dict)  # orgtune's extras, resolved
    metadata_: Mapped[dict | None] = mapped_column("metadata", JSON(none_as_null=True))
    status: Mapped[str] = mapped_column(String(20), default="validating_files")
    stage: Mapped[str | None] = mapped_column(String(20))  # data | train | eval | export
    error: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    fine_tuned_model: Mapped[str | None] = mapped_column(Text, index=True)
    trained_tokens: Mapped[int | None] = mapped_column(Integer)
    result_files: Mapped[list] = mapped_column(JSON, default=list)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[int | None] = mapped_column(Integer)
    finished_at: Mapped[int | None] = mapped_column(Integer)
    estimated_finish: Mapped[int | None] = mapped_column(Integer)
    # Execution: at most one runner holds the lease; it renews heartbeat_at, others wait for it to go stale.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    runner: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    __tablename__ = "ot_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("ot_jobs.id"), index=True)
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    level: Mapped[str] = mapped_column(String(8), default="info")
    type: Mapped[str] = mapped_column(String(8), default="message")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))


class Checkpoint(Base):
    __tablename__ = "ot_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("ot_jobs.id"), index=True)
    step_number: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(Integer, default=now)


class NightlySchedule(Base):
    """A project's nightly training: when (a cron expression, UTC), with which settings, on the project's
    uploaded documents. While a night runs, `runner` holds it and renews `heartbeat_at` (a lease, as for jobs)."""

    __tablename__ = "ot_nightly"

    project_id: Mapped[str] = mapped_column(ForeignKey("ot_projects.id"), primary_key=True)
    cron: Mapped[str] = mapped_column(String(120))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[float] = mapped_column(Float)
    runner: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    last_started_at: Mapped[int | None] = mapped_column(Integer)
    last_finished_at: Mapped[int | None] = mapped_column(Integer)
    last_result: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[int] = mapped_column(Integer, default=now)
