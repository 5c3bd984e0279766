#!/usr/bin/env python3
"""Benchmark: batch transform of 1M rows, beside the in-process floor and MLflow.

    .venv/bin/python bench/transform.py [--rows N] [--workers N] [--batch-rows N] [--gen PATH] [--json]

Data: ``big`` from ``shared/bench/gen_data.py`` (``make(rows, seed=3)``: customer_id,
event_time, num_00..num_19, cat_0..cat_4, churn), as Parquet; the model is trained
on ``ref`` (``make(100_000, seed=1)``).

The model is the serving benchmark's peer model trained through loopml: a recipe
one-hot encoding the 5 categoricals, the 20 numerics as they are, then XGBoost
(200 rounds, depth 6, eta 0.1), registered as ``peer:1``.

Measures, each in a child process, wall time, rows/s, peak RSS (psutil,
sampled every 20 ms, the child and all its children summed) and CPU seconds
(user + system of the whole process tree, which unlike the wall time does not
depend on other load on the machine):

(a) ``loopml transform peer:1`` (the CLI, in the child; local executor, ``--workers``
    worker processes): big.parquet in, ``big.parquet.out`` (Parquet: prediction,
    proba_0, proba_1) out; the same on a quarter of the rows, to show memory
    bounded by the chunk size rather than by the input;
(b) the floor (``shared/bench/floor_batch.py``): read the Parquet, the scikit-learn
    pipeline's ``predict_proba`` (one-hot ColumnTransformer + XGBClassifier, n_jobs=1),
    write Parquet, in one process;
(c) ``mlflow models predict`` if MLflow is installed; otherwise the PEERS.md figure.

Target: (a) at least the floor's rows/s, and a peak RSS that does not grow with
the input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

DATA = _common.BENCH / "_data" / "transform"
PEER_MLFLOW = {"seconds": 14.5, "rows_per_s": 69_000, "peak_rss": 1.70e9,
               "note": "PEERS.md: MLflow 3.17.2 `mlflow models predict`, 1M rows CSV in, JSON out"}
CATS = [f"cat_{i}" for i in range(5)]


def _data(gen_path: str | None, rows: int) -> tuple[Path, Path]:
    """``big`` (``rows`` rows) and ``ref`` as Parquet under bench/_data/transform (made once)."""
    DATA.mkdir(parents=True, exist_ok=True)
    big_dir = DATA / f"big_{rows}"
    big = big_dir / "big.parquet"
    ref = DATA / "ref_100000.parquet"
    if not big.exists() or not ref.exists():
        gen = _common.load_gen(_common.find_gen(gen_path))
        if not ref.exists():
            gen.make(100_000, 1).to_parquet(ref, index=False)
        if not big.exists():
            big_dir.mkdir(parents=True, exist_ok=True)
            gen.make(rows, 3).to_parquet(big, index=False)
    return big, ref


def _columns(ref: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [c for c in pq.read_schema(ref).names if c.startswith(("num_", "cat_"))]


def _train_loopml(ws_dir: Path, ref: Path) -> None:
    """Train and register peer:1 through loopml in the workspace ``ws_dir`` (once)."""
    import pandas as pd

    import loopml
    from loopml.prep import Recipe
    from loopml.registry import list_models, register_model
    from loopml.train import Estimator

    ws = loopml.Workspace.init(ws_dir)
    try:
        if any(m.name == "peer" for m in list_models(ws)):
            return
        cols = _columns(ref)
        df = pd.read_parquet(ref, columns=[*cols, "churn"])
        recipe = Recipe.from_dict({"target": "churn", "steps": [{"kind": "one_hot", "columns": CATS}]})
        est = Estimator("xgboost", {"num_round": 200, "max_depth": 6, "eta": 0.1}, target="churn",
                        recipe=recipe, ws=ws, experiment="bench")
        result = est.fit(df)
        register_model(ws, result.run_id, "peer", description="bench: one-hot + XGBoost 200 trees")
    finally:
        ws.close()


def _train_sklearn(out: Path, ref: Path) -> None:
    """The floor's pipeline, as peer_serve_model.py trains it (without MLflow), dumped with joblib."""
    if out.exists():
        return
    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier

    df = pd.read_parquet(ref)
    cols = _columns(ref)
    pipe = Pipeline([
        ("ct", ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), CATS)], remainder="passthrough")),
        ("m", XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, n_jobs=1)),
    ])
    pipe.fit(df[cols], df["churn"])
    joblib.dump((pipe, cols), out)


