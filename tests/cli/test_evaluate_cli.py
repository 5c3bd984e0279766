from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli._run import run
from tests.train._data import churn


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 2, n)
    s = np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1).round(4)
    pd.DataFrame({"churn": np.where(y == 1, "yes", "no"), "score": s,
                  "pred": np.where(s >= 0.5, "yes", "no"), "price": rng.normal(100, 10, n).round(2),
                  "price_hat": rng.normal(100, 10, n).round(2)}).to_csv(tmp_path / "preds.csv", index=False)
    (tmp_path / "costs.yaml").write_text(
        "cost_fp: 5\ncost_fn: 40\nbenefit_tp: 10\nprice_per_prediction: 0.01\n"
        "users_per_day: 1000\ndevelopment_cost: 20000\ncurrency: EUR\n")
    assert run(capsys, "data", "ingest", "preds.csv", "--name", "preds")[0] == 0
    return tmp_path


def test_evaluate_prints_metrics_business_and_writes_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "evaluate", "--data", "preds", "--target", "churn", "--prediction", "pred",
                         "--score", "score", "--costs", "costs.yaml", "--out", "r/eval.html",
                         "--latency-p50-ms", "3", "--latency-p99-ms", "12")
    assert code == 0, err
    assert "Evaluated preds:1: 200 rows, binary (inferred), positive class yes" in out
    assert "AUC-ROC" in out and "PR-AUC" in out and "Threshold " in out and "(best expected cost)" in out
    assert "always-negative" in out and "payback period (days)" in out and "ROI over the horizon" in out
    assert "model–business alignment" in out
    assert "Report: r/eval.html" in out
    page = (project / "r" / "eval.html").read_text()
    assert 'id="business"' in page and 'id="calibration"' in page

    code, out, _ = run(capsys, "evaluate", "--data", "preds:1", "--target", "churn", "--score", "score",
                       "--pos-label", "yes", "--threshold-by", "f1", "--json")
    data = json.loads(out)
    assert code == 0 and data["task"] == "binary" and data["pos_label"] == "yes"
    assert data["threshold"]["by"] == "f1" and data["info"]["decision_threshold"] == 0.5
    assert data["stored"]["out"] is None and Path(data["stored"]["report_path"]).exists()

    code, out, _ = run(capsys, "data", "show", "preds", "--json")
    assert {e["relation"] for e in json.loads(out)["lineage"]["downstream"]} == {"evaluated_by"}


def test_evaluate_regression_task(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "evaluate", "--data", "preds", "--target", "price", "--prediction", "price_hat",
                         "--task", "regression")
    assert code == 0, err
    assert "RMSE" in out and "R²" in out and "MAPE" in out and "business" not in out


def test_evaluate_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fails(*argv: str) -> str:
        code, _, err = run(capsys, "evaluate", *argv)
        assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    assert "nothing to evaluate named 'churn-model:3': model registry: no model named 'churn-model'" in fails(
        "churn-model:3", "--data", "preds")
    assert "nothing to evaluate named 'run-123'" in fails("run-123", "--data", "preds")
    assert "target column 'nope' is not in preds:1" in fails("--data", "preds", "--target", "nope", "--prediction", "pred")
    assert "no dataset named 'nosuch'" in fails("--data", "nosuch", "--target", "churn", "--prediction", "pred")
    assert "task must be one of" in fails("--data", "preds", "--target", "churn", "--prediction", "pred", "--task", "vision")
    (project / "bad.yaml").write_text("cost_fp: 5\npredictions_per_day: -3\n")
    assert "predictions_per_day must be a number above 0; got -3" in fails(
        "--data", "preds", "--target", "churn", "--prediction", "pred", "--costs", "bad.yaml")
    (project / "typo.yaml").write_text("cost_fn: 5\ncosts_fp: 1\n")
    assert "unknown key 'costs_fp' (did you mean 'cost_fp'?)" in fails(
        "--data", "preds", "--target", "churn", "--prediction", "pred", "--costs", "typo.yaml")
    assert "pos_label 'maybe' is not one of the classes" in fails(
        "--data", "preds", "--target", "churn", "--score", "score", "--pos-label", "maybe")
    assert "give the prediction column (--prediction) or the score column(s) (--score)" in fails(
        "--data", "preds", "--target", "churn")
    code, _, _ = run(capsys, "evaluate", "--target", "churn")
    assert code == 2
    code, _, err = run(capsys, "evaluate", "run-123")
    assert code == 2 and "Missing option '--data'" in err
    code, _, err = run(capsys, "evaluate", "--data", "preds", "--target", "churn", "--prediction", "pred",
                       "--latency-rows", "5")
    assert code == 2 and "--latency-rows applies to MODEL_OR_RUN" in err
    code, _, _ = run(capsys, "evaluate", "--data", "preds", "--k", "zero")
    assert code == 2


