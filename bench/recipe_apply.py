#!/usr/bin/env python3
"""Benchmark: a 10-step fitted recipe on one record (the serving path) and on 100k rows.

    .venv/bin/python bench/recipe_apply.py [--rows N] [--calls N] [--gen PATH] [--json]

Data: ``make(rows, seed=1)`` from ``shared/bench/gen_data.py`` (the churn-like
"ref" set: customer_id, event_time, num_00..num_19, cat_0..cat_4, churn).

Measures, in this process:

(a) ``FittedRecipe.transform_one(record)`` on JSON-like records (dates as ISO
    text, missing as None), cycling through 1,000 different rows: p50 / p99.
    Target: p99 < 1 ms.
(b) the floor it replaces: a scikit-learn ``Pipeline(ColumnTransformer(...))``
    (median impute + standardize the numbers, one-hot the categories) fitted
    on the same data, transforming a one-row DataFrame built from the record:
    p50 / p99 (PEERS.md: ~3.9 ms of a 4.3 ms predict).
(c) batch throughput: ``FittedRecipe.transform`` on all rows in memory, and
    ``apply_recipe`` end to end in a temporary workspace (read Parquet, stream
    in 64k-row batches, write a new dataset version).

It also checks, on 200 rows, that (a) gives exactly what ``transform`` gives.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

TARGET_P99_MS = 1.0

RECIPE = """\
target: churn
steps:
  - kind: impute
    columns: [num_00, num_01, num_02, num_03, num_04]
    strategy: median
  - kind: winsorize
    columns: [num_03, num_07, num_11, num_15, num_19]
    limits: [0.01, 0.99]
  - kind: log
    columns: [num_03, num_07, num_11, num_15, num_19]
  - kind: standardize
    columns: ["num_*"]
  - kind: one_hot
    columns: [cat_0, cat_1, cat_2]
  - kind: frequency
    columns: [cat_4]
  - kind: target_encode
    columns: [cat_3]
  - kind: date_parts
    columns: [event_time]
    parts: [dow, month, hour, weekend]
    drop_original: true
  - kind: expression
    name: ratio_05_06
    expr: num_05 / (abs(num_06) + 1)
  - kind: bin
    columns: [num_10]
    n_bins: 5
