"""SQLAlchemy models of triggers, the scheduler and stacks (tables of migration 0011).

A *trigger* is a rule (a schedule, or an event type with a payload filter)
plus a pipeline and parameter templates. Each time it fires it leaves one
*firing* row, unique per ``(trigger, fire key)``: the key is the event id, the
schedule slot or a manual key, so two schedulers racing on one event insert
one row and start one execution. The scheduler's position in the event log
is a durable *cursor*. *Monitoring schedules* run a monitor on an endpoint's
captured data and record each *run* (unique per schedule slot). *Registered
pipelines* and *stack resources* belong to ``loopml apply``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base


class TriggerRow(Base):
    """A trigger: what fires it, which pipeline it starts, with which parameters."""

    __tablename__ = "triggers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    #: a pipeline file, ``module:attr`` or a registered pipeline name; None: run ``pipeline_definition``
    pipeline_source: Mapped[str | None] = mapped_column(String(1000), default=None)
    pipeline_name: Mapped[str] = mapped_column(String(200))
    #: the content hash of the definition when the trigger was added or updated
    pipeline_version: Mapped[str] = mapped_column(String(64))
    pipeline_definition: Mapped[dict[str, Any]]
    #: parameter templates (``${event.payload.dataset}``, ``${schedule.time}``, ...)
    params: Mapped[dict[str, Any]]
    #: ``every 1h`` or a cron expression; None for an event trigger
    schedule: Mapped[str | None] = mapped_column(String(200), default=None)
    event_type: Mapped[str | None] = mapped_column(String(200), default=None)
    event_filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cooldown_s: Mapped[float] = mapped_column(Double, default=0.0)
    executor: Mapped[str] = mapped_column(String(20), default="local")
    #: events with this id or lower never fire the trigger (they predate it)
    since_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the last schedule slot claimed (missed slots while the scheduler was down fire once)
    last_slot: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TriggerFiringRow(Base):
    """One firing of a trigger: its key, parameters, the execution it started, and how it ended."""

    __tablename__ = "trigger_firings"
    __table_args__ = (
        UniqueConstraint("trigger_name", "fire_key", name="uq_trigger_firing"),
        Index("ix_trigger_firings_trigger", "trigger_name", "created_at"),
        Index("ix_trigger_firings_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    trigger_name: Mapped[str] = mapped_column(ForeignKey("triggers.name", ondelete="CASCADE"))
    #: the event id, the schedule slot (ISO time) or ``manual-...``
    fire_key: Mapped[str] = mapped_column(String(300))
    #: event, schedule or manual
    source: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    slot: Mapped[datetime | None] = mapped_column(default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(500))
    execution_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: Pending, Running, Succeeded, Failed, Stopped or Skipped
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: ``host:pid:token`` of the scheduler that runs it (to spot a dead one)
    owner: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class TriggerCursorRow(Base):
    """A durable position in the event log (the scheduler's, by name)."""

    __tablename__ = "trigger_cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class MonitorScheduleRow(Base):
    """A monitoring job: which monitor, on which endpoint, how often, over what window."""

    __tablename__ = "trigger_monitor_schedules"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(200))
    #: data_quality, model_quality, bias or attribution
    kind: Mapped[str] = mapped_column(String(30))
    schedule: Mapped[str] = mapped_column(String(200))
    baseline: Mapped[str | None] = mapped_column(String(200), default=None)
    #: seconds of captured data each run looks at (None: one schedule period)
    window_s: Mapped[float | None] = mapped_column(Double, default=None)
    #: further keyword arguments of the monitor (thresholds, facet, label, ...)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_slot: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MonitorRunRow(Base):
    """One run of a monitoring schedule: its window, status and the monitoring result it recorded."""

    __tablename__ = "trigger_monitor_runs"
    __table_args__ = (
        UniqueConstraint("schedule_name", "slot_key", name="uq_trigger_monitor_run"),
        Index("ix_trigger_monitor_runs_schedule", "schedule_name", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    schedule_name: Mapped[str] = mapped_column(ForeignKey("trigger_monitor_schedules.name", ondelete="CASCADE"))
    slot_key: Mapped[str] = mapped_column(String(100))
    slot: Mapped[datetime]
    since: Mapped[datetime]
    until: Mapped[datetime]
    #: Running, then the monitor's status (Completed, CompletedWithViolations, NoData) or Failed
    status: Mapped[str] = mapped_column(String(30))
    result_id: Mapped[str | None] = mapped_column(String(40), default=None)
    violation_count: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    owner: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class RegisteredPipelineRow(Base):
    """A pipeline registered by name (``pipelines:`` of a stack): its source and definition."""

    __tablename__ = "trigger_pipelines"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(1000))
    version: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StackResourceRow(Base):
    """A resource a stack created or adopted (what ``loopml apply --prune`` may delete)."""

    __tablename__ = "trigger_stack_resources"

    stack: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    spec: Mapped[dict[str, Any]]
    applied_at: Mapped[datetime]
