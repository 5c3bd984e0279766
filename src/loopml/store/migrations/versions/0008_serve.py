"""Serving control plane: endpoints (versioned config), their API keys, and the change history.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "endpoint_api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "endpoint_id", sa.String(40), sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_endpoint_api_keys_endpoint", "endpoint_api_keys", ["endpoint_id"])
    op.create_table(
        "endpoint_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("endpoint_name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("old_config", sa.JSON, nullable=True),
        sa.Column("new_config", sa.JSON, nullable=True),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_endpoint_changes_name", "endpoint_changes", ["endpoint_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_endpoint_changes_name", table_name="endpoint_changes")
    op.drop_table("endpoint_changes")
    op.drop_index("ix_endpoint_api_keys_endpoint", table_name="endpoint_api_keys")
    op.drop_table("endpoint_api_keys")
    op.drop_table("endpoints")
