"""Shared fixtures: workspaces in tmp_path, a real PostgreSQL, seeded data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopml import Workspace


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own workspace settings."""
    for key in list(os.environ):
        if key.startswith("LOOPML_") and not key.startswith("LOOPML_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace on the embedded defaults (SQLite + local folder)."""
    w = Workspace.init(tmp_path / "ws")
    yield w
    w.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a real PostgreSQL server: $LOOPML_TEST_PG_URL, or a private one started here."""
    url = os.environ.get("LOOPML_TEST_PG_URL")
    if url:
        yield url
        return
    from tests._pg import PrivatePostgres

    try:
        server = PrivatePostgres()
        url = server.start()
    except Exception as e:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL available: {e}")
    yield url
    server.stop()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped after)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_server.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real Redis server: $LOOPML_TEST_REDIS_URL, or a private one started here."""
    url = os.environ.get("LOOPML_TEST_REDIS_URL")
    if url:
        yield url
        return
    from tests._redis import PrivateRedis

    try:
        server = PrivateRedis()
        url = server.start()
    except Exception as e:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis available: {e}")
    yield url
    server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The Redis server, emptied before the test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture(params=["sqlite", "postgres"])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """The same test on a SQLite workspace and on a PostgreSQL-backed one."""
    if request.param == "sqlite":
        w = Workspace.init(tmp_path / "ws")
    else:
        url = request.getfixturevalue("pg_url")
        w = Workspace.init(tmp_path / "ws", metadata_url=url)
    yield w
    w.close()
