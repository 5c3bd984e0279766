from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._run import run
from tests.prep._data import make_frame

RECIPE = """\
target: y
steps:
  - kind: impute
    columns: [amount, score]
    strategy: median
  - kind: coerce_numeric
    columns: [num_str]
  - kind: one_hot
    columns: [city]
  - kind: target_encode
    columns: [plan]
"""




@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    make_frame().to_parquet(tmp_path / "sales.parquet")
    make_frame(100, seed=4).drop(columns=["y"]).to_parquet(tmp_path / "new.parquet")
    for name in ("sales", "new"):
        assert run(capsys, "data", "ingest", f"{name}.parquet", "--name", name)[0] == 0
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def test_fit_apply_list_show(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prep", "fit", "sales", "--recipe", "recipe.yaml", "--name", "churn",
                       "--out", "sales_train")
    assert code == 0 and "Created churn:1" in out and "fitted on sales:1" in out
    assert "values_coerced_to_null" in out and "sales_train:1" in out
    code, out, _ = run(capsys, "prep", "fit", "sales:1", "--recipe", "recipe.yaml", "--name", "churn", "--json")
    assert code == 0 and json.loads(out)["created"] is False and json.loads(out)["ref"] == "churn:1"

    code, out, _ = run(capsys, "prep", "apply", "churn", "new", "--name", "new_feat", "--json")
    applied = json.loads(out)
    assert code == 0 and applied["name"] == "new_feat" and applied["row_count"] == 100
    assert {"city_paris", "plan", "num_str"} <= {c["name"] for c in applied["schema"]}
    code, out, _ = run(capsys, "prep", "apply", "churn:1", "new:1", "--name", "new_feat2", "--batch-size", "10")
    assert code == 0 and "Created new_feat2:1: 100 rows" in out

    code, out, _ = run(capsys, "prep", "list", "--json")
    assert json.loads(out)[0]["name"] == "churn" and json.loads(out)[0]["latest"] == 1
    code, out, _ = run(capsys, "prep", "list")
    assert code == 0 and "churn" in out and "sales:1" in out

    code, out, _ = run(capsys, "prep", "show", "churn", "--json")
    shown = json.loads(out)
    assert [s["kind"] for s in shown["steps"]] == ["impute", "coerce_numeric", "one_hot", "target_encode"]
    assert shown["lineage"]["upstream"][0]["relation"] == "fitted"
    assert {d["relation"] for d in shown["lineage"]["downstream"]} == {"applied_to"}
    assert shown["streamable"] is True and "city" in shown["required_columns"]
    code, out, _ = run(capsys, "prep", "show", "churn:1")
    assert code == 0 and "target_encode" in out and "fitted on  sales:1" in out

    code, out, _ = run(capsys, "data", "show", "new_feat", "--json")
    assert json.loads(out)["lineage"]["upstream"][0]["relation"] in ("transformed_into", "applied_to")


def test_user_errors_are_one_line_and_exit_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "typo.yaml").write_text("steps:\n  - kind: standardize\n    colums: [amount]\n")
    code, _, err = run(capsys, "prep", "fit", "sales", "--recipe", "typo.yaml", "--name", "x")
    assert code == 1 and "unknown parameter 'colums' (did you mean 'columns'?)" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

    (project / "col.yaml").write_text("steps:\n  - kind: standardize\n    columns: [city]\n")
    code, _, err = run(capsys, "prep", "fit", "sales", "--recipe", "col.yaml", "--name", "x")
    assert code == 1 and "step 1 (standardize): column 'city' holds text" in " ".join(err.split())

    code, _, err = run(capsys, "prep", "fit", "sales", "--recipe", "recipe.yaml", "--name", "x", "--target", "nope")
    assert code == 1 and "target column 'nope'" in err

    assert run(capsys, "prep", "fit", "sales", "--recipe", "recipe.yaml", "--name", "churn")[0] == 0
    (project / "thin.csv").write_text("amount,score\n1.0,2.0\n")
    assert run(capsys, "data", "ingest", "thin.csv", "--name", "thin")[0] == 0
    code, _, err = run(capsys, "prep", "apply", "churn", "thin", "--name", "out")
    assert code == 1 and "no column 'num_str', which recipe step 2 (coerce_numeric) reads" in " ".join(err.split())
    code, out, _ = run(capsys, "data", "list", "--json")
    assert "out" not in [d["name"] for d in json.loads(out)]

    code, _, err = run(capsys, "prep", "show", "nothing")
    assert code == 1 and "no recipe named 'nothing'" in err
    code, _, _ = run(capsys, "prep", "fit", "sales", "--name", "x")
    assert code == 2  # usage: --recipe is required
