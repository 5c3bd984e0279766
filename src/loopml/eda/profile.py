"""``profile()``: a pure function from a table to a JSON-ready exploratory summary.

The exact part runs as a few DuckDB aggregate queries over every row (see
:mod:`loopml.eda._aggregates`); the sampled part (correlations, the
IsolationForest score, target associations and plots) runs with numpy and
scikit-learn on a seeded sample (see :mod:`loopml.eda._sample`). The result is
a :class:`Profile`: a plain dict inside, so it stores as JSON and renders to
HTML with :func:`loopml.eda.render_html`.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from loopml.eda._aggregates import Aggregates
from loopml.eda._arrow import jsonable, kind_of, normalise, number, to_table
from loopml.eda._config import ProfileConfig
from loopml.eda._sample import (
    Sample,
    correlations,
    isolation_forest,
    target_analysis,
)
from loopml.eda._warnings import collect_warnings
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: version of the JSON layout below (bump when a reader would misread an older one)
SCHEMA_VERSION = 1
_MISSING_PATTERN_COLUMNS = 30
_ID_WORDS = ("id", "key", "uuid", "guid")
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID|Key|Uuid|UUID)$")
_TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Profile:
    """An exploratory profile of one table: a JSON-ready dict with a few accessors.

    Build one with :func:`profile`; render it with :func:`loopml.eda.render_html`.
    ``data`` holds the sections ``overview``, ``columns``, ``missing``,
    ``outliers``, ``correlations``, ``target``, ``duplicates``, ``warnings``
    and ``rows`` (example rows by row number), described in ``docs/eda.md``.
    """

    data: dict[str, Any]

    @property
    def rows(self) -> int:
        """Number of rows profiled."""
        return int(self.data["overview"]["rows"])

    @property
    def columns(self) -> list[dict[str, Any]]:
        """Per-column profiles, in table order."""
        return list(self.data["columns"])

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Warnings and notes, most important first."""
        return list(self.data["warnings"])

    @property
    def target(self) -> dict[str, Any] | None:
        """The target analysis, or None without a target."""
        t = self.data.get("target")
        return dict(t) if t else None

    def column(self, name: str) -> dict[str, Any]:
        """The profile of one column."""
        for c in self.data["columns"]:
            if c["name"] == name:
                return dict(c)
        raise InvalidInput(
            f"the profile has no column {name!r}; columns are {[c['name'] for c in self.data['columns']]}"
        )

    def with_source(self, **source: Any) -> Profile:
        """A copy whose ``overview.source`` records where the data came from (e.g. a dataset ref)."""
        data = copy.deepcopy(self.data)
        data["overview"]["source"] = {**data["overview"].get("source", {}), **jsonable(source)}
        return Profile(data)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the data."""
        return copy.deepcopy(self.data)

    def to_json(self, indent: int | None = None) -> str:
        """The profile as JSON text (keys in a stable order)."""
        return json.dumps(self.data, indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        """Read a profile written by :meth:`to_json`."""
        data = json.loads(text)
        if not isinstance(data, dict) or "overview" not in data or "columns" not in data:
            raise InvalidInput("this JSON is not a loopml EDA profile (no overview/columns)")
        return cls(data)


def profile(
    data: pa.Table | pa.RecordBatch | pd.DataFrame,
    target: str | None = None,
    *,
    sample_rows: int | None = None,
    seed: int | None = None,
    task: str | None = None,
    config: ProfileConfig | None = None,
    title: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Profile a table: column statistics, missing values, outliers, correlations, target, duplicates.

    Counts, missing and distinct values, moments (mean, std, skewness,
    kurtosis), quantiles, zeros, top values, histograms, IQR and z-score
    outlier counts, missing-value patterns, duplicate rows and class balance
    are exact, computed with DuckDB over every row. Correlations (Pearson,
    Spearman, Cramér's V, correlation ratio), the IsolationForest score and
    the target's per-feature association and plots use a seeded sample of at
    most ``sample_rows`` rows, so the same input and seed give the same profile.

    Parameters
    ----------
    data
        A pyarrow Table or RecordBatch, or a pandas DataFrame.
    target
        Column to analyse as the target (class balance or distribution, and
        each feature's association with it).
    sample_rows
        Sample size of the sampled analyses (default ``config.sample_rows``, 50,000).
    seed
        Seed of the sample and the IsolationForest (default ``config.seed``, 0).
    task
        ``"classification"`` or ``"regression"``; by default a text, boolean or
        integer target with at most 20 values is a classification target.
    config
        Thresholds and sizes (:class:`ProfileConfig`).
    title
        Title of the report.
    progress
        Called with the name of each stage as it starts.

    Returns
    -------
    Profile

    Raises
    ------
    InvalidInput
        Empty data, an unknown target column, or a target that cannot be analysed.

    Examples
    --------
    >>> import pandas as pd
    >>> from loopml.eda import profile
    >>> df = pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "y": ["a", "b", "a", "a"]})
    >>> p = profile(df, target="y")
    >>> p.column("x")["missing"], p.column("y")["distinct"], p.target["task"]
    (1, 2, 'classification')
    """
    cfg = config or ProfileConfig()
    if sample_rows is not None or seed is not None:
        cfg = replace(cfg, sample_rows=cfg.sample_rows if sample_rows is None else sample_rows,
                      seed=cfg.seed if seed is None else seed)
    if task is not None and task not in _TASKS:
        raise InvalidInput(f"task must be 'classification' or 'regression', not {task!r}")
    step = progress or (lambda _stage: None)
    table = to_table(data)
    names = table.column_names
    if table.num_columns == 0:
        raise InvalidInput("nothing to profile: the data has no columns")
    if table.num_rows == 0:
        raise InvalidInput(f"nothing to profile: the data has no rows (columns: {names})")
    if target is not None and target not in names:
        raise InvalidInput(f"target column {target!r} is not in the data; columns are {names}")
    table, infinite = normalise(table)
    return _Profiler(table, infinite, target, task, cfg, title, step).run()


