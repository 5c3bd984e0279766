"""Model quality: metrics per problem type, constraints, and end-to-end runs over capture + ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from loopml import Workspace
from loopml.errors import InvalidInput
from loopml.monitor import get_result
from loopml.monitor.ground_truth import ingest_ground_truth
from loopml.monitor.quality import (
    baseline_metrics_of,
    check_quality,
    quality_constraints,
    quality_metrics,
    run_model_quality,
)
from loopml.registry import get_model_version, load_model
from tests.monitor._quality_data import (
    capture,
    frame,
    registered,
    regression_frame,
    write_ground_truth,
)


# -- pure metrics ------------------------------------------------------------------------------------
def test_binary_metrics_match_sklearn() -> None:
    r = np.random.default_rng(1)
    y = r.integers(0, 2, 300)
    score = np.clip(y * 0.3 + r.random(300) * 0.7, 0, 1)
    pred = (score > 0.5).astype(int)
    proba = np.column_stack([1 - score, score])
    m = quality_metrics("binary", y, pred, proba=proba, classes=[0, 1])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["f0_5"] == pytest.approx(skm.fbeta_score(y, pred, beta=0.5))
    assert m["f2"] == pytest.approx(skm.fbeta_score(y, pred, beta=2))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert m["au_prc"] == pytest.approx(skm.average_precision_score(y, score))
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert m["false_positive_rate"] == pytest.approx(fp / (fp + tn))
    assert m["true_negative_rate"] == pytest.approx(tn / (fp + tn))
    assert m["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    # the best constant classifier always says the majority class
    majority = int(np.bincount(y).argmax())
    assert m["accuracy_best_constant_classifier"] == pytest.approx((y == majority).mean())
    assert m["recall_best_constant_classifier"] == (1.0 if majority == 1 else 0.0)


def test_text_classes_positive_is_the_last_class() -> None:
    m = quality_metrics("binary", ["no", "yes", "yes", "no"], ["no", "yes", "no", "yes"], classes=["no", "yes"])
    assert (m["precision"], m["recall"], m["accuracy"]) == (0.5, 0.5, 0.5)
    assert math.isnan(m["auc"])  # no probabilities
    with pytest.raises(InvalidInput, match=r"label\(s\) \['maybe'\] are not classes"):
        quality_metrics("binary", ["maybe"], ["no"], classes=["no", "yes"])


def test_multiclass_and_regression_match_sklearn() -> None:
    r = np.random.default_rng(2)
    y = r.choice(["a", "b", "c"], 200)
    p = np.where(r.random(200) < 0.7, y, r.choice(["a", "b", "c"], 200))
    m = quality_metrics("multiclass", y, p, classes=["a", "b", "c"])
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, p, average="weighted"))
    assert m["weighted_precision"] == pytest.approx(skm.precision_score(y, p, average="weighted"))
    assert m["weighted_recall"] == pytest.approx(skm.recall_score(y, p, average="weighted"))
    assert m["weighted_f2"] == pytest.approx(skm.fbeta_score(y, p, beta=2, average="weighted"))
    assert sum(sum(row.values()) for row in m["confusion_matrix"].values()) == 200
    assert m["accuracy_best_constant_classifier"] == pytest.approx(pd.Series(y).value_counts().iloc[0] / 200)

    t = r.normal(size=100)
    q = t + r.normal(scale=0.5, size=100)
    reg = quality_metrics("regression", t, q)
    assert reg == pytest.approx({"mae": skm.mean_absolute_error(t, q), "mse": skm.mean_squared_error(t, q),
                                 "rmse": math.sqrt(skm.mean_squared_error(t, q)), "r2": skm.r2_score(t, q)})
    with pytest.raises(InvalidInput, match="not 'ranking'"):
        quality_metrics("ranking", [1], [1])
    with pytest.raises(InvalidInput, match="no rows"):
        quality_metrics("regression", [], [])


def test_constraints_tolerances_and_operators() -> None:
    c = quality_constraints("binary", {"auc": 0.9, "accuracy": 0.8, "logloss": 0.3},
                            {"accuracy": 0.2, "f1": {"threshold": 0.5, "comparison_operator": "<="}})
    block = c["binary_classification_constraints"]
    assert block["auc"] == {"threshold": 0.85, "comparison_operator": "LessThanThreshold", "baseline": 0.9}
    assert block["accuracy"]["threshold"] == pytest.approx(0.6)
    assert block["f1"] == {"threshold": 0.5, "comparison_operator": "LessThanOrEqualToThreshold"}
    assert "logloss" not in block  # not a model-quality metric checked by default
    v = check_quality({"auc": 0.84, "accuracy": 0.61, "f1": 0.5}, c)
    assert [(x["metric_name"], x["constraint_check_type"]) for x in v] == [
        ("auc", "LessThanThreshold"), ("f1", "LessThanOrEqualToThreshold")]
    # errors degrade upwards, by a share of the baseline
    r = quality_constraints("regression", {"rmse": 2.0, "r2": 0.8})["regression_constraints"]
    assert r["rmse"] == {"threshold": 2.2, "comparison_operator": "GreaterThanThreshold", "baseline": 2.0}
    assert r["r2"]["threshold"] == pytest.approx(0.75)
    assert check_quality({"rmse": 2.3, "r2": float("nan")}, {"regression_constraints": r})[0]["metric_name"] == "rmse"
    with pytest.raises(InvalidInput, match="comparison operator 'about'"):
        quality_constraints("binary", {}, {"auc": {"threshold": 1, "comparison_operator": "about"}})
    with pytest.raises(InvalidInput, match="needs a baseline value of auc"):
        quality_constraints("binary", {}, {"auc": 0.1})
    with pytest.raises(InvalidInput, match="tolerance of auc must be a number"):
        quality_constraints("binary", {"auc": 0.9}, {"auc": -1})


# -- end to end ----------------------------------------------------------------------------------------
def _serve(ws: Workspace, tmp_path: Path) -> tuple[Workspace, str, pd.DataFrame, list[str]]:
    """A registered xgboost model whose predictions of 200 rows were captured on endpoint 'ep'."""
    df = frame(400)
    v = registered(ws, tmp_path, df)
    live = frame(200, seed=7)
    ids = [f"req-{i}" for i in range(len(live))]
    capture(ws, "ep", v.ref, live, ids)
    return ws, v.ref, live, ids


@pytest.fixture
def served(ws: Workspace, tmp_path: Path) -> tuple[Workspace, str, pd.DataFrame, list[str]]:
    return _serve(ws, tmp_path)


def test_quality_end_to_end(any_ws: Workspace, tmp_path: Path) -> None:
    ws, ref, live, ids = _serve(any_ws, tmp_path)
    # nothing labelled yet
    res = run_model_quality(ws, "ep")
    assert res.status == "NoData" and "none of the 200 captured predictions" in res.summary["message"]
    assert ws.metrics.query("accuracy", dimensions={"endpoint": "ep"}) == []

    # labels for 150 of the 200 requests, plus 2 unknown ids
    gt = write_ground_truth(tmp_path / "gt.jsonl", [*ids[:150], "nope-1", "nope-2"], [*live["y"][:150], 1, 0])
    up = ingest_ground_truth(ws, "ep", gt)
    assert (up.matched, up.unknown) == (150, 2)

    res = run_model_quality(ws, "ep")
    s = res.summary
    assert s["rows"] == {"captured": 200, "labelled": 150, "unlabelled": 50}
    assert s["problem_type"] == "BinaryClassification" and s["model"] == ref
    model = load_model(ws, ref)
    truth = live["y"][:150].to_numpy()
    proba = model.predict_proba(live.iloc[:150])[:, 1]
    pred = model.predict(live.iloc[:150])
    assert s["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert s["metrics"]["auc"] == pytest.approx(skm.roc_auc_score(truth, proba), abs=1e-6)
    # the baseline comes from the training metrics of the version
    info = get_model_version(ws, ref)
    assert s["baseline"]["source"].startswith("train metrics of churn:1")
    assert s["baseline"]["metrics"]["auc"] == pytest.approx(info.metrics["train:auc"])
    assert set(res.outputs) == {"statistics.json", "constraints.json", "constraint_violations.json"}
    stats = json.loads(res.output(ws, "statistics.json"))
    assert stats["dataset"]["item_count"] == 150
    assert stats["binary_classification_metrics"]["auc"]["value"] == pytest.approx(s["metrics"]["auc"])
    cons = json.loads(res.output(ws, "constraints.json"))["binary_classification_constraints"]
    assert cons["auc"]["comparison_operator"] == "LessThanThreshold"
    assert get_result(ws, res.id).status == res.status
    points = ws.metrics.query("accuracy", dimensions={"endpoint": "ep", "monitor": "model_quality"})
    assert [p.value for p in points] == [pytest.approx(s["metrics"]["accuracy"])]

    # a given baseline that the live window cannot reach: violations
    res2 = run_model_quality(ws, "ep", baseline_metrics={"auc": 0.999, "accuracy": 0.99}, thresholds={"auc": 0.01})
    assert res2.status == "CompletedWithViolations"
    assert {v["metric_name"] for v in res2.summary["violations"]} == {"auc", "accuracy"}
    viol = json.loads(res2.output(ws, "constraint_violations.json"))["violations"]
    assert viol[0]["description"].startswith("Metric ") and "LessThanThreshold" in viol[0]["description"]
    assert len(ws.metrics.query("accuracy", dimensions={"endpoint": "ep"})) == 2

    # an explicit constraint that holds: no violation
    res3 = run_model_quality(ws, "ep", baseline_metrics={},
                             thresholds={"accuracy": {"threshold": 0.3, "comparison_operator": "LessThanThreshold"}})
    assert res3.status == "Completed" and res3.violation_count == 0

    # a window before the capture: NoData
    old = run_model_quality(ws, "ep", until=pd.Timestamp("2000-01-01", tz="UTC").to_pydatetime())
    assert old.status == "NoData" and "no captured requests" in old.summary["message"]


def test_baseline_from_a_stored_evaluation(served: tuple[Workspace, str, pd.DataFrame, list[str]]) -> None:
    ws, ref, _, _ = served
    from loopml.data.catalog import Catalog
    from loopml.evaluate import evaluate_model

    Catalog(ws).write("holdout", frame(150, seed=3))
    ev = evaluate_model(ws, ref, "holdout", latency_rows=0)
    base, source = baseline_metrics_of(ws, get_model_version(ws, ref))
    assert source.startswith("evaluation ")
    assert base["auc"] == pytest.approx(ev.metrics["roc_auc"]) and base["f1"] == pytest.approx(ev.metrics["f1"])


def test_labels_that_are_not_classes_are_refused(served: tuple[Workspace, str, pd.DataFrame, list[str]]) -> None:
    ws, _, _, ids = served
    ingest_ground_truth(ws, "ep", pd.DataFrame({"inference_id": ids[:3], "label": ["1", "yes", "0"]}))
    with pytest.raises(InvalidInput, match=r"ground-truth labels hold\(s\) value\(s\) \['yes'\]"):
        run_model_quality(ws, "ep")


def test_regression_quality_and_batched_requests(ws: Workspace, tmp_path: Path) -> None:
    df = regression_frame(300)
    v = registered(ws, tmp_path, df, "xgboost", {"num_round": 30, "max_depth": 3}, name="price")
    live = regression_frame(40, seed=5)
    # 10 requests of 4 rows: ids req-k, req-k:1, req-k:2, req-k:3
    capture(ws, "price-ep", v.ref, live, [f"req-{i}" if i % 4 == 0 else "" for i in range(40)], batch=4)
    ids = [f"req-{i - i % 4}" + (f":{i % 4}" if i % 4 else "") for i in range(40)]
    ingest_ground_truth(ws, "price-ep", pd.DataFrame({"inference_id": ids, "label": live["y"].astype(str)}))
    res = run_model_quality(ws, "price-ep", thresholds={"rmse": {"threshold": 0.01, "comparison_operator": ">"}})
    pred = load_model(ws, v.ref).predict(live)
    assert res.summary["problem_type"] == "Regression" and res.summary["rows"]["labelled"] == 40
    assert res.summary["metrics"]["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(live["y"], pred)))
    assert res.status == "CompletedWithViolations"
    assert "rmse" in {v["metric_name"] for v in res.summary["violations"]}
    assert set(res.summary["baseline"]["metrics"]) >= {"rmse", "mae", "r2"}
