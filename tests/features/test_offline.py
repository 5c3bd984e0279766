"""Offline store: typed ingest (nothing half-written), history, point-in-time training sets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml import InvalidInput, LoopmlError, Workspace
from loopml.data import Catalog
from loopml.features import FeatureStore, get_training_set
from loopml.features.offline import to_arrow
from tests.features._helpers import events, make_group

T0 = pd.Timestamp("2025-03-01", tz="UTC")


def _artifact_files(ws: Workspace) -> set[str]:
    root = Path(ws.artifacts.root) / "sha256"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# -- ingest --------------------------------------------------------------------------------
def test_each_ingest_appends_a_part(sfs: FeatureStore, ws: Workspace) -> None:
    make_group(sfs)
    a, b = events(500, 50, seed=1), events(300, 50, seed=2)
    r1 = sfs.ingest("cust", a.assign(extra=1))
    r2 = sfs.ingest("cust", b)
    assert (r1.seq, r2.seq) == (1, 2) and r1.ignored_columns == ["extra"]
    assert r1.min_event_time == a["event_time"].min() and r1.max_event_time == a["event_time"].max()
    parts = sfs.parts("cust")
    assert [p.row_count for p in parts] == [500, 300]
    assert all(ws.artifacts.exists(p.sha256) for p in parts)
    hist = to_arrow(sfs.offline("cust")).to_pandas()
    assert len(hist) == 800
    assert list(hist.columns) == ["customer_id", "event_time", "spend", "visits", "plan", "_write_time"]
    assert str(hist["event_time"].dtype).startswith("datetime64[us, UTC]")
    assert sorted(hist["spend"]) == sorted([*a["spend"], *b["spend"]])
    empty = sfs.ingest("cust", a.iloc[:0])
    assert empty.rows == 0 and empty.seq is None and len(sfs.parts("cust")) == 2


def test_ingest_from_a_dataset_version_records_lineage(sfs: FeatureStore, ws: Workspace) -> None:
    info = Catalog(ws).write("activity", events(200, 20, seed=3))
    make_group(sfs)
    res = sfs.ingest("cust", "activity:1")
    assert res.rows == 200 and res.source["dataset"] == "activity:1"
    down = ws.lineage.downstream(info.entity)
    assert [(e.relation, e.dst.kind) for e in down] == [("ingested_into", "feature_group")]
    assert sfs.describe("cust")["lineage"][0]["relation"] == "ingested_into"


def test_event_time_formats_are_converted(sfs: FeatureStore) -> None:
    make_group(sfs)
    base = {"customer_id": [1, 2, 3], "spend": [1.0, 2.0, 3.0], "visits": [1, 2, 3], "plan": ["a", "b", "c"]}
    sfs.ingest("cust", pd.DataFrame({**base, "event_time": ["2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z",
                                                             "2025-01-03T12:00:00+02:00"]}))
    sfs.ingest("cust", pd.DataFrame({**base, "event_time": [1735689600, 1735689600.5, 1735689601]}))
    sfs.ingest("cust", pd.DataFrame({**base, "event_time": pd.to_datetime(["2025-01-01"] * 3)}))  # naive = UTC
    times = sorted(to_arrow(sfs.offline("cust")).column("event_time").to_pylist())
    assert str(times[0]) == "2025-01-01 00:00:00+00:00" and str(times[-1]) == "2025-01-03 10:00:00+00:00"
    assert any(t.microsecond == 500_000 for t in times)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="event_time"), "needs its event time column 'event_time'"),
        (lambda d: d.drop(columns="customer_id"), "needs its record identifier column 'customer_id'"),
        (lambda d: d.drop(columns="plan"), r"lacks feature column\(s\) \['plan'\]"),
        (lambda d: d.assign(spend="lots"), "column 'spend' has type .*string.* declares it fractional"),
        (lambda d: d.assign(visits=d["visits"] + 0.5), "column 'visits' has type double.* integral"),
        (lambda d: d.assign(plan=1), "column 'plan' has type int64.* declares it string"),
        (lambda d: d.assign(event_time="yesterday"), "column 'event_time' has type .*string"),
        (lambda d: d.assign(event_time=pd.NaT), "row\\(s\\) have no event time \\(column 'event_time'"),
        (lambda d: d.assign(customer_id="x"), "column 'customer_id' has type .*string.* integral"),
    ],
)
def test_bad_input_names_the_column_and_writes_nothing(
    sfs: FeatureStore, ws: Workspace, change: object, message: str
) -> None:
    make_group(sfs)
    good = events(50, 10, seed=4)
    before = _artifact_files(ws)
    with pytest.raises(InvalidInput, match=message):
        sfs.ingest("cust", change(good))  # type: ignore[operator]
    assert sfs.parts("cust") == [] and _artifact_files(ws) == before
    assert sfs.batch_get("cust", list(range(10))) == [None] * 10
    assert list((Path(ws.artifacts.root) / "tmp").glob("*")) == []


def test_a_bad_value_deep_in_a_dataset_leaves_nothing(sfs: FeatureStore, ws: Workspace) -> None:
    n = 70_000  # more than one read batch (65,536 rows)
    df = pd.DataFrame({"customer_id": np.arange(n) % 100, "event_time": T0 + pd.to_timedelta(np.arange(n), unit="s"),
                       "spend": 1.0, "visits": np.ones(n), "plan": "p"})
    df.loc[n - 1, "visits"] = 2.5
    Catalog(ws).write("activity", df)
    make_group(sfs)
    before = _artifact_files(ws)
    with pytest.raises(InvalidInput, match=r"column 'visits' .* integral .*2\.5"):
        sfs.ingest("cust", "activity")
    assert sfs.parts("cust") == [] and _artifact_files(ws) == before
    assert sfs.get_record("cust", 5) is None


# -- point-in-time training sets ---------------------------------------------------------------
def _feature_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [1, 1, 1, 2],
        "event_time": [T0, T0 + pd.Timedelta(days=10), T0 + pd.Timedelta(days=20), T0 + pd.Timedelta(days=5)],
        "spend": [10.0, 20.0, 30.0, 99.0],
        "visits": [1, 2, 3, 9],
        "plan": ["basic", "pro", "team", "basic"],
    })


def test_a_naive_join_leaks_the_future_ours_does_not(sfs: FeatureStore) -> None:
    make_group(sfs)
    feats = _feature_rows()
    sfs.ingest("cust", feats)
    # label events: customer 1 on day 12 (between the 2nd and 3rd feature rows)
    labels = pd.DataFrame({"customer_id": [1], "event_time": [T0 + pd.Timedelta(days=12)], "churn": [1]})
    naive = labels.merge(feats.sort_values("event_time").groupby("customer_id").tail(1),
                         on="customer_id", suffixes=("", "_f"))
    assert naive["spend"].item() == 30.0  # the value of day 20: the future leaked in
    ours = sfs.get_training_set(labels, ["cust"])
    assert ours["spend"].item() == 20.0 and ours["plan"].item() == "pro" and ours["visits"].item() == 2
    # a feature row at exactly the label time is not the future
    same = sfs.get_training_set(labels.assign(event_time=[T0 + pd.Timedelta(days=20)]), ["cust:spend"])
    assert same["spend"].item() == 30.0


def test_every_entity_row_is_kept_in_order(sfs: FeatureStore) -> None:
    make_group(sfs)
    sfs.ingest("cust", _feature_rows())
    labels = pd.DataFrame({
        "customer_id": [2, 1, 3, 1, 1, 2, 1],
        "event_time": [T0 + pd.Timedelta(days=d) for d in (6, 25, 30, -1, 15, 1, 15)],
        "label": list("abcdefg"),
    }, index=[70, 60, 50, 40, 30, 20, 10])
    out = sfs.get_training_set(labels, ["cust:spend", "cust:plan"])
    assert len(out) == len(labels)
    assert out.index.tolist() == labels.index.tolist() and out["label"].tolist() == list("abcdefg")
    assert out["spend"].iloc[0] == 99.0 and out["spend"].iloc[1] == 30.0
    assert out["spend"].isna().tolist() == [False, False, True, True, False, True, False]
    assert out["plan"].tolist()[4] == "pro" and out["plan"].tolist()[6] == "pro"
    assert list(out.columns) == ["customer_id", "event_time", "label", "spend", "plan"]


def test_max_age_nulls_old_matches(sfs: FeatureStore) -> None:
    make_group(sfs)
    sfs.ingest("cust", _feature_rows())
    labels = pd.DataFrame({"customer_id": [1, 1], "event_time": [T0 + pd.Timedelta(days=12),
                                                                   T0 + pd.Timedelta(days=19)]})
    out = sfs.get_training_set(labels, ["cust:spend"], max_age=timedelta(days=5))
    assert out["spend"].iloc[0] == 20.0 and np.isnan(out["spend"].iloc[1])
    assert get_training_set(sfs.ws, labels, ["cust:spend"], max_age="10d")["spend"].tolist() == [20.0, 20.0]


def test_matches_pandas_merge_asof_on_random_data(sfs: FeatureStore) -> None:
    make_group(sfs)
    feats = events(3_000, 200, seed=5).drop_duplicates(["customer_id", "event_time"])
    sfs.ingest("cust", feats.iloc[:1_500])
    sfs.ingest("cust", feats.iloc[1_500:])  # two parts, one history
    r = np.random.default_rng(6)
    labels = pd.DataFrame({
        "customer_id": r.integers(0, 220, 2_000),  # some ids have no features at all
        "event_time": pd.Timestamp("2024-12-01", tz="UTC")
        + pd.to_timedelta(r.integers(0, 400 * 86400, 2_000), unit="s"),
    })
    ours = sfs.get_training_set(labels, ["cust"])
    ref = pd.merge_asof(
        labels.reset_index().sort_values("event_time"), feats.sort_values("event_time"),
        on="event_time", by="customer_id", direction="backward",
    ).sort_values("index").set_index("index")
    assert len(ours) == len(labels)
    pd.testing.assert_series_equal(ours["spend"], ref["spend"], check_names=False, check_index=False)
    assert (ours["plan"].fillna("-") == ref["plan"].fillna("-").values).all()
    assert ours["spend"].isna().sum() > 0  # the case Feast drops is kept here


def test_several_groups_with_their_own_ids(sfs: FeatureStore) -> None:
    make_group(sfs)
    sfs.ingest("cust", _feature_rows())
    sfs.create_group("store", record_id="store", event_time="ts", features={"plan": "string"})
    sfs.ingest("store", pd.DataFrame({"store": ["s1"], "ts": [T0], "plan": ["flagship"]}))
    labels = pa.table({"customer_id": [1, 2], "store": ["s1", "s2"],
                       "when": pa.array([T0 + pd.Timedelta(days=11)] * 2, pa.timestamp("us", tz="UTC"))})
    with pytest.raises(InvalidInput, match="would become column 'plan'"):
        sfs.get_training_set(labels, ["cust", "store"], time_column="when")
    out = sfs.get_training_set(labels, ["cust:plan", "store"], time_column="when", full_names=True)
    assert isinstance(out, pa.Table)
    assert out.column_names == ["customer_id", "store", "when", "cust__plan", "store__plan"]
    assert out.column("cust__plan").to_pylist() == ["pro", "basic"]
    assert out.column("store__plan").to_pylist() == ["flagship", None]


@pytest.mark.parametrize(
    ("entity", "features", "message"),
    [
        (pd.DataFrame({"id": [1], "event_time": [T0]}), ["cust"], "lack column 'customer_id'"),
        (pd.DataFrame({"customer_id": [1], "t1": [T0], "t2": [T0]}), ["cust"], "which column"),
        (pd.DataFrame({"customer_id": [1], "event_time": [T0]}), ["cust:nope"], "no feature 'nope'"),
        (pd.DataFrame({"customer_id": [1], "event_time": [T0]}), ["ghost"], "no feature group named 'ghost'"),
        (pd.DataFrame({"customer_id": [1], "event_time": [T0]}), ["cust:"], "GROUP:FEATURE"),
        (pd.DataFrame({"customer_id": ["x"], "event_time": [T0]}), ["cust"], "'customer_id' has type"),
        (pd.DataFrame({"customer_id": [1], "event_time": ["soon"]}), ["cust"], "must hold times"),
        ({"customer_id": [1]}, ["cust"], "must be a pandas DataFrame or an Arrow table"),
    ],
)
def test_bad_training_set_requests(sfs: FeatureStore, entity: object, features: list[str], message: str) -> None:
    make_group(sfs)
    with pytest.raises(LoopmlError, match=message):
        sfs.get_training_set(entity, features)


def test_training_set_on_a_group_without_rows(sfs: FeatureStore) -> None:
    make_group(sfs)
    out = sfs.get_training_set(pd.DataFrame({"customer_id": [1], "event_time": [T0]}), ["cust"])
    assert out[["spend", "visits", "plan"]].isna().all(axis=None)


# -- materialization ---------------------------------------------------------------------------
def test_materialize_full_and_incremental(sfs: FeatureStore) -> None:
    make_group(sfs)
    first = pd.DataFrame({"customer_id": [1, 1, 2], "event_time": [T0, T0 + pd.Timedelta(days=1), T0],
                          "spend": [1.0, 2.0, 5.0], "visits": [1, 2, 5], "plan": ["a", "b", "c"]})
    sfs.ingest("cust", first, online=False)
    assert sfs.get_record("cust", 1) is None
    full = sfs.materialize("cust")
    assert full.parts == [1] and full.rows_read == 3 and full.records == 2 and full.written == 2
    assert sfs.get_record("cust", 1)["spend"] == 2.0  # type: ignore[index]
    assert sfs.materialize("cust", incremental=True).parts == []  # nothing new

    later = pd.DataFrame({"customer_id": [2, 3, 1], "event_time": [T0 + pd.Timedelta(days=3), T0,
                                                                   T0 - pd.Timedelta(days=9)],
                          "spend": [6.0, 7.0, -1.0], "visits": [6, 7, 0], "plan": ["d", "e", "old"]})
    sfs.ingest("cust", later, online=False)
    inc = sfs.materialize("cust", incremental=True)
    assert inc.parts == [2] and inc.rows_read == 3 and inc.records == 3 and inc.written == 2
    assert [r["spend"] for r in sfs.batch_get("cust", [1, 2, 3])] == [2.0, 6.0, 7.0]  # type: ignore[index]
    assert sfs.describe("cust")["materialized"]["records"] == 3

    # an online ingest that follows the watermark moves it, so there is nothing left to do
    sfs.ingest("cust", later.assign(event_time=T0 + pd.Timedelta(days=30)))
    assert sfs.materialize("cust", incremental=True).parts == []
    # an offline-only ingest followed by an online one: the incremental run picks the first up
    sfs.ingest("cust", later.assign(customer_id=[10, 11, 12]), online=False)
    sfs.ingest("cust", later.assign(customer_id=[20, 21, 22]))
    assert sfs.materialize("cust", incremental=True).parts == [4, 5]
    assert sfs.get_record("cust", 12) is not None


def test_materialize_skips_records_past_the_ttl(sfs: FeatureStore) -> None:
    make_group(sfs, ttl="2d")
    now = pd.Timestamp.now(tz="UTC").floor("s")
    df = pd.DataFrame({"customer_id": [1, 2], "event_time": [now - pd.Timedelta(days=3), now],
                       "spend": [1.0, 2.0], "visits": [1, 2], "plan": ["a", "b"]})
    sfs.ingest("cust", df, online=False)
    res = sfs.materialize("cust")
    assert res.records == 1 and sfs.online.count("cust") == 1


def test_nan_and_timestamps_in_online_records(sfs: FeatureStore) -> None:
    sfs.create_group("g", record_id="id", event_time="ts",
                     features={"x": "fractional", "seen": "timestamp", "n": "integral"})
    sfs.ingest("g", pd.DataFrame({"id": ["a", "b"], "ts": [T0, T0], "x": [np.inf, 1.5],
                                  "seen": [T0, pd.NaT], "n": [None, 3]}))
    assert sfs.get_record("g", "a") == {"id": "a", "ts": "2025-03-01T00:00:00.000000Z", "x": None,
                                        "seen": "2025-03-01T00:00:00.000000Z", "n": None}
    assert sfs.get_record("g", "b")["n"] == 3  # type: ignore[index]
