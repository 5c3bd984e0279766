"""Triggers: validation, event and alarm triggers, failures, cooldown, manual firing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from loopml import Workspace
from loopml._util import utcnow
from loopml.data import Catalog
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.metrics import alarms
from loopml.pipelines import get_execution, list_executions
from loopml.store import EntityRef
from loopml.triggers import (
    Scheduler,
    add_trigger,
    disable_trigger,
    enable_trigger,
    fire_trigger,
    get_trigger,
    list_firings,
    list_triggers,
    remove_trigger,
)
from tests.triggers._helpers import failing_pipeline, record_pipeline, write_yaml_pipeline

NEW_DATA = "dataset.version_created"


def _write(ws: Workspace, name: str = "churn", n: int = 3) -> int:
    Catalog(ws).write(name, pd.DataFrame({"a": list(range(n))}))
    return ws.events.list(type=NEW_DATA)[-1].id


def _tick(ws: Workspace, now: object = None) -> list[str]:
    s = Scheduler(ws)
    r = s.tick(now)  # type: ignore[arg-type]
    assert s.wait(20)
    s.close()
    assert r.errors == []
    return r.firings


def test_event_trigger_starts_one_execution_with_params_from_the_event(any_ws: Workspace) -> None:
    ws = any_ws
    _write(ws, "before")  # older than the trigger: never fires it
    add_trigger(ws, "new-data", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread",
                params={"dataset": "${event.payload.dataset}:${event.payload.version}", "reason": "${event.type}"})
    ev = _write(ws)
    assert _tick(ws) == [f"new-data#{ev}"]
    [f] = list_firings(ws, trigger="new-data")
    assert (f.status, f.source, f.event_id, f.fire_key, f.error) == ("Succeeded", "event", ev, str(ev), None)
    assert f.params == {"dataset": "churn:1", "reason": NEW_DATA}
    ex = get_execution(ws, str(f.execution_id))
    assert ex.status == "Succeeded" and ex.idempotency_key == f"trigger:new-data:{ev}"
    assert ex.params == {"dataset": "churn:1", "reason": NEW_DATA, "slot": ""}
    assert ex.outputs["rec"]["dataset"] == "churn:1"
    # ticking again starts nothing: the cursor moved past the event and the firing is recorded
    assert _tick(ws) == []
    assert len(list_executions(ws, pipeline="rec")) == 1
    # lineage: trigger -> execution, and the new dataset version -> execution
    assert any(e.dst == ex.entity for e in ws.lineage.downstream(EntityRef("trigger", "new-data"), depth=1))
    assert any(e.dst == ex.entity and e.relation == "triggered" for e in ws.lineage.upstream(ex.entity, depth=1))


def test_filters_globs_and_the_own_pipeline_loop_guard(ws: Workspace) -> None:
    add_trigger(ws, "only-sales", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread",
                event_filter={"dataset": "sales"}, params={"dataset": "${event.payload.dataset}"})
    # fires on every pipeline event, but never on its own pipeline's (it would fire forever)
    add_trigger(ws, "any-pipeline", pipeline=record_pipeline("echo"), event_type="pipeline.*", executor="thread",
                params={"reason": "${event.type}"})
    _write(ws, "churn")
    ev = _write(ws, "sales")
    assert sorted(_tick(ws)) == [f"only-sales#{ev}"]
    fired = _tick(ws)  # the rec execution's started/finished events
    assert len(fired) == 2 and all(x.startswith("any-pipeline#") for x in fired)
    assert _tick(ws) == []  # echo's own events do not fire any-pipeline
    reasons = sorted(f.params["reason"] for f in list_firings(ws, trigger="any-pipeline"))
    assert reasons == ["pipeline.execution_finished", "pipeline.execution_started"]


def test_alarm_trigger_fires_on_ALARM_only(ws: Workspace) -> None:
    alarms.put_alarm(ws, "churn-drift", metric="dataset_drift_share", threshold=0.3, comparison=">",
                     dimensions={"endpoint": "ep"})
    add_trigger(ws, "retrain", pipeline=record_pipeline(), event_type="alarm.state_changed", executor="thread",
                event_filter={"alarm": "churn-drift", "new_state": "ALARM"},
                params={"reason": "${event.payload.reason}"})
    now = utcnow()
    ws.metrics.put("dataset_drift_share", 0.9, dimensions={"endpoint": "ep", "monitor": "data_quality"},
                   timestamp=now - timedelta(seconds=5))
    fired = _tick(ws, now)  # the tick evaluates the alarm first, then reads its event
    assert len(fired) == 1 and fired[0].startswith("retrain#")
    assert alarms.get_alarm(ws, "churn-drift").state == "ALARM"
    [f] = list_firings(ws, trigger="retrain")
    assert f.status == "Succeeded" and "0.9" in f.params["reason"]
    # back to OK: an alarm.state_changed event, but not one the filter takes
    later = now + timedelta(minutes=2)
    ws.metrics.put("dataset_drift_share", 0.1, dimensions={"endpoint": "ep", "monitor": "data_quality"},
                   timestamp=later - timedelta(seconds=5))
    assert _tick(ws, later) == []
    assert alarms.get_alarm(ws, "churn-drift").state == "OK" and len(list_firings(ws)) == 1


def test_failures_are_recorded_and_the_scheduler_goes_on(ws: Workspace) -> None:
    add_trigger(ws, "boom", pipeline=failing_pipeline(), event_type=NEW_DATA, executor="thread",
                params={"dataset": "${event.payload.dataset}"})
    add_trigger(ws, "ok", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread")
    add_trigger(ws, "bad-template", pipeline=record_pipeline("rec2"), event_type=NEW_DATA, executor="thread",
                params={"dataset": "${event.payload.no_such_field}"})
    ev = _write(ws)
    fired = _tick(ws)
    assert f"ok#{ev}" in fired and f"boom#{ev}" in fired
    by = {f.trigger: f for f in list_firings(ws)}
    assert by["ok"].status == "Succeeded"
    assert by["boom"].status == "Failed" and "cannot process churn" in str(by["boom"].error)
    assert by["boom"].execution_id is not None
    assert by["bad-template"].status == "Failed" and by["bad-template"].execution_id is None
    assert "event.payload has no 'no_such_field'" in str(by["bad-template"].error)


def test_cooldown_skips_and_records(ws: Workspace) -> None:
    add_trigger(ws, "calm", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread", cooldown_s="1h")
    first = _write(ws, n=3)
    second = _write(ws, n=4)
    fired = _tick(ws)
    [skipped] = list_firings(ws, status="Skipped")
    assert fired == [f"calm#{first}", f"calm#{second} (Skipped: {skipped.error})"]
    assert skipped.status == "Skipped" and "cooldown" in str(skipped.error) and skipped.execution_id is None
    assert len(list_executions(ws, pipeline="rec")) == 1


def test_validation(ws: Workspace, tmp_path: Path) -> None:
    p = record_pipeline()
    with pytest.raises(InvalidInput, match="exactly one of a schedule"):
        add_trigger(ws, "t", pipeline=p)
    with pytest.raises(InvalidInput, match="exactly one of a schedule"):
        add_trigger(ws, "t", pipeline=p, schedule="every 1h", event_type=NEW_DATA)
    with pytest.raises(InvalidInput, match="no parameter 'datset' \\(did you mean 'dataset'\\?\\)"):
        add_trigger(ws, "t", pipeline=p, event_type=NEW_DATA, params={"datset": "x"})
    with pytest.raises(InvalidInput, match=r"\$\{event.payload.x\} is not available to a schedule trigger"):
        add_trigger(ws, "t", pipeline=p, schedule="every 1h", params={"dataset": "${event.payload.x}"})
    with pytest.raises(InvalidInput, match="applies to event triggers"):
        add_trigger(ws, "t", pipeline=p, schedule="every 1h", event_filter={"a": 1})
    with pytest.raises(InvalidInput, match="event type 'bad type!'"):
        add_trigger(ws, "t", pipeline=p, event_type="bad type!")
    with pytest.raises(InvalidInput, match="5 fields"):
        add_trigger(ws, "t", pipeline=p, schedule="0 * *")
    with pytest.raises(InvalidInput, match="executor 'gpu'"):
        add_trigger(ws, "t", pipeline=p, schedule="every 1h", executor="gpu")
    with pytest.raises(InvalidInput, match="trigger name"):
        add_trigger(ws, "no spaces", pipeline=p, schedule="every 1h")
    with pytest.raises(NotFound, match="no pipeline 'retrain': not a file nor a registered pipeline"):
        add_trigger(ws, "t", pipeline="retrain", schedule="every 1h")
    with pytest.raises(InvalidInput, match="pipeline file not found"):
        add_trigger(ws, "t", pipeline=str(tmp_path / "missing.yaml"), schedule="every 1h")
    from loopml.pipelines import Param, Pipeline

    needs = Pipeline("needs", params={"dataset": Param(str)})
    needs.add("tests.triggers._steps:record", name="r", dataset=needs.param("dataset"))
    with pytest.raises(InvalidInput, match="needs parameter 'dataset'"):
        add_trigger(ws, "t", pipeline=needs, event_type=NEW_DATA)
    local = Pipeline("local")
    local.add(lambda: {"x": 1}, name="anon")
    with pytest.raises(InvalidInput, match="a trigger keeps only the definition"):
        add_trigger(ws, "t", pipeline=local, schedule="every 1h")
    assert list_triggers(ws) == []


def test_crud_and_a_pipeline_file(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_yaml_pipeline(tmp_path)
    monkeypatch.chdir(tmp_path)
    t = add_trigger(ws, "nightly", pipeline="retrain.yaml", schedule="0 3 * * *", params={"slot": "${schedule.time}"},
                    description="every night")
    assert t.pipeline_source == str(tmp_path / "retrain.yaml") and t.pipeline == "retrain"
    assert t.pipeline_definition["name"] == "retrain" and len(t.pipeline_version) == 64
    assert (t.kind, t.rule, t.enabled, t.executor) == ("schedule", "0 3 * * *", True, "local")
    with pytest.raises(Conflict, match="trigger 'nightly' exists"):
        add_trigger(ws, "nightly", pipeline="retrain.yaml", schedule="every 1h")
    t2 = add_trigger(ws, "nightly", pipeline="retrain.yaml", schedule="every 1h", replace=True, executor="thread")
    assert t2.rule == "every 1h" and t2.created_at == t.created_at and t2.last_slot is not None
    assert not disable_trigger(ws, "nightly").enabled and list_triggers(ws, enabled=True) == []
    assert enable_trigger(ws, "nightly").enabled
    assert [x.name for x in list_triggers(ws)] == ["nightly"]
    with pytest.raises(NotFound, match="no trigger 'nighty' \\(did you mean 'nightly'\\?\\)"):
        get_trigger(ws, "nighty")
    remove_trigger(ws, "nightly")
    with pytest.raises(NotFound):
        remove_trigger(ws, "nightly")


def test_manual_firing(ws: Workspace) -> None:
    add_trigger(ws, "t", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread",
                params={"dataset": "${event.payload.dataset}"})
    # no event: the template needs a value
    f = fire_trigger(ws, "t")
    assert f.status == "Failed" and "give the value with --param" in str(f.error)
    f = fire_trigger(ws, "t", params={"dataset": "by-hand"}, key="k1")
    assert f.status == "Succeeded" and f.params["dataset"] == "by-hand" and f.fire_key == "manual-k1"
    assert fire_trigger(ws, "t", params={"dataset": "again"}, key="k1").id == f.id  # idempotent by key
    # firing for an event uses the scheduler's key: the scheduler does not fire it again
    ev = _write(ws)
    by_hand = fire_trigger(ws, "t", event_id=ev)
    assert by_hand.status == "Succeeded" and by_hand.params == {"dataset": "churn"}
    assert _tick(ws) == []
    assert len(list_executions(ws, pipeline="rec")) == 2
    with pytest.raises(NotFound, match="no event 999"):
        fire_trigger(ws, "t", event_id=999)
    alarms.put_alarm(ws, "a", metric="m", threshold=1, comparison=">")
    alarms.set_alarm_state(ws, "a", "ALARM", "drill")
    other = ws.events.list(type="alarm.state_changed")[-1].id
    with pytest.raises(InvalidInput, match=r"is a 'alarm\.state_changed' event"):
        fire_trigger(ws, "t", event_id=other)
    with pytest.raises(InvalidInput, match="key 'a b'"):
        fire_trigger(ws, "t", key="a b")
