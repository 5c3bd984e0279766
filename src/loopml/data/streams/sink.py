"""The delivery sink: buffer a stream's records and deliver them into the catalog.

This is the Kinesis Data Firehose role: a :class:`StreamSink` reads a stream
as a consumer group, buffers records until the first of its hints is reached
(a number of records, seconds since the first buffered record, megabytes),
then *flushes*: it decodes the records (JSON objects become columns), runs
the optional transform hook (the Lambda role), validates the rows with the
same :class:`~loopml.data.validation.Expectations` as file ingestion, adds
the record's stream position and arrival time, and writes the rows as
Parquet partitions ``dt=YYYY-MM-DD/hour=HH`` (by arrival time, UTC) of a new
version of the dataset: the previous version's parts plus the new ones.

Exactly once into the catalog: the batch's
:class:`~loopml.data.streams.Checkpoint` is stored in the dataset's state in
the same metadata transaction that records the version, and only then
committed to the stream. On start, the sink commits the checkpoint found in
the dataset's state before it polls (checkpoints never move backwards, so
that is always safe). A sink killed before the catalog commit re-reads the
batch; one killed after it does not deliver the batch again.

Nothing is dropped silently: a record that is not a JSON object, that the
transform hook fails on, whose fields do not fit the dataset's columns, or
that breaks an expectation goes to the version's quarantine, with the reason
in ``_rule`` and the record's original bytes in ``_raw``.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.catalog import (
    QUARANTINE_ROW,
    QUARANTINE_RULE,
    Catalog,
    DatasetVersionInfo,
    DatasetWriter,
    check_dataset_name,
)
from loopml.data.streams.base import LATEST, MAX_LIMIT, TRIM_HORIZON, Record, check_group_name
from loopml.data.streams.consumer import Checkpoint, Consumer
from loopml.errors import Conflict, InvalidInput, NotFound, ValidationFailed
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.data.validation import Expectations
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: columns the sink adds to every row: when the record arrived, and where it sits in the stream
ARRIVAL = "_arrival"
SHARD = "_shard"
SEQUENCE = "_sequence"
PARTITION_KEY = "_partition_key"
META_COLUMNS = (ARRIVAL, SHARD, SEQUENCE, PARTITION_KEY)
#: the partition columns, from the arrival time (UTC): ``dt=YYYY-MM-DD/hour=HH``
PARTITION_COLUMNS = ("dt", "hour")
#: the quarantine column holding a rejected record's original data
RAW = "_raw"
#: prefix of the dataset-state key that holds a sink's checkpoint
STATE_PREFIX = "stream_checkpoint"

#: what the transform hook receives: a pandas DataFrame or a list of dicts
TransformInput = Literal["pandas", "records"]
#: why a buffer was flushed
FlushReason = Literal["records", "bytes", "seconds", "idle", "stop", "manual"]

_META_TYPES: dict[str, pa.DataType] = {
    ARRIVAL: pa.timestamp("ms", tz="UTC"),
    SHARD: pa.int32(),
    SEQUENCE: pa.int64(),
    PARTITION_KEY: pa.string(),
}
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)
_SPEC = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
#: longest wait of one poll, so that :meth:`StreamSink.stop` is noticed quickly
_MAX_WAIT_S = 0.5
#: most records one poll asks for
_POLL_RECORDS = 10_000
#: records the first poll asks for, before the sink knows how big records are
_FIRST_POLL = 100
#: records a flush singles out when the transform hook fails; then failing slices go whole
_MAX_ISOLATED = 32


# -- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlushResult:
    """What one flush delivered.

    Attributes
    ----------
    version
        The dataset version the flush created; ``version.created`` is False
        when nothing was left to write (e.g. the transform removed every
        row) and only the checkpoint was stored.
    records
        Records taken from the stream.
    rows
        Rows written to the dataset.
    quarantined
        Records (or transformed rows) written to the version's quarantine.
    dropped
        Rows the transform hook removed (negative if it added rows).
    failures
        Number of quarantined rows per reason.
    checkpoint
        The stream position the flush covers (stored with the version).
    oldest_arrival_ms, newest_arrival_ms
        Arrival times of the oldest and newest record delivered.
    reason
        Which hint triggered the flush: ``records``, ``bytes``, ``seconds``,
        ``idle`` (the stream was drained), ``stop`` or ``manual``.
    seconds
        How long the flush took.
    """

    version: DatasetVersionInfo
    records: int
    rows: int
    quarantined: int
    dropped: int
    failures: dict[str, int]
    checkpoint: Checkpoint
    oldest_arrival_ms: int
    newest_arrival_ms: int
    reason: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "version": self.version.ref,
            "created": self.version.created,
            "records": self.records,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "dropped": self.dropped,
            "failures": dict(self.failures),
            "checkpoint": self.checkpoint.to_dict(),
            "oldest_arrival_ms": self.oldest_arrival_ms,
            "newest_arrival_ms": self.newest_arrival_ms,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SinkReport:
    """Totals of a sink since it was opened (see :meth:`StreamSink.run`)."""

    stream: str
    dataset: str
    group: str
    records: int = 0
    rows: int = 0
    quarantined: int = 0
    dropped: int = 0
    flushes: int = 0
    versions_created: int = 0
    #: ``NAME:VERSION`` of the last version a flush created (or found)
    last_version: str | None = None
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, flush: FlushResult) -> None:
        """Count one flush."""
        self.records += flush.records
        self.rows += flush.rows
        self.quarantined += flush.quarantined
        self.dropped += flush.dropped
        self.flushes += 1
        self.versions_created += int(flush.version.created)
        self.last_version = flush.version.ref
        for rule, n in flush.failures.items():
            self.failures[rule] = self.failures.get(rule, 0) + n

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "stream": self.stream,
            "dataset": self.dataset,
            "group": self.group,
            "records": self.records,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "dropped": self.dropped,
            "flushes": self.flushes,
            "versions_created": self.versions_created,
            "last_version": self.last_version,
            "failures": dict(self.failures),
        }


# -- the transform hook ---------------------------------------------------------------------
class _BadHookResult(InvalidInput):
    """The transform hook returned something the sink cannot use (a bug in the hook)."""


def load_transform(spec: str) -> Callable[[Any], Any]:
    """Import a transform hook given as ``module:function``.

    Parameters
    ----------
    spec
        ``module:function`` (dotted names allowed on both sides, e.g.
        ``hooks.sensors:Cleaner.clean``). The module is imported the normal
        way, so it must be on ``sys.path`` (the CLI adds the current folder).

    Returns
    -------
    callable
        The function.

    Raises
    ------
    InvalidInput
        ``spec`` is malformed, the module cannot be imported, or it has no
        such callable.

    Examples
    --------
    >>> load_transform("json:dumps")([1, 2])
    '[1, 2]'
    """
    m = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if m is None:
        raise InvalidInput(
            f"transform {spec!r} is not of the form module:function (e.g. my_hooks:clean)"
        )
    module_name, attr = m.groups()
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise InvalidInput(
            f"cannot import module {module_name!r} of transform {spec!r} ({e}); run from the "
            "folder that holds it, or add that folder to PYTHONPATH"
        ) from e
    except Exception as e:  # the user's module failed to import: say how, in one line
        raise InvalidInput(
            f"importing module {module_name!r} of transform {spec!r} failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise InvalidInput(
                f"module {module_name!r} has no {attr!r}; check the transform {spec!r}"
            ) from e
    if not callable(obj):
        raise InvalidInput(f"transform {spec!r} is a {type(obj).__name__}, not a function")
    return obj


def _transform_input(fn: Callable[[Any], Any], given: str | None) -> TransformInput:
    """``pandas`` or ``records``: as given, else from the first parameter's annotation."""
    if given is not None:
        if given not in ("pandas", "records"):
            raise InvalidInput(f"transform_input must be 'pandas' or 'records', not {given!r}")
        return "pandas" if given == "pandas" else "records"
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return "pandas"
    if not params:
        raise InvalidInput(
            f"transform {getattr(fn, '__name__', fn)!r} takes no argument; it must take one "
            "batch (a pandas DataFrame or a list of dicts) and return the same"
        )
    ann = params[0].annotation
    text = ann if isinstance(ann, str) else repr(ann)
    if "DataFrame" in text:
        return "pandas"
    if re.search(r"\b(list|List|Sequence|Iterable)\b", text):
        return "records"
    return "pandas"


