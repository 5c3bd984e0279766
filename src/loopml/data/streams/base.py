"""What every stream backend shares: the record types, the backend protocol and the rules.

A *stream* is a named, sharded, append-only log of records with a retention
period (the Kinesis Data Streams model). Each record gets, per shard, a
strictly increasing integer *sequence number* and an *arrival timestamp*
(milliseconds since the epoch, UTC, never decreasing within a shard). The
shard of a record is the MD5 hash of its partition key modulo the shard count
(:func:`shard_for_key`), stable across processes, machines and Python versions.

Backends implement :class:`StreamBackend` and are chosen by URL with
:func:`open_backend`: ``sqlite:///path/streams.db`` (the embedded durable
log, :mod:`loopml.data.streams.sqlite_backend`) or ``redis://host:port/db``
(Redis Streams, :mod:`loopml.data.streams.redis_backend`). Each backend keeps
its own registry of stream definitions and consumer checkpoints next to the
records, so a stream is usable by anything that has the URL.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Protocol, runtime_checkable

from loopml.errors import InvalidInput, NotFound

#: the default size limit of one record's data, in bytes (1 MiB, as in Kinesis)
MAX_RECORD_BYTES = 1 << 20
#: the longest partition key accepted, in characters
MAX_PARTITION_KEY = 256
#: the most shards a stream may have
MAX_SHARDS = 1024
#: the most records one read (``get`` or one consumer poll) returns
MAX_LIMIT = 100_000

#: iterator types of :meth:`loopml.data.streams.Stream.get`, as in Kinesis GetShardIterator
TRIM_HORIZON = "trim-horizon"
LATEST = "latest"
AT_SEQUENCE = "at-sequence"
AFTER_SEQUENCE = "after-sequence"
AT_TIMESTAMP = "at-timestamp"
ITERATOR_TYPES = (TRIM_HORIZON, LATEST, AT_SEQUENCE, AFTER_SEQUENCE, AT_TIMESTAMP)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DURATION = re.compile(r"(\d+)\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RecordTooLarge(InvalidInput):
    """A record is over the stream's size limit (HTTP 413)."""

    http_status = 413
    code = "RecordTooLarge"


