"""Bias metrics in the style of SageMaker Clarify: pre-training (data) and post-training (predictions).

The *facet* is a sensitive column; its rows with the given value(s) — or,
for a numeric facet, above the given threshold — form the group *d*
(Clarify's "disadvantaged" facet); every other row forms *a*. The label's
positive value(s) say what a favourable outcome is. Definitions follow the
reference (``sagemaker-contracts.md`` section 5); with ``n`` counts, ``q``
the share of positive observed labels, hats for predicted labels:

========  =================================================================
CI        (n_a − n_d) / (n_a + n_d)
DPL       q_a − q_d
KL        Σ_y P_a(y) ln(P_a(y) / P_d(y))  (over the label's values)
JS        ½ [KL(P_a ‖ P) + KL(P_d ‖ P)],  P = ½ (P_a + P_d)
LP        (Σ_y |P_a(y) − P_d(y)|²)^½
TVD       ½ Σ_y |P_a(y) − P_d(y)|
KS        max_y |P_a(y) − P_d(y)|
CDDL      Σ_g n_g DD_g / Σ_g n_g,  DD = n_d(rejected)/n(rejected) − n_d(accepted)/n(accepted)
DPPL      q̂_a − q̂_d
DI        q̂_d / q̂_a
DCAcc     c_a − c_d,  c = observed positives / predicted positives
DCR       r_d − r_a,  r = observed negatives / predicted negatives
RD        TP_a/(TP_a+FN_a) − TP_d/(TP_d+FN_d)
DAR       TP_a/(TP_a+FP_a) − TP_d/(TP_d+FP_d)
DRR       TN_d/(TN_d+FN_d) − TN_a/(TN_a+FN_a)
AD        ACC_a − ACC_d
TE        FN_d/FP_d − FN_a/FP_a
CDDPL     CDDL with the predicted labels
FT        (F⁺ − F⁻) / n_d over the k nearest *a* neighbours of each *d* row
GE        1/(n α(α−1)) Σ_i [(b_i/μ)^α − 1],  b_i = ŷ_i − y_i + 1,  α = 2
========  =================================================================

A metric whose formula divides by zero (an empty facet, no predicted
positives in a group, ...) is NaN (``null`` in JSON) and the result says why
in its ``notes``. KL is infinite when a label value occurs in *a* but never
in *d* (also noted). CDDL/CDDPL leave out subgroups with no accepted or no
rejected rows, where DD is undefined.

The pure functions here take DataFrames; :func:`run_bias` reads a dataset
version (and lets a model predict it) or an endpoint's captured predictions
joined with their ground truth, and records a ``bias`` monitoring result
with a Clarify-like ``analysis.json``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml._util import utcnow
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from loopml.monitor.results import MonitoringResult
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

PRE_TRAINING_METRICS = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL")
POST_TRAINING_METRICS = ("DPPL", "DI", "DCAcc", "DCR", "RD", "DAR", "DRR", "AD", "TE", "CDDPL", "FT", "GE")

DESCRIPTIONS: dict[str, str] = {
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "KL": "Kullback-Liebler Divergence (KL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "CDDL": "Conditional Demographic Disparity in Labels (CDDL)",
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DI": "Disparate Impact (DI)",
    "DCAcc": "Difference in Conditional Acceptance (DCAcc)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "RD": "Recall Difference (RD)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "AD": "Accuracy Difference (AD)",
    "TE": "Treatment Equality (TE)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "FT": "Flip Test (FT)",
    "GE": "Generalized Entropy (GE)",
}
#: the value of a metric when there is no bias (DI is a ratio; the rest are differences or divergences)
IDEAL: dict[str, float] = {name: (1.0 if name == "DI" else 0.0) for name in DESCRIPTIONS}

#: neighbours per *d* row in the flip test
FT_NEIGHBORS = 5


# -- selecting rows ------------------------------------------------------------------------------
def _values(v: Any) -> list[Any]:
    out = list(v) if isinstance(v, (list, tuple, set, frozenset)) else [v]
    if not out:
        raise InvalidInput("give at least one value")
    return out


def _is_numeric(s: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(s.dtype)) and not pd.api.types.is_bool_dtype(s.dtype)


def _isin(s: pd.Series, values: Sequence[Any], what: str) -> np.ndarray:
    """Rows of ``s`` equal to one of ``values``; numbers given as text ("1") match numeric columns."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(s.dtype):
        wanted: set[bool] = set()
        for v in values:
            text = str(v).strip().lower()
            if text in ("true", "1", "yes"):
                wanted.add(True)
            elif text in ("false", "0", "no"):
                wanted.add(False)
            else:
                raise InvalidInput(f"{what} {v!r} is not a value of the true/false column {s.name!r}")
        return np.asarray(s.isin(list(wanted)).fillna(False), dtype=bool)
    if _is_numeric(s):
        nums = []
        for v in values:
            try:
                nums.append(float(v))
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"{what} {v!r} is not a number, but column {s.name!r} holds numbers"
                ) from None
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.isin(arr, np.asarray(nums, dtype=np.float64))
    texts = {str(v) for v in values}
    return np.asarray(s.astype(object).map(lambda x: x is not None and str(x) in texts), dtype=bool)


