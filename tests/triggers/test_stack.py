"""``apply_stack``: validation of the whole file first, plans, idempotent applies, updates and pruning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loopml import Workspace
from loopml.data import Catalog
from loopml.errors import InvalidInput
from loopml.metrics import alarms
from loopml.registry import register_model
from loopml.serve import endpoints as eps
from loopml.triggers import (
    apply_stack,
    get_monitor_schedule,
    get_registered_pipeline,
    get_trigger,
    list_monitor_schedules,
    list_registered_pipelines,
    list_triggers,
    plan_stack,
)
from loopml.triggers.stack import stack_resources
from tests.registry._packages import record_run, train_package
from tests.train._data import churn
from tests.triggers._helpers import write_yaml_pipeline


@pytest.fixture(scope="module")
def linear_pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_package(tmp_path_factory.mktemp("stack-pkg"), churn(200), "linear", name="linear")


def _stack(folder: Path, **overrides: object) -> Path:
    write_yaml_pipeline(folder / "pipes" if (folder / "pipes").exists() else _mk(folder / "pipes"))
    doc: dict[str, object] = {
        "name": "churn",
        "pipelines": {"retrain": "pipes/retrain.yaml"},
        "alarms": {"churn-drift": {"metric": "dataset_drift_share", "threshold": 0.3, "comparison": ">",
                                   "dimensions": {"endpoint": "churn-ep", "monitor": "data_quality"},
                                   "period_s": 3600, "treat_missing": "ignore"}},
        "monitoring_schedules": {"churn-ep-drift": {"endpoint": "churn-ep", "every": "1h", "window": "2h"}},
        "triggers": {
            "retrain-on-drift": {"pipeline": "retrain", "event": "alarm.state_changed",
                                 "where": {"alarm": "churn-drift", "new_state": "ALARM"},
                                 "params": {"reason": "${event.payload.reason}"}, "cooldown": "1h"},
            "nightly": {"pipeline": "retrain", "cron": "0 3 * * *", "params": {"slot": "${schedule.time}"}},
        },
    }
    doc.update(overrides)
    path = folder / "stack.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _mk(p: Path) -> Path:
    p.mkdir(parents=True)
    return p


@pytest.fixture
def served(ws: Workspace, linear_pkg: Path) -> Workspace:
    """Model churn:1 registered (what the stack's endpoint serves)."""
    data = Catalog(ws).write("churn", churn(300, seed=1))
    register_model(ws, record_run(ws, linear_pkg, data=data), "churn")
    return ws


def _actions(plan: object) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in plan.changes]  # type: ignore[attr-defined]


def test_apply_creates_then_changes_nothing(served: Workspace, tmp_path: Path) -> None:
    ws = served
    path = _stack(tmp_path, endpoints={"churn-ep": {"model": "churn:1", "capture_percentage": 100}})
    plan = plan_stack(ws, path)
    assert not plan.applied and plan.stack == "churn"
    assert _actions(plan) == [("create", "pipeline", "retrain"), ("create", "endpoint", "churn-ep"),
                              ("create", "alarm", "churn-drift"), ("create", "monitoring_schedule", "churn-ep-drift"),
                              ("create", "trigger", "retrain-on-drift"), ("create", "trigger", "nightly")]
    assert list_triggers(ws) == [] and eps.list_endpoints(ws) == []   # a dry run writes nothing
    applied = apply_stack(ws, path)
    assert applied.applied and applied.counts == {"create": 6, "update": 0, "unchanged": 0, "delete": 0}
    assert eps.get_endpoint(ws, "churn-ep").config.capture.percentage == 100
    assert alarms.get_alarm(ws, "churn-drift").treat_missing == "ignore"
    assert get_monitor_schedule(ws, "churn-ep-drift").window_s == 7200
    t = get_trigger(ws, "retrain-on-drift")
    assert t.pipeline_source == "retrain" and t.cooldown_s == 3600 and t.event_filter["alarm"] == "churn-drift"
    assert get_registered_pipeline(ws, "retrain").source == str(tmp_path / "pipes" / "retrain.yaml")
    version = eps.get_endpoint(ws, "churn-ep").version
    again = apply_stack(ws, path)
    assert again.applied and not again.changed and {c.action for c in again.changes} == {"unchanged"}
    assert eps.get_endpoint(ws, "churn-ep").version == version       # not redeployed
    assert len(stack_resources(ws, "churn")) == 6


def test_updates_show_what_differs_and_drift_is_repaired(ws: Workspace, tmp_path: Path) -> None:
    path = _stack(tmp_path, monitoring_schedules={})
    apply_stack(ws, path)
    # someone changed the alarm by hand; the file changes a trigger and the pipeline
    alarms.put_alarm(ws, "churn-drift", metric="dataset_drift_share", threshold=0.9, comparison=">",
                     dimensions={"endpoint": "churn-ep", "monitor": "data_quality"}, period_s=3600,
                     treat_missing="ignore")
    doc = yaml.safe_load(path.read_text())
    doc["triggers"]["nightly"]["cron"] = "0 4 * * *"
    path.write_text(yaml.safe_dump(doc))
    (tmp_path / "pipes" / "retrain.yaml").write_text(
        (tmp_path / "pipes" / "retrain.yaml").read_text().replace("name: rec", "name: record"))
    plan = apply_stack(ws, path)
    changes = {(c.kind, c.name): c for c in plan.changes}
    assert changes[("alarm", "churn-drift")].action == "update"
    assert changes[("alarm", "churn-drift")].details == ("threshold: 0.9 -> 0.3",)
    assert changes[("trigger", "nightly")].action == "update"
    assert "schedule: 0 4 * * * -> 0 3 * * *" not in changes[("trigger", "nightly")].details
    assert any(d.startswith("schedule: 0 3 * * * -> 0 4 * * *") for d in changes[("trigger", "nightly")].details)
    assert changes[("pipeline", "retrain")].action == "update"
    assert alarms.get_alarm(ws, "churn-drift").threshold == 0.3
    assert get_trigger(ws, "nightly").schedule == "0 4 * * *"
    assert not apply_stack(ws, path).changed


