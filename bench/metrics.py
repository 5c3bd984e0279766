#!/usr/bin/env python3
"""Benchmark: the metrics table (``ws.metrics``) against a raw ``sqlite3`` floor.

    .venv/bin/python bench/metrics.py [--repeat K] [--points N] [--metadata-url URL] [--json]

Workloads, on a fresh workspace (SQLite by default):

(a) ``put_many`` of 10,000 points (8 series: 2 metrics x 4 variants), repeated
    ``--repeat`` times into the same table; points/s of the median batch, and of
    the first one (which also creates the series); and the latency of one ``put``;
(b) with N = 100,000 points of one metric in the table (4 series, one point a
    second per series), the median latency of:
    ``query`` of one hour of one variant, ``query`` of everything (N points),
    ``statistic`` Average per 60 s over everything (subset match: all variants),
    ``statistic`` p99 per 60 s over everything, and ``recent`` (the 3-period
    window an alarm evaluates).

The floor is plain ``sqlite3`` on an identical schema (same tables and index,
WAL, ``synchronous=NORMAL``): one ``executemany`` of 10,000 tuples in one
transaction, and the same SELECTs fetched as tuples (the percentile floor adds
numpy over the fetched rows). The floor does no validation, no series lookup
and builds no ``MetricPoint`` objects: it is the cost of the database alone.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
VARIANTS = ["v1", "v2", "v3", "v4"]


def _median_s(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _batch(k: int, n: int = 10_000) -> list[Any]:
    from loopml.metrics import MetricPoint

    base = T0 + timedelta(hours=k)
    return [MetricPoint("Invocations" if i % 2 else "ModelLatency", float(i % 97),
                        {"endpoint": "churn", "variant": VARIANTS[(i // 2) % 4]},
                        base + timedelta(milliseconds=i)) for i in range(n)]


def bench_loopml(metadata_url: str | None, repeat: int, n_points: int) -> dict[str, Any]:
    import loopml
    from loopml.metrics import MetricPoint

    root = tempfile.mkdtemp(prefix="loopml-bench-metrics-")
    ws = loopml.Workspace.init(root, metadata_url=metadata_url)
    out: dict[str, Any] = {"backend": ws.meta.dialect}
    m = ws.metrics

    # (a) put_many of 10k points
    times = []
    for k in range(repeat + 1):
        pts = _batch(k)
        t = time.perf_counter()
        m.put_many(pts)
        times.append(time.perf_counter() - t)
    out["put_many_first_pps"] = 10_000 / times[0]
    out["put_many_pps"] = 10_000 / statistics.median(times[1:])
    dims = {"endpoint": "churn", "variant": "v1"}
    out["put_one_s"] = _median_s(lambda: m.put("ModelLatency", 1.0, dimensions=dims), 50 * repeat)

    # (b) reads over N points of one metric
    per = n_points // len(VARIANTS)
    for lo in range(0, per, 20_000):
        m.put_many(MetricPoint("Latency", float((i * 37) % 1000) / 10, {"endpoint": "churn", "variant": v},
                               T0 + timedelta(seconds=i))
                   for i in range(lo, min(per, lo + 20_000)) for v in VARIANTS)
    hour = (T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    end = T0 + timedelta(seconds=per)
    out["query_1h_one_variant_s"] = _median_s(
        lambda: m.query("Latency", dimensions={"variant": "v2"}, since=hour[0], until=hour[1]), repeat * 3)
    out["query_all_s"] = _median_s(lambda: m.query("Latency"), repeat)
    out["query_all_points"] = len(m.query("Latency"))
    out["stat_avg_60s_all_s"] = _median_s(
        lambda: m.statistic("Latency", "Average", period_s=60, dimensions={"endpoint": "churn"}), repeat * 3)
    out["stat_p99_60s_all_s"] = _median_s(lambda: m.statistic("Latency", "p99", period_s=60), repeat)
    out["recent_3x60s_s"] = _median_s(
        lambda: m.recent("Latency", "Average", period_s=60, periods=3, until=end), repeat * 3)
    ws.close()
    return out


_SCHEMA = """
CREATE TABLE metric_series (id INTEGER PRIMARY KEY, name TEXT, dim_key TEXT, dimensions TEXT,
                            created_at TEXT, UNIQUE (name, dim_key));
CREATE TABLE metric_points (id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL REFERENCES metric_series(id),
                            "timestamp" REAL NOT NULL, "value" REAL NOT NULL);