# -- values ---------------------------------------------------------------------
class PutResult(NamedTuple):
    """Where one record went: its shard and its sequence number in that shard."""

    shard: int
    sequence: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the sequence is a string (Redis sequences exceed JavaScript's safe integers)."""
        return {"shard": self.shard, "sequence": str(self.sequence)}


@dataclass(slots=True)
class Record:
    """One record read from a stream.

    Attributes
    ----------
    shard
        The shard it was read from.
    sequence
        Its sequence number: strictly increasing within the shard.
    arrival_ms
        When the backend accepted it, in milliseconds since the epoch (UTC);
        never decreasing within a shard. :attr:`arrival` gives a datetime.
    partition_key
        The partition key it was put with (``None`` if it had none).
    data
        The record's bytes: a dict put as JSON reads back as its JSON bytes
        (see :meth:`json`), raw bytes read back unchanged.
    """

    shard: int
    sequence: int
    arrival_ms: int
    partition_key: str | None
    data: bytes

    @property
    def arrival(self) -> datetime:
        """The arrival timestamp as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.arrival_ms / 1000, tz=timezone.utc)

    def json(self) -> Any:
        """Decode :attr:`data` as JSON (raises InvalidInput if it is not JSON)."""
        import orjson

        try:
            return orjson.loads(self.data)
        except orjson.JSONDecodeError as e:
            raise InvalidInput(
                f"record {self.shard}/{self.sequence} is not JSON ({e}); read .data for the bytes"
            ) from e

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``data`` holds the decoded JSON, or ``data_base64`` the raw bytes."""
        import base64

        import orjson

        out: dict[str, Any] = {
            "shard": self.shard,
            "sequence": str(self.sequence),
            "arrival": self.arrival.isoformat(timespec="milliseconds"),
            "partition_key": self.partition_key,
        }
        try:
            out["data"] = orjson.loads(self.data)
        except orjson.JSONDecodeError:
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        return out


@dataclass(frozen=True)
class ShardInfo:
    """Statistics of one shard: how many records it holds and their sequence range."""

    shard: int
    records: int
    first_sequence: int | None
    last_sequence: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (sequences as strings)."""
        return {
            "shard": self.shard,
            "records": self.records,
            "first_sequence": None if self.first_sequence is None else str(self.first_sequence),
            "last_sequence": None if self.last_sequence is None else str(self.last_sequence),
        }


@dataclass(frozen=True)
class StreamDescription:
    """A stream's definition, and (when asked for) its per-shard statistics."""

    name: str
    shards: int
    retention_s: int
    #: when the stream was created, in ms since the epoch: a stream deleted and
    #: re-created under the same name is another stream, with another value
    created_ms: int
    backend: str
    shard_info: list[ShardInfo] | None = field(default=None)

    @property
    def created_at(self) -> datetime:
        """When the stream was created (UTC)."""
        return datetime.fromtimestamp(self.created_ms / 1000, tz=timezone.utc)

    @property
    def records(self) -> int | None:
        """Records held in all shards (``None`` when described without statistics)."""
        return None if self.shard_info is None else sum(s.records for s in self.shard_info)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "name": self.name,
            "shards": self.shards,
            "retention": format_retention(self.retention_s),
            "retention_s": self.retention_s,
            "created_at": self.created_at.isoformat(),
            "backend": self.backend,
        }
        if self.shard_info is not None:
            out["records"] = self.records
            out["shard_info"] = [s.to_dict() for s in self.shard_info]
        return out


