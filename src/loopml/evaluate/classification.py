"""Classification: label and score metrics, curves, calibration and threshold selection.

Everything here is a function of arrays and leans on :mod:`sklearn.metrics`;
this module adds the checks at the edge (clear messages instead of
``UndefinedMetricWarning`` and NaN), the class bookkeeping (labels, the
positive class, score columns) and the choice of a decision threshold.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.preprocessing import label_binarize

from loopml.errors import InvalidInput
from loopml.evaluate._arrays import as_1d, as_numeric, check_lengths, json_float
from loopml.evaluate.business import BusinessCosts

#: most points kept per curve (evenly spaced along the curve, ends kept)
MAX_CURVE_POINTS = 400
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold on the positive-class score and the metrics it gives.

    Rows with ``score >= threshold`` are predicted positive.

    Attributes
    ----------
    threshold
        The chosen threshold.
    by
        ``"f1"`` (the threshold with the highest F1) or ``"cost"`` (the lowest
        expected cost of errors per prediction, net of the benefits of correct
        predictions, from the costs file).
    value
        The best F1, or the lowest expected net cost per prediction.
    metrics
        At the threshold: ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``positive_rate``, ``tp``, ``fp``, ``tn``, ``fn`` and, with costs,
        ``expected_cost``.
    """

    threshold: float
    by: str
    value: float
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"threshold": self.threshold, "by": self.by, "value": self.value, "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ThresholdChoice:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["threshold"]), str(d["by"]), float(d["value"]), dict(d.get("metrics", {})))


# -- preparing the inputs --------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """Checked classification inputs: labels, predictions, classes (sorted) and scores."""

    y_true: np.ndarray
    y_pred: np.ndarray
    classes: np.ndarray
    #: the positive class (binary only)
    pos_label: Any
    #: binary: the positive-class score (1-D); multiclass: one column per class, in ``classes`` order
    score: np.ndarray | None
    #: the scores are probabilities (in [0, 1]; multiclass rows sum to 1)
    is_proba: bool
    binary: bool
    #: the threshold that turned scores into predictions (binary, when no y_pred was given)
    threshold: float | None
    warnings: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        """``binary`` or ``multiclass``."""
        return "binary" if self.binary else "multiclass"


def _kind(arr: np.ndarray) -> str:
    if arr.dtype.kind in "biuf":
        return "number"
    if arr.dtype.kind in "US":
        return "text"
    kinds = {type(v) for v in arr.tolist()}
    if all(issubclass(k, str) for k in kinds):
        return "text"
    if all(issubclass(k, (int, float, np.number, bool, np.bool_)) for k in kinds):
        return "number"
    return "mixed"


def _match_label(name: str, value: Any, classes: np.ndarray) -> Any:
    """``value`` as one of ``classes`` (a CLI gives text: '1' matches the class 1)."""
    items = classes.tolist()
    if value in items:
        return items[items.index(value)]
    for c in items:
        if str(c) == str(value):
            return c
    raise InvalidInput(f"{name} {value!r} is not one of the classes {items}")


