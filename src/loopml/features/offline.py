"""The offline store: append-only Parquet parts per feature group, queried with DuckDB.

Every ingest writes one Parquet part (the group's columns plus ``_write_time``)
into the workspace's content-addressed artifact store; the metadata records it.
DuckDB reads the verified parts for history queries, for materialization (the
latest record per id, as JSON, computed in one vectorised query) and for
point-in-time correct training sets (``ASOF LEFT JOIN``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopml.errors import InvalidInput
from loopml.features.group import (
    TIME_TYPE,
    WRITE_TIME,
    FeatureGroup,
    conform,
    conform_ids,
    to_timestamp,
)
from loopml.workspace import Workspace

log = logging.getLogger(__name__)

_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class OfflinePart:
    """One ingest's Parquet file in a group's offline store."""

    seq: int
    sha256: str
    row_count: int
    num_bytes: int
    min_event_time: datetime | None
    max_event_time: datetime | None
    source: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "seq": self.seq,
            "sha256": self.sha256,
            "row_count": self.row_count,
            "num_bytes": self.num_bytes,
            "min_event_time": self.min_event_time.isoformat() if self.min_event_time else None,
            "max_event_time": self.max_event_time.isoformat() if self.max_event_time else None,
            "source": self.source,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class WrittenPart:
    """A Parquet part stored in the artifact store but not yet recorded in metadata."""

    sha256: str
    num_bytes: int
    row_count: int
    min_event_time: datetime | None
    max_event_time: datetime | None


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set to UTC (feature times are ``TIMESTAMPTZ``)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def to_arrow(rel: duckdb.DuckDBPyRelation) -> pa.Table:
    """Materialise a DuckDB relation as an Arrow table (across DuckDB versions)."""
    fn = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    return cast(pa.Table, fn())


def quote(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


# -- writing ----------------------------------------------------------------------------------
def write_part(
    ws: Workspace, group: FeatureGroup, batches: Iterable[pa.RecordBatch | pa.Table], write_time: datetime
) -> WrittenPart | None:
    """Conform every batch to ``group`` and store them as one Parquet part.

    The file is written to a staging path and only moved into the artifact
    store once every batch passed the type checks, so a bad batch leaves
    nothing behind. Returns None when there were no rows.
    """
    schema = group.arrow_schema().append(pa.field(WRITE_TIME, TIME_TYPE, nullable=False))
    wt = pa.scalar(write_time, TIME_TYPE)
    rg = ws.settings.row_group_size
    rows = 0
    lo: Any = None
    hi: Any = None
    with ws.artifacts.staging_file(".parquet") as path:
        writer = pq.ParquetWriter(path, schema, compression="zstd")
        try:
            buffer: list[pa.Table] = []
            buffered = 0
            for batch in batches:
                table = conform(group, batch)
                if table.num_rows == 0:
                    continue
                table = table.append_column(schema.field(WRITE_TIME),
                                            pa.array(np.full(table.num_rows, wt.value), pa.int64())
                                            .cast(TIME_TYPE))
                mm = pc.min_max(table.column(group.event_time))
                b_lo, b_hi = mm["min"].as_py(), mm["max"].as_py()
                lo = b_lo if lo is None or b_lo < lo else lo
                hi = b_hi if hi is None or b_hi > hi else hi
                rows += table.num_rows
                buffer.append(table)
                buffered += table.num_rows
                if buffered >= rg:
                    writer.write_table(pa.concat_tables(buffer).combine_chunks(), row_group_size=rg)
                    buffer, buffered = [], 0
            if buffer:
                writer.write_table(pa.concat_tables(buffer).combine_chunks(), row_group_size=rg)
        finally:
            writer.close()
        if rows == 0:
            return None
        ref = ws.artifacts.put_file(path, move=True)
    return WrittenPart(ref.sha256, ref.size, rows, lo, hi)


# -- reading ----------------------------------------------------------------------------------
def relation(
    ws: Workspace, con: duckdb.DuckDBPyConnection, group: FeatureGroup, parts: Sequence[OfflinePart],
) -> duckdb.DuckDBPyRelation:
    """A DuckDB relation over ``parts`` (hash-verified first), with the group's columns + ``_write_time``."""
    if not parts:
        schema = group.arrow_schema().append(pa.field(WRITE_TIME, TIME_TYPE))
        return con.from_arrow(schema.empty_table())
    if ws.artifacts.is_local:
        paths = []
        for p in parts:
            ws.artifacts.verify(p.sha256)
            paths.append(ws.artifacts._path(p.sha256))
        return con.read_parquet(paths)
    tables = []
    for p in parts:
        with ws.artifacts.open(p.sha256) as f:
            tables.append(pq.read_table(f))
    return con.from_arrow(pa.concat_tables(tables))


