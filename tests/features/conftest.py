"""Fixtures of the feature-store tests: online backends and a seeded event log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml import Workspace
from loopml.features import FeatureStore


@pytest.fixture(params=["sqlite", "redis"])
def online_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on the embedded SQLite online store and on a real redis-server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def fs(ws: Workspace, online_url: str) -> Iterator[FeatureStore]:
    """A feature store on ``ws`` with the parametrised online backend."""
    store = FeatureStore(ws, online_url=online_url)
    yield store
    store.close()


@pytest.fixture
def sfs(ws: Workspace) -> Iterator[FeatureStore]:
    """A feature store on the workspace's default (SQLite) online store."""
    store = FeatureStore(ws)
    yield store
    store.close()
