"""The column path of serving: a fitted recipe as numpy operations gives the row path's matrix exactly."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.errors import InvalidInput
from loopml.prep import FittedRecipe, Recipe
from loopml.prep._base import RowDropped
from loopml.prep.steps import Standardize
from loopml.serve._vector_recipe import VectorFallback, VectorRecipe, vector_kinds
from loopml.serve.runtime import Predictor
from loopml.train.package import Model
from tests.serve.conftest import inputs_of, json_records, serve_frame

CITIES = ["paris", "lyon", "nice", "rome", "oslo", "kiev"]


def fit_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numbers with missing values, positive numbers, an integer, two text columns, a 0/1 target."""
    r = np.random.default_rng(seed)
    a = r.normal(size=n) * 3
    a[r.random(n) < 0.15] = np.nan
    b = r.lognormal(size=n)
    b[r.random(n) < 0.1] = np.nan
    city = r.choice(np.array(CITIES, dtype=object), n, p=[0.4, 0.25, 0.15, 0.1, 0.07, 0.03])
    city[r.random(n) < 0.05] = None
    size = r.choice(np.array(["S", "M", "L"], dtype=object), n)
    return pd.DataFrame({
        "a": a, "b": b, "k": r.integers(-5, 50, n).astype(np.int64),
        "city": pd.array(city, dtype="str"), "size": pd.array(size, dtype="str"),
        "y": (np.nan_to_num(a) + r.normal(size=n) > 0).astype(np.int64),
    })


INPUTS = ["a", "b", "k", "city", "size"]


def serve_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Records as requests carry them, with what the row path must cope with.

    Missing values as None and NaN, ints and booleans among the numbers,
    unseen categories, numbers and empty text among the categories.
    """
    r = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        def number(scale: float, positive: bool = False) -> Any:
            u = r.random()
            if u < 0.08:
                return None
            if u < 0.12:
                return math.nan
            if u < 0.18:
                return int(r.integers(-3, 30))
            if u < 0.2:
                return bool(r.integers(0, 2))
            x = float(r.lognormal() if positive else r.normal() * scale)
            return x if r.random() > 0.02 else x * 1e6

        def category(known: list[str]) -> Any:
            u = r.random()
            if u < 0.07:
                return None
            if u < 0.12:
                return str(r.choice(["berlin", "", "PARIS"]))
            if u < 0.15:
                return [3, 3.0, 2.5][int(r.integers(0, 3))]
            return str(r.choice(known))

        out.append({"a": number(3.0), "b": number(1.0, positive=True), "k": int(r.integers(-10, 60)),
                    "city": category(CITIES), "size": category(["S", "M", "L"])})
    return out


def numeric_outputs(fitted: FittedRecipe) -> list[str]:
    """The recipe's output columns a model could take as features (numbers), target left out."""
    keep = []
    for f in fitted.output_schema:
        if f.name == fitted.target:
            continue
        if pa.types.is_floating(f.type) or pa.types.is_integer(f.type) or pa.types.is_boolean(f.type):
            keep.append(f.name)
    return keep


def row_matrix(fitted: FittedRecipe, records: list[dict[str, Any]], features: list[str],
               dtype: Any) -> tuple[np.ndarray, list[int]]:
    """What the row path builds: transform_one per record, then one matrix of the features."""
    rows, dropped = [], []
    for i, rec in enumerate(records):
        try:
            rows.append(fitted.transform_one(rec))
        except RowDropped:
            dropped.append(i)
    X = np.array([[rec[f] for f in features] for rec in rows], dtype=dtype).reshape(len(rows), len(features))
    return X, dropped