def latest_records_sql(group: FeatureGroup, source: str, min_event_us: int | None = None) -> str:
    """SQL giving, per record id, the latest row of ``source`` as online records ``(k, et, v)``.

    ``v`` is the record as a JSON object (timestamps as ISO-8601 UTC strings,
    NaN and infinities as null), built by DuckDB so no Python loop touches the rows.
    """
    items = [f"'{group.record_id}', {quote(group.record_id)}",
             f"'{group.event_time}', strftime({quote(group.event_time)}, '{_ISO}')"]
    for f in group.features:
        q = quote(f.name)
        if f.type == "fractional":
            expr = f"CASE WHEN isfinite({q}) THEN {q} END"
        elif f.type == "timestamp":
            expr = f"strftime({q}, '{_ISO}')"
        else:
            expr = q
        items.append(f"'{f.name}', {expr}")
    where = f"WHERE epoch_us({quote(group.event_time)}) >= {int(min_event_us)}" if min_event_us else ""
    rid, et = quote(group.record_id), quote(group.event_time)
    return (
        f"SELECT CAST({rid} AS VARCHAR) AS k, epoch_us({et}) AS et, "
        f"CAST(json_object({', '.join(items)}) AS VARCHAR) AS v FROM {source} {where} "
        f"QUALIFY row_number() OVER (PARTITION BY {rid} ORDER BY {et} DESC, {quote(WRITE_TIME)} DESC) = 1"
    )


# -- point-in-time joins -----------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """Features picked from one group for a training set."""

    group: FeatureGroup
    features: tuple[str, ...]
    parts: tuple[OfflinePart, ...]


def parse_selections(items: Sequence[str] | str) -> list[tuple[str, list[str] | None]]:
    """``["G", "H:f1", "H:f2"]`` -> ``[("G", None), ("H", ["f1", "f2"])]`` (order kept)."""
    if isinstance(items, str):
        items = [items]
    out: dict[str, list[str] | None] = {}
    for item in items:
        name, sep, feat = str(item).partition(":")
        if not name or (sep and not feat):
            raise InvalidInput(f"cannot read feature selection {item!r}; write GROUP or GROUP:FEATURE")
        if not sep:
            out[name] = None
        elif name not in out:
            out[name] = [feat]
        elif out[name] is not None:
            sel = out[name]
            assert sel is not None
            if feat not in sel:
                sel.append(feat)
    if not out:
        raise InvalidInput("select at least one feature group (GROUP or GROUP:FEATURE)")
    return list(out.items())


