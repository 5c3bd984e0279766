#!/usr/bin/env python3
"""Benchmark: CSV ingestion into a dataset version, against the bare-pyarrow floor.

    .venv/bin/python bench/ingest.py [--rows N] [--big-rows N] [--skip-big] [--repeat K]

Measures, each in its own subprocess (so peak RSS is that run's alone):

(a) loopml: ``ingest(ws, FileSource(csv), "big")`` into a fresh workspace in a temp dir;
(b) floor: the same file with bare pyarrow, ``pyarrow.csv.read_csv`` (whole file in
    memory, all cores) + ``pyarrow.parquet.write_table``;
(c) loopml ingesting a ``--big-rows`` CSV: peak RSS must stay bounded (streaming).

Throughput is rows / wall seconds of the work itself (workspace creation and
interpreter start-up are excluded; they are shown separately). Targets: loopml at
>= 60% of the floor's throughput, and < 1 GiB peak RSS on the big file.

The CSVs come from ``shared/bench/gen_data.py`` (``make(n, seed)``, the "big" data
set: seed 3 for the first million rows) and are kept in ``--data-dir`` between runs.
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

GIB = 1 << 30
TARGET_RATIO = 0.60
TARGET_RSS = GIB
CHUNK_ROWS = 1_000_000  # rows generated per make() call when writing a CSV


# -- data ---------------------------------------------------------------------------
def ensure_csv(data_dir: Path, rows: int, gen_path: Path) -> Path:
    """Return ``data_dir/big_<rows>.csv``, writing it in chunks of ``make()`` calls if absent."""
    path = data_dir / f"big_{rows}.csv"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    gen = _common.load_gen(gen_path)
    tmp = path.with_suffix(".csv.tmp")
    t0 = time.perf_counter()
    print(f"generating {path} ({rows:,} rows) ...", file=sys.stderr, flush=True)
    with open(tmp, "w", newline="") as f:
        done, seed = 0, 3  # seed 3 = gen_data.py's "big" data set
        while done < rows:
            n = min(CHUNK_ROWS, rows - done)
            gen.make(n, seed).to_csv(f, index=False, header=(done == 0))
            done += n
            seed += 1
    os.replace(tmp, path)
    print(f"  {path.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr, flush=True)
    return path


# -- children -----------------------------------------------------------------------
def child_loopml(csv: str) -> dict[str, Any]:
    _common.use_src()
    import loopml
    from loopml.data.ingest import ingest
    from loopml.data.sources.files import FileSource

    tmp = tempfile.mkdtemp(prefix="loopml-bench-")
    try:
        t0 = time.perf_counter()
        ws = loopml.Workspace.init(tmp)
        t1 = time.perf_counter()
        info = ingest(ws, FileSource(csv), "big")
        t2 = time.perf_counter()
        out = {"rows": info.row_count, "seconds": t2 - t1, "setup_seconds": t1 - t0,
               "bytes_out": info.num_bytes, "parts": len(info.parts)}
        ws.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def child_floor(csv: str) -> dict[str, Any]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    tmp = tempfile.mkdtemp(prefix="loopml-bench-floor-")
    try:
        t0 = time.perf_counter()
        table = pacsv.read_csv(csv)
        pq.write_table(table, os.path.join(tmp, "out.parquet"))
        t1 = time.perf_counter()
        out = {"rows": table.num_rows, "seconds": t1 - t0, "setup_seconds": 0.0,
               "bytes_out": os.path.getsize(os.path.join(tmp, "out.parquet")), "parts": 1}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


CHILDREN = {"loopml": child_loopml, "floor": child_floor}


# -- report -------------------------------------------------------------------------
def _row(label: str, r: dict[str, Any], all_secs: list[float]) -> str:
    secs = float(r["seconds"])
    spread = f"  ({', '.join(f'{s:.2f}' for s in all_secs)})" if len(all_secs) > 1 else ""
    return (f"| {label:<22} | {int(r['rows']):>10,} | {float(r['rows']) / secs:>12,.0f} | "
            f"{secs:>8.2f} | {int(r['peak_rss']) / 2**20:>9,.0f} | "
            f"{int(r['bytes_out']) / 1e6:>8,.1f} |{spread}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-rows", type=int, default=5_000_000)
    ap.add_argument("--data-dir", default=str(_common.BENCH / "_data"))
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--skip-big", action="store_true", help="skip (c), the --big-rows RSS run")
    ap.add_argument("--repeat", type=int, default=1, help="runs of (a) and (b), interleaved; the median is shown")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--src", help="import loopml from this src folder (e.g. another checkout's, to compare)")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "CSV"), help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        _common.print_child_result(CHILDREN[a.child[0]](a.child[1]))
        return

    _common.export_src(a.src)
    gen = _common.find_gen(a.gen)
    data_dir = Path(a.data_dir)
    csv = ensure_csv(data_dir, a.rows, gen)
    big = None if a.skip_big else ensure_csv(data_dir, a.big_rows, gen)

    runs: dict[str, list[dict[str, Any]]] = {"loopml": [], "floor": []}
    for _ in range(max(a.repeat, 1)):
        for mode in ("loopml", "floor"):
            runs[mode].append(_common.run_child(mode, str(csv)))
    lo, fl = _common.median_run(runs["loopml"]), _common.median_run(runs["floor"])
    big_res = _common.run_child("loopml", str(big)) if big is not None else None

    print(f"\nCSV ingest: {csv} ({csv.stat().st_size / 1e6:,.0f} MB), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")
    print("| run                    |       rows |       rows/s |   wall s |  peak MiB |   out MB |")
    print("|------------------------|-----------:|-------------:|---------:|----------:|---------:|")
    print(_row("(a) loopml ingest", lo, [float(r["seconds"]) for r in runs["loopml"]]))
    print(_row("(b) floor: pyarrow", fl, [float(r["seconds"]) for r in runs["floor"]]))
    if big_res is not None:
        print(_row(f"(c) loopml {a.big_rows / 1e6:g}M rows", big_res, [float(big_res["seconds"])]))
    ratio = (float(fl["seconds"]) / float(lo["seconds"]))
    print(f"\nloopml / floor throughput: {ratio:.2f} (target >= {TARGET_RATIO:.2f}): "
          f"{'ok' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")
    print(f"loopml workspace setup (excluded): {float(lo['setup_seconds']):.2f} s")
    if big_res is not None:
        rss = int(big_res["peak_rss"])
        print(f"loopml peak RSS on {a.big_rows:,} rows: {rss / 2**20:,.0f} MiB (target < 1024 MiB): "
              f"{'ok' if rss < TARGET_RSS else 'ABOVE TARGET'}")
    if a.json:
        print(json.dumps({"loopml": runs["loopml"], "floor": runs["floor"], "big": big_res, "ratio": ratio}))


if __name__ == "__main__":
    main()
