"""``loopml apply``: the plan table, dry runs, idempotent applies, --prune, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._run import run
from tests.triggers._helpers import write_yaml_pipeline

STACK = """\
name: demo
pipelines:
  retrain: retrain.yaml
alarms:
  slow:
    metric: ModelLatency
    dimensions: {endpoint: churn-ep}
    threshold: 200
    comparison: ">"
    evaluation_periods: 3
    datapoints_to_alarm: 2
triggers:
  on-slow:
    pipeline: retrain
    event: alarm.state_changed
    where: {alarm: slow, new_state: ALARM}
    params: {reason: "${event.payload.reason}"}
  nightly: {pipeline: retrain, cron: "0 3 * * *", executor: thread}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    write_yaml_pipeline(tmp_path)
    (tmp_path / "stack.yaml").write_text(STACK)
    return tmp_path


def test_plan_apply_and_apply_again(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "apply", "stack.yaml", "--dry-run")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "stack demo" in out and "create" in out and "on-slow" in out
    assert "plan: 4 to create, 0 to update, 0 to delete, 0 unchanged (dry run: nothing applied)" in flat
    code, out, _ = run(capsys, "triggers", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "apply", "stack.yaml")
    assert code == 0 and "applied: 4 created, 0 updated, 0 deleted, 0 unchanged" in " ".join(out.split())
    code, out, _ = run(capsys, "apply", "stack.yaml")
    assert code == 0 and "nothing to change (4 unchanged)" in out
    code, out, _ = run(capsys, "alarms", "list", "--json")
    assert [(a["name"], a["datapoints_to_alarm"]) for a in json.loads(out)] == [("slow", 2)]
    # change the file: an update with what differs, then drop a trigger and prune it
    (project / "stack.yaml").write_text(STACK.replace("threshold: 200", "threshold: 250")
                                        .replace('  nightly: {pipeline: retrain, cron: "0 3 * * *", executor: thread}\n',
                                                 ""))
    code, out, _ = run(capsys, "apply", "stack.yaml", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["counts"] == {"create": 0, "update": 1, "unchanged": 2, "delete": 0}
    assert [c["details"] for c in plan["changes"] if c["action"] == "update"] == [["threshold: 200.0 -> 250.0"]]
    assert plan["orphans"] == [{"action": "delete", "kind": "trigger", "name": "nightly", "details": []}]
    code, out, _ = run(capsys, "apply", "stack.yaml")
    assert code == 0 and "--prune deletes them" in " ".join(out.split()) and "trigger nightly" in out
    code, out, _ = run(capsys, "apply", "stack.yaml", "--prune")
    assert code == 0 and "1 deleted" in out and "nightly" in out
    code, out, _ = run(capsys, "triggers", "list", "--json")
    assert [t["name"] for t in json.loads(out)] == ["on-slow"]


def test_the_example_stack_validates(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "stack.yaml"
    code, _, err = run(capsys, "apply", str(example), "--dry-run")
    # the example serves a model this empty workspace does not have: a clear, one-line refusal
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "endpoints.churn-ep" in err and "nothing was applied" in " ".join(err.split())


@pytest.mark.parametrize("text, message", [
    ("alarms:\n  a: {metric: m, threshold: 1, comparision: '>'}\n", "unknown key 'comparision' (did you mean"),
    ("triggers:\n  t: {pipeline: nope, every: 1h}\n", "triggers.t: no pipeline 'nope'"),
    ("trigers: {}\n", "unknown key 'trigers' (did you mean 'triggers'?)"),
    ("triggers:\n  t: {pipeline: retrain.yaml}\n", "give exactly one of cron:, every: or event:"),
    ("a: [\n", "not valid YAML"),
])
def test_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    (project / "bad.yaml").write_text(text)
    code, _, err = run(capsys, "apply", "bad.yaml")
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in " ".join(err.split()), err
    code, _, err = run(capsys, "apply", "missing.yaml")
    assert code == 1 and "stack file not found" in err
