#!/usr/bin/env python3
"""Benchmark: bias metrics and SHAP attributions on 100k rows.

    .venv/bin/python bench/bias_attribution.py [--rows N] [--rounds R] [--repeat K] [--gen PATH] [--json]

Data: ``make(rows, seed=1)`` from ``shared/bench/gen_data.py``; label ``churn``
(positive 1), facet ``cat_0 = c0_0``, subgroup ``cat_2`` for CDDL/CDDPL. An
XGBoost model (R rounds, loopml's default recipe) is trained once in a
temporary workspace and predicts the rows.

Measures (median of ``--repeat``), in this process:

- ``pretraining_bias`` (CI, DPL, KL, JS, LP, TVD, KS, CDDL);
- ``posttraining_bias`` (DPPL ... GE, without the flip test) and with the flip
  test on two numeric features;
- the fairlearn floor for a comparable subset: ``MetricFrame`` of selection
  rate, recall and accuracy by facet group (what DPPL/DI, RD and AD need);
- ``explain`` (tree SHAP through the booster, recipe applied, one-hot/ordinal
  columns mapped back) on every row, once, beside the floor: XGBoost's own
  ``pred_contribs`` on the already encoded matrix; and on a 5,000-row sample
  (what attribution baselines and drift runs explain by default);
- the model-agnostic permutation estimator on 500 rows (27 inputs, 10 orders).
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def _time(fn: Callable[[], Any], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows (default 100k)")
    ap.add_argument("--rounds", type=int, default=50, help="XGBoost boosting rounds")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    a = ap.parse_args()
    _common.use_src()

    import numpy as np
    import xgboost as xgb
    from fairlearn.metrics import MetricFrame, selection_rate
    from sklearn.metrics import accuracy_score, recall_score

    import loopml
    from loopml.data import Catalog
    from loopml.monitor.attribution import explain
    from loopml.monitor.bias import posttraining_bias, pretraining_bias
    from loopml.registry import load_model, register_model
    from loopml.train import Estimator

    gen = _common.load_gen(_common.find_gen(a.gen))
    df = gen.make(a.rows, 1)
    res: dict[str, Any] = {"rows": len(df), "rounds": a.rounds, "cpus": os.cpu_count(), "xgboost": xgb.__version__}
    tmp = Path(tempfile.mkdtemp(prefix="loopml-bench-bias-"))
    try:
        ws = loopml.Workspace.init(tmp)
        Catalog(ws).write("ref", df)
        t0 = time.perf_counter()
        trained = Estimator("xgboost", {"num_round": a.rounds}, target="churn", ws=ws).fit("ref")
        res["train_s"] = time.perf_counter() - t0
        version = register_model(ws, trained.run_id, "bench")
        model = load_model(ws, version.ref)
        df["pred"] = model.predict(df)

        res["pretraining_s"] = _time(lambda: pretraining_bias(df, "churn", 1, "cat_0", facet_value="c0_0",
                                                              group="cat_2"), a.repeat)
        res["posttraining_s"] = _time(lambda: posttraining_bias(df, "churn", 1, "cat_0", facet_value="c0_0",
                                                                group="cat_2", predicted="pred"), a.repeat)
        res["posttraining_ft_s"] = _time(lambda: posttraining_bias(
            df, "churn", 1, "cat_0", facet_value="c0_0", group="cat_2", predicted="pred",
            features=["num_05", "num_06"]), a.repeat)
        facet = np.where(df["cat_0"] == "c0_0", "d", "a")
        y, p = df["churn"].to_numpy(), df["pred"].to_numpy().astype(int)
        res["fairlearn_floor_s"] = _time(lambda: MetricFrame(
            metrics={"selection_rate": selection_rate, "recall": recall_score, "accuracy": accuracy_score},
            y_true=y, y_pred=p, sensitive_features=facet).by_group, a.repeat)

        inputs = model.signature.input_names
        X = model.algorithm.matrix(model.transform(df[inputs]))
        # exact TreeSHAP is the slow part (O(trees x leaves x depth²) per row): once each on every row
        t0 = time.perf_counter()
        att = explain(model, df)
        res["explain_tree_s"] = time.perf_counter() - t0
        res["xgboost_pred_contribs_floor_s"] = _time(
            lambda: model.algorithm.booster_.predict(xgb.DMatrix(X, missing=np.nan), pred_contribs=True), 1)
        res["explain_tree_5k_s"] = _time(lambda: explain(model, df, max_rows=5_000), a.repeat)
        margin = model.algorithm.booster_.predict(xgb.DMatrix(X, missing=np.nan), output_margin=True)
        res["tree_additivity_max_err"] = float(np.abs(att.values.sum(1) + att.expected_value - margin).max())
        res["explain_permutation_500_s"] = _time(
            lambda: explain(model, df, method="permutation", max_rows=500, n_permutations=10), 1)
        imp = att.global_importance()
        res["top_features"] = sorted(imp, key=lambda k: -imp[k])[:5]
        res["peak_rss_mb"] = _common.peak_rss() / 2**20
        ws.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n = f"{res['rows']:,}"
    print(f"bias metrics and attributions on {n} rows of gen_data.make(n, 1); XGBoost {res['xgboost']}, "
          f"{res['rounds']} rounds; {res['cpus']} CPUs; median of {a.repeat}")
    print(f"  pre-training bias (8 metrics, CDDL over cat_2)       {res['pretraining_s']:7.3f} s")
    print(f"  post-training bias (11 metrics, no flip test)          {res['posttraining_s']:7.3f} s")
    print(f"  post-training bias with the flip test (2 features)     {res['posttraining_ft_s']:7.3f} s")
    print(f"  fairlearn MetricFrame floor (selection rate, recall, accuracy by group) "
          f"{res['fairlearn_floor_s']:7.3f} s")
    print(f"  tree SHAP via loopml explain (recipe + mapping)       {res['explain_tree_s']:7.3f} s")
    print(f"  XGBoost pred_contribs on the encoded matrix (floor)    {res['xgboost_pred_contribs_floor_s']:7.3f} s")
    print(f"  tree SHAP on a 5,000-row sample (the monitors' default) {res['explain_tree_5k_s']:7.3f} s")
    print(f"  permutation SHAP, 500 rows x {len(inputs)} inputs, 10 orders    {res['explain_permutation_500_s']:7.3f} s")
    print(f"  additivity |Σ SHAP + bias − margin| max {res['tree_additivity_max_err']:.2e}; top features "
          f"{', '.join(res['top_features'])}; peak RSS {res['peak_rss_mb']:.0f} MB")
    if a.json:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