class _Profiler:
    """One profiling run: the state shared by its stages."""

    def __init__(self, table: pa.Table, infinite: dict[str, int], target: str | None, task: str | None,
                 cfg: ProfileConfig, title: str | None, step: Callable[[str], None]) -> None:
        self.table = table
        self.n = table.num_rows
        self.infinite = infinite
        self.target = target
        self.task = task
        self.cfg = cfg
        self.title = title
        self.step = step
        self.kinds = {f.name: kind_of(f.type) for f in table.schema}
        self.cols: dict[str, dict[str, Any]] = {}
        self.row_ids: set[int] = set()

    def pct(self, k: float, of: float | None = None) -> float:
        d = self.n if of is None else of
        return round(100.0 * k / d, 4) if d else 0.0

    def run(self) -> Profile:
        agg = Aggregates(self.table, self.infinite)
        try:
            self.step("column statistics")
            self._columns(agg)
            for c in self.cols.values():
                c["flags"] = _flags(c, self.n, self.cfg)
            self.step("histograms, outliers and co-missing values")
            second = self._second_pass(agg)
            self.step("missing-value patterns")
            missing = self._missing(agg, second)
            self.step("duplicate rows")
            duplicates = self._duplicates(agg)
            for name, kind in self.kinds.items():
                c = self.cols[name]
                if kind == "datetime" and c["count"] and c["stats"].get("span_seconds") is not None:
                    c["time"] = agg.time_coverage(name, c["stats"]["span_seconds"])
            target = self._target_exact(agg) if self.target else None
        finally:
            agg.close()
        self.step("sampling")
        sample = Sample(self.table, self.cfg.sample_rows, self.cfg.seed)
        numeric = [c for c, col in self.cols.items() if self._usable(col) and col["kind"] == "numeric"
                   and (col["stats"].get("std") or 0) > 0][: self.cfg.max_correlation_columns]
        categorical = [c for c, col in self.cols.items() if self._usable(col)
                       and col["kind"] in ("categorical", "boolean")
                       and 2 <= (col["distinct"] or 0) <= self.cfg.max_categories][: self.cfg.max_correlation_columns]
        self.step("correlations")
        corr = correlations(sample, numeric, categorical, self.cfg, self.target)
        self.step("isolation forest")
        features = [c for c in numeric if c != self.target]
        forest = isolation_forest(sample, features, self.cfg)
        if forest:
            self.row_ids.update(r["row"] for r in forest["top"])
        if target is not None:
            self.step("target analysis")
            assert self.target is not None
            target.update(target_analysis(sample, self.target, target["task"], numeric, categorical, self.cfg))
        outliers = self._outliers(second, forest)
        overview = self._overview(sample, duplicates)
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "title": self.title or "Exploratory data analysis",
            "overview": overview,
            "settings": self.cfg.to_dict(),
            "columns": list(self.cols.values()),
            "missing": missing,
            "outliers": outliers,
            "correlations": corr,
            "target": target,
            "duplicates": duplicates,
        }
        data["warnings"] = collect_warnings(data, self.cfg)
        self.step("example rows")
        data["rows"] = {str(r): rec for r, rec in _take(self.table, self.row_ids).items()}
        return Profile(jsonable(data))

    def _usable(self, col: dict[str, Any]) -> bool:
        return not {"empty", "constant", "id_like"} & set(col["flags"])

    # -- exact per-column part ---------------------------------------------------------------
    def _columns(self, agg: Aggregates) -> None:
        stats = agg.column_stats(self.kinds)
        for f, col in zip(self.table.schema, self.table.columns, strict=True):
            name, kind = f.name, self.kinds[f.name]
            missing = col.null_count
            count = self.n - missing
            distinct, top = agg.value_counts(name, self.cfg.top_values)
            c: dict[str, Any] = {
                "name": name, "type": str(f.type), "kind": kind, "integer": pa.types.is_integer(f.type),
                "count": count, "missing": missing, "missing_pct": self.pct(missing),
                "distinct": distinct,
                "distinct_pct": self.pct(distinct, count) if distinct is not None and count else None,
                "unique": bool(distinct is not None and count and distinct == count),
                "top": [{"value": jsonable(v), "count": k, "pct": self.pct(k, count)} for v, k in top],
                "top_other": count - sum(k for _, k in top),
                "stats": stats.get(name, {}),
            }
            st = c["stats"]
            if kind == "numeric":
                if st.get("q1") is not None and st.get("q3") is not None:
                    st["iqr"] = st["q3"] - st["q1"]
                st["zeros_pct"] = self.pct(st.get("zeros", 0), count)
                st["infinite"] = self.infinite.get(name, 0)
            elif kind == "categorical":
                st["empty_pct"] = self.pct(st.get("empty", 0), count)
            elif kind == "datetime" and st.get("span_seconds") is not None:
                st["span_days"] = round(st["span_seconds"] / 86_400, 4)
            self.cols[name] = c

    def _second_pass(self, agg: Aggregates) -> dict[str, Any]:
        edges: dict[str, list[float]] = {}
        fences: dict[str, tuple[float, float, float]] = {}
        zbounds: dict[str, tuple[float, float]] = {}
        for name, c in self.cols.items():
            st = c["stats"]
            if c["kind"] != "numeric" or st.get("min") is None or st.get("max") is None:
                continue
            e = _edges(float(st["min"]), float(st["max"]), c["integer"], self.cfg.histogram_bins)
            c["histogram"] = {"edges": [float(v) for v in e], "counts": []}
            edges[name] = [float(v) for v in e[1:]]
            if (c["distinct"] or 0) <= 2 or {"id_like", "constant"} & set(c["flags"]):
                continue  # no outliers in a flag, a key or a constant
            if st.get("iqr") is not None and st.get("median") is not None:
                k = self.cfg.iqr_k * st["iqr"]
                fences[name] = (st["q1"] - k, st["q3"] + k, st["median"])
            if st.get("std") and st.get("mean") is not None:
                zbounds[name] = (st["mean"], self.cfg.z_threshold * st["std"])
        with_missing = sorted((c for c in self.cols.values() if c["missing"] > 0),
                              key=lambda c: (-c["missing"], c["name"]))[:_MISSING_PATTERN_COLUMNS]
        self.missing_cols = [c["name"] for c in with_missing]
        second = agg.second_pass(edges, fences, zbounds, self.missing_cols, self.cfg.outlier_examples)
        for name, counts in second["hist"].items():
            self.cols[name]["histogram"]["counts"] = counts
        second["fences"], second["zbounds"] = fences, zbounds
        return second

    def _missing(self, agg: Aggregates, second: dict[str, Any]) -> dict[str, Any]:
        cols = self.missing_cols
        rows_any, n_patterns, patterns = agg.missing_patterns(cols, 10)
        miss = {c: self.cols[c]["missing"] for c in cols}
        pairs = []
        phi = np.eye(len(cols))
        for i, a in enumerate(cols):
            for j in range(i + 1, len(cols)):
                b = cols[j]
                both = second["both"].get((a, b), 0)
                either = miss[a] + miss[b] - both
                ma, mb, n = miss[a], miss[b], self.n
                den = float(ma) * (n - ma) * mb * (n - mb)
                r = (n * both - ma * mb) / np.sqrt(den) if den > 0 else np.nan
                phi[i, j] = phi[j, i] = r
                if both:
                    pairs.append({"a": a, "b": b, "both": both, "jaccard": round(both / either, 4),
                                  "phi": number(round(r, 4)) if np.isfinite(r) else None})
        pairs.sort(key=lambda p: (-p["jaccard"], -p["both"], p["a"], p["b"]))
        total_missing = sum(c["missing"] for c in self.cols.values())
        cells = self.n * len(self.cols)
        return {
            "columns": [{"name": c, "missing": miss[c], "pct": self.pct(miss[c])} for c in cols],
            "cells": total_missing, "cells_pct": self.pct(total_missing, cells),
            "rows_with_missing": rows_any, "rows_with_missing_pct": self.pct(rows_any),
            "complete_rows": self.n - rows_any,
            "patterns": [{"columns": p, "count": k, "pct": self.pct(k)} for p, k in patterns],
            "distinct_patterns": n_patterns,
            "pairs": pairs[:20],
            "nullity_correlation": [[number(round(v, 4)) if np.isfinite(v) else None for v in row]
                                    for row in phi.tolist()] if len(cols) >= 2 else None,
        }

    def _duplicates(self, agg: Aggregates) -> dict[str, Any]:
        import duckdb

        cols = list(self.cols)
        try:
            surplus, groups, found = agg.duplicates(cols, 5)
        except duckdb.Error as e:  # a column type DuckDB cannot group by
            log.info("duplicate rows not counted: %s", e)
            return {"rows": None, "pct": None, "groups": None, "examples": [],
                    "note": f"not computed: {' '.join(str(e).split())[:200]}"}
        self.row_ids.update(r for r, _ in found)
        return {"rows": surplus, "pct": self.pct(surplus), "groups": groups,
                "examples": [{"row": r, "copies": k} for r, k in found]}

    def _target_exact(self, agg: Aggregates) -> dict[str, Any]:
        assert self.target is not None
        c = self.cols[self.target]
        if c["count"] == 0:
            raise InvalidInput(f"target column {self.target!r} has only missing values")
        if c["kind"] in ("datetime", "other"):
            raise InvalidInput(
                f"target column {self.target!r} has type {c['type']}; give a numeric, text or boolean target"
            )
        task = self.task or _infer_task(c)
        if task == "regression" and c["kind"] != "numeric":
            raise InvalidInput(
                f"target column {self.target!r} is {c['kind']} ({c['type']}); it cannot be a regression target"
            )
        out: dict[str, Any] = {"column": self.target, "task": task, "kind": c["kind"],
                               "missing": c["missing"], "missing_pct": c["missing_pct"]}
        if task == "classification":
            distinct, top = agg.value_counts(self.target, self.cfg.max_classes)
            classes = [{"value": jsonable(v), "count": k, "pct": self.pct(k, c["count"])} for v, k in top]
            out["classes"] = classes
            out["n_classes"] = distinct
            out["other_classes_rows"] = c["count"] - sum(k for _, k in top)
            if distinct and distinct >= 2 and len(top) == distinct:
                out["minority_share"] = round(top[-1][1] / c["count"], 6)
                out["imbalance_ratio"] = round(top[0][1] / top[-1][1], 4)
        else:
            out["stats"] = {k: c["stats"].get(k) for k in ("mean", "std", "min", "median", "max",
                                                            "skewness", "kurtosis")}
            out["histogram"] = c.get("histogram")
        return out

    # -- assembled sections ---------------------------------------------------------------------
    def _outliers(self, second: dict[str, Any], forest: dict[str, Any] | None) -> dict[str, Any]:
        cols = []
        for name, (lo, hi, _med) in second["fences"].items():
            count = self.cols[name]["count"]
            examples = second["iqr_rows"].get(name, [])
            self.row_ids.update(examples)
            z = second["z"].get(name)
            cols.append({
                "column": name, "low": number(lo), "high": number(hi),
                "iqr_count": second["iqr"][name], "iqr_pct": self.pct(second["iqr"][name], count),
                "z_threshold": self.cfg.z_threshold, "z_count": z,
                "z_pct": None if z is None else self.pct(z, count),
                "examples": examples,
            })
        return {"iqr_k": self.cfg.iqr_k, "z_threshold": self.cfg.z_threshold, "columns": cols,
                "isolation_forest": forest}

    def _overview(self, sample: Sample, duplicates: dict[str, Any]) -> dict[str, Any]:
        kinds = {k: sum(1 for v in self.kinds.values() if v == k) for k in
                 ("numeric", "categorical", "boolean", "datetime", "other")}
        total_missing = sum(c["missing"] for c in self.cols.values())
        return {
            "rows": self.n, "columns": len(self.cols), "kinds": kinds,
            "missing_cells": total_missing, "missing_cells_pct": self.pct(total_missing, self.n * len(self.cols)),
            "duplicate_rows": duplicates.get("rows"), "memory_bytes": int(self.table.nbytes),
            "target": self.target,
            "sample": {"rows": sample.size, "sampled": sample.size < self.n, "seed": self.cfg.seed,
                       "limit": self.cfg.sample_rows},
            "source": {},
        }


