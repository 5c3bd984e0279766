"""SQLAlchemy models of the model registry (tables of migration 0006).

A model (a SageMaker "model package group") has numbered versions; each
version references a model package in the artifact store by the sha256 of its
manifest (nothing is copied) and carries its approval status. Aliases
(``staging``, ``production``, ``archived``) point at one version each; every
approval change and alias move is kept in a history table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base


class ModelGroup(Base):
    """A named model: the group its versions belong to."""

    __tablename__ = "model_groups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime]


class ModelVersionRow(Base):
    """One registered version: the package it points at, what made it, and its approval status."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("group_id", "version", name="uq_model_version"),
        Index("ix_model_versions_package", "package_sha256"),
        Index("ix_model_versions_run", "run_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("model_groups.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    #: the package id: sha256 of its manifest in the artifact store
    package_sha256: Mapped[str] = mapped_column(String(64))
    #: no foreign key: the version keeps naming its run even if the run is deleted
    run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    flavor: Mapped[str] = mapped_column(String(100))
    problem_type: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(2000), default="")
    #: PendingManualApproval, Approved or Rejected
    approval_status: Mapped[str] = mapped_column(String(30))
    approval_by: Mapped[str | None] = mapped_column(String(200), default=None)
    approval_at: Mapped[datetime | None] = mapped_column(default=None)
    approval_reason: Mapped[str | None] = mapped_column(Text, default=None)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signature: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: the manifest's recipe entry plus the catalog recipe version, if any
    recipe: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: dataset versions of the run: ``[{id, name, version, role, content_hash}]``
    datasets: Mapped[list[Any]] = mapped_column(default=list)
    #: libraries, training data description, target, ... from the manifest
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    registered_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ModelApproval(Base):
    """One step of a version's approval history (the status it entered, who, when, why)."""

    __tablename__ = "model_approvals"
    __table_args__ = (Index("ix_model_approvals_version", "version_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(30))
    previous_status: Mapped[str | None] = mapped_column(String(30), default=None)
    by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]


class ModelAlias(Base):
    """Where an alias of a model points now (one version per alias per model)."""

    __tablename__ = "model_aliases"

    group_id: Mapped[str] = mapped_column(ForeignKey("model_groups.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(40), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class ModelAliasChange(Base):
    """One move of an alias: from which version to which (None: removed), who, when, why."""

    __tablename__ = "model_alias_history"
    __table_args__ = (Index("ix_model_alias_history_group", "group_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("model_groups.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(40))
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    previous_version: Mapped[int | None] = mapped_column(Integer, default=None)
    by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]


__all__ = ["ModelAlias", "ModelAliasChange", "ModelApproval", "ModelGroup", "ModelVersionRow"]