def prepare(
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
    threshold: float | None = None,
    task: Literal["auto", "binary", "multiclass"] = "auto",
) -> Prepared:
    """Check and align classification inputs (see :func:`classification_metrics`)."""
    yt = as_1d("y_true", y_true)
    yp = as_1d("y_pred", y_pred) if y_pred is not None else None
    score = as_numeric("y_score", y_score, ndim=(1, 2)) if y_score is not None else None
    check_lengths(y_true=yt, y_pred=yp, y_score=score)
    if yp is None and score is None:
        raise InvalidInput("give y_pred (predicted labels) or y_score (scores or probabilities), or both")
    kinds = {_kind(yt)} | ({_kind(yp)} if yp is not None else set())
    if "mixed" in kinds or len(kinds) > 1:
        raise InvalidInput(
            "y_true and y_pred must hold the same kind of labels (all text or all numbers); got "
            f"{yt[:3].tolist()} and {yp[:3].tolist() if yp is not None else []}"
        )
    if labels is not None:
        given = as_1d("labels", list(labels))
        if len(set(given.tolist())) != len(given):
            raise InvalidInput(f"labels must be distinct; got {given.tolist()}")
        for name, arr in (("y_true", yt), ("y_pred", yp)):
            if arr is None:
                continue
            extra = sorted(set(arr.tolist()) - set(given.tolist()), key=str)
            if extra:
                raise InvalidInput(f"{name} holds label(s) {extra[:5]} that are not in labels {given.tolist()}")
    else:
        seen = np.concatenate([yt, yp]) if yp is not None else yt
        given = np.unique(seen)
        if score is not None and score.ndim == 2 and score.shape[1] != len(given) and score.shape[1] > 2:
            raise InvalidInput(
                f"y_score has {score.shape[1]} columns but the data hold {len(given)} classes "
                f"{given.tolist()}; pass labels= (the class of each column, in order)"
            )
    if len(given) < 2:
        raise InvalidInput(
            f"classification needs at least two classes, but the labels hold only {given.tolist()}; "
            "pass labels= to name every class (e.g. labels=[0, 1])"
        )
    binary = len(given) == 2
    if task == "binary" and not binary:
        raise InvalidInput(
            f"task 'binary' needs two classes; the labels hold {len(given)}: {given.tolist()[:10]}; "
            "use task='multiclass'"
        )
    if task == "multiclass":
        binary = False
    order = np.argsort(given, kind="stable")
    classes = given[order]
    notes: list[str] = []

    pos = None
    if binary:
        pos = _match_label("pos_label", pos_label, classes) if pos_label is not None else classes[-1].item()
    elif pos_label is not None:
        raise InvalidInput("pos_label applies to binary classification only")

    s: np.ndarray | None = None
    is_proba = False
    if score is not None:
        present = np.unique(yt)
        if len(present) < 2:
            raise InvalidInput(
                f"AUC-ROC, PR-AUC and the curves need both positive and negative rows, but y_true holds "
                f"only the class {present.tolist()[0]!r}; evaluate on rows with at least two classes, "
                "or leave out the scores to get the label metrics only"
            )
        if binary:
            if score.ndim == 2:
                if score.shape[1] != 2:
                    raise InvalidInput(
                        f"binary y_score must be the positive-class score (1-D) or two columns; got {score.shape[1]} columns"
                    )
                s = score[:, list(given.tolist()).index(pos)]
            else:
                s = score
            is_proba = bool(s.min() >= 0.0 and s.max() <= 1.0)
        else:
            if score.ndim != 2 or score.shape[1] != len(given):
                raise InvalidInput(
                    f"multiclass y_score must have one column per class ({len(given)}: {given.tolist()[:10]}); "
                    f"got shape {score.shape}"
                )
            s = score[:, order]
            sums = s.sum(axis=1)
            is_proba = bool(s.min() >= 0.0 and s.max() <= 1.0 and np.allclose(sums, 1.0, atol=1e-3))
            if not is_proba:
                notes.append(
                    "the multiclass scores are not probabilities (each row in [0, 1], summing to 1): "
                    "log loss and the calibration plot are left out"
                )
        if binary and not is_proba:
            notes.append(
                "the scores are outside [0, 1], so they are not probabilities: log loss, the Brier "
                "score and the calibration plot are left out"
            )

    used_threshold: float | None = None
    if yp is None:
        assert s is not None
        if binary:
            used_threshold = 0.5 if threshold is None else float(threshold)
            neg = classes[0].item() if classes[1].item() == pos else classes[1].item()
            pair = np.asarray([neg, pos], dtype=classes.dtype if classes.dtype.kind != "O" else object)
            yp = pair[(s >= used_threshold).astype(np.intp)]
        else:
            yp = classes[np.argmax(s, axis=1)]
    assert yp is not None
    return Prepared(yt, yp, classes, pos, s, is_proba, binary, used_threshold, tuple(notes))


