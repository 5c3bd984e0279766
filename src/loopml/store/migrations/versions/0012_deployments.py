"""Endpoint deployments: blue/green updates with traffic shifting, guardrail alarms and rollback.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "endpoint_deployments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("endpoint_name", sa.String(200), nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("strategy", sa.String(100), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("from_version", sa.Integer, nullable=False),
        sa.Column("from_config", sa.JSON, nullable=False),
        sa.Column("target", sa.JSON, nullable=False),
        sa.Column("alarms", sa.JSON, nullable=False),
        sa.Column("guardrail_alarms", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("step_started_at", TS, nullable=True),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("alarm", sa.String(200), nullable=True),
        sa.Column("log", sa.JSON, nullable=False),
        sa.Column("owner", sa.String(300), nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_endpoint_deployments_endpoint", "endpoint_deployments", ["endpoint_name", "created_at"])
    op.create_index("ix_endpoint_deployments_status", "endpoint_deployments", ["status"])


def downgrade() -> None:
    op.drop_index("ix_endpoint_deployments_status", table_name="endpoint_deployments")
    op.drop_index("ix_endpoint_deployments_endpoint", table_name="endpoint_deployments")
    op.drop_table("endpoint_deployments")
