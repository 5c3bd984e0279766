"""Consumers: read a stream as a named group, checkpoint only when told to.

A :class:`Consumer` of group ``G`` reads each shard from just after ``G``'s
last checkpoint. :meth:`Consumer.poll` moves only the consumer's in-memory
position; the stored checkpoint moves when :meth:`Consumer.commit` is called,
so an application commits *after* its own side effects are durable. A
consumer that dies between its work and its commit re-reads those records on
restart: delivery is at-least-once, and in order within each shard.

For exactly-once output, store the batch's :class:`Checkpoint` atomically with
the output (e.g. in the same metadata transaction), then :meth:`commit` it;
on restart, commit the checkpoint found with the last output before polling.
Checkpoints never move backwards, so that extra commit is always safe.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopml.data.streams.base import (
    LATEST,
    TRIM_HORIZON,
    Record,
    check_group_name,
    check_limit,
    check_shard,
    normalise_iterator_type,
    parse_sequence,
)
from loopml.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.data.streams.stream import Stream
    from loopml.workspace import Workspace

_POLL_INTERVAL_S = 0.05
_MAX_POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Checkpoint:
    """Consumer positions: per shard, the last sequence number processed.

    A token to pass to :meth:`Consumer.commit`. It round-trips through JSON
    (:meth:`to_dict` / :meth:`from_dict`), so it can be stored with the output
    it describes.

    Examples
    --------
    >>> cp = Checkpoint("clicks", {0: 41, 1: 7}, created_ms=1767225600000)
    >>> Checkpoint.from_dict(cp.to_dict()) == cp
    True
    """

    stream: str
    positions: Mapping[int, int] = field(default_factory=dict)
    #: ``created_ms`` of the stream the positions belong to (see
    #: :class:`~loopml.data.streams.StreamDescription`); ``None`` skips the check
    created_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (sequence numbers as strings)."""
        return {
            "stream": self.stream,
            "created_ms": self.created_ms,
            "positions": {str(s): str(q) for s, q in sorted(self.positions.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Read the form :meth:`to_dict` writes."""
        try:
            positions = {int(s): parse_sequence(q) for s, q in data["positions"].items()}
            created = data.get("created_ms")
            return cls(str(data["stream"]), positions, None if created is None else int(created))
        except (KeyError, TypeError, ValueError, AttributeError, InvalidInput) as e:
            raise InvalidInput(f"not a stream checkpoint: {dict(data)!r}") from e

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Checkpoint):
            return NotImplemented
        return (self.stream, self.created_ms, dict(self.positions)) == (
            other.stream, other.created_ms, dict(other.positions)
        )

    def __hash__(self) -> int:
        return hash((self.stream, self.created_ms, tuple(sorted(self.positions.items()))))


@dataclass(frozen=True)
class Batch:
    """The records of one :meth:`Consumer.poll`, and the checkpoint that covers them.

    Attributes
    ----------
    records
        Records in order within each shard (shards one after another).
    checkpoint
        Positions after this batch (and every earlier poll of the consumer):
        commit it once the batch's effects are durable.
    """

    records: list[Record]
    checkpoint: Checkpoint

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]

    def to_arrow(self) -> pa.Table:
        """The records as an Arrow table.

        Columns: ``shard`` (int32), ``sequence`` (int64), ``arrival``
        (timestamp[ms, UTC]), ``partition_key`` (string) and ``data`` (binary).
        """
        import pyarrow as pa

        recs = self.records
        return pa.table(
            {
                "shard": pa.array([r.shard for r in recs], pa.int32()),
                "sequence": pa.array([r.sequence for r in recs], pa.int64()),
                "arrival": pa.array([r.arrival_ms for r in recs], pa.int64()).cast(
                    pa.timestamp("ms", tz="UTC")
                ),
                "partition_key": pa.array([r.partition_key for r in recs], pa.string()),
                "data": pa.array([r.data for r in recs], pa.binary()),
            }
        )


class Consumer:
    """Reads a stream as consumer group ``group``, resuming after its checkpoints.

    Parameters
    ----------
    ws
        The workspace (may be ``None`` when ``stream`` is an open :class:`Stream`).
    stream
        The stream's name, or an open :class:`~loopml.data.streams.Stream`.
    group
        The consumer group (one per application, e.g. ``"sink-sensors"``);
        checkpoints are kept per group and shard.
    start
        Where to begin in shards the group has no checkpoint for:
        ``"trim-horizon"`` (the oldest record kept) or ``"latest"``.
    shards
        Read only these shards (to split a stream between workers of one
        group); default all.

    Notes
    -----
    Groups do not lease shards: run one consumer per group and shard at a time.

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.data.streams import Consumer, create_stream
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> with create_stream(ws, "readings") as s:
    ...     s.put_many([{"t": 20.5}, {"t": 21.0}])[-1].sequence
    2
    >>> with Consumer(ws, "readings", "sink") as c:
    ...     batch = c.poll(limit=10)
    ...     # ... write the records somewhere durable, then:
    ...     c.commit(batch.checkpoint).positions
    ...     [r.json()["t"] for r in batch]
    {0: 2}
    [20.5, 21.0]
    >>> ws.close()
    """

    def __init__(
        self,
        ws: Workspace | None,
        stream: str | Stream,
        group: str,
        *,
        start: str = TRIM_HORIZON,
        shards: Sequence[int] | None = None,
    ) -> None:
        from loopml.data.streams.stream import Stream, open_stream

        self.group = check_group_name(group)
        self.start = normalise_iterator_type(start)
        if self.start not in (TRIM_HORIZON, LATEST):
            raise InvalidInput(f"start must be 'trim-horizon' or 'latest', not {start!r}")
        if isinstance(stream, Stream):
            self.stream = stream
            self._owns_stream = False
        else:
            if ws is None:
                raise InvalidInput("give a workspace to open the stream by name")
            self.stream = open_stream(ws, stream)
            self._owns_stream = True
        try:
            desc = self.stream.backend.describe(self.stream.name)
            count = desc.shards
            self._created_ms = desc.created_ms
            self.shards = (
                list(range(count))
                if shards is None
                else [check_shard(self.stream.name, s, count) for s in shards]
            )
            self._committed: dict[int, int] = {}
            self._read: dict[int, int] = {}
            self._next: dict[int, int] = {}
            self._start: dict[int, int] = {}
            self._turn = 0
            self._load()
        except BaseException:
            self.close()
            raise

    @property
    def name(self) -> str:
        """The stream's name."""
        return self.stream.name

    def _load(self, *, resolve_start: bool = False) -> None:
        backend = self.stream.backend
        self._committed.clear()
        for s in self.shards:
            cp = backend.get_checkpoint(self.group, self.name, s)
            if cp is not None:
                self._committed[s] = cp
            elif resolve_start or s not in self._start:
                # resolved once, so a rewind returns to where this consumer began
                self._start[s] = self.stream.position(s, self.start)
        self._read = dict(self._committed)
        self._next = {
            s: self._committed[s] + 1 if s in self._committed else self._start[s]
            for s in self.shards
        }

    # -- reading --------------------------------------------------------------------
    def poll(self, limit: int = 1000, wait: float = 0.0) -> Batch:
        """Read up to ``limit`` records after this consumer's position, across its shards.

        Parameters
        ----------
        limit
            Most records to return (1 to 100,000).
        wait
            Seconds to wait for records when none are there yet (0: return at once).

        Returns
        -------
        Batch
            The records and the :class:`Checkpoint` to commit once they are handled.
        """
        check_limit(limit)
        deadline = time.monotonic() + max(wait, 0.0)
        pause = _POLL_INTERVAL_S
        while True:
            records = self._read_once(limit)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return Batch(records, self.position)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, _MAX_POLL_INTERVAL_S)

    def _read_once(self, limit: int) -> list[Record]:
        # Start at a different shard each poll, so a busy shard cannot starve the others.
        n = len(self.shards)
        order = [self.shards[(self._turn + i) % n] for i in range(n)]
        self._turn = (self._turn + 1) % n
        out: list[Record] = []
        backend = self.stream.backend
        for s in order:
            want = limit - len(out)
            if want <= 0:
                break
            records, nxt = backend.get_records(self.name, s, self._next[s], want)
            self._next[s] = nxt
            if records:
                self._read[s] = records[-1].sequence
                out.extend(records)
        return out

    # -- checkpoints ----------------------------------------------------------------
    @property
    def position(self) -> Checkpoint:
        """Where this consumer has read to: the checkpoint :meth:`commit` stores by default."""
        return Checkpoint(self.name, dict(self._read), self._created_ms)

    @property
    def committed(self) -> Checkpoint:
        """The group's stored checkpoint, as this consumer last read or wrote it."""
        return Checkpoint(self.name, dict(self._committed), self._created_ms)

    def commit(self, checkpoint: Checkpoint | None = None) -> Checkpoint:
        """Store a checkpoint for the group: after a restart, reading resumes after it.

        Parameters
        ----------
        checkpoint
            A :attr:`Batch.checkpoint` (commit an earlier batch while later ones
            are still being handled), or one stored with your output; default:
            everything polled so far. Positions never move backwards: an older
            checkpoint leaves newer ones in place. A position ahead of this
            consumer moves the consumer forward too.

        Returns
        -------
        Checkpoint
            The group's checkpoint afterwards.
        """
        cp = self.position if checkpoint is None else checkpoint
        if cp.stream != self.name:
            raise InvalidInput(
                f"this checkpoint is of stream {cp.stream!r}, not {self.name!r}"
            )
        if cp.created_ms is not None and cp.created_ms != self._created_ms:
            raise Conflict(
                f"this checkpoint is of an earlier stream {self.name!r} (created at "
                f"{cp.created_ms} ms, the current one at {self._created_ms} ms): the stream was "
                "deleted and re-created, so its positions mean nothing here"
            )
        backend = self.stream.backend
        for shard, seq in sorted(cp.positions.items()):
            if shard not in self._next:
                raise InvalidInput(
                    f"this consumer reads shards {self.shards} of {self.name!r}; the checkpoint "
                    f"names shard {shard}"
                )
            if seq <= self._committed.get(shard, -1):
                continue
            backend.checkpoint(self.group, self.name, shard, seq)
            self._committed[shard] = seq
            if seq >= self._next[shard]:
                self._next[shard] = seq + 1
                self._read[shard] = seq
        return self.committed

    def rewind(self) -> None:
        """Go back to the group's stored checkpoints (re-read what was polled, uncommitted)."""
        self._load()

    def reset(self) -> None:
        """Forget the group's checkpoints and start again from ``start``."""
        self.stream.backend.delete_checkpoints(self.group, self.name)
        self._load(resolve_start=True)

    # -- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the stream if this consumer opened it."""
        if getattr(self, "_owns_stream", False):
            self.stream.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Consumer({self.name!r}, group={self.group!r})"
