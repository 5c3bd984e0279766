"""Stores of the workspace: metadata (SQLAlchemy), artifacts (fsspec), lineage and events."""

from loopml.store.artifacts import ArtifactRef, ArtifactStore, check_name
from loopml.store.events import Event, EventLog
from loopml.store.lineage import Edge, EntityRef, Lineage
from loopml.store.metadata import MetadataStore

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "Edge",
    "EntityRef",
    "Event",
    "EventLog",
    "Lineage",
    "MetadataStore",
    "check_name",
]