def assert_same_matrix(fitted: FittedRecipe, records: list[dict[str, Any]], *,
                       vector_steps: int | None = None, features: list[str] | None = None) -> VectorRecipe:
    features = numeric_outputs(fitted) if features is None else features
    assert features
    for dtype in (np.float32, np.float64):
        vr = VectorRecipe.compile(fitted, INPUTS, features, dtype)
        assert vr is not None
        if vector_steps is not None:
            assert vr.vector_steps == vector_steps, vr
        want, dropped = row_matrix(fitted, records, features, dtype)
        got, kept = vr.matrix(vr.columns_of(records), len(records))
        assert got.dtype == want.dtype and got.shape == want.shape and got.flags.c_contiguous
        assert np.array_equal(got, want, equal_nan=True), np.argwhere(~((got == want) | (np.isnan(got) & np.isnan(want))))
        if dropped:
            assert kept is not None
            assert sorted(set(range(len(records))) - set(kept.tolist())) == dropped
        else:
            assert kept is None
    return vr


# -- every step with a vector form, on randomised records --------------------------------------------
VECTOR_RECIPES: dict[str, list[dict[str, Any]]] = {
    "impute-mean": [{"kind": "impute", "columns": ["a", "b"], "strategy": "mean"}],
    "impute-median-indicator": [{"kind": "impute", "columns": ["a", "city"], "strategy": "most_frequent",
                                 "indicator": True},
                                {"kind": "impute", "columns": ["b"], "strategy": "median", "indicator": True},
                                {"kind": "one_hot", "columns": ["city"]}],
    "impute-constant": [{"kind": "impute", "columns": ["a", "size"], "strategy": "constant", "fill_value": -1},
                        {"kind": "ordinal", "columns": ["size"]}],
    "standardize": [{"kind": "standardize", "columns": ["a", "b", "k"]}],
    "standardize-no-mean": [{"kind": "standardize", "columns": ["a"], "with_mean": False}],
    "robust": [{"kind": "robust", "columns": ["a", "k"], "quantile_range": [10.0, 90.0]}],
    "minmax": [{"kind": "minmax", "columns": ["a", "k"]}],
    "minmax-clip": [{"kind": "minmax", "columns": ["a", "b"], "feature_range": [-1.0, 1.0], "clip": True}],
    "clip": [{"kind": "clip", "columns": ["a", "k"], "lower": -1.5, "upper": 2.0},
             {"kind": "clip", "columns": ["b"], "upper": 1.5}],
    "winsorize": [{"kind": "winsorize", "columns": ["a", "b"], "limits": [0.05, 0.9]}],
    "log": [{"kind": "log", "columns": ["b"]}, {"kind": "log", "columns": ["a"], "offset": 12.0}],
    "yeo-johnson": [{"kind": "yeo_johnson", "columns": ["a", "k"]},
                    {"kind": "yeo_johnson", "columns": ["b"], "standardize": True}],
    "box-cox": [{"kind": "box_cox", "columns": ["b"], "standardize": True}],
    "bin": [{"kind": "bin", "columns": ["a", "b"], "n_bins": 4}],
    "bin-labels-then-one-hot": [{"kind": "bin", "columns": ["a"], "edges": [-2.0, 0.0, 2.0],
                                 "labels": ["lo", "hi"]},
                                {"kind": "one_hot", "columns": ["a"]}],
    "one-hot": [{"kind": "one_hot", "columns": ["city", "size"]}],
    "one-hot-infrequent": [{"kind": "one_hot", "columns": ["city"], "max_categories": 3,
                            "handle_unknown": "infrequent"}],
    "one-hot-min-frequency": [{"kind": "one_hot", "columns": ["city", "size"], "min_frequency": 0.2}],
    "one-hot-keep-original": [{"kind": "one_hot", "columns": ["city"], "keep_original": True},
                              {"kind": "frequency", "columns": ["city"]}],
    "ordinal": [{"kind": "ordinal", "columns": ["city", "size"], "categories": {"size": ["S", "M", "L"]},
                 "unknown_value": -7.0}],
    "frequency": [{"kind": "frequency", "columns": ["city"], "normalize": False},
                  {"kind": "frequency", "columns": ["size"]}],
    "target-encode": [{"kind": "target_encode", "columns": ["city", "size"]}],
    "drop-and-select": [{"kind": "drop_columns", "columns": ["k"]},
                        {"kind": "impute", "columns": ["a", "b"], "strategy": "median"},
                        {"kind": "one_hot", "columns": ["city"]},
                        {"kind": "select_variance", "threshold": 0.05},
                        {"kind": "drop_duplicates"}],
    "one-hot-then-scaled": [{"kind": "one_hot", "columns": ["city"]},
                            {"kind": "standardize", "columns": ["city_paris", "city_lyon"]},
                            {"kind": "drop_columns", "columns": ["city_nice"]}],
    "everything": [{"kind": "impute", "columns": ["a"], "strategy": "median", "indicator": True},
                   {"kind": "clip", "columns": ["a"], "lower": -4.0, "upper": 4.0},
                   {"kind": "standardize", "columns": ["a"]},
                   {"kind": "log", "columns": ["b"]},
                   {"kind": "one_hot", "columns": ["city"], "max_categories": 4},
                   {"kind": "target_encode", "columns": ["size"]},
                   {"kind": "minmax", "columns": ["k"]}],
}


