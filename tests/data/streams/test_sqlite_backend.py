"""What only the embedded SQLite log does: its own WAL file, schema version, housekeeping."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loopml import InvalidInput, SchemaVersionError, Workspace
from loopml.data.streams import create_stream, open_backend
from loopml.data.streams import sqlite_backend as mod
from loopml.data.streams.sqlite_backend import SQLiteStreamBackend


def test_its_own_file_in_wal_mode(ws: Workspace) -> None:
    with create_stream(ws, "s") as s:
        s.put({"a": 1})
        b = s.backend
        assert isinstance(b, SQLiteStreamBackend)
        assert Path(b.path) == ws.home / "streams.db"
        assert b.path not in ws.settings.metadata_url
        assert b._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert b._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
        assert b._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_url_options(tmp_path: Path) -> None:
    b = open_backend(f"sqlite:///{tmp_path}/x.db?synchronous=full")
    assert b._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # type: ignore[attr-defined]
    b.close()
    with pytest.raises(InvalidInput, match="synchronous='off'"):
        open_backend(f"sqlite:///{tmp_path}/x.db?synchronous=off")
    with pytest.raises(InvalidInput, match="stream_url 'kafka://x' is not supported"):
        open_backend("kafka://x")


def test_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStreamBackend(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA user_version=99")
    c.close()
    with pytest.raises(SchemaVersionError, match="schema version 99, newer than this loopml"):
        SQLiteStreamBackend(f"sqlite:///{path}")


def test_writers_trim_old_records_now_and_then(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = SQLiteStreamBackend(f"sqlite:///{tmp_path}/s.db", trim_interval_s=0)
    b.create("s", 1, 3600)
    b.put_records("s", [b"old"] * 3, [None] * 3)
    now = mod._now_ms()
    monkeypatch.setattr(mod, "_now_ms", lambda: now + 2 * 3600 * 1000)
    b.put_records("s", [b"new"], [None])
    records, _ = b.get_records("s", 0, 0, 10)
    assert [(r.sequence, r.data) for r in records] == [(4, b"new")]
    # and not more often than asked
    b2 = SQLiteStreamBackend(f"sqlite:///{tmp_path}/s.db", trim_interval_s=3600)
    b2.put_records("s", [b"a"], [None])
    monkeypatch.setattr(mod, "_now_ms", lambda: now + 4 * 3600 * 1000)
    b2.put_records("s", [b"b"], [None])
    assert [r.data for r in b2.get_records("s", 0, 0, 10)[0]] == [b"new", b"a", b"b"]
    b.close()
    b2.close()


def test_arrival_never_goes_back_in_a_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = SQLiteStreamBackend(f"sqlite:///{tmp_path}/s.db")
    b.create("s", 1, 3600)
    now = mod._now_ms()
    b.put_records("s", [b"a"], [None])
    monkeypatch.setattr(mod, "_now_ms", lambda: now - 60_000)  # the wall clock jumps back
    b.put_records("s", [b"b"], [None])
    a, later = b.get_records("s", 0, 0, 10)[0]
    assert later.arrival_ms >= a.arrival_ms >= now
    assert b.sequence_at("s", 0, a.arrival_ms) == 1
    assert b.sequence_at("s", 0, later.arrival_ms + 1) == 3
    b.close()
