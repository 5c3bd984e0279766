"""``loopml models``: register, list, show (and the card), approve, reject, alias, export; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._run import run
from tests.train._data import churn


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    """A workspace with a dataset and one finished xgboost training run (its id)."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    churn(200).to_parquet(tmp_path / "churn.parquet")
    assert run(capsys, "data", "ingest", "churn.parquet", "--name", "churn")[0] == 0
    code, out, err = run(capsys, "train", "--algo", "xgboost", "--data", "churn", "--target", "y",
                         "--hp", "num_round=5", "--json", "--quiet")
    assert code == 0, err
    return tmp_path, json.loads(out)["run_id"]


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_models_lifecycle(project: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, run_id = project
    code, out, err = run(capsys, "models", "register", run_id, "--name", "churn", "--description", "first")
    assert code == 0, err
    assert "Registered churn:1" in out and "PendingManualApproval" in out and "loopml models approve churn:1" in out
    code, out, _ = run(capsys, "models", "register", run_id, "--name", "churn", "--approve", "--by", "ann", "--json")
    v2 = json.loads(out)
    assert code == 0 and v2["ref"] == "churn:2" and v2["approval_status"] == "Approved" and v2["approval_by"] == "ann"

    code, out, _ = run(capsys, "models", "approve", "churn:1", "--reason", "good enough", "--by", "bob")
    assert code == 0 and "churn:1" in out and "Approved" in out and "good enough" in out
    code, out, _ = run(capsys, "models", "alias", "churn:1", "production", "--json")
    assert code == 0 and json.loads(out)["aliases"] == ["production"]
    code, out, _ = run(capsys, "models", "alias", "churn:2", "staging")
    assert code == 0 and "churn@staging -> version 2" in out
    code, out, _ = run(capsys, "models", "reject", "churn:2", "--reason", "latency too high", "--json")
    rejected = json.loads(out)
    assert code == 0 and rejected["approval_status"] == "Rejected" and rejected["aliases"] == []

    code, out, _ = run(capsys, "models", "list", "--json")
    (model,) = json.loads(out)
    assert code == 0 and model["name"] == "churn" and model["versions"] == 2
    assert model["latest_approved"] == 1 and model["aliases"] == {"production": 1}
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and "churn" in out and "production: 1" in out
    code, out, _ = run(capsys, "models", "list", "churn")
    assert code == 0 and "Approved" in out and "Rejected" in out and run_id in out

    code, out, _ = run(capsys, "models", "show", "churn@production", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["ref"] == "churn:1" and shown["run_id"] == run_id
    assert {"src": f"run:{run_id}", "relation": "registered_as", "dst": f"model_version:{shown['id']}"} in shown["lineage"]
    code, out, _ = run(capsys, "models", "show", "churn")
    assert code == 0 and "churn:1" in out and "@production" in out and "approval history" in out
    assert "churn:1 (train)" in out
    code, out, _ = run(capsys, "models", "show", "churn:1", "--card")
    assert code == 0 and out.startswith("# Model card: churn:1\n") and "## Training data" in out

    code, out, err = run(capsys, "models", "export", "churn@production", "--format", "onnx", "--out", "edge")
    assert code == 0, err
    assert "Exported churn:1 as onnx" in out and "model.onnx" in out and "training data churn:1" in out
    assert (root / "edge" / "model.onnx").is_file()
    code, out, err = run(capsys, "models", "export", "churn:1", "--format", "mlflow", "--out", "mlf", "--json")
    assert code == 0, err
    assert "MLmodel" in json.loads(out)["files"] and (root / "mlf" / "model" / "manifest.json").is_file()

    code, out, _ = run(capsys, "models", "alias", "churn", "production", "--remove")
    assert code == 0 and "Removed alias production of churn" in out


def test_models_errors_are_one_line(project: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, run_id = project
    assert run(capsys, "models", "register", run_id, "--name", "churn")[0] == 0
    assert "no model named 'nope' (models: churn)" in _one_line_error(capsys, "models", "show", "nope")
    assert "model 'churn' has no version 7 (versions: 1)" in _one_line_error(capsys, "models", "show", "churn:7")
    assert "has no 'production' alias (aliases set: none)" in _one_line_error(capsys, "models", "show", "churn@production")
    assert "unknown alias 'prod'" in _one_line_error(capsys, "models", "alias", "churn:1", "prod")
    assert "approve it first (`loopml models approve churn:1`)" in _one_line_error(
        capsys, "models", "alias", "churn:1", "production")
    assert run(capsys, "models", "reject", "churn:1", "--reason", "bad")[0] == 0
    msg = _one_line_error(capsys, "models", "approve", "churn:1")
    assert "churn:1 was rejected by" in msg and "(bad); a rejected version stays rejected" in msg
    assert f"loopml models register {run_id} --name churn" in msg
    assert "no run 'run-0000feed'" in _one_line_error(capsys, "models", "register", "run-0000feed", "--name", "x")
    assert "unknown export format 'pmml'" in _one_line_error(
        capsys, "models", "export", "churn:1", "--format", "pmml", "--out", "x")
    code, _, err = run(capsys, "models", "reject", "churn:1")
    assert code == 2 and "--reason" in err
