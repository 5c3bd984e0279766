"""``loopml demo``: the whole lifecycle, small (``--quick``), and the folder rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml import Workspace
from loopml._demo.lifecycle import MARKER, prepare_path
from loopml.data import Catalog
from tests.cli._run import run

STAGES = ["1. data collection", "2. exploratory data analysis", "3. preprocessing", "4. feature store",
          "5. training", "6. hyperparameter tuning", "7. evaluation with business metrics",
          "8. model registry", "9. real-time endpoint: deploy", "10. real-time endpoint: requests over HTTP",
          "11. batch transform", "12. monitoring: drift caught", "13. retraining loop",
          "14. production readiness", "where to look"]


@pytest.mark.slow
def test_quick_demo_runs_the_whole_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loopml.registry import get_model_version
    from loopml.serve.endpoints import get_endpoint

    path = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--path", str(path), "--quick", "--rows", "600")
    assert code == 0, err
    at = [out.find(s) for s in STAGES]
    assert -1 not in at and at == sorted(at), dict(zip(STAGES, at, strict=True))
    assert "every stage worked" in out and "all 9 items pass" in out
    assert "0 failed" in out and "fired retrain-on-drift" in out
    assert (path / "reports" / "customers-eda.html").stat().st_size > 100_000
    assert (path / "reports" / "churn-v1-evaluation.html").stat().st_size > 10_000
    assert (path / "pipelines" / "retrain.yaml").is_file()
    with Workspace.open(path) as ws:
        assert Catalog(ws).get("customers").version == 1
        assert {"customers", "customers_prepared", "churn_train", "churn_fresh"} <= {d.name for d in Catalog(ws).list()}
        assert get_model_version(ws, "churn@production").ref == "churn:2"
        assert get_endpoint(ws, "churn").config.model_refs() == ["churn:2"]


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    code, _, err = run(capsys, "demo", "--path", str(mine), "--quick")
    assert code == 1 and "did not make" in err and err.count("\n") == 1
    assert (mine / "thesis.tex").read_text() == "precious"
    afile = tmp_path / "file"
    afile.write_text("x")
    code, _, err = run(capsys, "demo", "--path", str(afile))
    assert code == 1 and "is a file" in err
    code, _, err = run(capsys, "demo", "--path", str(tmp_path / "new"), "--rows", "50")
    assert code == 1 and "--rows must be at least 300" in err


def test_a_new_run_replaces_only_an_earlier_demo_workspace(tmp_path: Path) -> None:
    path = tmp_path / "demo"
    prepare_path(path)                         # new folder: made, marked
    assert (path / MARKER).is_file()
    Workspace.init(path).close()
    (path / "reports").mkdir()
    prepare_path(path)                         # an earlier demo's folder: replaced by an empty one
    assert sorted(p.name for p in path.iterdir()) == [MARKER]
    old = tmp_path / "old-demo"                 # made by a demo before the marker existed
    Workspace.init(old).close()
    (old / "raw").mkdir()
    (old / "raw" / "customers.expect.yaml").write_text("columns: {}\n")
    prepare_path(old)
    assert sorted(p.name for p in old.iterdir()) == [MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_path(empty)                        # an empty folder is fine
    assert (empty / MARKER).is_file()
