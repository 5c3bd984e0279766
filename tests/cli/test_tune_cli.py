"""``loopml tune``: run, resume, list and show tuning jobs from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._run import run
from tests.train._data import churn


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    churn(300, seed=0).to_parquet(tmp_path / "churn.parquet")
    churn(100, seed=1).to_parquet(tmp_path / "val.parquet")
    for name in ("churn", "val"):
        assert run(capsys, "data", "ingest", f"{name}.parquet", "--name", name)[0] == 0
    return tmp_path


def test_tune_show_list_and_resume(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tune", "--algo", "xgboost", "--data", "churn", "--validation", "val",
                         "--target", "y", "--metric", "auc", "--max-trials", "3", "--hp", "num_round=10",
                         "--early-stopping", "--name", "cli-job", "--seed", "1")
    assert code == 0, err
    assert "Tuning job cli-job Completed: xgboost, bayesian, validation:auc (maximize); 3 complete" in out
    assert "best: trial" in out and "trial   0 COMPLETE validation:auc=" in err  # a line per trial

    code, out, _ = run(capsys, "tune", "list", "--json")
    jobs = json.loads(out)
    assert code == 0 and [(j["job_id"], j["n_trials"], j["status"]) for j in jobs] == [("cli-job", 3, "Completed")]

    code, out, err = run(capsys, "tune", "--resume", "cli-job", "--max-trials", "4", "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)
    assert result["counts"] == {"COMPLETE": 4} and result["max_trials"] == 4 and err == ""

    code, out, _ = run(capsys, "tune", "show", "cli-job")
    assert code == 0 and "cli-job" in out and "trials" in out
    code, out, _ = run(capsys, "tune", "show", "cli-job", "--json")
    assert json.loads(out)["best_run_id"] == result["best_run_id"]

    code, out, _ = run(capsys, "runs", "list", "--json")
    runs = json.loads(out)
    parent = next(r for r in runs if r["name"] == "cli-job")
    assert sum(1 for r in runs if r["parent_run_id"] == parent["id"]) == 4


def test_tune_with_a_space_file_and_grid(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "space.yaml").write_text("max_depth: {min: 2, max: 3}\ngrow_policy: [depthwise, lossguide]\n"
                                        "num_round: 6\n")
    code, out, err = run(capsys, "tune", "-a", "xgboost", "-d", "churn", "-t", "y", "-m", "validation:logloss",
                         "--strategy", "grid", "--space", "space.yaml", "--json", "--register", "churn-best")
    assert code == 0, err
    result = json.loads(out)
    assert result["direction"] == "minimize" and result["counts"] == {"COMPLETE": 4}
    assert {(t["params"]["max_depth"], t["params"]["grow_policy"]) for t in result["trials"]} == {
        (2, "depthwise"), (2, "lossguide"), (3, "depthwise"), (3, "lossguide")}
    assert result["model_version"] == "churn-best:1"


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--algo", "xgboost", "--data", "churn", "--target", "y"], 2, "give --metric (or --resume JOB)"),
    (["--algo", "xgboost", "--data", "churn", "--target", "y", "-m", "auc", "--strategy", "anneal"], 1,
     "strategy 'anneal' is not one of bayesian, random, grid, hyperband, cmaes"),
    (["--algo", "xgboost", "--data", "churn", "--target", "y", "-m", "rmse"], 1,
     "xgboost never reports validation:rmse"),
    (["--algo", "xgboost", "--data", "churn", "--target", "y", "-m", "auc", "--space", "nope.yaml"], 1,
     "search space file 'nope.yaml' does not exist"),
    (["--resume", "nope"], 1, "no tuning job 'nope'; see `loopml tune list`"),
    (["--resume", "nope", "--algo", "xgboost"], 2, "--resume continues a job as it was set up; drop --algo"),
    (["show", "nope"], 1, "no tuning job 'nope'"),
])
def test_tune_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
                                  message: str) -> None:
    got, _, err = run(capsys, "tune", *argv)
    assert got == code and message in err, err
    assert "Traceback" not in err


def test_tune_with_cv_folds_and_html_reports(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tune", "-a", "xgboost", "-d", "churn", "-t", "y", "-m", "auc", "--cv-folds", "3",
                         "--max-trials", "3", "--hp", "num_round=6", "--name", "cv-cli", "--report", "tune.html",
                         "--quiet")
    assert code == 0, err
    assert "validation:auc (maximize, 3-fold CV); 3 complete" in out and "report: " in out
    assert "best configuration trained on all the data: run" in out
    assert 'id="parallel"' in (project / "tune.html").read_text()
    code, out, err = run(capsys, "tune", "show", "cv-cli", "--report", "again.html", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["cv_folds"] == 3 and shown["model_run_id"] and shown["report"].endswith("again.html")
    assert 'id="importance"' in (project / "again.html").read_text()
    code, _, err = run(capsys, "tune", "-a", "xgboost", "-d", "churn", "-t", "y", "-m", "auc", "--cv-folds", "3",
                       "--validation", "val")
    assert code == 1 and "give no validation data" in err and "Traceback" not in err