# -- metrics ---------------------------------------------------------------------------------
def label_metrics(p: Prepared) -> dict[str, float | None]:
    """Metrics of the predicted labels."""
    out: dict[str, float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = float(skm.accuracy_score(p.y_true, p.y_pred))
        out["balanced_accuracy"] = float(skm.balanced_accuracy_score(p.y_true, p.y_pred))
        if p.binary:
            tb, pb = p.y_true == p.pos_label, p.y_pred == p.pos_label
            prec, rec, f1, _ = skm.precision_recall_fscore_support(
                tb, pb, average="binary", pos_label=True, zero_division=0
            )
            out.update(precision=float(prec), recall=float(rec), f1=float(f1))
        for avg in ("macro", "weighted"):
            prec, rec, f1, _ = skm.precision_recall_fscore_support(
                p.y_true, p.y_pred, labels=p.classes, average=avg, zero_division=0
            )
            out.update({f"precision_{avg}": float(prec), f"recall_{avg}": float(rec), f"f1_{avg}": float(f1)})
        out["mcc"] = json_float(skm.matthews_corrcoef(p.y_true, p.y_pred))
    return out


def score_metrics(p: Prepared) -> tuple[dict[str, float | None], list[str]]:
    """AUC-ROC, PR-AUC (average precision), log loss and Brier score from the scores."""
    out: dict[str, float | None] = {}
    notes: list[str] = []
    if p.score is None:
        return out, notes
    if p.binary:
        tb = p.y_true == p.pos_label
        out["roc_auc"] = float(skm.roc_auc_score(tb, p.score))
        out["pr_auc"] = float(skm.average_precision_score(tb, p.score))
        if p.is_proba:
            out["log_loss"] = float(skm.log_loss(tb, p.score, labels=[False, True]))
            out["brier"] = float(skm.brier_score_loss(tb, p.score))
        return out, notes
    per = per_class_scores(p)
    present = [c for c in per if c["support"] > 0]
    if len(present) < len(per):
        missing = [c["label"] for c in per if c["support"] == 0]
        notes.append(
            f"class(es) {missing[:10]} have no rows in y_true: AUC-ROC and PR-AUC average over "
            f"the {len(present)} classes present"
        )
    support = np.array([c["support"] for c in present], dtype=float)
    aucs = np.array([c["roc_auc"] for c in present])
    out["roc_auc"] = float(aucs.mean())
    out["roc_auc_weighted"] = float(np.average(aucs, weights=support))
    out["pr_auc"] = float(np.mean([c["pr_auc"] for c in present]))
    if p.is_proba:
        # rows sum to 1 within 1e-3 (is_proba); float32 model output misses it by rounding, which
        # scikit-learn warns about: renormalise
        proba = p.score / p.score.sum(axis=1, keepdims=True)
        out["log_loss"] = float(skm.log_loss(p.y_true, proba, labels=p.classes))
    return out, notes


def per_class_scores(p: Prepared) -> list[dict[str, Any]]:
    """One-vs-rest AUC-ROC and average precision per class (multiclass scores)."""
    assert p.score is not None and not p.binary
    onehot = label_binarize(p.y_true, classes=p.classes)
    rows = []
    for j, c in enumerate(p.classes.tolist()):
        yb = onehot[:, j]
        n = int(yb.sum())
        ok = 0 < n < len(yb)
        rows.append({
            "label": c, "support": n,
            "roc_auc": float(skm.roc_auc_score(yb, p.score[:, j])) if ok else None,
            "pr_auc": float(skm.average_precision_score(yb, p.score[:, j])) if ok else None,
        })
    return rows


def confusion(p: Prepared) -> list[list[int]]:
    """Confusion matrix: row = true class, column = predicted class, in ``classes`` order."""
    return [[int(v) for v in row] for row in skm.confusion_matrix(p.y_true, p.y_pred, labels=p.classes)]


def per_class_report(p: Prepared) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class (and AUC-ROC / PR-AUC one-vs-rest with scores)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prec, rec, f1, sup = skm.precision_recall_fscore_support(
            p.y_true, p.y_pred, labels=p.classes, average=None, zero_division=0
        )
    rows: list[dict[str, Any]] = [
        {"label": c, "precision": float(a), "recall": float(b), "f1": float(f), "support": int(s)}
        for c, a, b, f, s in zip(p.classes.tolist(), prec, rec, f1, sup, strict=True)
    ]
    if p.score is not None and not p.binary:
        for row, sc in zip(rows, per_class_scores(p), strict=True):
            row.update(roc_auc=sc["roc_auc"], pr_auc=sc["pr_auc"])
    return rows


def classification_metrics(
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
    threshold: float | None = None,
) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 (binary, macro, weighted), AUC-ROC, PR-AUC, log loss.

    Parameters
    ----------
    y_true
        True labels (any type: numbers, text, booleans).
    y_pred
        Predicted labels. Without them, binary scores are cut at ``threshold``
        (0.5) and multiclass scores take the most probable class.
    y_score
        Binary: the positive-class score or probability (1-D), or two columns.
        Multiclass: one column per class, in the order of ``labels`` (sorted
        classes by default). Needed for AUC-ROC, PR-AUC and log loss.
    labels
        Every class, in the order of the score columns (default: the sorted
        classes seen in ``y_true`` and ``y_pred``).
    pos_label
        The positive class of a binary task (default: the last sorted class,
        e.g. ``1``, ``True`` or ``"yes"``).
    threshold
        Cut-off on the positive-class score when ``y_pred`` is not given.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``precision``/``recall``/``f1`` (binary,
        of the positive class), ``precision_macro`` ... ``f1_weighted``, ``mcc``,
        and with scores ``roc_auc`` (one-vs-rest macro for multiclass), ``pr_auc``
        (average precision), ``log_loss`` and ``brier`` (probabilities only).

    Raises
    ------
    InvalidInput
        Mismatched lengths, fewer than two classes, scores that do not fit the
        classes, or scores with only one class in ``y_true``.

    Examples
    --------
    >>> m = classification_metrics([0, 1, 1, 0], y_score=[0.1, 0.8, 0.4, 0.3])
    >>> m["accuracy"], m["roc_auc"]
    (0.75, 1.0)
    """
    p = prepare(y_true, y_pred, y_score, labels=labels, pos_label=pos_label, threshold=threshold)
    out = label_metrics(p)
    out.update(score_metrics(p)[0])
    return out


# -- curves ----------------------------------------------------------------------------------
def _thin(*arrays: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> list[list[float]]:
    n = len(arrays[0])
    idx = np.arange(n) if n <= max_points else np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return [[round(float(v), 6) for v in a[idx]] for a in arrays]


def curves(p: Prepared) -> dict[str, Any]:
    """ROC, precision-recall and calibration curves (per class one-vs-rest for multiclass)."""
    if p.score is None:
        return {}
    if p.binary:
        series = [(p.pos_label, p.y_true == p.pos_label, p.score)]
    else:
        onehot = label_binarize(p.y_true, classes=p.classes)
        series = [(c, onehot[:, j].astype(bool), p.score[:, j]) for j, c in enumerate(p.classes.tolist())
                  if 0 < onehot[:, j].sum() < len(onehot)]
    roc, pr, cal = [], [], []
    for label, yb, s in series:
        fpr, tpr, _ = skm.roc_curve(yb, s)
        x, y = _thin(fpr, tpr)
        roc.append({"label": label, "fpr": x, "tpr": y, "auc": float(skm.auc(fpr, tpr))})
        prec, rec, _ = skm.precision_recall_curve(yb, s)
        r, q = _thin(rec, prec)
        pr.append({"label": label, "recall": r, "precision": q,
                   "ap": float(skm.average_precision_score(yb, s)), "prevalence": float(yb.mean())})
        if p.is_proba:
            cal.append({"label": label, **calibration(yb, s)})
    out: dict[str, Any] = {"roc": roc, "pr": pr}
    if cal:
        out["calibration"] = cal
        edges = np.linspace(0.0, 1.0, 21)
        top = p.score if p.binary else p.score.max(axis=1)
        out["score_histogram"] = {"edges": edges.round(6).tolist(),
                                  "counts": np.histogram(top, bins=edges)[0].astype(int).tolist(),
                                  "of": "positive-class probability" if p.binary else "top-class probability"}
    return out


def calibration(y_true: np.ndarray, prob: np.ndarray, n_bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability diagram data (uniform bins) and the expected calibration error.

    ``mean_predicted`` and ``fraction_positive`` come from
    :func:`sklearn.calibration.calibration_curve`; ``count`` is the number of
    rows in each (non-empty) bin and ``ece`` the count-weighted mean gap
    between the two.
    """
    frac, mean = calibration_curve(y_true, prob, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], prob), minlength=n_bins)
    counts = counts[counts > 0]
    ece = float(np.sum(counts * np.abs(frac - mean)) / counts.sum())
    return {"mean_predicted": [round(float(v), 6) for v in mean],
            "fraction_positive": [round(float(v), 6) for v in frac],
            "count": [int(c) for c in counts], "ece": ece}


