"""Each project's nightly schedule (cron, settings, the lease of a running night).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ot_nightly",
        sa.Column("project_id", sa.String(40), sa.ForeignKey("ot_projects.id"), nullable=False),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.Float(), nullable=False),
        sa.Column("runner", sa.String(120), nullable=True),
        sa.Column("heartbeat_at", sa.Float(), nullable=True),
        sa.Column("last_started_at", sa.Integer(), nullable=True),
        sa.Column("last_finished_at", sa.Integer(), nullable=True),
        sa.Column("last_result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id"))


def downgrade() -> None:
    op.drop_table("ot_nightly")
