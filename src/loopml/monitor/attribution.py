"""Feature attributions (SHAP values), global importance and attribution drift by NDCG.

How attributions are computed
-----------------------------
- **Tree models** (XGBoost, LightGBM): exact TreeSHAP from the booster
  itself (``pred_contribs=True`` / ``pred_contrib=True``), in the model's
  raw output space (log-odds for classifiers). The values plus the bias
  column add up to the margin exactly. When the model's recipe encodes a
  column into several (``one_hot`` writes ``city_paris``, ``city_lyon``...;
  ``date_parts`` writes ``day_year``...), the contributions of those columns
  are summed back onto the input column, so attributions always name the
  columns a caller sends.
- **Any other model**: Shapley values of the model's output (the positive
  class probability for a binary classifier, the predicted class's
  probability for a multiclass one, the prediction for regression) against
  one *baseline record* (the mean of numeric columns, the mode of others),
  computed on the raw input columns through ``model.predict`` — recipe
  included. With at most :data:`EXACT_MAX_FEATURES` inputs every coalition
  is enumerated (exact Shapley values for that baseline); with more, the
  values are estimated by antithetic permutation sampling: each sampled
  feature order adds the features one by one and credits each with the
  change it makes.

Why not the ``shap`` package, and why permutations rather than Kernel SHAP:
``shap`` pulls in numba and takes seconds to import, which every CLI call
and monitoring job would pay, for one estimator we need. Kernel SHAP
solves a weighted least-squares problem per row over sampled coalitions
and only satisfies additivity through a constraint; permutation sampling
is unbiased, satisfies additivity exactly for every sample (the
contributions of one order telescope to ``f(x) − f(baseline)``), needs no
solver and vectorises as one batched ``predict`` per chunk of rows, so it is
a few lines of numpy. Against a single baseline record both estimate the
same (interventional) Shapley values.

Global importance aggregates the absolute values per feature over rows:
``mean_abs`` (the default), ``median`` (median of ``|SHAP|``) or
``mean_sq`` (mean of ``SHAP²``).

Attribution drift compares the live window's ranking with the baseline's by
normalised discounted cumulative gain: ``DCG = Σ_i a(F_live(i)) / log2(i + 1)``
where ``a`` is the *baseline* importance of the feature at live rank ``i``,
divided by the same sum in the baseline's own order. NDCG below
:data:`DEFAULT_NDCG_THRESHOLD` (0.90) is a violation.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml._util import as_utc, utcnow
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from loopml.monitor.results import Baseline, MonitoringResult, Target
    from loopml.prep import FittedRecipe
    from loopml.train.package import Model
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

AGGREGATIONS = ("mean_abs", "median", "mean_sq")
METHODS = ("auto", "tree", "exact", "permutation")
DEFAULT_NDCG_THRESHOLD = 0.90
#: up to this many input columns, model-agnostic Shapley values are exact (2^p coalitions)
EXACT_MAX_FEATURES = 8
#: default rows explained by the model-agnostic estimators (tree SHAP takes every row)
AGNOSTIC_MAX_ROWS = 500
#: default rows explained by tree SHAP in baselines and monitoring runs: exact TreeSHAP costs
#: O(trees x leaves x depth²) per row (XGBoost on CPU: ~3 s per 10k rows for 50 trees of depth 6),
#: and a seeded sample of this size ranks features as well as every row does
TREE_MAX_ROWS = 5_000
_CHUNK_ROWS = 200_000  # rows per batched predict of the model-agnostic estimators


@dataclass(frozen=True)
class Attributions:
    """SHAP values of some rows: one column per input feature, plus the base value they add up from.

    Attributes
    ----------
    values
        ``(rows, features)`` attributions.
    features
        The input columns, in the order of ``values``' columns.
    expected_value
        The base value: the bias of the trees (tree SHAP) or the model's output
        on the baseline record; ``values.sum(1) + expected_value`` is the explained output.
    method
        ``tree_shap``, ``exact`` or ``permutation``.
    output
        What is explained: ``margin`` (trees' raw score), ``probability`` or ``prediction``.
    """

    values: np.ndarray
    features: list[str]
    expected_value: float
    method: str
    output: str

    def global_importance(self, agg: str = "mean_abs") -> dict[str, float]:
        """Aggregated |SHAP| per feature; see :func:`global_importance`."""
        return global_importance(self.values, self.features, agg)


def global_importance(values: np.ndarray, features: Sequence[str], agg: str = "mean_abs") -> dict[str, float]:
    """Global importance per feature: ``mean_abs`` (mean |SHAP|), ``median`` (median |SHAP|) or ``mean_sq``.

    Examples
    --------
    >>> import numpy as np
    >>> global_importance(np.array([[1.0, -2.0], [-3.0, 0.0]]), ["a", "b"])
    {'a': 2.0, 'b': 1.0}
    >>> global_importance(np.array([[1.0, -2.0], [-3.0, 0.0]]), ["a", "b"], "mean_sq")
    {'a': 5.0, 'b': 2.0}
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(features):
        raise InvalidInput(f"values must be (rows, {len(features)}), got shape {v.shape}")
    if agg not in AGGREGATIONS:
        raise InvalidInput(f"aggregation {agg!r} is not one of {', '.join(AGGREGATIONS)}")
    if len(v) == 0:
        return {f: math.nan for f in features}
    with np.errstate(all="ignore"):
        if agg == "mean_abs":
            g = np.nanmean(np.abs(v), axis=0)
        elif agg == "median":
            g = np.nanmedian(np.abs(v), axis=0)
        else:
            g = np.nanmean(v**2, axis=0)
    return {f: float(x) for f, x in zip(features, g, strict=True)}


# -- NDCG and drift (pure) ----------------------------------------------------------------------------
def _ranked(importance: Mapping[str, float], features: Sequence[str]) -> list[str]:
    def key(f: str) -> tuple[float, str]:
        v = importance.get(f, 0.0)
        return (-(v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0), f)

    return sorted(features, key=key)


def ndcg(baseline: Mapping[str, float], live: Mapping[str, float]) -> float:
    """NDCG of the live ranking against the baseline attributions (1.0: same order).

    ``DCG = Σ_i a(F_live(i)) / log2(i + 1)`` with ``a`` the baseline
    attribution of the feature at live rank ``i`` (from 1); ``iDCG`` is the
    same sum in the baseline's order. Features missing from ``live`` rank
    last; with no attribution at all the ranking is trivially kept (1.0).

    Examples
    --------
    >>> ndcg({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 0.9, "b": 0.5, "c": 0.1})
    1.0
    >>> round(ndcg({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 0.0, "b": 0.5, "c": 0.1}), 4)
    0.8675
    """
    feats = list(baseline)
    a = {f: (float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0) for f, v in baseline.items()}
    live_order = _ranked(live, feats)
    base_order = _ranked(a, feats)
    dcg = sum(a[f] / math.log2(i + 1) for i, f in enumerate(live_order, 1))
    idcg = sum(a[f] / math.log2(i + 1) for i, f in enumerate(base_order, 1))
    return 1.0 if idcg <= 0 else float(dcg / idcg)


def attribution_drift(
    baseline: Mapping[str, float],
    live: Mapping[str, float],
    threshold: float = DEFAULT_NDCG_THRESHOLD,
) -> dict[str, Any]:
    """Compare two global importances: NDCG, the verdict, and every feature's rank before and after.

    Returns
    -------
    dict
        ``ndcg``, ``threshold``, ``drifted`` (NDCG < threshold), ``features``
        (``feature, baseline_rank, live_rank, rank_change, baseline_value,
        live_value``, in baseline order) and ``moved`` (features whose rank
        changed, largest move first).

    Examples
    --------
    >>> d = attribution_drift({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 0.0, "b": 0.5, "c": 0.1})
    >>> round(d["ndcg"], 3), d["drifted"], d["moved"]
    (0.868, True, ['a', 'b', 'c'])
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise InvalidInput(f"the NDCG threshold must be a number between 0 and 1, got {threshold!r}")
    feats = list(baseline)
    base_order = _ranked(baseline, feats)
    live_order = _ranked(live, feats)
    b_rank = {f: i for i, f in enumerate(base_order, 1)}
    l_rank = {f: i for i, f in enumerate(live_order, 1)}
    rows: list[dict[str, Any]] = [{"feature": f, "baseline_rank": b_rank[f], "live_rank": l_rank[f], "rank_change": l_rank[f] - b_rank[f],
             "baseline_value": baseline.get(f), "live_value": live.get(f)} for f in base_order]
    moved = [r["feature"] for r in sorted(rows, key=lambda r: (-abs(r["rank_change"]), r["baseline_rank"]))
             if r["rank_change"] != 0]
    value = ndcg(baseline, live)
    return {"ndcg": value, "threshold": float(threshold), "drifted": value < threshold, "features": rows,
            "moved": moved}


# -- mapping encoded columns back to inputs -----------------------------------------------------------
def feature_sources(recipe: FittedRecipe | None, inputs: Sequence[str], features: Sequence[str]) -> dict[str, str]:
    """The input column each model feature comes from (encoded columns map to the column they encode).

    Steps that record their output names per input column (``one_hot``'s
    ``names_``) are followed exactly; other derived columns named
    ``{input}_{suffix}`` (``date_parts``, ``tfidf``, ``hashing``) map to the
    longest input column that prefixes them; anything else is its own source.

    Examples
    --------
    >>> feature_sources(None, ["x", "city"], ["x", "city_paris", "city_lyon", "other"])
    {'x': 'x', 'city_paris': 'city', 'city_lyon': 'city', 'other': 'other'}
    """
    origin: dict[str, str] = {c: c for c in inputs}
    if recipe is not None:
        for c in recipe.input_columns:
            origin.setdefault(c, c)
        for step in recipe.steps:
            names = getattr(step, "names_", None)
            if isinstance(names, Mapping):
                for src, outs in names.items():
                    for o in outs or ():
                        origin[str(o)] = origin.get(str(src), str(src))
    raw = sorted({*inputs, *(recipe.input_columns if recipe is not None else [])}, key=len, reverse=True)
    out: dict[str, str] = {}
    for f in features:
        if f in origin:
            out[f] = origin[f]
            continue
        out[f] = next((r for r in raw if f.startswith(r + "_")), f)
    return out


# -- tree SHAP ----------------------------------------------------------------------------------------
def _tree_contributions(model: Model, X: np.ndarray) -> tuple[np.ndarray, str] | None:
    """(contributions with the bias last, shape (n, [k,] p+1), library) or None if not a supported tree model."""
    algo = model.algorithm
    booster = getattr(algo, "booster_", None)
    if booster is None:
        return None
    if algo.name == "xgboost":
        import xgboost as xgb

        contrib = np.asarray(booster.predict(xgb.DMatrix(X, missing=np.nan), pred_contribs=True))
        return contrib, "xgboost"
    if algo.name == "lightgbm":
        contrib = np.asarray(booster.predict(X, pred_contrib=True))
        p = X.shape[1]
        if contrib.ndim == 2 and contrib.shape[1] != p + 1:
            contrib = contrib.reshape(len(X), -1, p + 1)
        return contrib, "lightgbm"
    return None


def _tree_shap(model: Model, df: pd.DataFrame) -> Attributions | None:
    algo = model.algorithm
    if getattr(algo, "booster_", None) is None or algo.name not in ("xgboost", "lightgbm"):
        return None
    Xt = model.transform(df)
    X = algo.matrix(Xt)  # type: ignore[attr-defined]
    got = _tree_contributions(model, X)
    if got is None:  # pragma: no cover - guarded above
        return None
    contrib, _ = got
    if contrib.ndim == 3:  # multiclass: explain each row's predicted class
        cls = np.argmax(np.asarray(algo.predict_proba(Xt)), axis=1)
        contrib = contrib[np.arange(len(contrib)), cls]
    enc = list(algo.features_)  # type: ignore[attr-defined]
    inputs = list(model.signature.input_names)
    sources = feature_sources(model.recipe, inputs, enc)
    raw = [c for c in inputs if c in set(sources.values())] + \
        [s for s in dict.fromkeys(sources.values()) if s not in inputs]
    col = {r: i for i, r in enumerate(raw)}
    agg = np.zeros((contrib.shape[0], len(raw)))
    for j, f in enumerate(enc):
        agg[:, col[sources[f]]] += contrib[:, j]
    bias = contrib[:, -1]
    return Attributions(values=agg, features=raw, expected_value=float(bias.mean()) if len(bias) else math.nan,
                        method="tree_shap", output="margin")


# -- model-agnostic Shapley values --------------------------------------------------------------------
def baseline_record(df: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """The record attributions are measured against: the mean of numeric columns, the mode of the others.

    Examples
    --------
    >>> import pandas as pd
    >>> baseline_record(pd.DataFrame({"x": [1.0, 3.0], "c": ["a", "a"]}), ["x", "c"])
    {'x': 2.0, 'c': 'a'}
    """
    import pandas as pd

    out: dict[str, Any] = {}
    for c in columns:
        s = df[c]
        if pd.api.types.is_bool_dtype(s.dtype):
            m = s.mode(dropna=True)
            out[c] = bool(m.iloc[0]) if len(m) else None
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            v = s.mean(skipna=True)
            out[c] = v if pd.notna(v) else None
        elif pd.api.types.is_numeric_dtype(s.dtype):
            v = s.mean(skipna=True)
            out[c] = float(v) if pd.notna(v) else None
        else:
            m = s.mode(dropna=True)
            out[c] = m.iloc[0] if len(m) else None
    return out


def _output_fn(model: Model) -> tuple[Any, str]:
    """``fn(frame, cls) -> values`` of what is explained, and its name."""
    if model.problem_type in ("binary", "multiclass"):
        def proba(frame: pd.DataFrame, cls: np.ndarray | None) -> np.ndarray:
            p = np.asarray(model.predict_proba(frame), dtype=np.float64)
            if cls is None:
                return p[:, -1]
            return p[np.arange(len(p)), cls]

        return proba, "probability"

    def predict(frame: pd.DataFrame, cls: np.ndarray | None) -> np.ndarray:
        return np.asarray(model.predict(frame), dtype=np.float64).reshape(len(frame), -1)[:, 0]

    return predict, "prediction"


def _coalition_frame(X: pd.DataFrame, base: Mapping[str, Any], masks: np.ndarray) -> pd.DataFrame:
    """Rows ``(coalition, row)``: each column from ``X`` where the coalition includes it, else the baseline."""
    import pandas as pd

    n = len(X)
    reps = len(masks)
    order = np.tile(np.arange(n), reps)
    cols: dict[str, pd.Series] = {}
    for j, c in enumerate(X.columns):
        s = X[c]
        tiled = s.take(order).reset_index(drop=True)
        keep = pd.Series(np.repeat(masks[:, j], n))
        cols[str(c)] = tiled.where(keep, _filler(s, base.get(str(c))))
    return pd.DataFrame(cols)


def _filler(s: pd.Series, value: Any) -> Any:
    """``value`` as a scalar of ``s``'s type (a baseline record read back from JSON holds text dates)."""
    import pandas as pd

    if value is None:
        return None
    try:
        return pd.Series([value]).astype(s.dtype).iloc[0]
    except (TypeError, ValueError):
        return value


def _shapley_weights(p: int) -> np.ndarray:
    return np.array([math.factorial(s) * math.factorial(p - s - 1) / math.factorial(p) for s in range(p)])


def _agnostic(
    model: Model, X: pd.DataFrame, base: Mapping[str, Any], *, exact: bool, n_permutations: int, seed: int,
) -> Attributions:
    fn, output = _output_fn(model)
    n, p = X.shape
    cls = None
    if model.problem_type == "multiclass":
        cls = np.argmax(np.asarray(model.predict_proba(X), dtype=np.float64), axis=1)
    values = np.zeros((n, p))
    if exact:
        masks = ((np.arange(2**p)[:, None] >> np.arange(p)[None, :]) & 1).astype(bool)
        V = _evaluate(fn, X, base, masks, cls)  # (n, 2^p)
        w = _shapley_weights(p)
        sizes = masks.sum(axis=1)
        ids = np.arange(2**p)
        for j in range(p):
            without = ids[~masks[:, j]]
            values[:, j] = (w[sizes[without]] * (V[:, without | (1 << j)] - V[:, without])).sum(axis=1)
        expected = V[:, 0]
        method = "exact"
    else:
        rng = np.random.default_rng(seed)
        pairs = max(1, (n_permutations + 1) // 2)
        orders = []
        for _ in range(pairs):
            perm = rng.permutation(p)
            orders += [perm, perm[::-1]]
        expected = np.zeros(n)
        for perm in orders:
            pos = np.empty(p, dtype=np.int64)
            pos[perm] = np.arange(p)
            masks = np.arange(p + 1)[:, None] > pos[None, :]  # step k holds the first k features of perm
            V = _evaluate(fn, X, base, masks, cls)  # (n, p+1)
            values[:, perm] += np.diff(V, axis=1)
            expected = V[:, 0]
        values /= len(orders)
        method = "permutation"
    ev = float(np.nanmean(expected)) if len(expected) else math.nan
    return Attributions(values=values, features=list(X.columns), expected_value=ev, method=method, output=output)


def _evaluate(fn: Any, X: pd.DataFrame, base: Mapping[str, Any], masks: np.ndarray,
              cls: np.ndarray | None) -> np.ndarray:
    """Model output for every (row, coalition): shape (rows, coalitions)."""
    n = len(X)
    k = len(masks)
    out = np.empty((n, k))
    step = max(1, _CHUNK_ROWS // max(k, 1))
    for start in range(0, n, step):
        part = X.iloc[start:start + step]
        m = len(part)
        frame = _coalition_frame(part, base, masks)
        c = np.tile(cls[start:start + m], k) if cls is not None else None
        vals = np.asarray(fn(frame, c), dtype=np.float64)
        out[start:start + m] = vals.reshape(k, m).T
    return out


def explain(
    model: Model,
    df: pd.DataFrame,
    *,
    method: str = "auto",
    background: pd.DataFrame | Mapping[str, Any] | None = None,
    n_permutations: int = 10,
    max_rows: int | None = None,
    seed: int = 0,
) -> Attributions:
    """SHAP values of ``model`` on the rows of ``df`` (see the module docstring for the methods).

    Parameters
    ----------
    model
        A loaded model package (:func:`loopml.registry.load_model`).
    df
        Rows with (at least) the model's input columns.
    method
        ``auto`` (tree SHAP for XGBoost/LightGBM, else exact or permutation
        by the number of inputs), ``tree``, ``exact`` or ``permutation``.
    background
        For the model-agnostic methods: the baseline record, or rows to take
        it from (default: ``df`` itself).
    n_permutations
        Feature orders sampled by ``permutation`` (rounded up to an even
        number: each order is also used reversed).
    max_rows
        Explain a seeded sample of at most this many rows (default: every
        row for tree SHAP, :data:`AGNOSTIC_MAX_ROWS` otherwise).
    seed
        Seed of the row sample and of the permutations.

    Returns
    -------
    Attributions

    Raises
    ------
    InvalidInput
        An unknown method, ``tree`` for a model that is not a tree booster,
        missing input columns, or no rows.
    """
    import pandas as pd

    if method not in METHODS:
        raise InvalidInput(f"attribution method {method!r} is not one of {', '.join(METHODS)}")
    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(f"explain needs a pandas DataFrame, got {type(df).__name__}")
    inputs = list(model.signature.input_names)
    missing = [c for c in inputs if c not in df.columns]
    if missing:
        raise InvalidInput(f"the data lack input column(s) {missing[:10]} of the model")
    if len(df) == 0:
        raise InvalidInput("no rows to explain")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
        raise InvalidInput(f"n_permutations must be a whole number ≥ 1, got {n_permutations!r}")
    is_tree = getattr(model.algorithm, "booster_", None) is not None and model.algorithm.name in ("xgboost", "lightgbm")
    if method == "tree" and not is_tree:
        raise InvalidInput(f"tree SHAP needs an XGBoost or LightGBM model; this is {model.flavor}; "
                           "use method='auto', 'exact' or 'permutation'")
    use_tree = is_tree and method in ("auto", "tree")
    limit = max_rows if max_rows is not None else (None if use_tree else AGNOSTIC_MAX_ROWS)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInput(f"max_rows must be a whole number ≥ 1, got {max_rows!r}")
    rows = df[inputs]
    if limit is not None and len(rows) > limit:
        rows = rows.sample(n=limit, random_state=seed)
    rows = rows.reset_index(drop=True)
    if use_tree:
        got = _tree_shap(model, rows)
        assert got is not None
        return got
    if background is None:
        base = baseline_record(rows, inputs)
    elif isinstance(background, pd.DataFrame):
        base = baseline_record(background, inputs)
    else:
        base = {c: background.get(c) for c in inputs}
    exact = method == "exact" or (method == "auto" and len(inputs) <= EXACT_MAX_FEATURES)
    if exact and len(inputs) > 16:
        raise InvalidInput(f"exact Shapley values over {len(inputs)} inputs need 2^{len(inputs)} model calls per "
                           "row; use method='permutation'")
    return _agnostic(model, rows, base, exact=exact, n_permutations=n_permutations, seed=seed)


def _analysis(att: Attributions, importance: Mapping[str, float], agg: str) -> dict[str, Any]:
    """Clarify-like ``analysis.json`` of global attributions."""
    return {"version": "1.0", "explanations": {att.method: {"label0": {
        "global_shap_values": dict(importance), "expected_value": att.expected_value,
        "aggregation": agg, "output": att.output, "rows": len(att.values),
    }}}}


# -- recorded baselines and runs --------------------------------------------------------------------------
def attribution_baseline(
    ws: Workspace,
    model_ref: str,
    dataset: str,
    *,
    name: str | None = None,
    method: str = "auto",
    agg: str = "mean_abs",
    max_rows: int | None = None,
    n_permutations: int = 10,
    seed: int = 0,
) -> Baseline:
    """Compute and store the global attributions of a model version on a dataset version.

    Parameters
    ----------
    ws
        The workspace.
    model_ref
        A registered model (``NAME:VERSION``, ``NAME@ALIAS``, ``NAME``).
    dataset
        ``NAME[:VERSION]`` of rows with the model's input columns (often its training data).
    name
        The baseline's name (default: ``<model>-<version>-attribution``).
    method, n_permutations, seed
        As for :func:`explain`.
    agg
        ``mean_abs``, ``median`` or ``mean_sq``.
    max_rows
        Rows explained (a seeded sample; default :data:`TREE_MAX_ROWS` for
        tree SHAP, :data:`AGNOSTIC_MAX_ROWS` otherwise).

    Returns
    -------
    Baseline
        Kind ``attribution``; ``details`` holds ``importance`` (feature ->
        value), ``ranking``, ``method``, ``agg`` and the ``baseline_record``;
        ``analysis.json`` is Clarify-like.
    """
    from loopml.data.catalog import Catalog
    from loopml.monitor.results import save_baseline
    from loopml.registry import get_model_version, load_model

    if agg not in AGGREGATIONS:
        raise InvalidInput(f"aggregation {agg!r} is not one of {', '.join(AGGREGATIONS)}")
    info = get_model_version(ws, model_ref)
    model = load_model(ws, info.ref)
    cat = Catalog(ws)
    dv = cat.get(dataset)
    inputs = list(model.signature.input_names)
    missing = [c for c in inputs if c not in dv.columns]
    if missing:
        raise InvalidInput(f"{dv.ref} lacks input column(s) {missing[:10]} of {info.ref}")
    df = cat.read_pandas(dv, columns=inputs)
    if df.empty:
        raise InvalidInput(f"{dv.ref} has no rows to compute attributions on")
    att, base = _explain_window(model, df, method=method, max_rows=max_rows, n_permutations=n_permutations,
                                seed=seed, base=None)
    importance = att.global_importance(agg)
    details = {
        "importance": importance, "ranking": _ranked(importance, list(importance)), "method": att.method,
        "requested_method": method, "agg": agg, "output": att.output, "expected_value": att.expected_value,
        "baseline_record": base, "features": att.features, "item_count": len(att.values),
        "n_permutations": n_permutations, "seed": seed,
    }
    bl_name = name or f"{info.name}-{info.version}-attribution"
    return save_baseline(ws, "attribution", bl_name,
                         outputs={"analysis.json": json.dumps(_json(_analysis(att, importance, agg)), indent=2).encode()},
                         dataset_version=(dv.id, dv.ref), model_version=(info.id, info.ref), details=details)


def _explain_window(model: Model, df: pd.DataFrame, *, method: str, max_rows: int | None, n_permutations: int,
                    seed: int, base: Mapping[str, Any] | None) -> tuple[Attributions, dict[str, Any] | None]:
    is_tree = getattr(model.algorithm, "booster_", None) is not None and model.algorithm.name in ("xgboost", "lightgbm")
    use_tree = is_tree and method in ("auto", "tree")
    limit = max_rows if max_rows is not None else (TREE_MAX_ROWS if use_tree else AGNOSTIC_MAX_ROWS)
    record = None
    if not use_tree:
        record = dict(base) if base is not None else baseline_record(df, list(model.signature.input_names))
    att = explain(model, df, method=method, background=record, n_permutations=n_permutations, max_rows=limit,
                  seed=seed)
    return att, record


def default_baseline(ws: Workspace, endpoint: str) -> Baseline:
    """The newest attribution baseline of the model version that last answered ``endpoint``'s captured requests."""
    from loopml.monitor.results import list_baselines
    from loopml.serve.capture import read_capture

    cap = read_capture(ws, endpoint)
    if cap.empty:
        raise InvalidInput(f"endpoint {endpoint!r} has no captured requests to find its model from; "
                           "give the baseline (--baseline NAME)")
    model = str(cap.sort_values("time")["model"].iloc[-1])
    for b in list_baselines(ws, kind="attribution"):
        if b.model_ref == model:
            return b
    raise InvalidInput(f"no attribution baseline for {model}, the model serving {endpoint!r}; create one with "
                       f"`loopml monitor attribution-baseline {model} --data NAME` or give --baseline")


def run_attribution_drift(
    ws: Workspace,
    target: str | Target,
    baseline: str | Baseline | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    threshold: float = DEFAULT_NDCG_THRESHOLD,
    max_rows: int | None = None,
) -> MonitoringResult:
    """Compare the live attributions of an endpoint window (or a dataset version) with a stored baseline.

    Parameters
    ----------
    ws
        The workspace.
    target
        An endpoint name (its captured inputs in ``[since, until]``), or a
        dataset (``NAME:VERSION``, ``dataset:NAME`` or a :class:`Target`).
    baseline
        An ``attribution`` baseline (name, id or :class:`Baseline`); its
        model explains the live rows the same way (method, aggregation,
        baseline record). Default for an endpoint: the newest baseline of the
        model version that last served it (:func:`default_baseline`).
    since, until
        The window of captured requests (endpoints only).
    threshold
        NDCG below this is a violation (default 0.90).
    max_rows
        Rows explained (a seeded sample; defaults as for the baseline).

    Returns
    -------
    MonitoringResult
        ``CompletedWithViolations`` when NDCG < threshold, ``NoData`` for an
        empty window. The summary holds ``ndcg`` and every feature's rank
        before and after; metrics ``attribution_ndcg`` and
        ``feature_attribution`` (per ``feature``) go to ``ws.metrics``.
    """
    from loopml.metrics import MetricPoint
    from loopml.monitor.results import (
        COMPLETED,
        COMPLETED_WITH_VIOLATIONS,
        NO_DATA,
        Baseline,
        Target,
        get_baseline,
        save_result,
    )
    from loopml.registry import load_model

    attribution_drift({}, {}, threshold)  # validate early
    tgt = Target.parse(target)
    if baseline is None:
        if tgt.kind != "endpoint":
            raise InvalidInput("give the attribution baseline to compare the dataset with")
        bl = default_baseline(ws, tgt.name)
    else:
        bl = baseline if isinstance(baseline, Baseline) else get_baseline(ws, baseline, kind="attribution")
    if bl.kind != "attribution" or "importance" not in bl.details or not bl.model_ref:
        raise InvalidInput(f"baseline {bl.name} ({bl.id}) is not an attribution baseline; create one with "
                           "`loopml monitor attribution-baseline M:V --data NAME`")
    model = load_model(ws, bl.model_ref)
    inputs = list(model.signature.input_names)
    if tgt.kind == "dataset":
        from loopml.data.catalog import Catalog

        dv = Catalog(ws).get(tgt.name)
        tgt = Target("dataset", dv.ref)
        missing = [c for c in inputs if c not in dv.columns]
        if missing:
            raise InvalidInput(f"{dv.ref} lacks input column(s) {missing[:10]} of {bl.model_ref}")
        df = Catalog(ws).read_pandas(dv, columns=inputs)
        window: tuple[datetime | None, datetime | None] = (None, None)
        empty_msg = f"{dv.ref} has no rows"
    else:
        from loopml.serve.capture import read_capture

        df = read_capture(ws, tgt.name, since=since, until=until)
        for c in inputs:  # capture keeps an input named like one of its own columns as input.<name>
            if f"input.{c}" in df.columns:
                df[c] = df[f"input.{c}"]
        window = (since, until)
        empty_msg = f"endpoint {tgt.name!r} has no captured requests in the window"
        if not df.empty:
            missing = [c for c in inputs if c not in df.columns]
            if missing:
                raise InvalidInput(f"the captured requests of {tgt.name!r} lack input column(s) {missing[:10]} "
                                   f"of {bl.model_ref}; is the baseline for this endpoint's model?")
    if df.empty:
        return save_result(ws, "attribution", tgt, status=NO_DATA, since=window[0], until=window[1],
                           baseline_id=bl.id, summary={"message": empty_msg, "rows": 0})
    d = bl.details
    att, _ = _explain_window(model, df, method=str(d.get("requested_method", "auto")), max_rows=max_rows,
                             n_permutations=int(d.get("n_permutations", 10)), seed=int(d.get("seed", 0)),
                             base=d.get("baseline_record"))
    agg = str(d.get("agg", "mean_abs"))
    live = att.global_importance(agg)
    base_imp = {str(k): float(v) if v is not None else 0.0 for k, v in d["importance"].items()}
    drift = attribution_drift(base_imp, live, threshold)
    violations = []
    if drift["drifted"]:
        moved = ", ".join(f"{r['feature']} {r['baseline_rank']}→{r['live_rank']}" for r in drift["features"]
                          if r["rank_change"] != 0)
        violations.append({
            "feature_name": "", "constraint_check_type": "attribution_drift_check",
            "description": f"NDCG {drift['ndcg']:.4f} of the live attribution ranking is below the threshold "
                           f"{threshold:g} (rank moves: {moved})",
        })
    dims_key = "endpoint" if tgt.kind == "endpoint" else "dataset"
    ts = as_utc(window[1]) if window[1] is not None else utcnow()
    points = [MetricPoint("attribution_ndcg", drift["ndcg"], {dims_key: tgt.name, "monitor": "attribution"}, ts)]
    points += [MetricPoint("feature_attribution", v, {dims_key: tgt.name, "monitor": "attribution", "feature": f}, ts)
               for f, v in live.items() if math.isfinite(v)]
    ws.metrics.put_many(points)
    summary = {
        "model": bl.model_ref, "baseline": bl.name, "method": att.method, "agg": agg, "rows": len(att.values),
        "ndcg": drift["ndcg"], "threshold": threshold, "moved": drift["moved"], "features": drift["features"],
        "violations": violations, "violation_count": len(violations),
        "message": (f"attribution ranking drifted: NDCG {drift['ndcg']:.4f} < {threshold:g}" if violations
                    else f"attribution ranking kept: NDCG {drift['ndcg']:.4f} ≥ {threshold:g}"),
    }
    outputs = {
        "analysis.json": json.dumps(_json(_analysis(att, live, agg)), indent=2).encode(),
        "attribution_drift.json": json.dumps(_json(drift), indent=2).encode(),
        "constraint_violations.json": json.dumps({"violations": violations}, indent=2).encode(),
    }
    return save_result(ws, "attribution", tgt, status=COMPLETED_WITH_VIOLATIONS if violations else COMPLETED,
                       summary=summary, outputs=outputs, since=window[0], until=window[1], baseline_id=bl.id)


def _json(v: Any) -> Any:
    from loopml.monitor.results import jsonable

    return jsonable(v)


__all__ = [
    "AGGREGATIONS",
    "AGNOSTIC_MAX_ROWS",
    "DEFAULT_NDCG_THRESHOLD",
    "EXACT_MAX_FEATURES",
    "METHODS",
    "TREE_MAX_ROWS",
    "Attributions",
    "attribution_baseline",
    "attribution_drift",
    "baseline_record",
    "default_baseline",
    "explain",
    "feature_sources",
    "global_importance",
    "ndcg",
    "run_attribution_drift",
]
