"""The embedded stream backend: a durable log in its own SQLite file.

One file (by default ``.loopml/streams.db``, separate from the metadata
database so stream traffic never contends with catalog writes) holds four
tables: ``streams`` (the registry), ``shards`` (the last sequence and arrival
time given out per shard), ``records`` (clustered by stream, shard and
sequence, so a read is one range scan) and ``checkpoints``.

Durability: WAL journal, and every :meth:`SQLiteStreamBackend.put_records`
call is one ``BEGIN IMMEDIATE`` transaction with a batched ``executemany``;
once it returns, its records survive a killed process (with
``?synchronous=full`` in the URL, also a power loss). Several processes may
write the same file; the busy timeout makes them queue for the write lock.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from loopml.data.streams.base import (
    PutResult,
    Record,
    ShardInfo,
    StreamDescription,
    assign_shards,
    check_group_name,
    check_shard,
    check_shards,
    check_stream_name,
    stream_not_found,
)
from loopml.errors import Conflict, InvalidInput, LoopmlError, SchemaVersionError, SourceError

log = logging.getLogger(__name__)

#: seconds a writer waits for another process's write lock before failing
BUSY_TIMEOUT_S = 60
#: the schema version of the stream log file (``PRAGMA user_version``)
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    -- AUTOINCREMENT: an id is never reused, so a re-created stream never sees
    -- the records or checkpoints of a deleted one with the same name
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    shards INTEGER NOT NULL,
    retention_s INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shards (
    stream_id INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (stream_id, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    stream_id INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    arrival_ms INTEGER NOT NULL,
    partition_key TEXT,
    data BLOB NOT NULL,
    PRIMARY KEY (stream_id, shard, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    grp TEXT NOT NULL,
    stream_id INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, stream_id, shard)
) WITHOUT ROWID;
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SQLiteStreamBackend:
    """Streams in a SQLite file: ``sqlite:///path/streams.db``.

    Parameters
    ----------
    url
        ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``;
        ``?synchronous=full`` makes commits survive a power loss too (the
        default, ``normal``, survives a killed process).
    trim_interval_s
        How often (at most) a writer drops records older than the retention
        period, in seconds. :meth:`trim` does it on demand.

    Notes
    -----
    One backend object is safe to share between threads (calls are
    serialised); several processes can use the same file at once.
    """

    def __init__(self, url: str, *, trim_interval_s: float = 60.0) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError as e:
            raise InvalidInput(f"stream_url {url!r} is not a sqlite:/// URL") from e
        sync = str(parsed.query.get("synchronous", "normal")).lower()
        if sync not in ("normal", "full", "extra"):
            raise InvalidInput(f"synchronous={sync!r} in {url!r}; use normal, full or extra")
        self.url = url
        self.path = parsed.database or ":memory:"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._rng = random.Random()
        self._trim_interval_s = trim_interval_s
        self._last_trim: dict[str, float] = {}
        with self._errors():
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            self._conn.execute(f"PRAGMA synchronous={sync.upper()}")
            self._init_schema()

    # -- plumbing -------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise SourceError(
                f"the stream log {self.path} failed: {e}; check the disk and stream_url"
            ) from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the file's write lock from the start."""
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._conn

    def _init_schema(self) -> None:
        with self._write() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the stream log {self.path} has schema version {version}, newer than this "
                    f"loopml knows ({SCHEMA_VERSION}); upgrade loopml to use it"
                )
            if version < SCHEMA_VERSION:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _row(self, c: sqlite3.Connection, name: str) -> tuple[int, int, int, int]:
        row = c.execute(
            "SELECT id, shards, retention_s, created_ms FROM streams WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            check_stream_name(name)
            raise stream_not_found(name, f"the stream log {self.path}")
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def _description(
        self, name: str, shards: int, retention_s: int, created_ms: int
    ) -> StreamDescription:
        return StreamDescription(name, shards, retention_s, created_ms, self.url)

    # -- registry ---------------------------------------------------------------------
    def create(self, name: str, shards: int, retention_s: int) -> StreamDescription:
        """Create a stream; Conflict if one with the name exists."""
        check_stream_name(name)
        check_shards(shards)
        now = _now_ms()
        with self._write() as c:
            row = c.execute("SELECT shards FROM streams WHERE name = ?", (name,)).fetchone()
            if row is not None:
                raise Conflict(
                    f"stream {name!r} already exists ({row[0]} shard(s)); use it, or delete it "
                    f"first with `loopml stream delete {name}`"
                )
            cur = c.execute(
                "INSERT INTO streams (name, shards, retention_s, created_ms) VALUES (?, ?, ?, ?)",
                (name, shards, retention_s, now),
            )
            sid = cur.lastrowid
            c.executemany(
                "INSERT INTO shards (stream_id, shard, last_seq, last_ms) VALUES (?, ?, 0, 0)",
                [(sid, s) for s in range(shards)],
            )
        return self._description(name, shards, retention_s, now)

    def delete(self, name: str) -> None:
        """Delete a stream, its records and its checkpoints."""
        with self._write() as c:
            sid = self._row(c, name)[0]
            for table in ("records", "shards", "checkpoints"):
                c.execute(f"DELETE FROM {table} WHERE stream_id = ?", (sid,))
            c.execute("DELETE FROM streams WHERE id = ?", (sid,))
        self._last_trim.pop(name, None)

    def describe(self, name: str, *, stats: bool = False) -> StreamDescription:
        """The stream's definition; with ``stats``, per-shard counts and sequence ranges."""
        with self._read() as c:
            sid, shards, retention_s, created_ms = self._row(c, name)
            desc = self._description(name, shards, retention_s, created_ms)
            if not stats:
                return desc
            found = {
                int(s): (int(n), int(lo), int(hi))
                for s, n, lo, hi in c.execute(
                    "SELECT shard, COUNT(*), MIN(seq), MAX(seq) FROM records "
                    "WHERE stream_id = ? GROUP BY shard",
                    (sid,),
                )
            }
        info = [
            ShardInfo(s, *found[s]) if s in found else ShardInfo(s, 0, None, None)
            for s in range(shards)
        ]
        return StreamDescription(
            desc.name, desc.shards, desc.retention_s, desc.created_ms, desc.backend, info
        )

    def list_streams(self) -> list[StreamDescription]:
        """Every stream in the file, by name."""
        with self._read() as c:
            rows = c.execute(
                "SELECT name, shards, retention_s, created_ms FROM streams ORDER BY name"
            ).fetchall()
        return [self._description(*r) for r in rows]

    # -- records --------------------------------------------------------------------
    def put_records(
        self, name: str, records: Sequence[bytes], partition_keys: Sequence[str | None]
    ) -> list[PutResult]:
        """Append records in one transaction; return (shard, sequence) per record, in order."""
        if len(records) != len(partition_keys):
            raise InvalidInput(
                f"got {len(records)} records but {len(partition_keys)} partition keys"
            )
        if not records:
            return []
        with self._write() as c:
            sid, shards, _, _ = self._row(c, name)
            shard_of = assign_shards(partition_keys, shards, self._rng)
            last = {
                int(s): [int(seq), int(ms)]
                for s, seq, ms in c.execute(
                    "SELECT shard, last_seq, last_ms FROM shards WHERE stream_id = ?", (sid,)
                )
            }
            now = _now_ms()
            # arrival never goes back within a shard, even if the wall clock does
            for st in last.values():
                st[1] = max(now, st[1])
            rows = []
            out = []
            for sh, data, key in zip(shard_of, records, partition_keys, strict=True):
                st = last[sh]
                st[0] += 1
                rows.append((sid, sh, st[0], st[1], key, data))
                out.append(PutResult(sh, st[0]))
            c.executemany(
                "INSERT INTO records (stream_id, shard, seq, arrival_ms, partition_key, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            touched = set(shard_of)
            c.executemany(
                "UPDATE shards SET last_seq = ?, last_ms = ? WHERE stream_id = ? AND shard = ?",
                [(last[s][0], last[s][1], sid, s) for s in touched],
            )
        self._maybe_trim(name)
        return out

    def get_records(
        self, name: str, shard: int, iterator: int, limit: int
    ) -> tuple[list[Record], int]:
        """Up to ``limit`` records of ``shard`` from sequence ``iterator`` on, and the next iterator."""
        with self._read() as c:
            sid, shards, _, _ = self._row(c, name)
            check_shard(name, shard, shards)
            rows = c.execute(
                "SELECT seq, arrival_ms, partition_key, data FROM records "
                "WHERE stream_id = ? AND shard = ? AND seq >= ? ORDER BY seq LIMIT ?",
                (sid, shard, iterator, limit),
            ).fetchall()
        records = [Record(shard, seq, ms, key, data) for seq, ms, key, data in rows]
        return records, (records[-1].sequence + 1 if records else iterator)

    def latest_sequence(self, name: str, shard: int) -> int:
        """The last sequence number given out in ``shard`` (0 before the first record)."""
        with self._read() as c:
            sid, shards, _, _ = self._row(c, name)
            check_shard(name, shard, shards)
            row = c.execute(
                "SELECT last_seq FROM shards WHERE stream_id = ? AND shard = ?", (sid, shard)
            ).fetchone()
        return int(row[0]) if row else 0

    def sequence_at(self, name: str, shard: int, timestamp_ms: int) -> int:
        """An iterator at the first record of ``shard`` with arrival >= ``timestamp_ms``."""
        with self._read() as c:
            sid, shards, _, _ = self._row(c, name)
            check_shard(name, shard, shards)
            return self._first_at(c, sid, shard, timestamp_ms)

    def _first_at(self, c: sqlite3.Connection, sid: int, shard: int, ts: int) -> int:
        # Arrival times never decrease within a shard, so a binary search over
        # sequence numbers (each probe one index seek) finds the position
        # without an index on arrival time, which would slow every insert.
        row = c.execute(
            "SELECT last_seq FROM shards WHERE stream_id = ? AND shard = ?", (sid, shard)
        ).fetchone()
        lo, hi = 0, (int(row[0]) if row else 0) + 1
        probe = (
            "SELECT seq, arrival_ms FROM records WHERE stream_id = ? AND shard = ? AND seq >= ? "
            "ORDER BY seq LIMIT 1"
        )
        while lo < hi:
            mid = (lo + hi) // 2
            found = c.execute(probe, (sid, shard, mid)).fetchone()
            if found is None or found[1] >= ts:
                hi = mid
            else:
                lo = int(found[0]) + 1
        # the same position, spelt as the sequence of the record it starts at
        first = c.execute(probe, (sid, shard, lo)).fetchone()
        return lo if first is None else int(first[0])

    # -- checkpoints ----------------------------------------------------------------
    def checkpoint(self, group: str, name: str, shard: int, sequence: int) -> None:
        """Move ``group``'s checkpoint in ``shard`` to ``sequence`` (never backwards)."""
        check_group_name(group)
        with self._write() as c:
            sid, shards, _, _ = self._row(c, name)
            check_shard(name, shard, shards)
            c.execute(
                "INSERT INTO checkpoints (grp, stream_id, shard, seq, updated_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (grp, stream_id, shard) DO UPDATE SET "
                "seq = max(seq, excluded.seq), updated_ms = excluded.updated_ms",
                (group, sid, shard, sequence, _now_ms()),
            )

    def get_checkpoint(self, group: str, name: str, shard: int) -> int | None:
        """``group``'s checkpointed sequence in ``shard``, or ``None`` if it has none."""
        check_group_name(group)
        with self._read() as c:
            sid, shards, _, _ = self._row(c, name)
            check_shard(name, shard, shards)
            row = c.execute(
                "SELECT seq FROM checkpoints WHERE grp = ? AND stream_id = ? AND shard = ?",
                (group, sid, shard),
            ).fetchone()
        return None if row is None else int(row[0])

    def delete_checkpoints(self, group: str, name: str) -> None:
        """Forget ``group``'s checkpoints on the stream."""
        check_group_name(group)
        with self._write() as c:
            sid = self._row(c, name)[0]
            c.execute("DELETE FROM checkpoints WHERE grp = ? AND stream_id = ?", (group, sid))

    # -- retention ------------------------------------------------------------------
    def trim(self, name: str, now_ms: int | None = None) -> int:
        """Delete records that arrived more than the retention period before ``now_ms``."""
        now = _now_ms() if now_ms is None else now_ms
        removed = 0
        with self._write() as c:
            sid, shards, retention_s, _ = self._row(c, name)
            cutoff = now - retention_s * 1000
            for shard in range(shards):
                keep_from = self._first_at(c, sid, shard, cutoff)
                cur = c.execute(
                    "DELETE FROM records WHERE stream_id = ? AND shard = ? AND seq < ?",
                    (sid, shard, keep_from),
                )
                removed += max(cur.rowcount, 0)
        self._last_trim[name] = time.monotonic()
        if removed:
            log.info("trimmed %d record(s) older than the retention of stream %r", removed, name)
        return removed

    def _maybe_trim(self, name: str) -> None:
        last = self._last_trim.get(name)
        if last is not None and time.monotonic() - last < self._trim_interval_s:
            return
        try:
            self.trim(name)
        except LoopmlError as e:  # a failed housekeeping pass must not fail the put
            log.warning("could not trim stream %r: %s", name, e)
            self._last_trim[name] = time.monotonic()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStreamBackend({self.url!r})"
