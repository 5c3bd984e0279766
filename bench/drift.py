#!/usr/bin/env python3
"""Benchmark: data drift of "cur" against "ref" over all 25 features, every method, beside the peers.

    .venv/bin/python bench/drift.py [--rows N] [--big-rows N] [--skip-big] [--repeat K] [--seeds S] [--gen PATH]

Measures, each in its own subprocess (so peak RSS is that run's alone), on the data of
``shared/bench/gen_data.py`` (``make(n, 1)`` as "ref", ``make(n, 2, drift=True)`` as "cur"),
the 20 numeric and 5 categorical features:

(a) loopml's core, what a monitoring run computes: statistics.json of "ref" (the baseline:
    counts, moments, histogram, the 1,001-point quantile sketch, category counts), suggested
    constraints, statistics.json of "cur" with the baseline's types, then every check and
    every drift method — KS, Wasserstein, PSI for numbers; L-infinity, Jensen–Shannon,
    chi-square, PSI for categories — with Robust thresholds, and the drift share;
(b) the same run as a user makes it in a workspace: ``baseline(ws, "ref")`` then
    ``run_data_quality(ws, dataset="cur")`` (reads the versions, stores the statistics, the
    violations and the HTML report with lineage, writes the metrics);
(c) the scipy floor, ``shared/bench/floor_drift_scipy.py`` as it is (KS per numeric +
    chi-square per categorical, raw p < 0.05);
(d) (a) on ``--big-rows`` rows against ``--big-rows`` rows (1M vs 1M by default);
(e) accuracy over ``--seeds`` seeds: the features loopml flags (any violation) at the default
    thresholds and the features the floor flags, for ``make(n, 1 + 10 s)`` against
    ``make(n, 2 + 10 s, drift=True)``; the 5 drifted features are num_00 (mean), num_01
    (spread), num_02 (completeness), cat_0 (frequencies) and cat_1 (a new category).

"work s" excludes reading the Parquet files (as the peers' figures do); "process s" is the
whole child process; the CPU seconds (``time.process_time``) are printed too, as wall times on
a busy machine say more about the machine than the code. Run the floor and loopml on the same
machine at the same time before comparing them. Targets: (a) under 0.8 s (Evidently 0.7.23 DataDriftPreset: 8.35 s,
671 MB peak RSS, from ../shared/bench/PEERS.md — it does not install beside pandas 3; the
floor about 0.52 s), (d) under 10 s, and (e) exactly the 5 drifted features for every seed.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

MIB = 1 << 20
TARGET_SECONDS = 0.8
TARGET_BIG_SECONDS = 10.0
EVIDENTLY = (8.35, 671 * 1e6)
DRIFTED = ["cat_0", "cat_1", "num_00", "num_01", "num_02"]


# -- data -----------------------------------------------------------------------------------
def ensure_pair(data_dir: Path, rows: int, gen_path: Path, seed: int = 0) -> Path:
    """A folder with ``ref.parquet`` (make(rows, 1 + 10 seed)) and ``cur.parquet`` (make(rows, 2 + 10 seed, drift))."""
    folder = data_dir / f"drift_{rows}_s{seed}"
    if (folder / "ref.parquet").exists() and (folder / "cur.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"generating {folder} ({rows:,} + {rows:,} rows) ...", file=sys.stderr, flush=True)
    _common.run_child("generate", str(gen_path), str(rows), str(seed), str(folder))
    print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return folder


def child_generate(gen_path: str, rows: str, seed: str, folder: str) -> dict[str, Any]:
    gen = _common.load_gen(Path(gen_path))
    s = int(seed)
    for name, sd, drift in (("ref", 1 + 10 * s, False), ("cur", 2 + 10 * s, True)):
        tmp = f"{folder}/{name}.parquet.tmp"
        gen.make(int(rows), sd, drift).to_parquet(tmp, index=False)
        os.replace(tmp, f"{folder}/{name}.parquet")
    return {"rows": int(rows), "seconds": 0.0}


def _features(columns: list[str]) -> list[str]:
    return [c for c in columns if c.startswith(("num_", "cat_"))]


# -- children ---------------------------------------------------------------------------------
def _core(ref: Any, cur: Any) -> tuple[dict[str, Any], dict[str, float]]:
    from loopml.monitor import check_data, compute_statistics, suggest_constraints

    feats = _features([str(c) for c in ref.columns])
    c0 = time.process_time()
    t0 = time.perf_counter()
    base = compute_statistics(ref, features=feats)
    cons = suggest_constraints(base)
    t1 = time.perf_counter()
    types = {f["name"]: f["inferred_type"] for f in cons["features"]}
    current = compute_statistics(cur, features=feats, types=types)
    t2 = time.perf_counter()
    doc = check_data(base, cons, current, current_columns=feats)
    t3 = time.perf_counter()
    return doc, {"baseline_seconds": t1 - t0, "current_seconds": t2 - t1, "compare_seconds": t3 - t2,
                 "seconds": t3 - t0, "cpu_seconds": time.process_time() - c0}


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    by_method: dict[str, list[str]] = {}
    for name, d in doc["drift"]["features"].items():
        for m, s in d["methods"].items():
            if s["drift"]:
                by_method.setdefault(m, []).append(name)
    return {"flagged": sorted({v["feature_name"] for v in doc["violations"]}),
            "drifted": sorted(doc["drift"]["drifted_features"]), "by_method": by_method,
            "checks": sorted({v["constraint_check_type"] for v in doc["violations"]}),
            "methods": sorted({m for d in doc["drift"]["features"].values() for m in d["methods"]}),
            "drift_share": doc["drift"]["drift_share"]}


def child_core(folder: str) -> dict[str, Any]:
    _common.use_src()
    import pandas as pd

    t0 = time.perf_counter()
    ref, cur = pd.read_parquet(f"{folder}/ref.parquet"), pd.read_parquet(f"{folder}/cur.parquet")
    load = time.perf_counter() - t0
    doc, times = _core(ref, cur)
    return {"rows": len(ref), "load_seconds": load, **times, **_summary(doc)}


def child_setup(folder: str, ws_dir: str) -> dict[str, Any]:
    _common.use_src()
    import pyarrow.parquet as pq

    import loopml
    from loopml.data import Catalog

    ws = loopml.Workspace.init(ws_dir)
    cat = Catalog(ws)
    for name in ("ref", "cur"):
        t = pq.read_table(f"{folder}/{name}.parquet")
        cat.write(name, t.select(_features(t.column_names)))
    ws.close()
    return {"rows": 0, "seconds": 0.0}


def child_workspace(ws_dir: str) -> dict[str, Any]:
    _common.use_src()
    import loopml
    from loopml.monitor import baseline, run_data_quality

    ws = loopml.Workspace.open(ws_dir)
    t0 = time.perf_counter()
    b = baseline(ws, "ref")
    t1 = time.perf_counter()
    r = run_data_quality(ws, dataset="cur", baseline=b)
    t2 = time.perf_counter()
    ws.close()
    return {"rows": int(r.summary["item_count"]), "seconds": t2 - t0, "baseline_seconds": t1 - t0,
            "run_seconds": t2 - t1, "status": r.status, "flagged": r.summary["flagged_features"]}


def child_floor(script: str, folder: str) -> dict[str, Any]:
    buf = StringIO()
    c0 = time.process_time()
    t0 = time.perf_counter()
    saved = sys.argv
    sys.argv = [script, folder]
    try:
        with redirect_stdout(buf):
            runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = saved
    res = json.loads(buf.getvalue().strip().splitlines()[-1])
    return {"rows": 0, "seconds": float(res["compute_s"]), "load_seconds": float(res["load_s"]),
            "flagged": sorted(res["drifted"]), "process_inner": time.perf_counter() - t0,
            "cpu_seconds_with_load": time.process_time() - c0}


def child_accuracy(gen_path: str, rows: str, seeds: str) -> dict[str, Any]:
    _common.use_src()
    import numpy as np
    import pandas as pd
    from scipy import stats

    gen = _common.load_gen(Path(gen_path))
    out = []
    for s in range(int(seeds)):
        ref, cur = gen.make(int(rows), 1 + 10 * s), gen.make(int(rows), 2 + 10 * s, True)
        doc, times = _core(ref, cur)
        floor = []
        for c in _features([str(x) for x in ref.columns]):
            if c.startswith("num_"):
                p = stats.ks_2samp(ref[c].dropna(), cur[c].dropna()).pvalue
            else:
                cats = sorted(set(ref[c]) | set(cur[c]))
                a = ref[c].value_counts().reindex(cats, fill_value=0)
                b = cur[c].value_counts().reindex(cats, fill_value=0)
                p = stats.chi2_contingency(np.vstack([a, b]) + 0.5)[1]
            if p < 0.05:
                floor.append(c)
        small = cur.sample(500, random_state=s)
        out.append({"seed": s, **_summary(doc), "floor": sorted(floor), "seconds": times["seconds"],
                    "small_flagged": _summary(_core(ref, small)[0])["flagged"],
                    "small_undrifted_flagged": _summary(_core(ref, gen.make(500, 3 + 10 * s))[0])["flagged"]})
        del ref, cur
    _ = pd
    return {"rows": int(rows), "seconds": 0.0, "seeds": out}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "generate": child_generate, "core": child_core, "setup": child_setup, "workspace": child_workspace,
    "floor": child_floor, "accuracy": child_accuracy,
}


# -- report -----------------------------------------------------------------------------------
def _row(label: str, secs: float, proc: float | None, rss: float | None, note: str = "") -> str:
    p = f"{proc:>9.2f}" if proc is not None else "        —"
    r = f"{rss / MIB:>8,.0f}" if rss is not None else "       —"
    return f"| {label:<44} | {secs:>7.3f} | {p} | {r} | {note}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows of 'ref' and of 'cur' (default 100,000)")
    ap.add_argument("--big-rows", type=int, default=1_000_000, help="rows of each side of (d) (default 1,000,000)")
    ap.add_argument("--skip-big", action="store_true", help="skip (d)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the accuracy check (e) (default 5)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a), (b) and (c), interleaved; the median is shown")
    ap.add_argument("--data-dir", default=str(_common.BENCH / "_data"))
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--floor", help="path of floor_drift_scipy.py (default: beside gen_data.py)")
    ap.add_argument("--src", help="import loopml from this src folder (e.g. another checkout's, to compare)")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        _common.print_child_result(CHILDREN[a.child[0]](*a.child[1:]))
        return
    _common.export_src(a.src)
    gen = _common.find_gen(a.gen)
    floor_script = Path(a.floor) if a.floor else gen.parent / "floor_drift_scipy.py"
    data_dir = Path(a.data_dir)
    pair = ensure_pair(data_dir, a.rows, gen)
    big = None if a.skip_big else ensure_pair(data_dir, a.big_rows, gen)

    runs: dict[str, list[dict[str, Any]]] = {"core": [], "workspace": [], "floor": []}
    work = Path(tempfile.mkdtemp(prefix="loopml-bench-drift-ws-"))
    try:
        for i in range(max(a.repeat, 1)):
            runs["core"].append(_common.run_child("core", str(pair)))
            ws_dir = work / f"ws{i}"
            _common.run_child("setup", str(pair), str(ws_dir))
            runs["workspace"].append(_common.run_child("workspace", str(ws_dir)))
            if floor_script.exists():
                runs["floor"].append(_common.run_child("floor", str(floor_script), str(pair)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    big_res = _common.run_child("core", str(big)) if big is not None else None
    acc = _common.run_child("accuracy", str(gen), str(a.rows), str(a.seeds)) if a.seeds > 0 else None

    core, wsr = _common.median_run(runs["core"], all_seconds=True), _common.median_run(runs["workspace"], all_seconds=True)
    floor = _common.median_run(runs["floor"], all_seconds=True) if runs["floor"] else None
    print(f"\nData drift, cur vs ref, {a.rows:,} vs {a.rows:,} rows, 25 features; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"| {'run':<44} | {'work s':>7} | {'process s':>9} | {'peak MiB':>8} | notes")
    print(f"|{'-' * 46}|{'-' * 8}:|{'-' * 10}:|{'-' * 9}:|------")
    print(_row("(a) loopml: statistics x2 + checks + 6 methods", core["seconds"], core["process_seconds"],
               core["peak_rss"], f"baseline {core['baseline_seconds']:.3f} s, current {core['current_seconds']:.3f} s, "
               f"compare {core['compare_seconds']:.4f} s; CPU {core['cpu_seconds']:.2f} s; runs {core['all_seconds']}; "
               f"target < {TARGET_SECONDS} s: {_common.verdict(core['seconds'] < TARGET_SECONDS)}"))
    print(_row("(b) loopml in a workspace: baseline + run", wsr["seconds"], wsr["process_seconds"], wsr["peak_rss"],
               f"baseline {wsr['baseline_seconds']:.2f} s, run {wsr['run_seconds']:.2f} s (read, store, report, "
               f"metrics); {wsr['status']}"))
    if floor is not None:
        print(_row("(c) scipy floor (KS + chi-square, p < 0.05)", floor["seconds"], floor["process_seconds"],
                   floor["peak_rss"], f"CPU {floor['cpu_seconds_with_load']:.2f} s with reading the files; "
                   f"runs {floor['all_seconds']}"))
    print(_row("Evidently 0.7.23 DataDriftPreset (PEERS.md)", EVIDENTLY[0], None, EVIDENTLY[1],
               f"loopml (a) is {EVIDENTLY[0] / core['seconds']:.0f}x faster"))
    if big_res is not None:
        print(_row(f"(d) loopml core, {a.big_rows:,} vs {a.big_rows:,}", big_res["seconds"],
                   big_res["process_seconds"], big_res["peak_rss"],
                   f"CPU {big_res['cpu_seconds']:.2f} s; "
                   f"target < {TARGET_BIG_SECONDS} s: {_common.verdict(big_res['seconds'] < TARGET_BIG_SECONDS)}; "
                   f"flagged {big_res['flagged']}"))
    print(f"\nflagged by loopml (a): {core['flagged']}  checks: {core['checks']}")
    print(f"per method: {core['by_method']}")
    if floor is not None:
        print(f"flagged by the floor (c): {floor['flagged']}")
    ok = True
    if acc is not None:
        print(f"\n(e) accuracy over {a.seeds} seeds, {a.rows:,} vs {a.rows:,} rows (expected: {DRIFTED})")
        print(f"| seed | {'loopml flags':<44} | {'floor (p < 0.05) flags':<56} | 500-row windows: drifted / undrifted")
        for s in acc["seeds"]:
            good = s["flagged"] == DRIFTED and s["small_undrifted_flagged"] == []
            ok &= good
            print(f"| {s['seed']:>4} | {', '.join(s['flagged']):<44} | {', '.join(s['floor']):<56} | "
                  f"{', '.join(s['small_flagged']) or '-'} / {', '.join(s['small_undrifted_flagged']) or '-'}"
                  f"{'' if good else '  MISSED'}")
        print(f"accuracy target (the 5 drifted, nothing else, every seed): {_common.verdict(ok)}")
    if a.json:
        print(json.dumps({"core": core, "workspace": wsr, "floor": floor, "big": big_res, "accuracy": acc}, default=str))


if __name__ == "__main__":
    main()
