"""``evaluate_predictions()``: every metric of a task, curves, threshold and business table in one result."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from loopml.errors import InvalidInput
from loopml.evaluate import classification as cls_
from loopml.evaluate._arrays import as_1d, as_numeric, check_k
from loopml.evaluate.business import (
    BusinessCosts,
    Scenario,
    baseline_scenario,
    business_table,
    check_latency,
    confusion_counts,
    measure_latency,
)
from loopml.evaluate.classification import ThresholdChoice
from loopml.evaluate.clustering import cluster_sizes, clustering_metrics
from loopml.evaluate.custom import MetricRegistry, default_registry
from loopml.evaluate.ranking import ranking_metrics
from loopml.evaluate.regression import forecasting_metrics, regression_metrics, residuals

TASKS = ("binary", "multiclass", "regression", "forecasting", "clustering", "ranking")
Task = Literal["auto", "classification", "binary", "multiclass", "regression", "forecasting", "clustering", "ranking"]

#: names custom metrics may not take
BUILTIN_METRICS = frozenset({
    "accuracy", "balanced_accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro",
    "f1_macro", "precision_weighted", "recall_weighted", "f1_weighted", "mcc", "roc_auc",
    "roc_auc_weighted", "pr_auc", "log_loss", "brier", "calibration_error", "mse", "rmse", "mae",
    "median_ae", "r2", "mape", "smape", "mase", "silhouette", "davies_bouldin", "calinski_harabasz",
    "n_clusters", "adjusted_rand", "nmi",
})
#: metrics where lower is better (the rest: higher is better)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "calibration_error", "mse", "rmse", "mae", "median_ae",
                             "mape", "smape", "mase", "davies_bouldin"})
#: the metrics shown first, per task
HEADLINE: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy"),
    "multiclass": ("accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
    "forecasting": ("mape", "smape", "mase", "mae"),
    "clustering": ("silhouette", "davies_bouldin", "calinski_harabasz", "n_clusters"),
    "ranking": ("ndcg", "map", "precision", "recall"),
}
#: integer labels with at most this many distinct values are classes (as in EDA)
MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True)
class StoredEvaluation:
    """Where :func:`loopml.evaluate.evaluate_dataset` stored a result."""

    result_sha256: str
    report_sha256: str
    #: local path of the stored HTML report, or None for a remote artifact store
    report_path: str | None
    #: the ``out`` file written, if any
    out: str | None
    #: the tracking run the metrics were logged to, if any
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class EvaluationResult:
    """Everything one evaluation found.

    Attributes
    ----------
    task
        ``binary``, ``multiclass``, ``regression``, ``forecasting``, ``clustering`` or ``ranking``.
    metrics
        Metric name → value (None where undefined), custom metrics included.
    n_rows
        Rows evaluated.
    curves
        Plot data: ``roc``, ``pr``, ``calibration``, ``score_histogram``
        (classification with scores), ``residuals`` (regression, forecasting),
        ``at_k`` (ranking), ``cluster_sizes`` (clustering).
    confusion_matrix
        Rows = true class, columns = predicted class, in ``labels`` order.
    labels
        The classes, sorted.
    pos_label
        The positive class (binary).
    per_class
        Precision, recall, F1, support (and one-vs-rest AUC) per class.
    threshold
        The selected decision threshold and the metrics at it (binary with scores).
    business
        The business table (see :func:`loopml.evaluate.business_table`), with costs or latency.
    custom
        Custom metric name → ``{"greater_is_better": bool}``.
    info
        Counts and settings: ``task_inferred``, ``decision_threshold``, ``queries``, ...
    warnings
        Notes about left-out rows, metrics or inputs.
    source
        Where the predictions came from (dataset, columns), when known.
    stored
        Where the result was stored (set by ``evaluate_dataset``).
    """

    task: str
    metrics: dict[str, float | None]
    n_rows: int
    curves: dict[str, Any] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    labels: list[Any] | None = None
    pos_label: Any = None
    per_class: list[dict[str, Any]] | None = None
    threshold: ThresholdChoice | None = None
    business: dict[str, Any] | None = None
    custom: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    stored: StoredEvaluation | None = None

    @property
    def headline(self) -> dict[str, float | None]:
        """The task's main metrics, in display order."""
        out: dict[str, float | None] = {}
        for name in HEADLINE.get(self.task, ()):
            if self.task == "ranking":
                out.update({k: v for k, v in self.metrics.items() if k.startswith(name + "@")})
            elif name in self.metrics:
                out[name] = self.metrics[name]
        return out

    def greater_is_better(self, name: str) -> bool:
        """Direction of a metric (custom metrics as registered)."""
        if name in self.custom:
            return bool(self.custom[name].get("greater_is_better", True))
        return name not in LOWER_IS_BETTER

    def with_source(self, **source: Any) -> EvaluationResult:
        """A copy with more ``source`` entries."""
        return replace(self, source={**self.source, **source})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and infinities become None)."""
        d = {
            "task": self.task,
            "n_rows": self.n_rows,
            "metrics": self.metrics,
            "custom": self.custom,
            "labels": self.labels,
            "pos_label": self.pos_label,
            "confusion_matrix": self.confusion_matrix,
            "per_class": self.per_class,
            "threshold": self.threshold.to_dict() if self.threshold else None,
            "business": self.business,
            "curves": self.curves,
            "info": self.info,
            "warnings": self.warnings,
            "source": self.source,
        }
        if self.stored is not None:
            d["stored"] = self.stored.to_dict()
        result: dict[str, Any] = _clean(d)
        return result

    def to_json(self) -> str:
        """Compact, deterministic JSON (without ``stored``)."""
        d = self.to_dict()
        d.pop("stored", None)
        return json.dumps(d, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict`."""
        stored = d.get("stored")
        return cls(
            task=d["task"], metrics=dict(d["metrics"]), n_rows=int(d["n_rows"]),
            curves=dict(d.get("curves") or {}), confusion_matrix=d.get("confusion_matrix"),
            labels=d.get("labels"), pos_label=d.get("pos_label"), per_class=d.get("per_class"),
            threshold=ThresholdChoice.from_dict(d["threshold"]) if d.get("threshold") else None,
            business=d.get("business"), custom=dict(d.get("custom") or {}), info=dict(d.get("info") or {}),
            warnings=list(d.get("warnings") or []), source=dict(d.get("source") or {}),
            stored=StoredEvaluation(**stored) if stored else None,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> EvaluationResult:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# -- task inference --------------------------------------------------------------------------
def _is_collection(v: Any) -> bool:
    return isinstance(v, (list, tuple, set, frozenset, np.ndarray))


def infer_task(y_true: Any, y_pred: Any = None, y_score: Any = None, *, group: Any = None) -> str:
    """Guess the task from the inputs.

    Clustering without ``y_true``; ranking with ``group`` or lists of items;
    classification for text/boolean labels, 2-D scores or whole numbers with
    at most 20 distinct values (``binary`` with two); regression otherwise.
    Forecasting is never guessed: pass ``task="forecasting"``.
    """
    if y_true is None:
        if y_pred is None:
            raise InvalidInput("nothing to evaluate: give y_true (and y_pred or y_score)")
        return "clustering"
    if group is not None:
        return "ranking"
    plain_array = isinstance(y_true, np.ndarray) and y_true.dtype != object
    if not plain_array and not isinstance(y_true, (str, bytes)) and hasattr(y_true, "__iter__"):
        first = next(iter(y_true), None)
        if _is_collection(first):
            return "ranking"
    return _classify_or_regress(y_true, y_pred, y_score)


def _classify_or_regress(y_true: Any, y_pred: Any, y_score: Any) -> str:
    yt = as_1d("y_true", y_true)
    arrays = [yt] + ([as_1d("y_pred", y_pred)] if y_pred is not None else [])
    score_ndim = np.ndim(y_score) if y_score is not None else 0
    if score_ndim == 2 and np.shape(y_score)[1] > 2:
        return "multiclass"
    if any(a.dtype.kind not in "iuf" for a in arrays):
        return "classification"
    if any(a.dtype.kind == "f" for a in arrays):  # as_1d turned whole floats into integers
        return "regression"
    distinct = len(np.unique(np.concatenate(arrays)))
    return "classification" if distinct <= MAX_INFERRED_CLASSES else "regression"


# -- the evaluation --------------------------------------------------------------------------
def evaluate_predictions(
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    task: Task = "auto",
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
    threshold: float | None = None,
    threshold_by: Literal["auto", "f1", "cost"] | None = "auto",
    costs: BusinessCosts | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    baseline_pred: Any = None,
    latency: Mapping[str, Any] | None = None,
    predict: Callable[[Any], Any] | None = None,
    X: Any = None,
    k: int | Sequence[int] = 10,
    group: Any = None,
    y_train: Any = None,
    seasonality: int = 1,
    registry: MetricRegistry | None = None,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate predictions: the task's metrics, curves, threshold, business table and custom metrics.

    Parameters
    ----------
    y_true
        True labels, values or relevances (None for clustering without known classes).
    y_pred
        Predicted labels or values; ranked item lists per user for recommendation;
        cluster labels for clustering.
    y_score
        Classification: positive-class scores (binary) or one column per class.
        Ranking: a score per row.
    task
        ``auto`` (see :func:`infer_task`), ``classification`` (binary or
        multiclass by the number of classes), ``binary``, ``multiclass``,
        ``regression``, ``forecasting``, ``clustering`` or ``ranking``.
    labels, pos_label
        Classes in score-column order, and the positive class (see
        :func:`loopml.evaluate.classification_metrics`).
    threshold
        Binary: cut-off that turns scores into labels when ``y_pred`` is not given (0.5).
    threshold_by
        Binary with scores: select a threshold by ``"f1"`` or ``"cost"``
        (``"auto"``: cost when the costs price errors, else F1); None to skip.
    costs
        A costs YAML path, mapping or :class:`BusinessCosts`: adds the business table.
    baseline_pred
        A second set of predictions as the baseline (e.g. the production model's).
    latency
        Inference latency given by the caller: ``{"p50_ms": ..., "p99_ms": ...}``.
    predict
        A predict function to time on rows of ``X`` (instead of ``latency``).
    X
        Features: sample rows for ``predict``; the feature matrix for clustering.
    k
        Ranking cut-off(s).
    group
        Ranking: the query or user of each row.
    y_train, seasonality
        Forecasting: the training series and season length for the MASE scale.
    registry
        Custom metrics to compute (default: those added with :func:`register_metric`).
    seed
        Seed of every sample taken (silhouette, scatter plots, latency rows).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    InvalidInput
        Unknown task, mismatched lengths, inputs the task cannot use, a bad costs file.

    Examples
    --------
    >>> r = evaluate_predictions([0, 1, 1, 0, 1], y_score=[0.2, 0.9, 0.6, 0.4, 0.3])
    >>> r.task, r.metrics["accuracy"], round(r.metrics["roc_auc"], 3)
    ('binary', 0.8, 0.833)
    >>> r.threshold.by, r.threshold.threshold
    ('f1', 0.3)
    """
    allowed = ("auto", "classification", *TASKS)
    if task not in allowed:
        raise InvalidInput(f"task must be one of {', '.join(allowed)}; got {task!r}")
    c = BusinessCosts.coerce(costs)
    registry = default_registry if registry is None else registry
    inferred = task == "auto"
    if task == "auto":
        task = infer_task(y_true, y_pred, y_score, group=group)  # type: ignore[assignment]
    notes: list[str] = []
    info: dict[str, Any] = {"task_inferred": inferred}
    lat: dict[str, Any] | None = None
    if predict is not None:
        if X is None:
            raise InvalidInput("predict needs sample rows X to time it on")
        lat = measure_latency(predict, X, seed=seed)
    elif latency is not None:
        lat = check_latency(latency)

    if task in ("classification", "binary", "multiclass"):
        return _classification(
            y_true, y_pred, y_score, task=task, labels=labels, pos_label=pos_label, threshold=threshold,
            threshold_by=threshold_by, costs=c, baseline_pred=baseline_pred, latency=lat,
            registry=registry, info=info, notes=notes,
        )
    if task in ("regression", "forecasting"):
        yt = as_numeric("y_true", y_true)
        yp = as_numeric("y_pred", y_pred) if y_pred is not None else None
        if yp is None:
            raise InvalidInput(f"{task} needs y_pred (the predicted values)")
        if task == "regression":
            metrics = regression_metrics(yt, yp, notes=notes)
        else:
            metrics = forecasting_metrics(yt, yp, y_train=y_train, seasonality=seasonality, notes=notes)
            info["seasonality"] = seasonality
            info["mase_scale_from"] = "y_train" if y_train is not None else "y_true"
        curves: dict[str, Any] = {"residuals": residuals(yt, yp, seed=seed)}
        n = len(yt)
        custom_args: tuple[Any, Any, Any, Any] = (yt, yp, None, X)
    elif task == "clustering":
        if X is None:
            raise InvalidInput("clustering needs the features X that the clusters were made from")
        if y_pred is None:
            raise InvalidInput("clustering needs the cluster of each row as y_pred")
        metrics = clustering_metrics(X, y_pred, y_true=y_true, seed=seed)
        curves = {"cluster_sizes": cluster_sizes(y_pred)}
        n = len(y_pred)
        custom_args = (y_true, y_pred, None, np.asarray(X))
    else:  # ranking
        ks = check_k(k)
        metrics = ranking_metrics(y_true, y_score, group=group, k=ks, y_pred=y_pred, notes=notes, info=info)
        info["k"] = ks
        curves = {"at_k": {"k": ks, **{m: [metrics[f"{m}@{kk}"] for kk in ks]
                                       for m in ("precision", "recall", "ndcg", "map")}}}
        n = len(y_true)
        custom_args = (y_true, y_pred, y_score, X)
    custom = _custom(registry, task, metrics, custom_args, notes)
    result = EvaluationResult(task=task, metrics=metrics, n_rows=n, curves=curves, custom=custom,
                              info=info, warnings=notes)
    if c is not None or lat is not None:
        result = replace(result, business=_business(c, None, result, lat, notes))
    return result


def _custom(registry: MetricRegistry, task: str, metrics: dict[str, float | None],
            args: tuple[Any, Any, Any, Any], notes: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    y_true, y_pred, y_score, X = (None if a is None else np.asarray(a) if not isinstance(a, list) else a
                                  for a in args)
    for m in registry.for_task(task):
        value = m.compute(y_true, y_pred, y_score, X)
        if value is None and {"pred": y_pred, "score": y_score, "features": X}[m.needs] is None:
            notes.append(f"custom metric {m.name!r} needs {'y_score' if m.needs == 'score' else m.needs}; left out")
            continue
        metrics[m.name] = value
        out[m.name] = {"greater_is_better": m.greater_is_better, "needs": m.needs}
    return out


def _classification(
    y_true: Any, y_pred: Any, y_score: Any, *, task: str, labels: Sequence[Any] | None, pos_label: Any,
    threshold: float | None, threshold_by: str | None, costs: BusinessCosts | None, baseline_pred: Any,
    latency: dict[str, Any] | None, registry: MetricRegistry, info: dict[str, Any], notes: list[str],
) -> EvaluationResult:
    p = cls_.prepare(y_true, y_pred, y_score, labels=labels, pos_label=pos_label, threshold=threshold,
                     task="auto" if task == "classification" else task)  # type: ignore[arg-type]
    notes.extend(p.warnings)
    metrics = cls_.label_metrics(p)
    score_m, score_notes = cls_.score_metrics(p)
    metrics.update(score_m)
    notes.extend(score_notes)
    curves = cls_.curves(p)
    if curves.get("calibration"):
        cal = curves["calibration"]
        metrics["calibration_error"] = float(np.mean([s["ece"] for s in cal]))
    if p.threshold is not None:
        info["decision_threshold"] = p.threshold
    choice: ThresholdChoice | None = None
    if p.binary and p.score is not None and threshold_by is not None:
        if threshold_by not in ("auto", "f1", "cost"):
            raise InvalidInput(f"threshold_by must be 'auto', 'f1', 'cost' or None; got {threshold_by!r}")
        by = threshold_by if threshold_by != "auto" else (
            "cost" if costs is not None and costs.has_error_costs else "f1")
        choice = cls_.choose_threshold(p, by=by, costs=costs)
    custom = _custom(registry, p.task, metrics, (p.y_true, p.y_pred, p.score, None), notes)
    result = EvaluationResult(
        task=p.task, metrics=metrics, n_rows=len(p.y_true), curves=curves,
        confusion_matrix=cls_.confusion(p), labels=p.classes.tolist(),
        pos_label=p.pos_label if p.binary else None, per_class=cls_.per_class_report(p),
        threshold=choice, custom=custom, info=info, warnings=notes,
    )
    if costs is not None or latency is not None:
        result = replace(result, business=_business(costs, p, result, latency, notes, baseline_pred))
    return result


def _rates(counts: tuple[float, float, float, float]) -> dict[str, float | None]:
    tp, fp, _tn, fn = counts
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0}


def _business(
    costs: BusinessCosts | None, p: cls_.Prepared | None, result: EvaluationResult,
    latency: dict[str, Any] | None, notes: list[str], baseline_pred: Any = None,
) -> dict[str, Any]:
    headline = result.headline
    if costs is None:
        return {
            "currency": "", "costs": None, "baseline": None, "predictions_per_day": None, "latency": latency,
            "scenarios": [], "summary": {},
            "alignment": [{"name": "model", "role": "model", "metrics": headline,
                           "latency_p50_ms": latency.get("p50_ms") if latency else None,
                           "latency_p99_ms": latency.get("p99_ms") if latency else None,
                           "cost_per_prediction": None, "value_per_day": None}],
            "notes": ["give a costs file for expected cost and value, savings, ROI and payback"],
        }
    scenarios: list[Scenario] = []
    if p is not None and p.binary:
        base = baseline_scenario(costs, p.y_true, p.classes, p.pos_label, baseline_pred)
        scenarios.append(replace(base, metrics=_rates(base.counts) if base.counts else None))
        counts = confusion_counts(p.y_true, p.y_pred, p.pos_label)
        auc = {"roc_auc": result.metrics["roc_auc"]} if result.metrics.get("roc_auc") is not None else {}
        # accuracy is left out: with imbalanced classes it flatters the always-negative baseline
        scenarios.append(Scenario("model", "model", counts, metrics={**_rates(counts), **auc}))
        t = result.threshold
        if t is not None:
            tc = (t.metrics["tp"], t.metrics["fp"], t.metrics["tn"], t.metrics["fn"])
            if tc != counts:
                scenarios.append(Scenario(f"model @ {t.threshold:.4g}", "model", tc,
                                          metrics={**_rates(tc), **auc}))
    else:
        if baseline_pred is not None or not costs.baseline_is_rule or costs.baseline != "always-negative":
            notes.append("a baseline applies to binary classification only; the business table shows the model")
        scenarios.append(Scenario("model", "model", None, metrics=headline))
    table = business_table(costs, scenarios, latency=latency)
    return table
