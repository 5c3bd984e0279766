"""SQLAlchemy models of experiment tracking (tables of migration 0005).

They extend the declarative base of :mod:`loopml.store.models`; the schema is
created by ``migrations/versions/0005_tracking.py``. Hot paths (metric
batches, searches) use the Core tables (``RunMetric.__table__``) directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base

#: 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY auto-increments (the rowid)
_BIGID = BigInteger().with_variant(Integer(), "sqlite")


class Experiment(Base):
    """A named group of runs (``churn``, ``fraud-xgb``, ...)."""

    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime]


class RunRow(Base):
    """One run: a training job, a tuning trial, an evaluation; with what it ran on."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_experiment_start", "experiment_id", "start_time"),
        Index("ix_runs_parent", "parent_run_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    parent_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None
    )
    #: RUNNING, FINISHED, FAILED or KILLED
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text, default=None)
    start_time: Mapped[datetime]
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    user: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    #: ``{"commit": ..., "dirty": ..., "repo": ...}`` or None outside a git repository
    code_version: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: distribution name -> version (python, loopml, numpy, ...)
    packages: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RunParam(Base):
    """A parameter of a run: stored as text, plus its number when it reads as one (for filters)."""

    __tablename__ = "run_params"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(6000))
    value_num: Mapped[float | None] = mapped_column(Double, default=None)


class RunTag(Base):
    """A tag of a run (mutable, unlike params)."""

    __tablename__ = "run_tags"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    value_num: Mapped[float | None] = mapped_column(Double, default=None)


class RunMetric(Base):
    """One point of a metric's time series; NaN is stored as NULL."""

    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Double)
    #: seconds since the epoch
    timestamp: Mapped[float] = mapped_column(Double)


class RunLatestMetric(Base):
    """The latest point (highest step, then newest) of each metric of a run: what searches compare."""

    __tablename__ = "run_latest_metrics"
    __table_args__ = (
        Index("ix_run_latest_metrics_key_value", "key", "value"),
        {"sqlite_with_rowid": False},
    )

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Double)
    timestamp: Mapped[float] = mapped_column(Double)


class RunArtifact(Base):
    """A named file of a run; the content lives in the artifact store under its sha256."""

    __tablename__ = "run_artifacts"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class RunDatasetRow(Base):
    """A dataset version a run used, and in which role (``train``, ``validation``, ...)."""

    __tablename__ = "run_datasets"
    __table_args__ = (
        Index("ix_run_datasets_version", "dataset_version_id"),
        {"sqlite_with_rowid": False},
    )

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    #: no foreign key: the run keeps naming the version even if the catalog drops it
    dataset_version_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(60), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
