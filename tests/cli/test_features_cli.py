from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.cli._run import run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    pd.DataFrame({
        "customer_id": [1, 1, 2, 3],
        "event_time": ["2025-01-01T00:00:00Z", "2025-01-10T00:00:00Z", "2025-01-05T00:00:00Z",
                       "2025-02-01T00:00:00Z"],
        "spend": [10.0, 20.0, 5.0, 7.5],
        "plan": ["basic", "pro", "basic", "team"],
    }).to_csv(tmp_path / "activity.csv", index=False)
    pd.DataFrame({
        "customer_id": [1, 2, 3, 1],
        "event_time": ["2025-01-07T00:00:00Z", "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z",
                       "2025-01-20T00:00:00Z"],
        "churned": [0, 1, 0, 1],
    }).to_csv(tmp_path / "labels.csv", index=False)
    assert run(capsys, "data", "ingest", "activity.csv", "--name", "activity")[0] == 0
    return tmp_path


def test_feature_store_commands(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "features", "create", "cust", "--id", "customer_id", "--time", "event_time",
                       "--from-dataset", "activity", "--description", "customer activity",
                       "--tag", "team=growth", "--json")
    assert code == 0, out
    created = json.loads(out)
    assert created["id_type"] == "integral"
    assert [f["name"] for f in created["features"]] == ["spend", "plan"]

    code, out, _ = run(capsys, "features", "ingest", "cust", "activity:1")
    assert code == 0 and "Ingested 4 rows" in out and "3 online record(s)" in out

    code, out, _ = run(capsys, "features", "get", "cust", "1", "--json")
    assert code == 0 and json.loads(out)["spend"] == 20.0
    code, out, _ = run(capsys, "features", "get", "cust", "2", "--feature", "plan")
    assert code == 0 and "basic" in out and "spend" not in out

    code, out, _ = run(capsys, "features", "history", "cust:spend", "--entities", "labels.csv",
                       "--out", "out/train.parquet", "--json")
    assert code == 0, out
    assert json.loads(out)["rows"] == 4
    train = pd.read_parquet(project / "out" / "train.parquet")
    assert train["churned"].tolist() == [0, 1, 0, 1]  # every row, in order
    assert train["spend"].tolist()[0] == 10.0 and pd.isna(train["spend"].iloc[1])
    assert train["spend"].tolist()[2:] == [7.5, 20.0]
    code, out, _ = run(capsys, "features", "history", "cust", "--entities", "labels.csv",
                       "--out", "train.csv", "--max-age", "7d")
    assert code == 0 and "Wrote train.csv" in out
    assert pd.read_csv(project / "train.csv")["plan"].isna().tolist() == [False, True, True, True]

    code, out, _ = run(capsys, "features", "materialize", "cust", "--incremental")
    assert code == 0 and "up to date" in out
    code, out, _ = run(capsys, "features", "materialize", "cust", "--json")
    assert code == 0 and json.loads(out)["records"] == 3

    code, out, _ = run(capsys, "features", "list")
    assert code == 0 and "cust" in out and "customer activity" in out
    code, out, _ = run(capsys, "features", "list", "--json")
    assert [g["name"] for g in json.loads(out)] == ["cust"]
    code, out, _ = run(capsys, "features", "describe", "cust")
    assert code == 0 and "4 rows in 1 part(s)" in out and "ingested_into" in out
    code, out, _ = run(capsys, "features", "describe", "cust", "--json")
    assert json.loads(out)["online_records"] == 3

    code, out, _ = run(capsys, "features", "delete", "cust")
    assert code == 0 and "Deleted" in out
    code, out, _ = run(capsys, "features", "list")
    assert "No feature groups yet" in out


def test_create_with_explicit_features(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "features", "create", "cust", "--id", "customer_id:integral",
                       "--time", "event_time", "--feature", "spend:fractional", "-f", "plan:string",
                       "--ttl", "100000d", "--owner", "ana")
    assert code == 0 and "Created feature group cust" in out and "spend: fractional" in out
    code, out, _ = run(capsys, "features", "ingest", "cust", "activity", "--offline-only", "--json")
    assert code == 0 and json.loads(out)["online_records"] is None
    code, _, err = run(capsys, "features", "get", "cust", "1")
    assert code == 1 and "no online record for id '1'" in err
    code, out, _ = run(capsys, "features", "materialize", "cust")
    assert code == 0 and "3 latest records" in out
    code, out, _ = run(capsys, "features", "get", "cust", "1")
    assert code == 0 and "pro" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "create", "g", "--id", "a", "--time", "b"], "give the features"),
        (["features", "create", "g", "--id", "a", "--time", "b", "-f", "x:blob"], "unknown feature type 'blob'"),
        (["features", "create", "g", "--id", "a", "--time", "b", "-f", "x:integral", "--tag", "oops"],
         "KEY=VALUE"),
        (["features", "describe", "nope"], "no feature group named 'nope'"),
        (["features", "ingest", "nope", "activity"], "no feature group named 'nope'"),
        (["features", "history", "nope", "--entities", "labels.csv", "--out", "x.parquet"],
         "no feature group named 'nope'"),
        (["features", "history", "nope", "--entities", "missing.csv", "--out", "x.parquet"], "not found"),
        (["features", "history", "nope", "--entities", "labels.csv", "--out", "x.xlsx"], "use a .parquet"),
    ],
)
def test_user_errors_are_one_line_exit_1(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err and "Traceback" not in err


def test_bad_ingest_names_the_column(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "features", "create", "cust", "--id", "customer_id:integral", "--time", "event_time",
               "-f", "spend:fractional", "-f", "plan:integral")[0] == 0
    code, _, err = run(capsys, "features", "ingest", "cust", "activity")
    assert code == 1 and "column 'plan'" in err and "integral" in err
    code, out, _ = run(capsys, "features", "describe", "cust", "--json")
    assert json.loads(out)["offline"]["parts"] == []