def test_prune_deletes_what_the_stack_no_longer_declares(ws: Workspace, tmp_path: Path) -> None:
    path = _stack(tmp_path, monitoring_schedules={})
    apply_stack(ws, path)
    alarms.put_alarm(ws, "hand-made", metric="m", threshold=1, comparison=">")   # not the stack's: never pruned
    doc = yaml.safe_load(path.read_text())
    del doc["triggers"]["nightly"]
    del doc["alarms"]
    doc["triggers"]["retrain-on-drift"]["where"] = {"new_state": "ALARM"}
    path.write_text(yaml.safe_dump(doc))
    kept = apply_stack(ws, path)
    assert [(c.kind, c.name) for c in kept.orphans] == [("trigger", "nightly"), ("alarm", "churn-drift")]
    assert "delete" not in {c.action for c in kept.changes} and get_trigger(ws, "nightly")
    dry = plan_stack(ws, path, prune=True)
    assert [x for x in _actions(dry) if x[0] == "delete"] == [("delete", "trigger", "nightly"),
                                                              ("delete", "alarm", "churn-drift")]
    pruned = apply_stack(ws, path, prune=True)
    assert pruned.counts["delete"] == 2 and pruned.orphans == ()
    assert [t.name for t in list_triggers(ws)] == ["retrain-on-drift"]
    assert [a.name for a in alarms.list_alarms(ws)] == ["hand-made"]
    assert not apply_stack(ws, path, prune=True).changed
    # an empty stack of the same name prunes everything it made
    empty = tmp_path / "empty.yaml"
    empty.write_text("name: churn\n")
    assert apply_stack(ws, empty, prune=True).counts["delete"] == 2
    assert list_triggers(ws) == [] and list_registered_pipelines(ws) == [] and stack_resources(ws) == []


def test_an_invalid_file_applies_nothing_and_lists_every_problem(ws: Workspace, tmp_path: Path) -> None:
    path = _stack(
        tmp_path,
        alarms={"a": {"metric": "m", "threshold": 1, "comparision": ">"}},
        triggers={"t": {"pipeline": "retrain", "evnt": "x"},
                  "u": {"pipeline": "missing-pipe", "event": "dataset.version_created"},
                  "v": {"pipeline": "retrain", "event": "alarm.state_changed", "where": {"alarm": "ghost"}}},
        monitoring_schedules={"m": {"endpoint": "nowhere", "every": "1h"}},
        endponts={},
    )
    with pytest.raises(InvalidInput) as e:
        apply_stack(ws, path)
    msg = str(e.value)
    assert "nothing was applied" in msg and "problems" in msg
    assert "stack: unknown key 'endponts' (did you mean 'endpoints'?)" in msg
    assert "alarms.a: unknown key 'comparision' (did you mean 'comparison'?)" in msg
    assert "triggers.t: unknown key 'evnt' (did you mean 'event'?)" in msg
    assert "triggers.u: no pipeline 'missing-pipe'" in msg
    assert "triggers.v: where: alarm 'ghost' is neither in this stack nor in the workspace" in msg
    assert "monitoring_schedules.m: no endpoint named 'nowhere'" in msg
    assert list_registered_pipelines(ws) == [] and list_triggers(ws) == [] and alarms.list_alarms(ws) == []
    assert list_monitor_schedules(ws) == []
    bad_model = _stack(tmp_path, endpoints={"ep": {"model": "nope:1"}}, monitoring_schedules={})
    with pytest.raises(InvalidInput, match=r"endpoints.ep: .*nope"):
        apply_stack(ws, bad_model)
    for text, msg in [("[1, 2]", "a stack file is a mapping"), ("a: [", "not valid YAML"),
                      ("alarms: [1]", "alarms: must map names"), ("name: 5", "the stack's name must be text")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InvalidInput, match=msg):
            apply_stack(ws, bad)
    with pytest.raises(InvalidInput, match="stack file not found"):
        apply_stack(ws, tmp_path / "nope.yaml")


def test_a_resource_of_another_stack_is_not_taken_over(ws: Workspace, tmp_path: Path) -> None:
    apply_stack(ws, {"name": "a", "alarms": {"x": {"metric": "m", "threshold": 1, "comparison": ">"}}})
    with pytest.raises(InvalidInput, match=r"alarms\.x: belongs to stack 'a'"):
        apply_stack(ws, {"name": "b", "alarms": {"x": {"metric": "m", "threshold": 2, "comparison": ">"}}})
    assert alarms.get_alarm(ws, "x").threshold == 1