def _present(s: pd.Series) -> np.ndarray:
    return np.asarray(s.notna(), dtype=bool)


def _facet_mask(df: pd.DataFrame, facet: str, facet_value: Any, facet_threshold: float | None) -> np.ndarray:
    s = df[facet]
    if (facet_value is None) == (facet_threshold is None):
        raise InvalidInput("give exactly one of facet_value (the sensitive value(s)) or facet_threshold "
                           "(rows above it form the sensitive group)")
    if facet_threshold is not None:
        if not _is_numeric(s):
            raise InvalidInput(f"facet_threshold needs a numeric facet column, but {facet!r} holds {s.dtype} "
                               "values; give facet_value instead")
        try:
            t = float(facet_threshold)
        except (TypeError, ValueError):
            raise InvalidInput(f"facet_threshold {facet_threshold!r} is not a number") from None
        return np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan) > t, dtype=bool)
    return _isin(s, _values(facet_value), "facet value")


def _check_columns(df: pd.DataFrame, columns: Mapping[str, str | None]) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(f"bias metrics need a pandas DataFrame, got {type(df).__name__}")
    for role, col in columns.items():
        if col is not None and col not in df.columns:
            shown = ", ".join(map(str, list(df.columns)[:15])) + (" ..." if len(df.columns) > 15 else "")
            raise InvalidInput(f"the {role} column {col!r} is not in the data; its columns are {shown}")


def _value_text(facet_value: Any, facet_threshold: float | None) -> str:
    if facet_threshold is not None:
        return str(facet_threshold)
    return ",".join(str(v) for v in _values(facet_value))


# -- arithmetic ----------------------------------------------------------------------------------
def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else math.nan


def _dist(labels: np.ndarray, mask: np.ndarray, cats: np.ndarray) -> np.ndarray:
    n = int(mask.sum())
    if n == 0:
        return np.full(len(cats), np.nan)
    counts = np.array([(labels[mask] == c).sum() for c in cats], dtype=np.float64)
    return counts / n


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    if np.isnan(p).any() or np.isnan(q).any():
        return math.nan
    m = p > 0
    if (q[m] == 0).any():
        return math.inf
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def _cdd(d: np.ndarray, positive: np.ndarray, group: np.ndarray | None, notes: list[str], what: str) -> float:
    """Conditional demographic disparity: the row-weighted mean of DD over the subgroups."""
    if group is None:
        return math.nan
    codes, uniques = _factorize(group)
    total = 0.0
    weight = 0
    skipped = 0
    for g in range(len(uniques)):
        m = codes == g
        acc = m & positive
        rej = m & ~positive
        n_acc, n_rej = int(acc.sum()), int(rej.sum())
        if n_acc == 0 or n_rej == 0:
            skipped += 1
            continue
        dd = (d & rej).sum() / n_rej - (d & acc).sum() / n_acc
        n_g = int(m.sum())
        total += n_g * dd
        weight += n_g
    if skipped:
        notes.append(f"{what}: left out {skipped} of {len(uniques)} subgroup(s) with no accepted or no rejected rows")
    return float(total / weight) if weight else math.nan


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    return np.asarray(codes), np.asarray(uniques, dtype=object)


