"""The job store's first schema: projects, API keys, files, jobs, events, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id(name: str = "id") -> sa.Column:
    return sa.Column(name, sa.String(40), nullable=False)


def _created() -> sa.Column:
    return sa.Column("created_at", sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ot_projects", _id(), sa.Column("name", sa.String(64), nullable=False), _created(),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("name"))
    op.create_table(
        "ot_api_keys", _id(),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("ot_projects.id"), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        _created(),
        sa.Column("revoked_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("key_hash"))
    op.create_index("ix_ot_api_keys_project_id", "ot_api_keys", ["project_id"])
    op.create_table(
        "ot_files",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False), _id(),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("ot_projects.id"), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_details", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(40), nullable=True),
        _created(),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("seq"), sa.UniqueConstraint("id"))
    op.create_index("ix_ot_files_project_id", "ot_files", ["project_id"])
    op.create_table(
        "ot_jobs",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False), _id(),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("ot_projects.id"), nullable=False),
        _created(),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("parent_job_id", sa.String(40), nullable=True),
        sa.Column("training_file", sa.String(40), nullable=False),
        sa.Column("validation_file", sa.String(40), nullable=True),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("method", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(20), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("fine_tuned_model", sa.Text(), nullable=True),
        sa.Column("trained_tokens", sa.Integer(), nullable=True),
        sa.Column("result_files", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.Integer(), nullable=True),
        sa.Column("finished_at", sa.Integer(), nullable=True),
        sa.Column("estimated_finish", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("runner", sa.String(120), nullable=True),
        sa.Column("heartbeat_at", sa.Float(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq"), sa.UniqueConstraint("id"))
    op.create_index("ix_ot_jobs_fine_tuned_model", "ot_jobs", ["fine_tuned_model"])
    op.create_index("ix_ot_jobs_project_id", "ot_jobs", ["project_id"])
    op.create_index("ix_ot_jobs_status_seq", "ot_jobs", ["status", "seq"])
    op.create_table(
        "ot_checkpoints",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False), _id(),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("ot_jobs.id"), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("seq"), sa.UniqueConstraint("id"))
    op.create_index("ix_ot_checkpoints_job_id", "ot_checkpoints", ["job_id"])
    op.create_table(
        "ot_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("ot_jobs.id"), nullable=False),
        _created(),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("seq"))
    op.create_index("ix_ot_events_job_id", "ot_events", ["job_id"])


def downgrade() -> None:
    for table in ("ot_events", "ot_checkpoints", "ot_jobs", "ot_files", "ot_api_keys", "ot_projects"):
        op.drop_table(table)
