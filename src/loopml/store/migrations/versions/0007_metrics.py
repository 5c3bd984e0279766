"""Metrics table (series + points) and alarms with their state history.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
#: 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY auto-increments (the rowid)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "metric_series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dim_key", sa.String(4000), nullable=False),
        sa.Column("dimensions", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("name", "dim_key", name="uq_metric_series"),
    )
    op.create_table(
        "metric_points",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "series_id", sa.Integer, sa.ForeignKey("metric_series.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("value", sa.Double, nullable=False),
    )
    # (series, time, value): range scans and statistics read only the index
    op.create_index("ix_metric_points_series_ts", "metric_points", ["series_id", "timestamp", "value"])
    op.create_table(
        "alarms",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("dimensions", sa.JSON, nullable=False),
        sa.Column("statistic", sa.String(20), nullable=False),
        sa.Column("period_s", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Double, nullable=False),
        sa.Column("comparison", sa.String(40), nullable=False),
        sa.Column("evaluation_periods", sa.Integer, nullable=False),
        sa.Column("datapoints_to_alarm", sa.Integer, nullable=False),
        sa.Column("treat_missing", sa.String(20), nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("state_updated_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "alarm_history",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "alarm_name", sa.String(200), sa.ForeignKey("alarms.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("old_state", sa.String(20), nullable=False),
        sa.Column("new_state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("datapoints", sa.JSON, nullable=False),
        sa.Column("action_results", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_alarm_history_alarm", "alarm_history", ["alarm_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_alarm_history_alarm", table_name="alarm_history")
    op.drop_table("alarm_history")
    op.drop_table("alarms")
    op.drop_index("ix_metric_points_series_ts", table_name="metric_points")
    op.drop_table("metric_points")
    op.drop_table("metric_series")
