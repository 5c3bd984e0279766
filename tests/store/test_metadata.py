from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from loopml import InvalidInput, SchemaVersionError, SourceError, Workspace
from loopml.store import MetadataStore
from loopml.store.metadata import _MIGRATIONS
from loopml.store.migrations import HEAD


def test_head_constant_matches_migration_scripts() -> None:
    assert ScriptDirectory(str(_MIGRATIONS)).get_current_head() == HEAD


def test_migrations_create_schema(any_ws: Workspace) -> None:
    names = set(sa.inspect(any_ws.meta.engine).get_table_names())
    assert {"datasets", "dataset_versions", "dataset_parts", "lineage_edges", "events", "alembic_version"} <= names
    assert any_ws.meta.migrate() == HEAD


def test_sqlite_runs_in_wal_mode(ws: Workspace) -> None:
    with ws.meta.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30_000


def test_newer_database_is_refused(any_ws: Workspace) -> None:
    with any_ws.meta.engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    store = MetadataStore(any_ws.settings.metadata_url)
    with pytest.raises(SchemaVersionError, match="newer than this loopml"):
        store.migrate()
    store.dispose()


def test_bad_urls_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a SQLAlchemy URL"):
        MetadataStore("not a url")
    with pytest.raises(InvalidInput, match="no database driver"):
        MetadataStore("nosuchdb://x/y")
    store = MetadataStore("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(SourceError, match="cannot open the metadata database"):
        store.migrate()


def test_password_is_masked(tmp_path: Path) -> None:
    store = MetadataStore("postgresql+psycopg://u:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in store.safe_url


def test_write_sessions_roll_back_on_error(ws: Workspace) -> None:
    from loopml.store.lineage import EntityRef

    with pytest.raises(RuntimeError), ws.meta.session(write=True) as s:
        ws.lineage.add(EntityRef("a", "1"), EntityRef("b", "2"), "x", session=s)
        raise RuntimeError("boom")
    assert ws.lineage.downstream(EntityRef("a", "1")) == []
