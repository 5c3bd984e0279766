"""Online stores: the latest record per id of each feature group, read in well under a millisecond.

Two backends behind one small protocol, chosen by the workspace's
``online_store_url``: embedded SQLite (the default; one table per group,
``k TEXT PRIMARY KEY, et INTEGER, v TEXT``) and Redis (``redis://...``; one
hash per record holding ``t`` and ``v``). Each record's features are stored as
one JSON blob, so a read is one lookup and one :func:`orjson.loads`.

Writes are compare-and-set on the event time: a record replaces the stored one
only if its event time is the same or newer, so an older event never
overwrites a newer one whatever order they arrive in. A deletion writes a
tombstone with its own event time, so older records arriving later do not
bring the record back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
import pyarrow as pa

from loopml.errors import InvalidInput, SourceError

#: records per executemany / Lua call when writing
WRITE_CHUNK = 50_000
_REDIS_CHUNK = 500
#: columns of the table handed to :meth:`OnlineStore.put`
RECORD_SCHEMA = pa.schema([("k", pa.string()), ("et", pa.int64()), ("v", pa.string())])

Record = dict[str, Any]
_MIN = -(1 << 62)


def now_us() -> int:
    """Current Unix time in microseconds."""
    return time.time_ns() // 1000


@runtime_checkable
class OnlineStore(Protocol):
    """What every online backend does. Keys are strings; event times are Unix microseconds."""

    url: str

    def create_group(self, group: str) -> None:
        """Prepare storage for ``group`` (idempotent)."""

    def drop_group(self, group: str) -> None:
        """Remove every record of ``group``."""

    def put(self, group: str, records: pa.Table, *, ttl_us: int | None = None) -> int:
        """Upsert records (columns ``k``, ``et``, ``v`` of :data:`RECORD_SCHEMA`).

        A record is written only if no stored record (or tombstone) of the same
        key has a later event time. With ``ttl_us`` the backend may reclaim
        records once ``et + ttl_us`` has passed. Returns the records written.
        """

    def get(self, group: str, key: str, min_et: int | None = None) -> Record | None:
        """The record of ``key``, or None if absent, deleted or older than ``min_et``."""

    def get_many(self, group: str, keys: Sequence[str], min_et: int | None = None) -> list[Record | None]:
        """Records of ``keys`` in the same order (None where :meth:`get` gives None)."""

    def delete(self, group: str, key: str, event_time: int) -> bool:
        """Tombstone ``key`` as of ``event_time``; True if a live record was there."""

    def count(self, group: str) -> int:
        """Live records (tombstones excluded; expired ones may be counted)."""

    def close(self) -> None:
        """Release connections."""


def open_online_store(url: str) -> OnlineStore:
    """The online store for ``url``: ``sqlite:///PATH`` or ``redis://HOST:PORT/DB``."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise InvalidInput(f"online_store_url {url!r} has no file; use sqlite:///PATH")
        return SQLiteOnlineStore(path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisOnlineStore(url)
    raise InvalidInput(
        f"online_store_url {url!r} is not supported; use sqlite:///PATH (default) or "
        "redis://HOST:PORT/DB"
    )


# -- SQLite ---------------------------------------------------------------------------------
def _table(group: str) -> str:
    # group names are validated ([A-Za-z0-9_-]), so quoting is enough
    return f'"fg_{group}"'


class SQLiteOnlineStore:
    """The embedded online store: one ``WITHOUT ROWID`` table per feature group.

    One connection is opened up front and its statements stay prepared
    (sqlite3 caches them by text), so a read is a B-tree lookup plus a JSON parse.
    Many ids are fetched with one ``IN (SELECT value FROM json_each(?))`` query.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=60, cached_statements=512
            )
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute("PRAGMA busy_timeout=60000")
            # Reads hit the page cache / memory map rather than read() calls.
            self._con.execute("PRAGMA mmap_size=1073741824")
            self._con.execute("PRAGMA cache_size=-131072")
        except sqlite3.Error as e:
            raise SourceError(f"cannot open the online store {path}: {e}; check online_store_url") from e
        self._lock = threading.Lock()
        self._sql: dict[str, tuple[str, str]] = {}

    def _statements(self, group: str) -> tuple[str, str]:
        s = self._sql.get(group)
        if s is None:
            t = _table(group)
            s = self._sql[group] = (
                f"SELECT v FROM {t} WHERE k = ? AND et >= ?",
                f"SELECT k, v FROM {t} WHERE k IN (SELECT value FROM json_each(?)) AND et >= ?",
            )
        return s

    def create_group(self, group: str) -> None:
        with self._lock:
            self._con.execute(
                f"CREATE TABLE IF NOT EXISTS {_table(group)} "
                "(k TEXT PRIMARY KEY, et INTEGER NOT NULL, v TEXT) WITHOUT ROWID"
            )

    def drop_group(self, group: str) -> None:
        with self._lock:
            self._con.execute(f"DROP TABLE IF EXISTS {_table(group)}")
        self._sql.pop(group, None)

    def put(self, group: str, records: pa.Table, *, ttl_us: int | None = None) -> int:
        self.create_group(group)
        t = _table(group)
        sql = (
            f"INSERT INTO {t} (k, et, v) VALUES (?, ?, ?) ON CONFLICT(k) DO UPDATE SET "
            f"et = excluded.et, v = excluded.v WHERE excluded.et >= {t}.et"
        )
        written = 0
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for batch in records.to_batches(WRITE_CHUNK):
                    rows = zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(),
                               batch.column(2).to_pylist(), strict=True)
                    cur = self._con.executemany(sql, rows)
                    written += max(cur.rowcount, 0)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        return written

    def get(self, group: str, key: str, min_et: int | None = None) -> Record | None:
        sql = self._sql.get(group) or self._statements(group)
        try:
            with self._lock:
                row = self._con.execute(sql[0], (key, _MIN if min_et is None else min_et)).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise
        if row is None or row[0] is None:
            return None
        out: Record = orjson.loads(row[0])
        return out

    def get_many(self, group: str, keys: Sequence[str], min_et: int | None = None) -> list[Record | None]:
        sql = self._sql.get(group) or self._statements(group)
        try:
            with self._lock:
                rows = self._con.execute(
                    sql[1], (orjson.dumps(keys), _MIN if min_et is None else min_et)
                ).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return [None] * len(keys)
            raise
        found = {k: v for k, v in rows if v is not None}
        return [orjson.loads(v) if (v := found.get(k)) is not None else None for k in keys]

    def delete(self, group: str, key: str, event_time: int) -> bool:
        self.create_group(group)
        t = _table(group)
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                row = self._con.execute(f"SELECT et, v FROM {t} WHERE k = ?", (key,)).fetchone()
                live = row is not None and row[1] is not None and row[0] <= event_time
                self._con.execute(
                    f"INSERT INTO {t} (k, et, v) VALUES (?, ?, NULL) ON CONFLICT(k) DO UPDATE SET "
                    f"et = excluded.et, v = NULL WHERE excluded.et >= {t}.et",
                    (key, event_time),
                )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        return live

    def count(self, group: str) -> int:
        try:
            with self._lock:
                n = self._con.execute(
                    f"SELECT count(*) FROM {_table(group)} WHERE v IS NOT NULL"
                ).fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(n[0])

    def close(self) -> None:
        self._con.close()


# -- Redis ----------------------------------------------------------------------------------
#: KEYS: record keys; ARGV: et_1, v_1, expire_at_ms_1, et_2, ... (expire '' for none)
_PUT_LUA = """
local n = 0
for i = 1, #KEYS do
  local et = tonumber(ARGV[3 * i - 2])
  local cur = redis.call('HGET', KEYS[i], 't')
  if (not cur) or tonumber(cur) <= et then
    redis.call('HSET', KEYS[i], 't', ARGV[3 * i - 2], 'v', ARGV[3 * i - 1])
    local exp = ARGV[3 * i]
    if exp ~= '' then redis.call('PEXPIREAT', KEYS[i], exp) else redis.call('PERSIST', KEYS[i]) end
    n = n + 1
  end
end
return n
"""
#: KEYS[1]: record key; ARGV[1]: tombstone event time. Returns 1 if a live record was deleted.
_DELETE_LUA = """
local cur = redis.call('HMGET', KEYS[1], 't', 'v')
local et = tonumber(ARGV[1])
if cur[1] and tonumber(cur[1]) > et then return 0 end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'v', '')
redis.call('PERSIST', KEYS[1])
if cur[2] and cur[2] ~= '' then return 1 end
return 0
"""
#: KEYS: record keys. Returns t_1, v_1, t_2, v_2, ... (false where absent)
_GET_LUA = """
local out = {}
for i = 1, #KEYS do
  local r = redis.call('HMGET', KEYS[i], 't', 'v')
  out[2 * i - 1] = r[1]
  out[2 * i] = r[2]
