from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml.cli import main
from tests.train._data import churn


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    churn(300, seed=0).to_parquet(tmp_path / "churn.parquet")
    churn(100, seed=1).to_parquet(tmp_path / "val.parquet")
    for name in ("churn", "val"):
        assert run(capsys, "data", "ingest", f"{name}.parquet", "--name", name)[0] == 0
    return tmp_path


def test_train_prints_logs_and_metrics(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "--algo", "xgboost", "--data", "churn", "--validation", "val",
                         "--target", "y", "--hp", "num_round=8", "--hp", "max_depth=3", "--experiment", "cli",
                         "--name", "from-cli")
    assert code == 0, err
    assert "[from-cli] train data churn:1: 300 rows" in err  # live log lines on stderr
    assert "Trained xgboost (binary)" in out and "validation" in out and "auc" in out

    code, out, _ = run(capsys, "runs", "list", "--experiment", "cli", "--json")
    runs = json.loads(out)
    assert code == 0 and runs[0]["status"] == "FINISHED" and runs[0]["params"]["max_depth"] == "3"


def test_train_json_and_quiet(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "recipe.yaml").write_text("steps:\n  - kind: one_hot\n    columns: [city]\n")
    code, out, err = run(capsys, "train", "--algo", "linear", "--data", "churn", "--target", "y",
                         "--recipe", "recipe.yaml", "--hp", "l2=0.5", "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)
    assert result["problem_type"] == "binary" and "train:auc" in result["metrics"]
    assert len(result["model_sha256"]) == 64 and "model/manifest.json" in result["artifacts"]
    assert "train data" not in err


def test_train_with_cross_validation(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "--algo", "xgboost", "--data", "churn", "--target", "y",
                         "--hp", "num_round=5", "--cv", "3", "--json", "--quiet")
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert 0.5 < metrics["validation:auc"] <= 1 and "train:auc" in metrics
    code, _, err = run(capsys, "train", "--algo", "xgboost", "--data", "churn", "--target", "y",
                       "--validation", "val", "--cv", "3")
    assert code == 1 and "give no validation data" in err and "Traceback" not in err
    code, _, err = run(capsys, "train", "--algo", "xgboost", "--data", "churn", "--target", "y", "--cv", "1")
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--algo", "xgbost", "--target", "y"], "unknown algorithm 'xgbost' (did you mean 'xgboost'?); known:"),
    (["--algo", "xgboost", "--target", "y", "--hp", "max_dept=3"], "unknown hyperparameter 'max_dept' for xgboost"),
    (["--algo", "xgboost", "--target", "y", "--hp", "max_depth=0"], "max_depth=0 is out of range [1, 20]"),
    (["--algo", "xgboost", "--target", "y", "--hp", "max_depth"], "must look like NAME=VALUE"),
    (["--algo", "xgboost", "--target", "nope"], "target column 'nope' is not in the training data churn:1"),
    (["--algo", "xgboost", "--target", "y", "--role", "group"], "--role 'group' must look like NAME=VALUE"),
])
def test_user_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                  message: str) -> None:
    code, _, err = run(capsys, "train", "--data", "churn", *argv)
    assert code == 1
    assert message in " ".join(err.split()) and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_training_failure_is_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "--algo", "lightgbm", "--data", "churn", "--target", "y",
                       "--hp", "boosting=rf", "--quiet")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and "LightGBMError" in last and "FAILED" in last


def test_algorithms_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "algorithms", "list")
    assert code == 0 and "xgboost" in out and "isolation_forest" in out and "forecast" in out
    code, out, _ = run(capsys, "algorithms", "list", "--json")
    assert {a["name"] for a in json.loads(out)} >= {"xgboost", "lightgbm", "linear", "kmeans", "pca"}
    code, out, _ = run(capsys, "algorithms", "show", "xgboost")
    assert code == 0 and "max_depth" in out and "[1, 20]" in out and "auc" in out
    code, out, _ = run(capsys, "algorithms", "show", "lightgbm", "--json")
    schema = json.loads(out)
    hp = {h["name"]: h for h in schema["hyperparameters"]}
    assert hp["learning_rate"]["log"] is True and hp["learning_rate"]["search"] == [0.01, 0.3]
    assert schema["iteration_metrics"]["binary"] == ["auc", "logloss"]
    code, _, err = run(capsys, "algorithms", "show", "nope")
    assert code == 1 and "unknown algorithm 'nope'" in err
