"""Shared fixtures: workspaces in tmp_path, a real PostgreSQL, seeded data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def _server(env_var: str, what: str, factory: Callable[[], Any]) -> Iterator[str]:
    """Yield $env_var if set, else the URL of a private server from ``factory`` (stopped after).

    Without one, tests that need it skip locally and fail in CI (which must run them).
    """
    url = os.environ.get(env_var)
    if url:
        yield url
        return
    try:
        server = factory()
        url = server.start()
    except Exception as e:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no {what} available: {e}")
    yield url
    server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a real PostgreSQL server: $LOOPML_TEST_PG_URL, or a private one started here."""
    from tests._pg import PrivatePostgres

    yield from _server("LOOPML_TEST_PG_URL", "PostgreSQL", PrivatePostgres)


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
    from tests._redis import PrivateRedis

    yield from _server("LOOPML_TEST_REDIS_URL", "Redis", PrivateRedis)


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