# -- thresholds ------------------------------------------------------------------------------
def select_threshold(
    y_true: Any,
    y_score: Any,
    *,
    by: Literal["f1", "cost"] = "f1",
    costs: BusinessCosts | Mapping[str, Any] | None = None,
    pos_label: Any = None,
) -> ThresholdChoice:
    """Pick the decision threshold on a binary score: the highest F1 or the lowest expected cost.

    Every distinct score is a candidate (rows with ``score >= threshold`` are
    positive), plus one above the highest score (nothing positive). With
    ``by="cost"`` the expected net cost per prediction is
    ``(cost_fp·FP + cost_fn·FN − benefit_tp·TP − benefit_tn·TN) / n``; ties go
    to the higher threshold.

    Parameters
    ----------
    y_true
        True labels of a binary task.
    y_score
        Positive-class scores.
    by
        ``"f1"`` or ``"cost"``.
    costs
        The costs (a :class:`BusinessCosts` or a mapping); required for ``by="cost"``.
    pos_label
        The positive class (default: the last sorted class).

    Returns
    -------
    ThresholdChoice

    Examples
    --------
    >>> t = select_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], by="cost",
    ...                      costs={"cost_fp": 1, "cost_fn": 10})
    >>> t.threshold, t.metrics["fn"]
    (0.4, 0.0)
    """
    p = prepare(y_true, None, y_score, pos_label=pos_label, task="binary")
    return choose_threshold(p, by=by, costs=costs)


