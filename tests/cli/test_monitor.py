"""``loopml monitor baseline | baselines | run | results | show``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from tests.cli._run import run
from tests.monitor._data import DRIFTED, make


def _project(folder: Path) -> Path:
    with Workspace.init(folder) as ws:
        cat = Catalog(ws)
        cat.write("gen", make(3000, 1))
        cat.write("gen", make(3000, 2, drift=True))
        cat.write("gen", make(3000, 3))
        cat.write("empty", pd.DataFrame({"x": pd.Series([], dtype="float64")}))
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(_project(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def shared_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project for the tests that only fail (they change nothing)."""
    return _project(tmp_path_factory.mktemp("monitor-cli"))


def test_baseline_run_results_show(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "monitor", "baseline", "gen:1", "--name", "ref")
    assert code == 0, err
    assert "Baseline ref" in out and "3,000 rows, 25 features" in out and "20 Fractional, 5 String" in out
    code, out, _ = run(capsys, "monitor", "baselines", "--json")
    [b] = json.loads(out)
    assert code == 0 and b["name"] == "ref" and b["dataset"] == "gen:1"
    cons = Path(b["outputs"]["constraints.json"])  # an id; the file is in the artifact store
    assert len(cons.name) == 64

    code, out, err = run(capsys, "monitor", "run", "--data", "gen:2", "--baseline", "ref", "--out", "r/report.html")
    assert code == 0, err
    assert "CompletedWithViolations" in out and "baseline_drift_check" in out and "completeness_check" in out
    assert "Report copy: r/report.html" in out and (project / "r" / "report.html").exists()
    assert "drift in 4 of 25 features (16.0%)" in out

    code, out, _ = run(capsys, "monitor", "run", "--data", "gen:3", "--json")
    res = json.loads(out)
    assert code == 0 and res["status"] == "Completed" and res["violation_count"] == 0 and res["target"] == "gen:3"

    code, out, _ = run(capsys, "monitor", "results", "--json")
    rows = json.loads(out)
    assert [r["target"] for r in rows] == ["gen:3", "gen:2"]
    code, out, _ = run(capsys, "monitor", "results", "--target", "gen:2")
    assert code == 0 and "CompletedW" in out and "dataset:ge" in out
    flagged = {v["feature_name"] for v in rows[1]["summary"]["violations"]}
    assert flagged == DRIFTED
    code, out, _ = run(capsys, "monitor", "show", rows[1]["id"][:12])
    assert code == 0 and rows[1]["id"] in out and "constraint_violations.json" in out
    code, out, _ = run(capsys, "monitor", "show", rows[0]["id"], "--json")
    assert json.loads(out)["id"] == rows[0]["id"]


def test_edited_constraints(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "monitor", "baseline", "gen:1", "--json")
    b = json.loads(out)
    edited = json.loads(Path(b["paths"]["constraints.json"]).read_text())
    edited["monitoring_config"]["evaluate_constraints"] = "Disabled"
    (project / "c.json").write_text(json.dumps(edited))
    code, out, err = run(capsys, "monitor", "run", "--data", "gen:2", "--constraints", "c.json", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "Completed"
    edited["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Exact"
    (project / "c.json").write_text(json.dumps(edited))
    code, _, err = run(capsys, "monitor", "run", "--data", "gen:2", "--constraints", "c.json")
    assert code == 1 and "comparison_method must be one of Robust, Simple" in err and "c.json" in err


@pytest.mark.parametrize(("argv", "message"), [
    (("monitor", "baseline", "nope"), "no dataset named 'nope'"),
    (("monitor", "baseline", "empty"), "empty:1 has no rows"),
    (("monitor", "baseline"), "give a dataset"),
    (("monitor", "run", "ghost"), "no endpoint named 'ghost'"),
    (("monitor", "run", "--data", "gen:9"), "no version 9"),
    (("monitor", "run", "--data", "gen:2", "--baseline", "zzz"), "no data_quality baseline named 'zzz'"),
    (("monitor", "run", "--data", "gen:2"), "no data-quality baseline for dataset 'gen'"),
    (("monitor", "run"), "give an endpoint"),
    (("monitor", "run", "ep", "--since", "yesterday"), "--since: time 'yesterday' is not understood"),
    (("monitor", "show", "mon-nothing"), "no monitoring result"),
])
def test_bad_input_is_one_line_exit_1(shared_project: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    monkeypatch.chdir(shared_project)
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_empty_listings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "No monitoring results yet" in run(capsys, "monitor", "results")[1]
    assert "No baselines yet" in run(capsys, "monitor", "baselines")[1]
    assert json.loads(run(capsys, "monitor", "results", "--json")[1]) == []