def _entity_time_column(entity: pa.Table, groups: Sequence[FeatureGroup], time_column: str | None) -> str:
    if time_column is not None:
        if time_column not in entity.schema.names:
            raise InvalidInput(f"the entity rows have no time column {time_column!r}; their columns "
                               f"are {entity.schema.names}")
        return time_column
    for g in groups:
        if g.event_time in entity.schema.names:
            return g.event_time
    temporal = [f.name for f in entity.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
    if len(temporal) == 1:
        return temporal[0]
    raise InvalidInput(
        "cannot tell which column of the entity rows holds their time; pass time_column= "
        f"(the entity columns are {entity.schema.names})"
    )


def training_set(
    ws: Workspace,
    entity: pa.Table,
    selections: Sequence[Selection],
    *,
    time_column: str | None = None,
    max_age: timedelta | None = None,
    full_names: bool = False,
) -> pa.Table:
    """Feature columns for every entity row as of its time, in entity order.

    For each entity row and each group, the group's latest offline row with
    the same record id and an event time at or before the entity row's time
    is joined (DuckDB ``ASOF LEFT JOIN``); rows without one get nulls, and so
    do matches older than ``max_age``. Returns only the feature columns,
    one row per entity row in the same order.
    """
    groups = [s.group for s in selections]
    tcol = _entity_time_column(entity, groups, time_column)
    try:
        ts = to_timestamp(entity.column(tcol), numeric=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as e:
        raise InvalidInput(
            f"entity column {tcol!r} has type {entity.column(tcol).type}; it must hold times "
            "(timestamps, ISO-8601 strings or Unix seconds)"
        ) from e
    arrays: dict[str, Any] = {"__row": pa.array(np.arange(entity.num_rows, dtype=np.int64)), "__ts": ts}
    for i, g in enumerate(groups):
        if g.record_id not in entity.schema.names:
            raise InvalidInput(
                f"the entity rows lack column {g.record_id!r}, the record identifier of feature "
                f"group {g.name!r}; their columns are {entity.schema.names}"
            )
        arrays[f"__id{i}"] = conform_ids(g, entity.column(g.record_id), g.record_id)
    keys = pa.table(arrays)

    out_names: list[str] = []
    taken = set(entity.schema.names)
    for s in selections:
        for f in s.features:
            name = f"{s.group.name}__{f}" if full_names else f
            if name in taken:
                raise InvalidInput(
                    f"feature {s.group.name}:{f} would become column {name!r}, which the entity rows "
                    "or another group already have; pass full_names=True (columns GROUP__FEATURE) "
                    "or select fewer features"
                )
            taken.add(name)
            out_names.append(name)

    con = connect()
    try:
        con.register("__entities", keys)
        select = ["e.__row"]
        joins = []
        max_us = None if max_age is None else int(max_age.total_seconds() * 1_000_000)
        k = 0
        for i, s in enumerate(selections):
            g = s.group
            alias = f"g{i}"
            rel = relation(ws, con, g, s.parts)
            cols = ", ".join(quote(c) for c in s.features)
            sub = (f"SELECT {quote(g.record_id)} AS __id, {quote(g.event_time)} AS __et"
                   + (f", {cols}" if cols else ""))
            rel.create_view(f"__src{i}")
            joins.append(
                f"ASOF LEFT JOIN ({sub} FROM __src{i}) {alias} "
                f"ON e.__id{i} = {alias}.__id AND e.__ts >= {alias}.__et"
            )
            for f in s.features:
                expr = f"{alias}.{quote(f)}"
                if max_us is not None:
                    expr = (f"CASE WHEN epoch_us(e.__ts) - epoch_us({alias}.__et) <= {max_us} "
                            f"THEN {expr} END")
                select.append(f"{expr} AS {quote(out_names[k])}")
                k += 1
        # No ORDER BY: sorting in DuckDB doubled the query time (it changes the plan);
        # putting 100k rows back in entity order with Arrow takes milliseconds.
        sql = f"SELECT {', '.join(select)} FROM __entities e {' '.join(joins)}"
        result = to_arrow(con.sql(sql))
    finally:
        con.close()
    result = result.take(pc.sort_indices(result.column("__row")))
    return result.drop_columns(["__row"])


def as_arrow_entities(entity: Any) -> pa.Table:
    """An entity frame (pandas or Arrow) as an Arrow table, without the pandas index."""
    if isinstance(entity, pa.Table):
        return entity
    if isinstance(entity, pa.RecordBatch):
        return pa.Table.from_batches([entity])
    try:
        import pandas as pd

        if isinstance(entity, pd.DataFrame):
            return pa.Table.from_pandas(entity, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInput(f"cannot read the entity rows: {e}") from e
    raise InvalidInput(
        f"entity rows must be a pandas DataFrame or an Arrow table, not {type(entity).__name__}"
    )


def selections_for(
    groups: Mapping[str, FeatureGroup], parts: Mapping[str, Sequence[OfflinePart]],
    picked: Sequence[tuple[str, list[str] | None]],
) -> list[Selection]:
    """Resolve parsed selections against loaded groups (InvalidInput for unknown features)."""
    out = []
    for name, feats in picked:
        g = groups[name]
        names = g.feature_names if feats is None else [g.feature(f).name for f in feats]
        out.append(Selection(g, tuple(names), tuple(parts[name])))
    return out