# -- the pure parts: records -> tables --------------------------------------------------------
def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _table_from_dicts(objs: Sequence[dict[str, Any]]) -> pa.Table:
    """Columns from a list of dicts: the union of their keys, types inferred by Arrow.

    A field whose values do not share one type (``1`` here, ``"a"`` there)
    becomes a text column (non-text values as JSON), so no value is lost.
    """
    if not objs:
        return pa.table({})
    try:
        return pa.Table.from_struct_array(pa.array(objs))
    except _ARROW_ERRORS:
        pass
    cols: dict[str, pa.Array] = {}
    for key in dict.fromkeys(k for o in objs for k in o):
        values = [o.get(key) for o in objs]
        try:
            cols[key] = pa.array(values)
        except _ARROW_ERRORS:
            cols[key] = pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v) for v in values],
                pa.string(),
            )
    return pa.table(cols)


def _meta_columns(records: Sequence[Record]) -> dict[str, pa.Array]:
    return {
        ARRIVAL: pa.array([r.arrival_ms for r in records], pa.int64()).cast(_META_TYPES[ARRIVAL]),
        SHARD: pa.array([r.shard for r in records], pa.int32()),
        SEQUENCE: pa.array([r.sequence for r in records], pa.int64()),
        PARTITION_KEY: pa.array([r.partition_key for r in records], pa.string()),
    }


