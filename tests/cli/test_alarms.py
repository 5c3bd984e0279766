"""``loopml alarms``: put, list, describe, evaluate, set-state, delete; one-line errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loopml import Workspace
from tests.cli._run import run

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A workspace with Errors = 1, 9, 8 in three minutes from T0."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    with Workspace.open(tmp_path) as ws:
        for minute, v in enumerate([1.0, 9.0, 8.0]):
            ws.metrics.put("Errors", v, dimensions={"endpoint": "churn", "variant": "v1"},
                           timestamp=T0 + timedelta(minutes=minute, seconds=5))
    return tmp_path


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_alarm_lifecycle(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "alarms", "put", "errors-high", "--metric", "Errors", "--threshold", "5",
                         "--comparison", ">", "--dimension", "endpoint=churn", "--statistic", "Sum",
                         "--period", "60", "--evaluation-periods", "3", "--datapoints", "2",
                         "--treat-missing", "notBreaching", "--description", "5xx burst")
    assert code == 0, err
    assert "errors-high" in out and "INSUFFICIENT_DATA" in out and "Sum(Errors) > 5 for 2 of 3" in out
    code, out, _ = run(capsys, "alarms", "list", "--json")
    (a,) = json.loads(out)
    assert a["comparison"] == "GreaterThanThreshold" and a["dimensions"] == {"endpoint": "churn"}
    assert a["treat_missing"] == "notBreaching" and a["datapoints_to_alarm"] == 2

    code, out, _ = run(capsys, "alarms", "evaluate", "--now", "2026-01-01T00:03:00Z", "--json")
    (c,) = json.loads(out)
    assert code == 0 and (c["old_state"], c["new_state"]) == ("INSUFFICIENT_DATA", "ALARM")
    assert [d["value"] for d in c["datapoints"]] == [1.0, 9.0, 8.0]
    code, out, _ = run(capsys, "alarms", "evaluate", "errors-high", "--now", "2026-01-01T00:03:00Z")
    assert code == 0 and "No state changes" in out
    code, out, _ = run(capsys, "alarms", "evaluate", "--now", "2026-01-01T00:05:00Z")
    assert code == 0 and "ALARM -> OK" in out

    code, out, _ = run(capsys, "alarms", "set-state", "errors-high", "ALARM", "--reason", "drill")
    assert code == 0 and "OK -> ALARM" in out and "drill" in out
    code, out, _ = run(capsys, "alarms", "set-state", "errors-high", "alarm", "--reason", "again")
    assert code == 0 and "already is ALARM" in out

    code, out, _ = run(capsys, "alarms", "describe", "errors-high", "--json")
    d = json.loads(out)
    assert d["state"] == "ALARM" and d["state_reason"] == "drill" and d["description"] == "5xx burst"
    assert [(h["old_state"], h["new_state"]) for h in d["history"]] == [
        ("OK", "ALARM"), ("ALARM", "OK"), ("INSUFFICIENT_DATA", "ALARM")
    ]
    code, out, _ = run(capsys, "alarms", "describe", "errors-high")
    assert code == 0 and "5xx burst" in out and "history" in out and "drill" in out
    code, out, _ = run(capsys, "alarms", "list", "--state", "ALARM")
    assert code == 0 and "errors-high" in out

    code, out, _ = run(capsys, "alarms", "delete", "errors-high")
    assert code == 0 and "Deleted" in out
    code, out, _ = run(capsys, "alarms", "list")
    assert code == 0 and "No alarms" in out


def test_webhook_action_failure_is_reported(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(capsys, "alarms", "put", "a", "--metric", "Errors", "--threshold", "1", "--comparison", ">=",
                       "--action", f"webhook:http://127.0.0.1:{port}/x")
    assert code == 0, err
    code, out, _ = run(capsys, "alarms", "set-state", "a", "ALARM", "--reason", "drill")
    assert code == 0 and "failed" in out


def test_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put = ["alarms", "put", "a", "--metric", "Errors", "--threshold", "5"]
    assert "unknown comparison 'above'" in _one_line_error(capsys, *put, "--comparison", "above")
    assert "datapoints_to_alarm (3) cannot exceed evaluation_periods (2)" in _one_line_error(
        capsys, *put, "-c", ">", "--evaluation-periods", "2", "--datapoints", "3")
    assert "period_s" in _one_line_error(capsys, *put, "-c", ">", "--period", "0")
    assert "unknown alarm action" in _one_line_error(capsys, *put, "-c", ">", "--action", "email:me")
    assert "unknown treat_missing" in _one_line_error(capsys, *put, "-c", ">", "--treat-missing", "zero")
    assert "threshold must be a finite number" in _one_line_error(
        capsys, "alarms", "put", "a", "--metric", "Errors", "--threshold", "nan", "-c", ">")
    assert "NAME=VALUE" in _one_line_error(capsys, *put, "-c", ">", "--dimension", "x")
    assert "no alarm named 'nope'" in _one_line_error(capsys, "alarms", "describe", "nope")
    assert "no alarm named 'nope'" in _one_line_error(capsys, "alarms", "delete", "nope")
    assert "no alarm named 'nope'" in _one_line_error(capsys, "alarms", "evaluate", "nope")
    assert "no alarm named 'nope'" in _one_line_error(capsys, "alarms", "set-state", "nope", "OK", "--reason", "x")
    run(capsys, *put, "-c", ">")
    assert "unknown alarm state 'RED'" in _one_line_error(capsys, "alarms", "set-state", "a", "RED", "--reason", "x")
    assert run(capsys, "alarms", "set-state", "a", "OK")[0] == 2  # --reason is required
