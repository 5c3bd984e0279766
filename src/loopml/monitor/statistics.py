"""``statistics.json``: per-feature statistics of a table, in the Model Monitor layout.

One pass per column with numpy: an inferred type (``Integral``, ``Fractional``,
``String``, ``Unknown``), present and missing counts, and

- for numbers: mean, sum, standard deviation (population), min, max, an
  equal-width histogram and a *quantile sketch*: the exact quantiles
  (linear interpolation) at a fixed grid of 1,001 probabilities 0, 0.001, ...,
  1. A sketch answers "what share of values is at most x" within 0.001, which
  is all the drift distances need, and it is small enough to keep in JSON
  whatever the row count. (SageMaker stores a KLL sketch here; ours is exact
  on its grid.)
- for strings: the distinct count and the counts of the 1,000 most frequent
  values (the rest summed in ``other_count``).

Every feature also gets ``type_counts``: how many present values are
integral numbers, fractional numbers and other strings — what the data type
check compares.

The pure core of the data-quality monitor: a function of a DataFrame, no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput

#: probabilities of the quantile sketch: 0, 0.001, ..., 1
GRID_SIZE = 1001
#: equal-width histogram buckets per numeric feature
HISTOGRAM_BUCKETS = 20
#: most frequent values kept per string feature
MAX_CATEGORIES = 1000
#: columns are described in threads (at most this many) when the table has this many cells
MAX_THREADS = 8
PARALLEL_CELLS = 200_000
#: the quantile method, named in statistics.json
SKETCH_METHOD = "exact_quantiles"

INTEGRAL, FRACTIONAL, STRING, UNKNOWN = "Integral", "Fractional", "String", "Unknown"
INFERRED_TYPES = (INTEGRAL, FRACTIONAL, STRING, UNKNOWN)
NUMERIC_TYPES = (INTEGRAL, FRACTIONAL)

_GRID = np.linspace(0.0, 1.0, GRID_SIZE)


def grid() -> np.ndarray:
    """The sketch's probabilities (a fresh copy)."""
    return _GRID.copy()