end
return out
"""


class RedisOnlineStore:
    """Online store in Redis: one hash ``{t: event time, v: JSON}`` per record.

    Keys are ``loopml:fs:{GROUP}:ID`` (the hash tag keeps a group in one
    cluster slot). Writes run a Lua script that compares event times
    atomically; with a TTL the key also expires in Redis at ``et + ttl``.
    """

    PREFIX = "loopml:fs:"

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError as e:  # pragma: no cover - depends on the install
            raise InvalidInput(
                f"online_store_url {url!r} needs the redis client: pip install 'loopml[redis]'"
            ) from e
        self.url = url
        self._redis = redis
        self._client = redis.Redis.from_url(url, socket_timeout=30)
        self._put = self._client.register_script(_PUT_LUA)
        self._delete = self._client.register_script(_DELETE_LUA)
        self._get = self._client.register_script(_GET_LUA)

    def _prefix(self, group: str) -> str:
        return f"{self.PREFIX}{{{group}}}:"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._redis.ConnectionError as e:
            raise SourceError(
                f"cannot reach the Redis online store at {self._safe_url()}: {e}; "
                "check online_store_url"
            ) from e

    def _safe_url(self) -> str:
        if "@" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return self.url

    def create_group(self, group: str) -> None:
        return None

    def drop_group(self, group: str) -> None:
        pattern = self._prefix(group) + "*"
        batch: list[bytes] = []
        for key in self._call(self._client.scan_iter, match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self._call(self._client.unlink, *batch)
                batch = []
        if batch:
            self._call(self._client.unlink, *batch)

    def put(self, group: str, records: pa.Table, *, ttl_us: int | None = None) -> int:
        prefix = self._prefix(group)
        written = 0
        for batch in records.to_batches(WRITE_CHUNK):
            keys = [prefix + k for k in batch.column(0).to_pylist()]
            ets: list[int] = batch.column(1).to_pylist()
            values: list[str] = batch.column(2).to_pylist()
            pipe = self._client.pipeline(transaction=False)
            for i in range(0, len(keys), _REDIS_CHUNK):
                args: list[Any] = []
                for et, v in zip(ets[i:i + _REDIS_CHUNK], values[i:i + _REDIS_CHUNK], strict=True):
                    exp = "" if ttl_us is None else (et + ttl_us) // 1000
                    args += (et, v, exp)
                self._put(keys=keys[i:i + _REDIS_CHUNK], args=args, client=pipe)
            written += sum(self._call(pipe.execute))
        return written

    def get(self, group: str, key: str, min_et: int | None = None) -> Record | None:
        t, v = self._call(self._client.hmget, self._prefix(group) + key, "t", "v")
        if not v or (min_et is not None and int(t) < min_et):
            return None
        out: Record = orjson.loads(v)
        return out

    def get_many(self, group: str, keys: Sequence[str], min_et: int | None = None) -> list[Record | None]:
        if not keys:
            return []
        prefix = self._prefix(group)
        flat = self._call(self._get, keys=[prefix + k for k in keys])
        out: list[Record | None] = []
        for i in range(len(keys)):
            t, v = flat[2 * i], flat[2 * i + 1]
            if not v or (min_et is not None and int(t) < min_et):
                out.append(None)
            else:
                out.append(orjson.loads(v))
        return out

    def delete(self, group: str, key: str, event_time: int) -> bool:
        return bool(self._call(self._delete, keys=[self._prefix(group) + key], args=[event_time]))

    def count(self, group: str) -> int:
        n = 0
        keys: list[bytes] = []

        def flush() -> int:
            pipe = self._client.pipeline(transaction=False)
            for k in keys:
                pipe.hstrlen(k, "v")  # 0 for a tombstone
            live = sum(1 for length in self._call(pipe.execute) if length)
            keys.clear()
            return live

        for key in self._call(self._client.scan_iter, match=self._prefix(group) + "*", count=1000):
            keys.append(key)
            if len(keys) >= 1000:
                n += flush()
        return n + (flush() if keys else 0)

    def close(self) -> None:
        self._client.close()


__all__ = [
    "RECORD_SCHEMA",
    "OnlineStore",
    "RedisOnlineStore",
    "SQLiteOnlineStore",
    "now_us",
    "open_online_store",
]
