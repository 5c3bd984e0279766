"""Tuning studies as Optuna journals: one ordered log of study operations per tuning job.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tune_journal",
        sa.Column("partition", sa.String(200), primary_key=True),  # the tuning job's id
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),  # 0, 1, 2, ... per job
        sa.Column("log", sa.Text, nullable=False),  # one Optuna journal entry, JSON
    )


def downgrade() -> None:
    op.drop_table("tune_journal")
