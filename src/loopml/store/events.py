"""The workspace event log: later stages (triggers) subscribe to these events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopml._util import as_utc, utcnow
from loopml.store.lineage import EntityRef
from loopml.store.metadata import MetadataStore
from loopml.store.models import Event as EventRow

#: event types emitted by loopml (more are added by later stages)
DATASET_VERSION_CREATED = "dataset.version_created"


@dataclass(frozen=True)
class Event:
    """One event: its position in the log, type, subject entity and payload."""

    id: int
    type: str
    entity: EntityRef
    payload: dict[str, Any]
    created_at: datetime


class EventLog:
    """Append-only event log in the metadata store."""

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def emit(
        self,
        type: str,
        entity: EntityRef,
        payload: dict[str, Any] | None = None,
        *,
        session: Session | None = None,
    ) -> None:
        """Append an event. Pass ``session`` so it commits (or not) with the change it reports."""
        row = EventRow(
            type=type,
            entity_kind=entity.kind,
            entity_id=entity.id,
            payload=payload or {},
            created_at=utcnow(),
        )
        if session is None:
            with self.meta.session(write=True) as s:
                s.add(row)
        else:
            session.add(row)

    def list(self, *, after: int = 0, type: str | None = None, limit: int = 1000) -> list[Event]:
        """Events with id greater than ``after`` (optionally of one type), oldest first."""
        q = select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(limit)
        if type is not None:
            q = q.where(EventRow.type == type)
        with self.meta.session() as s:
            return [
                Event(
                    r.id,
                    r.type,
                    EntityRef(r.entity_kind, r.entity_id),
                    dict(r.payload),
                    as_utc(r.created_at),
                )
                for r in s.scalars(q)
            ]
