"""The :class:`Stream` facade: put and get records, whatever the backend.

Records are dicts (stored as their JSON bytes, via orjson) or raw bytes. A
batch is checked whole before anything is written: a record that is not
serialisable, or over the size limit, fails the call and nothing of the batch
is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from loopml.data.streams.base import (
    AFTER_SEQUENCE,
    AT_SEQUENCE,
    AT_TIMESTAMP,
    LATEST,
    MAX_PARTITION_KEY,
    MAX_RECORD_BYTES,
    TRIM_HORIZON,
    PutResult,
    Record,
    RecordTooLarge,
    StreamBackend,
    StreamDescription,
    check_limit,
    check_partition_key,
    check_stream_name,
    normalise_iterator_type,
    open_backend,
    parse_retention,
    parse_sequence,
    to_epoch_ms,
)
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.data.streams.consumer import Consumer
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: what a record may be: a JSON-serialisable dict, or raw bytes
RecordData = Mapping[str, Any] | bytes | bytearray | memoryview

#: event types emitted into the workspace event log
STREAM_CREATED = "stream.created"
STREAM_DELETED = "stream.deleted"

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class GetRecordsResult:
    """Records read from one shard, and where to continue.

    Attributes
    ----------
    records
        The records, in sequence order.
    next_sequence
        Pass it as ``sequence`` with ``iterator_type="at-sequence"`` to read on.
    """

    records: list[Record]
    next_sequence: int

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "records": [r.to_dict() for r in self.records],
            "next_sequence": str(self.next_sequence),
        }


def encode_records(
    records: Sequence[RecordData], max_record_bytes: int = MAX_RECORD_BYTES
) -> list[bytes]:
    """Serialise records for a put, checking each; raise before anything is written.

    Parameters
    ----------
    records
        Dicts (stored as JSON) or bytes (stored as given).
    max_record_bytes
        Size limit of one record.

    Returns
    -------
    list of bytes
        One payload per record.
    """
    out: list[bytes] = []
    dumps = orjson.dumps
    for i, rec in enumerate(records):
        if isinstance(rec, (dict, Mapping)):
            try:
                data = dumps(rec if isinstance(rec, dict) else dict(rec), option=_JSON_OPTS)
            except TypeError as e:  # orjson.JSONEncodeError is a TypeError
                raise InvalidInput(
                    f"record {i} is not JSON-serialisable ({e}); nothing from this batch "
                    "was written"
                ) from e
        elif isinstance(rec, (bytes, bytearray, memoryview)):
            data = bytes(rec)
        else:
            raise InvalidInput(
                f"record {i} is a {type(rec).__name__}; a record must be a dict (stored as "
                "JSON) or bytes; nothing from this batch was written"
            )
        if len(data) > max_record_bytes:
            raise RecordTooLarge(
                f"record {i} is {len(data):,} bytes, over the limit of {max_record_bytes:,} "
                "bytes per record; nothing from this batch was written"
            )
        out.append(data)
    return out


def resolve_partition_keys(
    records: Sequence[RecordData],
    partition_keys: Sequence[str | None] | None = None,
    *,
    partition_key: str | None = None,
    key_field: str | None = None,
) -> list[str | None]:
    """One partition key per record: given per record, one for all, from a field, or none."""
    given = sum(x is not None for x in (partition_keys, partition_key, key_field))
    if given > 1:
        raise InvalidInput("give only one of partition_keys, partition_key and key_field")
    n = len(records)
    if partition_key is not None:
        return [check_partition_key(partition_key)] * n
    if partition_keys is not None:
        if isinstance(partition_keys, str):
            raise InvalidInput("partition_keys must be a list; use partition_key for one key")
        if len(partition_keys) != n:
            raise InvalidInput(
                f"got {n} records but {len(partition_keys)} partition keys; give one per record"
            )
        return [None if k is None else check_partition_key(k, i) for i, k in enumerate(partition_keys)]
    if key_field is not None:
        keys: list[str | None] = []
        append = keys.append
        for i, rec in enumerate(records):
            value = rec.get(key_field) if isinstance(rec, (dict, Mapping)) else None
            if value is None:
                raise InvalidInput(
                    f"record {i} has no field {key_field!r} to take its partition key from; "
                    "nothing from this batch was written"
                )
            if type(value) is not str:
                value = str(value)
            if not 0 < len(value) <= MAX_PARTITION_KEY:
                check_partition_key(value, i)  # raises with the reason
            append(value)
        return keys
    return [None] * n


class Stream:
    """A named stream: put records in, get them out by shard and position.

    Open one with :func:`open_stream` or :func:`create_stream`; use it as a
    context manager (or call :meth:`close`) to release the backend.

    Parameters
    ----------
    backend
        Where the stream lives (see :func:`loopml.data.streams.open_backend`).
    name
        The stream's name.
    max_record_bytes
        Size limit of one record (default 1 MiB).
    owns_backend
        Close ``backend`` when this stream is closed.

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.data.streams import create_stream
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> with create_stream(ws, "clicks", shards=2) as s:
    ...     r = s.put({"user": 7, "page": "/"}, partition_key="user-7")
    ...     [rec.json() for rec in s.get(r.shard)]
    [{'user': 7, 'page': '/'}]
    >>> ws.close()
    """

    def __init__(
        self,
        backend: StreamBackend,
        name: str,
        *,
        max_record_bytes: int = MAX_RECORD_BYTES,
        owns_backend: bool = False,
    ) -> None:
        self.backend = backend
        self.name = check_stream_name(name)
        self.max_record_bytes = max_record_bytes
        self._owns_backend = owns_backend

    # -- writing --------------------------------------------------------------------
    def put(self, record: RecordData, partition_key: str | None = None) -> PutResult:
        """Append one record.

        Parameters
        ----------
        record
            A JSON-serialisable dict, or bytes.
        partition_key
            Picks the shard (``md5(key) % shards``); ``None`` picks one at random.

        Returns
        -------
        PutResult
            The record's shard and sequence number.
        """
        keys = None if partition_key is None else [partition_key]
        return self.put_many([record], keys)[0]

    def put_many(
        self,
        records: Sequence[RecordData],
        partition_keys: Sequence[str | None] | None = None,
        *,
        partition_key: str | None = None,
        key_field: str | None = None,
    ) -> list[PutResult]:
        """Append a batch of records: checked whole first, then written in one go.

        Parameters
        ----------
        records
            JSON-serialisable dicts and/or bytes.
        partition_keys
            One key per record (``None`` entries pick a random shard).
        partition_key
            One key for every record (all go to one shard, in order).
        key_field
            Take each record's key from this field (its value as a string).

        Returns
        -------
        list of PutResult
            Shard and sequence number per record, in the order given.

        Raises
        ------
        InvalidInput
            A record is not a dict or bytes, or not serialisable; a key is bad.
        RecordTooLarge
            A record is over ``max_record_bytes`` (the message names its index).
        NotFound
            The stream does not exist.
        """
        if isinstance(records, (dict, bytes, bytearray, memoryview)):
            raise InvalidInput("put_many takes a list of records; use put() for one record")
        keys = resolve_partition_keys(
            records, partition_keys, partition_key=partition_key, key_field=key_field
        )
        payloads = encode_records(records, self.max_record_bytes)
        return self.backend.put_records(self.name, payloads, keys)

    # -- reading --------------------------------------------------------------------
    def position(
        self,
        shard: int,
        iterator_type: str = TRIM_HORIZON,
        sequence: int | str | None = None,
        timestamp: datetime | str | float | None = None,
    ) -> int:
        """The sequence number an iterator of ``iterator_type`` starts reading at.

        Parameters
        ----------
        shard
            The shard.
        iterator_type
            ``trim-horizon`` (the oldest record kept), ``latest`` (only records
            put from now on), ``at-sequence`` / ``after-sequence`` (with
            ``sequence``), or ``at-timestamp`` (with ``timestamp``: the first
            record that arrived at or after it).
        sequence
            For ``at-sequence`` and ``after-sequence``.
        timestamp
            For ``at-timestamp``: a datetime (naive means UTC), an ISO 8601
            string, or seconds since the epoch.
        """
        kind = normalise_iterator_type(iterator_type)
        needs_seq = kind in (AT_SEQUENCE, AFTER_SEQUENCE)
        if needs_seq and sequence is None:
            raise InvalidInput(f"iterator type {kind!r} needs a sequence number")
        if not needs_seq and sequence is not None:
            raise InvalidInput(
                f"a sequence number goes with at-sequence or after-sequence, not {kind!r}"
            )
        if kind == AT_TIMESTAMP and timestamp is None:
            raise InvalidInput("iterator type 'at-timestamp' needs a timestamp")
        if kind != AT_TIMESTAMP and timestamp is not None:
            raise InvalidInput(f"a timestamp goes with at-timestamp, not {kind!r}")
        # the read itself checks the stream and the shard
        if kind == TRIM_HORIZON:
            return 0
        if kind == LATEST:
            return self.backend.latest_sequence(self.name, shard) + 1
        if kind == AT_TIMESTAMP:
            assert timestamp is not None
            return self.backend.sequence_at(self.name, shard, to_epoch_ms(timestamp))
        assert sequence is not None
        seq = parse_sequence(sequence)
        return seq if kind == AT_SEQUENCE else seq + 1

    def get(
        self,
        shard: int = 0,
        iterator_type: str = TRIM_HORIZON,
        sequence: int | str | None = None,
        timestamp: datetime | str | float | None = None,
        limit: int = 1000,
    ) -> GetRecordsResult:
        """Read up to ``limit`` records of one shard from an iterator position.

        Parameters are those of :meth:`position`, plus ``limit`` (1 to
        100,000). Continue with ``iterator_type="at-sequence"`` and
        ``sequence=result.next_sequence``.

        Returns
        -------
        GetRecordsResult
            The records (in sequence order) and ``next_sequence``.
        """
        check_limit(limit)
        start = self.position(shard, iterator_type, sequence, timestamp)
        records, nxt = self.backend.get_records(self.name, shard, start, limit)
        return GetRecordsResult(records, nxt)

    # -- management -------------------------------------------------------------------
    def describe(self, *, stats: bool = True) -> StreamDescription:
        """The stream's definition and (with ``stats``) its per-shard record counts."""
        return self.backend.describe(self.name, stats=stats)

    @property
    def shards(self) -> int:
        """How many shards the stream has."""
        return self.backend.describe(self.name).shards

    def trim(self) -> int:
        """Drop records older than the retention period now; return how many."""
        return self.backend.trim(self.name)

    def delete(self) -> None:
        """Delete the stream with its records and consumer checkpoints."""
        self.backend.delete(self.name)

    def consumer(self, group: str, *, start: str = TRIM_HORIZON) -> Consumer:
        """A :class:`~loopml.data.streams.Consumer` of this stream for ``group``."""
        from loopml.data.streams.consumer import Consumer

        return Consumer(None, self, group, start=start)

    # -- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        """Release the backend if this stream opened it."""
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Stream({self.name!r}, backend={self.backend!r})"


