from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import InvalidInput, NotFound, Workspace
from loopml.data import Catalog
from loopml.evaluate import evaluate_dataset, evaluations, load_evaluation
from loopml.evaluate.run import EVALUATION_CREATED
from loopml.store import EntityRef


@pytest.fixture
def scored(ws: Workspace) -> str:
    rng = np.random.default_rng(4)
    n = 300
    y = rng.integers(0, 2, n)
    s = np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1)
    df = pd.DataFrame({"churn": y, "score": s, "pred": (s >= 0.5).astype(int),
                       "prod": rng.integers(0, 2, n), "amount": rng.random(n)})
    df.loc[[3, 7], "score"] = np.nan
    return Catalog(ws).write("scored", df).ref


def test_evaluate_dataset_stores_result_and_report_with_lineage(ws: Workspace, scored: str, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "eval.html"
    res = evaluate_dataset(ws, "scored", "churn", prediction="pred", score="score",
                           costs={"cost_fp": 1, "cost_fn": 5, "predictions_per_day": 100}, out=out)
    info = Catalog(ws).get(scored)
    assert res.task == "binary" and res.n_rows == 298
    assert res.warnings[0] == "left out 2 of 300 rows with a missing value in ['churn', 'pred', 'score']"
    assert res.source["dataset"] == "scored:1" and res.source["dataset_id"] == info.id
    st = res.stored
    assert st is not None and st.out == str(out) and not list(out.parent.glob(".*tmp*"))
    assert out.read_bytes() == ws.artifacts.get_bytes(st.report_sha256)
    assert st.report_path is not None and Path(st.report_path).read_bytes() == out.read_bytes()
    back = load_evaluation(ws, st.result_sha256)
    assert back.metrics == res.metrics and back.business == res.business and back.stored is None
    [edge] = ws.lineage.downstream(info.entity, depth=1)
    assert (edge.relation, edge.dst) == ("evaluated_by", EntityRef("evaluation", st.result_sha256))
    assert EntityRef("evaluation_report", st.report_sha256) in {e.dst for e in ws.lineage.downstream(info.entity)}
    assert evaluations(ws, "scored:1") == [(st.result_sha256, st.report_sha256)]
    [event] = ws.events.list(type=EVALUATION_CREATED)
    assert event.payload["dataset"] == "scored:1" and event.payload["metrics"]["roc_auc"] == res.metrics["roc_auc"]
    # same data, same settings: the same artifacts, no new lineage
    again = evaluate_dataset(ws, "scored", "churn", prediction="pred", score="score",
                             costs={"cost_fp": 1, "cost_fn": 5, "predictions_per_day": 100})
    assert again.stored is not None and again.stored.result_sha256 == st.result_sha256
    assert len(evaluations(ws, "scored")) == 1


def test_baseline_column_from_the_costs(ws: Workspace, scored: str) -> None:
    res = evaluate_dataset(ws, scored, "churn", prediction="pred", costs={"cost_fn": 3, "baseline": "prod"})
    assert res.business is not None and res.business["scenarios"][0]["name"] == "baseline: prod"
    with pytest.raises(InvalidInput, match="baseline 'nope' is neither always-negative, always-positive nor a column"):
        evaluate_dataset(ws, scored, "churn", prediction="pred", costs={"baseline": "nope"})


def test_clustering_and_ranking_from_a_dataset(ws: Workspace) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": np.r_[rng.normal(0, 1, 50), rng.normal(8, 1, 50)], "y": rng.normal(0, 1, 100),
                       "cluster": [0] * 50 + [1] * 50, "label": ["a"] * 100})
    Catalog(ws).write("clusters", df)
    res = evaluate_dataset(ws, "clusters", None, prediction="cluster")
    assert res.task == "clustering" and res.source["features"] == ["x", "y"] and (res.metrics["silhouette"] or 0) > 0.5
    Catalog(ws).write("search", pd.DataFrame({"q": [1, 1, 1, 2, 2], "rel": [2, 0, 1, 0, 1],
                                              "s": [0.9, 0.5, 0.7, 0.3, 0.8]}))
    res = evaluate_dataset(ws, "search", "rel", score="s", group="q", k=[1, 3])
    assert res.task == "ranking" and res.metrics["precision@1"] == 1.0 and res.metrics["map@3"] == 1.0


def test_bad_input(ws: Workspace, scored: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"prediction column 'nope' is not in scored:1; its columns are \['churn'"):
        evaluate_dataset(ws, scored, "churn", prediction="nope")
    with pytest.raises(InvalidInput, match="target column 'x' is not in scored:1"):
        evaluate_dataset(ws, scored, "x", prediction="pred")
    with pytest.raises(InvalidInput, match="give the prediction column"):
        evaluate_dataset(ws, scored, "churn")
    with pytest.raises(NotFound, match="no dataset named 'missing'"):
        evaluate_dataset(ws, "missing", "churn", prediction="pred")
    with pytest.raises(InvalidInput, match="is a folder"):
        evaluate_dataset(ws, scored, "churn", prediction="pred", out=tmp_path)
    with pytest.raises(InvalidInput, match="costs: unknown key 'cost'"):
        evaluate_dataset(ws, scored, "churn", prediction="pred", costs={"cost": 1})
    assert evaluations(ws, scored) == []  # nothing half-written


track = pytest.importorskip("loopml.track")


def test_metrics_go_on_a_tracking_run(ws: Workspace, scored: str) -> None:
    tracker = track.Tracker(ws, capture_code_version=False)
    try:
        with tracker.start_run(experiment="churn") as run:
            run.log_metric("train_loss", 0.3)
            res = evaluate_dataset(ws, scored, "churn", prediction="pred", score="score", run_id=run,
                                   costs={"cost_fn": 2, "predictions_per_day": 10})
        assert res.stored is not None and res.stored.run_id == run.id
        info = tracker.get_run(run.id)
        assert info.metrics["eval.roc_auc"] == pytest.approx(res.metrics["roc_auc"])
        assert "eval.business.savings_per_day" in info.metrics and "train_loss" in info.metrics
        assert tracker.read_artifact(run.id, "evaluation/result.json") == res.to_json().encode()
        # a finished run: the evaluation goes on a run nested under it
        again = evaluate_dataset(ws, scored, "churn", prediction="pred", run_id=run.id)
        assert again.stored is not None and again.stored.run_id not in (None, run.id)
        child = tracker.get_run(again.stored.run_id)
        assert child.parent_run_id == run.id and child.metrics["eval.accuracy"] == again.metrics["accuracy"]
        assert EntityRef("evaluation", again.stored.result_sha256) in {
            e.dst for e in ws.lineage.downstream(EntityRef("run", child.id), depth=1)}
        with pytest.raises(NotFound, match="no tracking run 'run-nope'"):
            evaluate_dataset(ws, scored, "churn", prediction="pred", run_id="run-nope")
    finally:
        tracker.close()