def _edges(lo: float, hi: float, integer: bool, bins: int) -> np.ndarray:
    """Histogram bin edges: one bin per value for a small integer range, else ``bins`` equal bins."""
    if hi <= lo:
        return np.array([lo - 0.5, hi + 0.5])
    if integer and hi - lo < bins:
        return np.arange(lo - 0.5, hi + 1.0, 1.0)
    return np.linspace(lo, hi, bins + 1)


def _infer_task(c: dict[str, Any]) -> str:
    if c["kind"] in ("categorical", "boolean"):
        return "classification"
    distinct = c["distinct"] or 0
    if c["integer"] and distinct <= 20:
        return "classification"
    if distinct <= 10 and all(isinstance(t["value"], (int, float)) and float(t["value"]).is_integer()
                              for t in c["top"]):
        return "classification"
    return "regression"


def _flags(c: dict[str, Any], n: int, cfg: ProfileConfig) -> list[str]:
    """Quality flags of one column (computed from its exact statistics)."""
    flags: list[str] = []
    count, distinct, kind = c["count"], c["distinct"], c["kind"]
    st = c["stats"]
    if count == 0:
        return ["empty"]
    if distinct == 1:
        flags.append("constant")
    elif distinct and c["top"] and c["top"][0]["count"] / count >= cfg.near_constant:
        flags.append("near_constant")
    id_kind = kind == "categorical" or (kind == "numeric" and c["integer"])
    if id_kind and distinct and distinct > 1:
        ratio = distinct / count
        by_values = count >= 20 and ratio >= cfg.id_unique_ratio
        by_name = _id_name(c["name"]) and ratio >= 0.05 and (
            distinct > cfg.high_cardinality or ratio >= cfg.id_unique_ratio)
        if by_values or by_name:
            flags.append("id_like")
    if kind == "categorical" and "id_like" not in flags and (distinct or 0) > cfg.high_cardinality:
        flags.append("high_cardinality")
    if c["missing"] / n >= cfg.high_missing:
        flags.append("high_missing")
    if kind == "numeric" and "constant" not in flags:
        if st.get("skewness") is not None and abs(st["skewness"]) >= cfg.skew:
            flags.append("skewed")
        if (distinct or 0) > 2 and st.get("zeros", 0) / count >= cfg.many_zeros:
            flags.append("many_zeros")
        if st.get("infinite"):
            flags.append("infinite")
    return flags


def _id_name(name: str) -> bool:
    """True for names such as ``id``, ``customer_id``, ``id_order``, ``orderId``, ``session-uuid``."""
    words = [w for w in re.split(r"[_\-\s.]+", name.lower()) if w]
    return (bool(words) and (words[-1] in _ID_WORDS or words[0] == "id")) or bool(_CAMEL_ID.search(name))


def _take(table: pa.Table, ids: set[int]) -> dict[int, dict[str, Any]]:
    wanted = sorted(ids)
    if not wanted:
        return {}
    taken = table.take(pa.array(wanted, pa.int64()))
    return {r: {k: jsonable(v) for k, v in rec.items()} for r, rec in zip(wanted, taken.to_pylist(), strict=True)}

