"""SQLAlchemy model of recipe versions (table created by migration 0004)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.models import Base


class RecipeVersion(Base):
    """One fitted version of a named recipe: its spec, the artifact with the learned state, and its data."""

    __tablename__ = "recipes"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_recipe_version"),
        Index("ix_recipes_dataset_version", "dataset_version_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    #: the recipe as data (the YAML form)
    spec: Mapped[dict[str, Any]]
    #: sha256 of the fitted recipe's JSON in the artifact store
    artifact_hash: Mapped[str] = mapped_column(String(64))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    #: the dataset version it was fitted on
    dataset_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), default=None
    )
    target: Mapped[str | None] = mapped_column(String(200), default=None)
    input_columns: Mapped[list[Any]]
    output_columns: Mapped[list[Any]]
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