CREATE INDEX ix_metric_points_series_ts ON metric_points (series_id, "timestamp", "value");
"""


def bench_floor(repeat: int, n_points: int) -> dict[str, Any]:
    import numpy as np

    path = Path(tempfile.mkdtemp(prefix="loopml-bench-floor-")) / "floor.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(_SCHEMA)
    for sid in range(1, 13):
        db.execute("INSERT INTO metric_series VALUES (?, 'm', ?, '{}', '')", (sid, str(sid)))
    out: dict[str, Any] = {"backend": "sqlite3"}
    base = T0.timestamp()
    times = []
    for k in range(repeat + 1):
        rows = [(1 + (i % 8), base + k * 3600 + i / 1000, float(i % 97)) for i in range(10_000)]
        t = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany('INSERT INTO metric_points (series_id, "timestamp", "value") VALUES (?, ?, ?)', rows)
        db.execute("COMMIT")
        times.append(time.perf_counter() - t)
    out["put_many_first_pps"] = 10_000 / times[0]
    out["put_many_pps"] = 10_000 / statistics.median(times[1:])

    def put_one() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute('INSERT INTO metric_points (series_id, "timestamp", "value") VALUES (1, ?, 1.0)',
                   (time.time(),))
        db.execute("COMMIT")

    out["put_one_s"] = _median_s(put_one, 50 * repeat)

    per = n_points // len(VARIANTS)
    db.execute("BEGIN")
    db.executemany('INSERT INTO metric_points (series_id, "timestamp", "value") VALUES (?, ?, ?)',
                   [(9 + v, base + i, float((i * 37) % 1000) / 10) for i in range(per) for v in range(4)])
    db.execute("COMMIT")
    ids = "9, 10, 11, 12"
    lo, hi = base + 7200, base + 10800

    def q(sql: str, *args: Any) -> list[Any]:
        return db.execute(sql, args).fetchall()

    out["query_1h_one_variant_s"] = _median_s(lambda: q(
        'SELECT series_id, "timestamp", "value" FROM metric_points WHERE series_id IN (10) '
        'AND "timestamp" >= ? AND "timestamp" < ? ORDER BY "timestamp", id', lo, hi), repeat * 3)
    out["query_all_s"] = _median_s(lambda: q(
        f'SELECT series_id, "timestamp", "value" FROM metric_points WHERE series_id IN ({ids}) '
        'ORDER BY "timestamp", id'), repeat)
    out["query_all_points"] = len(q(f"SELECT id FROM metric_points WHERE series_id IN ({ids})"))
    out["stat_avg_60s_all_s"] = _median_s(lambda: q(
        f'SELECT CAST("timestamp" / 60 AS INTEGER) AS b, AVG("value") FROM metric_points '
        f"WHERE series_id IN ({ids}) GROUP BY b ORDER BY b"), repeat * 3)

    def p99() -> None:
        a = np.asarray(q(f'SELECT "timestamp", "value" FROM metric_points WHERE series_id IN ({ids})'))
        b = np.floor(a[:, 0] / 60)
        order = np.lexsort((a[:, 1], b))
        b, v = b[order], a[order, 1]
        cut = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        [np.percentile(g, 99) for g in np.split(v, cut[1:])]

    out["stat_p99_60s_all_s"] = _median_s(p99, repeat)
    end = base + per
    out["recent_3x60s_s"] = _median_s(lambda: q(
        f'SELECT CAST(("timestamp" - ?) / 60 AS INTEGER) AS b, AVG("value") FROM metric_points '
        f'WHERE series_id IN ({ids}) AND "timestamp" >= ? AND "timestamp" < ? GROUP BY b',
        end - 180, end - 180, end), repeat * 3)
    db.close()
    return out


ROWS = [
    ("put_many_pps", "put_many 10k points (points/s, median)", "pps"),
    ("put_many_first_pps", "  first batch, creating 8 series (points/s)", "pps"),
    ("put_one_s", "put of one point (its own transaction)", "s"),
    ("query_1h_one_variant_s", "query 1 h of one variant (3,600 points)", "s"),
    ("query_all_s", "query all points of the metric", "s"),
    ("stat_avg_60s_all_s", "statistic Average per 60 s, all points", "s"),
    ("stat_p99_60s_all_s", "statistic p99 per 60 s, all points", "s"),
    ("recent_3x60s_s", "recent: 3 periods of 60 s (an alarm's window)", "s"),
]


def _fmt(v: float, unit: str) -> str:
    return f"{v:,.0f}/s" if unit == "pps" else f"{v * 1e3:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="repeats per figure (median shown)")
    ap.add_argument("--points", type=int, default=100_000, help="points in the table for the reads")
    ap.add_argument("--metadata-url", default=None, help="e.g. postgresql+psycopg://... (default SQLite)")
    ap.add_argument("--src", default=None, help="import loopml from this source folder")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    _common.use_src(args.src)

    ours = bench_loopml(args.metadata_url, args.repeat, args.points)
    floor = bench_floor(args.repeat, args.points)
    if args.json:
        print(json.dumps({"loopml": ours, "floor": floor}, indent=2))
        return
    print(f"metrics table, {ours['query_all_points']:,} points for the reads; loopml on {ours['backend']}, "
          "floor: raw sqlite3")
    print(f"{'workload':<50} {'loopml':>14} {'floor':>14} {'loopml/floor':>13}")
    for key, label, unit in ROWS:
        a, b = ours[key], floor[key]
        ratio = (b / a) if unit == "pps" else (a / b)  # how many times the floor's cost
        print(f"{label:<50} {_fmt(a, unit):>14} {_fmt(b, unit):>14} {ratio:>12.1f}x")


if __name__ == "__main__":
    main()