def _normalise(table: pa.Table) -> pa.Table:
    """Plain string/binary instead of the large variants pandas gives; no pandas metadata."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_large_binary(t):
            t = pa.binary()
        fields.append(pa.field(f.name, t))
    schema = pa.schema(fields)
    table = table.replace_schema_metadata(None)
    return table if schema.equals(table.schema) else table.cast(schema)


def _partitions(arrival: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """``dt`` (YYYY-MM-DD) and ``hour`` (HH) of UTC arrival times.

    Integer arithmetic on the epoch milliseconds: ten times faster than
    ``strftime`` with its time-zone handling, and the same for UTC.
    """
    ms = pc.cast(arrival.combine_chunks(), pa.int64())
    dt = pc.cast(pc.cast(pc.cast(pc.divide(ms, 86_400_000), pa.int32()), pa.date32()), pa.string())
    hour = pc.utf8_lpad(pc.cast(pc.remainder(pc.divide(ms, 3_600_000), 24), pa.string()), 2, "0")
    return dt, hour


def _text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_string(values.type):
        return values
    try:
        return pc.cast(values, pa.string())
    except _ARROW_ERRORS:
        return pa.array([None if v is None else str(v) for v in values.to_pylist()], pa.string())


def _raw_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    return pa.RecordBatch.from_arrays(
        [c.chunk(0) if c.num_chunks else pa.array([], c.type) for c in table.columns],
        schema=table.schema,
    )


class _Rejects:
    """The rows of one flush bound for the quarantine, with their reasons."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.failures: dict[str, int] = {}
        self.count = 0

    def add(self, table: pa.Table, rule: str, key: str | None = None) -> None:
        if table.num_rows == 0:
            return
        self.tables.append(
            table.append_column(QUARANTINE_RULE, pa.array([rule] * table.num_rows, pa.string()))
        )
        self.failures[key or rule] = self.failures.get(key or rule, 0) + table.num_rows
        self.count += table.num_rows

    def add_checked(self, bad: pa.Table) -> None:
        """Rows a validator rejected (already with ``_rule``; it counts the failures)."""
        if bad.num_rows:
            self.tables.append(bad)
            self.count += bad.num_rows

    def table(self, raw: dict[tuple[int, int], bytes]) -> pa.Table | None:
        """Everything rejected as one table of text columns, ``_row`` and ``_rule`` last."""
        if not self.tables:
            return None
        pieces = []
        for t in self.tables:
            n = t.num_rows
            cols: dict[str, pa.Array] = {}
            for name in t.column_names:
                if name not in (QUARANTINE_ROW, QUARANTINE_RULE):
                    cols[name] = _text(t.column(name))
            for name in META_COLUMNS:
                if name not in cols:
                    cols[name] = pa.nulls(n, pa.string())
            shards = t.column(SHARD).to_pylist() if SHARD in t.column_names else [None] * n
            seqs = t.column(SEQUENCE).to_pylist() if SEQUENCE in t.column_names else [None] * n
            found = [raw.get((int(s), int(q))) if s is not None and q is not None else None
                     for s, q in zip(shards, seqs, strict=True)]
            cols[RAW] = pa.array([None if d is None else _raw_text(d) for d in found], pa.string())
            row = pa.array([None if q is None else int(q) for q in seqs], pa.int64())
            cols[QUARANTINE_ROW] = row
            cols[QUARANTINE_RULE] = _text(t.column(QUARANTINE_RULE))
            pieces.append(pa.table(cols))
        out = pa.concat_tables(pieces, promote_options="permissive")
        order = [c for c in out.column_names if c not in (QUARANTINE_ROW, QUARANTINE_RULE)]
        return out.select([*order, QUARANTINE_ROW, QUARANTINE_RULE])


def _reject_nonnull(
    table: pa.Table, column: str, rejects: _Rejects, rule: str, *, keep_column: bool = True
) -> pa.Table:
    """Quarantine the rows with a value in ``column`` (with it, if ``keep_column``); drop it."""
    col = table.column(column)
    if col.null_count < len(col):
        has = pc.is_valid(col)
        bad = table.filter(has)
        rejects.add(bad if keep_column else bad.drop_columns([column]), rule)
        table = table.filter(pc.invert(has))
    return table.drop_columns([column])


