"""Feature store: feature groups and the Parquet parts of their offline store.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feature_groups",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("id_type", sa.String(20), nullable=False),
        sa.Column("event_time", sa.String(128), nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("ttl_seconds", sa.BigInteger, nullable=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "feature_group_parts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "group_id", sa.String(40), sa.ForeignKey("feature_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("num_bytes", sa.BigInteger, nullable=False),
        sa.Column("min_event_time", TS, nullable=True),
        sa.Column("max_event_time", TS, nullable=True),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("group_id", "seq", name="uq_feature_group_part"),
    )


def downgrade() -> None:
    op.drop_table("feature_group_parts")
    op.drop_table("feature_groups")
