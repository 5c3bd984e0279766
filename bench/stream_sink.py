#!/usr/bin/env python3
"""Benchmark: producer -> stream -> sink -> Parquet in the catalog, on each stream backend.

    .venv/bin/python bench/stream_sink.py [--records N] [--batch B] [--shards S]
                                          [--max-records M] [--rate R] [--lag-seconds T]
                                          [--backends sqlite,redis]

For each backend, in a fresh workspace (and, for Redis, a private redis-server
on a free port, no persistence, started and stopped here), with small JSON
sensor readings (~110 bytes each, 500 sensors, the partition key from
``sensor_id``):

1. put: ``Stream.put_many`` of ``--batch`` records at a time, alone.
2. consume: a :class:`~loopml.data.streams.Consumer` reading those records
   ``--batch`` at a time, committing after each poll.
3. end to end: a producer process puts ``--records`` new records as fast as
   it can while a :class:`~loopml.data.streams.StreamSink` (flushing every
   ``--max-records``) delivers them into a dataset at the same time; the
   rate is records / (first put -> last catalog commit). No loss: the
   dataset must hold exactly the records put, each id once.
4. lag: a producer puts ``--rate`` records/s for ``--lag-seconds`` while a
   sink with ``max_seconds=1`` runs; the lag of a record is from its arrival
   in the stream to the catalog commit of the version that holds it
   (p50 / p99 / max over every record).

Targets (issue 10): >= 50k records/s put in batches and end to end with no
loss on the SQLite log; >= 100k records/s put in batches on Redis.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from streams_put import make_records, private_redis, put_and_consume  # noqa: E402

from loopml import Workspace  # noqa: E402
from loopml.data import Catalog  # noqa: E402
from loopml.data.streams import FlushResult, StreamSink, create_stream  # noqa: E402

TARGETS = {"sqlite": {"put": 50_000, "e2e": 50_000}, "redis": {"put": 100_000, "e2e": 0}}


# -- the producer process ----------------------------------------------------------------------
def produce(root: str, stream: str, n: int, batch: int, rate: float, first_id: int) -> None:
    """Put ``n`` records (ids from ``first_id``) in batches; at ``rate`` records/s if > 0."""
    from loopml.data.streams import open_stream

    records = make_records(n, seed=first_id)
    for i, r in enumerate(records):
        r["id"] = first_id + i
    ws = Workspace.open(root)
    with open_stream(ws, stream) as s:
        print(f"start {time.time():.6f}", flush=True)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            if rate > 0:  # pace: batch i is due at i / rate seconds
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            s.put_many(records[i : i + batch], key_field="sensor_id")
        print(f"done {time.time():.6f} {n / (time.perf_counter() - t0):.0f}", flush=True)
    ws.close()


def start_producer(ws: Workspace, stream: str, n: int, batch: int, rate: float, first_id: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--_produce", str(ws.root), stream, str(n), str(batch),
         str(rate), str(first_id)],
        stdout=subprocess.PIPE, text=True,
    )


# -- measurements ------------------------------------------------------------------------------
def measure_put_and_consume(ws: Workspace, args: argparse.Namespace) -> dict[str, float]:
    return put_and_consume(ws, "alone", make_records(args.records), batch=args.batch, shards=args.shards)


def run_sink_with_producer(
    ws: Workspace, stream: str, dataset: str, n: int, *, batch: int, rate: float,
    max_records: int, max_seconds: float, shards: int,
) -> tuple[float, float, list[FlushResult]]:
    """Producer process + sink here until all ``n`` records are in the catalog.

    Returns (producer start time, last commit time, flushes).
    """
    create_stream(ws, stream, shards=shards).close()
    flushes: list[FlushResult] = []
    delivered = [0, 0.0]
    sink = StreamSink(ws, stream, dataset, max_records=max_records, max_seconds=max_seconds)

    def on_flush(r: FlushResult) -> None:
        flushes.append(r)
        delivered[0] += r.records
        delivered[1] = time.time()
        if delivered[0] >= n:
            sink.stop()

    sink.on_flush = on_flush
    with sink:
        proc = start_producer(ws, stream, n, batch, rate, 0)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the producer has made its records and begins to put
        if not line.startswith("start"):
            proc.wait()
            raise SystemExit(f"the producer failed (exit {proc.returncode})")
        started = float(line.split()[1])
        sink.run(stop_after=600)
        rest = proc.stdout.read()
        proc.wait()
    if delivered[0] != n:
        raise SystemExit(f"the sink delivered {delivered[0]} records of {n} (producer: {rest!r})")
    return started, delivered[1], flushes


def check_no_loss(ws: Workspace, dataset: str, n: int) -> dict[str, Any]:
    con = Catalog(ws).duckdb(dataset)
    rows, distinct, lo, hi = con.aggregate("count(*), count(DISTINCT id), min(id), max(id)").fetchall()[0]
    if (rows, distinct, lo, hi) != (n, n, 0, n - 1):
        raise SystemExit(f"{dataset}: {rows} rows, {distinct} distinct ids in [{lo}, {hi}]; put {n}")
    info = Catalog(ws).get(dataset)
    return {"rows": rows, "versions": info.version, "parts": len(info.parts), "mb": info.num_bytes / 1e6}


def lags(ws: Workspace, dataset: str) -> list[float]:
    """Seconds from each record's arrival to the commit of the version that first held it."""
    import numpy as np
    import pyarrow.parquet as pq

    out: list[Any] = []
    seen: set[str] = set()
    for v in Catalog(ws).versions(dataset):
        committed_ms = v.created_at.timestamp() * 1000
        for p in v.parts:
            if p.sha256 in seen:
                continue
            seen.add(p.sha256)
            with ws.artifacts.open(p.sha256) as f:
                arrival = pq.read_table(f, columns=["_arrival"]).column(0)
            ms = arrival.cast("int64").to_numpy()
            out.append((committed_ms - ms) / 1000)
    return list(np.concatenate(out)) if out else []


