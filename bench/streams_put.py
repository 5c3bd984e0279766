#!/usr/bin/env python3
"""Benchmark: put and consume small JSON records on each stream backend.

    .venv/bin/python bench/streams_put.py [--records N] [--batch B] [--shards S]
                                          [--backends sqlite,redis] [--single N]

For each backend, in a fresh workspace (and, for Redis, a private redis-server
on a free port, no persistence, started and stopped here):

- put: ``Stream.put_many`` of ``--batch`` sensor-like dicts at a time, the
  partition key taken from ``sensor_id`` (serialisation, size checks and
  shard hashing included);
- put 1-by-1: ``Stream.put`` of ``--single`` records, one call each (latency);
- consume: a :class:`~loopml.data.streams.Consumer` polling ``--batch`` records
  at a time and committing after each poll, until every record was read.

Targets (issue 10): >= 50k records/s put in batches on the SQLite log, >= 100k
on Redis.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

sys.path.insert(0, str(_common.REPO / "src"))
from loopml import Workspace
from loopml.data.streams import Consumer, create_stream, open_stream

TARGETS = {"sqlite": 50_000, "redis": 100_000}


def make_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Sensor readings: ~110 bytes of JSON each, 500 sensors."""
    rng = random.Random(seed)
    t0 = 1_780_000_000.0
    return [
        {
            "sensor_id": f"s-{i % 500:04d}",
            "ts": round(t0 + i * 0.01, 3),
            "temperature": round(rng.gauss(21.0, 3.0), 2),
            "humidity": round(rng.uniform(0.2, 0.8), 3),
            "battery": round(rng.uniform(3.0, 4.2), 2),
            "status": "ok" if rng.random() > 0.01 else "warn",
        }
        for i in range(n)
    ]


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server on a free port in a temp folder (no persistence), stopped after."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found (apt-get install redis-server), or use --backends sqlite")
    try:
        redis = _common.PrivateRedis()
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    with redis:
        yield redis.url


def put_and_consume(
    ws: Any, name: str, records: list[dict[str, Any]], *, batch: int, shards: int
) -> dict[str, float]:
    """Create stream ``name``, put ``records`` in batches, then consume them all; records/s of each."""
    out: dict[str, float] = {}
    with create_stream(ws, name, shards=shards) as s:
        t = time.perf_counter()
        for i in range(0, len(records), batch):
            s.put_many(records[i : i + batch], key_field="sensor_id")
        out["put"] = len(records) / (time.perf_counter() - t)
    with Consumer(ws, name, "bench-consumer") as c:
        t = time.perf_counter()
        n = 0
        while polled := c.poll(limit=batch):
            n += len(polled)
            c.commit(polled.checkpoint)
        out["consume"] = n / (time.perf_counter() - t)
    if n != len(records):
        raise SystemExit(f"consumed {n} records, put {len(records)}")
    return out


def bench_backend(url: str | None, records: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, float]:
    folder = tempfile.mkdtemp(prefix="loopml-bench-streams-")
    try:
        import os

        if url is not None:
            os.environ["LOOPML_STREAM_URL"] = url
        ws = Workspace.init(folder)
        os.environ.pop("LOOPML_STREAM_URL", None)
        out = put_and_consume(ws, "bench", records, batch=args.batch, shards=args.shards)
        with open_stream(ws, "bench") as s:
            single = records[: args.single]
            t = time.perf_counter()
            for rec in single:
                s.put(rec, partition_key=rec["sensor_id"])
            out["put_single"] = len(single) / (time.perf_counter() - t)
        ws.close()
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=10_000, help="records per put_many and per poll")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--single", type=int, default=2_000, help="records put one call at a time")
    p.add_argument("--backends", default="sqlite,redis")
    args = p.parse_args()

    import orjson

    records = make_records(args.records)
    avg = sum(len(orjson.dumps(r)) for r in records[:1000]) / 1000
    print(f"{args.records:,} records of ~{avg:.0f} bytes of JSON, {args.shards} shards, "
          f"batches of {args.batch:,}\n")
    rows = []
    for name in args.backends.split(","):
        if name == "sqlite":
            rows.append((name, bench_backend(None, records, args)))
        elif name == "redis":
            with private_redis() as url:
                rows.append((name, bench_backend(url, records, args)))
        else:
            raise SystemExit(f"unknown backend {name!r}; use sqlite and/or redis")
    print(f"{'backend':8} {'put rec/s':>12} {'target':>10} {'consume rec/s':>14} {'put 1-by-1 rec/s':>17}")
    for name, r in rows:
        ok = "ok" if r["put"] >= TARGETS[name] else "MISSED"
        print(f"{name:8} {r['put']:>12,.0f} {TARGETS[name]:>7,} {ok:>2} {r['consume']:>14,.0f} "
              f"{r['put_single']:>17,.0f}")


if __name__ == "__main__":
    main()
