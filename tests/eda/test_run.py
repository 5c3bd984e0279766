from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopml import InvalidInput, NotFound, Workspace
from loopml.data import Catalog
from loopml.eda import Profile, load_profile, reports, run_eda
from loopml.eda.run import EDA_PROFILE_CREATED
from loopml.store import EntityRef


@pytest.fixture
def dataset(ws: Workspace, frame: pd.DataFrame) -> str:
    return Catalog(ws).write("sample", frame.iloc[:500]).ref


def test_run_eda_stores_profile_and_report_with_lineage(ws: Workspace, dataset: str, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "eda.html"
    res = run_eda(ws, "sample", target="label", out=out)
    info = Catalog(ws).get(dataset)
    assert res.dataset == "sample:1" and res.dataset_id == info.id
    assert out.read_bytes() == ws.artifacts.get_bytes(res.report_sha256)
    assert res.out == str(out) and not list(out.parent.glob(".*tmp*"))
    assert res.report_path is not None and Path(res.report_path).read_bytes() == out.read_bytes()
    stored = load_profile(ws, res.profile_sha256)
    assert stored.data == res.profile.data
    assert stored.data["overview"]["source"]["dataset"] == "sample:1"
    assert stored.target is not None and stored.target["column"] == "label"
    [edge] = ws.lineage.downstream(info.entity, depth=1)
    assert (edge.relation, edge.dst) == ("profiled_by", EntityRef("eda_profile", res.profile_sha256))
    down = ws.lineage.downstream(info.entity)
    assert EntityRef("eda_report", res.report_sha256) in {e.dst for e in down}
    assert reports(ws, "sample:1") == [(res.profile_sha256, res.report_sha256)]
    [event] = ws.events.list(type=EDA_PROFILE_CREATED)
    assert event.entity == res.entity and event.payload["dataset"] == "sample:1"
    summary = res.to_dict()
    assert summary["rows"] == 500 and summary["warnings"] >= 1 and summary["out"] == str(out)


def test_same_data_and_seed_give_the_same_artifacts(ws: Workspace, dataset: str) -> None:
    a = run_eda(ws, dataset)
    b = run_eda(ws, dataset)
    assert (a.profile_sha256, a.report_sha256) == (b.profile_sha256, b.report_sha256)
    assert len(reports(ws, dataset)) == 1


def test_bad_input(ws: Workspace, dataset: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"target column 'nope' is not in sample:1; its columns are \['row_id', 'x'"):
        run_eda(ws, "sample", target="nope")
    with pytest.raises(NotFound, match="no dataset named 'missing'"):
        run_eda(ws, "missing")
    Catalog(ws).write("empty", pd.DataFrame({"a": pd.Series([], dtype="float64")}))
    with pytest.raises(InvalidInput, match="empty:1 has no rows; nothing to profile"):
        run_eda(ws, "empty")
    with pytest.raises(InvalidInput, match="is a folder"):
        run_eda(ws, "sample", out=tmp_path)
    assert reports(ws, "sample") == []  # nothing half-written


def test_profile_is_plain_json_data(ws: Workspace, dataset: str) -> None:
    res = run_eda(ws, dataset, sample_rows=100, seed=3)
    p = Profile.from_json(ws.artifacts.get_bytes(res.profile_sha256))
    assert p.data["overview"]["sample"]["rows"] == 100
    assert p.data["settings"]["seed"] == 3
