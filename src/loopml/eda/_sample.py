"""The sampled part of a profile: correlations, IsolationForest, target associations and plots.

A deterministic sample (seeded, sorted row numbers) stands in for the table
above ``sample_rows`` rows. Numeric columns become one float matrix (NaN for
missing and infinite values) and categorical columns integer codes (``-1`` for
missing), so every measure below is a few vectorised numpy calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.eda._arrow import jsonable
from loopml.eda._associations import (
    correlation_ratio_codes,
    cramers_v_codes,
    pearson_matrix,
    spearman_matrix,
)
from loopml.eda._config import ProfileConfig


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row numbers of a seeded sample of ``size`` rows out of ``n`` (all rows if fewer)."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def _r(v: float | None, digits: int = 4) -> float | None:
    if v is None or not np.isfinite(v):
        return None
    return round(float(v), digits)


def _matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[_r(v) for v in row] for row in m.tolist()]


class Sample:
    """The sampled rows of a normalised table, as numeric arrays and category codes."""

    def __init__(self, table: pa.Table, size: int, seed: int) -> None:
        self.rows = sample_indices(table.num_rows, size, seed)
        self.table = table if len(self.rows) == table.num_rows else table.take(pa.array(self.rows))
        self.size = len(self.rows)
        self._num: dict[str, np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, list[Any]]] = {}

    def numeric(self, name: str) -> np.ndarray:
        """Float values of a numeric column (NaN for missing and infinite)."""
        if name not in self._num:
            col = self.table.column(name)
            x = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
            x[~np.isfinite(x)] = np.nan
            self._num[name] = x
        return self._num[name]

    def codes(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """Integer codes (``-1`` = missing) and the labels they stand for."""
        if name not in self._codes:
            col = self.table.column(name)
            if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
                x = self.numeric(name)
                present = ~np.isnan(x)
                labels, inv = np.unique(x[present], return_inverse=True)
                codes = np.full(len(x), -1, dtype=np.int64)
                codes[present] = inv
                values: list[Any] = [int(v) if float(v).is_integer() else float(v) for v in labels]
            else:
                enc = pc.dictionary_encode(col).combine_chunks()
                codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                values = enc.dictionary.to_pylist()
            self._codes[name] = (codes, values)
        return self._codes[name]

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """The numeric columns side by side (rows x columns)."""
        if not names:
            return np.empty((self.size, 0))
        return np.column_stack([self.numeric(n) for n in names])


# -- correlations ------------------------------------------------------------------------
def correlations(
    s: Sample, numeric: Sequence[str], categorical: Sequence[str], cfg: ProfileConfig, target: str | None
) -> dict[str, Any]:
    """Pearson/Spearman heatmaps, Cramér's V, correlation ratio and the top pairs."""
    out: dict[str, Any] = {"numeric_columns": list(numeric), "categorical_columns": list(categorical)}
    pairs: list[dict[str, Any]] = []
    if len(numeric) >= 2:
        x = s.matrix(numeric)
        pearson, spearman = pearson_matrix(x), spearman_matrix(x)
        out["pearson"], out["spearman"] = _matrix(pearson), _matrix(spearman)
        for i in range(len(numeric)):
            for j in range(i + 1, len(numeric)):
                p, sp = _r(pearson[i, j]), _r(spearman[i, j])
                if p is None and sp is None:
                    continue
                best = max(abs(p or 0.0), abs(sp or 0.0))
                method = "pearson" if abs(p or 0.0) >= abs(sp or 0.0) else "spearman"
                pairs.append({"a": numeric[i], "b": numeric[j], "method": method,
                              "value": p if method == "pearson" else sp, "strength": best,
                              "pearson": p, "spearman": sp})
    if len(categorical) >= 2:
        codes = [s.codes(c)[0] for c in categorical]
        v = np.eye(len(categorical))
        for i in range(len(categorical)):
            for j in range(i + 1, len(categorical)):
                cv = cramers_v_codes(codes[i], codes[j])
                v[i, j] = v[j, i] = np.nan if cv is None else cv
                if cv is not None:
                    pairs.append({"a": categorical[i], "b": categorical[j], "method": "cramers_v",
                                  "value": _r(cv), "strength": _r(cv)})
        out["cramers_v"] = _matrix(v)
    if numeric and categorical:
        eta = np.full((len(categorical), len(numeric)), np.nan)
        for i, c in enumerate(categorical):
            codes_c = s.codes(c)[0]
            for j, n in enumerate(numeric):
                e = correlation_ratio_codes(codes_c, s.numeric(n))
                if e is not None:
                    eta[i, j] = e
                    pairs.append({"a": c, "b": n, "method": "correlation_ratio", "value": _r(e),
                                  "strength": _r(e)})
        out["correlation_ratio"] = _matrix(eta)
    pairs.sort(key=lambda p: (-(p["strength"] or 0.0), p["a"], p["b"]))
    out["top_pairs"] = pairs[: cfg.top_pairs]
    out["high_pairs"] = [
        p for p in pairs
        if (p["strength"] or 0.0) >= cfg.correlation and target not in (p["a"], p["b"])
    ]
    return out


