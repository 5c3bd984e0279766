"""Fixtures of the stream tests: the same workspace on the SQLite log and on Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml import Workspace
from loopml.data.streams import StreamBackend, open_backend


@pytest.fixture(params=["sqlite", "redis"])
def stream_ws(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A workspace whose ``stream_url`` is the embedded SQLite log, or a real Redis."""
    if request.param == "redis":
        monkeypatch.setenv("LOOPML_STREAM_URL", request.getfixturevalue("redis_url"))
    w = Workspace.init(tmp_path / "ws")
    yield w
    w.close()


@pytest.fixture
def backend(stream_ws: Workspace) -> Iterator[StreamBackend]:
    """The stream backend of ``stream_ws``."""
    b = open_backend(stream_ws.settings.stream_url)
    yield b
    b.close()