def bench_backend(url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    folder = tempfile.mkdtemp(prefix="loopml-bench-sink-")
    try:
        if url is not None:
            os.environ["LOOPML_STREAM_URL"] = url  # the producer process inherits it
        ws = Workspace.init(folder)
        res: dict[str, Any] = measure_put_and_consume(ws, args)

        n = args.records
        started, done, flushes = run_sink_with_producer(
            ws, "e2e", "e2e", n, batch=args.batch, rate=0, max_records=args.max_records,
            max_seconds=10, shards=args.shards,
        )
        res["e2e"] = n / (done - started)
        res["e2e_check"] = check_no_loss(ws, "e2e", n)
        res["flush_s"] = sum(f.seconds for f in flushes)

        m = int(args.rate * args.lag_seconds)
        run_sink_with_producer(
            ws, "lag", "lag", m, batch=max(1, int(args.rate / 20)), rate=args.rate,
            max_records=args.max_records, max_seconds=1.0, shards=args.shards,
        )
        res["lag_check"] = check_no_loss(ws, "lag", m)
        lag = np.array(lags(ws, "lag"))
        res["lag"] = {"p50": float(np.percentile(lag, 50)), "p99": float(np.percentile(lag, 99)),
                      "max": float(lag.max()), "n": len(lag)}
        ws.close()
        return res
    finally:
        os.environ.pop("LOOPML_STREAM_URL", None)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_produce":
        root, stream, n, batch, rate, first = sys.argv[2:8]
        produce(root, stream, int(n), int(batch), float(rate), int(first))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=10_000, help="records per put_many and per poll")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--max-records", type=int, default=100_000, help="the sink's max_records")
    p.add_argument("--rate", type=float, default=20_000, help="producer records/s of the lag run")
    p.add_argument("--lag-seconds", type=float, default=10.0)
    p.add_argument("--backends", default="sqlite,redis")
    args = p.parse_args()

    print(f"{args.records:,} records (~110 bytes of JSON), {args.shards} shards, put batches of "
          f"{args.batch:,}, sink max_records {args.max_records:,}; lag at {args.rate:,.0f} records/s "
          f"for {args.lag_seconds:g} s with max_seconds=1\n")
    rows = []
    for name in args.backends.split(","):
        if name == "sqlite":
            rows.append((name, bench_backend(None, args)))
        elif name == "redis":
            with private_redis() as url:
                rows.append((name, bench_backend(url, args)))
        else:
            raise SystemExit(f"unknown backend {name!r}; use sqlite and/or redis")
        r = rows[-1][1]
        print(f"{name}: no loss: {r['e2e_check']} (lag run {r['lag_check']['rows']:,} rows, "
              f"{r['lag_check']['versions']} versions); time in flushes {r['flush_s']:.1f} s", flush=True)
    print()
    print(f"{'backend':8} {'put rec/s':>11} {'consume rec/s':>14} {'end-to-end rec/s':>17} "
          f"{'lag p50 s':>10} {'lag p99 s':>10} {'lag max s':>10}  targets")
    for name, r in rows:
        t = TARGETS[name]
        verdict = [f"put {'ok' if r['put'] >= t['put'] else 'MISSED'}"]
        if t["e2e"]:
            verdict.append(f"e2e {'ok' if r['e2e'] >= t['e2e'] else 'MISSED'}")
        print(f"{name:8} {r['put']:>11,.0f} {r['consume']:>14,.0f} {r['e2e']:>17,.0f} "
              f"{r['lag']['p50']:>10.2f} {r['lag']['p99']:>10.2f} {r['lag']['max']:>10.2f}  "
              + ", ".join(verdict))


if __name__ == "__main__":
    main()