def _empty_notes(n_a: int, n_d: int, facet: str, value: str, notes: list[str]) -> None:
    if n_d == 0:
        notes.append(f"no row has {facet} = {value} (the facet group d is empty): the metrics comparing a and d are NaN")
    if n_a == 0:
        notes.append(f"every row has {facet} = {value} (the rest, a, is empty): the metrics comparing a and d are NaN")


# -- pre-training --------------------------------------------------------------------------------
def pretraining_bias(
    df: pd.DataFrame,
    label: str,
    positive_label: Any,
    facet: str,
    facet_value: Any = None,
    facet_threshold: float | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Pre-training bias metrics of a dataset: CI, DPL, KL, JS, LP, TVD, KS and CDDL.

    Parameters
    ----------
    df
        The data.
    label
        The observed label column.
    positive_label
        The favourable label value, or a list of them (text "1" matches a numeric 1).
    facet
        The sensitive column.
    facet_value
        The value(s) of ``facet`` that form the sensitive group *d*.
    facet_threshold
        For a numeric facet instead: rows with ``facet > facet_threshold`` form *d*.
    group
        The subgroup column for CDDL (left NaN without one).

    Returns
    -------
    dict
        ``facet``, ``value_or_threshold``, ``counts`` (``n_a``, ``n_d``,
        ``dropped`` rows with a missing label or facet), ``metrics``
        (name -> value, NaN when undefined) and ``notes``.

    Raises
    ------
    InvalidInput
        A column is missing, or a value does not fit its column.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sex": ["f", "f", "m", "m", "m", "m"], "y": [1, 0, 1, 1, 1, 0]})
    >>> r = pretraining_bias(df, "y", 1, "sex", facet_value="f")
    >>> round(r["metrics"]["CI"], 4), round(r["metrics"]["DPL"], 4)
    (0.3333, 0.25)
    """
    _check_columns(df, {"label": label, "facet": facet, "group": group})
    notes: list[str] = []
    keep = _present(df[label]) & _present(df[facet])
    d_all = _facet_mask(df, facet, facet_value, facet_threshold)
    dropped = int((~keep).sum())
    if dropped:
        notes.append(f"left out {dropped} row(s) with a missing {label!r} or {facet!r}")
    d = d_all[keep]
    a = ~d
    labels_s = df[label][keep]
    pos = _isin(labels_s, _values(positive_label), "positive label")
    labels = labels_s.astype(object).to_numpy()
    n_a, n_d = int(a.sum()), int(d.sum())
    value = _value_text(facet_value, facet_threshold)
    _empty_notes(n_a, n_d, facet, value, notes)

    cats = np.asarray(sorted({str(x) for x in labels}), dtype=object)
    labels_text = np.asarray([str(x) for x in labels], dtype=object)
    pa_, pd_ = _dist(labels_text, a, cats), _dist(labels_text, d, cats)
    diff = np.abs(pa_ - pd_)
    kl = _kl(pa_, pd_)
    if math.isinf(kl):
        missing = [str(c) for c, p, q in zip(cats, pa_, pd_, strict=True) if p > 0 and q == 0]
        notes.append(f"KL is infinite: label value(s) {missing[:5]} occur in a but never in d")
    mix = (pa_ + pd_) / 2
    metrics: dict[str, float] = {
        "CI": _div(n_a - n_d, n_a + n_d),
        "DPL": _div(pos[a].sum(), n_a) - _div(pos[d].sum(), n_d),
        "KL": kl,
        "JS": 0.5 * (_kl(pa_, mix) + _kl(pd_, mix)),
        "LP": float(np.sqrt(np.sum(diff**2))),
        "TVD": float(0.5 * np.sum(diff)),
        "KS": float(np.max(diff)) if len(diff) else math.nan,
        "CDDL": _cdd(d, pos, df[group][keep].to_numpy() if group else None, notes, "CDDL"),
    }
    if group is None:
        notes.append("CDDL needs a group column (group=...); it is NaN")
    return {
        "facet": facet, "value_or_threshold": value,
        "facet_kind": "threshold" if facet_threshold is not None else "value",
        "label": label, "positive_label": [str(v) for v in _values(positive_label)],
        "counts": {"n_a": n_a, "n_d": n_d, "dropped": dropped},
        "metrics": metrics, "notes": notes,
    }


# -- post-training -------------------------------------------------------------------------------
def _confusion(y: np.ndarray, yh: np.ndarray, m: np.ndarray) -> tuple[int, int, int, int]:
    tp = int((y & yh & m).sum())
    fp = int((~y & yh & m).sum())
    tn = int((~y & ~yh & m).sum())
    fn = int((y & ~yh & m).sum())
    return tp, fp, tn, fn


def generalized_entropy(y: np.ndarray, yh: np.ndarray, alpha: float = 2.0) -> float:
    """Generalized entropy index of ``b = ŷ − y + 1`` (0/1 labels), α = 2 by default.

    Examples
    --------
    >>> import numpy as np
    >>> generalized_entropy(np.array([1, 0, 1, 0]), np.array([1, 0, 1, 0]))
    0.0
    """
    b = yh.astype(np.float64) - y.astype(np.float64) + 1.0
    n = len(b)
    mu = b.mean() if n else 0.0
    if n == 0 or mu == 0:
        return math.nan
    if alpha == 1:
        r = b / mu
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(r > 0, r * np.log(r), 0.0)
        return float(terms.mean())
    if alpha == 0:
        return float(-np.log(b / mu).mean())
    return float(np.sum((b / mu) ** alpha - 1.0) / (n * alpha * (alpha - 1.0)))


def _flip_test(X: np.ndarray, d: np.ndarray, yh: np.ndarray, k: int, notes: list[str]) -> tuple[float, int, int]:
    from sklearn.neighbors import NearestNeighbors

    a = ~d
    n_a, n_d = int(a.sum()), int(d.sum())
    if n_a == 0 or n_d == 0:
        return math.nan, 0, 0
    mu = np.nanmean(X, axis=0)
    sd = np.nanstd(X, axis=0)
    sd[~(sd > 0)] = 1.0
    Z = np.nan_to_num((X - mu) / sd)
    k = min(k, n_a)
    nn = NearestNeighbors(n_neighbors=k).fit(Z[a])
    idx = nn.kneighbors(Z[d], return_distance=False)
    neighbour_pos = yh[a][idx].mean(axis=1) > 0.5
    own = yh[d]
    f_plus = int((~own & neighbour_pos).sum())
    f_minus = int((own & ~neighbour_pos).sum())
    notes.append(f"FT: {f_plus} d row(s) refused where their {k} nearest a neighbours are mostly accepted, "
                 f"{f_minus} accepted where they are mostly refused")
    return (f_plus - f_minus) / n_d, f_plus, f_minus


def posttraining_bias(
    df: pd.DataFrame,
    label: str,
    positive_label: Any,
    facet: str,
    facet_value: Any = None,
    facet_threshold: float | None = None,
    group: str | None = None,
    *,
    predicted: str = "prediction",
    predicted_positive: Any = None,
    features: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Post-training bias metrics of predictions: DPPL, DI, DCAcc, DCR, RD, DAR, DRR, AD, TE, CDDPL, GE (and FT).

    Parameters
    ----------
    df
        The data with the observed label, the predicted label and the facet.
    label, positive_label, facet, facet_value, facet_threshold, group
        As for :func:`pretraining_bias` (``group`` for CDDPL).
    predicted
        The column of predicted labels.
    predicted_positive
        The favourable predicted value(s) (default: ``positive_label``).
    features
        Numeric columns for the flip test (FT): each *d* row is compared with
        its nearest *a* neighbours in these (standardised) features. FT is
        NaN without them.

    Returns
    -------
    dict
        As :func:`pretraining_bias`, with the post-training metrics.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"g": ["d", "d", "a", "a"], "y": [1, 0, 1, 0], "p": [0, 0, 1, 0]})
    >>> r = posttraining_bias(df, "y", 1, "g", facet_value="d", predicted="p")
    >>> r["metrics"]["DPPL"], r["metrics"]["RD"]
    (0.5, 1.0)
    """
    _check_columns(df, {"label": label, "facet": facet, "group": group, "prediction": predicted})
    for f in features or ():
        _check_columns(df, {"flip-test feature": f})
    notes: list[str] = []
    keep = _present(df[label]) & _present(df[facet]) & _present(df[predicted])
    d_all = _facet_mask(df, facet, facet_value, facet_threshold)
    dropped = int((~keep).sum())
    if dropped:
        notes.append(f"left out {dropped} row(s) with a missing {label!r}, {predicted!r} or {facet!r}")
    d = d_all[keep]
    a = ~d
    y = _isin(df[label][keep], _values(positive_label), "positive label")
    pp = positive_label if predicted_positive is None else predicted_positive
    yh = _isin(df[predicted][keep], _values(pp), "predicted positive label")
    n_a, n_d = int(a.sum()), int(d.sum())
    value = _value_text(facet_value, facet_threshold)
    _empty_notes(n_a, n_d, facet, value, notes)

    qa, qd = _div(yh[a].sum(), n_a), _div(yh[d].sum(), n_d)
    tp_a, fp_a, tn_a, fn_a = _confusion(y, yh, a)
    tp_d, fp_d, tn_d, fn_d = _confusion(y, yh, d)
    metrics: dict[str, float] = {
        "DPPL": qa - qd,
        "DI": _div(qd, qa) if not (math.isnan(qa) or math.isnan(qd)) else math.nan,
        "DCAcc": _div(y[a].sum(), yh[a].sum()) - _div(y[d].sum(), yh[d].sum()),
        "DCR": _div((~y[d]).sum(), (~yh[d]).sum()) - _div((~y[a]).sum(), (~yh[a]).sum()),
        "RD": _div(tp_a, tp_a + fn_a) - _div(tp_d, tp_d + fn_d),
        "DAR": _div(tp_a, tp_a + fp_a) - _div(tp_d, tp_d + fp_d),
        "DRR": _div(tn_d, tn_d + fn_d) - _div(tn_a, tn_a + fn_a),
        "AD": _div(tp_a + tn_a, n_a) - _div(tp_d + tn_d, n_d),
        "TE": _div(fn_d, fp_d) - _div(fn_a, fp_a),
        "CDDPL": _cdd(d, yh, df[group][keep].to_numpy() if group else None, notes, "CDDPL"),
        "FT": math.nan,
        "GE": generalized_entropy(y, yh),
    }
    if group is None:
        notes.append("CDDPL needs a group column (group=...); it is NaN")
    ft_counts: dict[str, int] = {}
    if features:
        X = df.loc[keep, list(features)]
        try:
            Xn = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise InvalidInput(f"the flip-test features {list(features)} must be numeric columns") from None
        metrics["FT"], f_plus, f_minus = _flip_test(Xn, d, yh, FT_NEIGHBORS, notes)
        ft_counts = {"ft_f_plus": f_plus, "ft_f_minus": f_minus}
    for name, value_ in metrics.items():
        if name not in ("FT", "CDDPL") and isinstance(value_, float) and math.isnan(value_) and n_a and n_d:
            notes.append(f"{name} is undefined here (a zero denominator, e.g. no predicted or observed "
                         "positives/negatives in a group)")
    return {
        "facet": facet, "value_or_threshold": value,
        "facet_kind": "threshold" if facet_threshold is not None else "value",
        "label": label, "positive_label": [str(v) for v in _values(positive_label)],
        "predicted": predicted,
        "counts": {"n_a": n_a, "n_d": n_d, "dropped": dropped,
                   "confusion_a": {"tp": tp_a, "fp": fp_a, "tn": tn_a, "fn": fn_a},
                   "confusion_d": {"tp": tp_d, "fp": fp_d, "tn": tn_d, "fn": fn_d}, **ft_counts},
        "metrics": metrics, "notes": notes,
    }


# -- the Clarify-like report ---------------------------------------------------------------------
def _num(v: float) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _section(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    facets: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        facets.setdefault(r["facet"], []).append({
            "value_or_threshold": r["value_or_threshold"],
            "metrics": [{"name": k, "description": DESCRIPTIONS[k], "value": _num(v)} for k, v in r["metrics"].items()],
            "counts": r["counts"], "notes": list(r["notes"]),
        })
    first = results[0]
    return {"label": first["label"], "label_value_or_threshold": ",".join(first["positive_label"]),
            "facets": facets}


def bias_report(
    pre: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    post: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Clarify-like ``analysis.json`` of pre- and post-training results.

    Returns
    -------
    dict
        ``{"version": "1.0", "pre_training_bias_metrics": {"label", "label_value_or_threshold",
        "facets": {column: [{"value_or_threshold", "metrics": [{"name", "description", "value"}]}]}},
        "post_training_bias_metrics": {...}}`` (a section only when given).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sex": ["f", "m", "m"], "y": [1, 0, 1]})
    >>> rep = bias_report(pretraining_bias(df, "y", 1, "sex", facet_value="f"))
    >>> rep["pre_training_bias_metrics"]["facets"]["sex"][0]["metrics"][0]
    {'name': 'CI', 'description': 'Class Imbalance (CI)', 'value': 0.3333333333333333}
    """
    out: dict[str, Any] = {"version": "1.0"}
    for key, part in (("pre_training_bias_metrics", pre), ("post_training_bias_metrics", post)):
        if part is None:
            continue
        items = [part] if isinstance(part, Mapping) else list(part)
        if items:
            out[key] = _section(items)
    return out


def bias_violations(results: Sequence[Mapping[str, Any]], thresholds: Mapping[str, float]) -> list[dict[str, Any]]:
    """Metrics further from their ideal (0, or 1 for DI) than ``thresholds[name]`` allows.

    Examples
    --------
    >>> bias_violations([{"facet": "sex", "value_or_threshold": "f", "metrics": {"DPL": 0.3}}], {"DPL": 0.1})
    [{'facet': 'sex', 'value_or_threshold': 'f', 'metric_name': 'DPL', 'constraint_check_type': 'bias_metric_check', 'value': 0.3, 'threshold': 0.1, 'description': 'DPL = 0.3 is 0.3 from its ideal 0 (allowed: 0.1)'}]
    """
    for name, limit in thresholds.items():
        if name not in DESCRIPTIONS:
            raise InvalidInput(f"bias threshold for unknown metric {name!r}; metrics: {', '.join(DESCRIPTIONS)}")
        if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not limit >= 0:
            raise InvalidInput(f"the bias threshold of {name} must be a number ≥ 0, got {limit!r}")
    out = []
    for r in results:
        for name, value in r["metrics"].items():
            t = thresholds.get(name)
            if t is None or not isinstance(value, (int, float)) or math.isnan(value):
                continue
            gap = abs(value - IDEAL[name])
            if gap > t:
                out.append({
                    "facet": r["facet"], "value_or_threshold": r["value_or_threshold"], "metric_name": name,
                    "constraint_check_type": "bias_metric_check", "value": _num(value), "threshold": float(t),
                    "description": f"{name} = {value:.4g} is {gap:.4g} from its ideal {IDEAL[name]:g} "
                                   f"(allowed: {t:g})",
                })
    return out


# -- recorded runs ---------------------------------------------------------------------------------
def _predict_labels(model: Any, df: pd.DataFrame) -> np.ndarray:
    inputs = list(model.signature.input_names)
    missing = [c for c in inputs if c not in df.columns]
    if missing:
        raise InvalidInput(f"the model reads column(s) {missing} that the data lack")
    return np.asarray(model.predict(df[inputs]), dtype=object)


def run_bias(
    ws: Workspace,
    *,
    label: str | None = None,
    positive_label: Any,
    facet: str,
    facet_value: Any = None,
    facet_threshold: float | None = None,
    group: str | None = None,
    data: str | None = None,
    endpoint: str | None = None,
    model: str | None = None,
    predicted: str | None = None,
    features: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> MonitoringResult:
    """Compute bias metrics on a dataset version or an endpoint's labelled predictions and record them.

    With ``data``: pre-training metrics of the version's ``label``; with
    ``model`` (a registry ref) the model predicts the rows and the
    post-training metrics follow; with ``predicted`` an existing column of
    predictions serves instead. With ``endpoint``: the captured predictions
    in ``[since, until]`` joined with their ground truth
    (:func:`loopml.monitor.ground_truth.ingest_ground_truth`) give both; the
    facet must be an input column of the requests.

    Metrics go to ``ws.metrics`` (name = the metric, dimensions ``endpoint``
    or ``dataset``, ``monitor: bias``, ``feature: <facet>``, ``stage``); the
    result stores ``analysis.json`` (Clarify-like) and
    ``constraint_violations.json``; ``thresholds`` (metric -> largest allowed
    distance from its ideal) turn metrics into violations.

    Returns
    -------
    MonitoringResult
        ``NoData`` when an endpoint window has no labelled predictions.

    Raises
    ------
    InvalidInput
        Neither or both of ``data``/``endpoint``; a missing column; bad values.
    """
    from loopml.monitor.results import COMPLETED, COMPLETED_WITH_VIOLATIONS, NO_DATA, save_result

    if (data is None) == (endpoint is None):
        raise InvalidInput("give exactly one of data (a dataset NAME[:VERSION]) or endpoint")
    thresholds = dict(thresholds or {})
    bias_violations([], thresholds)  # validate early
    if data is not None:
        from loopml.data.catalog import Catalog

        if label is None:
            raise InvalidInput("give the label column (--label) of the data")
        info = Catalog(ws).get(data)
        df = Catalog(ws).read_pandas(info)
        target = info.ref
        dims_key = "dataset"
        pred_col = predicted
        if model is not None:
            if predicted is not None:
                raise InvalidInput("give either model (to predict) or predicted (a column of predictions), not both")
            from loopml.registry import load_model

            m = load_model(ws, model)
            pred_col = "__prediction__"
            df = df.assign(**{pred_col: _predict_labels(m, df)})
        window: tuple[datetime | None, datetime | None] = (None, None)
    else:
        from loopml.monitor.ground_truth import GROUND_TRUTH, labelled_predictions

        assert endpoint is not None
        merged, facts = labelled_predictions(ws, endpoint, since=since, until=until)
        target = endpoint
        dims_key = "endpoint"
        window = (since, until)
        if merged.empty:
            return save_result(ws, "bias", endpoint, status=NO_DATA, since=since, until=until,
                               summary={"message": facts["message"], "rows": facts})
        df = merged
        label = GROUND_TRUTH
        pred_col = "prediction"
        _check_columns(df.drop(columns=[GROUND_TRUTH, "prediction"]), {"facet": facet, "group": group})

    assert label is not None
    pre = pretraining_bias(df, label, positive_label, facet, facet_value, facet_threshold, group)
    post = None
    if pred_col is not None:
        post = posttraining_bias(df, label, positive_label, facet, facet_value, facet_threshold, group,
                                 predicted=pred_col, features=features)
        post["predicted"] = model or pred_col
    report = bias_report(pre, post)
    results = [pre] + ([post] if post is not None else [])
    violations = bias_violations(results, thresholds)
    ts = until or utcnow()
    from loopml.metrics import MetricPoint

    points = []
    for stage, r in (("pre_training", pre), ("post_training", post)):
        if r is None:
            continue
        for name, v in r["metrics"].items():
            if isinstance(v, float) and math.isfinite(v):
                points.append(MetricPoint(name, v, {dims_key: target, "monitor": "bias", "feature": facet,
                                                    "facet_value": r["value_or_threshold"], "stage": stage}, ts))
    if points:
        ws.metrics.put_many(points)
    summary = {
        "facet": facet, "value_or_threshold": pre["value_or_threshold"], "label": label,
        "positive_label": pre["positive_label"], "model": model,
        "counts": pre["counts"],
        "pre_training": pre["metrics"], "post_training": post["metrics"] if post else None,
        "notes": list(dict.fromkeys([*pre["notes"], *(post["notes"] if post else [])])),
        "violations": violations, "violation_count": len(violations),
    }
    outputs = {
        "analysis.json": json.dumps(_json(report), indent=2).encode(),
        "constraint_violations.json": json.dumps({"violations": violations}, indent=2).encode(),
    }
    log.info("bias of %s on %s: %d violation(s)", facet, target, len(violations))
    return save_result(ws, "bias", target, status=COMPLETED_WITH_VIOLATIONS if violations else COMPLETED,
                       summary=summary, outputs=outputs, since=window[0], until=window[1])


def _json(v: Any) -> Any:
    from loopml.monitor.results import jsonable

    return jsonable(v)


__all__ = [
    "DESCRIPTIONS",
    "IDEAL",
    "POST_TRAINING_METRICS",
    "PRE_TRAINING_METRICS",
    "bias_report",
    "bias_violations",
    "generalized_entropy",
    "posttraining_bias",
    "pretraining_bias",
    "run_bias",
]
