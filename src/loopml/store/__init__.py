"""Stores of the workspace: metadata (SQLAlchemy), artifacts (fsspec), lineage and events.

Names load on first use (PEP 562): a training job reads artifacts without
importing SQLAlchemy and the metadata models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

if TYPE_CHECKING:
    from loopml.store.artifacts import ArtifactRef, ArtifactStore, check_name
    from loopml.store.events import Event, EventLog
    from loopml.store.lineage import Edge, EntityRef, Lineage
    from loopml.store.metadata import MetadataStore

#: public name -> module that defines it
_LAZY = {
    **dict.fromkeys(["ArtifactRef", "ArtifactStore", "check_name"], "loopml.store.artifacts"),
    **dict.fromkeys(["Event", "EventLog"], "loopml.store.events"),
    **dict.fromkeys(["Edge", "EntityRef", "Lineage"], "loopml.store.lineage"),
    "MetadataStore": "loopml.store.metadata",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


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
