"""The shared monitoring store: results and baselines, their artifacts, lineage and events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.errors import InvalidInput, NotFound
from loopml.monitor import (
    MONITOR_COMPLETED,
    Target,
    get_baseline,
    get_result,
    list_baselines,
    list_results,
    save_baseline,
    save_result,
)
from loopml.store.lineage import EntityRef


def test_save_and_read_a_result(any_ws: Workspace) -> None:
    ws = any_ws
    t0 = datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)
    r = save_result(ws, "data_quality", "churn-ep", status="CompletedWithViolations",
                    summary={"violations": [{"feature_name": "a"}, {"feature_name": "b"}],
                             "share": np.float64(0.25), "nan": float("nan")},
                    outputs={"constraint_violations.json": b"{}", "report.html": b"<html></html>"},
                    since=t0, until=t0 + timedelta(hours=1))
    assert r.violation_count == 2
    assert r.summary["share"] == 0.25 and r.summary["nan"] is None
    assert r.target == Target("endpoint", "churn-ep")
    assert r.report_path is not None
    with open(r.report_path, "rb") as f:
        assert f.read() == b"<html></html>"
    back = get_result(ws, r.id)
    assert back == r
    assert back.since == t0 and back.until == t0 + timedelta(hours=1)
    assert get_result(ws, r.id[:10]).id == r.id
    assert back.output(ws, "constraint_violations.json") == b"{}"
    ev = ws.events.list(type=MONITOR_COMPLETED)
    assert [e.payload["result_id"] for e in ev] == [r.id]
    assert ev[0].payload["status"] == "CompletedWithViolations" and ev[0].payload["violation_count"] == 2
    edges = ws.lineage.downstream(EntityRef("endpoint", "churn-ep"), depth=2)
    assert {e.dst.kind for e in edges} == {"monitoring_result", "monitor_report", "artifact"}


def test_list_filters_newest_first(ws: Workspace) -> None:
    ids = [save_result(ws, k, t, status=s, summary={}).id for k, t, s in [
        ("data_quality", "a", "Completed"), ("model_quality", "a", "NoData"), ("data_quality", "b", "Failed")]]
    assert [r.id for r in list_results(ws)] == ids[::-1]
    assert [r.id for r in list_results(ws, target="a")] == ids[1::-1]
    assert [r.id for r in list_results(ws, kind="data_quality", target="endpoint:a")] == [ids[0]]
    assert [r.id for r in list_results(ws, status="Failed")] == [ids[2]]
    assert list_results(ws, limit=1)[0].id == ids[2]
    assert list_results(ws, since=datetime.now(timezone.utc) + timedelta(hours=1)) == []


def test_dataset_target_links_the_version(ws: Workspace) -> None:
    v = Catalog(ws).write("d", pd.DataFrame({"x": [1.0, 2.0]}))
    r = save_result(ws, "bias", "d:1", status="Completed", summary={"violation_count": 0})
    assert r.target == Target("dataset", "d:1")
    assert [e.dst.id for e in ws.lineage.downstream(v.entity, depth=1)] == [r.id]
    assert [x.id for x in list_results(ws, target="d:1")] == [r.id]
    latest = save_result(ws, "bias", "dataset:d", status="Completed", summary={})
    assert latest.target == Target("dataset", "d:1")  # the version is made explicit
    with pytest.raises(NotFound, match="no version 9"):
        save_result(ws, "bias", "dataset:d:9", status="Completed", summary={})


def test_bad_input(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="monitor kind"):
        save_result(ws, "drift", "ep", status="Completed", summary={})
    with pytest.raises(InvalidInput, match="status 'OK'"):
        save_result(ws, "data_quality", "ep", status="OK", summary={})
    with pytest.raises(InvalidInput, match="plain file name"):
        save_result(ws, "data_quality", "ep", status="Completed", summary={}, outputs={"../x": b""})
    now = datetime.now(timezone.utc)
    with pytest.raises(InvalidInput, match="after it ends"):
        save_result(ws, "data_quality", "ep", status="Completed", summary={}, since=now, until=now - timedelta(1))
    with pytest.raises(NotFound, match="no monitoring baseline"):
        save_result(ws, "data_quality", "ep", status="Completed", summary={}, baseline_id="mbl-nope")
    with pytest.raises(NotFound, match="no monitoring result"):
        get_result(ws, "mon-nope")
    assert list_results(ws) == []  # nothing half-written


def test_baselines(ws: Workspace) -> None:
    v = Catalog(ws).write("d", pd.DataFrame({"x": [1.0, 2.0]}))
    b1 = save_baseline(ws, "data_quality", "base", outputs={"statistics.json": b"{}", "constraints.json": b"[]"},
                       dataset_version=(v.id, v.ref), details={"item_count": 2})
    b2 = save_baseline(ws, "model_quality", "base", outputs={"metrics.json": b"{}"})
    assert b1.statistics_sha256 and b1.constraints_sha256 and b2.statistics_sha256 is None
    assert get_baseline(ws, "base").id == b2.id  # the newest of that name
    assert get_baseline(ws, "base", kind="data_quality").id == b1.id
    assert get_baseline(ws, b1.id).output(ws, "constraints.json") == b"[]"
    assert [b.id for b in list_baselines(ws)] == [b2.id, b1.id]
    assert [b.id for b in list_baselines(ws, kind="data_quality")] == [b1.id]
    assert ws.lineage.targets(v.entity, "baselined_by", "monitor_baseline") == [b1.entity]
    r = save_result(ws, "data_quality", "ep", status="Completed", summary={}, baseline_id=b1.id)
    assert ws.lineage.targets(b1.entity, "baseline_of", "monitoring_result") == [r.entity]
    with pytest.raises(NotFound, match="no baseline named 'zzz'"):
        get_baseline(ws, "zzz")
    with pytest.raises(InvalidInput, match="baseline name"):
        save_baseline(ws, "data_quality", "bad name", outputs={})
