"""Attributions: tree SHAP additivity, model-agnostic Shapley values, global importance, NDCG drift."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.data.catalog import Catalog
from loopml.errors import InvalidInput
from loopml.monitor.attribution import (
    attribution_baseline,
    attribution_drift,
    explain,
    feature_sources,
    global_importance,
    ndcg,
    run_attribution_drift,
)
from loopml.prep import Recipe
from loopml.prep.steps import OneHot
from loopml.registry import load_model
from tests.monitor._quality_data import capture, frame, registered


# -- pure parts ------------------------------------------------------------------------------------
def test_global_importance_aggregations() -> None:
    v = np.array([[1.0, -4.0], [-3.0, 0.0], [2.0, 1.0]])
    assert global_importance(v, ["a", "b"]) == {"a": 2.0, "b": 5 / 3}
    assert global_importance(v, ["a", "b"], "median") == {"a": 2.0, "b": 1.0}
    assert global_importance(v, ["a", "b"], "mean_sq") == {"a": 14 / 3, "b": 17 / 3}
    with pytest.raises(InvalidInput, match="aggregation 'max'"):
        global_importance(v, ["a", "b"], "max")
    with pytest.raises(InvalidInput, match=r"must be \(rows, 3\)"):
        global_importance(v, ["a", "b", "c"])


def test_ndcg_by_the_reference_formula() -> None:
    base = {"a": 4.0, "b": 2.0, "c": 1.0, "d": 0.5}
    assert ndcg(base, base) == 1.0
    assert ndcg(base, {"a": 40, "b": 20, "c": 10, "d": 5}) == 1.0  # only the order counts
    live = {"a": 0.0, "b": 3.0, "c": 2.0, "d": 1.0}  # a drops to the bottom
    dcg = 2.0 / 1 + 1.0 / math.log2(3) + 0.5 / 2 + 4.0 / math.log2(5)
    idcg = 4.0 / 1 + 2.0 / math.log2(3) + 1.0 / 2 + 0.5 / math.log2(5)
    assert ndcg(base, live) == pytest.approx(dcg / idcg)
    assert ndcg(base, {"b": 1.0}) < 1.0  # missing features rank last
    assert ndcg({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 2.0}) == 1.0
    d = attribution_drift(base, live)
    assert d["drifted"] and d["ndcg"] == pytest.approx(dcg / idcg) and d["moved"][0] == "a"
    assert d["features"][0] == {"feature": "a", "baseline_rank": 1, "live_rank": 4, "rank_change": 3,
                                "baseline_value": 4.0, "live_value": 0.0}
    assert not attribution_drift(base, base, threshold=1.0)["drifted"]
    with pytest.raises(InvalidInput, match="NDCG threshold"):
        attribution_drift(base, base, threshold=1.5)


def test_feature_sources_follow_one_hot_and_prefixes() -> None:
    df = pd.DataFrame({"city": ["a", "b", "a"], "city_size": [1.0, 2.0, 3.0], "x": [0.0, 1.0, 2.0]})
    fitted = Recipe([OneHot(columns=["city"])]).fit(df)
    out = fitted.output_columns
    src = feature_sources(fitted, ["city", "city_size", "x"], out)
    assert src == {"city_size": "city_size", "x": "x", "city_a": "city", "city_b": "city"}
    assert feature_sources(None, ["day"], ["day_year", "day_month", "z"]) == {
        "day_year": "day", "day_month": "day", "z": "z"}


# -- model-agnostic Shapley values on known functions -------------------------------------------------
class _Fn:
    """A model with a known output function (no recipe, no booster)."""

    def __init__(self, fn: Callable[[pd.DataFrame], np.ndarray], inputs: list[str], problem_type: str = "regression"):
        self.fn = fn
        self.signature = SimpleNamespace(input_names=inputs)
        self.algorithm = SimpleNamespace(name="fn")
        self.problem_type = problem_type
        self.flavor = "fn"
        self.recipe = None

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.fn(df)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.fn(df)))
        return np.column_stack([1 - p, p])


def _m(model: Any) -> Any:
    return model


def test_exact_shapley_of_a_linear_function() -> None:
    r = np.random.default_rng(0)
    X = pd.DataFrame(r.normal(size=(50, 4)), columns=["a", "b", "c", "d"])
    coef = np.array([3.0, -2.0, 0.5, 0.0])
    model = _Fn(lambda df: df[["a", "b", "c", "d"]].to_numpy() @ coef + 1.0, ["a", "b", "c", "d"])
    att = explain(_m(model), X)
    assert att.method == "exact" and att.output == "prediction"
    base = X.mean().to_numpy()
    np.testing.assert_allclose(att.values, (X.to_numpy() - base) * coef, atol=1e-10)
    assert att.expected_value == pytest.approx(base @ coef + 1.0)


def test_permutation_shapley_is_additive_and_splits_interactions() -> None:
    r = np.random.default_rng(1)
    cols = [f"f{i}" for i in range(12)]
    X = pd.DataFrame(r.normal(size=(30, 12)), columns=cols)

    def fn(df: pd.DataFrame) -> np.ndarray:
        return np.asarray(2 * df["f0"] + df["f1"] * df["f2"] + np.sin(df["f3"]))

    att = explain(_m(_Fn(fn, cols)), X, background={c: 0.0 for c in cols}, n_permutations=4)
    assert att.method == "permutation"
    np.testing.assert_allclose(att.values.sum(axis=1) + att.expected_value, fn(X), atol=1e-9)
    np.testing.assert_allclose(att.values[:, 0], 2 * X["f0"], atol=1e-9)
    # antithetic orders split a pairwise interaction exactly in half
    np.testing.assert_allclose(att.values[:, 1], X["f1"] * X["f2"] / 2, atol=1e-9)
    np.testing.assert_allclose(att.values[:, 5], 0.0, atol=1e-12)
    # a classifier is explained in probability space
    clf = explain(_m(_Fn(fn, cols, "binary")), X, method="permutation", background={c: 0.0 for c in cols})
    p = 1 / (1 + np.exp(-fn(X)))
    np.testing.assert_allclose(clf.values.sum(axis=1) + clf.expected_value, p, atol=1e-9)
    assert clf.output == "probability"


def test_explain_rejects_bad_input() -> None:
    model = _Fn(lambda df: np.zeros(len(df)), ["a"])
    with pytest.raises(InvalidInput, match="tree SHAP needs an XGBoost or LightGBM model"):
        explain(_m(model), pd.DataFrame({"a": [1.0]}), method="tree")
    with pytest.raises(InvalidInput, match=r"lack input column\(s\) \['a'\]"):
        explain(_m(model), pd.DataFrame({"b": [1.0]}))
    with pytest.raises(InvalidInput, match="no rows"):
        explain(_m(model), pd.DataFrame({"a": []}))
    with pytest.raises(InvalidInput, match="method 'kernel'"):
        explain(_m(model), pd.DataFrame({"a": [1.0]}), method="kernel")


# -- tree SHAP on trained boosters --------------------------------------------------------------------
def test_xgboost_tree_shap_adds_up_to_the_margin_through_one_hot(ws: Workspace, tmp_path: Path) -> None:
    import xgboost as xgb

    df = frame(300)
    v = registered(ws, tmp_path, df, recipe=Recipe([OneHot(columns=["city"])]))
    model = load_model(ws, v.ref)
    att = explain(model, df)
    assert att.method == "tree_shap" and att.output == "margin"
    assert att.features == ["x1", "x2", "x3", "city"]  # encoded columns summed onto their input
    X = model.algorithm.matrix(model.transform(df))
    margin = model.algorithm.booster_.predict(xgb.DMatrix(X, missing=np.nan), output_margin=True)
    np.testing.assert_allclose(att.values.sum(axis=1) + att.expected_value, margin, rtol=1e-4, atol=1e-4)
    contrib = model.algorithm.booster_.predict(xgb.DMatrix(X, missing=np.nan), pred_contribs=True)
    enc = model.algorithm.features_
    city_cols = [i for i, f in enumerate(enc) if f.startswith("city_")]
    assert len(city_cols) == 3
    np.testing.assert_allclose(att.values[:, 3], contrib[:, city_cols].sum(axis=1), rtol=1e-5, atol=1e-6)
    imp = att.global_importance()
    assert max(imp, key=lambda k: imp[k]) == "x1"

    # the model-agnostic estimators explain the same model in probability space, additively
    ex = explain(model, df, method="exact", max_rows=40)
    assert ex.method == "exact" and ex.values.shape == (40, 4)
    perm = explain(model, df, method="permutation", max_rows=40, n_permutations=6)
    rows = df.sample(n=40, random_state=0).reset_index(drop=True)
    p = model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(ex.values.sum(axis=1) + ex.expected_value, p, atol=1e-6)
    np.testing.assert_allclose(perm.values.sum(axis=1) + perm.expected_value, p, atol=1e-6)


def test_lightgbm_and_multiclass_tree_shap(ws: Workspace, tmp_path: Path) -> None:
    df = frame(300)
    v = registered(ws, tmp_path, df, "lightgbm", {"num_boost_round": 15, "min_data_in_leaf": 5}, name="lgb")
    model = load_model(ws, v.ref)
    att = explain(model, df)
    X = model.algorithm.matrix(model.transform(df))
    raw = model.algorithm.booster_.predict(X, raw_score=True)
    np.testing.assert_allclose(att.values.sum(axis=1) + att.expected_value, raw, rtol=1e-6, atol=1e-6)

    multi = df.assign(y=np.digitize(df["x1"], [-0.5, 0.5]))
    mv = registered(ws, tmp_path, multi, name="multi")
    mm = load_model(ws, mv.ref)
    assert mm.problem_type == "multiclass"
    matt = explain(mm, multi)
    import xgboost as xgb

    Xm = mm.algorithm.matrix(mm.transform(multi))
    margins = mm.algorithm.booster_.predict(xgb.DMatrix(Xm, missing=np.nan), output_margin=True)
    cls = np.argmax(margins, axis=1)
    own = margins[np.arange(len(cls)), cls]
    bias = mm.algorithm.booster_.predict(xgb.DMatrix(Xm, missing=np.nan), pred_contribs=True)[:, :, -1]
    np.testing.assert_allclose(matt.values.sum(axis=1) + bias[np.arange(len(cls)), cls], own, rtol=1e-4, atol=1e-4)
    assert max(matt.global_importance(), key=lambda k: matt.global_importance()[k]) == "x1"


# -- baselines and drift runs --------------------------------------------------------------------------
def test_attribution_drift_on_datasets_and_an_endpoint(ws: Workspace, tmp_path: Path) -> None:
    df = frame(400)
    v = registered(ws, tmp_path, df)
    cat = Catalog(ws)
    cat.write("train", df)
    bl = attribution_baseline(ws, v.ref, "train")
    assert bl.kind == "attribution" and bl.name == "churn-1-attribution" and bl.model_ref == v.ref
    assert bl.dataset_ref == "train:1" and bl.details["ranking"][0] == "x1"
    assert bl.details["method"] == "tree_shap" and bl.details["item_count"] == 400
    analysis = json.loads(bl.output(ws, "analysis.json"))
    assert analysis["explanations"]["tree_shap"]["label0"]["global_shap_values"]["x1"] == pytest.approx(
        bl.details["importance"]["x1"])

    same = run_attribution_drift(ws, "train:1", bl.name)
    assert same.status == "Completed" and same.summary["ndcg"] == pytest.approx(1.0)
    assert same.summary["moved"] == [] and same.baseline_id == bl.id

    # the most important feature made constant: its attribution collapses, the ranking drifts
    flat = df.assign(x1=float(df["x1"].mean()))
    cat.write("train", flat)
    drifted = run_attribution_drift(ws, "dataset:train", bl.name)
    s = drifted.summary
    assert drifted.target.name == "train:2"
    assert drifted.status == "CompletedWithViolations" and s["ndcg"] < 0.9
    x1 = next(r for r in s["features"] if r["feature"] == "x1")
    assert x1["baseline_rank"] == 1 and x1["live_rank"] > 1 and "x1" in s["moved"]
    assert "NDCG" in s["violations"][0]["description"]
    assert f"x1 1→{x1['live_rank']}" in s["violations"][0]["description"]
    pts = ws.metrics.query("attribution_ndcg", dimensions={"dataset": "train:2", "monitor": "attribution"})
    assert [p.value for p in pts] == [pytest.approx(s["ndcg"])]
    assert len(ws.metrics.query("feature_attribution", dimensions={"dataset": "train:2", "feature": "x1"})) == 1
    assert json.loads(drifted.output(ws, "attribution_drift.json"))["drifted"] is True

    # live traffic of the same distribution, baseline found from the endpoint's model
    empty = run_attribution_drift(ws, "ep", bl.name)
    assert empty.status == "NoData"
    live = frame(150, seed=11)
    capture(ws, "ep", v.ref, live, [f"r{i}" for i in range(150)])
    ok = run_attribution_drift(ws, "ep")
    assert ok.status == "Completed" and ok.summary["ndcg"] > 0.95 and ok.baseline_id == bl.id
    with pytest.raises(InvalidInput, match="give the attribution baseline"):
        run_attribution_drift(ws, "train:1")


def test_agnostic_baseline_keeps_its_baseline_record(ws: Workspace, tmp_path: Path) -> None:
    df = frame(200)
    v = registered(ws, tmp_path, df)
    Catalog(ws).write("d", df)
    bl = attribution_baseline(ws, v.ref, "d", method="exact", max_rows=30, name="agn")
    rec = bl.details["baseline_record"]
    assert bl.details["method"] == "exact" and rec["x1"] == pytest.approx(df["x1"].mean())
    assert rec["city"] == df["city"].mode().iloc[0]
    res = run_attribution_drift(ws, "d:1", "agn")
    assert res.summary["method"] == "exact" and res.summary["ndcg"] == pytest.approx(1.0)
    with pytest.raises(InvalidInput, match="aggregation 'sum'"):
        attribution_baseline(ws, v.ref, "d", agg="sum")
    Catalog(ws).write("other", pd.DataFrame({"a": [1.0]}))
    with pytest.raises(InvalidInput, match=r"other:1 lacks input column\(s\)"):
        attribution_baseline(ws, v.ref, "other")
