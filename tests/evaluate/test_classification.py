from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from loopml import InvalidInput
from loopml.evaluate import classification_metrics, evaluate_predictions, select_threshold


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 600)
    score = np.clip(0.3 * y + 0.7 * rng.random(600), 0, 1)
    return y, score


@pytest.fixture(scope="module")
def multiclass() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 500)
    logits = rng.normal(size=(500, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def test_binary_metrics_match_sklearn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    pred = (s >= 0.5).astype(int)
    m = classification_metrics(y, y_score=s)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, s))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, s))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, s))
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))


def test_text_labels_positive_class_and_two_score_columns(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    text = np.where(y == 1, "churn", "stay")
    pred = np.where(s >= 0.5, "churn", "stay")
    # "stay" sorts last; naming "churn" positive must flip nothing but the class of interest
    m = classification_metrics(text, pred, s, pos_label="churn")
    assert m["recall"] == pytest.approx(skm.recall_score(y, (s >= 0.5).astype(int)))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    # two columns in labels order: [churn, stay]
    two = np.column_stack([s, 1 - s])
    m2 = classification_metrics(text, pred, two, labels=["churn", "stay"], pos_label="churn")
    assert m2["roc_auc"] == pytest.approx(m["roc_auc"]) and m2["log_loss"] == pytest.approx(m["log_loss"])
    # a CLI gives the positive class as text: '1' is the class 1
    assert classification_metrics(y, y_score=s, pos_label="1")["roc_auc"] == pytest.approx(m["roc_auc"])


def test_multiclass_metrics_match_sklearn(multiclass: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = multiclass
    pred = p.argmax(axis=1)
    m = classification_metrics(y, y_score=p)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["precision_weighted"] == pytest.approx(skm.precision_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))
    assert m["roc_auc_weighted"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="weighted"))
    onehot = np.eye(3)[y]
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(onehot, p, average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert "f1" not in m and "precision" not in m  # binary-only metrics


def test_multiclass_labels_order_the_score_columns(multiclass: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = multiclass
    names = np.array(["cat", "dog", "eel"])[y]
    # columns given in the order eel, cat, dog
    cols = p[:, [2, 0, 1]]
    r = evaluate_predictions(names, y_score=cols, labels=["eel", "cat", "dog"])
    assert r.task == "multiclass" and r.labels == ["cat", "dog", "eel"]
    assert r.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))
    assert np.array(r.confusion_matrix).tolist() == skm.confusion_matrix(y, p.argmax(axis=1)).tolist()
    assert [c["label"] for c in r.per_class or []] == ["cat", "dog", "eel"]
    assert r.per_class is not None and r.per_class[0]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y == 0, p[:, 0]))