def fitted_of(steps: list[dict[str, Any]], seed: int = 0) -> FittedRecipe:
    return Recipe.from_dict({"steps": steps, "target": "y"}).fit(fit_frame(300, seed))


@pytest.mark.parametrize("name", list(VECTOR_RECIPES))
def test_vector_steps_give_the_row_path_matrix_exactly(name: str) -> None:
    steps = VECTOR_RECIPES[name]
    fitted = fitted_of(steps)
    for seed in (1, 2):
        assert_same_matrix(fitted, serve_records(150, seed), vector_steps=len(steps))


def test_every_listed_kind_has_a_test() -> None:
    tested = {s["kind"] for steps in VECTOR_RECIPES.values() for s in steps}
    selects = {"select_correlation", "select_mutual_info", "select_model", "select_rfe"}  # select_variance's twins
    assert set(vector_kinds()) - selects <= tested


# -- steps without a vector form run record by record in between ------------------------------------------
MIXED_RECIPES: dict[str, tuple[list[dict[str, Any]], int]] = {
    "drop-rows-in-the-middle": ([{"kind": "standardize", "columns": ["a"]},
                                 {"kind": "drop_rows", "where": "a > 0.8 or b > 2"},
                                 {"kind": "one_hot", "columns": ["city"]},
                                 {"kind": "impute", "columns": ["b"], "strategy": "mean"}], 3),
    "flag-reads-one-hot-outputs": ([{"kind": "one_hot", "columns": ["city", "size"]},
                                    {"kind": "flag_rows", "where": "city_paris > 0 or size_S > 0", "name": "f"},
                                    {"kind": "one_hot", "columns": ["f"]},
                                    {"kind": "expression", "name": "ab", "expr": "fillna(a, 0) * 2 + 1"},
                                    {"kind": "minmax", "columns": ["ab"]}], 3),
    "casts": ([{"kind": "coerce_numeric", "columns": ["city"]},
               {"kind": "impute", "columns": ["city"], "strategy": "constant", "fill_value": 0},
               {"kind": "cast", "columns": ["k"], "to": "float"},
               {"kind": "standardize", "columns": ["k"]},
               {"kind": "one_hot", "columns": ["size"]}], 3),
}


@pytest.mark.parametrize("name", list(MIXED_RECIPES))
def test_steps_without_a_vector_form_run_in_between(name: str) -> None:
    steps, vector = MIXED_RECIPES[name]
    fitted = fitted_of(steps)
    records = serve_records(150, 3)
    if name == "casts":  # coerce_numeric reads the city column as numbers: send some
        for i, r in enumerate(records):
            r["city"] = None if i % 7 == 0 else (str(i % 5) if i % 3 else r["city"])
    assert_same_matrix(fitted, records, vector_steps=vector)


def test_all_rows_dropped() -> None:
    fitted = fitted_of([{"kind": "drop_rows", "where": "k > 55"}, {"kind": "standardize", "columns": ["a"]}])
    records = serve_records(30, 4)
    for r in records:
        r["k"] = 60
    vr = assert_same_matrix(fitted, records, vector_steps=1)
    X, kept = vr.matrix(vr.columns_of(records), len(records))
    assert X.shape == (0, len(vr.features)) and kept is not None and kept.tolist() == []


