"""Model quality monitoring: captured predictions joined with ground truth, scored, compared with a baseline.

:func:`run_model_quality` reads an endpoint's captured predictions in a time
window, joins them with the uploaded ground truth
(:mod:`loopml.monitor.ground_truth`), and computes the metrics of the
deployed model's problem type, as SageMaker's model quality monitor does:

- binary (``BinaryClassification``): accuracy, precision, recall, f0_5, f1,
  f2, auc and au_prc (from the captured probabilities), the four rates, and
  each again for the *best constant classifier* (always the majority class
  of the true labels) as a reference;
- multiclass (``MulticlassClassification``): accuracy, weighted
  precision/recall/f0_5/f1/f2 (and their best-constant references) and the
  confusion matrix;
- regression (``Regression``): mae, mse, rmse, r2.

The positive class of a binary model is the last of its classes (as in
:mod:`loopml.evaluate`). The statistics are compared with *constraints*:
SageMaker's ``{metric: {"threshold", "comparison_operator"}}``, where a
comparison that holds is a violation (``LessThanThreshold`` fires when the
metric is below the threshold). By default the constraints come from the
model version's baseline metrics — its latest stored evaluation
(``loopml evaluate``), else its training metrics — minus a tolerance: an
absolute 0.05 for scores (accuracy, precision, recall, f1, auc, r2, ...) and
10% of the baseline for errors (mae, mse, rmse). Every figure also goes to
the metrics table (dimensions ``endpoint``, ``monitor: model_quality``), so
alarms can watch quality over time.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml._util import as_utc, utcnow
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from loopml.monitor.results import MonitoringResult
    from loopml.registry import ModelVersionInfo
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: loopml problem type -> SageMaker's name
PROBLEM_TYPES = {"binary": "BinaryClassification", "multiclass": "MulticlassClassification",
                 "regression": "Regression"}
_SECTION = {"binary": "binary_classification", "multiclass": "multiclass_classification",
            "regression": "regression"}
#: metrics where a lower value is better
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "false_positive_rate", "false_negative_rate"})
#: metrics checked against the baseline by default, per problem type
CHECKED = {
    "binary": ("accuracy", "precision", "recall", "f1", "auc"),
    "multiclass": ("accuracy", "weighted_precision", "weighted_recall", "weighted_f1"),
    "regression": ("mae", "mse", "rmse", "r2"),
}
#: allowed degradation: absolute for scores, a fraction of the baseline for errors
DEFAULT_SCORE_TOLERANCE = 0.05
DEFAULT_ERROR_TOLERANCE = 0.10

COMPARISONS: dict[str, str] = {
    "GreaterThanThreshold": "GreaterThanThreshold", ">": "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold": "GreaterThanOrEqualToThreshold", ">=": "GreaterThanOrEqualToThreshold",
    "LessThanThreshold": "LessThanThreshold", "<": "LessThanThreshold",
    "LessThanOrEqualToThreshold": "LessThanOrEqualToThreshold", "<=": "LessThanOrEqualToThreshold",
}

# evaluation (loopml.evaluate) and training metric names -> ours
_EVAL_NAMES = {
    "binary": {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "f1", "roc_auc": "auc"},
    "multiclass": {"accuracy": "accuracy", "precision_weighted": "weighted_precision",
                   "recall_weighted": "weighted_recall", "f1_weighted": "weighted_f1"},
    "regression": {"mae": "mae", "mse": "mse", "rmse": "rmse", "r2": "r2"},
}
_TRAIN_NAMES = {
    "binary": {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "f1", "auc": "auc"},
    "multiclass": {"accuracy": "accuracy"},
    "regression": {"mae": "mae", "rmse": "rmse", "r2": "r2"},
}


# -- metrics (pure) -------------------------------------------------------------------------------
def _confusion(y: np.ndarray, p: np.ndarray, classes: Sequence[Any]) -> dict[str, dict[str, int]]:
    from sklearn.metrics import confusion_matrix

    idx = {c: i for i, c in enumerate(classes)}
    m = confusion_matrix([idx[v] for v in y], [idx[v] for v in p], labels=list(range(len(classes))))
    return {str(a): {str(b): int(m[i, j]) for j, b in enumerate(classes)} for i, a in enumerate(classes)}


def _binary_block(yt: np.ndarray, yp: np.ndarray) -> dict[str, float]:
    """Label metrics of boolean truth/prediction (the positive class is True)."""
    tp = float((yt & yp).sum())
    fp = float((~yt & yp).sum())
    tn = float((~yt & ~yp).sum())
    fn = float((yt & ~yp).sum())
    n = tp + fp + tn + fn

    def div(a: float, b: float) -> float:
        return a / b if b else math.nan

    precision, recall = div(tp, tp + fp), div(tp, tp + fn)

    def fbeta(beta: float) -> float:
        b2 = beta * beta
        return div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)

    return {
        "accuracy": div(tp + tn, n), "precision": precision, "recall": recall,
        "f0_5": fbeta(0.5), "f1": fbeta(1.0), "f2": fbeta(2.0),
        "true_positive_rate": recall, "true_negative_rate": div(tn, tn + fp),
        "false_positive_rate": div(fp, fp + tn), "false_negative_rate": div(fn, fn + tp),
    }


def _weighted_block(y: np.ndarray, p: np.ndarray, classes: Sequence[Any]) -> dict[str, float]:
    from sklearn.metrics import fbeta_score, precision_recall_fscore_support

    idx = {c: i for i, c in enumerate(classes)}
    yi = np.array([idx[v] for v in y])
    pi = np.array([idx[v] for v in p])
    labels = sorted(set(yi.tolist()))
    prec, rec, f1, _ = precision_recall_fscore_support(yi, pi, labels=labels, average="weighted", zero_division=0)
    return {
        "accuracy": float((yi == pi).mean()),
        "weighted_precision": float(prec), "weighted_recall": float(rec),
        "weighted_f0_5": float(fbeta_score(yi, pi, beta=0.5, labels=labels, average="weighted", zero_division=0)),
        "weighted_f1": float(f1),
        "weighted_f2": float(fbeta_score(yi, pi, beta=2.0, labels=labels, average="weighted", zero_division=0)),
    }


def _majority(y: np.ndarray, classes: Sequence[Any]) -> Any:
    counts = [(int((y == c).sum()), -i, c) for i, c in enumerate(classes)]
    return max(counts)[2]


def quality_metrics(
    problem_type: str,
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    *,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The model-quality metrics of one problem type, as a flat dict (plus ``confusion_matrix`` for classifiers).

    Parameters
    ----------
    problem_type
        ``binary``, ``multiclass`` or ``regression``.
    y_true, y_pred
        True and predicted labels (class values) or numbers.
    proba
        Class probabilities ``(rows, len(classes))`` in ``classes`` order (binary: AUC, AU-PRC).
    classes
        The model's classes, in order; the last is the positive class of a binary model.

    Examples
    --------
    >>> m = quality_metrics("binary", [0, 1, 1, 0], [0, 1, 0, 0], classes=[0, 1])
    >>> m["accuracy"], m["recall"], m["accuracy_best_constant_classifier"]
    (0.75, 0.5, 0.5)
    >>> quality_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0, 5.0])["mae"]
    0.6666666666666666
    """
    yt = np.asarray(y_true, dtype=object)
    yp = np.asarray(y_pred, dtype=object)
    if len(yt) != len(yp):
        raise InvalidInput(f"y_true has {len(yt)} rows but y_pred {len(yp)}")
    if len(yt) == 0:
        raise InvalidInput("no rows to compute model quality on")
    if problem_type == "regression":
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        t = yt.astype(np.float64)
        p = yp.astype(np.float64)
        mse = float(mean_squared_error(t, p))
        return {"mae": float(mean_absolute_error(t, p)), "mse": mse, "rmse": math.sqrt(mse),
                "r2": float(r2_score(t, p)) if len(t) > 1 and np.ptp(t) > 0 else math.nan}
    if problem_type not in ("binary", "multiclass"):
        raise InvalidInput(f"model quality covers binary, multiclass and regression models, not {problem_type!r}")
    cls = list(classes) if classes is not None else sorted(set(yt.tolist()) | set(yp.tolist()), key=str)
    unknown = sorted({str(v) for v in [*yt.tolist(), *yp.tolist()]} - {str(c) for c in cls})
    if unknown:
        raise InvalidInput(f"label(s) {unknown[:5]} are not classes of the model ({cls[:10]})")
    out: dict[str, Any] = {}
    best = _majority(yt, cls)
    const = np.full(len(yt), best, dtype=object)
    if problem_type == "binary":
        if len(cls) != 2:
            raise InvalidInput(f"a binary model has two classes, not {cls}")
        pos = cls[-1]
        t_b = yt == pos
        out.update(_binary_block(t_b, yp == pos))
        out.update({f"{k}_best_constant_classifier": v for k, v in _binary_block(t_b, const == pos).items()})
        out["auc"] = out["au_prc"] = math.nan
        if proba is not None and 0 < t_b.sum() < len(t_b):
            from sklearn.metrics import average_precision_score, roc_auc_score

            score = np.asarray(proba, dtype=np.float64)
            score = score[:, -1] if score.ndim == 2 else score
            out["auc"] = float(roc_auc_score(t_b, score))
            out["au_prc"] = float(average_precision_score(t_b, score))
        out["auc_best_constant_classifier"] = 0.5
    else:
        out.update(_weighted_block(yt, yp, cls))
        out.update({f"{k}_best_constant_classifier": v for k, v in _weighted_block(yt, const, cls).items()})
    out["confusion_matrix"] = _confusion(yt, yp, cls)
    return out


