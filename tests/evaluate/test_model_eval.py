"""evaluate_model: a trained model, named by run, package id or registry ref, predicts a dataset version."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import InvalidInput, NotFound, Workspace
from loopml.data import Catalog
from loopml.evaluate import EvaluationResult, evaluate_model, evaluate_predictions, evaluations
from loopml.evaluate.run import EVALUATION_CREATED
from loopml.registry import approve, get_model_version, register_model, set_alias
from loopml.store import EntityRef
from loopml.track import Tracker
from loopml.train import Estimator, TrainingResult
from tests.train._data import churn, package

COSTS = {"cost_fp": 1, "cost_fn": 5, "benefit_tp": 2, "price_per_prediction": 0.01,
         "price_per_compute_second": 0.5, "predictions_per_day": 1000}


@dataclass
class Trained:
    ws: Workspace
    binary: TrainingResult
    regression: TrainingResult


def _prices(n: int, seed: int) -> pd.DataFrame:
    df = churn(n, seed=seed).drop(columns=["y"])
    df["price"] = 3.0 * df["x1"] + np.random.default_rng(seed).normal(size=n)
    return df


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    ws = Workspace.init(tmp_path_factory.mktemp("model-eval"))
    cat = Catalog(ws)
    cat.write("churn", churn(300, seed=0))
    cat.write("churn_test", churn(200, seed=1))
    cat.write("prices", _prices(300, seed=0))
    cat.write("prices_test", _prices(150, seed=1))
    with Estimator("xgboost", {"num_round": 5, "max_depth": 3}, target="y", ws=ws, experiment="eval",
                   reuse_process=True) as est:
        binary = est.fit("churn", run_name="churn-xgb")
        regression = est.clone(target="price").fit("prices", run_name="price-xgb")
    v = register_model(ws, binary, "churn")
    approve(ws, v.ref, by="alice")
    set_alias(ws, v.ref, "production", by="alice")
    yield Trained(ws, binary, regression)
    ws.close()


def _test_frame(ws: Workspace, ref: str) -> pd.DataFrame:
    return Catalog(ws).read_arrow(Catalog(ws).get(ref)).to_pandas()


def _same_metrics(got: EvaluationResult, want: EvaluationResult) -> None:
    assert got.metrics.keys() == want.metrics.keys()
    for k, v in want.metrics.items():
        assert got.metrics[k] == pytest.approx(v, nan_ok=True), k


def test_by_run_id_matches_the_models_own_predictions(trained: Trained) -> None:
    ws, result = trained.ws, trained.binary
    res = evaluate_model(ws, result.run_id, "churn_test", costs=COSTS, latency_rows=50)
    df = _test_frame(ws, "churn_test")
    m = result.model
    want = evaluate_predictions(df["y"].to_numpy(), m.predict(df), m.predict_proba(df), labels=m.classes,
                                costs=COSTS)
    assert res.task == "binary" and res.n_rows == 200 and res.pos_label == 1 and res.warnings == []
    _same_metrics(res, want)
    assert res.threshold is not None and want.threshold is not None
    assert res.threshold.threshold == want.threshold.threshold and res.threshold.by == "cost"
    src = res.source
    assert (src["model_kind"], src["model_ref"], src["model_sha256"]) == ("run", result.run_id, result.model_sha256)
    assert src["model"] == f"{result.run_id} (churn-xgb)" and src["training_run_id"] == result.run_id
    assert src["dataset"] == "churn_test:1" and src["target"] == "y"  # the model's target by default

    # the measured latency of predict_one, in the alignment table and the operating cost
    business = res.business
    assert business is not None
    lat = business["latency"]
    assert lat["source"] == "measured" and lat["rows"] == 50 and 0 < lat["p50_ms"] <= lat["p99_ms"]
    model_row = next(a for a in business["alignment"] if a["name"] == "model")
    assert (model_row["latency_p50_ms"], model_row["latency_p99_ms"]) == (lat["p50_ms"], lat["p99_ms"])
    assert model_row["metrics"]["roc_auc"] == res.metrics["roc_auc"]
    baseline = business["alignment"][0]
    assert baseline["name"] == "always-negative" and baseline["latency_p50_ms"] is None
    operating = business["summary"]["operating_cost_per_prediction"]
    assert operating == pytest.approx(0.01 + 0.5 * lat["mean_ms"] / 1000)

    # stored like evaluate_dataset, linked from the dataset version, the run and the package
    st = res.stored
    assert st is not None and Path(st.report_path or "").exists()
    evaluation = EntityRef("evaluation", st.result_sha256)
    sources = {(e.src.kind, e.src.id) for e in ws.lineage.upstream(evaluation, depth=1)
               if e.relation == "evaluated_by"}
    test_info = Catalog(ws).get("churn_test")
    assert {(test_info.entity.kind, test_info.id), ("run", result.run_id),
            ("model_package", result.model_sha256)} <= sources
    assert (st.result_sha256, st.report_sha256) in evaluations(ws, "churn_test")
    event = [e for e in ws.events.list(type=EVALUATION_CREATED) if e.entity.id == st.result_sha256][-1]
    assert event.payload["model_sha256"] == result.model_sha256 and event.payload["model_kind"] == "run"

    # the metrics go on a run nested under the training run
    tracker = Tracker(ws, capture_code_version=False)
    try:
        child = tracker.get_run(st.run_id or "")
        assert child.parent_run_id == result.run_id and child.name == f"evaluate {result.model_sha256[:12]} on churn_test:1"
        assert child.metrics["eval.roc_auc"] == pytest.approx(res.metrics["roc_auc"])
        assert child.metrics["eval.latency.p50_ms"] == pytest.approx(lat["p50_ms"])
        assert child.tags["loopml.evaluation.model_sha256"] == result.model_sha256
        assert "model.sha256" not in child.tags  # an evaluation run is not a training run
        # ... which holds no model: evaluating it is refused
        with pytest.raises(NotFound, match=rf"run {child.id} \(.*\) has no model package"):
            evaluate_model(ws, child.id, "churn_test")
    finally:
        tracker.close()


def test_by_package_id_and_registry_ref(trained: Trained) -> None:
    ws, result = trained.ws, trained.binary
    by_run = evaluate_model(ws, result.run_id, "churn_test", latency_rows=0)
    by_sha = evaluate_model(ws, result.model_sha256, "churn_test:1", latency_rows=0)
    assert by_run.business is None and by_sha.business is None  # no costs, no latency
    _same_metrics(by_sha, by_run)
    assert by_sha.source["model_kind"] == "model_package"
    assert by_sha.source["model"] == f"package {result.model_sha256[:12]}"
    assert by_sha.source["training_run_id"] == result.run_id  # found through the manifest

    version = get_model_version(ws, "churn@production")
    res = evaluate_model(ws, "churn@production", "churn_test", latency_rows=20)
    _same_metrics(res, by_run)
    assert (res.source["model"], res.source["model_version"], res.source["model_kind"]) == (
        "churn:1", "churn:1", "model_version")
    assert res.business is not None and res.business["alignment"][0]["latency_p50_ms"] is not None
    assert res.stored is not None
    edges = ws.lineage.downstream(version.entity, depth=1)
    assert ("evaluated_by", EntityRef("evaluation", res.stored.result_sha256)) in {(e.relation, e.dst) for e in edges}
    # plain NAME: the newest approved version
    assert evaluate_model(ws, "churn", "churn_test", latency_rows=0).source["model_version"] == "churn:1"


def test_threshold_and_a_run_given(trained: Trained) -> None:
    ws, result = trained.ws, trained.binary
    with Tracker(ws, capture_code_version=False) as tracker, tracker.start_run(experiment="review") as run:
        res = evaluate_model(ws, result.run_id, "churn_test", threshold=0.3, run_id=run, latency_rows=0)
    assert res.info["decision_threshold"] == 0.3
    df = _test_frame(ws, "churn_test")
    proba = result.model.predict_proba(df)[:, 1]
    assert res.metrics["recall"] == pytest.approx(float(np.mean(proba[df["y"] == 1] >= 0.3)))
    assert res.stored is not None and res.stored.run_id == run.id


def test_regression_model(trained: Trained) -> None:
    ws, result = trained.ws, trained.regression
    res = evaluate_model(ws, result.run_id[:12], "prices_test", costs={"price_per_prediction": 0.002},
                         latency_rows=30)
    df = _test_frame(ws, "prices_test")
    want = evaluate_predictions(df["price"].to_numpy(), result.model.predict(df), task="regression")
    assert res.task == "regression" and res.n_rows == 150
    _same_metrics(res, want)
    assert res.business is not None and res.business["scenarios"][0]["cost_per_prediction"] == 0.002
    [row] = res.business["alignment"]
    assert row["name"] == "model" and row["latency_p50_ms"] > 0 and row["metrics"]["rmse"] == res.metrics["rmse"]


def test_bad_references_and_data(trained: Trained) -> None:
    ws = trained.ws
    with pytest.raises(NotFound) as e:
        evaluate_model(ws, "nosuch", "churn_test")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("nothing to evaluate named 'nosuch': ")
    assert "model registry: no model named 'nosuch'" in msg and "runs: no run 'nosuch'" in msg
    assert "model packages: not a package id" in msg
    with pytest.raises(NotFound, match="model packages: no package 0000000000"):
        evaluate_model(ws, "0" * 64, "churn_test")
    with pytest.raises(NotFound, match="model 'churn' has no 'staging' alias"):
        evaluate_model(ws, "churn@staging", "churn_test")
    with pytest.raises(NotFound, match="model 'churn' has no version 9"):
        evaluate_model(ws, "churn:9", "churn_test")
    with pytest.raises(NotFound, match="no dataset named 'nodata'"):
        evaluate_model(ws, "churn", "nodata")
    # the data must carry what the model reads, and only classes it knows
    Catalog(ws).write("narrow", churn(40, seed=5)[["x1", "y"]])
    with pytest.raises(InvalidInput, match=r"churn:1 reads column\(s\) \['x2', 'city', 'day'\] that narrow:1"):
        evaluate_model(ws, "churn", "narrow")
    shifted = churn(40, seed=5)
    shifted["y"] += 1
    Catalog(ws).write("shifted", shifted)
    with pytest.raises(InvalidInput, match=r"holds class\(es\) \[2\] that churn:1 was not trained on"):
        evaluate_model(ws, "churn", "shifted")
    with pytest.raises(InvalidInput, match="target column 'nope' is not in churn_test:1"):
        evaluate_model(ws, "churn", "churn_test", target="nope")
    with pytest.raises(InvalidInput, match="latency_rows must be a whole number"):
        evaluate_model(ws, "churn", "churn_test", latency_rows=-1)


def test_missing_targets_and_one_class(trained: Trained) -> None:
    ws = trained.ws
    df = churn(60, seed=6)
    df["y"] = 1
    df = df.astype({"y": "float64"})
    df.loc[[0, 1], "y"] = np.nan
    df["y"] = df["y"].astype("Int64")
    Catalog(ws).write("ones", df)
    res = evaluate_model(ws, "churn", "ones", latency_rows=0)
    assert res.n_rows == 58 and res.source["rows_left_out"] == 2
    assert res.warnings[:2] == ["left out 2 of 60 rows with a missing value in ['y']",
                                "the target holds one class only: AUC-ROC, PR-AUC and the curves are left out"]
    assert res.metrics.get("roc_auc") is None and res.metrics["accuracy"] is not None


def test_other_kinds_of_model(ws: Workspace, tmp_path: Path) -> None:
    """Ranking and clustering packages (trained in this process) evaluate too; others are refused."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    ranked = pd.DataFrame({"q": np.repeat(np.arange(20), 10), "x": x, "z": rng.normal(size=200),
                           "rel": (x > 0.5).astype(int) + (x > 1.2)})
    folder, _ = package(tmp_path, ranked, "xgboost", {"num_round": 3}, target="rel", roles={"group": "q"},
                        name="rank")
    register_model(ws, str(folder), "rank")
    Catalog(ws).write("queries", ranked)
    res = evaluate_model(ws, "rank", "queries", k=[3], latency_rows=10)
    assert res.task == "ranking" and res.source["group"] == "q" and res.metrics["ndcg@3"] is not None

    blobs = pd.DataFrame({"a": np.r_[rng.normal(0, 1, 40), rng.normal(8, 1, 40)], "b": rng.normal(size=80)})
    folder, _ = package(tmp_path, blobs, "kmeans", {"k": 2}, target=None, name="clusters")
    register_model(ws, str(folder), "clusters")
    Catalog(ws).write("blobs", blobs)
    res = evaluate_model(ws, "clusters", "blobs", latency_rows=0)
    assert res.task == "clustering" and res.metrics["n_clusters"] == 2 and (res.metrics["silhouette"] or 0) > 0.5

    folder, _ = package(tmp_path, blobs, "isolation_forest", {"num_trees": 10}, target=None, name="iforest")
    register_model(ws, str(folder), "odd")
    with pytest.raises(InvalidInput, match=r"odd:1 \(isolation_forest\) solves anomaly_detection; evaluate_model takes binary"):
        evaluate_model(ws, "odd", "blobs")


