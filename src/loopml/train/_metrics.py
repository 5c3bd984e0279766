"""Final metrics of a training job, by problem type (scikit-learn underneath).

The names match the per-iteration metrics the boosting algorithms report
(``auc``, ``logloss``, ``rmse``, ``ndcg@10``, ...), so ``validation:auc`` is one
series in tracking: its steps during training and its final value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "logloss", "accuracy", "f1", "precision", "recall"),
    "multiclass": ("accuracy", "logloss", "f1_macro"),
    "regression": ("rmse", "mae", "r2"),
    "ranking": ("ndcg@10",),
    "clustering": ("silhouette", "davies_bouldin"),
    "dimensionality_reduction": ("explained_variance",),
    "anomaly_detection": ("auc", "anomaly_rate"),
    "forecasting": ("rmse", "mae", "mape", "smape", "mase"),
    "recommendation": (),
}

#: metrics where lower is better (the tuner's default direction)
LOWER_IS_BETTER = frozenset({"logloss", "rmse", "mae", "mape", "smape", "mase", "davies_bouldin",
                             "one_step_rmse"})


def metric_direction(metric: str) -> str:
    """``minimize`` for losses and errors (``logloss``, ``rmse``, ...), else ``maximize``.

    ``metric`` may carry its split: ``validation:rmse``.

    Examples
    --------
    >>> metric_direction("validation:logloss"), metric_direction("auc")
    ('minimize', 'maximize')
    """
    return "minimize" if metric.rpartition(":")[2] in LOWER_IS_BETTER else "maximize"


def metric_names(problem_type: str) -> tuple[str, ...]:
    """The metrics :func:`evaluate` computes for ``problem_type``."""
    return _METRICS.get(problem_type, ())


def evaluate(
    problem_type: str,
    y: np.ndarray | None,
    pred: np.ndarray,
    *,
    proba: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    n_classes: int | None = None,
    features: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of predictions against the truth.

    Parameters
    ----------
    problem_type
        ``binary``, ``multiclass``, ``regression``, ``ranking``, ``clustering``, ...
    y
        True values (class codes for classification); None for unsupervised.
    pred
        Predictions (class codes, values, scores, cluster ids).
    proba
        Class probabilities ``(rows, n_classes)``.
    groups
        Group ids per row (ranking).
    n_classes
        Number of classes (multiclass log loss over every class).
    features
        The feature matrix (clustering scores).

    Returns
    -------
    dict
        Metric name -> value; metrics undefined on this data (AUC with one
        class present) are left out.
    """
    out: dict[str, float] = {}
    if problem_type == "binary" and y is not None:
        out = binary_metrics(np.asarray(y), np.asarray(pred), proba[:, 1] if proba is not None else None)
    elif problem_type == "multiclass" and y is not None:
        out = multiclass_metrics(np.asarray(y), np.asarray(pred), proba, n_classes)
    elif problem_type in ("regression", "forecasting") and y is not None:
        yt = np.asarray(y, dtype=np.float64)
        yp = np.asarray(pred, dtype=np.float64)
        err = yt - yp
        out["rmse"] = math.sqrt(float(np.mean(err * err)))
        out["mae"] = float(np.mean(np.abs(err)))
        if problem_type == "regression" and len(yt) > 1:
            # scikit-learn's r2_score (force_finite): 1 for a perfect fit of a constant target, else 0
            ss_res, ss_tot = float(np.sum(err * err)), float(np.sum((yt - np.mean(yt)) ** 2))
            out["r2"] = (1.0 - ss_res / ss_tot) if ss_tot != 0 else (1.0 if ss_res == 0 else 0.0)
        if problem_type == "forecasting":
            nz = yt != 0
            if nz.any():
                out["mape"] = float(np.mean(np.abs((yt[nz] - yp[nz]) / yt[nz])))
            denom = np.abs(yt) + np.abs(yp)
            ok = denom > 0
            if ok.any():
                out["smape"] = float(np.mean(2 * np.abs(yt[ok] - yp[ok]) / denom[ok]))
    elif problem_type == "ranking" and y is not None and groups is not None:
        out["ndcg@10"] = ndcg_at_k(np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64), groups, 10)
    elif problem_type == "clustering" and features is not None:
        labels = np.asarray(pred)
        if 1 < len(np.unique(labels)) < len(labels):
            X, lab = _sample(features, labels, 5_000)
            from sklearn import metrics as M

            if len(np.unique(lab)) > 1:
                out["silhouette"] = M.silhouette_score(X, lab)
            out["davies_bouldin"] = M.davies_bouldin_score(features, labels)
    elif problem_type == "anomaly_detection" and y is not None:
        yt = np.asarray(y)
        if len(np.unique(yt)) == 2:
            out["auc"] = _auc(yt == yt.max(), np.asarray(pred, dtype=np.float64))
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def binary_metrics(y: np.ndarray, pred: np.ndarray, p: np.ndarray | None) -> dict[str, float]:
    """AUC, log loss, accuracy, F1, precision and recall of a binary classifier.

    The same numbers as scikit-learn's ``roc_auc_score``, ``log_loss`` (with
    ``labels=[0, 1]``) and ``precision_recall_fscore_support`` (binary,
    ``zero_division=0``), computed directly: a training job scores every fold
    and every trial, and those functions' input checks cost milliseconds each.

    Parameters
    ----------
    y
        True class codes (0 or 1).
    pred
        Predicted class codes.
    p
        Predicted probability of class 1 (None: the predicted codes stand in).

    Examples
    --------
    >>> import numpy as np
    >>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), np.array([0.1, 0.6, 0.8, 0.6]))
    >>> round(m["auc"], 4), round(m["logloss"], 4), m["accuracy"], round(m["f1"], 4)
    (0.875, 0.4389, 0.75, 0.8)
    """
    y = np.asarray(y)
    pred = np.asarray(pred)
    score = np.asarray(p if p is not None else pred)
    if score.dtype not in (np.float32, np.float64):
        score = score.astype(np.float64)
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    out: dict[str, float] = {}
    if n_pos and n_neg:
        out["auc"] = _auc(pos, score)
    eps = np.finfo(score.dtype).eps
    truth = np.where(pos, score, 1 - score)
    out["logloss"] = float(-np.mean(np.log(np.clip(truth, eps, 1 - eps))))
    out["accuracy"] = float(np.mean(y == pred))
    hit = pred == 1
    tp = int(np.sum(hit & pos))
    fp = int(np.sum(hit & ~pos))
    fn = n_pos - tp
    out["f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    out["precision"] = tp / (tp + fp) if tp + fp else 0.0
    out["recall"] = tp / n_pos if n_pos else 0.0
    return out


def multiclass_metrics(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                       n_classes: int | None = None) -> dict[str, float]:
    """Accuracy, log loss over every class and macro F1 of a multiclass classifier.

    The same numbers as scikit-learn's ``accuracy_score``, ``log_loss`` (with
    ``labels=range(n_classes)``, probabilities renormalised per row) and
    ``f1_score(average="macro", zero_division=0)`` (over the classes present
    in ``y`` or ``pred``), without importing scikit-learn into the job.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    >>> m = multiclass_metrics(np.array([0, 1, 2, 1]), np.array([0, 1, 2, 0]), p)
    >>> m["accuracy"], round(m["logloss"], 4), round(m["f1_macro"], 4)
    (0.75, 0.6031, 0.7778)
    """
    y = np.asarray(y)
    pred = np.asarray(pred)
    out: dict[str, float] = {"accuracy": float(np.mean(y == pred))}
    if proba is not None:
        p = np.asarray(proba, dtype=np.float64)
        p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-300, None)  # float32 rows sum to 1 +- 1e-7
        eps = np.finfo(p.dtype).eps
        truth = p[np.arange(len(y)), y.astype(np.int64)]
        out["logloss"] = float(-np.mean(np.log(np.clip(truth, eps, 1 - eps))))
    labels = np.union1d(y, pred)
    f1 = []
    for c in labels:
        tp = int(np.sum((pred == c) & (y == c)))
        fp = int(np.sum((pred == c) & (y != c)))
        fn = int(np.sum((pred != c) & (y == c)))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    out["f1_macro"] = float(np.mean(f1)) if f1 else 0.0
    return out