# -- workspace-level functions ----------------------------------------------------------
def _backend(ws: Workspace) -> StreamBackend:
    return open_backend(ws.settings.stream_url)


def create_stream(
    ws: Workspace,
    name: str,
    shards: int = 1,
    retention: str | int | timedelta = "24h",
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Stream:
    """Create a stream in the workspace's stream backend and return it.

    Parameters
    ----------
    ws
        The workspace (its ``stream_url`` setting picks the backend).
    name
        Letters, digits, ``_``, ``-``, ``.``; at most 128 characters.
    shards
        Number of shards (1 to 1024): records with one partition key keep
        their order within a shard; more shards let more consumers share work.
    retention
        How long records are kept: ``"24h"``, ``"7d"``, seconds, or a timedelta.
    max_record_bytes
        Size limit of one record for the returned handle.

    Raises
    ------
    Conflict
        A stream with this name exists.
    """
    from loopml.store.lineage import EntityRef

    check_stream_name(name)
    retention_s = parse_retention(retention)
    backend = _backend(ws)
    try:
        desc = backend.create(name, shards, retention_s)
        ws.events.emit(
            STREAM_CREATED,
            EntityRef("stream", name),
            {"shards": desc.shards, "retention_s": desc.retention_s, "backend": backend.url},
        )
    except BaseException:
        backend.close()
        raise
    return Stream(backend, name, max_record_bytes=max_record_bytes, owns_backend=True)


def open_stream(ws: Workspace, name: str, *, max_record_bytes: int = MAX_RECORD_BYTES) -> Stream:
    """Open an existing stream of the workspace.

    Raises
    ------
    NotFound
        No stream has this name (the message says how to create it).
    """
    backend = _backend(ws)
    try:
        backend.describe(name)
    except BaseException:
        backend.close()
        raise
    return Stream(backend, name, max_record_bytes=max_record_bytes, owns_backend=True)


def list_streams(ws: Workspace, *, stats: bool = False) -> list[StreamDescription]:
    """Every stream of the workspace, by name (with ``stats``, with record counts)."""
    backend = _backend(ws)
    try:
        found = backend.list_streams()
        if stats:
            found = [backend.describe(d.name, stats=True) for d in found]
        return found
    finally:
        backend.close()


def delete_stream(ws: Workspace, name: str) -> None:
    """Delete a stream of the workspace, with its records and checkpoints."""
    from loopml.store.lineage import EntityRef

    backend = _backend(ws)
    try:
        backend.delete(name)
        ws.events.emit(STREAM_DELETED, EntityRef("stream", name), {"backend": backend.url})
    finally:
        backend.close()