# -- the protocol -----------------------------------------------------------------
@runtime_checkable
class StreamBackend(Protocol):
    """Where stream records, definitions and checkpoints live.

    Every method names the stream; a missing stream raises
    :class:`~loopml.errors.NotFound`, a shard out of range
    :class:`~loopml.errors.InvalidInput`. Positions are sequence numbers:
    ``get_records`` takes an *iterator* that is the smallest sequence to
    return, and gives back the iterator to continue from.
    """

    #: the backend URL with any password masked
    url: str

    def create(self, name: str, shards: int, retention_s: int) -> StreamDescription:
        """Create a stream (Conflict if the name is taken)."""
        ...

    def delete(self, name: str) -> None:
        """Delete a stream with its records and checkpoints."""
        ...

    def describe(self, name: str, *, stats: bool = False) -> StreamDescription:
        """A stream's definition; with ``stats``, also per-shard record counts."""
        ...

    def list_streams(self) -> list[StreamDescription]:
        """Every stream, by name."""
        ...

    def put_records(
        self, name: str, records: Sequence[bytes], partition_keys: Sequence[str | None]
    ) -> list[PutResult]:
        """Append records (a ``None`` key picks a random shard); all or nothing per call."""
        ...

    def get_records(
        self, name: str, shard: int, iterator: int, limit: int
    ) -> tuple[list[Record], int]:
        """Up to ``limit`` records of ``shard`` with sequence >= ``iterator``, and the next iterator."""
        ...

    def latest_sequence(self, name: str, shard: int) -> int:
        """The last sequence number given out in ``shard`` (0 if none yet)."""
        ...

    def sequence_at(self, name: str, shard: int, timestamp_ms: int) -> int:
        """An iterator at the first record of ``shard`` that arrived at or after ``timestamp_ms``."""
        ...

    def checkpoint(self, group: str, name: str, shard: int, sequence: int) -> None:
        """Record that ``group`` has processed ``shard`` through ``sequence``; never moves back."""
        ...

    def get_checkpoint(self, group: str, name: str, shard: int) -> int | None:
        """The checkpointed sequence of ``group`` in ``shard``, or ``None``."""
        ...

    def delete_checkpoints(self, group: str, name: str) -> None:
        """Forget every checkpoint of ``group`` on the stream."""
        ...

    def trim(self, name: str, now_ms: int | None = None) -> int:
        """Drop records older than the retention period; return how many were dropped."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_backend(url: str) -> StreamBackend:
    """Open the stream backend for ``url`` (``sqlite:///...`` or ``redis://...``).

    Parameters
    ----------
    url
        ``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` (add
        ``?synchronous=full`` to survive power loss, not only a process kill),
        or ``redis://[:password@]host:port/db`` (also ``rediss://`` and
        ``unix://``; add ``?prefix=NAME:`` to share one Redis database between
        workspaces).

    Returns
    -------
    StreamBackend
        The backend; close it with ``close()``.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from loopml.data.streams.sqlite_backend import SQLiteStreamBackend

        return SQLiteStreamBackend(url)
    if scheme in ("redis", "rediss", "unix"):
        from loopml.data.streams.redis_backend import RedisStreamBackend

        return RedisStreamBackend(url)
    raise InvalidInput(
        f"stream_url {url!r} is not supported; use sqlite:///path/streams.db or "
        "redis://host:port/db (setting stream_url in loopml.toml or LOOPML_STREAM_URL)"
    )


# -- rules shared by the backends ---------------------------------------------------
def check_stream_name(name: str) -> str:
    """Return ``name`` if it is a valid stream name, else raise InvalidInput."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"stream name {name!r} is not allowed; use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (at most 128 characters)"
        )
    return name


def check_group_name(group: str) -> str:
    """Return ``group`` if it is a valid consumer group name, else raise InvalidInput."""
    if not isinstance(group, str) or not _NAME.match(group):
        raise InvalidInput(
            f"consumer group {group!r} is not allowed; use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (at most 128 characters)"
        )
    return group


def check_shards(shards: int) -> int:
    """Return ``shards`` if it is a valid shard count, else raise InvalidInput."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InvalidInput(f"shards must be a whole number from 1 to {MAX_SHARDS}, not {shards!r}")
    return shards


def check_shard(name: str, shard: int, shards: int) -> int:
    """Return ``shard`` if the stream has it, else raise InvalidInput naming the valid range."""
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shards:
        valid = "0" if shards == 1 else f"0 to {shards - 1}"
        raise InvalidInput(f"stream {name!r} has no shard {shard!r}; its shards are {valid}")
    return shard


def check_limit(limit: int) -> int:
    """Return ``limit`` if it is a valid read size, else raise InvalidInput."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


def check_partition_key(key: object, index: int | None = None) -> str:
    """Return ``key`` if it is a valid partition key, else raise InvalidInput."""
    where = "" if index is None else f" of record {index}"
    if not isinstance(key, str):
        raise InvalidInput(f"the partition key{where} must be a string, not {type(key).__name__}")
    if not 1 <= len(key) <= MAX_PARTITION_KEY:
        raise InvalidInput(
            f"the partition key{where} must have 1 to {MAX_PARTITION_KEY} characters, "
            f"not {len(key)}"
        )
    return key


def shard_for_key(key: str, shards: int) -> int:
    """The shard of a partition key: its MD5 hash (as in Kinesis) modulo ``shards``.

    The hash is the first 8 bytes of ``md5(key.encode("utf-8"))`` read as a
    big-endian unsigned integer: the same on every machine and Python, and
    well spread even for keys such as ``s-1``, ``s-2``, ... (which a CRC
    is not).

    Examples
    --------
    >>> shard_for_key("sensor-7", 4) == shard_for_key("sensor-7", 4)
    True
    """
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "big") % shards


def assign_shards(keys: Sequence[str | None], shards: int, rng: random.Random) -> list[int]:
    """The shard of each record: by partition key, or at random for a ``None`` key."""
    if shards == 1:
        return [0] * len(keys)
    seen: dict[str, int] = {}  # keys repeat (one per sensor, user, ...): hash each once
    out: list[int] = []
    append = out.append
    for k in keys:
        if k is None:
            append(rng.randrange(shards))
            continue
        shard = seen.get(k)
        if shard is None:
            shard = seen[k] = shard_for_key(k, shards)
        append(shard)
    return out


def parse_retention(value: str | int | timedelta) -> int:
    """Parse a retention period into whole seconds.

    Accepts seconds (``3600``), a :class:`~datetime.timedelta`, or a string of
    numbers with units ``s``, ``m``, ``h``, ``d``, ``w`` (``"24h"``, ``"7d"``,
    ``"1d12h"``).

    Examples
    --------
    >>> parse_retention("1d12h")
    129600
    """
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        pos, seconds = 0, 0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            seconds += int(m.group(1)) * _UNIT_S[m.group(2)]
            pos = m.end()
            while pos < len(text) and text[pos] == " ":
                pos += 1
        if pos != len(text):
            raise InvalidInput(
                f"retention {value!r} is not a duration; use e.g. '24h', '7d', '90m' or seconds"
            )
    else:
        raise InvalidInput(
            f"retention {value!r} is not a duration; use e.g. '24h', '7d', '90m' or seconds"
        )
    if seconds < 1:
        raise InvalidInput(f"retention must be at least one second, not {value!r}")
    return seconds


def format_retention(seconds: int) -> str:
    """The shortest of ``"7d"``, ``"24h"``, ``"90m"``, ``"45s"`` that is exact.

    Examples
    --------
    >>> format_retention(86400), format_retention(5400)
    ('1d', '90m')
    """
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def normalise_iterator_type(value: str) -> str:
    """Map ``"TRIM_HORIZON"``/``"trim-horizon"`` to the canonical name; reject unknown ones."""
    norm = value.strip().lower().replace("_", "-") if isinstance(value, str) else value
    if norm not in ITERATOR_TYPES:
        raise InvalidInput(
            f"unknown iterator type {value!r}; use one of {', '.join(ITERATOR_TYPES)}"
        )
    return str(norm)


def parse_sequence(value: int | str) -> int:
    """A sequence number from an int or a decimal string (as JSON gives them)."""
    if isinstance(value, bool):
        raise InvalidInput(f"sequence number {value!r} is not a whole number")
    if isinstance(value, int):
        seq = value
    elif isinstance(value, str) and value.strip().isdigit():
        seq = int(value.strip())
    else:
        raise InvalidInput(f"sequence number {value!r} is not a whole number")
    if seq < 0:
        raise InvalidInput(f"sequence number {value!r} must not be negative")
    return seq


def to_epoch_ms(value: datetime | str | float | int) -> int:
    """Milliseconds since the epoch from a datetime (naive = UTC), an ISO string or epoch seconds."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError as e:
            raise InvalidInput(
                f"timestamp {value!r} is not an ISO 8601 date-time; use e.g. 2026-05-01T12:00:00Z"
            ) from e
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1000)
    raise InvalidInput(f"timestamp {value!r} must be a datetime, an ISO string or epoch seconds")


def stream_not_found(name: str, where: str) -> NotFound:
    """The error for a missing stream, with the command that fixes it."""
    return NotFound(f"no stream named {name!r} in {where}; create it with `loopml stream create {name}`")


__all__ = [
    "AFTER_SEQUENCE",
    "AT_SEQUENCE",
    "AT_TIMESTAMP",
    "ITERATOR_TYPES",
    "LATEST",
    "MAX_LIMIT",
    "MAX_RECORD_BYTES",
    "TRIM_HORIZON",
    "PutResult",
    "Record",
    "RecordTooLarge",
    "ShardInfo",
    "StreamBackend",
    "StreamDescription",
    "open_backend",
    "parse_retention",
    "shard_for_key",
]
