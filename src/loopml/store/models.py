"""SQLAlchemy models of the metadata store.

Schema changes go through an Alembic migration in ``migrations/versions``;
these classes describe the head revision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every loopml table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Dataset(Base):
    """A named dataset in the catalog; its content lives in immutable versions."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime]
    #: per-dataset ingestion state, e.g. the incremental watermark
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.version"
    )


class DatasetVersion(Base):
    """One immutable version of a dataset: a list of Parquet parts plus its schema and stats."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_dataset_version"),
        Index("ix_dataset_versions_hash", "dataset_id", "content_hash"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    num_bytes: Mapped[int] = mapped_column(BigInteger)
    schema: Mapped[list[Any]]
    stats: Mapped[dict[str, Any]]
    source: Mapped[dict[str, Any]]
    validation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quarantine_count: Mapped[int] = mapped_column(BigInteger, default=0)
    quarantine_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]

    dataset: Mapped[Dataset] = relationship(back_populates="versions")
    parts: Mapped[list[DatasetPart]] = relationship(
        back_populates="version", order_by="DatasetPart.seq", cascade="all, delete-orphan"
    )


class DatasetPart(Base):
    """A Parquet file of a dataset version, with the partition values it holds."""

    __tablename__ = "dataset_parts"
    __table_args__ = (UniqueConstraint("version_id", "seq", name="uq_dataset_part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    artifact_hash: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    num_bytes: Mapped[int] = mapped_column(BigInteger)
    partition: Mapped[dict[str, Any]]

    version: Mapped[DatasetVersion] = relationship(back_populates="parts")


class LineageEdge(Base):
    """A directed lineage edge: ``src`` --relation--> ``dst`` (e.g. dataset version -> run)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint("src_kind", "src_id", "relation", "dst_kind", "dst_id", name="uq_edge"),
        Index("ix_lineage_src", "src_kind", "src_id"),
        Index("ix_lineage_dst", "dst_kind", "dst_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    src_kind: Mapped[str] = mapped_column(String(40))
    src_id: Mapped[str] = mapped_column(String(1000))
    relation: Mapped[str] = mapped_column(String(60))
    dst_kind: Mapped[str] = mapped_column(String(40))
    dst_id: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime]


class Event(Base):
    """An event in the workspace's event log (triggers subscribe to these)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_type", "type", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(100))
    entity_kind: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(1000))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
