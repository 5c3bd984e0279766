from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml import Workspace
from loopml.track import Tracker
from tests.cli._run import run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """A workspace with four runs: three in 'churn' (one failed, one nested), one in 'fraud'."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    ids: dict[str, str] = {}
    with Workspace.open() as ws, Tracker(ws) as t:
        for name, exp, depth, auc in (("shallow", "churn", 3, 0.71), ("deep", "churn", 6, 0.93),
                                      ("fraud-1", "fraud", 6, 0.97)):
            with t.start_run(experiment=exp, name=name, seed=1) as r:
                r.log_params({"max_depth": depth, "model": "xgb"})
                for step in range(3):
                    r.log_metric("auc", auc - (2 - step) / 100, step=step)
                r.log_metric("loss", 1 - auc)
                r.set_tag("team", "growth")
                r.log_bytes("model/config.json", b'{"trees": 3}')
            ids[name] = r.id
        with pytest.raises(RuntimeError), t.start_run(experiment="churn", name="broken",
                                                      parent_run_id=ids["deep"]) as r:
            r.log_param("max_depth", 9)
            raise RuntimeError("diverged")
        ids["broken"] = r.id
    return ids


def test_list_filter_sort_limit(project: dict[str, str], capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(capsys, "runs", "list", "--json")
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == ["broken", "fraud-1", "deep", "shallow"]

    code, out, _ = run(capsys, "runs", "list", "--filter", "metrics.auc > 0.9 and params.max_depth = 6",
                       "--sort", "metrics.auc DESC", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["fraud-1", "deep"]
    assert json.loads(out)[0]["metrics"]["auc"] == pytest.approx(0.97)

    code, out, _ = run(capsys, "runs", "list", "-e", "churn", "--sort", "params.max_depth", "-n", "2",
                       "--json")
    assert [r["name"] for r in json.loads(out)] == ["shallow", "deep"]

    code, out, _ = run(capsys, "runs", "list", "--filter", "attributes.status = 'FAILED'")
    assert code == 0 and "broken" in out and "FAILED" in out and "shallow" not in out
    code, out, _ = run(capsys, "runs", "list", "--sort", "metrics.loss")  # 80 columns
    assert code == 0 and out.index("fraud-1") < out.index("deep") < out.index("shallow")
    assert "loss" in out and "max_depth" not in out and "4 run(s)" in out
    assert max(len(line) for line in out.splitlines()[:-1]) <= 80
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run(capsys, "runs", "list", "--sort", "metrics.auc DESC")
    assert code == 0 and out.index("fraud-1") < out.index("deep") < out.index("shallow")
    assert "auc" in out and "loss" in out and "max_depth" in out and project["deep"][:12] in out
    code, out, _ = run(capsys, "runs", "list", "--filter", "metrics.auc > 5")
    assert code == 0 and "No runs match" in out


def test_show(project: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "runs", "show", project["deep"], "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["params"] == {"max_depth": "6", "model": "xgb"} and shown["seed"] == 1
    assert shown["child_runs"] == [project["broken"]] and shown["status"] == "FINISHED"
    assert shown["artifacts"][0]["name"] == "model/config.json"
    assert shown["packages"]["python"]

    code, out, _ = run(capsys, "runs", "show", project["broken"][:12])
    assert code == 0 and "broken" in out and "FAILED" in out and "RuntimeError: diverged" in out
    assert f"parent     {project['deep']}" in out and "error/traceback.txt" in out
    code, out, _ = run(capsys, "runs", "show", project["deep"])
    assert "children" in out and "max_depth" in out and "auc" in out and "model/config.json" in out


def test_compare_with_chart(project: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "runs", "compare", project["shallow"], project["deep"],
                       project["fraud-1"], "--out", "charts/cmp.html", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert [r["name"] for r in data["runs"]] == ["shallow", "deep", "fraud-1"]
    assert data["params"]["max_depth"] == ["3", "6", "6"] and data["differing_params"] == ["max_depth"]
    assert data["metrics"]["auc"] == pytest.approx([0.71, 0.93, 0.97])
    chart = Path(data["chart"])
    assert chart == tmp_path / "charts" / "cmp.html" and "plotly" in chart.read_text()[:5000].lower()

    code, out, _ = run(capsys, "runs", "compare", project["shallow"], project["deep"])
    assert code == 0 and "shallow" in out and "deep" in out and "max_depth" in out and "0.93" in out
    assert "Wrote" not in out


def test_experiments(project: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "runs", "experiments", "--json")
    assert code == 0 and [(e["name"], e["run_count"]) for e in json.loads(out)] == [("churn", 3), ("fraud", 1)]
    code, out, _ = run(capsys, "runs", "experiments")
    assert "churn" in out and "fraud" in out


def test_empty_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run(capsys, "init", ".")
    code, out, _ = run(capsys, "runs", "list")
    assert code == 0 and "No runs yet" in out
    code, out, _ = run(capsys, "runs", "experiments")
    assert code == 0 and "No experiments yet" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "list", "--filter", "metrics.auc is 0.9"],
         "invalid filter 'metrics.auc is 0.9' at position 13: expected an operator"),
        (["runs", "list", "--sort", "metrics.auc SIDEWAYS"], "expected ASC, DESC or the end"),
        (["runs", "list", "--experiment", "nope"], "no experiment named 'nope'"),
        (["runs", "list", "--limit", "0"], "max_results must be a positive integer"),
        (["runs", "show", "run-doesnotexist"], "no run 'run-doesnotexist'; see `loopml runs list`"),
        (["runs", "compare", "run-nope", "run-nada"], "no run 'run-nope'"),
    ],
)
def test_user_errors_are_one_line_exit_1(project: dict[str, str], capsys: pytest.CaptureFixture[str],
                                         argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1, out
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(project: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "runs", "compare")
    assert code == 2
    code, out, _ = run(capsys, "runs", "--help")
    assert code == 0 and "compare" in out and "list" in out
