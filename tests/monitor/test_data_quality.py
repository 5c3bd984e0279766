"""Baselines and data-quality runs through the workspace: datasets, models, endpoints, metrics, report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.errors import InvalidInput, NotFound
from loopml.monitor import (
    MONITOR_COMPLETED,
    baseline,
    get_result,
    list_results,
    read_baseline,
    run_data_quality,
)
from loopml.registry import register_model
from loopml.serve import endpoints as eps
from loopml.serve.capture import CaptureWriter
from tests.monitor._data import DRIFTED, FEATURES, make
from tests.registry._packages import record_run, train_package
from tests.train._data import churn


@pytest.fixture(scope="module")
def linear_pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_package(tmp_path_factory.mktemp("monitor-pkg"), churn(200), "linear", name="linear")


@pytest.fixture
def model_ws(ws: Workspace, linear_pkg: Path) -> Workspace:
    """A workspace with dataset churn:1 and model churn:1 trained on it."""
    data = Catalog(ws).write("churn", churn(400, seed=1))
    register_model(ws, record_run(ws, linear_pkg, data=data), "churn")
    return ws


def _capture(ws: Workspace, endpoint: str, frame: pd.DataFrame, *, model: str = "churn:1", batch: int = 50) -> None:
    w = CaptureWriter(ws, endpoint, flush_interval_s=0.05)
    cols = [str(c) for c in frame.columns]
    for start in range(0, len(frame), batch):
        part = frame.iloc[start:start + batch]
        body = part.to_json(orient="records", date_format="iso").encode()
        preds = json.dumps({"predictions": [{"prediction": 0, "probabilities": [0.5, 0.5]}] * len(part)}).encode()
        assert w.record(variant="AllTraffic", model=model, inference_id=f"r{start}", request_body=body,
                        request_content_type="application/json", response_body=preds,
                        response_content_type="application/json", latency_ms=1.0, input_columns=cols)
    w.close()


def test_baseline_of_a_dataset(ws: Workspace) -> None:
    v = Catalog(ws).write("gen", make(3000, 1))
    b = baseline(ws, "gen")
    assert (b.name, b.kind, b.dataset_ref, b.dataset_version_id, b.model_ref) == ("gen-1", "data_quality", "gen:1", v.id, None)
    stats, cons = read_baseline(ws, b)
    assert stats["dataset"]["item_count"] == 3000 and [f["name"] for f in stats["features"]] == FEATURES
    assert {f["inferred_type"] for f in cons["features"]} == {"Fractional", "String"}
    assert ws.lineage.targets(v.entity, "baselined_by", "monitor_baseline") == [b.entity]
    assert b.output_path(ws, "constraints.json") is not None
    only = baseline(ws, "gen:1", name="two", features=["num_00", "cat_0"])
    assert only.name == "two" and [f["name"] for f in only.details["features"]] == ["num_00", "cat_0"]
    frame = baseline(ws, make(200, 2)[["num_03"]], name="df")
    assert frame.dataset_ref is None and frame.details["item_count"] == 200


def test_baseline_bad_input(ws: Workspace) -> None:
    cat = Catalog(ws)
    cat.write("empty", pd.DataFrame({"x": pd.Series([], dtype="float64")}))
    cat.write("gen", make(50, 1))
    with pytest.raises(InvalidInput, match="empty:1 has no rows"):
        baseline(ws, "empty")
    with pytest.raises(InvalidInput, match=r"has no column\(s\) \['nope'\]"):
        baseline(ws, "gen", features=["nope"])
    with pytest.raises(NotFound, match="no dataset named 'zzz'"):
        baseline(ws, "zzz")
    with pytest.raises(InvalidInput, match="give a dataset"):
        baseline(ws)
    with pytest.raises(InvalidInput, match="baseline name"):
        baseline(ws, "gen", name="no spaces")
    with pytest.raises(InvalidInput, match="no rows"):
        baseline(ws, pd.DataFrame({"x": []}))


def test_baseline_of_a_models_training_data(model_ws: Workspace) -> None:
    ws = model_ws
    b = baseline(ws, model="churn:1")
    assert (b.dataset_ref, b.model_ref, b.name) == ("churn:1", "churn:1", "churn-1")
    names = [f["name"] for f in b.details["features"]]
    assert "y" not in names and {"x1", "x2", "city"} <= set(names)  # the model's inputs, not its target
    mv = ws.lineage.upstream(b.entity, depth=1)
    assert {e.src.kind for e in mv} == {"dataset_version", "model_version"}


def test_model_without_training_data(ws: Workspace, linear_pkg: Path) -> None:
    register_model(ws, linear_pkg, "bare")
    with pytest.raises(NotFound, match="no recorded training dataset"):
        baseline(ws, model="bare:1")


def test_run_on_a_dataset_writes_outputs_metrics_and_event(any_ws: Workspace) -> None:
    ws = any_ws
    cat = Catalog(ws)
    cat.write("gen", make(5000, 1))
    b = baseline(ws, "gen")
    cat.write("gen", make(5000, 2, drift=True))
    r = run_data_quality(ws, dataset="gen:2")  # the dataset's newest baseline by default
    assert r.status == "CompletedWithViolations" and r.baseline_id == b.id
    assert set(r.summary["flagged_features"]) == DRIFTED
    assert r.violation_count == len(r.summary["violations"]) >= 5
    assert set(r.outputs) == {"statistics.json", "constraint_violations.json", "report.html"}
    doc = json.loads(r.output(ws, "constraint_violations.json"))
    assert doc["drift"]["drifted_features"] == r.summary["drifted_features"]
    assert r.report_path and Path(r.report_path).read_bytes().startswith(b"<!DOCTYPE html>")
    dims = {"dataset": "gen:2", "monitor": "data_quality"}
    share = ws.metrics.query("dataset_drift_share", dimensions=dims)
    assert [p.value for p in share] == [pytest.approx(4 / 25)]
    assert ws.metrics.query("violations", dimensions=dims)[0].value == r.violation_count
    drift = ws.metrics.query("feature_baseline_drift_num_00", dimensions={**dims, "feature": "num_00"})
    assert drift and drift[0].value > 0.2
    nn = ws.metrics.query("feature_non_null_num_02", dimensions=dims)
    assert nn and 0.85 < nn[0].value < 0.9
    assert [e.payload["result_id"] for e in ws.events.list(type=MONITOR_COMPLETED)] == [r.id]
    # the unchanged version: completed, nothing flagged
    same = run_data_quality(ws, dataset="gen:1", baseline=b.name)
    assert same.status == "Completed" and same.violation_count == 0


def test_edited_constraints_file(ws: Workspace, tmp_path: Path) -> None:
    cat = Catalog(ws)
    cat.write("gen", make(3000, 1))
    b = baseline(ws, "gen")
    cat.write("gen", make(3000, 2, drift=True))
    cons = json.loads(b.output(ws, "constraints.json"))
    cons["features"] = [f for f in cons["features"] if f["name"] not in DRIFTED]
    path = tmp_path / "constraints.json"
    path.write_text(json.dumps(cons))
    r = run_data_quality(ws, dataset="gen:2", constraints=path)
    # drifted features are now unknown columns, nothing else is wrong
    assert {v["constraint_check_type"] for v in r.summary["violations"]} == {"extra_column_check"}
    assert {v["feature_name"] for v in r.summary["violations"]} == DRIFTED
    path.write_text("{")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        run_data_quality(ws, dataset="gen:2", constraints=path)
    with pytest.raises(NotFound, match="does not exist"):
        run_data_quality(ws, dataset="gen:2", constraints=tmp_path / "missing.json")


def test_endpoint_capture_window_and_no_data(model_ws: Workspace) -> None:
    ws = model_ws
    eps.deploy(ws, "churn-ep", model="churn:1", capture_percentage=100.0)
    b = baseline(ws, model="churn:1")
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    live = churn(300, seed=9).drop(columns=["y"])
    live["x1"] = live["x1"] + 1.5  # the model's main input drifts
    _capture(ws, "churn-ep", live)
    r = run_data_quality(ws, endpoint="churn-ep", since=before)  # the baseline of the model it serves
    assert r.baseline_id == b.id and r.summary["item_count"] == 300
    assert r.status == "CompletedWithViolations"
    assert r.summary["flagged_features"] == ["x1"]
    dims = {"endpoint": "churn-ep", "monitor": "data_quality", "feature": "x1"}
    assert ws.metrics.query("feature_baseline_drift_x1", dimensions=dims)[0].value > 0.3
    # a window with no captured data: NoData, no metrics, no crash
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    n_points = len(ws.metrics.query("dataset_drift_share"))
    empty = run_data_quality(ws, endpoint="churn-ep", since=later, until=later + timedelta(hours=1))
    assert empty.status == "NoData" and empty.violation_count == 0 and "no captured data" in empty.summary["message"]
    assert len(ws.metrics.query("dataset_drift_share")) == n_points
    assert [x.id for x in list_results(ws, target="churn-ep")] == [empty.id, r.id]
    assert get_result(ws, r.id).since == before


def test_endpoint_without_a_baseline_or_endpoint(model_ws: Workspace) -> None:
    ws = model_ws
    eps.deploy(ws, "ep", model="churn:1")
    _capture(ws, "ep", churn(20, seed=2).drop(columns=["y"]))
    with pytest.raises(NotFound, match=r"no data-quality baseline for endpoint 'ep' \(it serves churn:1\)"):
        run_data_quality(ws, endpoint="ep")
    with pytest.raises(NotFound, match="no endpoint named 'ghost'"):
        run_data_quality(ws, endpoint="ghost")
    with pytest.raises(InvalidInput, match="exactly one"):
        run_data_quality(ws)
    with pytest.raises(InvalidInput, match="exactly one"):
        run_data_quality(ws, endpoint="ep", dataset="churn:1")
    with pytest.raises(NotFound, match="no data_quality baseline named 'nope'"):
        run_data_quality(ws, endpoint="ep", baseline="nope")
    # a deleted endpoint's captured data can still be checked
    b = baseline(ws, "churn:1", features=["x1", "x2", "city"])
    eps.delete_endpoint(ws, "ep")
    r = run_data_quality(ws, endpoint="ep", baseline=b.id)
    assert r.status in ("Completed", "CompletedWithViolations") and r.summary["item_count"] == 20


@pytest.mark.slow
def test_report_renders_in_headless_chromium(ws: Workspace, tmp_path: Path) -> None:
    from tests._chromium import rendered_dom

    cat = Catalog(ws)
    cat.write("gen", make(2000, 1))
    baseline(ws, "gen")
    cat.write("gen", make(2000, 2, drift=True))
    out = tmp_path / "r.html"
    r = run_data_quality(ws, dataset="gen:2", out=out)
    page = out.read_text()
    assert r.report_path and Path(r.report_path).read_text() == page
    for feature in FEATURES:
        assert f'id="feature-{feature}"' in page
    dom = rendered_dom(page, tmp_path)
    for sec in ("summary", "violations", "drift", "features"):
        assert f'id="{sec}"' in dom
    assert "baseline_drift_check" in dom and "completeness_check" in dom
    assert "js-plotly-plot" in dom and dom.count('data-drawn="1"') >= 5
    assert np.isfinite(r.summary["drift_share"])
