#!/usr/bin/env python3
"""Benchmark: the edge bundle (recipe + XGBoost in one ONNX graph) against the native model.

    .venv/bin/python bench/edge.py [--rows N] [--trees N] [--calls N] [--gen PATH] [--json]

The peer model of ``shared/bench/PEERS.md``: one-hot of the 5 categoricals
(cat_0..cat_4) + the 20 numerics (num_00..num_19, some missing) -> XGBoost
with 200 trees, trained on ``make(rows, seed=1)`` from ``shared/bench/gen_data.py``
(a training job in a temporary workspace), registered and exported with
``export_model(ws, "churn:1", "onnx", out=...)``.

Measures, in this process (ONNX Runtime with one intra-op thread):

(a) single-row latency on JSON-like records (missing as None), cycling
    through 1,000 rows: ``Model.predict_one`` (loopml's native serving path:
    the recipe on a dict, then the booster), ``loopml.edge`` ``predict_one``
    (encode the record, run edge.onnx), ONNX Runtime alone on pre-encoded
    inputs (edge.onnx, and model.onnx on a float32 feature row);
    PEERS.md: sklearn Pipeline(ColumnTransformer one-hot, XGBClassifier) p50 4.3 ms,
    the booster alone on an encoded row p50 0.19 ms.
(b) batch: 10,000 rows through ``Model.predict_proba(df)`` and
    ``bundle.predict(columns)``.
(c) parity on those 10,000 rows: max |edge - native| of the probabilities, label agreement.
(d) size: what a device needs (edge.onnx + edge.json), the whole bundle, model.onnx,
    and the native package; and a cold start in a fresh process
    (``import loopml.edge`` + ``load`` + first prediction, and the same with the
    bundle's standalone copy ``loopml_edge.py``, which does not import loopml).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

RECIPE = {"steps": [{"kind": "one_hot", "columns": ["cat_0", "cat_1", "cat_2", "cat_3", "cat_4"]}]}


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
    ap.add_argument("--rows", type=int, default=20_000, help="training rows")
    ap.add_argument("--trees", type=int, default=200, help="XGBoost rounds")
    ap.add_argument("--calls", type=int, default=5_000, help="single-row calls to time per path")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    a = ap.parse_args()
    _common.use_src(a.src)

    import numpy as np
    import onnxruntime as ort

    import loopml
    import loopml.edge
    from loopml.data import Catalog
    from loopml.prep import Recipe
    from loopml.registry import export_model, load_model, register_model
    from loopml.train import Estimator

    gen = _common.load_gen(_common.find_gen(a.gen))
    df = gen.make(a.rows, 1).drop(columns=["customer_id", "event_time"])
    test = gen.make(11_000, 7).drop(columns=["customer_id", "event_time", "churn"])
    res: dict[str, Any] = {"train_rows": len(df), "trees": a.trees, "python": sys.version.split()[0],
                           "onnxruntime": ort.__version__}
    tmp = Path(tempfile.mkdtemp(prefix="loopml-bench-edge-"))
    try:
        ws = loopml.Workspace.init(tmp / "ws")
        Catalog(ws).write("ref", df)
        t0 = time.perf_counter()
        est = Estimator("xgboost", {"num_round": a.trees, "max_depth": 6, "eta": 0.1}, target="churn", ws=ws,
                        recipe=Recipe.from_dict(RECIPE)).fit("ref")
        res["train_seconds"] = time.perf_counter() - t0
        register_model(ws, est, "churn")
        t0 = time.perf_counter()
        exp = export_model(ws, "churn:1", "onnx", out=tmp / "edge", sample=test.head(1000))
        res["export_seconds"] = time.perf_counter() - t0
        assert exp.edge is not None
        res["layout"] = exp.edge["layout"]
        res["export_parity"] = exp.edge["parity"]
        res["export_latency"] = exp.edge["latency"]
        model = load_model(ws, "churn:1")
        bundle = loopml.edge.load(tmp / "edge")
        n_features = len(model.signature.features)
        res["features"] = n_features

        # (a) single-row latency
        records = [_json_record(r) for r in test.head(1000).to_dict("records")]
        res["native_predict_one"] = _latency(model.predict_one, records, a.calls)
        res["edge_predict_one"] = _latency(bundle.predict_one, records, a.calls)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
        edge_sess = ort.InferenceSession(str(tmp / "edge" / "edge.onnx"), opts, providers=["CPUExecutionProvider"])
        feeds = [bundle.feeds(r)[0] for r in records]
        res["edge_onnx_run"] = _latency(lambda f: edge_sess.run(["probabilities"], f), feeds, a.calls)
        model_sess = ort.InferenceSession(str(tmp / "edge" / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        assert model.recipe is not None
        rows32 = [np.array([[model.recipe.transform_one(r)[c] for c in model.signature.features]], dtype=np.float32)
                  for r in records]
        rows32 = [np.where(np.equal(x, None), np.nan, x).astype(np.float32) for x in rows32]
        res["model_onnx_run"] = _latency(lambda x: model_sess.run(["probabilities"], {"features": x}), rows32, a.calls)
        algo: Any = model.algorithm
        res["booster_one_row"] = _latency(algo.proba_matrix, rows32, a.calls)

        # (b) batch, (c) parity
        batch = test.head(10_000)
        t0 = time.perf_counter()
        native = model.predict_proba(batch)
        res["native_batch_rows_per_s"] = len(batch) / (time.perf_counter() - t0)
        cols = {c: batch[c].to_numpy() for c in batch.columns}
        t0 = time.perf_counter()
        got = bundle.predict(cols)
        res["edge_batch_rows_per_s"] = len(batch) / (time.perf_counter() - t0)
        proba = np.array([p["probabilities"] for p in got])
        labels = np.array([p["prediction"] for p in got])
        res["parity_10k"] = {"max_abs_diff": float(np.abs(proba - native).max()),
                             "labels_equal": float((labels == np.asarray(model.predict(batch))).mean())}

        # (d) sizes and a cold start
        files = {p.name: p.stat().st_size for p in (tmp / "edge").iterdir()}
        res["sizes"] = {"device_bytes": exp.edge["device_bytes"], "bundle_bytes": exp.edge["bundle_bytes"],
                        "files": files,
                        "package_bytes": sum(p.stat().st_size for p in model.path.rglob("*") if p.is_file())}
        code = ("import time, json, sys; t0 = time.perf_counter(); import loopml.edge; t1 = time.perf_counter(); "
                "b = loopml.edge.load(sys.argv[1]); t2 = time.perf_counter(); b.predict_one(json.loads(sys.argv[2])); "
                "t3 = time.perf_counter(); print(json.dumps([t1 - t0, t2 - t1, t3 - t2]))")
        for key, module, cwd in (("cold_start_s", "loopml.edge", None),
                                 ("cold_start_copy_s", "loopml_edge", tmp / "edge")):
            colds = []
            for _ in range(3):
                out = subprocess.run([sys.executable, "-c", code.replace("loopml.edge", module), str(tmp / "edge"),
                                      json.dumps(records[0])], capture_output=True, text=True, check=True, cwd=cwd,
                                     env={"PYTHONPATH": str(cwd or _common.REPO / "src"), "PATH": "/usr/bin:/bin"})
                colds.append(json.loads(out.stdout))
            cold = sorted(colds, key=sum)[1]
            res[key] = {"import": cold[0], "load": cold[1], "first_predict": cold[2], "total": sum(cold)}
        ws.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def lat(k: str) -> str:
        return f"p50 {res[k]['p50_ms']:.3f} ms  p99 {res[k]['p99_ms']:.3f} ms"

    s = res["sizes"]
    print(f"loopml edge bench: one-hot(cat_0..4) + 20 numerics -> XGBoost {a.trees} trees ({res['features']} "
          f"features), trained on {a.rows:,} rows in {res['train_seconds']:.1f} s; exported in "
          f"{res['export_seconds']:.2f} s, layout {res['layout']}; onnxruntime {res['onnxruntime']}, 1 thread")
    print(f"  native Model.predict_one (recipe + booster)   {lat('native_predict_one')}")
    print(f"  loopml.edge predict_one (encode + edge.onnx)  {lat('edge_predict_one')}")
    print(f"  ONNX Runtime run, edge.onnx, encoded inputs   {lat('edge_onnx_run')}")
    print(f"  ONNX Runtime run, model.onnx, float32 row     {lat('model_onnx_run')}")
    print(f"  booster alone on a float32 row (loopml)       {lat('booster_one_row')}")
    print("  PEERS.md: sklearn Pipeline(ColumnTransformer, XGBClassifier) 1 row p50 4.3 ms; booster alone p50 0.19 ms")
    print(f"  batch 10k rows: native {res['native_batch_rows_per_s']:,.0f} rows/s, edge "
          f"{res['edge_batch_rows_per_s']:,.0f} rows/s")
    p = res["parity_10k"]
    print(f"  parity on 10k rows: max |edge - native| = {p['max_abs_diff']:.2e}, labels equal on "
          f"{p['labels_equal']:.2%}; export check {res['export_parity']['max_abs_diff']:.2e} on "
          f"{res['export_parity']['rows']} rows")
    print(f"  size: device (edge.onnx + edge.json) {s['device_bytes'] / 1024:.0f} KiB, bundle "
          f"{s['bundle_bytes'] / 1024:.0f} KiB (model.onnx {s['files']['model.onnx'] / 1024:.0f} KiB), native "
          f"package {s['package_bytes'] / 1024:.0f} KiB")
    for key, what in (("cold_start_s", "import loopml.edge"), ("cold_start_copy_s", "import loopml_edge (the copy)")):
        c = res[key]
        print(f"  cold start, new process: {what} {c['import'] * 1e3:.0f} ms + load {c['load'] * 1e3:.0f} ms "
              f"+ first prediction {c['first_predict'] * 1e3:.1f} ms")
    if a.json:
        print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