# -- type inference ------------------------------------------------------------------------------
def _parse_numbers(values: pd.Index | pd.Series) -> np.ndarray:
    """Values as floats; NaN where a value is not a number (booleans are not numbers here)."""
    s = pd.Series(np.asarray(values, dtype=object))
    is_bool = s.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    out = pd.to_numeric(s.where(~is_bool), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _whole(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(x) & (x == np.floor(x))


def _kind(series: pd.Series) -> str:
    """``numeric``, ``text`` or ``unknown`` from the dtype (object columns are looked at later)."""
    dt = series.dtype
    if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
        return "unknown"
    if isinstance(dt, pd.PeriodDtype | pd.IntervalDtype):
        return "unknown"
    return "text"


def _counts(series: pd.Series) -> pd.Series | None:
    """Value counts of the present values, or None when the values are not hashable (lists, dicts)."""
    try:
        vc = series.value_counts(dropna=True, sort=True)
        return vc[vc > 0] if isinstance(series.dtype, pd.CategoricalDtype) else vc
    except TypeError:
        return None


class _Column:
    """What one pass over a column learns: present count, value counts or floats, type counts."""

    def __init__(self, series: pd.Series) -> None:
        self.series = series
        self.kind = _kind(series)
        self.n = len(series)
        self.x: np.ndarray | None = None          # the values as floats (numeric dtypes)
        self.counts: pd.Series | None = None      # value counts (text)
        self.numbers: np.ndarray | None = None    # the counted values as floats, NaN if not a number
        self.hashable = True
        if self.kind == "numeric":
            self.x = series.to_numpy(dtype=np.float64, na_value=np.nan)
            missing = np.isnan(self.x)
            self.present = self.n - int(missing.sum())
            integral = int(_whole(self.x).sum())
            self.type_counts = {"integral": integral, "fractional": self.present - integral, "string": 0}
            return
        self.present = int(series.notna().sum())
        if self.kind == "unknown" or self.present == 0:
            self.type_counts = {"integral": 0, "fractional": 0, "string": self.present}
            return
        self.counts = _counts(series)
        if self.counts is None or any(isinstance(v, (list, dict, tuple, set, bytes)) for v in self.counts.index[:100]):
            self.hashable = False
            self.counts = None
            self.type_counts = {"integral": 0, "fractional": 0, "string": self.present}
            return
        self.numbers = _parse_numbers(self.counts.index)
        w = self.counts.to_numpy(dtype=np.int64)
        integral = int(w[_whole(self.numbers)].sum())
        fractional = int(w[~np.isnan(self.numbers)].sum()) - integral
        self.type_counts = {"integral": integral, "fractional": fractional,
                            "string": self.present - integral - fractional}

    def inferred_type(self) -> str:
        if self.present == 0 or self.kind == "unknown" or not self.hashable:
            return UNKNOWN
        tc = self.type_counts
        if tc["string"] > 0:
            return STRING
        return INTEGRAL if tc["fractional"] == 0 else FRACTIONAL

    def floats(self) -> np.ndarray:
        """The column as floats (text that is not a number, and missing values, are NaN)."""
        if self.x is not None:
            return self.x
        if self.counts is None or self.numbers is None:
            return np.full(self.n, np.nan)
        lookup = pd.Series(self.numbers, index=self.counts.index)
        return self.series.map(lookup).to_numpy(dtype=np.float64, na_value=np.nan)

    def string_counts(self) -> pd.Series:
        """Value counts with text keys, most frequent first."""
        if self.counts is None:
            vals = self.series.dropna()
            if self.kind == "numeric":
                vals = vals.map(_number_text)
            return vals.astype(str).value_counts()
        vc = self.counts
        if vc.index.dtype == object or not pd.api.types.is_string_dtype(vc.index.dtype):
            keys = [v if isinstance(v, str) else _number_text(v) for v in vc.index]
            vc = pd.Series(vc.to_numpy(), index=keys).groupby(level=0, sort=False).sum().sort_values(
                ascending=False, kind="stable")
        return vc


def _number_text(v: Any) -> str:
    """A value as text; whole floats without their ``.0`` (so 3.0 reads like the category "3")."""
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def infer_type(series: pd.Series) -> str:
    """The Model Monitor type of a column: ``Integral``, ``Fractional``, ``String`` or ``Unknown``.

    Numbers (and booleans) are ``Integral`` when every present value is whole;
    text whose every distinct value reads as a number counts as numbers too;
    dates, lists and all-missing columns are ``Unknown``.

    Examples
    --------
    >>> import pandas as pd
    >>> [infer_type(pd.Series(v)) for v in ([1, 2], [1.0, None], [1.5, 2], ["a", None], ["1", "2.5"], [None])]
    ['Integral', 'Integral', 'Fractional', 'String', 'Fractional', 'Unknown']
    """
    return _Column(series).inferred_type()


# -- per-column statistics ---------------------------------------------------------------------------
def quantile_sketch(sorted_values: np.ndarray) -> np.ndarray:
    """Exact quantiles (linear interpolation) of sorted finite values at the 1,001-point grid.

    Examples
    --------
    >>> import numpy as np
    >>> q = quantile_sketch(np.arange(11.0))
    >>> float(q[0]), float(q[500]), float(q[-1])
    (0.0, 5.0, 10.0)
    """
    m = len(sorted_values)
    if m == 0:
        return np.full(GRID_SIZE, np.nan)
    pos = _GRID * (m - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, m - 1)
    frac = pos - lo
    a, b = sorted_values[lo], sorted_values[hi]
    return np.asarray(a + (b - a) * frac)


def _histogram(s: np.ndarray, buckets: int) -> list[dict[str, float]]:
    lo, hi = float(s[0]), float(s[-1])
    if lo == hi:
        return [{"lower_bound": lo, "upper_bound": hi, "count": float(len(s))}]
    edges = np.linspace(lo, hi, buckets + 1)
    # s is sorted: bucket counts are differences of positions (last bucket closed on the right)
    pos = np.searchsorted(s, edges[1:-1], side="left")
    cuts = np.concatenate([[0], pos, [len(s)]])
    counts = np.diff(cuts)
    return [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
            for i in range(buckets)]


def _numerical(x: np.ndarray) -> dict[str, Any]:
    vals = x[np.isfinite(x)]
    vals.sort()
    m = len(vals)
    if m == 0:
        return {"mean": None, "sum": 0.0, "std_dev": None, "min": None, "max": None,
                "distribution": {"histogram": {"buckets": []},
                                 "quantiles": {"method": SKETCH_METHOD, "count": 0, "values": []}}}
    total = float(vals.sum())
    mean = total / m
    std = float(np.sqrt(max(float(np.mean(np.square(vals - mean))), 0.0)))
    return {
        "mean": mean, "sum": total, "std_dev": std, "min": float(vals[0]), "max": float(vals[-1]),
        "distribution": {
            "histogram": {"buckets": _histogram(vals, HISTOGRAM_BUCKETS)},
            "quantiles": {"method": SKETCH_METHOD, "interpolation": "linear", "count": m,
                          "probabilities": {"start": 0.0, "stop": 1.0, "num": GRID_SIZE},
                          "values": quantile_sketch(vals).tolist()},
        },
    }


def _strings(vc: pd.Series) -> dict[str, Any]:
    top = vc.iloc[:MAX_CATEGORIES]
    other = int(vc.iloc[MAX_CATEGORIES:].sum()) if len(vc) > MAX_CATEGORIES else 0
    out: dict[str, Any] = {
        "distinct_count": float(len(vc)),
        "distribution": {"categorical": {"buckets": [{"value": str(k), "count": float(v)}
                                                     for k, v in zip(top.index, top.to_numpy(), strict=True)]}},
    }
    if other:
        out["distribution"]["categorical"]["other_count"] = float(other)
    return out


def feature_statistics(name: str, series: pd.Series, inferred_type: str | None = None) -> dict[str, Any]:
    """The statistics.json entry of one column; ``inferred_type`` forces the type (a baseline's)."""
    col = _Column(series)
    itype = inferred_type or col.inferred_type()
    common = {"num_present": col.present, "num_missing": col.n - col.present}
    feat: dict[str, Any] = {"name": name, "inferred_type": itype, "type_counts": col.type_counts}
    if itype == UNKNOWN:
        feat["common"] = common
    elif itype in NUMERIC_TYPES:
        feat["numerical_statistics"] = {"common": common, **_numerical(col.floats())}
    else:
        feat["string_statistics"] = {"common": common, **_strings(col.string_counts())}
    return feat


def compute_statistics(
    data: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """statistics.json of a table.

    Parameters
    ----------
    data
        The rows (a pandas DataFrame; convert Arrow tables with ``to_pandas()``).
    features
        Columns to describe (default: all).
    types
        Inferred types to use instead of inferring (a baseline's, so current
        data is described the same way: a numeric baseline feature is read as
        numbers even when the current column holds text).

    Returns
    -------
    dict
        ``{"version": 0.0, "dataset": {"item_count": n}, "features": [...]}``.

    Examples
    --------
    >>> import pandas as pd
    >>> st = compute_statistics(pd.DataFrame({"x": [1.0, 2.0, None], "c": ["a", "b", "a"]}))
    >>> st["dataset"], [(f["name"], f["inferred_type"]) for f in st["features"]]
    ({'item_count': 3}, [('x', 'Integral'), ('c', 'String')])
    >>> st["features"][0]["numerical_statistics"]["common"], st["features"][0]["numerical_statistics"]["mean"]
    ({'num_present': 2, 'num_missing': 1}, 1.5)
    >>> st["features"][1]["string_statistics"]["distribution"]["categorical"]["buckets"][0]
    {'value': 'a', 'count': 2.0}
    """
    cols = list(features) if features is not None else [str(c) for c in data.columns]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise InvalidInput(f"the data has no column(s) {missing}; its columns are {[str(c) for c in data.columns]}")
    types = types or {}
    workers = min(len(cols), os.cpu_count() or 1, MAX_THREADS)
    if workers > 1 and len(data) * len(cols) >= PARALLEL_CELLS:
        # numpy's sorts and Arrow's counts release the GIL: columns go side by side
        with ThreadPoolExecutor(workers, thread_name_prefix="loopml-stats") as pool:
            out = list(pool.map(lambda c: feature_statistics(c, data[c], types.get(c)), cols))
    else:
        out = [feature_statistics(c, data[c], types.get(c)) for c in cols]
    return {"version": 0.0, "dataset": {"item_count": len(data)}, "features": out}


def feature_map(statistics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{feature name: entry}`` of a statistics.json document."""
    return {f["name"]: f for f in statistics.get("features", [])}


def common(feature: Mapping[str, Any]) -> dict[str, Any]:
    """The ``common`` block (present and missing counts) of a feature entry, whatever its type."""
    for key in ("numerical_statistics", "string_statistics"):
        if key in feature:
            return dict(feature[key]["common"])
    return dict(feature.get("common") or {"num_present": 0, "num_missing": 0})


def sketch_of(feature: Mapping[str, Any]) -> tuple[np.ndarray, int] | None:
    """(quantile values, value count) of a numeric feature entry, or None when it has no values."""
    num = feature.get("numerical_statistics")
    if not num:
        return None
    q = num.get("distribution", {}).get("quantiles", {})
    values = q.get("values") or []
    if not values or not q.get("count"):
        return None
    return np.asarray(values, dtype=np.float64), int(q["count"])


def category_counts(feature: Mapping[str, Any]) -> dict[str, float] | None:
    """``{value: count}`` of a string feature entry (``other_count`` under ``"__other__"``), or None."""
    st = feature.get("string_statistics")
    if not st:
        return None
    cat = st.get("distribution", {}).get("categorical", {})
    out = {str(b["value"]): float(b["count"]) for b in cat.get("buckets", [])}
    if cat.get("other_count"):
        out["__other__"] = float(cat["other_count"])
    return out


__all__ = [
    "FRACTIONAL",
    "GRID_SIZE",
    "INFERRED_TYPES",
    "INTEGRAL",
    "NUMERIC_TYPES",
    "STRING",
    "UNKNOWN",
    "category_counts",
    "common",
    "compute_statistics",
    "feature_map",
    "feature_statistics",
    "grid",
    "infer_type",
    "quantile_sketch",
    "sketch_of",
]
