"""Stores of the workspace: metadata (SQLAlchemy), artifacts (fsspec), lineage and events.

Names load on first use (PEP 562): a training job reads artifacts without
importing SQLAlchemy and the metadata models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
