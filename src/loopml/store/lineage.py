"""Lineage: a generic graph of edges between entities, walked up (sources) and down (products)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loopml._util import as_utc, utcnow
from loopml.store.metadata import MetadataStore
from loopml.store.models import LineageEdge


@dataclass(frozen=True, order=True)
class EntityRef:
    """A pointer to any entity: its kind (``dataset_version``, ``run``, ...) and id."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> EntityRef:
        """Parse ``kind:id``."""
        kind, sep, ident = text.partition(":")
        if not sep or not kind or not ident:
            from loopml.errors import InvalidInput

            raise InvalidInput(f"{text!r} is not an entity reference; write it as KIND:ID")
        return cls(kind, ident)


@dataclass(frozen=True)
class Edge:
    """One lineage edge ``src --relation--> dst`` and the depth at which a walk found it."""

    src: EntityRef
    relation: str
    dst: EntityRef
    created_at: datetime
    depth: int = 1


class Lineage:
    """Records and walks lineage edges in the metadata store."""

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def add(
        self, src: EntityRef, dst: EntityRef, relation: str, *, session: Session | None = None
    ) -> None:
        """Record ``src --relation--> dst`` (idempotent). Pass ``session`` to join a transaction."""
        if session is None:
            with self.meta.session(write=True) as s:
                self._insert(s, src, dst, relation)
        else:
            self._insert(session, src, dst, relation)

    def _insert(self, s: Session, src: EntityRef, dst: EntityRef, relation: str) -> None:
        values = dict(
            src_kind=src.kind,
            src_id=src.id,
            relation=relation,
            dst_kind=dst.kind,
            dst_id=dst.id,
            created_at=utcnow(),
        )
        insert = postgresql.insert if self.meta.dialect == "postgresql" else sqlite.insert
        s.execute(insert(LineageEdge).values(**values).on_conflict_do_nothing())

    def targets(self, ref: EntityRef, relation: str, kind: str) -> list[EntityRef]:
        """Entities of ``kind`` that ``ref`` points at directly with ``relation``, oldest first."""
        return [e.dst for e in self._walk(ref, "down", 1) if e.relation == relation and e.dst.kind == kind]

    def upstream(self, ref: EntityRef, depth: int | None = None) -> list[Edge]:
        """Edges leading into ``ref``, then into those sources, up to ``depth`` levels."""
        return self._walk(ref, "up", depth)

    def downstream(self, ref: EntityRef, depth: int | None = None) -> list[Edge]:
        """Edges leading out of ``ref``, then out of those products, up to ``depth`` levels."""
        return self._walk(ref, "down", depth)

    def _walk(self, start: EntityRef, direction: Literal["up", "down"], depth: int | None) -> list[Edge]:
        seen = {start}
        frontier: deque[EntityRef] = deque([start])
        out: list[Edge] = []
        level = 0
        with self.meta.session() as s:
            while frontier and (depth is None or level < depth):
                level += 1
                batch = list(frontier)
                frontier.clear()
                if direction == "up":
                    cond = or_(*(and_(LineageEdge.dst_kind == r.kind, LineageEdge.dst_id == r.id) for r in batch))
                else:
                    cond = or_(*(and_(LineageEdge.src_kind == r.kind, LineageEdge.src_id == r.id) for r in batch))
                for row in s.scalars(select(LineageEdge).where(cond).order_by(LineageEdge.id)):
                    edge = Edge(
                        EntityRef(row.src_kind, row.src_id),
                        row.relation,
                        EntityRef(row.dst_kind, row.dst_id),
                        as_utc(row.created_at),
                        level,
                    )
                    out.append(edge)
                    nxt = edge.src if direction == "up" else edge.dst
                    if nxt not in seen:
                        seen.add(nxt)
                        frontier.append(nxt)
        return out
