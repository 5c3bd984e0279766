"""SQLAlchemy models of the serving control plane (tables of migration 0008).

An endpoint is a name, a status and a *config* (a JSON document: variants with
their weights, multi-model targets, capture, micro-batching, limits, auth)
whose ``version`` goes up by one on every change, so servers reload only what
changed. Every change is also kept, old and new config side by side, in
``endpoint_changes``; API keys are stored as salted hashes only. A blue/green
update is a row of ``endpoint_deployments`` (migration 0012): its plan, step,
status and controller lease, so a restarted controller can take it over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base


class EndpointRow(Base):
    """A real-time endpoint: its current config and the version of that config."""

    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: ``InService`` (deployment strategies add ``Updating``, ``RollingBack``, ...)
    status: Mapped[str] = mapped_column(String(30))
    #: bumped on every change of the config (or of the endpoint's API keys)
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EndpointApiKey(Base):
    """One API key of an endpoint: only a salted sha256 of the secret is kept."""

    __tablename__ = "endpoint_api_keys"
    __table_args__ = (Index("ix_endpoint_api_keys_endpoint", "endpoint_id"),)

    #: the key id, also the middle part of the plaintext key
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    salt: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class EndpointChange(Base):
    """One change of an endpoint: who, when, why, and its config before and after.

    No foreign key: the history outlives a deleted endpoint.
    """

    __tablename__ = "endpoint_changes"
    __table_args__ = (Index("ix_endpoint_changes_name", "endpoint_name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(String(40))
    endpoint_name: Mapped[str] = mapped_column(String(200))
    #: the endpoint's version after the change
    version: Mapped[int] = mapped_column(Integer)
    #: create, update, update_weights, api_key_created, api_key_revoked, delete, ...
    action: Mapped[str] = mapped_column(String(40))
    old_config: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    new_config: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: free-form details (the deployment strategy adds its step, alarm, ...)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class EndpointDeployment(Base):
    """One blue/green update of an endpoint: what shifts to what, how far it got, and how it ended.

    No foreign key: the history outlives a deleted endpoint.
    """

    __tablename__ = "endpoint_deployments"
    __table_args__ = (Index("ix_endpoint_deployments_endpoint", "endpoint_name", "created_at"),
                      Index("ix_endpoint_deployments_status", "status"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_name: Mapped[str] = mapped_column(String(200))
    endpoint_id: Mapped[str] = mapped_column(String(40))
    #: InProgress, Succeeded, RolledBack or Failed
    status: Mapped[str] = mapped_column(String(20))
    #: the strategy as the user wrote it (``canary:20:300``)
    strategy: Mapped[str] = mapped_column(String(100))
    #: steps (traffic share of green, bake seconds), termination wait, timeout, guardrail settings
    plan: Mapped[dict[str, Any]]
    #: the endpoint's version and config when the deployment started (blue)
    from_version: Mapped[int] = mapped_column(Integer)
    from_config: Mapped[dict[str, Any]]
    #: the green variants: as they are named while both sides run, and their final names
    target: Mapped[dict[str, Any]]
    #: every alarm watched (guardrails and the user's), and the guardrails this deployment created
    alarms: Mapped[list[Any]]
    guardrail_alarms: Mapped[list[Any]]
    #: index of the current step in ``plan["steps"]`` (-1: not started; len(steps): termination wait)
    step: Mapped[int] = mapped_column(Integer)
    step_started_at: Mapped[datetime | None] = mapped_column(default=None)
    #: the endpoint version this deployment wrote last (another writer shows as a newer version)
    last_version: Mapped[int] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: the alarm whose ALARM rolled the deployment back
    alarm: Mapped[str | None] = mapped_column(String(200), default=None)
    #: what happened, in order: ``[{"at", "step", "event", ...}]``
    log: Mapped[list[Any]]
    #: the controller that drives it now (``host:pid:token``) and its last sign of life
    owner: Mapped[str | None] = mapped_column(String(300), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


__all__ = ["EndpointApiKey", "EndpointChange", "EndpointDeployment", "EndpointRow"]
