"""Experiment tracking: experiments, runs, params, metrics, tags, artifacts, datasets.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
#: 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY auto-increments (the rowid)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Tables keyed by (run_id, key) are clustered on that key in SQLite (WITHOUT ROWID): loading a
# run's params, metrics and tags reads neighbouring rows instead of an index then the table.


def _run_fk() -> sa.Column[str]:
    return sa.Column(
        "run_id", sa.String(40), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "experiment_id", sa.String(40), sa.ForeignKey("experiments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "parent_run_id", sa.String(40), sa.ForeignKey("runs.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("code_version", sa.JSON, nullable=True),
        sa.Column("packages", sa.JSON, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_runs_experiment_start", "runs", ["experiment_id", "start_time"])
    op.create_index("ix_runs_parent", "runs", ["parent_run_id"])
    op.create_table(
        "run_params",
        _run_fk(),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.String(6000), nullable=False),
        sa.Column("value_num", sa.Double, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_tags",
        _run_fk(),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("value_num", sa.Double, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_metrics",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.String(40), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("timestamp", sa.Double, nullable=False),
    )
    op.create_index("ix_run_metrics_run_key_step", "run_metrics", ["run_id", "key", "step"])
    op.create_table(
        "run_latest_metrics",
        _run_fk(),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("timestamp", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_latest_metrics_key_value", "run_latest_metrics", ["key", "value"])
    op.create_table(
        "run_artifacts",
        _run_fk(),
        sa.Column("name", sa.String(1000), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_datasets",
        _run_fk(),
        sa.Column("dataset_version_id", sa.String(40), primary_key=True),
        sa.Column("role", sa.String(60), primary_key=True),
        sa.Column("dataset_name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_datasets_version", "run_datasets", ["dataset_version_id"])


def downgrade() -> None:
    op.drop_index("ix_run_datasets_version", table_name="run_datasets")
    op.drop_table("run_datasets")
    op.drop_table("run_artifacts")
    op.drop_index("ix_run_latest_metrics_key_value", table_name="run_latest_metrics")
    op.drop_table("run_latest_metrics")
    op.drop_index("ix_run_metrics_run_key_step", table_name="run_metrics")
    op.drop_table("run_metrics")
    op.drop_table("run_tags")
    op.drop_table("run_params")
    op.drop_index("ix_runs_parent", table_name="runs")
    op.drop_index("ix_runs_experiment_start", table_name="runs")
    op.drop_table("runs")
    op.drop_table("experiments")