"""


def _latency(fn: Any, inputs: list[Any], calls: int, warmup: int = 200) -> dict[str, float]:
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    times = []
    clock = time.perf_counter
    for i in range(calls):
        x = inputs[i % len(inputs)]
        t0 = clock()
        fn(x)
        times.append(clock() - t0)
    return {"p50_ms": _common.percentile(times, 50) * 1e3, "p99_ms": _common.percentile(times, 99) * 1e3,
            "mean_ms": statistics.fmean(times) * 1e3, "calls": calls}


def _json_record(rec: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in rec.items():
        if hasattr(v, "isoformat"):
            v = v.isoformat()
        elif isinstance(v, float) and v != v:
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows to fit on and to transform in batch")
    ap.add_argument("--calls", type=int, default=20_000, help="transform_one calls to time")
    ap.add_argument("--floor-calls", type=int, default=1_000, help="sklearn 1-row calls to time")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder")
    ap.add_argument("--skip-workspace", action="store_true", help="skip apply_recipe through a workspace")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    a = ap.parse_args()
    _common.use_src(a.src)

    import numpy as np
    import pandas as pd

    from loopml.prep import Recipe

    gen = _common.load_gen(_common.find_gen(a.gen))
    df = gen.make(a.rows, 1)
    recipe = Recipe.from_yaml(RECIPE)
    res: dict[str, Any] = {"rows": len(df), "steps": len(recipe.steps), "python": sys.version.split()[0]}

    t0 = time.perf_counter()
    fitted = recipe.fit(df)
    res["fit_seconds"] = time.perf_counter() - t0

    # (a) the serving path, on JSON-like records
    sample = df.sample(1_000, random_state=0)
    records = [_json_record(r) for r in sample.to_dict("records")]
    res["transform_one"] = _latency(fitted.transform_one, records, a.calls)
    res["transform_one_inputs"] = len(records[0])
    res["transform_one_outputs"] = len(fitted.transform_one(records[0]))

    # exactness check: the record path equals the batch path
    check = df.head(200)
    batch = fitted.transform(check).to_dict("records")
    for rec, want in zip(check.to_dict("records"), batch, strict=True):
        got = fitted.transform_one(_json_record(rec))
        for k, v in want.items():
            g = got[k]
            if not ((isinstance(v, float) and v != v and isinstance(g, float) and g != g) or v == g
                    or (hasattr(v, "isoformat") and v.isoformat() == g)):
                sys.exit(f"parity check failed on {k!r}: batch {v!r} vs one {g!r}")
    res["parity_rows_checked"] = len(batch)

    # (b) the scikit-learn floor: ColumnTransformer on a one-row DataFrame
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    nums = [c for c in df.columns if c.startswith("num_")]
    cats = [c for c in df.columns if c.startswith("cat_")]
    ct = Pipeline([("ct", ColumnTransformer([
        ("num", Pipeline([("imp", SimpleImputer(strategy="median")), ("sc", StandardScaler())]), nums),
        ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
    ]))]).fit(df)
    res["sklearn_1row"] = _latency(lambda r: ct.transform(pd.DataFrame([r])), records, a.floor_calls, warmup=50)

    # (c) batch throughput
    t0 = time.perf_counter()
    out = fitted.transform(df)
    dt = time.perf_counter() - t0
    res["batch_transform"] = {"seconds": dt, "rows_per_s": len(df) / dt, "columns_out": out.shape[1]}
    t0 = time.perf_counter()
    ct.transform(df)
    dt = time.perf_counter() - t0
    res["sklearn_batch"] = {"seconds": dt, "rows_per_s": len(df) / dt}

    if not a.skip_workspace:
        import loopml
        from loopml.data import Catalog
        from loopml.prep import apply_recipe, fit_recipe

        tmp = tempfile.mkdtemp(prefix="loopml-bench-")
        try:
            ws = loopml.Workspace.init(tmp)
            Catalog(ws).write("ref", df)
            t0 = time.perf_counter()
            fit_recipe(ws, recipe, "ref", "churn")
            t1 = time.perf_counter()
            info = apply_recipe(ws, "churn", "ref", "ref_features")
            t2 = time.perf_counter()
            res["workspace"] = {"fit_recipe_seconds": t1 - t0, "apply_recipe_seconds": t2 - t1,
                                "rows_per_s": info.row_count / (t2 - t1), "output": info.ref}
            ws.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    one, floor = res["transform_one"], res["sklearn_1row"]
    print(f"loopml recipe bench: {res['steps']}-step recipe, {res['rows']:,} rows of gen_data.make(n, 1), "
          f"Python {res['python']}, numpy {np.__version__}, pandas {pd.__version__}")
    print(f"  fit (in memory)                       {res['fit_seconds']:8.2f} s")
    print(f"  transform_one, 1 record ({res['transform_one_inputs']} -> {res['transform_one_outputs']} fields)"
          f"  p50 {one['p50_ms']:.3f} ms  p99 {one['p99_ms']:.3f} ms  "
          f"(target p99 < {TARGET_P99_MS} ms: {'met' if one['p99_ms'] < TARGET_P99_MS else 'MISSED'})")
    print(f"  sklearn ColumnTransformer, 1-row frame   p50 {floor['p50_ms']:.3f} ms  p99 {floor['p99_ms']:.3f} ms"
          f"  ({floor['p50_ms'] / one['p50_ms']:.0f}x slower at p50)")
    b, sb = res["batch_transform"], res["sklearn_batch"]
    print(f"  transform, {res['rows']:,} rows in memory        {b['seconds']:8.2f} s  ({b['rows_per_s']:,.0f} rows/s)")
    print(f"  sklearn ColumnTransformer, same rows       {sb['seconds']:8.2f} s  ({sb['rows_per_s']:,.0f} rows/s)")
    if "workspace" in res:
        w = res["workspace"]
        print(f"  apply_recipe (Parquet in -> new version) {w['apply_recipe_seconds']:8.2f} s  "
              f"({w['rows_per_s']:,.0f} rows/s); fit_recipe {w['fit_recipe_seconds']:.2f} s")
    print(f"  parity: transform_one == transform on {res['parity_rows_checked']} rows")
    if a.json:
        print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
