"""Monitoring schedules: registered, run by the scheduler over captured data, recorded; alarms and triggers follow."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml._util import utcnow
from loopml.data import Catalog
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.metrics import alarms
from loopml.monitor import baseline, get_result
from loopml.serve.capture import CaptureWriter
from loopml.store import EntityRef
from loopml.triggers import (
    Scheduler,
    add_monitor_schedule,
    add_trigger,
    get_monitor_schedule,
    list_firings,
    list_monitor_runs,
    list_monitor_schedules,
    remove_monitor_schedule,
    run_monitor_schedule,
    run_scheduler,
)
from loopml.triggers.schedules import parse_schedule, slot_key
from tests.triggers._helpers import record_pipeline


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    return pd.DataFrame({"x": r.normal(shift, 1.0, n), "c": r.choice(["a", "b", "c"], n)})


def _capture(ws: Workspace, endpoint: str, frame: pd.DataFrame) -> None:
    w = CaptureWriter(ws, endpoint, flush_interval_s=0.05)
    for start in range(0, len(frame), 50):
        part = frame.iloc[start:start + 50]
        preds = json.dumps({"predictions": [{"prediction": 0}] * len(part)}).encode()
        assert w.record(variant="AllTraffic", model="churn:1", inference_id=f"r{start}",
                        request_body=part.to_json(orient="records").encode(), request_content_type="application/json",
                        response_body=preds, response_content_type="application/json", latency_ms=1.0,
                        input_columns=["x", "c"])
    w.close()


@pytest.fixture
def drifted(ws: Workspace) -> Workspace:
    """A baseline ``ref-1`` and drifted traffic captured for endpoint ``ep`` (not deployed)."""
    Catalog(ws).write("ref", _frame(300, 1))
    baseline(ws, "ref")
    _capture(ws, "ep", _frame(200, 2, shift=3.0))
    return ws


def test_a_schedule_runs_the_monitor_records_it_and_the_alarm_and_trigger_follow(drifted: Workspace) -> None:
    ws = drifted
    s = add_monitor_schedule(ws, "ep", every="1h", baseline="ref-1", window="2h")
    assert (s.name, s.kind, s.schedule, s.window_s) == ("ep-data-quality", "data_quality", "every 1h", 7200)
    # a drift alarm over the schedule's period: between runs it keeps its state
    alarms.put_alarm(ws, "ep-drift", metric="dataset_drift_share", threshold=0.3, comparison=">",
                     dimensions={"endpoint": "ep", "monitor": "data_quality"}, period_s=3600,
                     treat_missing="ignore")
    add_trigger(ws, "retrain", pipeline=record_pipeline(), event_type="alarm.state_changed", executor="thread",
                event_filter={"alarm": "ep-drift", "new_state": "ALARM"},
                params={"reason": "${event.payload.alarm} is ${event.payload.new_state}"})
    now = parse_schedule("every 1h").next_slot(s.created_at) + timedelta(seconds=1)
    assert Scheduler(ws).tick(now - timedelta(seconds=2)).monitor_runs == []  # not due before its first slot
    stats = run_scheduler(ws, once=True, now=now)
    assert stats.monitor_runs == 1 and stats.firings == 1 and stats.errors == 0
    [run] = list_monitor_runs(ws, schedule="ep-data-quality")
    assert run.status == "CompletedWithViolations" and run.violation_count and run.error is None
    assert run.until == now and run.until - run.since == timedelta(hours=2) and run.ended_at is not None
    res = get_result(ws, str(run.result_id))
    assert res.summary["item_count"] == 200 and "x" in res.summary["flagged_features"]
    assert res.baseline_id is not None and res.until == run.until
    assert ws.metrics.query("dataset_drift_share", dimensions={"endpoint": "ep"})[0].value >= 0.5
    assert any(e.dst == EntityRef("monitoring_result", res.id)
               for e in ws.lineage.downstream(EntityRef("monitor_schedule", "ep-data-quality"), depth=1))
    assert alarms.get_alarm(ws, "ep-drift").state == "ALARM"
    [f] = list_firings(ws, trigger="retrain")
    assert f.status == "Succeeded" and f.params["reason"] == "ep-drift is ALARM"
    # nothing more is due in this slot; the next one runs again
    nxt = Scheduler(ws)
    assert nxt.tick(now + timedelta(minutes=30)).monitor_runs == []
    assert nxt.tick(now + timedelta(hours=1)).monitor_runs == [
        f"ep-data-quality@{slot_key(run.slot + timedelta(hours=1))}"]
    assert nxt.wait(20)
    nxt.close()
    assert len(list_monitor_runs(ws)) == 2


def test_a_failed_run_is_recorded_and_an_empty_window_is_NoData(drifted: Workspace) -> None:
    ws = drifted
    add_monitor_schedule(ws, "ep", cron="*/5 * * * *", name="ok")
    r = run_monitor_schedule(ws, "ok")  # default baseline: the endpoint serves no registered model
    assert r.status == "Failed" and "no data-quality baseline for endpoint 'ep'" in str(r.error)
    assert r.result_id is None and r.until - r.since == timedelta(minutes=5)
    add_monitor_schedule(ws, "ep", every="1h", baseline="ref-1", window="1m", name="later")
    empty = run_monitor_schedule(ws, "later", now=utcnow() + timedelta(hours=2))
    assert empty.status == "NoData" and empty.violation_count == 0 and empty.result_id
    assert [x.status for x in list_monitor_runs(ws)] == ["NoData", "Failed"]


def test_validation_and_crud(drifted: Workspace) -> None:
    ws = drifted
    with pytest.raises(InvalidInput, match="exactly one of --every"):
        add_monitor_schedule(ws, "ep")
    with pytest.raises(InvalidInput, match="exactly one of --every"):
        add_monitor_schedule(ws, "ep", every="1h", cron="0 * * * *")
    with pytest.raises(NotFound, match="no endpoint named 'ghost'"):
        add_monitor_schedule(ws, "ghost", every="1h")
    with pytest.raises(InvalidInput, match="monitor kind 'drift' is not one of"):
        add_monitor_schedule(ws, "ep", every="1h", kind="drift")
    with pytest.raises(NotFound, match="no data_quality baseline named 'nope'"):
        add_monitor_schedule(ws, "ep", every="1h", baseline="nope")
    with pytest.raises(InvalidInput, match="a model_quality monitor takes no baseline"):
        add_monitor_schedule(ws, "ep", every="1h", kind="model-quality", baseline="ref-1")
    with pytest.raises(InvalidInput, match="the bias monitor needs option 'positive_label'"):
        add_monitor_schedule(ws, "ep", every="1h", kind="bias")
    with pytest.raises(InvalidInput, match="no option 'threshhold' \\(did you mean 'threshold'\\?\\)"):
        add_monitor_schedule(ws, "ep", every="1h", kind="attribution", options={"threshhold": 0.9})
    with pytest.raises(InvalidInput, match="window must be longer than 0s"):
        add_monitor_schedule(ws, "ep", every="1h", window="0s")
    s = add_monitor_schedule(ws, "ep", every="1h", kind="bias", options={"facet": "c", "positive_label": 1,
                                                                         "label": "y"})
    assert s.name == "ep-bias" and s.options == {"facet": "c", "positive_label": 1, "label": "y"}
    with pytest.raises(Conflict, match="monitoring schedule 'ep-bias' exists"):
        add_monitor_schedule(ws, "ep", every="1h", kind="bias", options=s.options)
    s2 = add_monitor_schedule(ws, "ep", cron="0 0 * * *", kind="bias", options=s.options, replace=True)
    assert s2.schedule == "0 0 * * *" and s2.created_at == s.created_at
    assert [x.name for x in list_monitor_schedules(ws)] == ["ep-bias"]
    assert list_monitor_schedules(ws, endpoint="other") == []
    remove_monitor_schedule(ws, "ep-bias")
    with pytest.raises(NotFound, match="no monitoring schedule 'ep-bias'"):
        get_monitor_schedule(ws, "ep-bias")