def test_confusion_report_curves_and_calibration(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    r = evaluate_predictions(y, y_score=s, threshold=0.4)
    pred = (s >= 0.4).astype(int)
    assert r.info["decision_threshold"] == 0.4
    assert r.confusion_matrix == skm.confusion_matrix(y, pred).tolist()
    rep = skm.classification_report(y, pred, output_dict=True)
    assert r.per_class is not None
    assert r.per_class[1]["f1"] == pytest.approx(rep["1"]["f1-score"]) and r.per_class[1]["support"] == rep["1"]["support"]
    roc = r.curves["roc"][0]
    assert roc["auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-9)
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and len(roc["fpr"]) <= 400
    frac, mean = calibration_curve(y, s, n_bins=10)
    cal = r.curves["calibration"][0]
    assert cal["fraction_positive"] == pytest.approx(frac, abs=1e-6)
    assert cal["mean_predicted"] == pytest.approx(mean, abs=1e-6)
    assert sum(cal["count"]) == len(y)
    assert r.metrics["calibration_error"] == pytest.approx(np.sum(np.array(cal["count"]) * np.abs(frac - mean)) / len(y))


def test_scores_that_are_not_probabilities(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    margin = (s - 0.5) * 8  # a decision function
    r = evaluate_predictions(y, y_score=margin, threshold=0.0)
    assert r.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert "log_loss" not in r.metrics and "calibration" not in r.curves
    assert any("not probabilities" in w for w in r.warnings)


def test_threshold_by_f1_is_the_best_f1(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    t = select_threshold(y, s, by="f1")
    best = max(skm.f1_score(y, (s >= c).astype(int)) for c in np.unique(s))
    assert t.value == pytest.approx(best)
    assert t.metrics["f1"] == pytest.approx(skm.f1_score(y, (s >= t.threshold).astype(int)))


def test_threshold_by_cost_minimises_expected_cost() -> None:
    # A false negative costs 10x a false positive: the best threshold lets in every positive.
    y = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.4, 0.7, 0.8, 0.9])
    costs = {"cost_fp": 1.0, "cost_fn": 10.0}
    t = select_threshold(y, s, by="cost", costs=costs)
    assert t.threshold == 0.4  # at 0.4: FP = 2 (0.5, 0.7), FN = 0 -> cost 0.2 per prediction
    assert (t.metrics["fp"], t.metrics["fn"]) == (2, 0)
    assert t.value == pytest.approx(0.2) and t.metrics["expected_cost"] == pytest.approx(0.2)

    def cost(c: float) -> float:
        p = s >= c
        return (1.0 * np.sum(p & (y == 0)) + 10.0 * np.sum(~p & (y == 1))) / len(y)

    assert t.value == pytest.approx(min(cost(c) for c in [*s, 1.1]))
    # F1 alone picks a different operating point
    assert select_threshold(y, s, by="f1").threshold == 0.8  # F1 0.8 (TP 2, FN 1) beats 0.75 at 0.4
    # benefits count as negative costs: 3 TPs at 0.4 are worth more than 2 FPs cost
    gain = select_threshold(y, s, by="cost", costs={"cost_fp": 1.0, "benefit_tp": 100.0})
    assert gain.threshold == 0.4 and gain.value == pytest.approx((2 * 1.0 - 3 * 100.0) / 10)
    # only false positives cost: ties go to the highest threshold, above every score
    none = select_threshold(y, s, by="cost", costs={"cost_fp": 1.0})
    assert none.threshold > s.max() and none.metrics["positive_rate"] == 0


def test_threshold_selection_is_auto_by_cost_with_costs() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.4, 0.7, 0.8, 0.9])
    r = evaluate_predictions(y, y_score=s, costs={"cost_fp": 1, "cost_fn": 10})
    assert r.threshold is not None and r.threshold.by == "cost" and r.threshold.threshold == 0.4
    assert evaluate_predictions(y, y_score=s, threshold_by=None).threshold is None
    with pytest.raises(InvalidInput, match="needs a costs file"):
        select_threshold(y, s, by="cost")


def test_bad_inputs_say_what_is_wrong(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    with pytest.raises(InvalidInput, match=r"y_true has 600, y_pred has 599 rows"):
        classification_metrics(y, y[:-1])
    with pytest.raises(InvalidInput, match=r"y_true holds only the class 1.*leave out the scores"):
        classification_metrics(np.ones(10, int), np.ones(10, int), np.linspace(0, 1, 10), labels=[0, 1])
    with pytest.raises(InvalidInput, match=r"labels hold only \[1\]; pass labels="):
        classification_metrics(np.ones(5, int), np.ones(5, int))
    with pytest.raises(InvalidInput, match="y_pred holds label\\(s\\) \\[2\\] that are not in labels"):
        classification_metrics([0, 1, 1], [0, 2, 1], labels=[0, 1])
    with pytest.raises(InvalidInput, match="same kind of labels"):
        classification_metrics(["a", "b"], [0, 1])
    with pytest.raises(InvalidInput, match="one column per class"):
        evaluate_predictions([0, 1, 2, 1], y_score=np.full((4, 2), 0.5), labels=[0, 1, 2])
    with pytest.raises(InvalidInput, match="y_true has 1 missing value"):
        classification_metrics([0, None, 1], [0, 1, 1])
    with pytest.raises(InvalidInput, match="y_score has 1 row\\(s\\) with missing or infinite"):
        classification_metrics([0, 1, 1], y_score=[0.1, float("nan"), 0.3])
    with pytest.raises(InvalidInput, match=r"give y_pred .* or y_score"):
        classification_metrics([0, 1])
    with pytest.raises(InvalidInput, match="pos_label 'x' is not one of the classes"):
        classification_metrics(y, y_score=s, pos_label="x")
    with pytest.raises(InvalidInput, match="task 'binary' needs two classes"):
        evaluate_predictions([0, 1, 2], [0, 1, 2], task="binary")


def test_multiclass_with_an_absent_class_averages_over_present(multiclass: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = multiclass
    keep = y != 2
    r = evaluate_predictions(y[keep], y_score=p[keep], labels=[0, 1, 2])
    both = [skm.roc_auc_score(y[keep] == c, p[keep][:, c]) for c in (0, 1)]
    assert r.metrics["roc_auc"] == pytest.approx(np.mean(both))
    assert any("have no rows in y_true" in w for w in r.warnings)
