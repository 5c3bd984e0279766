"""The data catalog: named datasets with immutable, versioned Parquet content.

A dataset version is a list of Parquet *parts* in the artifact store, each
with the partition values it holds (by default the ingestion date), plus the
schema, row count, column statistics, source description, validation summary
and quarantined rows. Versions are written by :class:`DatasetWriter` (used by
ingestion, streams and every later stage that produces data) and read back as
Arrow, pandas or a DuckDB relation.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopml._util import as_utc, check_name, new_id, parse_versioned_ref, sha256_strings, utcnow
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.store.events import DATASET_VERSION_CREATED
from loopml.store.lineage import EntityRef
from loopml.store.models import Dataset, DatasetPart, DatasetVersion

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

QUARANTINE_ROW = "_row"
QUARANTINE_RULE = "_rule"


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise InvalidInput."""
    return check_name(name, "dataset")


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``NAME[:VER]`` into (name, version or None for latest)."""
    return parse_versioned_ref(ref, "dataset")


@dataclass(frozen=True)
class PartInfo:
    """One Parquet file of a version."""

    sha256: str
    row_count: int
    num_bytes: int
    partition: dict[str, Any]


@dataclass(frozen=True)
class DatasetVersionInfo:
    """Everything the catalog knows about one dataset version."""

    id: str
    name: str
    version: int
    content_hash: str
    row_count: int
    num_bytes: int
    schema: list[dict[str, Any]]
    stats: dict[str, Any]
    source: dict[str, Any]
    validation: dict[str, Any]
    quarantine_count: int
    quarantine_hash: str | None
    created_at: datetime
    parts: list[PartInfo] = field(default_factory=list)
    #: False when an ingest found identical content and returned the existing version
    created: bool = True

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def entity(self) -> EntityRef:
        """The lineage reference of this version."""
        return EntityRef("dataset_version", self.id)

    @property
    def columns(self) -> list[str]:
        """Column names in order."""
        return [c["name"] for c in self.schema]

    def partitions(self) -> list[dict[str, Any]]:
        """Distinct partition values with their row counts."""
        rows: dict[tuple[tuple[str, Any], ...], int] = {}
        for p in self.parts:
            key = tuple(sorted(p.partition.items()))
            rows[key] = rows.get(key, 0) + p.row_count
        return [{**dict(k), "rows": n} for k, n in sorted(rows.items(), key=lambda kv: str(kv[0]))]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (used by ``--json`` output)."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
            "row_count": self.row_count,
            "num_bytes": self.num_bytes,
            "schema": self.schema,
            "stats": self.stats,
            "source": self.source,
            "validation": self.validation,
            "quarantine_count": self.quarantine_count,
            "created_at": self.created_at.isoformat(),
            "partitions": self.partitions(),
            "created": self.created,
        }


def _info(row: DatasetVersion, name: str, created: bool = True) -> DatasetVersionInfo:
    return DatasetVersionInfo(
        id=row.id,
        name=name,
        version=row.version,
        content_hash=row.content_hash,
        row_count=row.row_count,
        num_bytes=row.num_bytes,
        schema=list(row.schema),
        stats=dict(row.stats),
        source=dict(row.source),
        validation=dict(row.validation),
        quarantine_count=row.quarantine_count,
        quarantine_hash=row.quarantine_hash,
        created_at=as_utc(row.created_at),
        parts=[PartInfo(p.artifact_hash, p.row_count, p.num_bytes, dict(p.partition)) for p in row.parts],
        created=created,
    )


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    """Arrow schema as a JSON list of {name, type, nullable}."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "item"):
        return value.item()
    return value


