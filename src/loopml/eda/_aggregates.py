"""The exact part of a profile: DuckDB aggregates over the whole Arrow table.

Everything here is computed over every row, in a handful of aggregate
queries (one per concern, not one per statistic): per-column ranges and
quantiles, value counts and distinct counts, histograms, outlier counts,
missing-value patterns, duplicate rows and time coverage. Moments are numpy
over the column (deterministic to the last digit, see :meth:`Aggregates.moments`).
The sampled part (correlations, IsolationForest, scatter plots) lives elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.eda._arrow import jsonable, number, quote

log = logging.getLogger(__name__)

#: name of the row-number column added for the queries (never reported)
ROW = "__loopml_row__"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_QNAMES = ("p05", "q1", "median", "q3", "p95")
#: datetime bucket sizes, smallest first, with the longest span each is used for
_GRAINS = (("hour", "h", 3 * 86_400), ("day", "D", 400 * 86_400), ("month", "M", 40 * 366 * 86_400))


class Aggregates:
    """A DuckDB connection over one normalised table (with a row-number column added).

    Parameters
    ----------
    table
        The normalised table (see :func:`loopml.eda._arrow.normalise`).
    infinite
        Per floating column, the number of infinite values: those columns'
        aggregates skip them.
    """

    def __init__(self, table: pa.Table, infinite: dict[str, int]) -> None:
        import duckdb

        self.table = table
        self.names = table.column_names
        self.infinite = infinite
        self.row = ROW
        while self.row in self.names:
            self.row += "_"
        self.con = duckdb.connect(":memory:")
        with contextlib.suppress(duckdb.Error):  # without ICU, time zones stay as they are
            self.con.execute("SET TimeZone = 'UTC'")
        rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
        self.con.register("t", table.append_column(self.row, rows))

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    # -- helpers ----------------------------------------------------------------------
    def value(self, name: str) -> str:
        """SQL for a column's values, without infinities where it has any."""
        q = quote(name)
        return f"(CASE WHEN isinf({q}) THEN NULL ELSE {q} END)" if name in self.infinite else q

    def _one(self, exprs: Sequence[str]) -> tuple[Any, ...]:
        if not exprs:
            return ()
        row = self.con.execute("SELECT " + ", ".join(exprs) + " FROM t").fetchone()
        assert row is not None
        return tuple(row)

    # -- pass 1: moments, quantiles, lengths, ranges --------------------------------------
    def column_stats(self, kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Exact per-column statistics, in one aggregate query over all rows."""
        exprs: list[str] = []
        keys: list[tuple[str, str]] = []

        def add(col: str, key: str, sql: str) -> None:
            keys.append((col, key))
            exprs.append(sql)

        qs = "[" + ", ".join(repr(q) for q in QUANTILES) + "]"
        for name, kind in kinds.items():
            v, q = self.value(name), quote(name)
            if kind == "numeric":
                add(name, "min", f"min({v})")
                add(name, "max", f"max({v})")
                add(name, "zeros", f"count_if({q} = 0)")
                add(name, "negatives", f"count_if({v} < 0)")
                add(name, "quantiles", f"quantile_cont({v}, {qs})")
            elif kind == "categorical":
                add(name, "min_length", f"min(length({q}))")
                add(name, "mean_length", f"avg(length({q}))")
                add(name, "max_length", f"max(length({q}))")
                add(name, "empty", f"count_if({q} = '')")
            elif kind == "datetime":
                add(name, "min", f"min({q})")
                add(name, "max", f"max({q})")
                add(name, "span_seconds", f"epoch(CAST(max({q}) AS TIMESTAMP)) - epoch(CAST(min({q}) AS TIMESTAMP))")
        out: dict[str, dict[str, Any]] = {name: {} for name in kinds}
        for name, kind in kinds.items():
            if kind == "numeric":
                out[name].update(self.moments(name))
        for (name, key), val in zip(keys, self._one(exprs), strict=True):
            st = out[name]
            if key == "quantiles":
                vals = list(val) if val is not None else [None] * len(QUANTILES)
                for qn, qv in zip(_QNAMES, vals, strict=True):
                    st[qn] = number(qv)
            elif key in ("zeros", "negatives", "empty"):
                st[key] = int(val or 0)
            elif kinds[name] == "datetime" and key in ("min", "max"):
                st[key] = jsonable(val)
            elif key in ("min", "max") and isinstance(val, int) and not isinstance(val, bool):
                st[key] = val
            else:
                st[key] = number(val)
        return out

    def moments(self, name: str) -> dict[str, float | None]:
        """Mean, sample std, skewness and excess kurtosis (bias-corrected, as pandas) of the finite values.

        Computed with numpy rather than DuckDB: a parallel SQL aggregate adds
        its partial sums in whatever order its threads finish, so the last
        digits (and with them the stored profile's hash) would change from run
        to run; numpy's pairwise sums do not.
        """
        col = self.table.column(name)
        x = pc.cast(col.drop_null(), pa.float64()).to_numpy()
        if name in self.infinite:
            x = x[np.isfinite(x)]
        n = len(x)
        out: dict[str, float | None] = {"mean": None, "std": None, "skewness": None, "kurtosis": None}
        if n == 0:
            return out
        mean = float(x.mean())
        out["mean"] = mean
        if n < 2:
            return out
        d = x - mean
        d2 = d * d
        m2 = float(d2.sum()) / n
        out["std"] = float(np.sqrt(m2 * n / (n - 1)))
        if m2 <= 0 or n < 3:
            out["skewness"] = 0.0 if n >= 3 else None
            out["kurtosis"] = 0.0 if n >= 4 else None
            return out
        m3 = float((d2 * d).sum()) / n
        out["skewness"] = m3 / m2**1.5 * np.sqrt(n * (n - 1)) / (n - 2)
        if n >= 4:
            m4 = float((d2 * d2).sum()) / n
            g2 = m4 / (m2 * m2) - 3.0
            out["kurtosis"] = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
        return out

    # -- value counts --------------------------------------------------------------------
    def value_counts(self, name: str, limit: int) -> tuple[int | None, list[tuple[Any, int]]]:
        """Exact distinct count (nulls excluded) and the ``limit`` most frequent values.

        Ties are broken by value, so the answer is deterministic. Returns
        ``(None, [])`` for a type DuckDB cannot group by.
        """
        import duckdb

        q = quote(name)
        sql = (
            f"WITH g AS (SELECT {q} AS v, count(*) AS n FROM t WHERE {q} IS NOT NULL GROUP BY 1) "
            f"SELECT v, n, count(*) OVER () AS d FROM g ORDER BY n DESC, v LIMIT {int(limit)}"
        )
        try:
            rows = self.con.execute(sql).fetchall()
        except duckdb.Error as e:  # e.g. a map column: no ordering
            log.debug("no value counts for %s: %s", name, e)
            return None, []
        if not rows:
            return 0, []
        return int(rows[0][2]), [(v, int(n)) for v, n, _ in rows]

    # -- pass 2: histograms, outliers, co-missing counts ------------------------------------
    def second_pass(
        self,
        edges: dict[str, list[float]],
        fences: dict[str, tuple[float, float, float]],
        zbounds: dict[str, tuple[float, float]],
        missing_cols: Sequence[str],
        examples: int,
    ) -> dict[str, Any]:
        """Histograms (right-closed bins), IQR/z-score outlier counts with example
        row numbers, and pairwise co-missing counts, in one aggregate query.

        ``edges[c]`` are the bin boundaries after the first; ``fences[c]`` is
        ``(low, high, median)``; ``zbounds[c]`` is ``(mean, threshold * std)``.
        """
        exprs: list[str] = []
        keys: list[tuple[str, ...]] = []
        for name, bounds in edges.items():
            keys.append(("hist", name))
            exprs.append(f"histogram({self.value(name)}, [{', '.join(repr(float(b)) for b in bounds)}])")
        for name, (lo, hi, med) in fences.items():
            v = self.value(name)
            cond = f"({v} < {lo!r} OR {v} > {hi!r})"
            keys.append(("iqr", name))
            exprs.append(f"count_if({cond})")
            keys.append(("iqr_rows", name))
            r = quote(self.row)
            exprs.append(f"max_by({r}, (abs({v} - {med!r}), -{r}), {int(examples)}) FILTER (WHERE {cond})")
        for name, (mean, width) in zbounds.items():
            keys.append(("z", name))
            exprs.append(f"count_if(abs({self.value(name)} - {mean!r}) > {width!r})")
        for i, a in enumerate(missing_cols):
            for b in missing_cols[i + 1:]:
                keys.append(("both", a, b))
                exprs.append(f"count_if({quote(a)} IS NULL AND {quote(b)} IS NULL)")
        out: dict[str, Any] = {"hist": {}, "iqr": {}, "iqr_rows": {}, "z": {}, "both": {}}
        for key, val in zip(keys, self._one(exprs), strict=True):
            kind = key[0]
            if kind == "hist":
                counts = [int(c) for c in (val or {}).values()]
                if len(counts) > len(edges[key[1]]):  # rounding put a value past the last edge
                    counts[-2] += counts[-1]
                    counts = counts[:-1]
                out["hist"][key[1]] = counts
            elif kind == "iqr_rows":
                out["iqr_rows"][key[1]] = [int(r) for r in (val or [])]
            elif kind == "both":
                out["both"][(key[1], key[2])] = int(val or 0)
            else:
                out[kind][key[1]] = int(val or 0)
        return out

    # -- missing patterns -----------------------------------------------------------------
    def missing_patterns(self, cols: Sequence[str], limit: int) -> tuple[int, int, list[tuple[list[str], int]]]:
        """Rows with any missing value among ``cols``, number of distinct patterns,
        and the ``limit`` most common patterns (the columns missing together, and how often)."""
        if not cols:
            return 0, 0, []
        flags = [f"({quote(c)} IS NULL) AS m{i}" for i, c in enumerate(cols)]
        any_missing = " OR ".join(f"{quote(c)} IS NULL" for c in cols)
        order = ", ".join(f"m{i} DESC" for i in range(len(cols)))
        sql = (
            f"WITH p AS (SELECT {', '.join(flags)}, count(*) AS n FROM t WHERE {any_missing} GROUP BY ALL) "
            f"SELECT *, sum(n) OVER () AS rows_any, count(*) OVER () AS patterns FROM p "
            f"ORDER BY n DESC, {order} LIMIT {int(limit)}"
        )
        rows = self.con.execute(sql).fetchall()
        if not rows:
            return 0, 0, []
        k = len(cols)
        patterns = [([c for c, m in zip(cols, r[:k], strict=True) if m], int(r[k])) for r in rows]
        return int(rows[0][k + 1]), int(rows[0][k + 2]), patterns

    # -- duplicates ---------------------------------------------------------------------------
    def duplicates(self, cols: Sequence[str], examples: int) -> tuple[int, int, list[tuple[int, int]]]:
        """Exact duplicate rows over ``cols``: (surplus rows, groups, [(first row, copies)...])."""
        group = ", ".join(quote(c) for c in cols)
        row = self.con.execute(
            f"SELECT coalesce(sum(n) - count(*), 0), count_if(n > 1) FROM "
            f"(SELECT count(*) AS n FROM t GROUP BY {group})"
        ).fetchone()
        assert row is not None
        surplus, groups = int(row[0]), int(row[1])
        found: list[tuple[int, int]] = []
        if surplus:
            found = [
                (int(r), int(n)) for r, n in self.con.execute(
                    f"SELECT min({quote(self.row)}) AS r, count(*) AS n FROM t GROUP BY {group} "
                    f"HAVING count(*) > 1 ORDER BY n DESC, r LIMIT {int(examples)}"
                ).fetchall()
            ]
        return surplus, groups, found

    # -- time coverage ----------------------------------------------------------------------
    def time_coverage(self, name: str, span_seconds: float) -> dict[str, Any]:
        """Rows per hour, day, month or year (chosen by the span), and empty buckets inside the range."""
        grain, unit = "year", "Y"
        for g, u, longest in _GRAINS:
            if span_seconds <= longest:
                grain, unit = g, u
                break
        q = quote(name)
        res = self.con.execute(
            f"SELECT date_trunc('{grain}', CAST({q} AS TIMESTAMP)) AS b, count(*) AS n FROM t "
            f"WHERE {q} IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchnumpy()
        buckets = np.asarray(res["b"]).astype(f"datetime64[{unit}]")
        counts = np.asarray(res["n"]).astype(np.int64)
        expected = int((buckets[-1] - buckets[0]).astype(np.int64)) + 1 if len(buckets) else 0
        labels = [str(b) for b in buckets]
        return {"grain": grain, "labels": labels, "counts": counts.tolist(),
                "empty_buckets": max(expected - len(buckets), 0)}

