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
    n = 120
    pd.DataFrame({
        "id": range(n),
        "amount": [float(i % 17) * 1.5 for i in range(n)],
        "city": ["a", "b", "c"] * (n // 3),
        "const": [1] * n,
        "churn": [i % 2 for i in range(n)],
    }).to_csv(tmp_path / "sales.csv", index=False)
    assert run(capsys, "data", "ingest", "sales.csv", "--name", "sales")[0] == 0
    return tmp_path


def test_eda_prints_summary_and_writes_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "eda", "sales", "--target", "churn", "--out", "r/report.html")
    assert code == 0, err
    assert "Profiled sales:1: 120 rows × 5 columns; target churn (classification)" in out
    assert "const is constant" in out and "id looks like an ID" in out
    assert "Report: r/report.html" in out
    assert 'id="warnings"' in (project / "r" / "report.html").read_text()

    code, out, _ = run(capsys, "eda", "sales:1", "--json", "--sample-rows", "50", "--seed", "1")
    data = json.loads(out)
    assert code == 0 and data["dataset"] == "sales:1" and data["rows"] == 120 and data["sample_rows"] == 50
    assert data["out"] is None and Path(data["report_path"]).exists()
    assert {m["kind"] for m in data["messages"]} >= {"constant", "id_like"}

    code, out, _ = run(capsys, "data", "show", "sales", "--json")
    assert {e["relation"] for e in json.loads(out)["lineage"]["downstream"]} == {"profiled_by"}


def test_eda_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "eda", "sales", "--target", "nope")
    assert code == 1 and "target column 'nope' is not in sales:1" in err and "'amount'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "eda", "nosuch")
    assert code == 1 and "no dataset named 'nosuch'" in err
    code, _, err = run(capsys, "eda", "sales", "--task", "clustering")
    assert code == 1 and "task must be" in err
    code, _, _ = run(capsys, "eda")
    assert code == 2


def test_eda_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "eda", "--help")
    assert code == 0 and "--target" in out and "--out" in out and "--sample-rows" in out
