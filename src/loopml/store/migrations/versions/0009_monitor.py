"""Monitoring: baselines and results (executions) of the data-quality, model-quality, bias and
attribution monitors.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_baselines",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dataset_version_id", sa.String(40), nullable=True),
        sa.Column("dataset_ref", sa.String(250), nullable=True),
        sa.Column("model_version_id", sa.String(40), nullable=True),
        sa.Column("model_ref", sa.String(250), nullable=True),
        sa.Column("statistics_sha256", sa.String(64), nullable=True),
        sa.Column("constraints_sha256", sa.String(64), nullable=True),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_monitor_baselines_name", "monitor_baselines", ["kind", "name", "created_at"])
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("target_kind", sa.String(20), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("since", TS, nullable=True),
        sa.Column("until", TS, nullable=True),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("baseline_id", sa.String(40), nullable=True),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("violation_count", sa.Integer, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_monitor_results_target", "monitor_results", ["target_kind", "target", "created_at"])
    op.create_index("ix_monitor_results_kind", "monitor_results", ["kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_results_kind", table_name="monitor_results")
    op.drop_index("ix_monitor_results_target", table_name="monitor_results")
    op.drop_table("monitor_results")
    op.drop_index("ix_monitor_baselines_name", table_name="monitor_baselines")
    op.drop_table("monitor_baselines")
