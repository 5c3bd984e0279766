"""Initial schema: datasets, versions, parts, lineage, events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "dataset_id", sa.String(40), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("num_bytes", sa.BigInteger, nullable=False),
        sa.Column("schema", sa.JSON, nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("validation", sa.JSON, nullable=False),
        sa.Column("quarantine_count", sa.BigInteger, nullable=False),
        sa.Column("quarantine_hash", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_version"),
    )
    op.create_index("ix_dataset_versions_hash", "dataset_versions", ["dataset_id", "content_hash"])
    op.create_table(
        "dataset_parts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "version_id",
            sa.String(40),
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("num_bytes", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.JSON, nullable=False),
        sa.UniqueConstraint("version_id", "seq", name="uq_dataset_part"),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("src_kind", sa.String(40), nullable=False),
        sa.Column("src_id", sa.String(1000), nullable=False),
        sa.Column("relation", sa.String(60), nullable=False),
        sa.Column("dst_kind", sa.String(40), nullable=False),
        sa.Column("dst_id", sa.String(1000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("src_kind", "src_id", "relation", "dst_kind", "dst_id", name="uq_edge"),
    )
    op.create_index("ix_lineage_src", "lineage_edges", ["src_kind", "src_id"])
    op.create_index("ix_lineage_dst", "lineage_edges", ["dst_kind", "dst_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("entity_kind", sa.String(40), nullable=False),
        sa.Column("entity_id", sa.String(1000), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_events_type", "events", ["type", "id"])


def downgrade() -> None:
    for table in ("events", "lineage_edges", "dataset_parts", "dataset_versions", "datasets"):
        op.drop_table(table)
