"""Model registry: models (package groups), versions, approval history, aliases and their history.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_groups",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "group_id", sa.String(40), sa.ForeignKey("model_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=True),
        sa.Column("flavor", sa.String(100), nullable=False),
        sa.Column("problem_type", sa.String(40), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("approval_status", sa.String(30), nullable=False),
        sa.Column("approval_by", sa.String(200), nullable=True),
        sa.Column("approval_at", TS, nullable=True),
        sa.Column("approval_reason", sa.Text, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("hyperparameters", sa.JSON, nullable=False),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("recipe", sa.JSON, nullable=True),
        sa.Column("datasets", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("registered_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("group_id", "version", name="uq_model_version"),
    )
    op.create_index("ix_model_versions_package", "model_versions", ["package_sha256"])
    op.create_index("ix_model_versions_run", "model_versions", ["run_id"])
    op.create_table(
        "model_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "version_id", sa.String(40), sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("previous_status", sa.String(30), nullable=True),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_model_approvals_version", "model_approvals", ["version_id", "id"])
    op.create_table(
        "model_aliases",
        sa.Column(
            "group_id", sa.String(40), sa.ForeignKey("model_groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("alias", sa.String(40), primary_key=True),
        sa.Column(
            "version_id", sa.String(40), sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "model_alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "group_id", sa.String(40), sa.ForeignKey("model_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("alias", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_model_alias_history_group", "model_alias_history", ["group_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_model_alias_history_group", table_name="model_alias_history")
    op.drop_table("model_alias_history")
    op.drop_table("model_aliases")
    op.drop_index("ix_model_approvals_version", table_name="model_approvals")
    op.drop_table("model_approvals")
    op.drop_index("ix_model_versions_run", table_name="model_versions")
    op.drop_index("ix_model_versions_package", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("model_groups")
