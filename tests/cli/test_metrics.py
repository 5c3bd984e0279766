"""``loopml metrics``: list, query (points and statistics), put, prune; one-line errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loopml import Workspace
from loopml.metrics import MetricPoint
from tests.cli._run import run

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A workspace with 120 points of ModelLatency over two variants (one a second)."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    with Workspace.open(tmp_path) as ws:
        ws.metrics.put_many(MetricPoint("ModelLatency", float(i), {"endpoint": "churn", "variant": f"v{i % 2}"},
                                        T0 + timedelta(seconds=i)) for i in range(120))
    return tmp_path


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_list(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "metrics", "list", "--json")
    (m,) = json.loads(out)
    assert code == 0 and m["name"] == "ModelLatency" and m["series"] == 2 and m["points"] == 120
    code, out, _ = run(capsys, "metrics", "list")
    assert code == 0 and "ModelLatency" in out and "120" in out


def test_query_points_and_statistics(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "metrics", "query", "ModelLatency", "--dimension", "variant=v1",
                         "--since", "2026-01-01T00:00:10Z", "--until", "2026-01-01T00:00:20Z", "--json")
    assert code == 0, err
    pts = json.loads(out)
    assert [p["value"] for p in pts] == [11.0, 13.0, 15.0, 17.0, 19.0]
    assert pts[0]["dimensions"] == {"endpoint": "churn", "variant": "v1"}
    code, out, _ = run(capsys, "metrics", "query", "ModelLatency", "--statistic", "Sum", "--period", "60", "--json")
    assert code == 0 and json.loads(out) == [
        {"timestamp": T0.isoformat(), "value": float(sum(range(60)))},
        {"timestamp": (T0 + timedelta(minutes=1)).isoformat(), "value": float(sum(range(60, 120)))},
    ]
    code, out, _ = run(capsys, "metrics", "query", "ModelLatency", "--statistic", "p50")
    assert code == 0 and "p50" in out and "29.5" in out
    code, out, _ = run(capsys, "metrics", "query", "ModelLatency", "--limit", "2")
    assert code == 0 and "119" in out and "118" in out and "variant=v1" in out
    code, out, _ = run(capsys, "metrics", "query", "ModelLatency", "--since", "1h")  # all in 2026-01-01
    assert code == 0 and "No points" in out


def test_put_and_prune(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "metrics", "put", "Invocations", "3", "-d", "endpoint=churn", "--at", "5m")
    assert code == 0 and "Invocations" in out, err
    code, out, _ = run(capsys, "metrics", "query", "Invocations", "--since", "10m", "--json")
    assert [p["value"] for p in json.loads(out)] == [3.0]
    code, out, _ = run(capsys, "metrics", "prune", "--older-than", "1d")
    assert code == 0 and "Deleted 120 point(s)" in out


def test_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "NAME=VALUE" in _one_line_error(capsys, "metrics", "query", "ModelLatency", "--dimension", "variant")
    assert "unknown statistic" in _one_line_error(capsys, "metrics", "query", "ModelLatency", "-s", "Median")
    assert "period_s" in _one_line_error(capsys, "metrics", "query", "ModelLatency", "--period", "0")
    assert "ISO-8601" in _one_line_error(capsys, "metrics", "query", "ModelLatency", "--since", "yesterday")
    assert "metric name" in _one_line_error(capsys, "metrics", "query", "bad name")
    assert "finite" in _one_line_error(capsys, "metrics", "put", "X", "nan")
    assert run(capsys, "metrics", "query")[0] == 2  # usage


def test_no_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert "no loopml workspace" in _one_line_error(capsys, "metrics", "list")
