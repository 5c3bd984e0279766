"""The feature store client: registry, ingest, online reads, materialization, training sets.

:class:`FeatureStore` owns the online-store connection and a cache of group
definitions, so an online read costs one lookup in the store (no metadata
query). The module-level functions are thin wrappers that open a store for one
call; keep a :class:`FeatureStore` for serving.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Union

import pyarrow as pa
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopml._util import as_utc, new_id, utcnow
from loopml.data.catalog import Catalog, DatasetVersionInfo
from loopml.data.catalog import _arrow_type as _arrow_type  # the catalog's schema JSON -> Arrow
from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound
from loopml.features import offline
from loopml.features.group import (
    FeatureDefinition,
    FeatureGroup,
    IdType,
    check_group_name,
    infer_type,
    make_definitions,
    parse_duration,
)
from loopml.features.models import FeatureGroupPart, FeatureGroupRow
from loopml.features.online import OnlineStore, Record, now_us, open_online_store
from loopml.store.lineage import EntityRef
from loopml.workspace import Workspace

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger(__name__)

#: event types emitted by the feature store
FEATURE_GROUP_CREATED = "feature_group.created"
FEATURE_GROUP_DELETED = "feature_group.deleted"
FEATURE_GROUP_INGESTED = "feature_group.ingested"
FEATURE_GROUP_MATERIALIZED = "feature_group.materialized"

#: what :meth:`FeatureStore.ingest` accepts: a DataFrame, Arrow data, or a dataset version
Data = Union["pd.DataFrame", pa.Table, pa.RecordBatch, str, DatasetVersionInfo]
Duration = timedelta | float | str | None
E = TypeVar("E", "pd.DataFrame", pa.Table)


@dataclass(frozen=True)
class IngestResult:
    """What an ingest stored."""

    group: str
    rows: int
    #: the offline part's sequence number (None when there were no rows)
    seq: int | None
    min_event_time: datetime | None
    max_event_time: datetime | None
    #: online records written (None when the online store was not written)
    online_records: int | None
    ignored_columns: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "group": self.group, "rows": self.rows, "seq": self.seq,
            "min_event_time": self.min_event_time.isoformat() if self.min_event_time else None,
            "max_event_time": self.max_event_time.isoformat() if self.max_event_time else None,
            "online_records": self.online_records, "ignored_columns": self.ignored_columns,
            "source": self.source,
        }


@dataclass(frozen=True)
class MaterializeResult:
    """What a materialization wrote to the online store."""

    group: str
    incremental: bool
    #: offline parts read, and their sequence numbers
    parts: list[int]
    rows_read: int
    #: records offered to the online store (the latest per id) and how many were newer there
    records: int
    written: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _group_from_row(row: FeatureGroupRow) -> FeatureGroup:
    return FeatureGroup(
        name=row.name,
        record_id=row.record_id,
        event_time=row.event_time,
        features=tuple(FeatureDefinition(f["name"], f["type"]) for f in row.features),
        id_type=row.id_type,  # type: ignore[arg-type]
        description=row.description,
        owner=row.owner,
        tags=dict(row.tags),
        online=row.online,
        ttl=None if row.ttl_seconds is None else timedelta(seconds=row.ttl_seconds),
        id=row.id,
        created_at=as_utc(row.created_at),
    )


def _part_from_row(p: FeatureGroupPart) -> offline.OfflinePart:
    return offline.OfflinePart(
        seq=p.seq, sha256=p.artifact_hash, row_count=p.row_count, num_bytes=p.num_bytes,
        min_event_time=as_utc(p.min_event_time) if p.min_event_time else None,
        max_event_time=as_utc(p.max_event_time) if p.max_event_time else None,
        source=dict(p.source), created_at=as_utc(p.created_at),
    )


def _id_type(t: str, column: str) -> IdType:
    if t == "integral":
        return "integral"
    if t == "string":
        return "string"
    raise InvalidInput(f"record identifier {column!r} has type {t}; it must be integral or string")


def _key(record_id: Any) -> str:
    if isinstance(record_id, str):
        return record_id
    if isinstance(record_id, bool):
        raise InvalidInput(f"record identifier {record_id!r} must be an integer or a string")
    if hasattr(record_id, "item"):  # numpy scalars
        record_id = record_id.item()
    if isinstance(record_id, float) and record_id.is_integer():
        record_id = int(record_id)
    return str(record_id)


class _Source:
    """Incoming data as (schema, batches, source description, lineage entity)."""

    def __init__(self, ws: Workspace, data: Data) -> None:
        self.entity: EntityRef | None = None
        if isinstance(data, (str, DatasetVersionInfo)):
            cat = Catalog(ws)
            info = cat.get(data) if isinstance(data, str) else data
            self.schema = pa.schema([(c["name"], _arrow_type(c["type"])) for c in info.schema])
            self._batches: Callable[[], Iterator[pa.RecordBatch]] = lambda: cat.iter_batches(info)
            self.source = {"kind": "dataset", "dataset": info.ref, "dataset_version_id": info.id}
            self.entity = info.entity
            return
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        if not isinstance(data, pa.Table):
            import pandas as pd

            if not isinstance(data, pd.DataFrame):
                raise InvalidInput(
                    f"cannot ingest a {type(data).__name__}; give a pandas DataFrame, an Arrow "
                    "table or a dataset reference NAME[:VER]"
                )
            try:
                data = pa.Table.from_pandas(data, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise InvalidInput(f"cannot read the DataFrame: {str(e).splitlines()[0]}") from e
        table = data
        self.schema = table.schema
        self._batches = lambda: iter(table.to_batches())
        self.source = {"kind": "python", "rows": table.num_rows}

    def batches(self) -> Iterator[pa.RecordBatch]:
        return self._batches()


class FeatureStore:
    """The feature store of a workspace: groups, offline history, online records, training sets.

    Parameters
    ----------
    ws
        The workspace (its metadata holds the groups; its artifact store the offline parts).
    online_url
        Online store URL; default: the workspace's ``online_store_url`` setting
        (``sqlite:///.../online.db``, or ``redis://HOST:PORT/DB``).

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.features import FeatureStore
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> fs = FeatureStore(ws)
    >>> g = fs.create_group("cust", record_id="id", event_time="ts",
    ...                     features={"spend": "fractional"}, id_type="integral")
    >>> rows = pd.DataFrame({"id": [1, 1], "ts": pd.to_datetime(["2025-01-01", "2025-02-01"]),
    ...                      "spend": [10.0, 12.5]})
    >>> fs.ingest("cust", rows).rows
    2
    >>> fs.get_record("cust", 1)["spend"]
    12.5
    >>> fs.close(); ws.close()
    """

    def __init__(self, ws: Workspace, *, online_url: str | None = None) -> None:
        self.ws = ws
        self.online_url = online_url or ws.settings.online_store_url
        self._online: OnlineStore | None = None
        self._groups: dict[str, FeatureGroup] = {}
        #: per group: ttl in microseconds (None: no ttl); absent: not an online group
        self._hot: dict[str, int | None] = {}

    # -- lifetime ---------------------------------------------------------------------------
    @property
    def online(self) -> OnlineStore:
        """The online store (opened on first use)."""
        if self._online is None:
            self._online = open_online_store(self.online_url)
        return self._online

    def close(self) -> None:
        """Close the online store connection."""
        if self._online is not None:
            self._online.close()
            self._online = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- registry ---------------------------------------------------------------------------
    def create_group(
        self,
        name: str,
        *,
        record_id: str,
        event_time: str,
        features: Mapping[str, str] | Iterable[FeatureDefinition | tuple[str, str] | str] | None = None,
        data: Data | None = None,
        id_type: IdType | None = None,
        description: str = "",
        owner: str = "",
        tags: Mapping[str, str] | None = None,
        online: bool = True,
        ttl: Duration = None,
    ) -> FeatureGroup:
        """Register a feature group.

        Parameters
        ----------
        name
            Group name (letters, digits, ``_``, ``-``).
        record_id, event_time
            The columns identifying a record and giving its event time.
        features
            ``{"name": "type"}``, or a list of ``"name:type"`` / ``"name"`` /
            :class:`FeatureDefinition`; types are ``integral``, ``fractional``,
            ``string``, ``timestamp``. A bare name takes its type from ``data``.
            Default: every column of ``data`` but the id and event time.
        data
            A DataFrame, Arrow table or dataset reference ``NAME[:VER]`` to infer
            types from (nothing is ingested).
        id_type
            ``"integral"`` or ``"string"``; default: from ``features`` or ``data``, else string.
        description, owner, tags
            Documentation.
        online
            Keep the latest record per id in the online store.
        ttl
            Online records older than this (by event time) are not returned:
            a timedelta, seconds, or ``"30d"``-style text.

        Returns
        -------
        FeatureGroup
            The registered group.

        Raises
        ------
        Conflict
            A group of that name exists.
        InvalidInput
            A bad name, type or missing column.
        """
        check_group_name(name)
        schema = _Source(self.ws, data).schema if data is not None else None
        if schema is not None:
            for col, what in ((record_id, "record identifier"), (event_time, "event time")):
                if col not in schema.names:
                    raise InvalidInput(f"the data has no {what} column {col!r}; its columns are "
                                       f"{schema.names}")
        defs = make_definitions(features, schema, exclude=())
        explicit = {d.name: d for d in defs}
        if id_type is None:
            if record_id in explicit:
                id_type = _id_type(explicit[record_id].type, record_id)
            elif schema is not None:
                id_type = _id_type(infer_type(schema.field(record_id).type, record_id), record_id)
            else:
                id_type = "string"
        if features is None and schema is not None:
            defs = make_definitions(None, schema, exclude=(record_id, event_time))
        defs = [d for d in defs if d.name not in (record_id, event_time)]
        group = FeatureGroup(
            name=name, record_id=record_id, event_time=event_time, features=tuple(defs),
            id_type=id_type, description=description, owner=owner, tags=dict(tags or {}),
            online=online, ttl=parse_duration(ttl, "ttl"),
        )
        if not group.features:
            raise InvalidInput(f"feature group {name!r} has no features; define at least one")
        row = FeatureGroupRow(
            id=new_id("fg"), name=name, record_id=record_id, id_type=group.id_type,
            event_time=event_time, features=[f.to_dict() for f in group.features],
            description=description, owner=owner, tags=dict(group.tags), online=online,
            ttl_seconds=None if group.ttl is None else math.ceil(group.ttl.total_seconds()),
            state={}, created_at=utcnow(),
        )
        try:
            with self.ws.meta.session(write=True) as s:
                if s.scalar(select(FeatureGroupRow.id).where(FeatureGroupRow.name == name)):
                    raise Conflict(f"feature group {name!r} already exists; see `loopml features "
                                   f"describe {name}`, or delete it first")
                s.add(row)
                s.flush()
                self.ws.events.emit(FEATURE_GROUP_CREATED, EntityRef("feature_group", row.id),
                                    {"group": name, "features": len(group.features)}, session=s)
        except sa_exc.IntegrityError as e:
            raise Conflict(f"feature group {name!r} already exists (created concurrently)") from e
        if online:
            self.online.create_group(name)
        group = group.with_identity(row.id, row.created_at)
        self._remember(group)
        log.info("created feature group %s (%d features)", name, len(group.features))
        return group

    def _remember(self, group: FeatureGroup) -> None:
        self._groups[group.name] = group
        if group.online:
            self._hot[group.name] = group.ttl_us
        else:
            self._hot.pop(group.name, None)

    def _row(self, s: Session, name: str) -> FeatureGroupRow:
        row = s.scalar(select(FeatureGroupRow).where(FeatureGroupRow.name == check_group_name(name)))
        if row is None:
            self._groups.pop(name, None)
            self._hot.pop(name, None)
            raise NotFound(f"no feature group named {name!r}; see `loopml features list`")
        return row

    def group(self, name: str) -> FeatureGroup:
        """The definition of group ``name`` (read from metadata; NotFound if absent)."""
        with self.ws.meta.session() as s:
            g = _group_from_row(self._row(s, name))
        self._remember(g)
        return g

    def list_groups(self) -> list[FeatureGroup]:
        """Every feature group, by name."""
        with self.ws.meta.session() as s:
            rows = s.scalars(select(FeatureGroupRow).order_by(FeatureGroupRow.name)).all()
            return [_group_from_row(r) for r in rows]

    def parts(self, name: str) -> list[offline.OfflinePart]:
        """The offline parts of group ``name``, oldest first."""
        with self.ws.meta.session() as s:
            return [_part_from_row(p) for p in self._row(s, name).parts]

    def describe(self, name: str) -> dict[str, Any]:
        """The group's definition with its offline parts, row counts, materialization state
        and (for online groups) the number of online records."""
        with self.ws.meta.session() as s:
            row = self._row(s, name)
            g = _group_from_row(row)
            parts = [_part_from_row(p) for p in row.parts]
            state = dict(row.state)
        self._remember(g)
        times = [t for p in parts for t in (p.min_event_time, p.max_event_time) if t is not None]
        up = self.ws.lineage.upstream(EntityRef("feature_group", g.id), depth=1)
        return {
            **g.to_dict(),
            "offline": {
                "parts": [p.to_dict() for p in parts],
                "rows": sum(p.row_count for p in parts),
                "bytes": sum(p.num_bytes for p in parts),
                "min_event_time": min(times).isoformat() if times else None,
                "max_event_time": max(times).isoformat() if times else None,
            },
            "materialized": state.get("materialized"),
            "online_records": self.online.count(name) if g.online else None,
            "lineage": [{"from": str(e.src), "relation": e.relation} for e in up],
        }

    def delete_group(self, name: str) -> None:
        """Delete a group: its online records, then its definition and offline part records.

        The Parquet files stay in the content-addressed artifact store.
        """
        g = self.group(name)
        self.online.drop_group(name)
        with self.ws.meta.session(write=True) as s:
            row = self._row(s, name)
            s.delete(row)
            s.flush()
            self.ws.events.emit(FEATURE_GROUP_DELETED, EntityRef("feature_group", g.id),
                                {"group": name}, session=s)
        self._groups.pop(name, None)
        self._hot.pop(name, None)
        log.info("deleted feature group %s", name)

    # -- ingest -------------------------------------------------------------------------------
    def ingest(
        self,
        name: str,
        data: Data,
        *,
        online: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Type-check ``data`` against the group and append it to the offline store.

        Parameters
        ----------
        name
            The feature group.
        data
            A pandas DataFrame, Arrow table, or dataset version reference ``NAME[:VER]``.
            Columns that are not in the group are ignored (and reported).
        online
            Also write the latest record per id to the online store; default:
            when the group is online.
        progress
            Called with the number of rows checked so far.

        Returns
        -------
        IngestResult

        Raises
        ------
        InvalidInput
            A missing id/event-time/feature column or a value of the wrong type,
            naming the column. Nothing is stored in that case.
        """
        g = self.group(name)
        if online and not g.online:
            raise InvalidInput(f"feature group {name!r} has no online store; ingest with "
                               "online=False or recreate the group with online=True")
        src = _Source(self.ws, data)
        ignored = [c for c in src.schema.names if c not in g.columns]
        write_time = utcnow()
        seen = 0

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal seen
            for b in src.batches():
                yield b
                seen += b.num_rows
                if progress is not None:
                    progress(seen)

        # An empty input still goes through the column checks.
        written = offline.write_part(self.ws, g, _with_empty(batches(), src.schema), write_time)
        if written is None:
            return IngestResult(g.name, 0, None, None, None, None, ignored, src.source)
        seq = self._record_part(g, written, src, write_time)
        online_records = None
        if g.online if online is None else online:
            part = offline.OfflinePart(seq, written.sha256, written.row_count, written.num_bytes,
                                       written.min_event_time, written.max_event_time)
            try:
                online_records = self._write_online(g, [part])[1]
            except Exception as e:
                raise LoopmlError(
                    f"{written.row_count} rows were stored offline (part {seq}) but writing the "
                    f"online store failed: {e}; run `loopml features materialize {name} "
                    "--incremental` to retry"
                ) from e
            self._advance_watermark(g, seq, only_if_next=True)
        log.info("ingested %d rows into feature group %s (part %d)", written.row_count, name, seq)
        return IngestResult(g.name, written.row_count, seq, written.min_event_time,
                            written.max_event_time, online_records, ignored, src.source)

    def _record_part(self, g: FeatureGroup, w: offline.WrittenPart, src: _Source,
                     write_time: datetime) -> int:
        for attempt in range(10):
            try:
                with self.ws.meta.session(write=True) as s:
                    row = self._row(s, g.name)
                    if row.id != g.id:
                        raise Conflict(f"feature group {g.name!r} was deleted and re-created "
                                       "during the ingest; ingest again")
                    last = s.scalar(select(func.max(FeatureGroupPart.seq))
                                    .where(FeatureGroupPart.group_id == row.id))
                    seq = (last or 0) + 1
                    s.add(FeatureGroupPart(
                        group_id=row.id, seq=seq, artifact_hash=w.sha256, row_count=w.row_count,
                        num_bytes=w.num_bytes, min_event_time=w.min_event_time,
                        max_event_time=w.max_event_time, source=src.source, created_at=write_time,
                    ))
                    s.flush()
                    ref = EntityRef("feature_group", row.id)
                    if src.entity is not None:
                        self.ws.lineage.add(src.entity, ref, "ingested_into", session=s)
                    self.ws.events.emit(FEATURE_GROUP_INGESTED, ref,
                                        {"group": g.name, "seq": seq, "rows": w.row_count,
                                         "source": src.source}, session=s)
                return seq
            except sa_exc.IntegrityError:
                # another ingest took the same sequence number: retry
                if attempt == 9:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _advance_watermark(self, g: FeatureGroup, seq: int, *, only_if_next: bool,
                           extra: Mapping[str, Any] | None = None) -> None:
        with self.ws.meta.session(write=True) as s:
            row = self._row(s, g.name)
            state = dict(row.state)
            done = int(state.get("materialized_seq", 0))
            if only_if_next and done != seq - 1:
                return
            state["materialized_seq"] = max(done, seq)
            if extra:
                state["materialized"] = dict(extra)
            row.state = state

    def _write_online(
        self, g: FeatureGroup, parts: Sequence[offline.OfflinePart],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Upsert the latest record per id of ``parts``; returns (records offered, written)."""
        con = offline.connect()
        try:
            offline.relation(self.ws, con, g, parts).create_view("__src")
            cutoff = None if g.ttl_us is None else now_us() - g.ttl_us
            reader = con.sql(offline.latest_records_sql(g, "__src", cutoff)).to_arrow_reader(100_000)
            offered = written = 0
            for batch in reader:
                written += self.online.put(g.name, pa.Table.from_batches([batch]), ttl_us=g.ttl_us)
                offered += batch.num_rows
                if progress is not None:
                    progress(offered)
        finally:
            con.close()
        return offered, written

    # -- materialization -----------------------------------------------------------------------
    def materialize(
        self, name: str, *, incremental: bool = False, progress: Callable[[int], None] | None = None,
    ) -> MaterializeResult:
        """Load the latest record per id from the offline store into the online store.

        Parameters
        ----------
        name
            The feature group (must be online).
        incremental
            Only read the parts ingested since the last materialization
            (the watermark is kept in the group's metadata); otherwise all parts.
        progress
            Called with the number of records written so far.

        Returns
        -------
        MaterializeResult
        """
        t0 = time.perf_counter()
        with self.ws.meta.session() as s:
            row = self._row(s, name)
            g = _group_from_row(row)
            parts = [_part_from_row(p) for p in row.parts]
            done = int(row.state.get("materialized_seq", 0))
        self._remember(g)
        if not g.online:
            raise InvalidInput(f"feature group {name!r} has no online store; nothing to materialize")
        if incremental:
            parts = [p for p in parts if p.seq > done]
        offered = written = 0
        if parts:
            offered, written = self._write_online(g, parts, progress)
        result = MaterializeResult(
            group=name, incremental=incremental, parts=[p.seq for p in parts],
            rows_read=sum(p.row_count for p in parts), records=offered, written=written,
            seconds=round(time.perf_counter() - t0, 3),
        )
        self._advance_watermark(
            g, max((p.seq for p in parts), default=done), only_if_next=False,
            extra={"at": utcnow().isoformat(), "incremental": incremental,
                   "parts": len(parts), "records": offered},
        )
        with self.ws.meta.session(write=True) as s:
            self.ws.events.emit(FEATURE_GROUP_MATERIALIZED, EntityRef("feature_group", g.id),
                                {"group": name, "incremental": incremental, "records": offered},
                                session=s)
        log.info("materialized %d records of feature group %s", offered, name)
        return result

    # -- offline reads --------------------------------------------------------------------------
    def offline(self, name: str, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation over the group's whole offline history (every ingested row)."""
        g = self.group(name)
        return offline.relation(self.ws, con or offline.connect(), g, self.parts(name))

    def get_training_set(
        self,
        entity: E,
        features: Sequence[str] | str,
        *,
        time_column: str | None = None,
        max_age: Duration = None,
        full_names: bool = False,
    ) -> E:
        """Point-in-time correct features for each entity row.

        For every row of ``entity`` (a record id and a time) and each selected
        group, the group's latest offline values with an event time at or
        before the row's time are joined. Every entity row is kept, in order;
        features are null where no earlier record exists (or it is older than
        ``max_age``). Later values never leak into earlier rows.

        Parameters
        ----------
        entity
            pandas DataFrame or Arrow table with each group's record id column
            and a time column.
        features
            ``"GROUP"`` (all its features) or ``"GROUP:FEATURE"`` items.
        time_column
            The entity time column; default: the first group's event-time column
            name if present, else the only timestamp column.
        max_age
            Ignore matches older than this (timedelta, seconds, or ``"30d"``).
        full_names
            Name columns ``GROUP__FEATURE`` instead of ``FEATURE``.

        Returns
        -------
        pandas.DataFrame or pyarrow.Table
            The entity rows (same index and order) with the feature columns added.
        """
        picked = offline.parse_selections(features)
        groups = {n: self.group(n) for n, _ in picked}
        parts = {n: self.parts(n) for n in groups}
        selections = offline.selections_for(groups, parts, picked)
        table = offline.as_arrow_entities(entity)
        feats = offline.training_set(
            self.ws, table, selections, time_column=time_column,
            max_age=parse_duration(max_age, "max_age"), full_names=full_names,
        )
        if isinstance(entity, pa.Table):
            out = entity
            for name, col in zip(feats.column_names, feats.columns, strict=True):
                out = out.append_column(name, col)
            return out
        import pandas as pd

        df = feats.to_pandas().set_axis(entity.index)
        return pd.concat([entity, df], axis=1)

    # -- online reads ----------------------------------------------------------------------------
    def _online_ttl(self, name: str) -> int | None:
        if name not in self._hot:
            g = self._groups.get(name) or self.group(name)
            if not g.online:
                raise InvalidInput(f"feature group {name!r} has no online store; read its history "
                                   "with get_training_set or offline()")
        return self._hot[name]

    def get_record(self, name: str, record_id: Any, features: Sequence[str] | None = None) -> Record | None:
        """The latest online record of ``record_id`` as a dict, or None.

        None when the id was never ingested, was deleted, or its event time
        is older than the group's TTL. Timestamps come back as ISO-8601 UTC strings.
        """
        ttl = self._hot[name] if name in self._hot else self._online_ttl(name)
        rec = self.online.get(name, _key(record_id), None if ttl is None else now_us() - ttl)
        if rec is None or features is None:
            return rec
        return self._select(name, rec, features)

    def batch_get(self, name: str, record_ids: Sequence[Any],
                  features: Sequence[str] | None = None) -> list[Record | None]:
        """Records of many ids with one query, in the order of ``record_ids`` (None where absent)."""
        ttl = self._hot[name] if name in self._hot else self._online_ttl(name)
        recs = self.online.get_many(name, [_key(i) for i in record_ids],
                                    None if ttl is None else now_us() - ttl)
        if features is None:
            return recs
        return [None if r is None else self._select(name, r, features) for r in recs]

    def batch_get_frame(self, name: str, record_ids: Sequence[Any],
                        features: Sequence[str] | None = None) -> pd.DataFrame:
        """:meth:`batch_get` as a DataFrame: one row per id (nulls where absent)."""
        import pandas as pd

        g = self._groups.get(name) or self.group(name)
        cols = list(features) if features is not None else g.columns
        recs = self.batch_get(name, record_ids, features)
        return pd.DataFrame.from_records([r or {} for r in recs], columns=cols)

    def _select(self, name: str, rec: Record, features: Sequence[str]) -> Record:
        g = self._groups[name]
        out = {}
        for f in features:
            if f not in rec and f not in g.columns:
                g.feature(f)  # raises, naming the group's features
            out[f] = rec.get(f)
        return out

    def delete_record(self, name: str, record_id: Any, event_time: datetime | None = None) -> bool:
        """Delete a record from the online store (the offline history is kept).

        A tombstone with ``event_time`` (default: now) is kept, so records with
        an older event time that arrive later do not bring it back; a newer one
        does. Returns True if a live record was deleted.
        """
        self._online_ttl(name)
        et = now_us() if event_time is None else int(as_utc(event_time).timestamp() * 1_000_000)
        return self.online.delete(name, _key(record_id), et)


def _with_empty(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The batches, or one empty batch of ``schema`` if there are none (so columns get checked)."""
    any_batch = False
    for b in batches:
        any_batch = True
        yield b
    if not any_batch:
        yield pa.RecordBatch.from_pylist([], schema=schema)


# -- module-level helpers --------------------------------------------------------------------------
def create_feature_group(ws: Workspace, name: str, **kwargs: Any) -> FeatureGroup:
    """Register a feature group; see :meth:`FeatureStore.create_group` for the arguments.

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.features import create_feature_group
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> g = create_feature_group(ws, "cust", record_id="id", event_time="ts",
    ...                          features=["spend:fractional", "plan:string"])
    >>> g.feature_names
    ['spend', 'plan']
    >>> ws.close()
    """
    with FeatureStore(ws) as fs:
        return fs.create_group(name, **kwargs)


def describe_feature_group(ws: Workspace, name: str) -> dict[str, Any]:
    """See :meth:`FeatureStore.describe`."""
    with FeatureStore(ws) as fs:
        return fs.describe(name)


def list_feature_groups(ws: Workspace) -> list[FeatureGroup]:
    """See :meth:`FeatureStore.list_groups`."""
    with FeatureStore(ws) as fs:
        return fs.list_groups()


def delete_feature_group(ws: Workspace, name: str) -> None:
    """See :meth:`FeatureStore.delete_group`."""
    with FeatureStore(ws) as fs:
        fs.delete_group(name)


def ingest(ws: Workspace, name: str, data: Data, *, online: bool | None = None) -> IngestResult:
    """See :meth:`FeatureStore.ingest`."""
    with FeatureStore(ws) as fs:
        return fs.ingest(name, data, online=online)


def materialize(ws: Workspace, name: str, *, incremental: bool = False) -> MaterializeResult:
    """See :meth:`FeatureStore.materialize`."""
    with FeatureStore(ws) as fs:
        return fs.materialize(name, incremental=incremental)


def get_record(ws: Workspace, name: str, record_id: Any,
               features: Sequence[str] | None = None) -> Record | None:
    """See :meth:`FeatureStore.get_record` (keep a FeatureStore open for repeated reads)."""
    with FeatureStore(ws) as fs:
        return fs.get_record(name, record_id, features)


def batch_get(ws: Workspace, name: str, record_ids: Sequence[Any],
              features: Sequence[str] | None = None) -> list[Record | None]:
    """See :meth:`FeatureStore.batch_get` (keep a FeatureStore open for repeated reads)."""
    with FeatureStore(ws) as fs:
        return fs.batch_get(name, record_ids, features)


def delete_record(ws: Workspace, name: str, record_id: Any, event_time: datetime | None = None) -> bool:
    """See :meth:`FeatureStore.delete_record`."""
    with FeatureStore(ws) as fs:
        return fs.delete_record(name, record_id, event_time)


def get_training_set(
    ws: Workspace, entity: E, features: Sequence[str] | str, *, time_column: str | None = None,
    max_age: Duration = None, full_names: bool = False,
) -> E:
    """Point-in-time correct training set; see :meth:`FeatureStore.get_training_set`.

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.features import create_feature_group, ingest, get_training_set
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> _ = create_feature_group(ws, "cust", record_id="id", event_time="ts",
    ...                          features={"spend": "fractional"}, id_type="integral")
    >>> _ = ingest(ws, "cust", pd.DataFrame({
    ...     "id": [1, 1], "ts": pd.to_datetime(["2025-01-01", "2025-03-01"]), "spend": [1.0, 9.0]}))
    >>> labels = pd.DataFrame({"id": [1, 1, 2],
    ...                        "ts": pd.to_datetime(["2024-12-01", "2025-02-01", "2025-02-01"])})
    >>> get_training_set(ws, labels, ["cust"])["spend"].tolist()
    [nan, 1.0, nan]
    >>> ws.close()
    """
    with FeatureStore(ws) as fs:
        return fs.get_training_set(entity, features, time_column=time_column, max_age=max_age,
                                   full_names=full_names)
