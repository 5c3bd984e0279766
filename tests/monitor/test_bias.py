"""Bias metrics: the reference formulas on hand-computable data, fairlearn cross-checks, recorded runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference, demographic_parity_ratio
from sklearn.metrics import accuracy_score, precision_score, recall_score

from loopml import Workspace
from loopml.data.catalog import Catalog
from loopml.errors import InvalidInput
from loopml.monitor.bias import (
    DESCRIPTIONS,
    bias_report,
    bias_violations,
    generalized_entropy,
    posttraining_bias,
    pretraining_bias,
    run_bias,
)
from loopml.monitor.ground_truth import ingest_ground_truth
from loopml.registry import load_model
from tests.monitor._quality_data import capture, frame, registered


def _tiny() -> pd.DataFrame:
    # d = "f": 4 rows, 1 positive; a = "m": 6 rows, 4 positive
    return pd.DataFrame({
        "sex": ["f", "f", "f", "f", "m", "m", "m", "m", "m", "m"],
        "y":   [1, 0, 0, 0, 1, 1, 1, 0, 0, 1],
        "g":   ["u", "u", "v", "v", "u", "u", "v", "v", "v", "u"],
        "p":   [1, 1, 0, 0, 1, 0, 1, 1, 0, 1],
    })


def test_pretraining_formulas_by_hand() -> None:
    r = pretraining_bias(_tiny(), "y", 1, "sex", facet_value="f", group="g")
    m = r["metrics"]
    assert r["counts"] == {"n_a": 6, "n_d": 4, "dropped": 0} and r["notes"] == []
    pa, pd_ = np.array([2 / 6, 4 / 6]), np.array([3 / 4, 1 / 4])  # P(y=0), P(y=1)
    assert m["CI"] == pytest.approx((6 - 4) / 10)
    assert m["DPL"] == pytest.approx(4 / 6 - 1 / 4)
    assert m["KL"] == pytest.approx(float(np.sum(pa * np.log(pa / pd_))))
    mix = (pa + pd_) / 2
    assert m["JS"] == pytest.approx(0.5 * (np.sum(pa * np.log(pa / mix)) + np.sum(pd_ * np.log(pd_ / mix))))
    assert m["LP"] == pytest.approx(math.sqrt(2) * 5 / 12)
    assert m["TVD"] == pytest.approx(5 / 12) and m["KS"] == pytest.approx(5 / 12)
    # group u: rows 0,1,4,5,9 -> accepted {0,4,5,9} (1 d), rejected {1} (1 d): DD = 1/1 - 1/4
    # group v: rows 2,3,6,7,8 -> accepted {6} (0 d), rejected {2,3,7,8} (2 d): DD = 2/4 - 0/1
    assert m["CDDL"] == pytest.approx((5 * 0.75 + 5 * 0.5) / 10)


def test_posttraining_formulas_by_hand() -> None:
    r = posttraining_bias(_tiny(), "y", 1, "sex", facet_value="f", group="g", predicted="p")
    m = r["metrics"]
    # d: y 1 0 0 0 / p 1 1 0 0 -> TP 1 FP 1 TN 2 FN 0 ; a: y 1 1 1 0 0 1 / p 1 0 1 1 0 1 -> TP 3 FP 1 TN 1 FN 1
    assert r["counts"]["confusion_d"] == {"tp": 1, "fp": 1, "tn": 2, "fn": 0}
    assert r["counts"]["confusion_a"] == {"tp": 3, "fp": 1, "tn": 1, "fn": 1}
    qa, qd = 4 / 6, 2 / 4
    assert m["DPPL"] == pytest.approx(qa - qd)
    assert m["DI"] == pytest.approx(qd / qa)
    assert m["DCAcc"] == pytest.approx(4 / 4 - 1 / 2)
    assert m["DCR"] == pytest.approx(3 / 2 - 2 / 2)
    assert m["RD"] == pytest.approx(3 / 4 - 1 / 1)
    assert m["DAR"] == pytest.approx(3 / 4 - 1 / 2)
    assert m["DRR"] == pytest.approx(2 / 2 - 1 / 2)
    assert m["AD"] == pytest.approx(4 / 6 - 3 / 4)
    assert m["TE"] == pytest.approx(0 / 1 - 1 / 1)
    # CDDPL with predictions: u: accepted {0,1,4,9} (2 d), rejected {5} (0 d): DD = 0 - 2/4
    #                          v: accepted {6,7} (0 d), rejected {2,3,8} (2 d): DD = 2/3 - 0
    assert m["CDDPL"] == pytest.approx((5 * -0.5 + 5 * 2 / 3) / 10)
    b = np.array([1, 2, 1, 1, 1, 0, 1, 2, 1, 1], dtype=float)  # p - y + 1
    assert m["GE"] == pytest.approx(np.sum((b / b.mean()) ** 2 - 1) / (10 * 2))
    assert math.isnan(m["FT"])  # no features given


def test_generalized_entropy_edges() -> None:
    assert generalized_entropy(np.array([1, 0]), np.array([1, 0])) == 0.0
    assert generalized_entropy(np.array([1, 0, 1]), np.array([0, 1, 1]), alpha=1) > 0


def test_fairlearn_agrees() -> None:
    r = np.random.default_rng(3)
    n = 3000
    sex = r.choice(["f", "m"], n, p=[0.35, 0.65])
    y = r.integers(0, 2, n)
    p = np.where(sex == "f", r.random(n) < 0.3, r.random(n) < 0.55).astype(int)
    df = pd.DataFrame({"sex": sex, "y": y, "p": p})
    m = posttraining_bias(df, "y", 1, "sex", facet_value="f", predicted="p")["metrics"]
    assert m["DPPL"] == pytest.approx(demographic_parity_difference(y, p, sensitive_features=sex))
    # the facet d has the lower selection rate here, so DI is fairlearn's min/max ratio
    assert m["DI"] == pytest.approx(demographic_parity_ratio(y, p, sensitive_features=sex))
    frame_ = MetricFrame(metrics={"recall": recall_score, "precision": precision_score, "accuracy": accuracy_score},
                         y_true=y, y_pred=p, sensitive_features=sex)
    by = frame_.by_group
    assert m["RD"] == pytest.approx(by.loc["m", "recall"] - by.loc["f", "recall"])
    assert m["DAR"] == pytest.approx(by.loc["m", "precision"] - by.loc["f", "precision"])
    assert m["AD"] == pytest.approx(by.loc["m", "accuracy"] - by.loc["f", "accuracy"])


def test_threshold_facets_lists_and_text_values() -> None:
    df = pd.DataFrame({"age": [20, 30, 50, 60, None], "y": ["no", "yes", "yes", "no", "yes"],
                       "p": ["yes", "yes", "no", "no", "no"]})
    r = pretraining_bias(df, "y", "yes", "age", facet_threshold=40)
    assert r["counts"] == {"n_a": 2, "n_d": 2, "dropped": 1}
    assert r["value_or_threshold"] == "40" and r["facet_kind"] == "threshold"
    assert "left out 1 row(s)" in r["notes"][0]
    # several facet values and label values; a positive label given as text matches numbers
    df2 = pd.DataFrame({"c": ["a", "b", "c", "c"], "y": [1, 2, 0, 0]})
    r2 = pretraining_bias(df2, "y", ["1", "2"], "c", facet_value=["a", "b"])
    assert r2["metrics"]["DPL"] == pytest.approx(0 - 1) and r2["value_or_threshold"] == "a,b"
    with pytest.raises(InvalidInput, match="is not a number, but column 'y' holds numbers"):
        pretraining_bias(df2, "y", "yes", "c", facet_value="a")
    with pytest.raises(InvalidInput, match="facet_threshold needs a numeric facet column"):
        pretraining_bias(df2, "y", 1, "c", facet_threshold=1)
    with pytest.raises(InvalidInput, match="exactly one of facet_value"):
        pretraining_bias(df2, "y", 1, "c")


def test_missing_facet_column_and_empty_groups() -> None:
    df = _tiny()
    with pytest.raises(InvalidInput, match=r"the facet column 'race' is not in the data; its columns are sex, y, g, p"):
        pretraining_bias(df, "y", 1, "race", facet_value="x")
    with pytest.raises(InvalidInput, match="the prediction column 'nope'"):
        posttraining_bias(df, "y", 1, "sex", facet_value="f", predicted="nope")
    r = pretraining_bias(df, "y", 1, "sex", facet_value="x")
    assert r["metrics"]["CI"] == 1.0  # n_d = 0 is still a (maximal) class imbalance
    assert all(math.isnan(r["metrics"][k]) for k in ("DPL", "KL", "JS", "LP", "TVD", "KS"))
    assert any("facet group d is empty" in n for n in r["notes"])
    post = posttraining_bias(df, "y", 1, "sex", facet_value="x", predicted="p")
    assert math.isnan(post["metrics"]["DPPL"]) and math.isnan(post["metrics"]["DI"])
    # KL is infinite when a label value never occurs in d
    only_neg = pd.DataFrame({"s": ["d", "d", "a", "a"], "y": [0, 0, 1, 0]})
    r3 = pretraining_bias(only_neg, "y", 1, "s", facet_value="d")
    assert math.isinf(r3["metrics"]["KL"]) and any("KL is infinite" in n for n in r3["notes"])
    assert math.isfinite(r3["metrics"]["JS"])


def test_flip_test_counts_neighbours() -> None:
    # d rows sit next to a rows; d rows are refused, their a neighbours accepted
    df = pd.DataFrame({"s": ["d", "d", "a", "a", "a", "a", "a", "a"],
                       "x": [0.0, 10.0, 0.1, 0.2, -0.1, 10.1, 9.9, 10.2],
                       "y": [1, 1, 1, 1, 1, 1, 1, 1], "p": [0, 1, 1, 1, 1, 0, 0, 0]})
    r = posttraining_bias(df, "y", 1, "s", facet_value="d", predicted="p", features=["x"])
    # row 0: refused, neighbours mostly accepted (F+); row 1: accepted, neighbours mostly refused (F-)
    assert (r["counts"]["ft_f_plus"], r["counts"]["ft_f_minus"]) == (1, 1) and r["metrics"]["FT"] == 0.0


def test_report_and_violations() -> None:
    pre = pretraining_bias(_tiny(), "y", 1, "sex", facet_value="f")
    post = posttraining_bias(_tiny(), "y", 1, "sex", facet_value="f", predicted="p")
    rep = bias_report(pre, post)
    entry = rep["post_training_bias_metrics"]["facets"]["sex"][0]
    assert rep["pre_training_bias_metrics"]["label"] == "y"
    assert rep["pre_training_bias_metrics"]["label_value_or_threshold"] == "1"
    assert entry["value_or_threshold"] == "f"
    assert {"name": "DI", "description": "Disparate Impact (DI)", "value": pytest.approx(0.75)} in entry["metrics"]
    json.dumps(rep, allow_nan=False)  # strict JSON: undefined metrics are null
    assert {"name": "CDDPL", "description": DESCRIPTIONS["CDDPL"], "value": None} in entry["metrics"]
    v = bias_violations([pre, post], {"CI": 0.5, "DI": 0.2})
    assert [x["metric_name"] for x in v] == ["DI"]
    with pytest.raises(InvalidInput, match="unknown metric 'XX'"):
        bias_violations([], {"XX": 1})


# -- recorded runs ---------------------------------------------------------------------------------
def test_run_bias_on_a_dataset_with_a_model(ws: Workspace, tmp_path: Path) -> None:
    df = frame(400)
    v = registered(ws, tmp_path, df)
    Catalog(ws).write("people", df)
    res = run_bias(ws, data="people", label="y", positive_label="1", facet="city", facet_value="paris",
                   model=v.ref, thresholds={"DPPL": 0.01})
    s = res.summary
    assert res.kind == "bias" and res.target.name == "people:1"
    pred = load_model(ws, v.ref).predict(df)
    d = (df["city"] == "paris").to_numpy()
    assert s["post_training"]["DPPL"] == pytest.approx((pred[~d] == 1).mean() - (pred[d] == 1).mean())
    assert s["pre_training"]["CI"] == pytest.approx(((~d).sum() - d.sum()) / len(d))
    assert res.status == "CompletedWithViolations" and s["violations"][0]["metric_name"] == "DPPL"
    analysis = json.loads(res.output(ws, "analysis.json"))
    assert set(analysis) == {"version", "pre_training_bias_metrics", "post_training_bias_metrics"}
    pts = ws.metrics.query("DPPL", dimensions={"dataset": "people:1", "monitor": "bias", "feature": "city"})
    assert [p.value for p in pts] == [pytest.approx(s["post_training"]["DPPL"])]
    # pre-training only, on the data alone
    only = run_bias(ws, data="people:1", label="y", positive_label=1, facet="x1", facet_threshold=0.5)
    assert only.summary["post_training"] is None and only.status == "Completed"
    with pytest.raises(InvalidInput, match="the facet column 'race' is not in the data"):
        run_bias(ws, data="people", label="y", positive_label=1, facet="race", facet_value="x")
    with pytest.raises(InvalidInput, match="exactly one of data"):
        run_bias(ws, label="y", positive_label=1, facet="city", facet_value="paris")


def test_run_bias_on_captured_predictions(ws: Workspace, tmp_path: Path) -> None:
    v = registered(ws, tmp_path, frame(300))
    res0 = run_bias(ws, endpoint="ep", positive_label=1, facet="city", facet_value="paris")
    assert res0.status == "NoData"
    live = frame(120, seed=9)
    ids = [f"q{i}" for i in range(120)]
    capture(ws, "ep", v.ref, live, ids)
    ingest_ground_truth(ws, "ep", pd.DataFrame({"inference_id": ids, "label": live["y"].astype(str)}))
    res = run_bias(ws, endpoint="ep", positive_label=1, facet="city", facet_value="paris")
    pred = load_model(ws, v.ref).predict(live)
    d = (live["city"] == "paris").to_numpy()
    assert res.status == "Completed" and res.summary["counts"]["n_d"] == int(d.sum())
    assert res.summary["post_training"]["DPPL"] == pytest.approx((pred[~d] == 1).mean() - (pred[d] == 1).mean())
    assert res.summary["pre_training"]["DPL"] == pytest.approx(live["y"][~d].mean() - live["y"][d].mean())
    with pytest.raises(InvalidInput, match="the facet column 'race'"):
        run_bias(ws, endpoint="ep", positive_label=1, facet="race", facet_value="x")
