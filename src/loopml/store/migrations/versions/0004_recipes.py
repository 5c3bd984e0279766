"""Recipes: fitted versions of named preprocessing recipes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recipes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger, nullable=False),
        sa.Column(
            "dataset_version_id",
            sa.String(40),
            sa.ForeignKey("dataset_versions.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("input_columns", sa.JSON, nullable=False),
        sa.Column("output_columns", sa.JSON, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_recipe_version"),
    )
    op.create_index("ix_recipes_dataset_version", "recipes", ["dataset_version_id"])


def downgrade() -> None:
    op.drop_index("ix_recipes_dataset_version", table_name="recipes")
    op.drop_table("recipes")
