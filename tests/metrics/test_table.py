"""The metrics table on SQLite and PostgreSQL: put, query, statistics, prune."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from loopml import InvalidInput, Workspace
from loopml.metrics import MetricPoint, MetricsTable, parse_time
from loopml.metrics.table import dim_key, normalize_statistic

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
EP1 = {"endpoint": "churn", "variant": "v1"}
EP2 = {"endpoint": "churn", "variant": "v2"}


def _seed(ws: Workspace, n: int = 300, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """n points a second apart alternating between two variants; return (offsets, values)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(50, 10, n).round(3)
    offsets = np.arange(n, dtype=float)
    pts = [MetricPoint("ModelLatency", float(v), EP1 if i % 2 == 0 else EP2, T0 + timedelta(seconds=float(o)))
           for i, (o, v) in enumerate(zip(offsets, values, strict=True))]
    assert ws.metrics.put_many(pts) == n
    return offsets, values


def test_ws_metrics_is_one_lazy_table(ws: Workspace) -> None:
    assert isinstance(ws.metrics, MetricsTable)
    assert ws.metrics is ws.metrics


def test_put_query_roundtrip(any_ws: Workspace) -> None:
    m = any_ws.metrics
    ts = T0 + timedelta(milliseconds=1234)
    m.put("Invocations", 3, dimensions=EP1, timestamp=ts)
    m.put("Invocations", 5, dimensions=EP2, timestamp=ts + timedelta(seconds=1))
    m.put("Other", 1.0)
    pts = m.query("Invocations")
    assert [(p.value, p.dimensions, p.timestamp) for p in pts] == [
        (3.0, EP1, ts), (5.0, EP2, ts + timedelta(seconds=1))
    ]
    assert all(p.timestamp.tzinfo is not None for p in pts)
    assert m.query("Invocations", dimensions={"variant": "v2"})[0].value == 5.0
    assert m.query("Invocations", dimensions={"variant": "v3"}) == []
    assert m.query("Nothing") == []
    # a naive datetime is UTC
    m.put("Naive", 1.0, timestamp=datetime(2026, 1, 1, 12))
    assert m.query("Naive")[0].timestamp == datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def test_subset_match_since_until_limit(any_ws: Workspace) -> None:
    _, values = _seed(any_ws, 100)
    m = any_ws.metrics
    assert len(m.query("ModelLatency")) == 100
    assert len(m.query("ModelLatency", dimensions={"endpoint": "churn"})) == 100
    v1 = m.query("ModelLatency", dimensions={"variant": "v1"})
    assert [p.value for p in v1] == [float(v) for v in values[::2]]
    assert len(m.query("ModelLatency", dimensions={"endpoint": "churn", "variant": "v1", "x": "y"})) == 0
    window = m.query("ModelLatency", since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20))
    assert [p.timestamp for p in window] == [T0 + timedelta(seconds=s) for s in range(10, 20)]
    last = m.query("ModelLatency", limit=3)
    assert [p.value for p in last] == [float(v) for v in values[-3:]]
    with pytest.raises(InvalidInput, match="until"):
        m.query("ModelLatency", since=T0 + timedelta(seconds=5), until=T0)
    with pytest.raises(InvalidInput, match="limit"):
        m.query("ModelLatency", limit=0)


@pytest.mark.parametrize("stat", ["Average", "Sum", "Minimum", "Maximum", "SampleCount", "p50", "p90", "p99.9"])
def test_statistics_match_numpy(any_ws: Workspace, stat: str) -> None:
    offsets, values = _seed(any_ws, 300)
    got = any_ws.metrics.statistic("ModelLatency", stat, period_s=60)
    buckets = (offsets // 60).astype(int)
    expected = []
    for b in np.unique(buckets):
        v = values[buckets == b]
        f = {"Average": np.mean, "Sum": np.sum, "Minimum": np.min, "Maximum": np.max,
             "SampleCount": len}.get(stat) or (lambda a: np.percentile(a, float(stat[1:])))
        expected.append((T0 + timedelta(seconds=60 * int(b)), float(f(v))))
    assert [t for t, _ in got] == [t for t, _ in expected]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-9)


def test_statistic_subset_dims_and_range(any_ws: Workspace) -> None:
    offsets, values = _seed(any_ws, 120)
    m = any_ws.metrics
    got = m.statistic("ModelLatency", "Maximum", period_s=30, dimensions={"variant": "v2"},
                      since=T0 + timedelta(seconds=30), until=T0 + timedelta(seconds=90))
    odd = values[1::2]
    odd_off = offsets[1::2]
    exp = [float(odd[(odd_off >= lo) & (odd_off < lo + 30)].max()) for lo in (30, 60)]
    assert got == [(T0 + timedelta(seconds=30), exp[0]), (T0 + timedelta(seconds=60), exp[1])]
    # buckets align to the epoch, not to `since`
    aligned = m.statistic("ModelLatency", "SampleCount", period_s=60, since=T0 + timedelta(seconds=45))
    assert aligned[0] == (T0, 15.0)
    assert m.statistic("Nothing", "Average", period_s=60) == []


def test_percentile_of_a_known_bucket(any_ws: Workspace) -> None:
    any_ws.metrics.put_many(MetricPoint("L", float(v), {}, T0 + timedelta(seconds=v / 10)) for v in range(1, 101))
    (_, p50), = any_ws.metrics.statistic("L", "p50", period_s=60)
    (_, p99), = any_ws.metrics.statistic("L", "p99", period_s=60)
    assert p50 == pytest.approx(50.5) and p99 == pytest.approx(99.01)