# -- the sink ----------------------------------------------------------------------------------
class StreamSink:
    """Deliver a stream into a catalog dataset, buffered, exactly once.

    Parameters
    ----------
    ws
        The workspace (its ``stream_url`` picks the stream backend).
    stream
        The stream's name.
    dataset
        The dataset to deliver into (created by the first flush). Each
        flush creates a new version: the previous version's parts plus the
        new partitions.
    group
        The consumer group, whose checkpoint is also stored in the dataset's
        state; default ``"sink-<dataset>"``. Run one sink per group at a time.
    max_records, max_seconds, max_mb
        Buffering hints; a flush happens at the first one reached: this many
        records buffered, this many seconds since the first buffered record,
        this many MiB of record data buffered.
    expectations
        An :class:`~loopml.data.validation.Expectations` (or the path of its
        YAML file): rows that break one go to the quarantine, as in file
        ingestion. Types declared there also fix the columns' types. Each
        flush is validated on its own (``unique`` holds within one flush);
        ``row_count`` is refused (a stream has no total).
    transform
        The hook run on each flush's rows before validation (the Lambda
        role): a function taking a pandas DataFrame (or a list of dicts) and
        returning the same, or a ``"module:function"`` string. The rows
        include the ``_arrival``, ``_shard``, ``_sequence`` and
        ``_partition_key`` columns; keep ``_arrival`` if you add or remove
        rows. If it raises, the rows are halved until the failing records
        are found; those go to the quarantine (``_rule`` =
        ``"transform: ValueError: ..."``) and the rest are delivered. After
        32 such records in one flush, a failing slice goes to the quarantine
        whole (a hook that fails on everything is not called ~2n times).
    transform_input
        ``"pandas"`` or ``"records"``; default: from the first parameter's
        type annotation (``list[dict]`` means records), else pandas.
    fail_on_invalid
        Stop with :class:`~loopml.errors.ValidationFailed` instead of
        quarantining; nothing of that flush is delivered and the checkpoint
        stays where it was.
    start
        Where a group without a checkpoint starts: ``"trim-horizon"`` (the
        oldest record kept, default) or ``"latest"``.
    on_flush
        Called with each :class:`FlushResult` once its version is committed
        to the catalog, before the stream checkpoint moves (progress display).

    Notes
    -----
    Columns: the records' JSON fields, then ``_arrival`` (timestamp[ms,
    UTC]), ``_shard``, ``_sequence``, ``_partition_key``, ``dt`` and ``hour``.
    The first version fixes the columns: later records without a field get
    nulls, a field that is new goes to the quarantine (``"schema: new field
    ..."``), and values are converted to the column's type (integers widen
    to floats; a value that does not convert goes to the quarantine).

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.data import Catalog
    >>> from loopml.data.streams import StreamSink, create_stream
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> with create_stream(ws, "readings") as s:
    ...     _ = s.put_many([{"id": i, "t": 20.0 + i} for i in range(5)] + [b"oops"])
    >>> with StreamSink(ws, "readings", "readings_raw", max_records=4) as sink:
    ...     report = sink.run(until_idle=True)
    >>> report.records, report.rows, report.quarantined, report.last_version
    (6, 5, 1, 'readings_raw:2')
    >>> Catalog(ws).read_pandas("readings_raw")["id"].tolist()
    [0, 1, 2, 3, 4]
    >>> ws.close()
    """

    def __init__(
        self,
        ws: Workspace,
        stream: str,
        dataset: str,
        *,
        group: str | None = None,
        max_records: int = 100_000,
        max_seconds: float = 60.0,
        max_mb: float = 64.0,
        expectations: Expectations | str | Path | None = None,
        transform: Callable[[Any], Any] | str | None = None,
        transform_input: str | None = None,
        fail_on_invalid: bool = False,
        start: str = TRIM_HORIZON,
        on_flush: Callable[[FlushResult], None] | None = None,
    ) -> None:
        self.ws = ws
        self.stream = stream
        self.dataset = check_dataset_name(dataset)
        if group is None:
            group = f"sink-{dataset}"
            if len(group) > 128:
                raise InvalidInput(
                    f"the default consumer group {group[:40]!r}... is over 128 characters; "
                    "give a shorter group"
                )
        self.group = check_group_name(group)
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise InvalidInput(f"max_records must be a whole number >= 1, not {max_records!r}")
        for name, value in (("max_seconds", max_seconds), ("max_mb", max_mb)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInput(f"{name} must be a number > 0, not {value!r}")
        self.max_records = max_records
        self.max_seconds = float(max_seconds)
        self.max_mb = float(max_mb)
        self._max_bytes = int(self.max_mb * (1 << 20))
        self.expectations = _load_expectations(expectations)
        if isinstance(transform, str):
            transform = load_transform(transform)
        if transform is not None and not callable(transform):
            raise InvalidInput(f"transform must be a function or 'module:function', not {transform!r}")
        self.transform = transform
        self.transform_input: TransformInput | None = (
            None if transform is None else _transform_input(transform, transform_input)
        )
        self.fail_on_invalid = fail_on_invalid
        self.start = start
        self.on_flush = on_flush
        self.report = SinkReport(stream, self.dataset, self.group)
        self._consumer: Consumer | None = None
        self._schema: pa.Schema | None = None
        self._append = False
        self._buffer: list[Record] = []
        self._buffered_bytes = 0
        self._avg_bytes: float | None = None
        self._first_buffered = 0.0
        self._checkpoint: Checkpoint | None = None
        self._stopping = False

    @property
    def state_key(self) -> str:
        """The key of the dataset's state that holds this sink's checkpoint."""
        return f"{STATE_PREFIX}:{self.stream}:{self.group}"

    @property
    def buffered(self) -> int:
        """Records polled and not yet delivered."""
        return len(self._buffer)

    # -- lifetime -------------------------------------------------------------------------
    def open(self) -> StreamSink:
        """Check the dataset, open the consumer and restore the checkpoint stored with the data.

        Called by :meth:`run`; call it yourself to fail early.

        Raises
        ------
        NotFound
            The stream does not exist.
        InvalidInput
            The dataset exists but was not written by a stream sink.
        """
        if self._consumer is not None:
            return self
        self._schema = self._load_schema()
        consumer = Consumer(self.ws, self.stream, self.group, start=self.start)
        try:
            stored = Catalog(self.ws).state(self.dataset).get(self.state_key)
            if stored:
                self._restore(consumer, Checkpoint.from_dict(stored))
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        return self

    def _restore(self, consumer: Consumer, stored: Checkpoint) -> None:
        try:
            consumer.commit(stored)
        except Conflict:
            log.warning(
                "the checkpoint stored in dataset %r is of an earlier stream %r (deleted and "
                "re-created since); reading the new stream from the group's own checkpoint",
                self.dataset, self.stream,
            )
            return
        ahead = {s: q for s, q in consumer.committed.positions.items()
                 if q > stored.positions.get(s, -1)}
        if ahead:
            log.warning(
                "consumer group %r of stream %r is ahead of the checkpoint stored in dataset %r "
                "(shards %s): something else committed for this group; records in between are "
                "not in the dataset", self.group, self.stream, self.dataset, sorted(ahead),
            )

    def _load_schema(self) -> pa.Schema | None:
        """The Arrow schema of the dataset's latest version, if it has rows."""
        import pyarrow.parquet as pq

        try:
            info = Catalog(self.ws).get(self.dataset)
        except NotFound:
            self._append = False
            return None
        if info.row_count == 0 or not info.parts:
            self._append = False
            return None
        missing = [c for c in (*META_COLUMNS, *PARTITION_COLUMNS) if c not in info.columns]
        if missing:
            raise InvalidInput(
                f"dataset {info.ref} was not written by a stream sink (it has no {missing} "
                f"column(s)); deliver stream {self.stream!r} into a new dataset"
            )
        self._append = True
        with self.ws.artifacts.open(info.parts[-1].sha256) as f:
            return pq.read_schema(f).remove_metadata()

    def close(self) -> None:
        """Release the consumer; records still buffered are not delivered (see :meth:`flush`)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._buffer = []
        self._buffered_bytes = 0

    def __enter__(self) -> StreamSink:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to flush what it holds and return (safe from a signal handler)."""
        self._stopping = True  # a plain flag: safe to set from a signal handler

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    def run(
        self, *, until_idle: bool | float = False, stop_after: float | None = None
    ) -> SinkReport:
        """Poll, buffer and flush until told to stop; flush what is buffered before returning.

        Parameters
        ----------
        until_idle
            ``True``: return once the stream is drained: every record there
            was when the run began is delivered (or a poll finds nothing
            new). A number: return once no record has arrived for that many
            seconds. ``False`` (default): keep running.
        stop_after
            Return after this many seconds at most.

        Returns
        -------
        SinkReport
            Totals since the sink was opened. :meth:`stop` (e.g. from a
            signal handler) also ends the run, after a final flush.
        """
        self.open()
        consumer = self._consumer
        assert consumer is not None
        started = last_record = time.monotonic()
        # "drained" means: up to the newest record there was when the run began (so that a
        # producer faster than the sink cannot keep it running), or a poll that finds nothing
        ends = (
            {s: consumer.stream.position(s, LATEST) - 1 for s in consumer.shards}
            if until_idle is True else None
        )
        while not self._stopping:
            now = time.monotonic()
            if stop_after is not None and now - started >= stop_after:
                break
            reason = self._due(now)
            if reason is not None:
                self._flush(reason)
                continue
            wait = _MAX_WAIT_S
            if self._buffer:
                wait = min(wait, self._first_buffered + self.max_seconds - now)
            if stop_after is not None:
                wait = min(wait, started + stop_after - now)
            if until_idle is True:
                wait = 0.0
            batch = consumer.poll(limit=self._poll_limit(), wait=max(wait, 0.0))
            if batch.records:
                self._add(batch.records, batch.checkpoint)
                last_record = time.monotonic()
                reached = batch.checkpoint.positions
                if ends is not None and all(reached.get(s, 0) >= e for s, e in ends.items()):
                    self._flush("idle")
                    break
            elif until_idle is True or (
                until_idle is not False and time.monotonic() - last_record >= until_idle
            ):
                self._flush("idle")
                break
        self._flush("stop")
        return self.report

    def _poll_limit(self) -> int:
        """Records to ask for: what fits under max_records, and under max_mb by the average size."""
        want = min(self.max_records - len(self._buffer), _POLL_RECORDS, MAX_LIMIT)
        if self._avg_bytes is None:
            want = min(want, _FIRST_POLL)  # no size seen yet: a small first poll to learn it
        else:
            room = self._max_bytes - self._buffered_bytes
            want = min(want, int(room / max(self._avg_bytes, 1.0)) + 1)
        return max(want, 1)

    def _add(self, records: list[Record], checkpoint: Checkpoint) -> None:
        if not self._buffer:
            self._first_buffered = time.monotonic()
        size = sum(len(r.data) for r in records)
        avg = size / len(records)
        self._avg_bytes = avg if self._avg_bytes is None else 0.8 * self._avg_bytes + 0.2 * avg
        self._buffer.extend(records)
        self._buffered_bytes += size
        self._checkpoint = checkpoint

    def _due(self, now: float) -> FlushReason | None:
        if not self._buffer:
            return None
        if len(self._buffer) >= self.max_records:
            return "records"
        if self._buffered_bytes >= self._max_bytes:
            return "bytes"
        if now - self._first_buffered >= self.max_seconds:
            return "seconds"
        return None

    def poll(self, limit: int = _POLL_RECORDS, wait: float = 0.0) -> int:
        """Poll once and buffer what arrives (no flush); return how many records came.

        For driving the sink step by step; :meth:`run` does this in a loop.
        """
        self.open()
        assert self._consumer is not None
        batch = self._consumer.poll(limit=limit, wait=wait)
        if batch.records:
            self._add(batch.records, batch.checkpoint)
        return len(batch.records)

    def flush(self) -> FlushResult | None:
        """Deliver the buffered records now: one new dataset version, then the checkpoint.

        Returns
        -------
        FlushResult or None
            What was delivered; None if nothing was buffered.
        """
        return self._flush("manual")

    def _flush(self, reason: str) -> FlushResult | None:
        if not self._buffer:
            return None
        assert self._consumer is not None and self._checkpoint is not None
        records, checkpoint = self._buffer, self._checkpoint
        t0 = time.monotonic()
        result = self._deliver(records, checkpoint, reason, t0)
        # The version (and the checkpoint in its state) is durable: only now move the stream's.
        if self.on_flush is not None:
            self.on_flush(result)
        self._consumer.commit(checkpoint)
        self._buffer = []
        self._buffered_bytes = 0
        self.report.add(result)
        log.info(
            "delivered %d records of %r to %s (%d rows, %d quarantined) in %.2fs",
            result.records, self.stream, result.version.ref, result.rows, result.quarantined,
            result.seconds,
        )
        return result

    # -- one flush: decode, transform, validate, conform, write ----------------------------------
    def _deliver(
        self, records: list[Record], checkpoint: Checkpoint, reason: str, t0: float
    ) -> FlushResult:
        rejects = _Rejects()
        table = self._decode(records, rejects)
        dropped = 0
        if self.transform is not None and table.num_rows:
            before, rejected = table.num_rows, rejects.count
            table = self._transform(table, rejects)
            dropped = before - (rejects.count - rejected) - table.num_rows
        for column in PARTITION_COLUMNS:
            if column in table.column_names:
                what = "date" if column == "dt" else "hour"
                table = _reject_nonnull(
                    table, column, rejects,
                    f"schema: field {column!r} clashes with the sink's partition column (the "
                    f"arrival {what}); rename it in a transform",
                )
        validation: dict[str, Any] = {}
        if self.expectations is not None:
            table, validation = self._validate(table, rejects)
        table = self._conform(table, rejects)
        if table.num_rows:
            dt, hour = _partitions(table.column(ARRIVAL))
            table = table.append_column("dt", dt).append_column("hour", hour)
        failures = dict(rejects.failures)
        for rule, n in validation.get("failures", {}).items():
            failures[rule] = failures.get(rule, 0) + n
        if rejects.count and self.fail_on_invalid:
            detail = ", ".join(f"{k}: {v}" for k, v in list(failures.items())[:5])
            raise ValidationFailed(
                f"{rejects.count} of {len(records)} records of stream {self.stream!r} were "
                f"rejected ({detail}); nothing was delivered and the checkpoint did not move "
                "(drop fail_on_invalid / --fail-on-invalid to quarantine them instead)"
            )
        summary = {
            "stream": self.stream,
            "group": self.group,
            "rows_read": len(records),
            "rows_ingested": table.num_rows,
            "rows_quarantined": rejects.count,
            "rows_dropped_by_transform": dropped,
            **validation,
            "failures": failures,
        }
        quarantine = None
        if rejects.count:
            raw = {(r.shard, r.sequence): r.data for r in records}
            quarantine = rejects.table(raw)
        info = self._write(table, quarantine, checkpoint, summary)
        arrivals = [r.arrival_ms for r in records]
        return FlushResult(
            version=info,
            records=len(records),
            rows=table.num_rows,
            quarantined=rejects.count,
            dropped=dropped,
            failures=failures,
            checkpoint=checkpoint,
            oldest_arrival_ms=min(arrivals),
            newest_arrival_ms=max(arrivals),
            reason=reason,
            seconds=time.monotonic() - t0,
        )

    def _decode(self, records: list[Record], rejects: _Rejects) -> pa.Table:
        """JSON objects to columns plus the metadata columns; the rest to ``rejects``."""
        loads = orjson.loads
        keep: list[Record] = records
        try:
            objs = [loads(r.data) for r in records]
            if not all(type(o) is dict for o in objs):
                raise ValueError("not all objects")
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            objs, keep, bad = [], [], []
            for r in records:
                try:
                    o = loads(r.data)
                except orjson.JSONDecodeError as e:
                    bad.append((r, f"decode: not JSON ({e})", "decode: not JSON"))
                    continue
                if type(o) is not dict:
                    rule = f"decode: not a JSON object (a JSON {_json_kind(o)})"
                    bad.append((r, rule, "decode: not a JSON object"))
                    continue
                objs.append(o)
                keep.append(r)
            for r, rule, key in bad:
                rejects.add(pa.table(_meta_columns([r])), rule, key)
        table = _table_from_dicts(objs)
        clash = [c for c in META_COLUMNS if c in table.column_names]
        if clash:  # a record field named like a sink column: keep it apart until rejected
            table = table.rename_columns(
                [f"{c}__field" if c in clash else c for c in table.column_names]
            )
        for name, col in _meta_columns(keep).items():
            table = table.append_column(name, col)
        for c in clash:
            table = _reject_nonnull(
                table, f"{c}__field", rejects,
                f"decode: field {c!r} is reserved for the sink's own column", keep_column=False,
            )
        return table

    def _transform(self, table: pa.Table, rejects: _Rejects) -> pa.Table:
        """Run the hook; on an error, halve the rows until the failing records are found."""
        out: list[pa.Table] = []
        todo = [table]
        isolated = 0
        while todo:
            part = todo.pop()
            try:
                result = self._call_hook(part)
            except _BadHookResult:
                raise
            except Exception as e:  # the hook failed on these rows: find the culprits
                if part.num_rows > 1 and isolated < _MAX_ISOLATED:
                    mid = part.num_rows // 2
                    todo += [part.slice(mid), part.slice(0, mid)]  # first half first
                    continue
                # One record, or so many failures that the hook likely fails on every
                # record: quarantine the slice whole rather than call the hook ~2n times.
                isolated += part.num_rows == 1
                message = " ".join(str(e).split())
                rejects.add(part, f"transform: {type(e).__name__}: {message}",
                            f"transform: {type(e).__name__}")
                continue
            out.append(self._restore_meta(result, part))
        if not out:
            return table.slice(0, 0)
        try:
            return pa.concat_tables(out, promote_options="permissive") if len(out) > 1 else out[0]
        except _ARROW_ERRORS as e:
            raise _BadHookResult(
                f"the transform hook returned columns of different types for different rows "
                f"({e}); return the same columns and types for every batch"
            ) from e

    def _call_hook(self, table: pa.Table) -> pa.Table:
        assert self.transform is not None
        if self.transform_input == "records":
            result = self.transform(table.to_pylist())
            if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
                raise _BadHookResult(
                    f"the transform hook returned a {type(result).__name__}; it takes a list of "
                    "dicts and must return a list of dicts"
                )
            return _normalise(_table_from_dicts(result))
        import pandas as pd

        result = self.transform(table.to_pandas())
        if isinstance(result, pa.Table):
            return _normalise(result)
        if not isinstance(result, pd.DataFrame):
            raise _BadHookResult(
                f"the transform hook returned a {type(result).__name__}; it takes a pandas "
                "DataFrame and must return a DataFrame (or a list of dicts, with "
                "transform_input='records')"
            )
        return _normalise(pa.Table.from_pandas(result, preserve_index=False))

    def _restore_meta(self, result: pa.Table, given: pa.Table) -> pa.Table:
        """Put back (or re-type) the metadata columns of the hook's output."""
        same = result.num_rows == given.num_rows
        if ARRIVAL not in result.column_names and not same:
            raise _BadHookResult(
                f"the transform hook returned {result.num_rows} rows for {given.num_rows} without "
                f"the {ARRIVAL!r} column; keep it (it sets each row's dt/hour partition) when "
                "adding or removing rows"
            )
        for name in META_COLUMNS:
            typ = _META_TYPES[name]
            if name not in result.column_names:
                col = given.column(name) if same else pa.nulls(result.num_rows, typ)
                result = result.append_column(name, col)
                continue
            i = result.column_names.index(name)
            col = result.column(name)
            if col.type != typ:
                try:
                    col = pc.cast(col, typ, safe=name != ARRIVAL)
                except _ARROW_ERRORS as e:
                    raise _BadHookResult(
                        f"the transform hook returned column {name!r} as {col.type}; leave it a "
                        f"{typ}"
                    ) from e
                result = result.set_column(i, name, col)
        if result.column(ARRIVAL).null_count:
            raise _BadHookResult(
                f"the transform hook returned rows with no {ARRIVAL!r} value; keep the arrival "
                "time of the record a row came from"
            )
        return result

    def _validate(self, table: pa.Table, rejects: _Rejects) -> tuple[pa.Table, dict[str, Any]]:
        """Check the expectations: passing rows (typed) back, the rest to ``rejects``."""
        assert self.expectations is not None
        validator = self.expectations.validator()
        for spec in self.expectations.columns:  # a field no record had: all null
            if spec.name not in table.column_names:
                table = table.append_column(spec.name, pa.nulls(table.num_rows))
        good, bad = validator.check(_one_batch(table))
        if bad is not None:  # its ``_row`` (the row in this flush) becomes the sequence number
            rejects.add_checked(pa.Table.from_batches([bad]))
        summary = validator.finish(good.num_rows)
        return pa.Table.from_batches([good]), summary

    def _conform(self, table: pa.Table, rejects: _Rejects) -> pa.Table:
        """Fit the rows to the dataset's columns; fix the columns if there are none yet."""
        from loopml.data.validation import _convert

        schema = self._schema
        data_cols = [c for c in table.column_names if c not in META_COLUMNS]
        if schema is None:
            return table.select([*data_cols, *META_COLUMNS])
        known = set(schema.names)
        for c in data_cols:
            if c not in known:
                table = _reject_nonnull(
                    table, c, rejects,
                    f"schema: new field {c!r} (the columns of {self.dataset!r} were fixed by its "
                    "first version)",
                )
        n = table.num_rows
        fields: list[pa.Field] = []
        for f in schema:
            if f.name in PARTITION_COLUMNS:
                continue
            if f.name not in table.column_names:
                table = table.append_column(f.name, pa.nulls(n, f.type))
                fields.append(f)
                continue
            col = table.column(f.name)
            target = f.type
            if col.type == target:
                fields.append(f)
                continue
            if pa.types.is_null(target) or (
                pa.types.is_integer(target) and pa.types.is_floating(col.type)
            ):
                # a column without values so far, or integers meeting floats: widen
                target = col.type if pa.types.is_null(target) else pa.float64()
                fields.append(pa.field(f.name, target))
                if col.type != target:
                    table = table.set_column(
                        table.column_names.index(f.name), f.name, pc.cast(col, target)
                    )
                continue
            fields.append(f)
            values, bad = _convert(col.combine_chunks(), target)
            if bad is not None:
                bad = pc.fill_null(bad, False)
            if bad is not None and bad.true_count:
                rejects.add(table.filter(bad), f"{f.name}: type {target}")
                keep = pc.invert(bad)
                table = table.filter(keep)
                values = values.filter(keep)
            table = table.set_column(table.column_names.index(f.name), f.name, values)
        return table.select([f.name for f in fields])

    def _write(
        self,
        table: pa.Table,
        quarantine: pa.Table | None,
        checkpoint: Checkpoint,
        summary: dict[str, Any],
    ) -> DatasetVersionInfo:
        """One new version: the rows (by dt/hour), the quarantine and the checkpoint, together."""
        source = {
            "kind": "stream",
            "stream": self.stream,
            "group": self.group,
            "backend": self._consumer.stream.backend.url if self._consumer else None,
        }
        rows = table.num_rows
        with DatasetWriter(
            self.ws, self.dataset, source=source, partition_by=list(PARTITION_COLUMNS),
            append=self._append, schema=table.schema if rows else None,
            description=f"delivered from stream {self.stream!r}",
        ) as writer:
            if rows:
                writer.write(table)
            if quarantine is not None:
                for batch in quarantine.combine_chunks().to_batches():
                    writer.quarantine(batch)
            info = writer.commit(
                validation=summary,
                state={self.state_key: checkpoint.to_dict()},
                lineage=[(EntityRef("stream", self.stream), "ingested_from")],
                # a flush with nothing to write only stores its checkpoint
                dedup=not rows and quarantine is None,
            )
        if rows:
            self._schema = table.schema
            self._append = True
        return info


def _load_expectations(expectations: Expectations | str | Path | None) -> Expectations | None:
    if expectations is None:
        return None
    from loopml.data.validation import Expectations

    if isinstance(expectations, (str, Path)):
        expectations = Expectations.from_file(expectations)
    if not isinstance(expectations, Expectations):
        raise InvalidInput(
            f"expectations must be an Expectations or the path of its YAML file, not "
            f"{type(expectations).__name__}"
        )
    rc = expectations.row_count
    if rc.min is not None or rc.max is not None:
        raise InvalidInput(
            f"{expectations.source}: 'row_count' bounds a whole ingest, but a stream sink delivers "
            "one flush at a time and has no total; remove row_count for the sink"
        )
    return expectations


__all__ = [
    "ARRIVAL",
    "META_COLUMNS",
    "PARTITION_COLUMNS",
    "PARTITION_KEY",
    "RAW",
    "SEQUENCE",
    "SHARD",
    "FlushResult",
    "SinkReport",
    "StreamSink",
    "TransformInput",
    "load_transform",
]