def quality_statistics(problem_type: str, metrics: Mapping[str, Any], item_count: int) -> dict[str, Any]:
    """SageMaker's model-quality ``statistics.json`` for flat ``metrics``."""
    block: dict[str, Any] = {}
    for k, v in metrics.items():
        if k == "confusion_matrix":
            block[k] = v
        else:
            block[k] = {"value": v if isinstance(v, (int, float)) and math.isfinite(v) else None}
    return {"version": 0.0, "dataset": {"item_count": int(item_count), "evaluation_time": utcnow().isoformat()},
            f"{_SECTION[problem_type]}_metrics": block}


# -- constraints (pure) ----------------------------------------------------------------------------
def comparison(op: str) -> str:
    """The canonical comparison operator for ``op`` (``LessThanThreshold``, ``<``, ...)."""
    try:
        return COMPARISONS[op]
    except (KeyError, TypeError):
        raise InvalidInput(f"comparison operator {op!r} is not one of {', '.join(dict.fromkeys(COMPARISONS.values()))} "
                           "(or >, >=, <, <=)") from None


def _fires(value: float, op: str, threshold: float) -> bool:
    return {"GreaterThanThreshold": value > threshold, "GreaterThanOrEqualToThreshold": value >= threshold,
            "LessThanThreshold": value < threshold, "LessThanOrEqualToThreshold": value <= threshold}[op]