# -- measuring a child process ---------------------------------------------------------------------------------
def _measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; return its wall time, CPU time and peak RSS (it and its children) and its last JSON line.

    The CPU time (user + system, of the process and every descendant it waited
    for) does not depend on what else the machine runs, unlike the wall time.
    """
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            p = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            total = 0
            try:
                for q in [p, *p.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += q.memory_info().rss
            except psutil.NoSuchProcess:
                break
            peak = max(peak, total)
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}):\n{err[-4000:]}")
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    res: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    res.update(process_seconds=wall, peak_rss=peak,
               cpu_seconds=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return res


def _child_transform(ws_dir: str, big: str, out: str, workers: int, batch_rows: int) -> None:
    """``loopml transform peer:1 --input BIG --output OUT ...`` through the CLI, in this process."""
    import io

    from loopml.cli import main as cli

    os.environ["LOOPML_HOME"] = ws_dir
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            cli(["transform", "peer:1", "--input", big, "--output", out, "--workers", str(workers),
                 "--batch-rows", str(batch_rows), "--no-resume", "--json"])
        except SystemExit as e:
            if e.code:
                raise
    r = json.loads(buf.getvalue())
    print(json.dumps({"seconds": r["seconds"], "rows": r["rows_out"], "rows_per_s": r["rows_per_s"],
                      "chunks": r["chunks"], "errors": r["errors"], "files": r["files"]}))


def _fmt_row(name: str, r: dict[str, Any]) -> str:
    cpu = f"{r['cpu_seconds']:>8.2f}" if "cpu_seconds" in r else f"{'':>8}"
    return (f"{name:<44} {r['rows']:>9,} {r['seconds']:>8.2f} {r['rows_per_s']:>11,.0f} "
            f"{r['peak_rss'] / 1e9:>8.2f} {cpu}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the big input")
    ap.add_argument("--workers", type=int, default=2, help="transform worker processes")
    ap.add_argument("--batch-rows", type=int, default=50_000, help="records per chunk")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder")
    ap.add_argument("--skip-floor", action="store_true", help="do not run the floor")
    ap.add_argument("--skip-small", action="store_true", help="skip the quarter-size run")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _common.use_src(a.src)
        _child_transform(*a.child[:3], int(a.child[3]), int(a.child[4]))
        return
    _common.export_src(a.src)
    _common.use_src(a.src)

    big, ref = _data(a.gen, a.rows)
    ws_dir = DATA / "ws"
    t0 = time.perf_counter()
    _train_loopml(ws_dir, ref)
    train_s = time.perf_counter() - t0
    res: dict[str, Any] = {"rows": a.rows, "workers": a.workers, "batch_rows": a.batch_rows,
                           "cpus": os.cpu_count(), "train_seconds": train_s}
    script = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory(prefix="loopml-bench-transform-") as tmp:
        runs = [("transform", big, a.rows)]
        if not a.skip_small:
            small = Path(tmp) / "small" / "big.parquet"
            small.parent.mkdir()
            import pyarrow.parquet as pq

            pq.write_table(pq.read_table(big).slice(0, a.rows // 4), small)
            runs.append(("transform_quarter", small, a.rows // 4))
        for key, path, _n in runs:
            r = _measure([sys.executable, script, "--child", str(ws_dir), str(path), f"{tmp}/{key}",
                          str(a.workers), str(a.batch_rows), *(["--src", a.src] if a.src else [])])
            res[key] = r
        if not a.skip_floor:
            model = DATA / "floor_model.joblib"
            _train_sklearn(model, ref)
            floor_script = _common.find_gen(a.gen).parent / "floor_batch.py"
            f = _measure([sys.executable, str(floor_script), str(big.parent), str(model)])
            res["floor"] = {"rows": f["rows"], "seconds": f["wall_s"], "rows_per_s": f["rows_per_s"],
                            "peak_rss": f["peak_rss"], "process_seconds": f["process_seconds"],
                            "cpu_seconds": f["cpu_seconds"]}
    if importlib.util.find_spec("mlflow") is not None:
        res["mlflow"] = {"note": "mlflow is installed, but this script does not drive `mlflow models predict` "
                                 "yet; figure from PEERS.md", **PEER_MLFLOW, "rows": 1_000_000}
    else:
        res["mlflow"] = {**PEER_MLFLOW, "rows": 1_000_000, "note": "not installed; " + PEER_MLFLOW["note"]}

    print(f"batch transform, {a.rows:,} rows, {a.workers} workers, chunks of {a.batch_rows:,} rows, "
          f"{os.cpu_count()} CPUs (model trained in {train_s:.1f} s)")
    print(f"{'':<44} {'rows':>9} {'seconds':>8} {'rows/s':>11} {'peak GB':>8} {'CPU s':>8}")
    t = res["transform"]
    t["rows_per_s"] = t["rows"] / t["seconds"]
    print(_fmt_row(f"loopml transform (local, {a.workers} workers)", t))
    print(f"{'  same, whole process (imports, spawn)':<44} {'':>9} {t['process_seconds']:>8.2f} "
          f"{t['rows'] / t['process_seconds']:>11,.0f}")
    if "transform_quarter" in res:
        q = res["transform_quarter"]
        print(_fmt_row("loopml transform, a quarter of the rows", q))
    if "floor" in res:
        print(_fmt_row("floor: read + sklearn predict_proba + write", res["floor"]))
    m = res["mlflow"]
    print(_fmt_row("mlflow models predict (PEERS.md)", m))
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} (wall times are only comparable on an idle "
          "machine; the CPU seconds are not affected)")
    if "floor" in res:
        ok = t["rows_per_s"] >= res["floor"]["rows_per_s"]
        print(f"target rows/s >= floor ({res['floor']['rows_per_s']:,.0f}): {t['rows_per_s']:,.0f} "
              f"{_common.verdict(ok)}")
    if "transform_quarter" in res:
        grow = t["peak_rss"] / res["transform_quarter"]["peak_rss"]
        print(f"memory bounded by the chunk: peak RSS at 4x the rows is {grow:.2f}x "
              f"{_common.verdict(grow < 1.5)}")
    if a.json:
        print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
