"""``loopml pipelines``: run (YAML and Python), list, show, logs, resume, validate; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._run import run
from tests.train._data import churn

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A workspace with a training and a holdout CSV."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    churn(300, seed=0).rename(columns={"y": "churned"}).to_csv(tmp_path / "train.csv", index=False)
    churn(150, seed=1).rename(columns={"y": "churned"}).to_csv(tmp_path / "holdout.csv", index=False)
    return tmp_path


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_run_the_yaml_example_then_list_show_and_logs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_file = str(EXAMPLES / "churn.yaml")
    args = ("pipelines", "run", yaml_file, "--param", "train_file=train.csv", "-p", "holdout_file=holdout.csv",
            "-p", "threshold=0.55", "-p", "approve=yes", "--executor", "thread")
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    ex = json.loads(out)
    assert ex["status"] == "Succeeded" and ex["params"]["threshold"] == 0.55 and ex["params"]["approve"] is True
    steps = {s["name"]: s for s in ex["steps"]}
    assert steps["ingest_train"]["outputs"]["dataset"] == "churn_train:1"
    assert steps["register"]["outputs"]["model"] == "churn_yaml:1"
    assert steps["register"]["outputs"]["approval_status"] == "Approved"
    assert steps["too_low"]["status"] == "Skipped"

    # again, with live progress: the train step comes from the cache
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "▶ ingest_train Executing" in out and "↺ train Cached" in out
    assert "– too_low Skipped" in out and "Succeeded in" in out and "cached from pse-" in out

    code, out, _ = run(capsys, "pipelines", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [e["status"] for e in listed] == ["Succeeded", "Succeeded"]
    code, out, _ = run(capsys, "pipelines", "list")
    assert code == 0 and ex["id"] in out and "churn_yaml" in out and "7/8 ↺1" in out
    code, out, _ = run(capsys, "pipelines", "show", ex["id"][:12])
    flat = " ".join(out.split())  # notes wrap in a narrow terminal
    assert code == 0 and ex["id"] in out and "good_enough" in out and ">= 0.55 -> true" in flat
    code, out, _ = run(capsys, "pipelines", "show", ex["id"], "--json")
    assert json.loads(out)["id"] == ex["id"]
    code, out, _ = run(capsys, "pipelines", "logs", ex["id"], "train")
    assert code == 0 and out.strip()  # the training job's log lines
    assert "does not exist" not in out

    msg = _one_line_error(capsys, "pipelines", "show", "pex-nothing")
    assert "no pipeline execution 'pex-nothing'" in msg
    msg = _one_line_error(capsys, "pipelines", "list", "--status", "Done")
    assert "status 'Done' is not one of Executing, Succeeded, Failed, Stopped" in msg


def test_bad_files_and_parameters_are_one_line_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_file = str(EXAMPLES / "churn.yaml")
    msg = _one_line_error(capsys, "pipelines", "run", yaml_file, "-p", "train_file=a.csv")
    assert "pipeline 'churn_yaml' needs parameter 'holdout_file' (string); give it with --param holdout_file=VALUE" \
        in msg
    msg = _one_line_error(capsys, "pipelines", "run", yaml_file, "-p", "train_file=a", "-p", "holdout_file=b",
                          "-p", "threshold=high")
    assert "parameter 'threshold' is float: 'high' is not a number" in msg
    msg = _one_line_error(capsys, "pipelines", "run", yaml_file, "-p", "colour=red")
    assert "has no parameter 'colour'" in msg
    msg = _one_line_error(capsys, "pipelines", "run", yaml_file, "-p", "oops")
    assert "--param 'oops' must look like NAME=VALUE" in msg
    msg = _one_line_error(capsys, "pipelines", "run", "missing.yaml")
    assert "pipeline file not found" in msg
    (project / "cycle.yaml").write_text(
        "name: cyc\nsteps:\n"
        "  - {name: a, function: 'tests.pipelines._steps:add', args: {a: '${steps.b.outputs.sum}', b: 1}}\n"
        "  - {name: b, function: 'tests.pipelines._steps:add', args: {a: '${steps.a.outputs.sum}', b: 1}}\n")
    msg = _one_line_error(capsys, "pipelines", "run", "cycle.yaml")
    assert "cycle.yaml: the steps of pipeline 'cyc' form a cycle" in msg
    msg = _one_line_error(capsys, "pipelines", "validate", "cycle.yaml")
    assert "form a cycle" in msg
    code, out, _ = run(capsys, "pipelines", "validate", yaml_file)
    assert code == 0 and "churn_yaml is valid" in out and "train (train) after validate" in out
    code, out, _ = run(capsys, "pipelines", "validate", yaml_file, "--json")
    assert json.loads(out)["order"][:2] == ["ingest_train", "ingest_holdout"]
    code, out, _ = run(capsys, "pipelines", "list")
    assert code == 0 and "no pipeline executions yet" in out  # nothing ran


PIPELINE_PY = '''
import os
from loopml.pipelines import Pipeline, Param

def prepare(n: int) -> dict:
    print("preparing", n)
    return {"n": n}

def risky(n: int, flag: str) -> dict:
    if not os.path.exists(flag):
        raise RuntimeError("the flag file is missing")
    return {"double": 2 * n}

pipeline = Pipeline("risky", params={"n": Param(int, 2)})
a = pipeline.add(prepare, n=pipeline.param("n"))
pipeline.add(risky, n=a.output("n"), flag="flag.txt")
'''


def test_a_failed_python_pipeline_resumes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "risky.py").write_text(PIPELINE_PY)
    code, out, err = run(capsys, "pipelines", "run", "risky.py", "-p", "n=5", "-e", "thread",
                         "--idempotency-key", "k1")
    assert code == 1
    assert "✗ risky Failed" in out and "RuntimeError: the flag file is missing" in out
    failed_id = out.split("execution ", 1)[1].split()[0]
    code, out, _ = run(capsys, "pipelines", "run", "risky.py", "-e", "thread", "--idempotency-key", "k1")
    assert code == 1 and "exists already" in out and failed_id in out  # the same execution, not a new one
    code, out, _ = run(capsys, "pipelines", "logs", failed_id, "prepare")
    assert out == "preparing 5\n"
    (project / "flag.txt").write_text("ok")
    code, out, err = run(capsys, "pipelines", "resume", failed_id[:12], "-e", "thread", "--json")
    assert code == 0, err
    resumed = json.loads(out)
    steps = {s["name"]: s for s in resumed["steps"]}
    assert resumed["status"] == "Succeeded" and resumed["resumed_from"] == failed_id
    assert steps["prepare"]["status"] == "Cached" and steps["risky"]["outputs"] == {"double": 10}
    msg = _one_line_error(capsys, "pipelines", "resume", resumed["id"], "-e", "thread")
    assert "succeeded; there is nothing to resume" in msg