# -- isolation forest ----------------------------------------------------------------------
def isolation_forest(s: Sample, features: Sequence[str], cfg: ProfileConfig) -> dict[str, Any] | None:
    """Multivariate anomaly scores of the sample's rows (0..1, higher is stranger)."""
    if not features or s.size < 10:
        return None
    from sklearn.ensemble import IsolationForest

    x = s.matrix(features)
    med = np.nanmedian(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0) if x.size else 0
    x = np.where(np.isnan(x), med, x)
    forest = IsolationForest(
        n_estimators=cfg.iforest_trees, max_samples=min(256, s.size), random_state=cfg.seed
    ).fit(x)
    score = -forest.score_samples(x)
    counts, edges = np.histogram(score, bins=30)
    top = np.argsort(-score, kind="stable")[:10]
    above = int((score > cfg.iforest_threshold).sum())
    return {
        "features": list(features),
        "rows_scored": s.size,
        "threshold": cfg.iforest_threshold,
        "anomalous": above,
        "anomalous_pct": _r(100.0 * above / s.size, 3),
        "histogram": {"edges": [_r(e, 5) for e in edges.tolist()], "counts": counts.tolist()},
        "quantiles": {q: _r(float(np.quantile(score, v))) for q, v in
                      (("median", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))},
        "top": [{"row": int(s.rows[i]), "score": _r(score[i])} for i in top],
    }


# -- target ------------------------------------------------------------------------------------
def _box(values: np.ndarray) -> dict[str, Any]:
    q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    iqr = q3 - q1
    lo = values[values >= q1 - 1.5 * iqr].min()
    hi = values[values <= q3 + 1.5 * iqr].max()
    return {"n": len(values), "q1": _r(q1, 6), "median": _r(med, 6), "q3": _r(q3, 6),
            "lowerfence": _r(lo, 6), "upperfence": _r(hi, 6), "mean": _r(values.mean(), 6)}


def _top_codes(codes: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    return order[: min(k, int((counts > 0).sum()))]


def target_analysis(
    s: Sample, target: str, task: str, numeric: Sequence[str], categorical: Sequence[str],
    cfg: ProfileConfig,
) -> dict[str, Any]:
    """Each feature's association with the target, and plots of the strongest ones."""
    numeric = [c for c in numeric if c != target]
    categorical = [c for c in categorical if c != target]
    assoc: list[dict[str, Any]] = []
    if task == "classification":
        t_codes = s.codes(target)[0]
        for c in numeric:
            e = correlation_ratio_codes(t_codes, s.numeric(c))
            if e is not None:
                assoc.append({"feature": c, "kind": "numeric", "method": "correlation_ratio",
                              "value": _r(e), "strength": _r(e)})
        for c in categorical:
            v = cramers_v_codes(s.codes(c)[0], t_codes)
            if v is not None:
                assoc.append({"feature": c, "kind": "categorical", "method": "cramers_v",
                              "value": _r(v), "strength": _r(v)})
    else:
        y = s.numeric(target)
        if numeric:
            x = np.column_stack([y, s.matrix(numeric)])
            p, sp = pearson_matrix(x)[0, 1:], spearman_matrix(x)[0, 1:]
            for c, pv, sv in zip(numeric, p, sp, strict=True):
                if np.isfinite(pv) or np.isfinite(sv):
                    strength = max(abs(_r(pv) or 0.0), abs(_r(sv) or 0.0))
                    assoc.append({"feature": c, "kind": "numeric", "method": "pearson", "value": _r(pv),
                                  "spearman": _r(sv), "strength": _r(strength)})
        for c in categorical:
            e = correlation_ratio_codes(s.codes(c)[0], y)
            if e is not None:
                assoc.append({"feature": c, "kind": "categorical", "method": "correlation_ratio",
                              "value": _r(e), "strength": _r(e)})
    assoc.sort(key=lambda a: (-(a["strength"] or 0.0), a["feature"]))
    plots = [_target_plot(s, target, task, a["feature"], a["kind"], cfg)
             for a in assoc[: cfg.target_plots]]
    return {"associations": assoc, "plots": plots, "sample_rows": s.size}


def _target_plot(s: Sample, target: str, task: str, feature: str, kind: str,
                 cfg: ProfileConfig) -> dict[str, Any]:
    base: dict[str, Any] = {"feature": feature}
    if task == "regression":
        y = s.numeric(target)
        if kind == "numeric":
            x = s.numeric(feature)
            ok = np.flatnonzero(~np.isnan(x) & ~np.isnan(y))
            if len(ok) > cfg.scatter_points:  # a seeded subset: the sample itself is in row order
                ok = np.sort(np.random.default_rng(cfg.seed).choice(ok, cfg.scatter_points, replace=False))
            return {**base, "type": "scatter", "x": [_r(v, 6) for v in x[ok]],
                    "y": [_r(v, 6) for v in y[ok]]}
        codes, labels = s.codes(feature)
        boxes = []
        for c in _top_codes(codes, 10):
            vals = y[(codes == c) & ~np.isnan(y)]
            if len(vals):
                boxes.append({"label": jsonable(labels[c]), **_box(vals)})
        return {**base, "type": "box", "boxes": boxes, "x_is_target": False}
    t_codes, t_labels = s.codes(target)
    classes = _top_codes(t_codes, 10)
    if kind == "numeric":
        x = s.numeric(feature)
        boxes = []
        for c in classes:
            vals = x[(t_codes == c) & ~np.isnan(x)]
            if len(vals):
                boxes.append({"label": jsonable(t_labels[c]), **_box(vals)})
        return {**base, "type": "box", "boxes": boxes, "x_is_target": True}
    codes, labels = s.codes(feature)
    cats = _top_codes(codes, 10)
    shares = []
    for c in classes:
        row = []
        for k in cats:
            in_cat = codes == k
            n = int(in_cat.sum())
            row.append(_r(float(((t_codes == c) & in_cat).sum()) / n, 4) if n else None)
        shares.append({"class": jsonable(t_labels[c]), "shares": row})
    return {**base, "type": "stacked", "categories": [jsonable(labels[k]) for k in cats],
            "classes": shares}