def quality_constraints(
    problem_type: str,
    baseline_metrics: Mapping[str, float],
    thresholds: Mapping[str, float | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Constraints (SageMaker's ``constraints.json``) from baseline metrics and per-metric settings.

    Parameters
    ----------
    problem_type
        ``binary``, ``multiclass`` or ``regression``.
    baseline_metrics
        Metric -> baseline value (our names: ``auc``, ``weighted_f1``, ``rmse``, ...).
    thresholds
        Per metric, either a number — the allowed degradation from the
        baseline (absolute for scores, a fraction of the baseline for the
        errors mae/mse/rmse) — or an explicit constraint
        ``{"threshold": x, "comparison_operator": "LessThanThreshold"}`` that
        needs no baseline. Metrics not named use the default tolerance when
        they have a baseline and are checked by default.

    Examples
    --------
    >>> quality_constraints("binary", {"auc": 0.9}, {"auc": 0.1})
    {'version': 0.0, 'binary_classification_constraints': {'auc': {'threshold': 0.8, 'comparison_operator': 'LessThanThreshold', 'baseline': 0.9}}}
    >>> quality_constraints("regression", {"rmse": 2.0})["regression_constraints"]["rmse"]["threshold"]
    2.2
    """
    if problem_type not in _SECTION:
        raise InvalidInput(f"model quality covers binary, multiclass and regression models, not {problem_type!r}")
    settings = dict(thresholds or {})
    out: dict[str, dict[str, Any]] = {}
    names = list(dict.fromkeys([*(m for m in CHECKED[problem_type] if m in baseline_metrics), *settings]))
    for name in names:
        spec = settings.get(name)
        if isinstance(spec, Mapping):
            if "threshold" not in spec or "comparison_operator" not in spec:
                raise InvalidInput(f"the constraint of {name} needs 'threshold' and 'comparison_operator'")
            try:
                t = float(spec["threshold"])
            except (TypeError, ValueError):
                raise InvalidInput(f"the threshold of {name} must be a number, got {spec['threshold']!r}") from None
            out[name] = {"threshold": t, "comparison_operator": comparison(str(spec["comparison_operator"]))}
            continue
        base = baseline_metrics.get(name)
        if base is None or not isinstance(base, (int, float)) or not math.isfinite(base):
            if spec is not None:
                raise InvalidInput(f"a tolerance for {name} needs a baseline value of {name}; give baseline "
                                   "metrics or an explicit threshold and comparison_operator")
            continue
        lower = name in LOWER_IS_BETTER
        tol = spec if spec is not None else (DEFAULT_ERROR_TOLERANCE if lower else DEFAULT_SCORE_TOLERANCE)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
            raise InvalidInput(f"the tolerance of {name} must be a number ≥ 0, got {tol!r}")
        if lower:
            out[name] = {"threshold": round(float(base) * (1 + float(tol)), 12),
                         "comparison_operator": "GreaterThanThreshold", "baseline": float(base)}
        else:
            out[name] = {"threshold": round(float(base) - float(tol), 12),
                         "comparison_operator": "LessThanThreshold", "baseline": float(base)}
    return {"version": 0.0, f"{_SECTION[problem_type]}_constraints": out}


def check_quality(metrics: Mapping[str, Any], constraints: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Violations (SageMaker's ``constraint_violations.json`` entries) of ``metrics`` against ``constraints``.

    Examples
    --------
    >>> c = {"binary_classification_constraints": {"auc": {"threshold": 0.8, "comparison_operator": "LessThanThreshold"}}}
    >>> [v["description"] for v in check_quality({"auc": 0.7}, c)]
    ["Metric auc with 0.7 was LessThanThreshold '0.8'"]
    """
    block: Mapping[str, Any] = next((v for k, v in constraints.items() if k.endswith("_constraints")), {})
    out = []
    for name, c in block.items():
        value = metrics.get(name)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        op = comparison(c["comparison_operator"])
        if _fires(float(value), op, float(c["threshold"])):
            out.append({"metric_name": name, "constraint_check_type": op, "value": float(value),
                        "threshold": float(c["threshold"]),
                        "description": f"Metric {name} with {value:.4g} was {op} '{float(c['threshold']):.4g}'"})
    return out


# -- baseline metrics of a model version ------------------------------------------------------------
def baseline_metrics_of(ws: Workspace, info: ModelVersionInfo) -> tuple[dict[str, float], str]:
    """The model version's baseline metrics (our names) and where they came from.

    Its latest stored evaluation (``evaluate_model`` on the version) wins;
    else the training metrics (``validation:*`` before ``train:*``).
    """
    from loopml.store.lineage import EntityRef

    pt = info.problem_type
    try:
        from loopml.evaluate.run import EVALUATED_BY, EVALUATION_KIND, load_evaluation

        evals = ws.lineage.targets(EntityRef("model_version", info.id), EVALUATED_BY, EVALUATION_KIND)
        if evals:
            res = load_evaluation(ws, evals[-1].id)
            got: dict[str, float] = {}
            for k, ours in _EVAL_NAMES.get(pt, {}).items():
                v = res.metrics.get(k)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    got[ours] = float(v)
            if got:
                return got, f"evaluation {evals[-1].id[:12]} of {info.ref}"
    except ImportError:  # pragma: no cover - evaluate ships with loopml
        pass
    out: dict[str, float] = {}
    source = ""
    for prefix in ("validation:", "train:"):
        for k, ours in _TRAIN_NAMES.get(pt, {}).items():
            v = info.metrics.get(prefix + k)
            if ours not in out and isinstance(v, (int, float)) and math.isfinite(v):
                out[ours] = float(v)
                source = source or f"{prefix.rstrip(':')} metrics of {info.ref}"
    return out, (source or f"no metrics recorded for {info.ref}")


# -- the monitoring run ------------------------------------------------------------------------------
def _to_classes(values: Sequence[Any], classes: Sequence[Any], what: str) -> np.ndarray:
    """Map label values (text from ground truth, numbers or text from capture) onto the model's classes."""
    by_text = {str(c): c for c in classes}
    by_num: dict[float, Any] = {}
    for c in classes:
        if isinstance(c, (int, float, np.number)) and not isinstance(c, bool):
            by_num[float(c)] = c
    cache: dict[Any, Any] = {}
    out = np.empty(len(values), dtype=object)
    bad: list[str] = []
    for i, v in enumerate(values):
        key = (type(v).__name__, str(v))
        if key not in cache:
            hit: Any = by_text.get(str(v), _MISSING)
            if hit is _MISSING:
                try:
                    hit = by_num.get(float(v), _MISSING)
                except (TypeError, ValueError):
                    hit = _MISSING
            if hit is _MISSING and str(v).lower() in ("true", "false"):
                hit = by_text.get(str(str(v).lower() == "true"), _MISSING)
            cache[key] = hit
        hit = cache[key]
        if hit is _MISSING:
            bad.append(str(v))
        out[i] = hit
    if bad:
        raise InvalidInput(f"{what} hold(s) value(s) {sorted(set(bad))[:5]} that are not classes of the model "
                           f"({list(classes)[:10]}); fix the labels")
    return out


_MISSING = object()


def _to_numbers(values: Sequence[Any], what: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise InvalidInput(f"{what} must be numbers for a regression model; got {v!r}") from None
    return out


def _proba(values: pd.Series, k: int) -> np.ndarray | None:
    rows = values.tolist()
    if not rows or any(not isinstance(r, (list, tuple)) or len(r) != k for r in rows):
        return None
    try:
        return np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def run_model_quality(
    ws: Workspace,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    variant: str | None = None,
    baseline_metrics: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float | Mapping[str, Any]] | None = None,
) -> MonitoringResult:
    """Score an endpoint's captured predictions in a window against their ground truth and record it.

    Parameters
    ----------
    ws
        The workspace.
    endpoint
        The endpoint (its captured requests and uploaded ground truth).
    since, until
        The window of inference times (UTC; None for open ends).
    variant
        Only this variant's requests.
    baseline_metrics
        Metric -> value to compare with (default: the serving model version's
        latest evaluation, else its training metrics).
    thresholds
        Per-metric tolerance or explicit constraint; see :func:`quality_constraints`.

    Returns
    -------
    MonitoringResult
        ``Completed``, ``CompletedWithViolations``, or ``NoData`` when no
        captured prediction in the window has ground truth. Outputs:
        ``statistics.json``, ``constraints.json``, ``constraint_violations.json``.

    Raises
    ------
    InvalidInput
        The model's problem type is not covered; labels that are not the model's classes.
    NotFound
        The model version named by the captured requests does not exist.

    Examples
    --------
    >>> res = run_model_quality(ws, "churn-ep", since=yesterday)   # doctest: +SKIP
    >>> res.status, res.summary["metrics"]["auc"]                   # doctest: +SKIP
    ('Completed', 0.87)
    """
    from loopml.metrics import MetricPoint
    from loopml.monitor.ground_truth import GROUND_TRUTH, labelled_predictions
    from loopml.monitor.results import COMPLETED, COMPLETED_WITH_VIOLATIONS, NO_DATA, save_result
    from loopml.registry import get_model_version

    merged, facts = labelled_predictions(ws, endpoint, since=since, until=until, variant=variant)
    rows = {k: facts[k] for k in ("captured", "labelled", "unlabelled")}
    if merged.empty:
        return save_result(ws, "model_quality", endpoint, status=NO_DATA, since=since, until=until,
                           summary={"message": facts["message"], "rows": rows, "variant": variant})
    notes: list[str] = []
    served = merged["model"].fillna("?").value_counts()
    model_ref = str(served.index[0])
    if len(served) > 1:
        notes.append(f"the window holds predictions of {len(served)} model versions "
                     f"({', '.join(f'{k}: {v}' for k, v in served.items())}); scored together as {model_ref}")
    info = get_model_version(ws, model_ref)
    pt = info.problem_type
    if pt not in PROBLEM_TYPES:
        raise InvalidInput(f"{info.ref} solves {pt!r} problems; model quality covers binary, multiclass and "
                           "regression models")
    has_pred = merged["prediction"].notna().to_numpy()
    if not has_pred.all():
        notes.append(f"left out {int((~has_pred).sum())} captured rows without a prediction")
        merged = merged[has_pred]
    proba = None
    classes: list[Any] | None = None
    if pt == "regression":
        y_true: np.ndarray = _to_numbers(merged[GROUND_TRUTH].tolist(), "the ground-truth labels")
        y_pred: np.ndarray = _to_numbers(merged["prediction"].tolist(), "the captured predictions")
    else:
        classes = list(info.signature.get("classes") or [])
        if not classes:
            classes = sorted(set(merged["prediction"].astype(str)) | set(merged[GROUND_TRUTH]))
        y_true = _to_classes(merged[GROUND_TRUTH].tolist(), classes, "the ground-truth labels")
        y_pred = _to_classes(merged["prediction"].tolist(), classes, "the captured predictions")
        proba = _proba(merged["probabilities"], len(classes))
        if proba is None and pt == "binary":
            notes.append("the captured responses carry no class probabilities: auc and au_prc are left out")
    metrics = quality_metrics(pt, y_true, y_pred, proba=proba, classes=classes)

    if baseline_metrics is None:
        base, base_source = baseline_metrics_of(ws, info)
    else:
        base, base_source = {str(k): float(v) for k, v in baseline_metrics.items()}, "given"
    constraints = quality_constraints(pt, base, thresholds)
    violations = check_quality(metrics, constraints)
    statistics = quality_statistics(pt, metrics, len(merged))

    ts = as_utc(until) if until is not None else utcnow()
    dims = {"endpoint": endpoint, "monitor": "model_quality", **({"variant": variant} if variant else {})}
    points = [MetricPoint(k, float(v), dims, ts) for k, v in metrics.items()
              if k != "confusion_matrix" and isinstance(v, (int, float)) and math.isfinite(v)]
    ws.metrics.put_many(points)

    scalars = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    summary = {
        "problem_type": PROBLEM_TYPES[pt], "model": info.ref, "variant": variant, "rows": rows,
        "metrics": scalars, "confusion_matrix": metrics.get("confusion_matrix"),
        "baseline": {"source": base_source, "metrics": base},
        "violations": violations, "violation_count": len(violations), "notes": notes,
        "message": (f"{len(violations)} metric(s) worse than the baseline allows" if violations
                    else f"{len(merged)} labelled predictions scored; no violation"),
    }
    outputs = {
        "statistics.json": json.dumps(_json(statistics), indent=2).encode(),
        "constraints.json": json.dumps(_json(constraints), indent=2).encode(),
        "constraint_violations.json": json.dumps({"violations": _json(violations)}, indent=2).encode(),
    }
    log.info("model quality of %s: %d labelled rows, %d violation(s)", endpoint, len(merged), len(violations))
    return save_result(ws, "model_quality", endpoint, status=COMPLETED_WITH_VIOLATIONS if violations else COMPLETED,
                       summary=summary, outputs=outputs, since=since, until=until)


def _json(v: Any) -> Any:
    from loopml.monitor.results import jsonable

    return jsonable(v)


__all__ = [
    "CHECKED",
    "COMPARISONS",
    "DEFAULT_ERROR_TOLERANCE",
    "DEFAULT_SCORE_TOLERANCE",
    "LOWER_IS_BETTER",
    "PROBLEM_TYPES",
    "baseline_metrics_of",
    "check_quality",
    "comparison",
    "quality_constraints",
    "quality_metrics",
    "quality_statistics",
    "run_model_quality",
]
