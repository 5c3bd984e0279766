"""Alarms: configuration, N-of-M evaluation, missing data, history, events, webhook actions."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loopml import InvalidInput, NotFound, Workspace
from loopml.metrics import (
    ALARM,
    ALARM_STATE_CHANGED,
    INSUFFICIENT_DATA,
    OK,
    alarm_history,
    alarms,
    delete_alarm,
    evaluate_alarms,
    get_alarm,
    list_alarms,
    put_alarm,
    set_alarm_state,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
DIMS = {"endpoint": "churn"}


def _at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def _put(ws: Workspace, minute: float, value: float, name: str = "Errors") -> None:
    ws.metrics.put(name, value, dimensions={"endpoint": "churn", "variant": "v1"},
                   timestamp=_at(minute) + timedelta(seconds=1))


def _events(ws: Workspace) -> list[dict[str, Any]]:
    return [e.payload for e in ws.events.list(type=ALARM_STATE_CHANGED)]


def _alarm(ws: Workspace, **kw: Any) -> alarms.AlarmInfo:
    args: dict[str, Any] = dict(metric="Errors", threshold=5, comparison=">", dimensions=DIMS,
                                statistic="Sum", period_s=60)
    args.update(kw)
    return put_alarm(ws, "errors-high", **args)


# -- configuration -----------------------------------------------------------------------
def test_put_get_list_update_delete(any_ws: Workspace) -> None:
    ws = any_ws
    a = _alarm(ws, evaluation_periods=3, datapoints_to_alarm=2, treat_missing="notbreaching",
               actions=["event", "webhook:http://127.0.0.1:9/hook"], description="5xx burst")
    assert a.state == INSUFFICIENT_DATA and a.comparison == "GreaterThanThreshold"
    assert a.treat_missing == "notBreaching" and a.datapoints_to_alarm == 2
    assert a.actions == ("event", "webhook:http://127.0.0.1:9/hook")
    assert get_alarm(ws, "errors-high") == a
    assert a.to_dict()["dimensions"] == DIMS
    put_alarm(ws, "b-alarm", metric="Invocations", threshold=1, comparison="LessThanThreshold")
    assert [x.name for x in list_alarms(ws)] == ["b-alarm", "errors-high"]
    assert [x.name for x in list_alarms(ws, state="insufficient_data")] == ["b-alarm", "errors-high"]
    # update keeps the state and creation time, replaces the configuration
    set_alarm_state(ws, "errors-high", ALARM, "drill")
    b = _alarm(ws, threshold=9.5)
    assert b.threshold == 9.5 and b.state == ALARM and b.created_at == a.created_at
    assert b.datapoints_to_alarm == 1 and b.actions == ()
    delete_alarm(ws, "errors-high")
    with pytest.raises(NotFound, match="no alarm named 'errors-high'"):
        get_alarm(ws, "errors-high")
    with pytest.raises(NotFound):
        delete_alarm(ws, "errors-high")
    with pytest.raises(NotFound):
        alarm_history(ws, "errors-high")
    with pytest.raises(NotFound):
        evaluate_alarms(ws, names=["errors-high"])
    with pytest.raises(NotFound):
        set_alarm_state(ws, "errors-high", OK, "x")


@pytest.mark.parametrize(("kw", "match"), [
    ({"comparison": "above"}, "unknown comparison 'above'.*GreaterThanThreshold"),
    ({"statistic": "Median"}, "unknown statistic"),
    ({"period_s": 0}, "period_s"),
    ({"period_s": -60}, "period_s"),
    ({"period_s": 1.5}, "period_s must be a positive whole number"),
    ({"evaluation_periods": 0}, "evaluation_periods"),
    ({"evaluation_periods": 2, "datapoints_to_alarm": 3}, r"datapoints_to_alarm \(3\) cannot exceed"),
    ({"threshold": float("nan")}, "threshold must be a finite number"),
    ({"threshold": float("inf")}, "threshold"),
    ({"threshold": "5"}, "threshold"),
    ({"treat_missing": "zero"}, "unknown treat_missing 'zero'.*notBreaching"),
    ({"actions": ["sns:arn:aws:sns:topic"]}, "unknown alarm action 'sns:.*webhook:URL"),
    ({"actions": ["webhook:ftp://x"]}, "http"),
    ({"actions": ["webhook:"]}, "http"),
    ({"metric": "bad metric"}, "metric name"),
    ({"dimensions": {"k": 1}}, "must be a string"),
])
def test_bad_configuration(ws: Workspace, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        _alarm(ws, **kw)
    assert list_alarms(ws) == []


def test_bad_alarm_name_and_state(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="alarm name"):
        put_alarm(ws, "no spaces", metric="M", threshold=1, comparison=">")
    _alarm(ws)
    with pytest.raises(InvalidInput, match="unknown alarm state 'RED'"):
        set_alarm_state(ws, "errors-high", "RED", "x")
    with pytest.raises(InvalidInput, match="reason"):
        set_alarm_state(ws, "errors-high", "OK", " ")
    with pytest.raises(InvalidInput, match="unknown alarm state"):
        list_alarms(ws, state="RED")


# -- evaluation --------------------------------------------------------------------------
def test_ok_alarm_ok_with_n_of_m(any_ws: Workspace) -> None:
    ws = any_ws
    _alarm(ws, evaluation_periods=3, datapoints_to_alarm=2)
    for minute, v in [(0, 1), (1, 7), (2, 2)]:
        _put(ws, minute, v)
    # 1 of 3 breaching: OK
    (c1,) = evaluate_alarms(ws, now=_at(3))
    assert (c1.old_state, c1.new_state) == (INSUFFICIENT_DATA, OK)
    assert [v for _, v in c1.datapoints] == [1.0, 7.0, 2.0]
    assert "1 of the last 3" in c1.reason
    assert evaluate_alarms(ws, now=_at(3)) == []  # no change, nothing recorded
    # minute 3 breaches too: 2 of the last 3 (1, 2, 3) -> ALARM
    _put(ws, 3, 6)
    (c2,) = evaluate_alarms(ws, now=_at(4))
    assert (c2.old_state, c2.new_state) == (OK, ALARM)
    assert [(t, v) for t, v in c2.datapoints] == [(_at(1), 7.0), (_at(2), 2.0), (_at(3), 6.0)]
    assert "greater than the threshold (5)" in c2.reason
    assert get_alarm(ws, "errors-high").state == ALARM
    # windows (2, 6, 8) and (6, 8, 0) still have 2 breaching: no change
    _put(ws, 4, 8)
    _put(ws, 5, 0)
    assert evaluate_alarms(ws, now=_at(5)) == []
    assert evaluate_alarms(ws, now=_at(6)) == []
    # (8, 0, 0): one breaching, back to OK
    _put(ws, 6, 0)
    (c3,) = evaluate_alarms(ws, now=_at(7))
    assert (c3.old_state, c3.new_state) == (ALARM, OK)
    history = alarm_history(ws, "errors-high")
    assert [(h.old_state, h.new_state) for h in history] == [(ALARM, OK), (OK, ALARM), (INSUFFICIENT_DATA, OK)]
    assert history[1].datapoints == c2.datapoints and history[1].reason == c2.reason
    events = _events(ws)
    assert [(e["old_state"], e["new_state"]) for e in events] == [
        (INSUFFICIENT_DATA, OK), (OK, ALARM), (ALARM, OK)
    ]
    assert events[1] == {"alarm": "errors-high", "old_state": OK, "new_state": ALARM, "reason": c2.reason,
                         "metric": "Errors", "dimensions": DIMS}
    e = ws.events.list(type=ALARM_STATE_CHANGED)[0]
    assert (e.entity.kind, e.entity.id) == ("alarm", "errors-high")


def test_only_named_alarms_are_evaluated(ws: Workspace) -> None:
    _alarm(ws)
    put_alarm(ws, "other", metric="Errors", threshold=0, comparison=">")
    _put(ws, 0, 9)
    changes = evaluate_alarms(ws, names=["other"], now=_at(1))
    assert [c.alarm for c in changes] == ["other"]
    assert get_alarm(ws, "errors-high").state == INSUFFICIENT_DATA
    assert [c.alarm for c in evaluate_alarms(ws, now=_at(1))] == ["errors-high"]


@pytest.mark.parametrize(("comparison", "value", "breach"), [
    (">", 5, False), (">=", 5, True), ("<", 5, False), ("<=", 5, True),
    ("GreaterThanThreshold", 5.01, True), ("LessThanThreshold", 4.99, True),
])
def test_comparisons(ws: Workspace, comparison: str, value: float, breach: bool) -> None:
    _alarm(ws, comparison=comparison)
    _put(ws, 0, value)
    (c,) = evaluate_alarms(ws, now=_at(1))
    assert c.new_state == (ALARM if breach else OK)


def test_percentile_alarm(ws: Workspace) -> None:
    _alarm(ws, statistic="p90", threshold=50, metric="Latency")
    for i in range(100):
        ws.metrics.put("Latency", float(i), dimensions=DIMS, timestamp=_at(0) + timedelta(milliseconds=10 * i))
    (c,) = evaluate_alarms(ws, now=_at(1))
    assert c.new_state == ALARM and c.datapoints[0][1] == pytest.approx(89.1)


# (window of 3 periods, 2 needed) -> expected state per treat_missing, from INSUFFICIENT_DATA
# None in a window is a missing period; "keep" = state kept.
CASES = [
    ([None, None, None], {"missing": INSUFFICIENT_DATA, "ignore": "keep", "breaching": ALARM,
                          "notBreaching": OK}),
    ([1, None, None], {"missing": OK, "ignore": "keep", "breaching": ALARM, "notBreaching": OK}),
    ([None, None, 9], {"missing": ALARM, "ignore": "keep", "breaching": ALARM, "notBreaching": OK}),
    ([1, 2, None], {"missing": OK, "ignore": OK, "breaching": OK, "notBreaching": OK}),
    ([9, None, 9], {"missing": ALARM, "ignore": ALARM, "breaching": ALARM, "notBreaching": ALARM}),
    ([9, 1, None], {"missing": OK, "ignore": "keep", "breaching": ALARM, "notBreaching": OK}),
]


@pytest.mark.parametrize("treat", ["missing", "ignore", "breaching", "notBreaching"])
@pytest.mark.parametrize(("window", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_treat_missing(ws: Workspace, treat: str, window: list[float | None],
                       expected: dict[str, str]) -> None:
    _alarm(ws, evaluation_periods=3, datapoints_to_alarm=2, treat_missing=treat)
    for minute, v in enumerate(window):
        if v is not None:
            _put(ws, minute, v)
    changes = evaluate_alarms(ws, now=_at(3))
    want = INSUFFICIENT_DATA if expected[treat] == "keep" else expected[treat]
    assert get_alarm(ws, "errors-high").state == want
    assert [c.new_state for c in changes] == ([] if want == INSUFFICIENT_DATA else [want])


def test_ignore_keeps_alarm_state_when_data_stops(ws: Workspace) -> None:
    _alarm(ws, treat_missing="ignore")
    _put(ws, 0, 9)
    assert [c.new_state for c in evaluate_alarms(ws, now=_at(1))] == [ALARM]
    assert evaluate_alarms(ws, now=_at(10)) == []
    _alarm(ws, treat_missing="missing")
    (c,) = evaluate_alarms(ws, now=_at(10))
    assert c.new_state == INSUFFICIENT_DATA and "no datapoints" in c.reason and c.datapoints == ()


def test_set_alarm_state_and_event_exactly_once(any_ws: Workspace) -> None:
    ws = any_ws
    _alarm(ws)
    c = set_alarm_state(ws, "errors-high", "alarm", "drill: testing the rollback")
    assert c is not None and (c.old_state, c.new_state) == (INSUFFICIENT_DATA, ALARM)
    assert set_alarm_state(ws, "errors-high", ALARM, "again") is None
    assert len(_events(ws)) == 1
    info = get_alarm(ws, "errors-high")
    assert info.state_reason == "drill: testing the rollback"
    # concurrent evaluators record (and announce) one change between them
    _put(ws, 0, 0)
    results: list[int] = []

    def evaluate() -> None:
        results.append(len(evaluate_alarms(ws, now=_at(1))))

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 1
    assert [(e["old_state"], e["new_state"]) for e in _events(ws)] == [(INSUFFICIENT_DATA, ALARM), (ALARM, OK)]
    assert len(alarm_history(ws, "errors-high")) == 2


def test_delete_removes_history(ws: Workspace) -> None:
    _alarm(ws)
    set_alarm_state(ws, "errors-high", OK, "x")
    delete_alarm(ws, "errors-high")
    _alarm(ws)
    assert alarm_history(ws, "errors-high") == []


# -- webhook actions -----------------------------------------------------------------------
class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    status: int

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(  # type: ignore[attr-defined]
            {"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)}
        )
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_webhook_receives_every_change(ws: Workspace, hook: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{hook.server_address[1]}/alarms?x=1"
    _alarm(ws, actions=[f"webhook:{url}"], description="5xx burst")
    _put(ws, 0, 9)
    (c,) = evaluate_alarms(ws, now=_at(1))
    assert c.actions[0].ok and c.actions[0].status == 200 and c.actions[0].action == f"webhook:{url}"
    (got,) = hook.received  # type: ignore[attr-defined]
    assert got["path"] == "/alarms?x=1" and got["type"] == "application/json"
    body = got["body"]
    assert body["alarm"] == "errors-high" and body["new_state"] == ALARM
    assert body["old_state"] == INSUFFICIENT_DATA and body["reason"] == c.reason
    assert body["metric"] == "Errors" and body["dimensions"] == DIMS and body["threshold"] == 5
    assert body["datapoints"] == [{"timestamp": _at(0).isoformat(), "value": 9.0}]
    assert body["description"] == "5xx burst"
    assert alarm_history(ws, "errors-high")[0].actions == c.actions
    # an error status is recorded, not raised
    hook.status = 500  # type: ignore[attr-defined]
    c2 = set_alarm_state(ws, "errors-high", OK, "manual")
    assert c2 is not None and not c2.actions[0].ok and c2.actions[0].status == 500
    assert "HTTP 500" in (c2.actions[0].error or "")
    assert len(hook.received) == 2  # type: ignore[attr-defined]


def test_dead_webhook_is_recorded_not_raised(ws: Workspace) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _alarm(ws, actions=[f"webhook:http://127.0.0.1:{port}/hook"])
    c = set_alarm_state(ws, "errors-high", ALARM, "drill")
    assert c is not None and get_alarm(ws, "errors-high").state == ALARM
    (r,) = c.actions
    assert not r.ok and r.status is None and "Connect" in (r.error or "")
    (h,) = alarm_history(ws, "errors-high")
    assert h.actions == c.actions
    assert len(_events(ws)) == 1