def test_evaluate_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "evaluate", "--help")
    assert code == 0
    for flag in ("MODEL_OR_RUN", "--data", "--target", "--prediction", "--score", "--costs", "--out", "--task", "--k",
                 "--latency-rows", "--json"):
        assert flag in out


def test_evaluate_a_model_by_run_package_and_registry_ref(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    churn(300, seed=0).to_parquet(project / "train.parquet")
    churn(200, seed=1).to_parquet(project / "test.parquet")
    for name in ("train", "test"):
        assert run(capsys, "data", "ingest", f"{name}.parquet", "--name", name)[0] == 0
    code, out, err = run(capsys, "train", "--algo", "xgboost", "--data", "train", "--target", "y",
                         "--hp", "num_round=5", "--hp", "max_depth=3", "--name", "cli-xgb", "--json", "--quiet")
    assert code == 0, err
    trained = json.loads(out)
    run_id, sha = trained["run_id"], trained["model_sha256"]

    # by run id: the model predicts, predict_one is timed, everything printed
    code, out, err = run(capsys, "evaluate", run_id, "--data", "test", "--costs", "costs.yaml",
                         "--out", "r/model.html")
    assert code == 0, err
    assert f"Evaluated {run_id} (cli-xgb) on test:1: 200 rows, binary, positive class 1" in out
    assert "Latency of predict_one over 200 records: p50 " in out
    assert "AUC-ROC" in out and "Threshold " in out and "payback period (days)" in out
    assert "model–business alignment" in out and "p50 ms" in out
    assert "Report: r/model.html" in out and "Logged to run run-" in out
    assert 'id="business"' in (project / "r" / "model.html").read_text()

    # by package id, as JSON
    code, out, err = run(capsys, "evaluate", sha, "--data", "test:1", "--latency-rows", "20", "--json")
    assert code == 0, err
    by_sha = json.loads(out)
    assert by_sha["source"]["model_kind"] == "model_package" and by_sha["source"]["training_run_id"] == run_id
    assert by_sha["business"]["latency"]["rows"] == 20 and by_sha["business"]["latency"]["source"] == "measured"
    [model_row] = by_sha["business"]["alignment"]
    assert model_row["latency_p50_ms"] == by_sha["business"]["latency"]["p50_ms"]

    # by registry ref, once registered, approved and in production
    for argv in (["register", run_id, "--name", "churn"], ["approve", "churn:1"], ["alias", "churn:1", "production"]):
        code, _, err = run(capsys, "models", *argv)
        assert code == 0, err
    code, out, err = run(capsys, "evaluate", "churn@production", "--data", "test", "--target", "y",
                         "--latency-rows", "0", "--json")
    assert code == 0, err
    by_ref = json.loads(out)
    assert by_ref["source"]["model"] == "churn:1" and by_ref["source"]["model_kind"] == "model_version"
    assert by_ref["metrics"] == by_sha["metrics"] and by_ref["business"] is None

    # stored predictions' flags do not mix with a model
    code, _, err = run(capsys, "evaluate", "churn@production", "--data", "test", "--prediction", "pred",
                       "--score", "score")
    assert code == 2 and "--prediction and --score do not apply when evaluating the model 'churn@production'" in err
    code, _, err = run(capsys, "evaluate", "churn@staging", "--data", "test")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "model 'churn' has no 'staging' alias" in err
