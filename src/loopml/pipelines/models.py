"""SQLAlchemy models of pipelines (tables of migration 0010).

A pipeline *definition* is stored once per distinct content (``version`` is
the hash of its canonical form and code). An *execution* runs one definition
with typed parameters; each of its steps leaves one *step execution* row with
its status, attempts, inputs, outputs, captured logs (an artifact) and, for a
cache hit, the step execution whose outputs it reused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base


class PipelineRow(Base):
    """One version of a named pipeline: its canonical definition (YAML/JSON form)."""

    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_pipeline_version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: sha256 of the canonical definition plus the code of its Python steps
    version: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class PipelineExecutionRow(Base):
    """One execution of a pipeline version with its parameters."""

    __tablename__ = "pipeline_executions"
    __table_args__ = (Index("ix_pipeline_executions_name", "pipeline_name", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    pipeline_name: Mapped[str] = mapped_column(String(200))
    pipeline_version: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    #: Executing, Succeeded, Failed or Stopped
    status: Mapped[str] = mapped_column(String(20))
    executor: Mapped[str] = mapped_column(String(20))
    #: a second run with the same key returns this execution instead of starting one
    idempotency_key: Mapped[str | None] = mapped_column(String(500), unique=True, default=None)
    #: the failed execution this one resumed
    resumed_from: Mapped[str | None] = mapped_column(String(40), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: who runs it: host and pid of the coordinating process (to spot a dead one)
    coordinator: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    start_time: Mapped[datetime]
    end_time: Mapped[datetime | None] = mapped_column(default=None)


class StepExecutionRow(Base):
    """One step of an execution: status, attempts, inputs, outputs, logs, cache."""

    __tablename__ = "pipeline_step_executions"
    __table_args__ = (
        UniqueConstraint("execution_id", "name", name="uq_pipeline_step_execution"),
        Index("ix_pipeline_step_cache", "cache_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("pipeline_executions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(100))
    #: Starting, Executing, Succeeded, Failed, Skipped, Cached or Stopped
    status: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    start_time: Mapped[datetime | None] = mapped_column(default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: sha256 of the captured stdout/stderr in the artifact store
    logs_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    cache_key: Mapped[str | None] = mapped_column(String(64), default=None)
    #: the step execution whose outputs a cache hit (or a resume) reused
    cached_from: Mapped[str | None] = mapped_column(String(40), default=None)
    #: one entry per attempt: start, end, error
    history: Mapped[list[Any]] = mapped_column(default=list)