class _ColumnStats:
    """Exact streaming column statistics: nulls, min, max, mean (numeric)."""

    def __init__(self) -> None:
        self.cols: dict[str, dict[str, Any]] = {}

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        for name, col in zip(batch.schema.names, batch.columns, strict=False):
            st = self.cols.setdefault(name, {"nulls": 0, "min": None, "max": None})
            st["nulls"] += col.null_count
            t = col.type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)
                    or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)):
                continue
            if len(col) == col.null_count:
                continue
            mm = pc.min_max(col)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is not None and (st["min"] is None or lo < st["min"]):
                st["min"] = lo
            if hi is not None and (st["max"] is None or hi > st["max"]):
                st["max"] = hi
            if pa.types.is_integer(t) or pa.types.is_floating(t):
                st["_sum"] = st.get("_sum", 0.0) + (pc.sum(col).as_py() or 0.0)
                st["_n"] = st.get("_n", 0) + len(col) - col.null_count

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, st in self.cols.items():
            d = {"nulls": st["nulls"], "min": _jsonable(st["min"]), "max": _jsonable(st["max"])}
            if st.get("_n"):
                d["mean"] = st["_sum"] / st["_n"]
            out[name] = d
        return out


class _PartWriter:
    """Writes one Parquet file with fixed-size row groups (so equal data gives equal bytes)."""

    def __init__(self, path: str, schema: pa.Schema, row_group_size: int) -> None:
        self.path = path
        self.schema = schema
        self.row_group_size = row_group_size
        self.writer = pq.ParquetWriter(path, schema, use_dictionary=self._dictionary_columns(schema))
        self.buffer: list[pa.RecordBatch] = []
        self.buffered = 0
        self.rows = 0

    #: dictionary-encoded Parquet columns per schema (see _dictionary_columns)
    _dictionary_cache: ClassVar[dict[pa.Schema, list[str] | bool]] = {}

    @classmethod
    def _dictionary_columns(cls, schema: pa.Schema) -> list[str] | bool:
        """Leaf column paths to dictionary-encode: all but floating-point ones.

        Floating-point values are nearly always distinct, and a row group's
        worth of them (131,072 x 8 bytes) just fits the writer's 1 MiB
        dictionary limit, so it never falls back to plain encoding: building
        those dictionaries took two thirds of the write time and made the
        files ~20% bigger.
        """
        cols = cls._dictionary_cache.get(schema)
        if cols is None:
            try:  # the Parquet leaves of an Arrow schema, with their physical types
                buf = pa.BufferOutputStream()
                pq.write_table(schema.empty_table(), buf)
                leaves = pq.read_metadata(pa.BufferReader(buf.getvalue())).schema
                cols = [c.path for c in leaves if c.physical_type not in ("FLOAT", "DOUBLE")]
            except (pa.ArrowException, ValueError):
                cols = True
            if len(cls._dictionary_cache) > 256:
                cls._dictionary_cache.clear()
            cls._dictionary_cache[schema] = cols
        return cols

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.buffer.append(batch)
        self.buffered += batch.num_rows
        if self.buffered >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.Table.from_batches(self.buffer, schema=self.schema)
        offset = 0
        while table.num_rows - offset >= self.row_group_size or (final and offset < table.num_rows):
            n = min(self.row_group_size, table.num_rows - offset)
            # One contiguous chunk per column: the Parquet writer's page and
            # dictionary-fallback decisions follow chunk boundaries, so without
            # this the bytes would depend on how the input was batched.
            self.writer.write_table(table.slice(offset, n).combine_chunks(), row_group_size=n)
            offset += n
        rest = table.slice(offset)
        self.buffer = rest.to_batches()
        self.buffered = rest.num_rows
        self.rows += offset

    def close(self) -> int:
        self._flush(final=True)
        self.writer.close()
        return self.rows


