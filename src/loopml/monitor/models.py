"""SQLAlchemy models of monitoring (tables of migration 0009).

A *baseline* is what a monitor compares live data with: for data quality the
``statistics.json`` and ``constraints.json`` of a dataset version (often a
model's training data); for model quality the metrics of an evaluation, and so
on. A *result* is one execution of a monitor (data quality, model quality,
bias, attribution) over a target (an endpoint's captured data in a time
window, or a dataset version): its status, a JSON summary, its violation count
and the artifacts it wrote (``constraint_violations.json``, the HTML report).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base


class MonitorBaseline(Base):
    """A stored baseline: its kind, name, what it was computed from, and its artifacts."""

    __tablename__ = "monitor_baselines"
    __table_args__ = (Index("ix_monitor_baselines_name", "kind", "name", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: the monitor it serves: data_quality, model_quality, bias, attribution
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    #: the dataset version it was computed from (no foreign key: the baseline outlives it)
    dataset_version_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: ``name:version`` of that dataset version, kept for display
    dataset_ref: Mapped[str | None] = mapped_column(String(250), default=None)
    model_version_id: Mapped[str | None] = mapped_column(String(40), default=None)
    model_ref: Mapped[str | None] = mapped_column(String(250), default=None)
    statistics_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    constraints_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    #: every stored file of the baseline: ``{file name: artifact sha256}``
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: kind-specific facts (item count, features, problem type, ...)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class MonitorResult(Base):
    """One monitoring execution: which monitor, on what, over which window, and what it found."""

    __tablename__ = "monitor_results"
    __table_args__ = (
        Index("ix_monitor_results_target", "target_kind", "target", "created_at"),
        Index("ix_monitor_results_kind", "kind", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: data_quality, model_quality, bias or attribution
    kind: Mapped[str] = mapped_column(String(40))
    #: endpoint or dataset
    target_kind: Mapped[str] = mapped_column(String(20))
    #: the endpoint name, or the dataset version's ``name:version``
    target: Mapped[str] = mapped_column(String(300))
    since: Mapped[datetime | None] = mapped_column(default=None)
    until: Mapped[datetime | None] = mapped_column(default=None)
    #: Completed, CompletedWithViolations, Failed or NoData
    status: Mapped[str] = mapped_column(String(40))
    baseline_id: Mapped[str | None] = mapped_column(String(40), default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    violation_count: Mapped[int] = mapped_column(Integer, default=0)
    #: ``{file name: artifact sha256}`` of what the run wrote
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


__all__ = ["MonitorBaseline", "MonitorResult"]