def test_no_recipe_and_a_different_feature_order() -> None:
    records = serve_records(40, 6)
    features = ["k", "b", "a"]
    vr = VectorRecipe.compile(None, INPUTS, features, np.float32)
    assert vr is not None and vr.vector_steps == 0
    X, kept = vr.matrix(vr.columns_of(records), len(records))
    want = np.array([[r[f] for f in features] for r in records], dtype=np.float32)
    assert kept is None and np.array_equal(X, want, equal_nan=True)
    # one-hot outputs apart from each other among the features, and the others in between
    fitted = fitted_of([{"kind": "one_hot", "columns": ["city", "size"]}])
    names = numeric_outputs(fitted)
    mixed = names[::-1]
    assert_same_matrix(fitted, records, vector_steps=1, features=mixed)


# -- what the column path refuses, the row path answers ----------------------------------------------------
def test_values_the_steps_refuse_fall_back() -> None:
    fitted = fitted_of([{"kind": "standardize", "columns": ["a"]}, {"kind": "one_hot", "columns": ["city"]}])
    vr = VectorRecipe.compile(fitted, INPUTS, numeric_outputs(fitted), np.float32)
    assert vr is not None
    records = serve_records(12, 7)
    records[5]["a"] = "twelve"  # the row path: "column 'a' got the text 'twelve' ..."
    with pytest.raises(VectorFallback):
        vr.matrix(vr.columns_of(records), len(records))
    with pytest.raises(InvalidInput, match="twelve"):
        fitted.transform_one(records[5])


def test_one_hot_that_refuses_unseen_categories_falls_back() -> None:
    fitted = fitted_of([{"kind": "one_hot", "columns": ["size"], "handle_unknown": "error"}])
    vr = VectorRecipe.compile(fitted, INPUTS, numeric_outputs(fitted), np.float32)
    assert vr is not None and vr.vector_steps == 1
    good = [r for r in serve_records(60, 8) if r["size"] in ("S", "M", "L")]
    assert_same_matrix(fitted, good, vector_steps=1)
    bad = [*good[:5], {**good[0], "size": "XL"}]
    with pytest.raises(VectorFallback):
        vr.matrix(vr.columns_of(bad), len(bad))


def test_records_with_other_fields_fall_back() -> None:
    vr = VectorRecipe.compile(None, INPUTS, ["a"], np.float32)
    assert vr is not None
    rec = serve_records(1, 9)[0]
    for bad in ({k: rec[k] for k in reversed(INPUTS)}, {**rec, "extra": 1}, {k: rec[k] for k in INPUTS[1:]}):
        with pytest.raises(VectorFallback):
            vr.columns_of([rec, bad])
    with pytest.raises(VectorFallback):  # a feature no step makes
        VectorRecipe.compile(None, INPUTS, ["zz"], np.float32).matrix(  # type: ignore[union-attr]
            vr.columns_of([rec]), 1)
    with pytest.raises(VectorFallback):  # not one number per row
        vr.matrix({"a": [[1.0, 2.0]]}, 1)


def test_what_has_no_exact_vector_form_runs_record_by_record() -> None:
    df = fit_frame(100, 10)
    df["const"] = 2.0
    fitted = Recipe([Standardize(columns=["a", "const"], with_std=True)]).fit(df)
    fitted.steps[0].scale_ = [fitted.steps[0].scale_[0], 0.0]  # type: ignore[attr-defined]
    fitted.steps[0]._prepare()
    vr = VectorRecipe.compile(fitted, [*INPUTS, "const"], ["a"], np.float32)
    assert vr is not None and vr.vector_steps == 0  # Python divides by zero with an error; numpy does not

    class Shifted(Standardize):  # a subclass may map records its own way: never compiled
        note: ClassVar[str] = "not registered: no kind of its own"

        def transform_one(self, rec: dict[str, Any]) -> None:
            super().transform_one(rec)
            rec["a"] = rec["a"] + 1.0

    odd = Recipe([Standardize(columns=["a"]), Standardize(columns=["b"])]).fit(df)
    odd.steps[0].center_ = None  # type: ignore[attr-defined]  # state the compiler cannot read
    assert_same_matrix(odd, serve_records(30, 12), vector_steps=1, features=["a", "b"])

    shifted = Recipe([Shifted(columns=["a"])]).fit(df)
    assert_same_matrix(shifted, serve_records(30, 11), vector_steps=0, features=["a", "b"])
    assert VectorRecipe.compile(shifted, ["b"], ["b"], np.float32) is None  # the recipe reads a missing input