def test_baseline_model_from_the_costs_scores_the_same_rows(trained: Trained) -> None:
    ws = trained.ws
    # the challenger: a second, weaker model registered beside the champion
    with Estimator("xgboost", {"num_round": 1, "max_depth": 1}, target="y", ws=ws, experiment="eval") as est:
        weak = est.fit("churn", run_name="churn-weak")
    register_model(ws, weak, "churn")
    costs = {**COSTS, "baseline": "model:churn@production"}
    res = evaluate_model(ws, "churn:2", "churn_test", costs=costs, latency_rows=0)
    df = _test_frame(ws, "churn_test")
    champion = trained.binary.model
    want = evaluate_predictions(df["y"].to_numpy(), weak.model.predict(df), weak.model.predict_proba(df),
                                labels=weak.model.classes, costs={**COSTS, "baseline": "champion"},
                                baseline_pred=champion.predict(df))
    got_rows = {r["name"]: r for r in res.business["scenarios"]}
    want_rows = {r["name"]: r for r in want.business["scenarios"]}
    got_base, want_base = got_rows["baseline: model:churn@production"], want_rows["baseline: champion"]
    assert (got_base["tp"], got_base["fp"], got_base["tn"], got_base["fn"]) == (
        want_base["tp"], want_base["fp"], want_base["tn"], want_base["fn"])
    assert got_base["value_per_prediction"] == pytest.approx(want_base["value_per_prediction"])
    with pytest.raises(InvalidInput, match="solves regression, not binary"):
        evaluate_model(ws, "churn:2", "churn_test", costs={**COSTS, "baseline": f"model:{trained.regression.run_id}"})
    with pytest.raises(NotFound):
        evaluate_model(ws, "churn:2", "churn_test", costs={**COSTS, "baseline": "model:nope:1"})
