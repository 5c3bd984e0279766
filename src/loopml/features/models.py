"""SQLAlchemy models of the feature store's metadata (tables of migration 0003).

They extend the declarative base of :mod:`loopml.store.models`; the schema is
created by ``migrations/versions/0003_features.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from loopml.store.models import Base


class FeatureGroupRow(Base):
    """A feature group: its record identifier, event time and typed feature definitions."""

    __tablename__ = "feature_groups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    record_id: Mapped[str] = mapped_column(String(128))
    #: ``integral`` or ``string``
    id_type: Mapped[str] = mapped_column(String(20))
    event_time: Mapped[str] = mapped_column(String(128))
    #: ``[{"name": ..., "type": ...}, ...]`` without the id and event-time columns
    features: Mapped[list[Any]]
    description: Mapped[str] = mapped_column(String(2000), default="")
    owner: Mapped[str] = mapped_column(String(200), default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    #: online records whose event time is older than this many seconds are not returned
    ttl_seconds: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: materialization watermark and other bookkeeping
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]

    parts: Mapped[list[FeatureGroupPart]] = relationship(
        back_populates="group", order_by="FeatureGroupPart.seq",
        cascade="all, delete-orphan", passive_deletes=True,
    )


class FeatureGroupPart(Base):
    """One ingest into a group's offline store: an append-only Parquet file."""

    __tablename__ = "feature_group_parts"
    __table_args__ = (UniqueConstraint("group_id", "seq", name="uq_feature_group_part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("feature_groups.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    artifact_hash: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    num_bytes: Mapped[int] = mapped_column(BigInteger)
    min_event_time: Mapped[datetime | None]
    max_event_time: Mapped[datetime | None]
    #: where the rows came from (a dataset version, a DataFrame)
    source: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]

    group: Mapped[FeatureGroupRow] = relationship(back_populates="parts")
