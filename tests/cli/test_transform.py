"""``loopml transform``: predictions for files and datasets from the command line; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loopml import Workspace
from loopml.registry import register_model
from loopml.train import load_model_package
from tests.cli._run import run
from tests.train._data import churn, package


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model package (XGBoost with the default recipe), trained once for this module."""
    folder, _ = package(tmp_path_factory.mktemp("pkg"), churn(300, seed=0), "xgboost", {"num_round": 5})
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pkg: Path) -> Path:
    """A workspace with churn:1 and an input CSV of 800 records."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    with Workspace.open(tmp_path) as ws:
        register_model(ws, pkg, "churn")
    churn(800, seed=1).drop(columns="y").to_csv(tmp_path / "in.csv", index=False)
    return tmp_path


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_transform_writes_outputs_and_reports(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "transform", "churn:1", "--input", "in.csv", "--output", "preds",
                         "--executor", "inline", "--batch-rows", "300", "--join-input", "--output-filter", "$[0,-1]")
    assert code == 0, err
    assert "Transformed 800 records with churn:1" in out and "3 chunks" in out and "in.csv.out" in out
    got = pd.read_csv(project / "preds" / "in.csv.out")
    assert list(got.columns) == ["x1", "proba_1"] and len(got) == 800
    model = load_model_package(next((project / ".loopml" / "cache" / "models").iterdir()))
    df = churn(800, seed=1).drop(columns="y")
    assert got["proba_1"].round(12).tolist() == pd.Series(model.predict_proba(df)[:, 1]).round(12).tolist()

    # the same job again: done already, so nothing is computed; --json for scripts; another format
    code, out, err = run(capsys, "transform", "churn:1", "-i", "in.csv", "-o", "preds", "--executor", "inline",
                         "--batch-rows", "300", "--join-input", "--output-filter", "$[0,-1]", "--json")
    result = json.loads(out)
    assert code == 0 and result["chunks_skipped"] == 3 and result["rows_out"] == 800 and err == ""
    code, out, err = run(capsys, "transform", "churn:1", "-i", "in.csv", "-o", "preds-jsonl", "--executor",
                         "inline", "--format", "jsonl", "--json")
    assert code == 0, err
    lines = (project / "preds-jsonl" / "in.csv.out").read_text().splitlines()
    assert len(lines) == 800 and set(json.loads(lines[0])) == {"prediction", "proba_0", "proba_1"}


def test_bad_records_report_and_failure(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = churn(50, seed=2).drop(columns="y").astype(object)
    df.loc[7, "x1"] = "oops"
    df.to_csv(project / "bad.csv", index=False)
    msg = _one_line_error(capsys, "transform", "churn:1", "-i", "bad.csv", "-o", "out", "--executor", "inline")
    assert "1 of 50 records could not be predicted" in msg and "bad.csv.errors.jsonl" in msg
    assert not (project / "out" / "bad.csv.out").exists()
    code, out, err = run(capsys, "transform", "churn:1", "-i", "bad.csv", "-o", "out", "--executor", "inline",
                         "--max-error-ratio", "0.05")
    assert code == 0, err
    assert "1 bad records" in out and "bad.csv.errors.jsonl" in out


def test_one_line_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _one_line_error(capsys, "transform", "nope:1", "-i", "in.csv", "-o", "out")
    assert "no model named 'nope'" in msg
    msg = _one_line_error(capsys, "transform", "churn:1", "-i", "missing.csv", "-o", "out")
    assert "file not found: 'missing.csv'" in msg
    msg = _one_line_error(capsys, "transform", "churn:1", "-i", "in.csv", "-o", "out", "--executor", "spark")
    assert "executor 'spark' is not one of local, ray, inline" in msg
    msg = _one_line_error(capsys, "transform", "churn:9", "-i", "in.csv", "-o", "out")
    assert "churn" in msg and "9" in msg
    msg = _one_line_error(capsys, "transform", "churn:1", "-i", "in.csv", "-o", "out", "--input-filter", "$[1:x]")
    assert "is not a position" in msg
    code, _, err = run(capsys, "transform", "churn:1", "-i", "in.csv")
    assert code == 2 and "--output" in err
