#!/usr/bin/env python3
"""Benchmark: the EDA profile + HTML report, against the pandas floor and ydata-profiling.

    .venv/bin/python bench/eda.py [--rows N] [--big-rows N] [--skip-big] [--repeat K] [--gen PATH]

Measures, each in its own subprocess (so peak RSS is that run's alone):

(a) ``loopml eda`` as a user runs it: ``run_eda(ws, "ref", target="churn", out=...)`` on a
    dataset version of a workspace prepared beforehand (reads the version, profiles every
    section, renders the HTML, stores both with lineage, writes the file);
(b) the pure core alone: ``profile(table, target="churn")`` + ``render_html`` on an Arrow
    table read from Parquet, with the time of each stage;
(c) the pandas floor of PEERS.md: ``describe(include="all")`` + ``isna().sum()`` + Pearson
    + Spearman (no report, no outliers, no target analysis);
(d) (a) on the ``--big-rows`` data (1M rows x 28 columns by default).

"work s" is the call itself; "process s" adds interpreter start-up and imports (what a
user waits for). Targets: 100k rows in about 4 s with every section and under 500 MB peak
RSS (ydata-profiling 4.18.4: 41.9 s, 1.10 GB; pandas floor 2.7 s, measured on this kind of
machine, see ../shared/bench/PEERS.md), and 1M rows x 25 features under 30 s.

The data come from ``shared/bench/gen_data.py`` (``make(n, 1)`` for "ref", ``make(n, 3)`` for
"big") and are kept as Parquet in ``--data-dir`` between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

MIB = 1 << 20
TARGET_SECONDS = 4.0
TARGET_RSS = 500 * MIB
TARGET_BIG_SECONDS = 30.0
PEERS = {"ydata-profiling 4.18.4 (PEERS.md)": (41.9, 1100 * 1e6), "pandas floor (PEERS.md)": (2.7, None)}


# -- data ---------------------------------------------------------------------------
def ensure_parquet(data_dir: Path, name: str, rows: int, seed: int, gen_path: Path) -> Path:
    """Return ``data_dir/eda_<name>_<rows>.parquet``, generating it with ``make(rows, seed)`` if absent.

    Generation runs in a child process: on Linux a child's peak RSS starts at its
    parent's, so this process must stay small for the children's figures to be theirs.
    """
    path = data_dir / f"eda_{name}_{rows}.parquet"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"generating {path} ({rows:,} rows) ...", file=sys.stderr, flush=True)
    _common.run_child("generate", str(gen_path), str(rows), str(seed), str(path))
    print(f"  {path.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return path


def child_generate(gen_path: str, rows: str, seed: str, path: str) -> dict[str, Any]:
    tmp = path + ".tmp"
    _common.load_gen(Path(gen_path)).make(int(rows), int(seed)).to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return {"rows": int(rows), "seconds": 0.0}


# -- children -----------------------------------------------------------------------
def child_setup(parquet: str, ws_dir: str, name: str) -> dict[str, Any]:
    _common.use_src()
    import pyarrow.parquet as pq

    import loopml
    from loopml.data import Catalog

    ws = loopml.Workspace.init(ws_dir)
    info = Catalog(ws).write(name, pq.read_table(parquet))
    ws.close()
    return {"rows": info.row_count, "seconds": 0.0}


def child_run_eda(ws_dir: str, name: str) -> dict[str, Any]:
    _common.use_src()
    import loopml
    from loopml.eda import run_eda

    out = Path(tempfile.mkdtemp(prefix="loopml-bench-eda-")) / "report.html"
    try:
        ws = loopml.Workspace.open(ws_dir)
        t0 = time.perf_counter()
        res = run_eda(ws, name, target="churn", out=out)
        secs = time.perf_counter() - t0
        ws.close()
        return {"rows": res.profile.rows, "seconds": secs, "html_bytes": out.stat().st_size,
                "json_bytes": len(res.profile.to_json()), "warnings": len(res.profile.warnings),
                "sample_rows": res.profile.data["overview"]["sample"]["rows"]}
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def child_profile(parquet: str) -> dict[str, Any]:
    _common.use_src()
    import pyarrow.parquet as pq

    from loopml.eda import profile, render_html

    stages: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    table = pq.read_table(parquet)
    t1 = time.perf_counter()
    p = profile(table, target="churn", progress=lambda s: stages.append((s, time.perf_counter())))
    t2 = time.perf_counter()
    html = render_html(p)
    t3 = time.perf_counter()
    marks = [("setup", t1), *stages, ("end", t2)]
    split = {a: round(tb - ta, 3) for (a, ta), (_, tb) in pairwise(marks)}
    return {"rows": p.rows, "seconds": t3 - t0, "read_seconds": t1 - t0, "profile_seconds": t2 - t1,
            "render_seconds": t3 - t2, "html_bytes": len(html.encode()), "stages": split}


def child_floor(parquet: str) -> dict[str, Any]:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_parquet(parquet)
    df.describe(include="all")
    df.isna().sum()
    num = df.select_dtypes("number")
    num.corr(method="pearson")
    num.corr(method="spearman")
    return {"rows": len(df), "seconds": time.perf_counter() - t0}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {"generate": child_generate, "setup": child_setup, "run_eda": child_run_eda, "profile": child_profile, "floor": child_floor}


# -- report -------------------------------------------------------------------------
def _row(label: str, r: dict[str, Any], runs: list[dict[str, Any]] | None = None) -> str:
    spread = ""
    if runs and len(runs) > 1:
        spread = "  (" + ", ".join(f"{float(x['seconds']):.2f}" for x in runs) + ")"
    html = f"{int(r['html_bytes']) / 1e6:>7.1f}" if r.get("html_bytes") else "      —"
    return (f"| {label:<34} | {int(r['rows']):>9,} | {float(r['seconds']):>7.2f} | "
            f"{float(r['process_seconds']):>9.2f} | {int(r['peak_rss']) / MIB:>8,.0f} | {html} |{spread}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the 'ref' data (default 100,000)")
    ap.add_argument("--big-rows", type=int, default=1_000_000, help="rows of the 'big' data (default 1,000,000)")
    ap.add_argument("--skip-big", action="store_true", help="skip (d), the big run")
    ap.add_argument("--skip-floor", action="store_true", help="skip (c), the pandas floor")
    ap.add_argument("--repeat", type=int, default=1, help="runs of (a), (b) and (c), interleaved; the median is shown")
    ap.add_argument("--data-dir", default=str(_common.BENCH / "_data"))
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder (e.g. another checkout's, to compare)")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        _common.print_child_result(CHILDREN[a.child[0]](*a.child[1:]))
        return
    parent_rss = _common.peak_rss()

    _common.export_src(a.src)
    gen = _common.find_gen(a.gen)
    data_dir = Path(a.data_dir)
    ref = ensure_parquet(data_dir, "ref", a.rows, 1, gen)
    big = None if a.skip_big else ensure_parquet(data_dir, "big", a.big_rows, 3, gen)

    work = Path(tempfile.mkdtemp(prefix="loopml-bench-eda-ws-"))
    try:
        _common.run_child("setup", str(ref), str(work), "ref")
        if big is not None:
            _common.run_child("setup", str(big), str(work), "big")
        runs: dict[str, list[dict[str, Any]]] = {"run_eda": [], "profile": [], "floor": []}
        for _ in range(max(a.repeat, 1)):
            runs["run_eda"].append(_common.run_child("run_eda", str(work), "ref"))
            runs["profile"].append(_common.run_child("profile", str(ref)))
            if not a.skip_floor:
                runs["floor"].append(_common.run_child("floor", str(ref)))
        big_res = _common.run_child("run_eda", str(work), "big") if big is not None else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    eda, core = _common.median_run(runs["run_eda"]), _common.median_run(runs["profile"])
    floor = _common.median_run(runs["floor"]) if runs["floor"] else None
    print(f"\nEDA profile + HTML report, target churn; python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"| {'run':<34} | {'rows':>9} | {'work s':>7} | {'process s':>9} | {'peak MiB':>8} | {'HTML MB':>7} |")
    print(f"|{'-' * 36}|{'-' * 11}:|{'-' * 8}:|{'-' * 10}:|{'-' * 9}:|{'-' * 8}:|")
    print(_row("(a) loopml eda (run_eda)", eda, runs["run_eda"]))
    print(_row("(b) profile + render_html", core, runs["profile"]))
    if floor is not None:
        print(_row("(c) pandas floor (no report)", floor, runs["floor"]))
    if big_res is not None:
        print(_row(f"(d) loopml eda, {a.big_rows / 1e6:g}M rows", big_res))
    for label, (secs, rss) in PEERS.items():
        print(f"| {label:<34} | {a.rows:>9,} | {secs:>7.2f} | {'':>9} | "
              f"{'' if rss is None else f'{rss / MIB:,.0f}':>8} | {'25.0' if 'ydata' in label else '—':>7} |")
    print(f"\n(b) stages, seconds: {json.dumps(core['stages'])}")
    print(f"    read {core['read_seconds']:.2f}, profile {core['profile_seconds']:.2f}, "
          f"render {core['render_seconds']:.2f}; sample {eda['sample_rows']:,} rows")
    secs, rss = float(eda["process_seconds"]), int(eda["peak_rss"])
    print(f"\n{a.rows:,} rows: {secs:.2f} s for the whole `loopml eda` process (target <= {TARGET_SECONDS:g} s): "
          f"{_common.verdict(secs <= TARGET_SECONDS)}; peak RSS {rss / MIB:,.0f} MiB (target < {TARGET_RSS // MIB} MiB): "
          f"{_common.verdict(rss < TARGET_RSS)}; {41.9 / secs:.1f}x faster than ydata-profiling")
    if big_res is not None:
        bs = float(big_res["process_seconds"])
        print(f"{a.big_rows:,} rows: {bs:.2f} s (target < {TARGET_BIG_SECONDS:g} s): "
              f"{_common.verdict(bs < TARGET_BIG_SECONDS)}; peak RSS {int(big_res['peak_rss']) / MIB:,.0f} MiB")
    print(f"(peak RSS of this parent process, inherited by each child's figure: {parent_rss / MIB:,.0f} MiB)")
    if a.json:
        print(json.dumps({"run_eda": runs["run_eda"], "profile": runs["profile"], "floor": runs["floor"],
                          "big": big_res, "median_seconds": statistics.median(
                              float(r["process_seconds"]) for r in runs["run_eda"])}))


if __name__ == "__main__":
    main()
