"""Feature group definitions and the registry (on SQLite and PostgreSQL metadata)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from loopml import Conflict, InvalidInput, NotFound, Workspace
from loopml.data import Catalog
from loopml.features import (
    FeatureDefinition,
    FeatureGroup,
    FeatureStore,
    create_feature_group,
    delete_feature_group,
    describe_feature_group,
    list_feature_groups,
)
from loopml.features.group import parse_duration
from tests.features._helpers import SPEC, events, make_group


def test_create_list_describe_delete(any_ws: Workspace) -> None:
    g = create_feature_group(
        any_ws, "cust", record_id="customer_id", event_time="event_time", features=SPEC,
        id_type="integral", description="customer activity", owner="ana", tags={"team": "growth"},
        ttl="100000d",
    )
    assert g.id.startswith("fg-") and g.feature_names == ["spend", "visits", "plan"]
    assert g.ttl == timedelta(days=100_000)
    create_feature_group(any_ws, "acct", record_id="account", event_time="ts",
                         features=["balance:fractional"])
    assert [x.name for x in list_feature_groups(any_ws)] == ["acct", "cust"]

    with FeatureStore(any_ws) as fs:
        fs.ingest("cust", events(100, 10, seed=1))
        fs.ingest("cust", events(50, 10, seed=2))
    d = describe_feature_group(any_ws, "cust")
    assert d["description"] == "customer activity" and d["owner"] == "ana"
    assert d["tags"] == {"team": "growth"} and d["ttl_seconds"] == 100_000 * 86400
    assert d["id_type"] == "integral"
    assert d["features"] == [{"name": "spend", "type": "fractional"}, {"name": "visits", "type": "integral"},
                             {"name": "plan", "type": "string"}]
    assert [p["seq"] for p in d["offline"]["parts"]] == [1, 2] and d["offline"]["rows"] == 150
    assert d["online_records"] == 10
    assert FeatureGroup.from_dict(d).to_dict() == {k: d[k] for k in FeatureGroup.from_dict(d).to_dict()}

    with pytest.raises(Conflict, match="feature group 'cust' already exists"):
        create_feature_group(any_ws, "cust", record_id="a", event_time="b", features=SPEC)
    delete_feature_group(any_ws, "cust")
    with pytest.raises(NotFound, match="no feature group named 'cust'"):
        describe_feature_group(any_ws, "cust")
    with pytest.raises(NotFound):
        delete_feature_group(any_ws, "cust")
    with any_ws.meta.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM feature_group_parts")).scalar() == 0
    types = [e.type for e in any_ws.events.list()]
    assert types.count("feature_group.created") == 2 and "feature_group.deleted" in types
    assert types.count("feature_group.ingested") == 2


def test_infer_definitions_from_a_dataset(ws: Workspace) -> None:
    df = events(20, 5, seed=3).assign(joined=pd.Timestamp("2024-01-01"))
    Catalog(ws).write("activity", df)
    with FeatureStore(ws) as fs:
        g = fs.create_group("cust", record_id="customer_id", event_time="event_time", data="activity")
        assert g.id_type == "integral"
        assert [(f.name, f.type) for f in g.features] == [
            ("spend", "fractional"), ("visits", "integral"), ("plan", "string"), ("joined", "timestamp")]
        # bare names take the dataset's types; explicit types win
        h = fs.create_group("few", record_id="customer_id", event_time="event_time",
                            data="activity:1", features=["spend", "visits:fractional"])
        assert [(f.name, f.type) for f in h.features] == [("spend", "fractional"), ("visits", "fractional")]
        with pytest.raises(InvalidInput, match="no event time column 'ts'"):
            fs.create_group("x", record_id="customer_id", event_time="ts", data="activity")
        with pytest.raises(InvalidInput, match="give the type of feature 'spend'"):
            fs.create_group("x", record_id="customer_id", event_time="event_time", features=["spend"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "feature group name 'bad name' is not allowed"),
        ({"features": {"x": "decimal"}}, "unknown feature type 'decimal' of 'x'"),
        ({"features": {"1x": "integral"}}, "feature name '1x' is not allowed"),
        ({"features": {}}, "has no features"),
        ({"event_time": "id"}, "both 'id'"),
        ({"id_type": "fractional"}, "record identifier type 'fractional'"),
        ({"ttl": "soon"}, "ttl 'soon' is not a duration"),
        ({"ttl": 0}, "must be positive"),
    ],
)
def test_bad_definitions_are_refused(ws: Workspace, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "g", "record_id": "id", "event_time": "ts",
                               "features": {"x": "integral"}}
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=message):
        create_feature_group(ws, **args)  # type: ignore[arg-type]
    assert list_feature_groups(ws) == []


def test_sagemaker_style_definitions_include_id_and_time(ws: Workspace) -> None:
    g = create_feature_group(ws, "g", record_id="id", event_time="ts", features=[
        FeatureDefinition("id", "Integral"), ("ts", "Fractional"), "score:Fractional"])  # type: ignore[arg-type]
    assert g.id_type == "integral" and g.feature_names == ["score"]
    assert g.arrow_schema().field("ts").type == pa.timestamp("us", tz="UTC")


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration(3600) == timedelta(hours=1)
    assert parse_duration(None) is None


def test_online_store_is_created_empty_and_listed(ws: Workspace) -> None:
    with FeatureStore(ws) as fs:
        make_group(fs)
        assert fs.describe("cust")["online_records"] == 0
        assert fs.describe("cust")["materialized"] is None