def _auc(pos: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve: Mann-Whitney U with average ranks for ties (``roc_auc_score``)."""
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    order = np.argsort(score, kind="mergesort")
    sorted_score = score[order]
    new = np.r_[True, sorted_score[1:] != sorted_score[:-1]]
    bounds = np.flatnonzero(np.r_[new, True])  # where each run of equal scores starts; then n
    mean_rank = (bounds[:-1] + bounds[1:] + 1) / 2.0  # 1-based ranks start+1 .. end, averaged
    ranks = np.empty(len(score), dtype=np.float64)
    ranks[order] = mean_rank[np.cumsum(new) - 1]
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ndcg_at_k(y: np.ndarray, score: np.ndarray, groups: np.ndarray, k: int) -> float:
    """Mean NDCG@k over groups with exponential gain ``2**rel - 1`` (as XGBoost and LightGBM).

    Groups whose relevance is all zero count as 1 (nothing to rank).
    """
    order = np.lexsort((-score, groups))
    g, y_s = groups[order], y[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for s, e in zip(starts, ends, strict=True):
        rel = y_s[s:e]
        gains = (2.0 ** rel[:k] - 1) @ disc[: min(k, e - s)]
        ideal_rel = np.sort(rel)[::-1][:k]
        ideal = (2.0 ** ideal_rel - 1) @ disc[: len(ideal_rel)]
        total += float(gains / ideal) if ideal > 0 else 1.0
    return total / max(len(starts), 1)


def _sample(X: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(X) <= n:
        return X, labels
    idx = np.random.default_rng(0).choice(len(X), n, replace=False)
    return X[idx], labels[idx]


def prefixed(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """``{"auc": 0.9}`` -> ``{"validation:auc": 0.9}``."""
    return {f"{prefix}:{k}": float(v) for k, v in metrics.items()}
