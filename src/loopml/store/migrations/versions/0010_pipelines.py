"""Pipelines: definitions (versioned by content), executions and step executions.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_pipeline_version"),
    )
    op.create_table(
        "pipeline_executions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "pipeline_id", sa.String(40), sa.ForeignKey("pipelines.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("pipeline_name", sa.String(200), nullable=False),
        sa.Column("pipeline_version", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("executor", sa.String(20), nullable=False),
        sa.Column("idempotency_key", sa.String(500), nullable=True, unique=True),
        sa.Column("resumed_from", sa.String(40), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("coordinator", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=True),
    )
    op.create_index("ix_pipeline_executions_name", "pipeline_executions", ["pipeline_name", "created_at"])
    op.create_table(
        "pipeline_step_executions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "execution_id", sa.String(40),
            sa.ForeignKey("pipeline_executions.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("start_time", TS, nullable=True),
        sa.Column("end_time", TS, nullable=True),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("logs_sha256", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("cached_from", sa.String(40), nullable=True),
        sa.Column("history", sa.JSON, nullable=False),
        sa.UniqueConstraint("execution_id", "name", name="uq_pipeline_step_execution"),
    )
    op.create_index("ix_pipeline_step_cache", "pipeline_step_executions", ["cache_key", "status"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_step_cache", table_name="pipeline_step_executions")
    op.drop_table("pipeline_step_executions")
    op.drop_index("ix_pipeline_executions_name", table_name="pipeline_executions")
    op.drop_table("pipeline_executions")
    op.drop_table("pipelines")
