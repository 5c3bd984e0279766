#!/usr/bin/env python3
"""Benchmark: the overhead of a loopml training job over calling XGBoost directly.

    .venv/bin/python bench/train_overhead.py [--rows N] [--rounds R] [--repeat K] [--gen PATH] [--json]

Data: ``make(rows, seed=1)`` from ``shared/bench/gen_data.py`` (customer_id,
event_time, num_00..num_19, cat_0..cat_4, churn), stored as a dataset version
in a temporary workspace.

Measures, each ``--repeat`` times (the median is reported):

(a) the floor: in this process, with xgboost already imported and the frame
    in memory, encode the text and time columns the way loopml's default
    recipe does (ordinal codes; year, month, day of week, day of year, hour),
    build a DMatrix and ``xgb.train`` for R rounds with the same parameters;
(b) ``loopml train --algo xgboost --data ref --target churn --hp num_round=R``
    run as a separate CLI process (process start, workspace, job process,
    data load, recipe, training, metrics, model package, tracking);
(c) ``Estimator("xgboost", ...).fit("ref")`` called in this process;
(d) the same with ``reuse_process=True`` after a first fit: the job process
    stays alive between fits (what a tuner does), so no start-up cost;
(e) (b) with ``LOOPML_NO_PRESTART=1``: the CLI starts the job process only
    when the fit begins instead of before it loads its own modules.

Overhead = (b) or (c) minus (a). Target: under 2 s. It also prints where the
job's own time went (read, recipe, fit, score, save) and how long the job
process took to start (the interpreter plus importing xgboost, scikit-learn
and pandas), which is most of the overhead. The job imports XGBoost with
scikit-learn hidden (``loopml.train._job.import_without_sklearn``), which
saves about 0.7 s of it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_OVERHEAD_S = 2.0


def _find_gen(override: str | None) -> Path:
    common = HERE / "_common.py"
    if override is None and common.is_file():
        spec = importlib.util.spec_from_file_location("loopml_bench_common", common)
        if spec is not None and spec.loader is not None:
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            finder = getattr(mod, "find_gen_data", None) or getattr(mod, "gen_data_path", None)
            if callable(finder):
                return Path(finder())
    candidates = [Path(override)] if override else [REPO.parent / "shared" / "bench" / "gen_data.py"]
    for c in candidates:
        c = c / "gen_data.py" if c.is_dir() else c
        if c.is_file():
            return c.resolve()
    sys.exit(f"cannot find gen_data.py (looked at {', '.join(map(str, candidates))}); pass --gen PATH")


def _load_gen(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("loopml_bench_gen_data", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _direct(df: Any, rounds: int) -> float:
    """The floor: encode + DMatrix + xgb.train in this process."""
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    t0 = time.perf_counter()
    X = df.drop(columns=["churn"])
    t = X.pop("event_time")
    parts = {"year": t.dt.year, "month": t.dt.month, "dow": t.dt.day_of_week, "dayofyear": t.dt.day_of_year,
             "hour": t.dt.hour}
    for k, v in parts.items():
        X[f"event_time_{k}"] = v.astype(float)
    for c in [c for c in X.columns if c.startswith("cat_")]:
        X[c] = pd.Categorical(X[c]).codes.astype(float)
    dtrain = xgb.DMatrix(X.to_numpy(dtype=np.float32), label=df["churn"].to_numpy(), missing=np.nan)
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "eta": 0.3, "max_depth": 6,
              "tree_method": "hist", "max_bin": 256, "seed": 0, "verbosity": 1}
    xgb.train(params, dtrain, num_boost_round=rounds)
    return time.perf_counter() - t0


def _job_start() -> float:
    """How long the training job process takes to start and import its libraries."""
    from loopml.train._job import preload_modules
    from loopml.train.algorithms import get_algorithm

    cmd = [sys.executable, "-m", "loopml.train._job", "--events", "1"]
    for m in preload_modules(get_algorithm("xgboost")):  # what Estimator.fit's job process imports
        cmd += ["--preload", m]
    t0 = time.perf_counter()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="training rows")
    ap.add_argument("--rounds", type=int, default=100, help="boosting rounds")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median reported)")
    ap.add_argument("--gen", help="path of gen_data.py (default: ../shared/bench/gen_data.py from the repo)")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))

    import xgboost

    import loopml
    from loopml.data import Catalog
    from loopml.train import Estimator

    gen = _load_gen(_find_gen(a.gen))
    df = gen.make(a.rows, 1)
    tmp = Path(tempfile.mkdtemp(prefix="loopml-bench-train-"))
    res: dict[str, Any] = {"rows": len(df), "rounds": a.rounds, "python": sys.version.split()[0],
                           "xgboost": xgboost.__version__, "cpus": os.cpu_count()}
    try:
        ws = loopml.Workspace.init(tmp)
        Catalog(ws).write("ref", df)
        loopml_bin = Path(sys.executable).with_name("loopml")
        cli = [str(loopml_bin)] if loopml_bin.exists() else [sys.executable, "-m", "loopml"]
        cli += ["train", "--algo", "xgboost", "--data", "ref", "--target", "churn", "--hp",
                f"num_round={a.rounds}", "--experiment", "bench", "--json", "--quiet"]

        direct, cli_s, fit_s, warm_s, starts, late_s = [], [], [], [], [], []
        warm = Estimator("xgboost", {"num_round": a.rounds}, target="churn", experiment="bench", ws=ws,
                         reuse_process=True)
        warm.fit("ref")  # starts the kept-alive job process
        timings: list[dict[str, float]] = []
        _direct(df.head(1000), 2)  # warm xgboost's first-call costs
        for _ in range(a.repeat):
            direct.append(_direct(df, a.rounds))
            t0 = time.perf_counter()
            out = subprocess.run(cli, cwd=tmp, env=env, capture_output=True, text=True, check=False)
            cli_s.append(time.perf_counter() - t0)
            if out.returncode != 0:
                sys.exit(f"loopml train failed: {out.stderr.strip()}")
            t0 = time.perf_counter()
            subprocess.run(cli, cwd=tmp, env=dict(env, LOOPML_NO_PRESTART="1"), capture_output=True, check=True)
            late_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = Estimator("xgboost", {"num_round": a.rounds}, target="churn", experiment="bench",
                               ws=ws).fit("ref")
            fit_s.append(time.perf_counter() - t0)
            timings.append(result.timings)
            t0 = time.perf_counter()
            warm.fit("ref")
            warm_s.append(time.perf_counter() - t0)
            starts.append(_job_start())
        warm.close()
        res["validation_auc_note"] = "train-only run; train:auc " + f"{result.metrics.get('train:auc', float('nan')):.4f}"
        med = statistics.median
        res["direct_s"] = med(direct)
        res["cli_s"] = med(cli_s)
        res["fit_s"] = med(fit_s)
        res["cli_overhead_s"] = res["cli_s"] - res["direct_s"]
        res["cli_no_prestart_s"] = med(late_s)
        res["fit_overhead_s"] = res["fit_s"] - res["direct_s"]
        res["warm_fit_s"] = med(warm_s)
        res["warm_fit_overhead_s"] = res["warm_fit_s"] - res["direct_s"]
        res["job_start_s"] = med(starts)
        res["job_timings"] = {k: med(t.get(k, 0.0) for t in timings) for k in timings[0]}
        res["samples"] = {"direct_s": direct, "cli_s": cli_s, "fit_s": fit_s, "warm_fit_s": warm_s,
                          "cli_no_prestart_s": late_s}
        ws.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def verdict(x: float) -> str:
        return "met" if x < TARGET_OVERHEAD_S else "MISSED"

    print(f"loopml training overhead: XGBoost, {res['rows']:,} rows x 27 columns of gen_data.make(n, 1), "
          f"{res['rounds']} rounds; Python {res['python']}, xgboost {res['xgboost']}, {res['cpus']} CPUs; "
          f"median of {a.repeat}")
    print(f"  (a) xgboost directly, in process (encode + DMatrix + train) {res['direct_s']:7.2f} s")
    print(f"  (b) `loopml train` CLI, separate process                      {res['cli_s']:7.2f} s   "
          f"overhead {res['cli_overhead_s']:5.2f} s  (target < {TARGET_OVERHEAD_S:g} s: {verdict(res['cli_overhead_s'])})")
    print(f"  (c) Estimator.fit in process                                 {res['fit_s']:7.2f} s   "
          f"overhead {res['fit_overhead_s']:5.2f} s  (target < {TARGET_OVERHEAD_S:g} s: {verdict(res['fit_overhead_s'])})")
    print(f"  (d) Estimator.fit, reuse_process=True, job process already up {res['warm_fit_s']:7.2f} s   "
          f"overhead {res['warm_fit_overhead_s']:5.2f} s")
    print(f"  (e) (b) without the early job start (LOOPML_NO_PRESTART=1)      {res['cli_no_prestart_s']:7.2f} s   "
          f"overhead {res['cli_no_prestart_s'] - res['direct_s']:5.2f} s")
    jt = res["job_timings"]
    print(f"  inside (c): prepare {jt.get('prepare_s', 0):.2f} s, job read {jt.get('read_s', 0):.2f} s, recipe "
          f"{jt.get('recipe_s', 0):.2f} s, fit {jt.get('fit_s', 0):.2f} s, score {jt.get('score_s', 0):.2f} s, "
          f"save {jt.get('save_s', 0):.2f} s; job total {jt.get('job_s', 0):.2f} s of {jt.get('total_s', 0):.2f} s")
    print(f"  job process start (interpreter + imports of xgboost, pandas, pyarrow, loopml) "
          f"{res['job_start_s']:.2f} s")
    if a.json:
        print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
