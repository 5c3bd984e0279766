"""The metrics table: named time series with dimensions, and statistics over periods.

Writers (the serving app, monitoring jobs) add points with :meth:`MetricsTable.put`
or, in batches, :meth:`MetricsTable.put_many`; readers (deployment guardrails,
alarms, triggers, the CLI) ask for raw points with :meth:`MetricsTable.query` or
for a statistic per period with :meth:`MetricsTable.statistic`.

A series is a metric name plus one set of dimensions. Series rows are created on
first use and their ids cached, so a batch of points costs one transaction and
one ``executemany`` (``COPY`` on PostgreSQL) of ``(series, time, value)`` rows.
Times are stored as seconds since the epoch (UTC).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import sqlalchemy as sa

from loopml._util import as_utc, check_name, utcnow
from loopml.errors import InvalidInput
from loopml.metrics.models import MetricPointRow, MetricSeries

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from loopml.workspace import Workspace

#: statistics computed by the database
SQL_STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
_SQL_AGG = {"Average": "AVG", "Sum": "SUM", "Minimum": "MIN", "Maximum": "MAX",
            "SampleCount": "COUNT"}
_PERCENTILE = re.compile(r"^[pP](\d{1,2}(?:\.\d+)?|100(?:\.0+)?)$")
#: at most this many dimensions per point (as CloudWatch)
MAX_DIMENSIONS = 30
_MAX_DIM_KEY = 255
_MAX_DIM_VALUE = 1024
#: PostgreSQL batches at least this big go through COPY instead of executemany
_COPY_MIN_ROWS = 200

_Items = tuple[tuple[str, str], ...]
_SERIES = cast(sa.Table, MetricSeries.__table__)
_POINTS = cast(sa.Table, MetricPointRow.__table__)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One data point: a metric name, its value, its dimensions and when it was measured.

    Parameters
    ----------
    name
        The metric, e.g. ``"ModelLatency"``.
    value
        A finite number.
    dimensions
        What the point describes, e.g. ``{"endpoint": "churn", "variant": "v1"}``.
    timestamp
        When it was measured (timezone-aware; a naive datetime is read as UTC).
        Defaults to now.
    """

    name: str
    value: float
    dimensions: dict[str, str] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (the time in ISO-8601)."""
        return {"name": self.name, "value": self.value, "dimensions": dict(self.dimensions),
                "timestamp": self.timestamp.isoformat()}


@dataclass(frozen=True)
class MetricInfo:
    """A metric name with how many series (dimension sets) and points it has, and their span."""

    name: str
    series: int
    points: int
    first: datetime | None
    last: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {"name": self.name, "series": self.series, "points": self.points,
                "first": self.first.isoformat() if self.first else None,
                "last": self.last.isoformat() if self.last else None}


# -- validation and canonical forms ------------------------------------------------------
def normalize_statistic(statistic: str) -> str:
    """Return the canonical spelling of ``statistic`` (``Average``, ..., ``p99``), or raise.

    Examples
    --------
    >>> normalize_statistic("average"), normalize_statistic("P99.9")
    ('Average', 'p99.9')
    """
    if isinstance(statistic, str):
        for s in SQL_STATISTICS:
            if statistic.lower() == s.lower():
                return s
        m = _PERCENTILE.match(statistic)
        if m and 0 < float(m.group(1)) <= 100:
            return "p" + m.group(1)
    raise InvalidInput(
        f"unknown statistic {statistic!r}; use one of {', '.join(SQL_STATISTICS)} "
        "or a percentile such as p50, p90, p99 or p99.9"
    )


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def dim_key(dimensions: Mapping[str, str]) -> str:
    """The canonical key of a dimension set: sorted ``k=v`` pairs joined by ``,``.

    ``\\``, ``,`` and ``=`` inside keys and values are escaped with ``\\``.

    Examples
    --------
    >>> dim_key({"variant": "v1", "endpoint": "churn"})
    'endpoint=churn,variant=v1'
    """
    return ",".join(f"{_escape(k)}={_escape(v)}" for k, v in sorted(dimensions.items()))


def check_dimensions(dimensions: Mapping[str, str] | None, what: str = "dimensions") -> dict[str, str]:
    """Return ``dimensions`` as a plain dict of strings, or raise :class:`InvalidInput`."""
    if dimensions is None:
        return {}
    if not isinstance(dimensions, Mapping):
        raise InvalidInput(f"{what} must be a dict of name -> value strings, got {type(dimensions).__name__}")
    if len(dimensions) > MAX_DIMENSIONS:
        raise InvalidInput(f"{what} has {len(dimensions)} entries; at most {MAX_DIMENSIONS} are allowed")
    out: dict[str, str] = {}
    for k, v in dimensions.items():
        if not isinstance(k, str) or not k or len(k) > _MAX_DIM_KEY:
            raise InvalidInput(f"{what} key {k!r} must be a non-empty string of at most {_MAX_DIM_KEY} characters")
        if not isinstance(v, str) or len(v) > _MAX_DIM_VALUE:
            raise InvalidInput(
                f"{what} value {v!r} of {k!r} must be a string of at most {_MAX_DIM_VALUE} characters "
                f"(e.g. str({v!r}))"
            )
        out[k] = v
    return out


def _epoch(ts: datetime | float | None, what: str = "timestamp") -> float:
    """Seconds since the epoch of ``ts`` (a datetime, naive = UTC, or already a number)."""
    if ts is None:
        return time.time()
    if isinstance(ts, datetime):
        return as_utc(ts).timestamp()
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts):
        return float(ts)
    raise InvalidInput(f"{what} must be a datetime (UTC), got {ts!r}")


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _value(v: Any, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidInput(f"metric {name!r}: value {v!r} is not a number") from None
    if not math.isfinite(f):
        raise InvalidInput(f"metric {name!r}: value {v!r} must be a finite number (not NaN or infinity)")
    return f


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*(?:ago)?\s*$", re.I)
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """Read a time: ISO-8601 (``2026-01-02T03:04:05Z``; naive = UTC), ``now``, or an age
    such as ``30s``, ``15m``, ``2h``, ``1d``, ``1w`` (that long before ``now``).

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> now = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)
    >>> parse_time("2h", now=now).isoformat()
    '2026-01-02T10:00:00+00:00'
    >>> parse_time("2026-01-02T03:04:05Z").isoformat()
    '2026-01-02T03:04:05+00:00'
    """
    now = as_utc(now) if now is not None else utcnow()
    s = (text or "").strip()
    if s.lower() == "now":
        return now
    m = _RELATIVE.match(s)
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2).lower()])
    try:
        return as_utc(datetime.fromisoformat(s))
    except ValueError:
        raise InvalidInput(
            f"time {text!r} is not understood; use ISO-8601 (2026-01-02T03:04:05Z) "
            "or an age such as 30s, 15m, 2h, 1d"
        ) from None


# -- the table ---------------------------------------------------------------------------
class MetricsTable:
    """Time series of the workspace (the CloudWatch role): ``ws.metrics``.

    Parameters
    ----------
    ws
        The workspace whose metadata store holds the points.

    Examples
    --------
    >>> import tempfile, loopml
    >>> from datetime import datetime, timezone
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> for i, ms in enumerate([10.0, 20.0, 30.0]):
    ...     ws.metrics.put("ModelLatency", ms, dimensions={"endpoint": "churn"},
    ...                    timestamp=t0 + timedelta(seconds=20 * i))
    >>> ws.metrics.statistic("ModelLatency", "Average", period_s=60)
    [(datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), 20.0)]
    >>> ws.close()
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        #: (name, sorted dimension items) -> series id; series are never deleted
        self._series_ids: dict[tuple[str, _Items], int] = {}
        self._names_ok: set[str] = set()
        self._dialect = ws.meta.dialect
        self._ph = ph = "?" if self._dialect == "sqlite" else "%s"
        self._insert_sql = (
            f'INSERT INTO metric_points (series_id, "timestamp", "value") VALUES ({ph}, {ph}, {ph})'
        )

    # -- writing ----------------------------------------------------------------------
    def put(
        self,
        name: str,
        value: float,
        *,
        dimensions: Mapping[str, str] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Add one point (now, unless ``timestamp`` is given). Batch with :meth:`put_many`."""
        self.put_many([MetricPoint(name, value, dict(dimensions or {}), timestamp or utcnow())])

    def put_many(self, points: Iterable[MetricPoint]) -> int:
        """Add points in one transaction and one batched insert; return how many.

        The whole batch is checked first: one bad point (an invalid name or
        dimension, a non-finite value) raises :class:`~loopml.errors.InvalidInput`
        and nothing is written.
        """
        rows: list[list[Any]] = []
        new: dict[tuple[str, _Items], list[list[Any]]] = {}
        cache = self._series_ids
        names_ok = self._names_ok
        for p in points:
            if not isinstance(p, MetricPoint):
                raise InvalidInput(f"put_many takes MetricPoint objects, got {type(p).__name__}")
            name = p.name
            if name not in names_ok:
                check_name(name, "metric")
                names_ok.add(name)
            dims = p.dimensions
            try:
                items: _Items = tuple(sorted(dims.items())) if dims else ()
            except (AttributeError, TypeError):
                items = tuple(check_dimensions(dims, f"dimensions of metric {name!r}").items())
            key = (name, items)
            row = [cache.get(key), _epoch(p.timestamp, f"timestamp of metric {name!r}"), _value(p.value, name)]
            if row[0] is None:
                if key not in new:
                    check_dimensions(dims, f"dimensions of metric {name!r}")
                    new[key] = []
                new[key].append(row)
            rows.append(row)
        if not rows:
            return 0
        with self.ws.meta.session(write=True) as s:
            conn = s.connection()
            ids = self._resolve_series(conn, list(new)) if new else {}
            for key, pending in new.items():
                for row in pending:
                    row[0] = ids[key]
            self._insert_points(conn, rows)
        if ids:
            with self._lock:
                cache.update(ids)
        return len(rows)

    def _resolve_series(self, conn: Connection, keys: list[tuple[str, _Items]]) -> dict[tuple[str, _Items], int]:
        """Create the series of ``keys`` that do not exist yet; return every key's id."""
        table = _SERIES
        stmt: Any
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table).on_conflict_do_nothing(index_elements=["name", "dim_key"])
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=["name", "dim_key"])
        now = utcnow()
        by_dk = {(name, dim_key(dict(items))): (name, items) for name, items in keys}
        conn.execute(stmt, [{"name": n, "dim_key": dk, "dimensions": dict(by_dk[(n, dk)][1]),
                             "created_at": now} for n, dk in by_dk])
        out: dict[tuple[str, _Items], int] = {}
        names = sorted({n for n, _ in keys})
        q = sa.select(table.c.id, table.c.name, table.c.dim_key).where(table.c.name.in_(names))
        for sid, name, dk in conn.execute(q):
            key = by_dk.get((name, dk))
            if key is not None:
                out[key] = int(sid)
        return out

    def _insert_points(self, conn: Connection, rows: list[list[Any]]) -> None:
        # Rows are already in column order: hand them to the driver as they are
        # (SQLAlchemy's per-row parameter processing costs more than the insert).
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if self._dialect == "postgresql" and len(rows) >= _COPY_MIN_ROWS:
                with cur.copy('COPY metric_points (series_id, "timestamp", "value") FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cur.executemany(self._insert_sql, rows)
        finally:
            cur.close()

    def prune(self, older_than: datetime | timedelta) -> int:
        """Delete points older than a time (or an age, e.g. ``timedelta(days=14)``); return how many."""
        if isinstance(older_than, timedelta):
            cutoff = time.time() - older_than.total_seconds()
        else:
            cutoff = _epoch(older_than, "older_than")
        t = _POINTS
        series = sa.select(_SERIES.c.id)
        with self.ws.meta.session(write=True) as s:
            res = s.execute(sa.delete(t).where(t.c.series_id.in_(series), t.c.timestamp < cutoff))
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    # -- reading ----------------------------------------------------------------------
    def _matching_series(self, conn: Connection, name: str,
                         dimensions: Mapping[str, str] | None) -> dict[int, dict[str, str]]:
        """Series of ``name`` whose dimensions include every given ``key=value``."""
        check_name(name, "metric")
        want = check_dimensions(dimensions)
        t = _SERIES
        out: dict[int, dict[str, str]] = {}
        for sid, dims in conn.execute(sa.select(t.c.id, t.c.dimensions).where(t.c.name == name)):
            if isinstance(dims, str):  # pragma: no cover - a driver without JSON decoding
                dims = json.loads(dims)
            if all(dims.get(k) == v for k, v in want.items()):
                out[int(sid)] = dims
        return out

    @staticmethod
    def _range(since: datetime | None, until: datetime | None) -> tuple[float | None, float | None]:
        lo = _epoch(since, "since") if since is not None else None
        hi = _epoch(until, "until") if until is not None else None
        if lo is not None and hi is not None and hi < lo:
            raise InvalidInput(f"until ({_dt(hi).isoformat()}) is before since ({_dt(lo).isoformat()})")
        return lo, hi

    def _where(self, ids: Sequence[int], lo: float | None, hi: float | None) -> tuple[str, list[Any]]:
        """A WHERE clause over series ``ids`` and a time range, with its positional parameters."""
        ph = self._ph
        params: list[Any] = list(ids)
        clause = f"series_id IN ({', '.join([ph] * len(ids))})"
        if lo is not None:
            clause += f' AND "timestamp" >= {ph}'
            params.append(lo)
        if hi is not None:
            clause += f' AND "timestamp" < {ph}'
            params.append(hi)
        return clause, params

    @staticmethod
    def _fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the driver's own cursor: plain tuples, none of SQLAlchemy's row objects
        (they cost more than the database's work for 100,000 points)."""
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def query(
        self,
        name: str,
        *,
        dimensions: Mapping[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[MetricPoint]:
        """Points of ``name``, oldest first.

        Parameters
        ----------
        name
            The metric.
        dimensions
            Keep series whose dimensions include every given ``key=value``
            (a subset match: ``{"endpoint": "churn"}`` matches every variant).
        since, until
            Time range, ``since <= t < until``.
        limit
            Keep only the newest ``limit`` points.
        """
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
        lo, hi = self._range(since, until)
        with self.ws.meta.session() as s:
            conn = s.connection()
            series = self._matching_series(conn, name, dimensions)
            if not series:
                return []
            clause, params = self._where(list(series), lo, hi)
            sql = f'SELECT series_id, "timestamp", "value" FROM metric_points WHERE {clause}'
            if limit is not None:
                sql += f' ORDER BY "timestamp" DESC, id DESC LIMIT {self._ph}'
                params.append(limit)
            else:
                sql += ' ORDER BY "timestamp", id'
            rows = self._fetch(conn, sql, params)
        if limit is not None:
            rows.reverse()
        return [MetricPoint(name, float(v), dict(series[sid]), _dt(ts)) for sid, ts, v in rows]

    def statistic(
        self,
        name: str,
        statistic: str,
        *,
        period_s: float,
        dimensions: Mapping[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[datetime, float]]:
        """A statistic of ``name`` per period: ``[(bucket start, value), ...]``, oldest first.

        Buckets are ``period_s`` long and aligned to the epoch (a 60 s bucket
        starts on a whole minute); only buckets with data are returned. Points
        of every series matching ``dimensions`` (subset match) are pooled.

        Parameters
        ----------
        name
            The metric.
        statistic
            ``Average``, ``Sum``, ``Minimum``, ``Maximum``, ``SampleCount``, or a
            percentile ``pNN`` (``p50``, ``p90``, ``p99``, ``p99.9``; linear
            interpolation between the bucket's values).
        period_s
            Bucket length in seconds (> 0).
        dimensions, since, until
            As in :meth:`query`.
        """
        stat = normalize_statistic(statistic)
        period = _check_period(period_s)
        lo, hi = self._range(since, until)
        return [(_dt(start), v) for start, v in self._buckets(name, stat, period, dimensions, lo, hi, 0.0)]

    def recent(
        self,
        name: str,
        statistic: str,
        *,
        period_s: float,
        periods: int,
        dimensions: Mapping[str, str] | None = None,
        until: datetime | None = None,
    ) -> list[tuple[datetime, float | None]]:
        """The last ``periods`` periods ending at ``until`` (default now), oldest first.

        Unlike :meth:`statistic`, buckets are anchored at ``until`` (the last one
        is ``[until - period_s, until)``) and every one is returned, with
        ``None`` where it holds no data. This is the window an alarm evaluates.
        """
        stat = normalize_statistic(statistic)
        period = _check_period(period_s)
        if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
            raise InvalidInput(f"periods must be a positive integer, got {periods!r}")
        end = _epoch(until, "until")
        start = end - periods * period
        values: list[float | None] = [None] * periods
        for b_start, v in self._buckets(name, stat, period, dimensions, start, end, start):
            i = round((b_start - start) / period)
            if 0 <= i < periods:
                values[i] = v
        return [(_dt(start + i * period), v) for i, v in enumerate(values)]

    def _buckets(self, name: str, stat: str, period: float, dimensions: Mapping[str, str] | None,
                 lo: float | None, hi: float | None, origin: float) -> list[tuple[float, float]]:
        """``[(bucket start in epoch seconds, value)]`` of buckets ``origin + k * period``."""
        with self.ws.meta.session() as s:
            conn = s.connection()
            series = self._matching_series(conn, name, dimensions)
            if not series:
                return []
            clause, params = self._where(list(series), lo, hi)
            if stat in _SQL_AGG:
                # origin and period are numbers we made: inline them, repr() keeps every digit
                x = f'(("timestamp" - ({origin!r})) / ({period!r}))'
                if self._dialect == "sqlite":  # floor() is optional in SQLite builds
                    bucket = f"(CAST({x} AS INTEGER) - ({x} < CAST({x} AS INTEGER)))"
                else:
                    bucket = f"CAST(floor({x}) AS BIGINT)"
                agg = "COUNT(*)" if stat == "SampleCount" else f'{_SQL_AGG[stat]}("value")'
                sql = (f"SELECT {bucket} AS b, {agg} FROM metric_points WHERE {clause} "
                       "GROUP BY b ORDER BY b")
                return [(origin + int(b) * period, float(v)) for b, v in self._fetch(conn, sql, params)]
            sql = f'SELECT "timestamp", "value" FROM metric_points WHERE {clause}'
            rows = self._fetch(conn, sql, params)
        if not rows:
            return []
        arr = np.asarray(rows, dtype=np.float64)
        b = np.floor((arr[:, 0] - origin) / period).astype(np.int64)
        order = np.lexsort((arr[:, 1], b))
        b, vals = b[order], arr[order, 1]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        q = float(stat[1:])
        out = []
        for i, group in zip(starts, np.split(vals, starts[1:]), strict=True):
            out.append((origin + int(b[i]) * period, float(np.percentile(group, q))))
        return out

    def list_metrics(self) -> list[MetricInfo]:
        """Every metric name with its number of series and points and their time span."""
        sql = ('SELECT s.name, COUNT(DISTINCT s.id), COUNT(p.id), MIN(p."timestamp"), MAX(p."timestamp") '
               "FROM metric_series s JOIN metric_points p ON p.series_id = s.id "
               "GROUP BY s.name ORDER BY s.name")
        with self.ws.meta.session() as s:
            rows = s.execute(sa.text(sql)).all()
        return [MetricInfo(n, int(ns), int(npts), _dt(a) if a is not None else None,
                           _dt(z) if z is not None else None) for n, ns, npts, a, z in rows]

    def dimensions(self, name: str) -> list[dict[str, str]]:
        """The dimension sets (series) ``name`` has been written with."""
        with self.ws.meta.session() as s:
            return [d for _, d in sorted(self._matching_series(s.connection(), name, None).items())]


def _check_period(period_s: Any) -> float:
    if isinstance(period_s, bool) or not isinstance(period_s, (int, float)) or not math.isfinite(period_s) \
            or period_s <= 0:
        raise InvalidInput(f"period_s must be a positive number of seconds, got {period_s!r}")
    return float(period_s)


__all__ = [
    "MetricInfo",
    "MetricPoint",
    "MetricsTable",
    "check_dimensions",
    "dim_key",
    "normalize_statistic",
    "parse_time",
]
