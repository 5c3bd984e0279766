"""The recipe -> ONNX translation of the edge export: exact features, and the reasons a step does not convert."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.edge import encode
from loopml.prep import FittedRecipe, Recipe
from loopml.registry._onnx_recipe import (
    UNCONVERTIBLE,
    Unconvertible,
    convert_recipe,
    input_kind,
    merge,
    recipe_model,
)

ort = pytest.importorskip("onnxruntime")

SIGNATURE = [{"name": "x1", "type": "double"}, {"name": "x2", "type": "double"}, {"name": "k", "type": "int64"},
             {"name": "b", "type": "bool"}, {"name": "city", "type": "large_string"},
             {"name": "day", "type": "timestamp[ns]"}]

#: every step kind that converts, most options on
BROAD = {"steps": [
    {"kind": "impute", "columns": ["x2"], "strategy": "median", "indicator": True},
    {"kind": "impute", "columns": ["city"], "strategy": "constant", "fill_value": "none", "indicator": True},
    {"kind": "winsorize", "columns": ["x1"]},
    {"kind": "clip", "columns": ["x2"], "upper": 2.5},
    {"kind": "yeo_johnson", "columns": ["x1"], "standardize": True},
    {"kind": "expression", "name": "e1",
     "expr": "x1 / (abs(x2) + 1) + (city == 'paris') - (day - day) + max(x1, x2) % 3 + x2 // 0.7 + round(x1 * 3)"
             " + log10(abs(x1) + 1) + clip(x1, -1, 1) + fillna(x2, 2) + isnull(city) + (x1 if x1 > 0 else x2)"
             " + min(x1, -x2) + exp(-abs(x1)) + sqrt(abs(x2)) + floor(x1) + ceil(x2) + log1p(abs(x1)) + -x1 % -1.5"},
    {"kind": "expression", "name": "e2", "expr": "where(k in (1, 3), 1, 0) + (city not in ('nice', 'x')) + notnull(x2)"
                                                 " + (city != 'lyon') + (x1 ** 2 if x1 == x1 else 0) + (1 < x1 <= 2)"},
    {"kind": "flag_rows", "where": "x1 > 0 and city in ('nice', 'lyon') or not b", "name": "f"},
    {"kind": "date_parts", "columns": ["day"], "drop_original": False,
     "parts": ["year", "quarter", "month", "day", "dow", "dayofyear", "hour", "minute", "weekend", "holiday"]},
    {"kind": "age", "birth": "day", "at_date": "2025-06-01", "groups": [0, 50, 100, 150]},
    {"kind": "one_hot", "columns": ["city", "day_age_group", "b"], "max_categories": 4},
    {"kind": "one_hot", "columns": ["k"], "handle_unknown": "infrequent", "min_frequency": 0.15},
    {"kind": "frequency", "columns": ["day_month"]},
    {"kind": "minmax", "columns": ["x2"], "clip": True},
    {"kind": "bin", "columns": ["day_year"], "n_bins": 4},
    {"kind": "bin", "columns": ["day_age"], "n_bins": 3, "labels": ["young", "mid", "old"], "strategy": "uniform"},
    {"kind": "ordinal", "columns": ["day_age"]},
    {"kind": "log", "columns": ["day_dayofyear"], "offset": 0.5},
    {"kind": "robust", "columns": ["x1", "x2", "e1"]},
    {"kind": "cast", "columns": ["x1"], "to": "float"},
    {"kind": "coerce_numeric", "columns": ["e2"]},
    {"kind": "drop_columns", "columns": ["day"]},
    {"kind": "select_variance", "threshold": 0.0},
]}


def _data(n: int, seed: int) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    # 1850..2250: before 1970, leap years, the 2100 non-leap year, times of day; 5% missing
    day = pd.Timestamp("1850-01-01") + pd.to_timedelta(r.integers(0, 400 * 365 * 86400, n), unit="s")
    city = r.choice(np.array(["paris", "lyon", "nice", "", "rome"], dtype=object), n)
    return pd.DataFrame({
        "x1": r.normal(size=n),
        "x2": np.where(r.random(n) < 0.1, np.nan, r.normal(size=n)),
        "k": r.choice(6, n, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05]),
        "b": r.random(n) < 0.5,
        "city": pd.array(np.where(r.random(n) < 0.1, None, city), dtype="str"),
        "day": pd.Series(day).where(r.random(n) > 0.05),
    })


def _run(fitted: FittedRecipe, df: pd.DataFrame, features: list[str]) -> np.ndarray:
    rg = convert_recipe(fitted, SIGNATURE, features)
    assert rg.convertible, rg.why_not()
    sess = ort.InferenceSession(recipe_model(rg, len(features)).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    feeds = {i.name: encode(i.kind, i.name, df[i.name].to_numpy()) for i in rg.inputs}
    (out,) = sess.run(None, feeds)
    return np.asarray(out)


def test_every_converted_step_gives_exactly_the_native_features() -> None:
    train, test = _data(1500, 0), _data(700, 1)
    test.loc[test.index[:20], "city"] = "unseen"
    fitted = Recipe.from_dict(BROAD).fit(train)
    want_frame = fitted.transform(test)
    features = [str(c) for c in want_frame.columns]
    assert len(features) > 30 and "day_holiday" in features and "k_infrequent" in features
    got = _run(fitted, test, features)
    want = want_frame[features].to_numpy(dtype=np.float32, na_value=np.nan)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    assert same.all(), {f: int((~same[:, j]).sum()) for j, f in enumerate(features) if not same[:, j].all()}
    assert np.isnan(want).any() and (want[:, features.index("day_holiday")] == 1).any()


def test_inputs_are_the_raw_columns_the_recipe_reads() -> None:
    df = _data(200, 0)
    fitted = Recipe.from_dict({"steps": [{"kind": "one_hot", "columns": ["city"]},
                                         {"kind": "drop_columns", "columns": ["day", "b"]}]}).fit(df)
    rg = convert_recipe(fitted, SIGNATURE, ["x1", "k", "city_paris"])
    assert [(i.name, i.kind, i.onnx_type) for i in rg.inputs] == [
        ("x1", "number", "tensor(double)"), ("k", "number", "tensor(double)"), ("city", "string", "tensor(string)")]
    assert rg.inputs[2].to_dict() == {"name": "city", "kind": "string", "onnx_type": "tensor(string)",
                                      "shape": [None, 1], "signature_type": "large_string", "missing": "__missing__"}
    assert [s.to_dict() for s in rg.steps] == [{"step": 1, "kind": "one_hot", "converted": True},
                                              {"step": 2, "kind": "drop_columns", "converted": True}]
    got = _run(fitted, df, ["x1", "k", "city_paris"])
    np.testing.assert_array_equal(got[:, 2], (df["city"] == "paris").to_numpy(dtype=np.float32))

    # no recipe: the features are the raw columns themselves
    rg = convert_recipe(None, SIGNATURE, ["k", "x1"])
    assert rg.convertible and [i.name for i in rg.inputs] == ["x1", "k"] and rg.steps == []
    rg = convert_recipe(None, SIGNATURE, ["nope"])
    assert not rg.convertible and rg.why_not() == "the model reads feature 'nope', which the recipe does not produce"


@pytest.mark.parametrize(("t", "kind"), [
    ("double", "number"), ("int8", "number"), ("bool", "number"), ("large_string", "string"), ("string", "string"),
    ("dictionary<values=string, indices=int8, ordered=0>", "string"), ("timestamp[us]", "datetime"),
    ("timestamp[ns, tz=UTC]", "datetime"), ("timestamp[ns, tz=Europe/Paris]", None), ("date32[day]", None),
    ("list<item: double>", None),
])
def test_input_kinds(t: str, kind: str | None) -> None:
    assert input_kind(t) == kind


STEP_CASES: list[tuple[dict[str, Any], str]] = [
    ({"kind": "drop_rows", "where": "x1 > 3"}, "removes rows; a graph returns one prediction per input row"),
    ({"kind": "drop_duplicates"}, "drops repeated rows of a batch"),
    ({"kind": "lag", "columns": ["x1"], "entity": "city", "time": "day"}, "reads earlier rows of the same entity"),
    ({"kind": "impute", "columns": ["x1"], "strategy": "ffill", "time": "day"},
     "strategy ffill reads earlier rows of the same entity and the history fitted with the recipe"),
    ({"kind": "hashing", "column": "city"}, "hashes terms with MurmurHash3, which no ONNX operator computes"),
    ({"kind": "tfidf", "column": "city"}, "tokenises text"),
    ({"kind": "one_hot", "columns": ["city"], "handle_unknown": "error"},
     "handle_unknown: error raises on an unseen category, which a graph cannot do; refit with handle_unknown: ignore"),
    ({"kind": "cast", "columns": ["k"], "to": "int"}, "casting number column 'k' to int is not converted"),
    ({"kind": "coerce_numeric", "columns": ["city"]}, "parsing the string column 'city' as numbers has no ONNX operator"),
    ({"kind": "expression", "name": "t", "expr": "city if x1 > 0 else 'x'"}, "the expression gives text"),
    ({"kind": "expression", "name": "t", "expr": "fillna(city, 'a') == 'b'"},
     "fillna() on these arguments in the expression is not converted"),
    ({"kind": "flag_rows", "where": "x1 > 0 and city == 3"}, "this comparison of text in the expression is not converted"),
    ({"kind": "standardize", "columns": ["c2"]}, "step 2 (standardize) needs numbers, but column 'c2' holds string"),
]


@pytest.mark.parametrize(("step", "why"), STEP_CASES, ids=[str(s["kind"]) for s, _ in STEP_CASES])
def test_unconvertible_steps_say_why(step: dict[str, Any], why: str) -> None:
    df = _data(300, 0)
    df["day"] = df["day"].fillna(pd.Timestamp("2000-01-01"))
    df["c2"] = pd.array(["1"] * 300, dtype="str")
    steps: list[dict[str, Any]] = [{"kind": "impute", "columns": ["x2"], "strategy": "mean"}, step,
                                   {"kind": "drop_duplicates"}, {"kind": "standardize", "columns": ["x1"]}]
    if step["kind"] == "standardize":  # a step fitted on numbers, in a recipe whose input is now text
        steps[1] = {"kind": "cast", "columns": ["c2"], "to": "str"}
    fitted = Recipe.from_dict({"steps": steps}).fit(df)
    if step["kind"] == "standardize":
        fitted.steps[1] = Recipe.from_dict({"steps": [step]}).fit(df.assign(c2=1.0)).steps[0]
    rg = convert_recipe(fitted, [*SIGNATURE, {"name": "c2", "type": "string"}], ["x1"])
    assert not rg.convertible
    reports = [s.to_dict() for s in rg.steps]
    assert reports[0] == {"step": 1, "kind": "impute", "converted": True}
    assert not reports[1]["converted"] and why in reports[1]["reason"], reports[1]
    # later steps: reasons that hold whatever came before, else "not tried"
    assert reports[2]["reason"] == UNCONVERTIBLE["drop_duplicates"]
    assert reports[3]["reason"] == "not tried: an earlier step did not convert"
    assert rg.why_not().startswith(f"step 2 ({step['kind']}): ")
    with pytest.raises(Unconvertible, match="step 2"):
        recipe_model(rg, 1)


def test_an_input_type_the_graph_does_not_take() -> None:
    df = pd.DataFrame({"d": pd.to_datetime(["2024-01-01", "2024-02-01"]).date, "x": [1.0, 2.0]})
    fitted = Recipe.from_dict({"steps": [{"kind": "one_hot", "columns": ["d"]}]}).fit(df)
    rg = convert_recipe(fitted, [{"name": "d", "type": "date32[day]"}, {"name": "x", "type": "double"}],
                        ["x", "d_2024-01-01"])
    assert rg.why_not() == ("step 1 (one_hot): input column 'd' has the type date32[day], which the edge graph "
                            "does not take (numbers, booleans, text and timestamps do)")


def test_merge_keeps_model_names_apart_from_columns() -> None:
    """A column named like a node of the model graph; a model graph with a subgraph (k-NN uses Scan)."""
    from onnx import TensorProto, helper

    df = pd.DataFrame({"mul": [1.0, 2.0, 3.0], "w": [0.5, 0.5, 0.5]})
    fitted = Recipe.from_dict({"steps": [{"kind": "standardize", "columns": ["mul"]}]}).fit(df)
    rg = convert_recipe(fitted, [{"name": "mul", "type": "double"}, {"name": "w", "type": "double"}], ["mul", "w"])
    # model: variable = sum(features * w) with an internal tensor called "mul" and "w"
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Mul", ["features", "w"], ["mul"]),
         helper.make_node("ReduceSum", ["mul", "axes"], ["variable"], keepdims=1)],
        "m", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [2.0, 10.0]),
                     helper.make_tensor("axes", TensorProto.INT64, [1], [1])]),
        opset_imports=[helper.make_opsetid("", 13)])
    merged = merge(rg, model, "features")
    sess = ort.InferenceSession(merged.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["variable"], {"mul": np.array([[1.0], [3.0]]), "w": np.array([[1.0], [4.0]])})
    np.testing.assert_allclose(out.ravel(), [2 * -1.2247449 + 10 * 1.0, 2 * 1.2247449 + 10 * 4.0], rtol=1e-5)

    rg = convert_recipe(None, [{"name": "variable", "type": "double"}], ["variable"])
    with pytest.raises(Unconvertible, match="input column 'variable' has the name of a graph output; rename the column"):
        merge(rg, model, "features")
