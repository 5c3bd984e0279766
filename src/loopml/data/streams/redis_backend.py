"""The Redis Streams backend: ``redis://host:port/db``.

Layout (``P`` is the key prefix, ``loopml:`` unless the URL says
``?prefix=...``):

- ``P streams``: a set of stream names (the registry);
- ``P stream:NAME``: a hash with the definition: ``shards``, ``retention_s``,
  ``created_ms``, ``inc`` (a random id of this incarnation of the stream) and
  ``last:SHARD`` (the last entry id written to each shard);
- ``P stream:NAME:INC:SHARD``: one Redis stream per shard, entries ``d`` (the
  data) and ``k`` (the partition key, empty for none);
- ``P stream:NAME:INC:checkpoints``: a hash ``GROUP:SHARD -> sequence``.

Keys carry the incarnation, so a stream deleted and re-created under the same
name never sees the old records or checkpoints, even from a writer that raced
the delete. Writes and reads run as Lua scripts: a put is one round trip per
10,000 records and atomic (stored whole or not at all, and only while the
stream exists), and it trims the shards it wrote with ``XTRIM MINID ~`` to the
retention period; a read is ``XRANGE`` flattened for a cheaper reply.

Sequence numbers are the Redis entry ids ``MS-N`` read as the integer
``MS * 1_000_000 + N``: strictly increasing per shard, and ``MS`` is the
arrival time (the Redis server's clock, in milliseconds; it never goes back
within a shard). The put script assigns the ids itself, consecutive within a
call, so its reply is one (MS, N) pair per shard instead of an id per record.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
from loopml.errors import Conflict, IntegrityError, InvalidInput, SourceError

log = logging.getLogger(__name__)

#: records per Lua call: bounds how long one put blocks the Redis server
BATCH = 10_000
_SEQ_SCALE = 1_000_000

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'shards')}
end
local t = redis.call('TIME')
local ms = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], 'shards', ARGV[2], 'retention_s', ARGV[3], 'inc', ARGV[4],
           'created_ms', ms)
redis.call('SADD', KEYS[2], ARGV[1])
return {1, ms}
"""