def choose_threshold(
    p: Prepared, *, by: str = "f1", costs: BusinessCosts | Mapping[str, Any] | None = None,
) -> ThresholdChoice:
    """:func:`select_threshold` on prepared inputs."""
    if by not in ("f1", "cost"):
        raise InvalidInput(f"threshold selection must be 'f1' or 'cost'; got {by!r}")
    if p.score is None or not p.binary:
        raise InvalidInput("threshold selection needs binary labels and positive-class scores")
    c = BusinessCosts.coerce(costs)
    if by == "cost" and (c is None or not c.has_error_costs):
        raise InvalidInput(
            "threshold selection by cost needs a costs file with cost_fp, cost_fn, benefit_tp or benefit_tn"
        )
    yb = p.y_true == p.pos_label
    n = len(yb)
    npos = int(yb.sum())
    nneg = n - npos
    fpr, tpr, thr = skm.roc_curve(yb, p.score, drop_intermediate=False)
    tp = np.rint(tpr * npos)
    fp = np.rint(fpr * nneg)
    fn = npos - tp
    tn = nneg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    cost = None
    if c is not None and c.has_error_costs:
        cost = (c.cost_fp * fp + c.cost_fn * fn - c.benefit_tp * tp - c.benefit_tn * tn) / n
    i = int(np.argmax(f1 if by == "f1" or cost is None else -cost))  # first = highest threshold
    t = float(thr[i]) if np.isfinite(thr[i]) else float(np.nextafter(p.score.max(), np.inf))
    metrics: dict[str, float] = {
        "accuracy": float((tp[i] + tn[i]) / n),
        "precision": float(tp[i] / (tp[i] + fp[i])) if tp[i] + fp[i] else 0.0,
        "recall": float(tp[i] / npos),
        "f1": float(f1[i]),
        "positive_rate": float((tp[i] + fp[i]) / n),
        "tp": float(tp[i]), "fp": float(fp[i]), "tn": float(tn[i]), "fn": float(fn[i]),
    }
    if cost is not None:
        metrics["expected_cost"] = float(cost[i])
    value = float(f1[i]) if by == "f1" else float(cost[i])  # type: ignore[index]
    return ThresholdChoice(t, by, value, metrics)
