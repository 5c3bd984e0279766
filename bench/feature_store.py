#!/usr/bin/env python3
"""Benchmark: the feature store against Feast 0.67 (figures from ``shared/bench/PEERS.md``).

    .venv/bin/python bench/feature_store.py [--rows N] [--entities N] [--features K]
                                            [--calls N] [--repeat K] [--redis auto|URL|none] [--gen PATH] [--json]

Data: ``gen_data.make(rows, seed=3)`` from ``shared/bench/gen_data.py`` (the "big" set:
1M rows, customer_id in [0, 100k), event times over 2025), as a feature group of the
first ``--features`` numeric columns (10, like the Feast script). Entity rows: 100k
(customer_id uniform in [0, 100k), a time uniform in 2025), like ``peer_feast.py``.

Each measurement runs in its own subprocess, so its peak RSS is its own:

(a) materialize: offline parts (1M rows) -> online store, full, into an empty SQLite store
    (``--repeat`` runs, the median shown);
(b) online reads through a kept-open ``FeatureStore``: ``get_record`` of 1 id and
    ``batch_get`` of 100 ids, p50/p99 over ``--calls`` calls each (after a warm-up);
(c) point-in-time training set: ``get_training_set`` of the entity rows (pandas in,
    pandas out) against the 1M feature rows, wall time and peak RSS (median of ``--repeat``);
(d) with Redis (``--redis auto`` starts a private redis-server): (a) and (b) again.

Targets (issue 3): 1-id p99 <= 0.25 ms, 100-id p99 <= 1 ms (SQLite), materialize
>= 5x faster than Feast (<= 2.88 s), the join >= 4x faster (<= 0.57 s) keeping every
entity row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

#: Feast 0.67.0, sqlite online store + file offline store, 2 cores (shared/bench/PEERS.md)
FEAST = {"online_1_p50_ms": 0.23, "online_1_p99_ms": 0.48, "online_100_p50_ms": 7.5,
         "online_100_p99_ms": 11.1, "materialize_s": 14.4, "pit_s": 2.28, "pit_rss_mib": 1430,
         "pit_rows": 90_829}
TARGETS = {"online_1_p99_ms": 0.25, "online_100_p99_ms": 1.0, "materialize_s": 14.4 / 5,
           "pit_s": 2.28 / 4}


def _import_loopml() -> Any:
    _common.use_src()
    import loopml

    return loopml


# -- children -------------------------------------------------------------------------------------
def child_setup(a: dict[str, Any]) -> dict[str, Any]:
    """Workspace, group, 1M rows ingested offline only, entity rows as Parquet."""
    import numpy as np
    import pandas as pd

    loopml = _import_loopml()
    from loopml.features import FeatureStore

    gen = _common.load_gen(Path(a["gen"]))
    t0 = time.perf_counter()
    df = gen.make(a["rows"], 3)
    feats = [f"num_{i:02d}" for i in range(a["features"])]
    df = df[["customer_id", "event_time", *feats]]
    gen_s = time.perf_counter() - t0
    ws = loopml.Workspace.init(a["ws"])
    with FeatureStore(ws) as fs:
        fs.create_group("fv", record_id="customer_id", event_time="event_time",
                        features={f: "fractional" for f in feats}, id_type="integral")
        t1 = time.perf_counter()
        res = fs.ingest("fv", df, online=False)
        ingest_s = time.perf_counter() - t1
    r = np.random.default_rng(0)
    n_ids = max(a["rows"] // 10, 1)
    ent = pd.DataFrame({
        "customer_id": r.integers(0, n_ids, a["entities"]),
        "event_time": pd.Timestamp("2025-01-01", tz="UTC")
        + pd.to_timedelta(r.integers(0, 365 * 24 * 3600, a["entities"]), unit="s"),
    })
    ent.to_parquet(Path(a["ws"]) / "entities.parquet", index=False)
    ws.close()
    return {"rows": res.rows, "ids": int(df["customer_id"].nunique()), "gen_s": gen_s,
            "ingest_s": ingest_s}


def child_materialize(a: dict[str, Any]) -> dict[str, Any]:
    loopml = _import_loopml()
    from loopml.features import FeatureStore

    ws = loopml.Workspace.open(a["ws"])
    with FeatureStore(ws, online_url=a.get("online_url")) as fs:
        t0 = time.perf_counter()
        res = fs.materialize("fv")
        secs = time.perf_counter() - t0
        count = fs.online.count("fv")
    ws.close()
    return {"seconds": secs, "rows_read": res.rows_read, "records": res.records, "online_count": count}


def child_online(a: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    loopml = _import_loopml()
    from loopml.features import FeatureStore

    ws = loopml.Workspace.open(a["ws"])
    out: dict[str, Any] = {}
    r = np.random.default_rng(1)
    n_ids = max(a["rows"] // 10, 1)
    with FeatureStore(ws, online_url=a.get("online_url")) as fs:
        for k in (1, 100):
            calls = a["calls"] if k == 1 else max(a["calls"] // 5, 300)
            ids = r.integers(0, n_ids, (calls + 200, k)).tolist()
            lat = []
            found = 0
            for j, row in enumerate(ids):
                if k == 1:
                    t0 = time.perf_counter()
                    rec = fs.get_record("fv", row[0])
                    dt = time.perf_counter() - t0
                    found += rec is not None
                else:
                    t0 = time.perf_counter()
                    recs = fs.batch_get("fv", row)
                    dt = time.perf_counter() - t0
                    found += sum(x is not None for x in recs)
                if j >= 200:  # warm-up calls are not counted
                    lat.append(dt)
            lat.sort()
            out[f"online_{k}_p50_ms"] = lat[len(lat) // 2] * 1e3
            out[f"online_{k}_p99_ms"] = lat[int(len(lat) * 0.99) - 1] * 1e3
            out[f"online_{k}_found"] = found
            out[f"online_{k}_calls"] = len(lat)
    ws.close()
    return out


def child_pit(a: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    loopml = _import_loopml()
    from loopml.features import get_training_set

    ws = loopml.Workspace.open(a["ws"])
    ent = pd.read_parquet(Path(a["ws"]) / "entities.parquet")
    t0 = time.perf_counter()
    df = get_training_set(ws, ent, ["fv"])
    secs = time.perf_counter() - t0
    ws.close()
    first = df.columns[2]
    return {"seconds": secs, "rows": len(df), "entity_rows": len(ent),
            "null_rows": int(df[first].isna().sum()),
            "order_kept": bool((df["customer_id"].to_numpy() == ent["customer_id"].to_numpy()).all())}


CHILDREN = {"setup": child_setup, "materialize": child_materialize, "online": child_online,
            "pit": child_pit}


def _run_child(mode: str, args: dict[str, Any]) -> dict[str, Any]:
    """A child run here takes its arguments as one JSON object; its wall time is ``process_s``."""
    return _common.run_child(mode, json.dumps(args), time_key="process_s")


# -- report -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="feature rows (ids: rows / 10)")
    ap.add_argument("--entities", type=int, default=100_000, help="entity rows of the join")
    ap.add_argument("--features", type=int, default=10, help="numeric features in the group (max 20)")
    ap.add_argument("--calls", type=int, default=5_000, help="online calls for 1 id (100 ids: a fifth)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) and (c); the median run is shown")
    ap.add_argument("--redis", default="auto", help="auto (start redis-server), a redis:// URL, or none")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder (e.g. another checkout's)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "ARGS"), help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        _common.print_child_result(CHILDREN[a.child[0]](json.loads(a.child[1])))
        return

    _common.export_src(a.src)
    gen = _common.find_gen(a.gen)
    tmp = tempfile.mkdtemp(prefix="loopml-bench-fs-")
    base = {"ws": tmp, "gen": str(gen), "rows": a.rows, "entities": a.entities,
            "features": min(a.features, 20), "calls": a.calls}
    results: dict[str, Any] = {}
    redis: _common.PrivateRedis | None = None
    try:
        print(f"setting up: {a.rows:,} feature rows x {base['features']} features ...", file=sys.stderr)
        results["setup"] = _run_child("setup", base)
        # each materialization fills a fresh, empty SQLite online store
        mats = [_run_child("materialize", {**base, "online_url": f"sqlite:///{tmp}/online-{i}.db"})
                for i in range(a.repeat)]
        results["materialize"] = _common.median_run(mats, all_seconds=True)
        base["online_url"] = f"sqlite:///{tmp}/online-0.db"
        results["online"] = _run_child("online", base)
        results["pit"] = _common.median_run([_run_child("pit", base) for _ in range(a.repeat)], all_seconds=True)
        redis_url = None
        if a.redis == "auto":
            try:
                redis = _common.PrivateRedis()
                redis_url = redis.url
            except RuntimeError as e:
                print(f"skipping Redis: {e}", file=sys.stderr)
        elif a.redis != "none":
            redis_url = a.redis
        if redis_url:
            results["redis_materialize"] = _run_child("materialize", {**base, "online_url": redis_url})
            results["redis_online"] = _run_child("online", {**base, "online_url": redis_url})
    finally:
        if redis is not None:
            redis.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    s, m, o, p = results["setup"], results["materialize"], results["online"], results["pit"]
    mib = 1 << 20
    print(f"\nFeature store: {s['rows']:,} feature rows ({s['ids']:,} ids, {base['features']} features), "
          f"{p['entity_rows']:,} entity rows; python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print("| work | loopml | Feast 0.67 (PEERS.md) | target | |")
    print("|---|---:|---:|---:|---|")
    print(f"| online get 1 id, p50 / p99 (SQLite) | {o['online_1_p50_ms']:.3f} / {o['online_1_p99_ms']:.3f} ms"
          f" | {FEAST['online_1_p50_ms']} / {FEAST['online_1_p99_ms']} ms | p99 <= 0.25 ms"
          f" | {_common.verdict(o['online_1_p99_ms'] <= TARGETS['online_1_p99_ms'])} |")
    print(f"| online get 100 ids, p50 / p99 (SQLite) | {o['online_100_p50_ms']:.3f} / "
          f"{o['online_100_p99_ms']:.3f} ms | {FEAST['online_100_p50_ms']} / {FEAST['online_100_p99_ms']} ms"
          f" | p99 <= 1 ms | {_common.verdict(o['online_100_p99_ms'] <= TARGETS['online_100_p99_ms'])} |")
    print(f"| materialize {m['rows_read']:,} rows -> {m['records']:,} records (SQLite) | {m['seconds']:.2f} s, "
          f"{m['peak_rss'] / mib:,.0f} MiB | {FEAST['materialize_s']} s | <= {TARGETS['materialize_s']:.2f} s"
          f" | {_common.verdict(m['seconds'] <= TARGETS['materialize_s'])} ({FEAST['materialize_s'] / m['seconds']:.1f}x) |")
    print(f"| point-in-time join {p['entity_rows']:,} x {s['rows']:,} | {p['seconds']:.2f} s, "
          f"{p['peak_rss'] / mib:,.0f} MiB, {p['rows']:,} rows ({p['null_rows']:,} with nulls) | "
          f"{FEAST['pit_s']} s, {FEAST['pit_rss_mib']:,} MiB, {FEAST['pit_rows']:,} rows | "
          f"<= {TARGETS['pit_s']:.2f} s, every row | "
          f"{_common.verdict(p['seconds'] <= TARGETS['pit_s'])} ({FEAST['pit_s'] / p['seconds']:.1f}x)"
          f"{'' if p['rows'] == p['entity_rows'] and p['order_kept'] else ' ROWS LOST'} |")
    if "redis_online" in results:
        rm, ro = results["redis_materialize"], results["redis_online"]
        print(f"| online get 1 id, p50 / p99 (Redis) | {ro['online_1_p50_ms']:.3f} / "
              f"{ro['online_1_p99_ms']:.3f} ms | | | |")
        print(f"| online get 100 ids, p50 / p99 (Redis) | {ro['online_100_p50_ms']:.3f} / "
              f"{ro['online_100_p99_ms']:.3f} ms | | | |")
        print(f"| materialize (Redis) | {rm['seconds']:.2f} s | | | |")
    print(f"\nruns (s): materialize {m['all_seconds']}, point-in-time join {p['all_seconds']}")
    print(f"not timed above: generating the data {s['gen_s']:.1f} s; ingesting it offline "
          f"{s['ingest_s']:.2f} s; online calls found a record {o['online_1_found']:,} / "
          f"{o['online_1_calls'] + 200:,} times (ids without events return None)")
    if a.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
