"""Triggers and their firings, the scheduler's cursor, monitoring schedules and runs, stacks.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("pipeline_source", sa.String(1000), nullable=True),
        sa.Column("pipeline_name", sa.String(200), nullable=False),
        sa.Column("pipeline_version", sa.String(64), nullable=False),
        sa.Column("pipeline_definition", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("schedule", sa.String(200), nullable=True),
        sa.Column("event_type", sa.String(200), nullable=True),
        sa.Column("event_filter", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("cooldown_s", sa.Double, nullable=False),
        sa.Column("executor", sa.String(20), nullable=False),
        sa.Column("since_event_id", sa.BigInteger, nullable=False),
        sa.Column("last_slot", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "trigger_name", sa.String(200), sa.ForeignKey("triggers.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("fire_key", sa.String(300), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=True),
        sa.Column("slot", TS, nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(500), nullable=False),
        sa.Column("execution_id", sa.String(40), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.UniqueConstraint("trigger_name", "fire_key", name="uq_trigger_firing"),
    )
    op.create_index("ix_trigger_firings_trigger", "trigger_firings", ["trigger_name", "created_at"])
    op.create_index("ix_trigger_firings_status", "trigger_firings", ["status"])
    op.create_table(
        "trigger_cursors",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "trigger_monitor_schedules",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("baseline", sa.String(200), nullable=True),
        sa.Column("window_s", sa.Double, nullable=True),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("last_slot", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "trigger_monitor_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "schedule_name", sa.String(200),
            sa.ForeignKey("trigger_monitor_schedules.name", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("slot_key", sa.String(100), nullable=False),
        sa.Column("slot", TS, nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("until", TS, nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("result_id", sa.String(40), nullable=True),
        sa.Column("violation_count", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.UniqueConstraint("schedule_name", "slot_key", name="uq_trigger_monitor_run"),
    )
    op.create_index(
        "ix_trigger_monitor_runs_schedule", "trigger_monitor_runs", ["schedule_name", "created_at"]
    )
    op.create_table(
        "trigger_pipelines",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "trigger_stack_resources",
        sa.Column("stack", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("applied_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trigger_stack_resources")
    op.drop_table("trigger_pipelines")
    op.drop_index("ix_trigger_monitor_runs_schedule", table_name="trigger_monitor_runs")
    op.drop_table("trigger_monitor_runs")
    op.drop_table("trigger_monitor_schedules")
    op.drop_table("trigger_cursors")
    op.drop_index("ix_trigger_firings_status", table_name="trigger_firings")
    op.drop_index("ix_trigger_firings_trigger", table_name="trigger_firings")
    op.drop_table("trigger_firings")
    op.drop_table("triggers")
