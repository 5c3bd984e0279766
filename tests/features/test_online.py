"""One suite for every online backend (SQLite and a real Redis): the same contract on both."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone

import orjson
import pandas as pd
import pyarrow as pa
import pytest

from loopml import InvalidInput, NotFound, Workspace
from loopml.features import FeatureStore, OnlineStore, open_online_store
from loopml.features.online import RECORD_SCHEMA, now_us
from tests.features._helpers import events, make_group


@pytest.fixture
def store(online_url: str) -> Iterator[OnlineStore]:
    s = open_online_store(online_url)
    s.create_group("g")
    yield s
    s.close()


def records(*rows: tuple[str, int, Mapping[str, object]]) -> pa.Table:
    return pa.table(
        {"k": [r[0] for r in rows], "et": [r[1] for r in rows],
         "v": [orjson.dumps(r[2]).decode() for r in rows]},
        schema=RECORD_SCHEMA,
    )


def test_backend_is_the_one_asked_for(store: OnlineStore, online_url: str) -> None:
    assert isinstance(store, OnlineStore)
    assert type(store).__name__ == ("SQLiteOnlineStore" if online_url.startswith("sqlite") else "RedisOnlineStore")


def test_put_get_and_get_many_keep_order(store: OnlineStore) -> None:
    assert store.put("g", records(("a", 10, {"x": 1}), ("b", 10, {"x": 2}))) == 2
    assert store.get("g", "a") == {"x": 1}
    assert store.get("g", "zz") is None
    assert store.get_many("g", ["b", "zz", "a", "b"]) == [{"x": 2}, None, {"x": 1}, {"x": 2}]
    assert store.get_many("g", []) == []
    assert store.get("other", "a") is None  # groups are separate
    assert store.get_many("never-created", ["a"]) == [None]
    assert store.count("g") == 2


@pytest.mark.parametrize("order", ["newer_first", "older_first"])
def test_an_older_event_never_overwrites_a_newer_one(store: OnlineStore, order: str) -> None:
    older, newer = ("a", 100, {"x": "old"}), ("a", 200, {"x": "new"})
    batches = [older, newer] if order == "older_first" else [newer, older]
    for b in batches:
        store.put("g", records(b))
    assert store.get("g", "a") == {"x": "new"}
    # an equal event time replaces (the later write wins), an older one still does not
    store.put("g", records(("a", 200, {"x": "same-time"})))
    store.put("g", records(("a", 199, {"x": "older"})))
    assert store.get("g", "a") == {"x": "same-time"}


def test_put_reports_only_records_written(store: OnlineStore) -> None:
    store.put("g", records(("a", 100, {"x": 1})))
    assert store.put("g", records(("a", 50, {"x": 0}), ("b", 1, {"x": 1}))) == 1


def test_many_records_across_chunks(store: OnlineStore) -> None:
    n = 2_345
    table = pa.table({"k": [str(i) for i in range(n)], "et": list(range(n)),
                      "v": [f'{{"i": {i}}}' for i in range(n)]}, schema=RECORD_SCHEMA)
    assert store.put("g", table) == n
    got = store.get_many("g", [str(i) for i in range(0, n, 7)])
    assert got == [{"i": i} for i in range(0, n, 7)]
    assert store.count("g") == n


def test_delete_writes_a_tombstone(store: OnlineStore) -> None:
    store.put("g", records(("a", 100, {"x": 1})))
    assert store.delete("g", "a", 150) is True
    assert store.get("g", "a") is None and store.get_many("g", ["a"]) == [None]
    assert store.delete("g", "a", 160) is False  # nothing live any more
    assert store.count("g") == 0
    store.put("g", records(("a", 120, {"x": "late but older"})))
    assert store.get("g", "a") is None
    store.put("g", records(("a", 170, {"x": "newer"})))
    assert store.get("g", "a") == {"x": "newer"}
    # a deletion older than the stored record does nothing
    assert store.delete("g", "a", 10) is False
    assert store.get("g", "a") == {"x": "newer"}
    assert store.delete("g", "missing", 10) is False


def test_min_event_time_hides_old_records(store: OnlineStore) -> None:
    store.put("g", records(("old", 100, {"x": 1}), ("new", 300, {"x": 2})))
    assert store.get("g", "old", min_et=200) is None
    assert store.get("g", "new", min_et=200) == {"x": 2}
    assert store.get_many("g", ["old", "new"], min_et=200) == [None, {"x": 2}]


def test_drop_group_removes_every_record(store: OnlineStore) -> None:
    store.put("g", records(("a", 1, {"x": 1}), ("b", 1, {"x": 1})))
    store.put("h", records(("a", 1, {"x": "h"})))
    store.drop_group("g")
    assert store.get("g", "a") is None and store.count("g") == 0
    assert store.get("h", "a") == {"x": "h"}


# -- through the FeatureStore --------------------------------------------------------------
def test_ingest_then_read_latest_per_id(fs: FeatureStore) -> None:
    make_group(fs)
    df = events(2_000, 150, seed=1)
    res = fs.ingest("cust", df)
    assert res.rows == 2_000 and res.online_records == df["customer_id"].nunique()
    latest = df.sort_values("event_time").groupby("customer_id").tail(1).set_index("customer_id")
    for cid in [int(latest.index[0]), int(latest.index[-1])]:
        rec = fs.get_record("cust", cid)
        assert rec is not None
        assert rec["spend"] == latest.loc[cid, "spend"] and rec["plan"] == latest.loc[cid, "plan"]
        assert rec["customer_id"] == cid
        assert datetime.fromisoformat(rec["event_time"]) == latest.loc[cid, "event_time"]
    ids = [int(i) for i in latest.index[:100]] + [10_000]
    got = fs.batch_get("cust", ids, ["visits"])
    assert got[:-1] == [{"visits": int(latest.loc[i, "visits"])} for i in ids[:-1]]
    assert got[-1] is None
    frame = fs.batch_get_frame("cust", ids[:3])
    assert list(frame.columns) == ["customer_id", "event_time", "spend", "visits", "plan"]
    assert frame["customer_id"].tolist() == ids[:3]
    with pytest.raises(InvalidInput, match="no feature 'nope'"):
        fs.get_record("cust", ids[0], ["nope"])
    with pytest.raises(NotFound, match="no feature group named 'other'"):
        fs.get_record("other", 1)


@pytest.mark.parametrize("order", ["newer_first", "older_first"])
def test_ingest_order_does_not_matter(fs: FeatureStore, order: str) -> None:
    make_group(fs)
    t = pd.Timestamp("2025-06-01", tz="UTC")
    old = pd.DataFrame({"customer_id": [7], "event_time": [t], "spend": [1.0], "visits": [1], "plan": ["old"]})
    new = old.assign(event_time=[t + pd.Timedelta(days=1)], plan=["new"])
    for batch in ([old, new] if order == "older_first" else [new, old]):
        fs.ingest("cust", batch)
    assert fs.get_record("cust", 7)["plan"] == "new"  # type: ignore[index]
    fs.materialize("cust")  # a full reload changes nothing
    assert fs.get_record("cust", 7)["plan"] == "new"  # type: ignore[index]


def test_ttl_hides_records_older_than_it(fs: FeatureStore) -> None:
    make_group(fs, ttl="1h")
    now = pd.Timestamp.now(tz="UTC")
    df = pd.DataFrame({"customer_id": [1, 2], "event_time": [now - pd.Timedelta(hours=3), now],
                       "spend": [1.0, 2.0], "visits": [1, 2], "plan": ["a", "b"]})
    fs.ingest("cust", df)
    assert fs.get_record("cust", 1) is None
    assert fs.get_record("cust", 2)["spend"] == 2.0  # type: ignore[index]
    assert fs.batch_get("cust", [1, 2])[0] is None


def test_delete_record_and_group(fs: FeatureStore, ws: Workspace, online_url: str) -> None:
    make_group(fs)
    df = events(300, 20, seed=2)
    fs.ingest("cust", df)
    some = int(df["customer_id"].iloc[0])
    assert fs.delete_record("cust", some) is True
    assert fs.get_record("cust", some) is None
    fs.materialize("cust")  # history is older than the deletion: it stays deleted
    assert fs.get_record("cust", some) is None
    later = datetime.now(timezone.utc) + timedelta(days=1)
    fs.ingest("cust", df.iloc[:1].assign(event_time=[later]))
    assert fs.get_record("cust", some) is not None

    other = int(df["customer_id"].iloc[-1])
    assert fs.get_record("cust", other) is not None
    fs.delete_group("cust")
    assert open_online_store(online_url).count("cust") == 0
    make_group(fs)  # the same name again starts empty
    assert fs.get_record("cust", other) is None


def test_offline_only_group_refuses_online_reads(fs: FeatureStore) -> None:
    make_group(fs, online=False)
    res = fs.ingest("cust", events(10, 5, seed=3))
    assert res.online_records is None
    with pytest.raises(InvalidInput, match="no online store"):
        fs.get_record("cust", 1)
    with pytest.raises(InvalidInput, match="nothing to materialize"):
        fs.materialize("cust")
    with pytest.raises(InvalidInput, match="no online store"):
        fs.ingest("cust", events(10, 5, seed=3), online=True)
    assert len(fs.parts("cust")) == 1


def test_online_store_url_setting_picks_the_backend(tmp_path: object, redis_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_ONLINE_STORE_URL", redis_url)
    ws = Workspace.init(str(tmp_path))
    try:
        with FeatureStore(ws) as store:
            make_group(store)
            store.ingest("cust", events(50, 5, seed=4))
            assert type(store.online).__name__ == "RedisOnlineStore"
            assert store.get_record("cust", 1) is not None
    finally:
        ws.close()


def test_unknown_online_url_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not supported"):
        open_online_store("mongodb://x")


def test_now_us_is_microseconds() -> None:
    assert abs(now_us() / 1e6 - datetime.now(timezone.utc).timestamp()) < 5
