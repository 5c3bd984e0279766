"""SQLAlchemy models of metrics and alarms (tables of migration 0007).

A *series* is one metric name with one set of dimensions (``ModelLatency``
for ``{"endpoint": "churn", "variant": "v1"}``); its canonical dimension key
(``endpoint=churn,variant=v1``) is unique with the name. Points refer to their
series by id, so a point row is three numbers: the series, the time (seconds
since the epoch, UTC) and the value. The index on ``(series_id, timestamp,
value)`` answers range queries and statistics without reading the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base

#: 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY auto-increments (the rowid)
_BIGID = BigInteger().with_variant(Integer(), "sqlite")


class MetricSeries(Base):
    """One time series: a metric name plus one set of dimensions."""

    __tablename__ = "metric_series"
    __table_args__ = (UniqueConstraint("name", "dim_key", name="uq_metric_series"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    #: canonical form of ``dimensions``: sorted ``k=v`` pairs joined by ``,`` (``\\``-escaped)
    dim_key: Mapped[str] = mapped_column(String(4000))
    dimensions: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class MetricPointRow(Base):
    """One data point of a series."""

    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_series_ts", "series_id", "timestamp", "value"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("metric_series.id", ondelete="CASCADE"))
    #: seconds since the epoch (UTC)
    timestamp: Mapped[float] = mapped_column(Double)
    value: Mapped[float] = mapped_column(Double)


class AlarmRow(Base):
    """A metric alarm: what it watches, how it decides, its current state."""

    __tablename__ = "alarms"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    metric: Mapped[str] = mapped_column(String(200))
    dimensions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    statistic: Mapped[str] = mapped_column(String(20))
    period_s: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Double)
    comparison: Mapped[str] = mapped_column(String(40))
    evaluation_periods: Mapped[int] = mapped_column(Integer)
    datapoints_to_alarm: Mapped[int] = mapped_column(Integer)
    treat_missing: Mapped[str] = mapped_column(String(20))
    actions: Mapped[list[Any]] = mapped_column(default=list)
    #: OK, ALARM or INSUFFICIENT_DATA
    state: Mapped[str] = mapped_column(String(20))
    state_reason: Mapped[str] = mapped_column(Text, default="")
    state_updated_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlarmHistoryRow(Base):
    """One state change of an alarm, with the datapoints that decided it and the action results."""

    __tablename__ = "alarm_history"
    __table_args__ = (Index("ix_alarm_history_alarm", "alarm_name", "id"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    alarm_name: Mapped[str] = mapped_column(ForeignKey("alarms.name", ondelete="CASCADE"))
    old_state: Mapped[str] = mapped_column(String(20))
    new_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    #: ``[[bucket start as epoch seconds, value], ...]`` of the evaluated window
    datapoints: Mapped[list[Any]] = mapped_column(default=list)
    #: ``[{"action", "ok", "status", "error"}, ...]``, filled in after the actions ran
    action_results: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