class DatasetWriter:
    """Writes one new dataset version: append batches, then :meth:`commit`.

    Batches are buffered into fixed-size row groups and streamed to staging
    files, so memory stays bounded. Nothing is visible in the catalog until
    :meth:`commit` records the version in one transaction; :meth:`abort` (or
    leaving the ``with`` block on an error) leaves no trace.

    Parameters
    ----------
    ws
        The workspace.
    name
        Dataset name (created on first commit).
    source
        JSON description of where the data came from (no secrets).
    partition_by
        Columns whose values split rows into partitions; default: one
        partition per commit, ``{"ingest_date": <UTC date>}``.
    append
        Keep the parts of the latest version and add the new ones (incremental
        ingestion); otherwise the new version holds only what was written.
    """

    def __init__(
        self,
        ws: Workspace,
        name: str,
        *,
        source: Mapping[str, Any] | None = None,
        partition_by: Sequence[str] = (),
        append: bool = False,
        schema: pa.Schema | None = None,
        description: str = "",
    ) -> None:
        self.ws = ws
        self.name = check_dataset_name(name)
        self.source = dict(source or {})
        self.partition_by = list(partition_by)
        self.append = append
        self.description = description
        self.schema: pa.Schema | None = _parquet_schema(schema) if schema is not None else None
        self.row_group_size = ws.settings.row_group_size
        self.stats = _ColumnStats()
        self._stack = ExitStack()
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._parts: dict[tuple[Any, ...], _PartWriter] = {}
        self._quarantine: _PartWriter | None = None
        self.quarantine_count = 0
        self.rows = 0
        self._closed = False
        self._started = time.monotonic()

    # -- context manager: abort on error ------------------------------------------
    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None or not self._closed:
            self.abort()

    def abort(self) -> None:
        """Drop everything written so far."""
        for w in [*self._parts.values(), *([self._quarantine] if self._quarantine else [])]:
            with contextlib.suppress(Exception):  # a broken writer: its file is deleted anyway
                w.writer.close()
        self._parts.clear()
        self._quarantine = None
        self._closed = True
        self._stack.close()

    # -- writing --------------------------------------------------------------------
    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        """Append good rows."""
        batches = data.to_batches() if isinstance(data, pa.Table) else [data]
        for batch in batches:
            if batch.num_rows == 0 and self.schema is not None:
                continue
            self.rows += batch.num_rows
            if self.schema is None:
                # Fix the schema only once a row group's worth of rows is seen, so
                # a column that is all-null in the first chunk still gets its type.
                self._pending.append(batch)
                self._pending_rows += batch.num_rows
                if self._pending_rows >= self.row_group_size:
                    self._fix_schema()
            else:
                self._route(self._conform(batch))

    def _fix_schema(self) -> None:
        try:
            self.schema = _parquet_schema(
                pa.unify_schemas([b.schema for b in self._pending], promote_options="permissive")
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInput(f"the rows of {self.name!r} do not share one schema: {e}") from e
        missing = [c for c in self.partition_by if c not in self.schema.names]
        if missing:
            raise InvalidInput(
                f"partition column(s) {missing} are not in the data; columns are {self.schema.names}"
            )
        pending, self._pending = self._pending, []
        for b in pending:
            self._route(self._conform(b))

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        assert self.schema is not None
        if batch.schema.equals(self.schema):
            return batch
        names = set(batch.schema.names)
        extra = [n for n in batch.schema.names if n not in self.schema.names]
        if extra:
            raise InvalidInput(
                f"new column(s) {extra} appeared part-way through the data of {self.name!r}; "
                f"expected only {self.schema.names}. Ingest files with different columns separately"
            )
        arrays = []
        for f in self.schema:
            if f.name not in names:
                arrays.append(pa.nulls(batch.num_rows, f.type))
                continue
            col = batch.column(f.name)
            try:
                arrays.append(col.cast(f.type) if col.type != f.type else col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                hint = (
                    "it had no values in the first rows; declare its type in the expectations file"
                    if pa.types.is_null(f.type)
                    else "declare its type in the expectations file or fix the data"
                )
                raise InvalidInput(
                    f"column {f.name!r} changes type from {f.type} to {col.type} part-way through "
                    f"the data; {hint}"
                ) from e
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _route(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.stats.update(batch)
        if not self.partition_by:
            self._writer_for(()).write(batch)
            return
        keys = pa.Table.from_batches([batch]).select(self.partition_by)
        groups = keys.group_by(self.partition_by, use_threads=False).aggregate([])
        if groups.num_rows == 1:
            self._writer_for(tuple(groups.column(c)[0].as_py() for c in self.partition_by)).write(batch)
            return
        for i in range(groups.num_rows):
            key = tuple(groups.column(c)[i].as_py() for c in self.partition_by)
            mask = None
            for c, v in zip(self.partition_by, key, strict=False):
                m = pc.is_null(batch.column(c)) if v is None else pc.equal(batch.column(c), v)
                mask = m if mask is None else pc.and_(mask, m)
            self._writer_for(key).write(batch.filter(mask))

    def _writer_for(self, key: tuple[Any, ...]) -> _PartWriter:
        w = self._parts.get(key)
        if w is None:
            if len(self._parts) >= 10_000:
                raise InvalidInput(
                    f"partitioning by {self.partition_by} makes more than 10,000 partitions; "
                    "choose a coarser partition column"
                )
            assert self.schema is not None
            path = self._stack.enter_context(self.ws.artifacts.staging_file(".parquet"))
            w = self._parts[key] = _PartWriter(path, self.schema, self.row_group_size)
        return w

    def quarantine(self, batch: pa.RecordBatch) -> None:
        """Append rows that failed validation (with ``_row`` and ``_rule`` columns).

        Data columns are kept as text, exactly as read: bad rows are often the
        ones whose values do not fit a type, and one source can deliver a
        column with different raw types from file to file.
        """
        if batch.num_rows == 0:
            return
        batch = _as_text(batch)
        if self._quarantine is None:
            path = self._stack.enter_context(self.ws.artifacts.staging_file(".parquet"))
            self._quarantine = _PartWriter(path, batch.schema, self.row_group_size)
        elif not batch.schema.equals(self._quarantine.schema):
            names = set(batch.schema.names)
            batch = pa.RecordBatch.from_arrays(
                [batch.column(f.name) if f.name in names else pa.nulls(batch.num_rows, f.type)
                 for f in self._quarantine.schema],
                schema=self._quarantine.schema,
            )
        self._quarantine.write(batch)
        self.quarantine_count += batch.num_rows

    # -- commit -----------------------------------------------------------------------
    def commit(
        self,
        *,
        validation: Mapping[str, Any] | None = None,
        state: Mapping[str, Any] | None = None,
        lineage: Sequence[tuple[EntityRef, str]] = (),
        dedup: bool = True,
    ) -> DatasetVersionInfo:
        """Store the parts and record the version in one transaction.

        Parameters
        ----------
        validation
            Summary of the checks run on arrival.
        state
            Keys to merge into the dataset's ingestion state (e.g. a watermark).
        lineage
            Extra ``(source entity, relation)`` edges pointing at the new version.
        dedup
            If the content equals the latest version's, return that version
            instead of creating a new one.
        """
        if self._closed:
            raise LoopmlError("this DatasetWriter was already committed or aborted")
        if self.schema is None:
            if self._pending:
                self._fix_schema()
            else:
                self.schema = pa.schema([])
        today = utcnow().date().isoformat()
        new_parts: list[PartInfo] = []
        for key, w in sorted(self._parts.items(), key=lambda kv: str(kv[0])):
            rows = w.close()
            ref = self.ws.artifacts.put_file(w.path, move=True)
            partition = (
                {c: _jsonable(v) for c, v in zip(self.partition_by, key, strict=False)}
                if self.partition_by
                else {"ingest_date": today}
            )
            new_parts.append(PartInfo(ref.sha256, rows, ref.size, partition))
        q_hash = None
        if self._quarantine is not None:
            self._quarantine.close()
            q_hash = self.ws.artifacts.put_file(self._quarantine.path, move=True).sha256
        self._closed = True
        self._stack.close()
        for attempt in range(10):
            try:
                return self._record(new_parts, q_hash, validation or {}, state or {}, lineage, dedup)
            except sa_exc.IntegrityError:
                # Another process took the same version number or dataset name: retry.
                if attempt == 9:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _record(
        self,
        new_parts: list[PartInfo],
        q_hash: str | None,
        validation: Mapping[str, Any],
        state: Mapping[str, Any],
        lineage: Sequence[tuple[EntityRef, str]],
        dedup: bool,
    ) -> DatasetVersionInfo:
        assert self.schema is not None
        ws = self.ws
        with ws.meta.session(write=True) as s:
            ds = s.scalar(select(Dataset).where(Dataset.name == self.name))
            if ds is None:
                ds = Dataset(
                    id=new_id("ds"), name=self.name, description=self.description,
                    created_at=utcnow(), state={},
                )
                s.add(ds)
                s.flush()
            latest = _latest(s, ds.id)
            parts = list(new_parts)
            stats = self.stats.result()
            rows = self.rows
            if self.append and latest is not None:
                if _schema_names(latest.schema) != self.schema.names and rows:
                    raise InvalidInput(
                        f"new rows of {self.name!r} have columns {self.schema.names}, but "
                        f"{self.name}:{latest.version} has {_schema_names(latest.schema)}"
                    )
                parts = [PartInfo(p.artifact_hash, p.row_count, p.num_bytes, dict(p.partition))
                         for p in latest.parts] + parts
                rows += latest.row_count
                stats = _merge_stats(dict(latest.stats.get("columns", {})), stats)
            content_hash = sha256_strings(p.sha256 for p in parts)
            if dedup and latest is not None and latest.content_hash == content_hash:
                if state:
                    ds.state = {**ds.state, **state}
                return _info(latest, self.name, created=False)
            schema_json = (
                list(latest.schema) if self.append and latest is not None and not self.rows
                else schema_to_json(self.schema)
            )
            row = DatasetVersion(
                id=new_id("dsv"),
                dataset_id=ds.id,
                version=(latest.version + 1) if latest else 1,
                content_hash=content_hash,
                row_count=rows,
                num_bytes=sum(p.num_bytes for p in parts),
                schema=schema_json,
                stats={"columns": stats, "write_seconds": round(time.monotonic() - self._started, 3)},
                source=self.source,
                validation=dict(validation),
                quarantine_count=self.quarantine_count,
                quarantine_hash=q_hash,
                created_at=utcnow(),
            )
            row.parts = [
                DatasetPart(seq=i, artifact_hash=p.sha256, row_count=p.row_count,
                            num_bytes=p.num_bytes, partition=p.partition)
                for i, p in enumerate(parts)
            ]
            s.add(row)
            if state:
                ds.state = {**ds.state, **state}
            s.flush()
            info = _info(row, self.name)
            if self.append and latest is not None:
                ws.lineage.add(EntityRef("dataset_version", latest.id), info.entity, "extended_by", session=s)
            for src, relation in lineage:
                ws.lineage.add(src, info.entity, relation, session=s)
            ws.events.emit(
                DATASET_VERSION_CREATED,
                info.entity,
                {"dataset": self.name, "version": info.version, "rows": info.row_count,
                 "quarantined": self.quarantine_count},
                session=s,
            )
        log.info("created %s (%d rows)", info.ref, info.row_count)
        return info


def _parquet_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as Parquet will give it back: it has no seconds unit, so ``timestamp[s]`` -> ``[ms]``."""
    fields = [
        f.with_type(pa.timestamp("ms", tz=f.type.tz))
        if pa.types.is_timestamp(f.type) and f.type.unit == "s" else f
        for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def _as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    fields, arrays = [], []
    for f, col in zip(batch.schema, batch.columns, strict=True):
        keep = f.name == QUARANTINE_ROW or pa.types.is_string(f.type)
        if not keep:
            col = col.cast(pa.string()) if not pa.types.is_nested(f.type) else pa.array(
                [None if v is None else str(v) for v in col.to_pylist()], pa.string())
        fields.append(pa.field(f.name, col.type))
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _schema_names(schema: Sequence[Mapping[str, Any]]) -> list[str]:
    return [c["name"] for c in schema]


def _merge_stats(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for name, st in new.items():
        o = old.get(name)
        if o is None:
            out[name] = st
            continue
        merged = {"nulls": o["nulls"] + st["nulls"]}
        for k, pick in (("min", min), ("max", max)):
            vals = [v for v in (o.get(k), st.get(k)) if v is not None]
            merged[k] = pick(vals) if vals else None
        out[name] = merged
    return out


def _latest(s: Session, dataset_id: str) -> DatasetVersion | None:
    return s.scalar(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset_id)
        .order_by(DatasetVersion.version.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class DatasetSummary:
    """A line of ``loopml data list``."""

    name: str
    versions: int
    latest: int
    row_count: int
    created_at: datetime
    updated_at: datetime


class Catalog:
    """Browse and read the datasets of a workspace.

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.data import Catalog
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> cat = Catalog(ws)
    >>> v = cat.write("people", pd.DataFrame({"name": ["a", "b"], "age": [31, 42]}))
    >>> v.ref, v.row_count
    ('people:1', 2)
    >>> cat.read_pandas("people:1")["age"].tolist()
    [31, 42]
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- listing ------------------------------------------------------------------
    def list(self) -> list[DatasetSummary]:
        """All datasets with their latest version."""
        with self.ws.meta.session() as s:
            agg = (
                select(
                    DatasetVersion.dataset_id,
                    func.count().label("n"),
                    func.max(DatasetVersion.version).label("latest"),
                    func.max(DatasetVersion.created_at).label("updated"),
                )
                .group_by(DatasetVersion.dataset_id)
                .subquery()
            )
            q = (
                select(Dataset, agg.c.n, agg.c.latest, agg.c.updated, DatasetVersion.row_count)
                .join(agg, agg.c.dataset_id == Dataset.id)
                .join(
                    DatasetVersion,
                    (DatasetVersion.dataset_id == Dataset.id) & (DatasetVersion.version == agg.c.latest),
                )
                .order_by(Dataset.name)
            )
            return [
                DatasetSummary(ds.name, n, latest, rows, as_utc(ds.created_at), as_utc(updated))
                for ds, n, latest, updated, rows in s.execute(q)
            ]

    def versions(self, name: str) -> builtins.list[DatasetVersionInfo]:
        """Every version of a dataset, oldest first."""
        with self.ws.meta.session() as s:
            ds = self._dataset(s, name)
            return [_info(v, ds.name) for v in ds.versions]

    def get(self, ref: str, version: int | None = None) -> DatasetVersionInfo:
        """Look up ``NAME[:VER]`` (latest if no version)."""
        name, ver = parse_ref(ref)
        ver = version if version is not None else ver
        with self.ws.meta.session() as s:
            ds = self._dataset(s, name)
            if ver is None:
                row = _latest(s, ds.id)
                if row is None:
                    raise NotFound(f"dataset {name!r} has no versions yet")
            else:
                row = s.scalar(
                    select(DatasetVersion).where(
                        DatasetVersion.dataset_id == ds.id, DatasetVersion.version == ver
                    )
                )
                if row is None:
                    latest = _latest(s, ds.id)
                    raise NotFound(
                        f"dataset {name!r} has no version {ver} (latest is "
                        f"{latest.version if latest else 'none'}); see `loopml data show {name}`"
                    )
            return _info(row, ds.name)

    def state(self, name: str) -> dict[str, Any]:
        """The dataset's ingestion state (e.g. incremental watermark); empty if it does not exist."""
        with self.ws.meta.session() as s:
            ds = s.scalar(select(Dataset).where(Dataset.name == check_dataset_name(name)))
            return dict(ds.state) if ds else {}

    def _dataset(self, s: Session, name: str) -> Dataset:
        ds = s.scalar(select(Dataset).where(Dataset.name == check_dataset_name(name)))
        if ds is None:
            raise NotFound(f"no dataset named {name!r}; see `loopml data list`")
        return ds

    # -- reading ------------------------------------------------------------------
    def _parts(
        self, info: DatasetVersionInfo, where: Mapping[str, Any] | None
    ) -> builtins.list[PartInfo]:
        parts = info.parts
        if where:
            unknown = set(where) - {k for p in parts for k in p.partition}
            if unknown:
                raise InvalidInput(
                    f"{info.ref} has no partition key(s) {sorted(unknown)}; "
                    f"its partitions are {info.partitions()}"
                )
            parts = [p for p in parts if all(str(p.partition.get(k)) == str(v) for k, v in where.items())]
        return parts

    def _empty_table(self, info: DatasetVersionInfo) -> pa.Table:
        return pa.schema([pa.field(c["name"], _arrow_type(c["type"])) for c in info.schema]).empty_table()

    def read_arrow(
        self,
        ref: str | DatasetVersionInfo,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        """Read a version (hash-verified) as an Arrow table; ``where`` filters partitions."""
        info = ref if isinstance(ref, DatasetVersionInfo) else self.get(ref)
        tables = [self._read_part(p.sha256, columns) for p in self._parts(info, where)]
        if not tables:
            t = self._empty_table(info)
            return t.select(list(columns)) if columns else t
        return pa.concat_tables(tables, promote_options="permissive")

    def iter_batches(
        self, ref: str | DatasetVersionInfo, *, batch_size: int = 65_536,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream a version in record batches (bounded memory)."""
        info = ref if isinstance(ref, DatasetVersionInfo) else self.get(ref)
        for p in info.parts:
            with self.ws.artifacts.open(p.sha256) as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns)

    def _read_part(self, sha256: str, columns: Sequence[str] | None) -> pa.Table:
        with self.ws.artifacts.open(sha256) as f:
            return pq.read_table(f, columns=list(columns) if columns else None)

    def read_pandas(self, ref: str | DatasetVersionInfo, **kwargs: Any) -> pd.DataFrame:
        """Read a version as a pandas DataFrame (arguments as :meth:`read_arrow`)."""
        return self.read_arrow(ref, **kwargs).to_pandas()

    def duckdb(
        self, ref: str | DatasetVersionInfo, con: duckdb.DuckDBPyConnection | None = None,
        *, where: Mapping[str, Any] | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation over a version; lazy over the verified local files when possible."""
        import duckdb as _duckdb

        con = con or _duckdb.connect()
        info = ref if isinstance(ref, DatasetVersionInfo) else self.get(ref)
        parts = self._parts(info, where)
        if self.ws.artifacts.is_local and parts:
            paths = [self.ws.artifacts._path(p.sha256) for p in parts]
            for p in parts:
                self.ws.artifacts.verify(p.sha256)
            return con.read_parquet(paths, union_by_name=True)
        table = self.read_arrow(info, where=where)
        return con.from_arrow(table)

    def quarantine(self, ref: str | DatasetVersionInfo) -> pa.Table:
        """Rows of a version that failed validation, with ``_row`` and ``_rule`` columns."""
        info = ref if isinstance(ref, DatasetVersionInfo) else self.get(ref)
        if info.quarantine_hash is None:
            return pa.table({QUARANTINE_ROW: pa.array([], pa.int64()), QUARANTINE_RULE: pa.array([], pa.string())})
        return self._read_part(info.quarantine_hash, None)

    # -- writing, comparing, exporting ---------------------------------------------
    def write(
        self,
        name: str,
        data: pd.DataFrame | pa.Table,
        *,
        source: Mapping[str, Any] | None = None,
        partition_by: Sequence[str] = (),
    ) -> DatasetVersionInfo:
        """Store a DataFrame or Arrow table as a new version of ``name``."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        table = table.replace_schema_metadata(None)
        with DatasetWriter(
            self.ws, name, source=source or {"kind": "python", "type": type(data).__name__},
            partition_by=partition_by, schema=table.schema if table.num_rows == 0 else None,
        ) as w:
            w.write(table)
            return w.commit()

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Schema and size differences from version ``a`` to version ``b``."""
        va, vb = self.get(a), self.get(b)
        ta = {c["name"]: c["type"] for c in va.schema}
        tb = {c["name"]: c["type"] for c in vb.schema}
        return {
            "from": va.ref,
            "to": vb.ref,
            "added_columns": [{"name": n, "type": tb[n]} for n in tb if n not in ta],
            "removed_columns": [{"name": n, "type": ta[n]} for n in ta if n not in tb],
            "type_changes": [
                {"name": n, "from": ta[n], "to": tb[n]} for n in ta if n in tb and ta[n] != tb[n]
            ],
            "rows_from": va.row_count,
            "rows_to": vb.row_count,
            "row_change": vb.row_count - va.row_count,
            "same_content": va.content_hash == vb.content_hash,
            "parts_added": len({p.sha256 for p in vb.parts} - {p.sha256 for p in va.parts}),
            "parts_removed": len({p.sha256 for p in va.parts} - {p.sha256 for p in vb.parts}),
        }

    def export(self, ref: str, to: str, *, format: str | None = None) -> str:
        """Write a version to ``to`` (a path or fsspec URL) as parquet, csv or jsonl.

        The format defaults to the file extension. The target is written under a
        temporary name and renamed, so a failed export leaves nothing behind.
        """
        import fsspec

        fmt = (format or to.rsplit(".", 1)[-1]).lower()
        if fmt not in ("parquet", "csv", "jsonl", "json"):
            raise InvalidInput(f"cannot export to {fmt!r}; use --format parquet, csv or jsonl")
        info = self.get(ref)
        fs, path = fsspec.core.url_to_fs(to)
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{new_id('x')}"
        try:
            with fs.open(tmp, "wb") as out:
                _export_stream(self.iter_batches(info), out, fmt, self._empty_table(info).schema)
            fs.mv(tmp, path)
        except BaseException:
            if fs.exists(tmp):
                fs.rm(tmp)
            raise
        return to


def _export_stream(batches: Iterator[pa.RecordBatch], out: Any, fmt: str, schema: pa.Schema) -> None:
    import pyarrow.csv as pacsv

    if fmt == "parquet":
        writer: Any = None
        for b in batches:
            if writer is None:
                writer = pq.ParquetWriter(out, b.schema)
            writer.write_batch(b)
        if writer is None:
            writer = pq.ParquetWriter(out, schema)
        writer.close()
    elif fmt == "csv":
        csv_writer: Any = None
        for b in batches:
            if csv_writer is None:
                csv_writer = pacsv.CSVWriter(out, b.schema)
            csv_writer.write_batch(b)
        if csv_writer is None:
            csv_writer = pacsv.CSVWriter(out, schema)
        csv_writer.close()
    else:
        import json

        for b in batches:
            for rec in b.to_pylist():
                out.write((json.dumps(rec, default=_jsonable) + "\n").encode())


_TYPES = {
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "float": pa.float32(), "double": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
    "large_string": pa.large_string(), "date32[day]": pa.date32(), "null": pa.null(),
}


def _arrow_type(text: str) -> pa.DataType:
    if text in _TYPES:
        return _TYPES[text]
    m = re.match(r"timestamp\[(\w+)(?:, tz=(.+))?\]", text)
    if m:
        return pa.timestamp(m.group(1), tz=m.group(2))
    return pa.string()
