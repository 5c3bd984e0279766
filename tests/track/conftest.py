"""Trackers over fresh workspaces (SQLite, and PostgreSQL through ``any_ws``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loopml import Workspace
from loopml.track import Tracker


@pytest.fixture
def tracker(ws: Workspace) -> Iterator[Tracker]:
    """A tracker on the SQLite workspace; closed (and flushed) after the test."""
    t = Tracker(ws, capture_code_version=False)
    yield t
    t.close()


@pytest.fixture
def any_tracker(any_ws: Workspace) -> Iterator[Tracker]:
    """The same test on SQLite and on PostgreSQL."""
    t = Tracker(any_ws, capture_code_version=False)
    yield t
    t.close()