# -- the Predictor: the column path gives the row path's outputs ------------------------------------------
def _both_paths(p: Predictor, records: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    fallbacks = p._rows.vector_fallbacks
    vec = p.predict_records(records)
    assert p._rows.vector_fallbacks == fallbacks
    p._rows.vector_rows = 10**9
    try:
        rows = p.predict_records(records)
    finally:
        p._rows.vector_rows = 8
    return vec, rows


@pytest.mark.parametrize("recipe", ["auto", "spec", "none"])
@pytest.mark.parametrize(("algo", "problem"), [("xgboost", "binary"), ("lightgbm", "multiclass"),
                                             ("linear", "binary"), ("random_forest", "regression")])
def test_predictor_outputs_are_identical(trained: Callable[..., Model], algo: str, problem: str,
                                         recipe: str) -> None:
    model = trained(algo, problem, recipe)
    p = Predictor(model)
    assert p._rows.vector is not None
    records = json_records(inputs_of(serve_frame(64, seed=21, unseen=True), recipe))
    vec, rows = _both_paths(p, records)
    assert vec == rows
    # through invoke: the columns come from the validator
    import orjson

    body = orjson.dumps(records)
    assert p.invoke(body, "application/json", None).outputs == rows
    assert p._rows.vector_fallbacks == 0


def test_predictor_rows_a_recipe_drops(tmp_path: Any) -> None:
    from loopml.train import load_model_package
    from tests.train._data import package

    data = serve_frame(200, seed=22)
    df = pd.concat([inputs_of(data, "spec"), data[["y_bin"]]], axis=1)
    spec = {"steps": [{"kind": "drop_rows", "where": "x1 > 1.2"}, {"kind": "impute", "columns": ["x2"]},
                      {"kind": "one_hot", "columns": ["city"]},
                      {"kind": "date_parts", "columns": ["day"], "parts": ["dow"], "drop_original": True}]}
    folder, _ = package(tmp_path, df, "xgboost", {"num_round": 5, "max_depth": 3}, target="y_bin",
                        recipe={"kind": "spec", "spec": spec}, name="dropper")
    p = Predictor(load_model_package(folder))
    records = json_records(inputs_of(serve_frame(50, seed=23, unseen=True), "spec"))
    vec, rows = _both_paths(p, records)
    assert vec == rows
    dropped = [i for i, o in enumerate(vec) if o["prediction"] is None]
    assert dropped == [i for i, r in enumerate(records) if r["x1"] > 1.2] and dropped
    assert all(vec[i]["probabilities"] is None for i in dropped)


def test_predictor_errors_are_the_row_paths(tmp_path: Any) -> None:
    from loopml.train import load_model_package
    from tests.train._data import package

    data = serve_frame(120, seed=24)
    df = pd.concat([inputs_of(data, "none"), data[["city", "y_bin"]]], axis=1)
    spec = {"steps": [{"kind": "one_hot", "columns": ["city"], "handle_unknown": "error"}]}
    folder, _ = package(tmp_path, df, "xgboost", {"num_round": 3, "max_depth": 2}, target="y_bin",
                        recipe={"kind": "spec", "spec": spec}, name="strict")
    p = Predictor(load_model_package(folder))
    records = json_records(df.drop(columns=["y_bin"]).head(20))
    records[13]["city"] = "atlantis"
    with pytest.raises(InvalidInput) as vec_error:
        p.predict_records(records)
    assert p._rows.vector_fallbacks == 1
    p._rows.vector_rows = 10**9
    with pytest.raises(InvalidInput) as row_error:
        p.predict_records(records)
    assert str(vec_error.value) == str(row_error.value)
    assert "row 13" in str(vec_error.value) and "atlantis" in str(vec_error.value)
