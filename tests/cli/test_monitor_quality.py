"""``loopml monitor ground-truth | quality | bias | attribution-baseline | attribution``; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml import Workspace
from loopml.cli.monitor_quality import parse_constraints
from loopml.data.catalog import Catalog
from loopml.errors import InvalidInput
from tests.cli._run import run
from tests.monitor._quality_data import capture, frame, registered, write_ground_truth


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A workspace with a registered model churn:1, dataset 'people', and 100 captured requests on 'ep'."""
    ws = Workspace.init(tmp_path)
    try:
        df = frame(300)
        v = registered(ws, tmp_path, df)
        Catalog(ws).write("people", df)
        live = frame(100, seed=4)
        ids = [f"r{i}" for i in range(100)]
        capture(ws, "ep", v.ref, live, ids)
        write_ground_truth(tmp_path / "gt.jsonl", [*ids[:80], "ghost"], [*live["y"][:80], 1])
    finally:
        ws.close()
    monkeypatch.chdir(tmp_path)
    return tmp_path, ids


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_ground_truth_and_quality(project: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "monitor", "quality", "ep")
    assert code == 0, err
    assert "NoData" in out and "ground truth" in out

    code, out, err = run(capsys, "monitor", "ground-truth", "ep", "gt.jsonl")
    assert code == 0, err
    assert "Stored 81 label(s)" in out and "80 match captured requests, 1 unknown" in out and "ghost" in out

    code, out, err = run(capsys, "monitor", "quality", "ep", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["kind"] == "model_quality" and res["summary"]["rows"]["labelled"] == 80
    assert 0.5 < res["summary"]["metrics"]["auc"] <= 1.0

    code, out, err = run(capsys, "monitor", "quality", "ep", "--threshold", "auc>0.01", "--threshold", "accuracy=0.5")
    assert code == 0, err
    assert "CompletedWithViolations" in out and "auc" in out and "best constant" in out
    assert "Metric auc with" in out

    code, out, _ = run(capsys, "monitor", "quality", "ep", "--since", "1d", "--baseline-metric", "accuracy=0.99")
    assert "CompletedWithViolations" in out and "given" in out

    assert "--threshold 'auc~1' must look like" in _one_line_error(capsys, "monitor", "quality", "ep", "--threshold", "auc~1")
    assert "--since" in _one_line_error(capsys, "monitor", "quality", "ep", "--since", "yesterday")
    assert "no captured requests" in _one_line_error(capsys, "monitor", "ground-truth", "other", "gt.jsonl")
    assert "no ground-truth file" in _one_line_error(capsys, "monitor", "ground-truth", "ep", "missing.jsonl")


def test_bias(project: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "monitor", "bias", "--data", "people", "--label", "y", "--positive", "1",
                         "--facet", "city", "--facet-value", "paris", "--model", "churn:1")
    assert code == 0, err
    assert "Completed" in out and "DPPL" in out and "Disparate Impact (DI)" in out and "pre-training" in out
    code, out, err = run(capsys, "monitor", "bias", "--data", "people:1", "--label", "y", "--positive", "1",
                         "--facet", "x2", "--facet-threshold", "0.5", "--threshold", "CI=0.1", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] == "CompletedWithViolations" and res["summary"]["post_training"] is None
    # over the endpoint's labelled predictions
    assert run(capsys, "monitor", "ground-truth", "ep", "gt.jsonl")[0] == 0
    code, out, err = run(capsys, "monitor", "bias", "ep", "--positive", "1", "--facet", "city",
                         "--facet-value", "nice", "--json")
    assert code == 0, err
    assert json.loads(out)["summary"]["counts"]["n_a"] + json.loads(out)["summary"]["counts"]["n_d"] == 80

    assert "facet column 'race' is not in the data" in _one_line_error(
        capsys, "monitor", "bias", "--data", "people", "--label", "y", "--positive", "1", "--facet", "race",
        "--facet-value", "x")
    assert "give --facet-value" in _one_line_error(
        capsys, "monitor", "bias", "--data", "people", "--label", "y", "--positive", "1", "--facet", "city")
    assert "either an endpoint or --data" in _one_line_error(
        capsys, "monitor", "bias", "--positive", "1", "--facet", "city", "--facet-value", "x")


def test_attribution(project: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "monitor", "attribution-baseline", "churn:1", "--data", "people")
    assert code == 0, err
    assert "Stored attribution baseline churn-1-attribution" in out and "tree_shap" in out and "x1" in out
    code, out, err = run(capsys, "monitor", "attribution", "ep")
    assert code == 0, err
    assert "NDCG" in out and "baseline rank" in out and "Completed" in out
    code, out, err = run(capsys, "monitor", "attribution", "--data", "people", "--baseline", "churn-1-attribution",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["summary"]["ndcg"] == pytest.approx(1.0)
    assert "no attribution baseline named 'nope'" in _one_line_error(
        capsys, "monitor", "attribution", "--data", "people", "--baseline", "nope")
    assert "aggregation 'max'" in _one_line_error(
        capsys, "monitor", "attribution-baseline", "churn:1", "--data", "people", "--agg", "max")


def test_parse_constraints() -> None:
    assert parse_constraints(["f1<=0.5", "mae=0.2"]) == {
        "f1": {"threshold": 0.5, "comparison_operator": "LessThanOrEqualToThreshold"}, "mae": 0.2}
    with pytest.raises(InvalidInput, match="is not a number"):
        parse_constraints(["auc<1.2.3"])