def test_recent_window_is_anchored_at_until(any_ws: Workspace) -> None:
    m = any_ws.metrics
    for s, v in [(5, 1.0), (15, 2.0), (16, 4.0), (35, 8.0)]:
        m.put("E", v, timestamp=T0 + timedelta(seconds=s))
    got = m.recent("E", "Average", period_s=10, periods=4, until=T0 + timedelta(seconds=40))
    assert got == [(T0, 1.0), (T0 + timedelta(seconds=10), 3.0), (T0 + timedelta(seconds=20), None),
                   (T0 + timedelta(seconds=30), 8.0)]
    # the end is exclusive: a point at `until` belongs to the next evaluation
    got = m.recent("E", "Sum", period_s=10, periods=1, until=T0 + timedelta(seconds=35))
    assert got == [(T0 + timedelta(seconds=25), None)]


def test_prune_and_list(any_ws: Workspace) -> None:
    _seed(any_ws, 100)
    m = any_ws.metrics
    m.put("Invocations", 1.0, dimensions=EP1, timestamp=T0)
    infos = {i.name: i for i in m.list_metrics()}
    assert infos["ModelLatency"].series == 2 and infos["ModelLatency"].points == 100
    assert infos["ModelLatency"].first == T0 and infos["ModelLatency"].last == T0 + timedelta(seconds=99)
    assert m.dimensions("ModelLatency") == [EP1, EP2]
    assert m.prune(T0 + timedelta(seconds=50)) == 51
    assert len(m.query("ModelLatency")) == 50
    assert m.prune(timedelta(days=1)) == 50  # everything is older than a day
    assert [i.name for i in m.list_metrics()] == []
    # the series survive pruning; new points reuse them
    m.put("ModelLatency", 2.0, dimensions=EP1)
    assert m.query("ModelLatency")[0].dimensions == EP1


def test_two_tables_share_series(ws: Workspace) -> None:
    """Two writers (e.g. two server processes) create the same series once."""
    other = MetricsTable(ws)
    ws.metrics.put("X", 1.0, dimensions={"a": "1"}, timestamp=T0)
    other.put("X", 2.0, dimensions={"a": "1"}, timestamp=T0 + timedelta(seconds=1))
    assert ws.metrics.dimensions("X") == [{"a": "1"}]
    assert [p.value for p in other.query("X", dimensions={"a": "1"})] == [1.0, 2.0]


def test_concurrent_writers(ws: Workspace) -> None:
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for j in range(20):
                ws.metrics.put_many([MetricPoint("C", float(j), {"w": str(k % 2)}, T0 + timedelta(seconds=j))
                                     for _ in range(5)])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ws.metrics.query("C")) == 4 * 20 * 5
    assert len(ws.metrics.dimensions("C")) == 2


@pytest.mark.parametrize(("point", "match"), [
    (MetricPoint("bad name", 1.0), "metric name"),
    (MetricPoint("M", float("nan")), "finite"),
    (MetricPoint("M", float("inf")), "finite"),
    (MetricPoint("M", "x"), "not a number"),  # type: ignore[arg-type]
    (MetricPoint("M", 1.0, {"k": 1}), "must be a string"),  # type: ignore[dict-item]
    (MetricPoint("M", 1.0, {"": "v"}), "non-empty"),
    (MetricPoint("M", 1.0, {f"k{i}": "v" for i in range(31)}), "at most 30"),
    (MetricPoint("M", 1.0, {}, "yesterday"), "datetime"),  # type: ignore[arg-type]
])
def test_bad_points_write_nothing(ws: Workspace, point: MetricPoint, match: str) -> None:
    good = MetricPoint("M", 1.0, {"k": "v"}, T0)
    with pytest.raises(InvalidInput, match=match):
        ws.metrics.put_many([good, point])
    assert ws.metrics.query("M") == []
    with pytest.raises(InvalidInput, match="MetricPoint"):
        ws.metrics.put_many([("M", 1.0)])  # type: ignore[list-item]


def test_bad_statistic_and_period(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"unknown statistic 'Median'.*p50"):
        ws.metrics.statistic("M", "Median", period_s=60)
    for bad in (0, -5, float("nan"), True):
        with pytest.raises(InvalidInput, match="period_s"):
            ws.metrics.statistic("M", "Average", period_s=bad)
    with pytest.raises(InvalidInput, match="p101"):
        normalize_statistic("p101")
    with pytest.raises(InvalidInput, match="periods"):
        ws.metrics.recent("M", "Sum", period_s=60, periods=0)


def test_dim_key_is_canonical_and_escaped() -> None:
    assert dim_key({"b": "2", "a": "1"}) == dim_key({"a": "1", "b": "2"}) == "a=1,b=2"
    assert dim_key({"a": "x,b=y"}) != dim_key({"a": "x", "b": "y"})
    assert dim_key({}) == ""


def test_parse_time() -> None:
    now = datetime(2026, 1, 2, 12, tzinfo=timezone.utc)
    assert parse_time("15m", now=now) == now - timedelta(minutes=15)
    assert parse_time("2h ago", now=now) == now - timedelta(hours=2)
    assert parse_time("1d", now=now) == now - timedelta(days=1)
    assert parse_time("now", now=now) == now
    assert parse_time("2026-01-02T03:04:05+01:00") == datetime(2026, 1, 2, 2, 4, 5, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="ISO-8601"):
        parse_time("last tuesday")