_DELETE = """
local m = redis.call('HMGET', KEYS[1], 'inc', 'shards')
if not m[1] then return 0 end
local base = ARGV[2] .. m[1] .. ':'
for s = 0, tonumber(m[2]) - 1 do redis.call('DEL', base .. s) end
redis.call('DEL', base .. 'checkpoints', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

# ARGV: inc, shard key base, shard count, then the number of records per shard,
# then (data, partition key) per record, grouped by shard. Ids are given
# explicitly, so one call's records of a shard get consecutive ids MS-N..MS-N+k
# and the reply is just (MS, N) per shard: the client numbers the rest. The last
# id of each shard is kept in the definition hash (field last:SHARD).
_PUT = """
local m = redis.call('HMGET', KEYS[1], 'inc', 'retention_s')
if m[1] ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minid = string.format('%.0f', math.max(now - tonumber(m[2]) * 1000, 0))
local base = ARGV[2]
local nshards = tonumber(ARGV[3])
local j = 4 + nshards
local out = {}
for s = 0, nshards - 1 do
  local count = tonumber(ARGV[4 + s])
  if count > 0 then
    local ms, n = now, 0
    local last = redis.call('HGET', KEYS[1], 'last:' .. s)
    if last then
      local lms, ln = string.match(last, '^(%d+)-(%d+)$')
      lms = tonumber(lms)
      if lms >= now then ms, n = lms, tonumber(ln) + 1 end
    end
    if n + count > 999999 then ms, n = ms + 1, 0 end
    local key = base .. s
    local prefix = string.format('%.0f', ms) .. '-'
    for i = n, n + count - 1 do
      redis.call('XADD', key, prefix .. i, 'd', ARGV[j], 'k', ARGV[j + 1])
      j = j + 2
    end
    redis.call('XTRIM', key, 'MINID', '~', minid)
    redis.call('HSET', KEYS[1], 'last:' .. s, prefix .. (n + count - 1))
    out[#out + 1] = s
    out[#out + 1] = string.format('%.0f', ms)
    out[#out + 1] = n
  end
end
return out
"""

# XRANGE, flattened to (id, data, key) per entry: a third of the reply elements
# of a plain XRANGE for the client to parse. 0 if the stream is not this incarnation.
_GET = """
if redis.call('HGET', KEYS[1], 'inc') ~= ARGV[1] then return 0 end
local entries = redis.call('XRANGE', KEYS[2], ARGV[2], '+', 'COUNT', ARGV[3])
local out = {}
for i = 1, #entries do
  local f = entries[i][2]
  local d, k = '', ''
  for j = 1, #f, 2 do
    if f[j] == 'd' then d = f[j + 1] elseif f[j] == 'k' then k = f[j + 1] end
  end
  out[#out + 1] = entries[i][1]
  out[#out + 1] = d
  out[#out + 1] = k
end
return out
"""

# Sequences are compared as decimal strings: Lua numbers are doubles and
# cannot hold them exactly.
_CHECKPOINT = """
if redis.call('HGET', KEYS[1], 'inc') ~= ARGV[1] then return 0 end
local cur = redis.call('HGET', KEYS[2], ARGV[2])
local new = ARGV[3]
if (not cur) or #cur < #new or (#cur == #new and cur < new) then
  redis.call('HSET', KEYS[2], ARGV[2], new)
end
return 1
"""


def _id_to_seq(entry_id: bytes | str) -> int:
    raw = entry_id.encode() if isinstance(entry_id, str) else entry_id
    ms, n = raw.split(b"-")
    count = int(n)
    if count >= _SEQ_SCALE:  # loopml's writes never make these; another writer's might
        raise IntegrityError(
            f"Redis entry id {raw.decode()} does not fit loopml's sequence numbers (at most "
            f"{_SEQ_SCALE - 1} entries per millisecond); was the stream written by another tool?"
        )
    return int(ms) * _SEQ_SCALE + count


def _resp(args: Sequence[bytes]) -> bytes:
    """A command in the Redis protocol (RESP), packed in one pass.

    redis-py's own packer costs about 2 µs per argument, half the client's time
    for a batch of small records; this is a few times faster.
    """
    return b"*%d\r\n" % len(args) + b"".join([b"$%d\r\n%b\r\n" % (len(a), a) for a in args])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seq_to_id(seq: int) -> str:
    return f"{seq // _SEQ_SCALE}-{seq % _SEQ_SCALE}"


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class RedisStreamBackend:
    """Streams in Redis Streams: ``redis://[:password@]host:port/db[?prefix=loopml:]``.

    Parameters
    ----------
    url
        A redis-py URL (``redis://``, ``rediss://``, ``unix://``), optionally
        with ``prefix=`` in the query: the prefix of every key (default
        ``loopml:``), so several workspaces can share one Redis database.

    Notes
    -----
    Needs the ``redis`` extra (``pip install 'loopml[redis]'``) and Redis 6.2 or
    newer (``XADD ... MINID``). Thread-safe (redis-py's connection pool).
    """

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError as e:  # pragma: no cover - the dev install has it
            raise InvalidInput(
                f"stream_url {_mask(url)!r} needs the Redis client: pip install 'loopml[redis]'"
            ) from e
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for k, v in query if k == "prefix"), "loopml:")
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        self.url = _mask(url)
        self.prefix = prefix
        try:
            self._r = redis.Redis.from_url(
                urlunsplit(parts._replace(query=rest)), socket_connect_timeout=10
            )
        except ValueError as e:
            raise InvalidInput(f"stream_url {self.url!r} is not a Redis URL: {e}") from e
        self._rng = random.Random()
        self._meta_cache: dict[str, tuple[str, int]] = {}
        self._create = self._r.register_script(_CREATE)
        self._delete = self._r.register_script(_DELETE)
        self._put = self._r.register_script(_PUT)
        self._get = self._r.register_script(_GET)
        self._checkpoint = self._r.register_script(_CHECKPOINT)

    # -- plumbing -------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise SourceError(
                f"cannot reach Redis at {self.url}: {e}; check that it runs and stream_url"
            ) from e
        except redis.RedisError as e:
            raise SourceError(f"Redis at {self.url} failed: {e}") from e

    def _evalsha_packed(self, args: list[bytes], script: str) -> Any:
        """Send a packed ``EVALSHA`` on a pooled connection; load the script if Redis lacks it."""
        import redis

        pool = self._r.connection_pool
        for attempt in (0, 1):
            try:
                conn = pool.get_connection()
            except TypeError:  # pragma: no cover - redis-py < 5.3 wants a command name
                conn = pool.get_connection("EVALSHA")
            try:
                conn.send_packed_command([_resp(args)])
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # a restarted or flushed server
                if attempt:
                    raise
                self._r.script_load(script)
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def _registry(self) -> str:
        return f"{self.prefix}streams"

    def _meta_key(self, name: str) -> str:
        return f"{self.prefix}stream:{name}"

    def _base(self, name: str, inc: str) -> str:
        return f"{self.prefix}stream:{name}:{inc}:"

    def _meta(self, name: str) -> dict[str, Any]:
        """The stream's definition, fresh from Redis (NotFound if missing)."""
        check_stream_name(name)
        raw = self._r.hgetall(self._meta_key(name))
        if not raw:
            self._meta_cache.pop(name, None)
            raise stream_not_found(name, f"Redis at {self.url}")
        meta = {_text(k): _text(v) for k, v in raw.items()}
        self._meta_cache[name] = (meta["inc"], int(meta["shards"]))
        return meta

    def _cached(self, name: str, refresh: bool = False) -> tuple[str, int]:
        if refresh or name not in self._meta_cache:
            self._meta(name)
        return self._meta_cache[name]

    def _description(self, name: str, meta: dict[str, Any]) -> StreamDescription:
        return StreamDescription(
            name, int(meta["shards"]), int(meta["retention_s"]), int(meta["created_ms"]), self.url
        )

    # -- registry ---------------------------------------------------------------------
    def create(self, name: str, shards: int, retention_s: int) -> StreamDescription:
        """Create a stream; Conflict if one with the name exists."""
        check_stream_name(name)
        check_shards(shards)
        inc = secrets.token_hex(6)
        with self._errors():
            created, value = self._create(
                keys=[self._meta_key(name), self._registry],
                args=[name, shards, retention_s, inc],
            )
        if not created:
            raise Conflict(
                f"stream {name!r} already exists ({_text(value)} shard(s)); use it, or delete "
                f"it first with `loopml stream delete {name}`"
            )
        self._meta_cache[name] = (inc, shards)
        meta = {"shards": shards, "retention_s": retention_s, "created_ms": value}
        return self._description(name, meta)

    def delete(self, name: str) -> None:
        """Delete a stream, its records and its checkpoints."""
        check_stream_name(name)
        with self._errors():
            done = self._delete(
                keys=[self._meta_key(name), self._registry],
                args=[name, f"{self.prefix}stream:{name}:"],
            )
        self._meta_cache.pop(name, None)
        if not done:
            raise stream_not_found(name, f"Redis at {self.url}")

    def describe(self, name: str, *, stats: bool = False) -> StreamDescription:
        """The stream's definition; with ``stats``, per-shard counts and sequence ranges."""
        with self._errors():
            meta = self._meta(name)
            desc = self._description(name, meta)
            if not stats:
                return desc
            pipe = self._r.pipeline(transaction=True)
            for s in range(desc.shards):
                key = self._base(name, meta["inc"]) + str(s)
                pipe.xlen(key)
                pipe.xrange(key, "-", "+", count=1)
                pipe.xrevrange(key, "+", "-", count=1)
            res = pipe.execute()
        info = []
        for s in range(desc.shards):
            n, first, last = res[3 * s : 3 * s + 3]
            info.append(
                ShardInfo(
                    s,
                    int(n),
                    _id_to_seq(first[0][0]) if first else None,
                    _id_to_seq(last[0][0]) if last else None,
                )
            )
        return StreamDescription(
            desc.name, desc.shards, desc.retention_s, desc.created_ms, desc.backend, info
        )

    def list_streams(self) -> list[StreamDescription]:
        """Every stream under this prefix, by name."""
        with self._errors():
            names = sorted(_text(n) for n in self._r.smembers(self._registry))
            pipe = self._r.pipeline(transaction=False)
            for n in names:
                pipe.hgetall(self._meta_key(n))
            metas = pipe.execute()
        return [
            self._description(n, {_text(k): _text(v) for k, v in m.items()})
            for n, m in zip(names, metas, strict=True)
            if m
        ]

    # -- records --------------------------------------------------------------------
    def put_records(
        self, name: str, records: Sequence[bytes], partition_keys: Sequence[str | None]
    ) -> list[PutResult]:
        """Append records; each call of up to 10,000 records is atomic."""
        if len(records) != len(partition_keys):
            raise InvalidInput(
                f"got {len(records)} records but {len(partition_keys)} partition keys"
            )
        if not records:
            return []
        out: list[PutResult | None] = [None] * len(records)
        with self._errors():
            inc, shards = self._cached(name)
            shard_of = assign_shards(partition_keys, shards, self._rng)
            start = 0
            retried = False
            while start < len(records):
                stop = min(start + BATCH, len(records))
                by_shard: list[list[int]] = [[] for _ in range(shards)]
                for i in range(start, stop):
                    by_shard[shard_of[i]].append(i)
                args: list[bytes] = [
                    b"EVALSHA", self._put.sha.encode(), b"1", self._meta_key(name).encode(),
                    inc.encode(), self._base(name, inc).encode(), b"%d" % shards,
                ]
                args += [b"%d" % len(idx) for idx in by_shard]
                for idx in by_shard:
                    for i in idx:
                        key = partition_keys[i]
                        args += (records[i], b"" if key is None else key.encode())
                reply = self._evalsha_packed(args, _PUT)
                if reply == 0:  # deleted, or deleted and re-created, since we cached it
                    if start > 0 or retried:
                        raise Conflict(
                            f"stream {name!r} was deleted or re-created during this put; "
                            f"{start} record(s) went to the old stream"
                        )
                    retried = True
                    inc, shards = self._cached(name, refresh=True)
                    shard_of = assign_shards(partition_keys, shards, self._rng)
                    continue
                for k in range(0, len(reply), 3):
                    shard = int(reply[k])
                    first = int(reply[k + 1]) * _SEQ_SCALE + int(reply[k + 2])
                    for offset, i in enumerate(by_shard[shard]):
                        out[i] = PutResult(shard, first + offset)
                start = stop
        return out  # type: ignore[return-value]  # every slot is filled

    def get_records(
        self, name: str, shard: int, iterator: int, limit: int
    ) -> tuple[list[Record], int]:
        """Up to ``limit`` records of ``shard`` from sequence ``iterator`` on, and the next iterator."""
        with self._errors():
            for attempt in (0, 1):
                inc, shards = self._cached(name, refresh=attempt == 1)
                check_shard(name, shard, shards)
                base = self._base(name, inc)
                flat = self._get(
                    keys=[self._meta_key(name), base + str(shard)],
                    args=[inc, _seq_to_id(iterator), limit],
                )
                if flat != 0:
                    break
            else:
                self._cached(name, refresh=True)  # raises NotFound if it is gone
                flat = []
        records: list[Record] = []
        append = records.append
        scale = _SEQ_SCALE
        for k in range(0, len(flat), 3):
            seq = _id_to_seq(flat[k])
            key = flat[k + 2]
            append(Record(shard, seq, seq // scale, key.decode() if key else None, flat[k + 1]))
        return records, (records[-1].sequence + 1 if records else iterator)

    def latest_sequence(self, name: str, shard: int) -> int:
        """The sequence of the newest record of ``shard`` (0 if it has none)."""
        with self._errors():
            inc, shards = self._cached(name, refresh=True)
            check_shard(name, shard, shards)
            last = self._r.xrevrange(self._base(name, inc) + str(shard), "+", "-", count=1)
        newest = last[0][0] if last else None
        return 0 if newest is None else _id_to_seq(newest)

    def sequence_at(self, name: str, shard: int, timestamp_ms: int) -> int:
        """An iterator at the first record of ``shard`` with arrival >= ``timestamp_ms``."""
        with self._errors():
            _, shards = self._cached(name, refresh=True)
        check_shard(name, shard, shards)
        return max(timestamp_ms, 0) * _SEQ_SCALE

    # -- checkpoints ----------------------------------------------------------------
    def checkpoint(self, group: str, name: str, shard: int, sequence: int) -> None:
        """Move ``group``'s checkpoint in ``shard`` to ``sequence`` (never backwards)."""
        check_group_name(group)
        with self._errors():
            for attempt in (0, 1):
                inc, shards = self._cached(name, refresh=attempt == 1)
                check_shard(name, shard, shards)
                done = self._checkpoint(
                    keys=[self._meta_key(name), self._base(name, inc) + "checkpoints"],
                    args=[inc, f"{group}:{shard}", str(sequence)],
                )
                if done:
                    return

    def get_checkpoint(self, group: str, name: str, shard: int) -> int | None:
        """``group``'s checkpointed sequence in ``shard``, or ``None`` if it has none."""
        check_group_name(group)
        with self._errors():
            inc, shards = self._cached(name, refresh=True)
            check_shard(name, shard, shards)
            raw = self._r.hget(self._base(name, inc) + "checkpoints", f"{group}:{shard}")
        return None if raw is None else int(raw)

    def delete_checkpoints(self, group: str, name: str) -> None:
        """Forget ``group``'s checkpoints on the stream."""
        check_group_name(group)
        with self._errors():
            inc, shards = self._cached(name, refresh=True)
            self._r.hdel(
                self._base(name, inc) + "checkpoints", *(f"{group}:{s}" for s in range(shards))
            )

    # -- retention ------------------------------------------------------------------
    def trim(self, name: str, now_ms: int | None = None) -> int:
        """Delete records that arrived more than the retention period before ``now_ms``.

        Without ``now_ms`` the Redis server's clock is used (the one that
        stamped the records). Writes also trim, approximately, on every put.
        """
        with self._errors():
            meta = self._meta(name)
            if now_ms is None:
                sec, usec = self._r.time()
                now_ms = int(sec) * 1000 + int(usec) // 1000
            cutoff = max(now_ms - int(meta["retention_s"]) * 1000, 0)
            pipe = self._r.pipeline(transaction=False)
            for s in range(int(meta["shards"])):
                pipe.xtrim(self._base(name, meta["inc"]) + str(s), minid=f"{cutoff}-0")
            removed = int(sum(pipe.execute()))
        if removed:
            log.info("trimmed %d record(s) older than the retention of stream %r", removed, name)
        return removed

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()

    def __repr__(self) -> str:
        return f"RedisStreamBackend({self.url!r})"
