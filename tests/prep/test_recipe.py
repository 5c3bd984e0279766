"""The Recipe spec (YAML <-> Python), bad input, and the JSON form of a fitted recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import InvalidInput
from loopml.prep import FittedRecipe, Recipe
from loopml.prep.steps import Impute, OneHot, Standardize, TargetEncode
from tests.prep._data import make_frame

YAML = """
description: churn features
target: y
steps:
  - kind: impute
    columns: [amount, score]
    strategy: median
  - standardize: {columns: [amount, score]}
  - one_hot:
      columns: [city]
      max_categories: 3
  - kind: target_encode
    columns: [plan]
"""


def test_yaml_and_python_forms_are_the_same_object() -> None:
    from_yaml = Recipe.from_yaml(YAML)
    in_python = Recipe(
        [Impute(columns=["amount", "score"], strategy="median"), Standardize(columns=["amount", "score"]),
         OneHot(columns=["city"], max_categories=3), TargetEncode(columns=["plan"])],
        target="y", description="churn features",
    )
    assert from_yaml == in_python
    assert Recipe.from_yaml(in_python.to_yaml()) == in_python
    assert Recipe.from_dict(json.loads(json.dumps(in_python.to_dict()))) == in_python
    # defaults are left out of the data form
    assert in_python.to_dict()["steps"][1] == {"kind": "standardize", "columns": ["amount", "score"]}


def test_load_reads_a_file(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(YAML)
    assert Recipe.load(p) == Recipe.from_yaml(YAML)
    with pytest.raises(InvalidInput, match="does not exist"):
        Recipe.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "message"), [
    ("steps:\n  - kind: standardise\n    columns: [a]",
     r"recipe step 1: unknown step kind 'standardise' \(did you mean 'standardize'\?\)"),
    ("steps:\n  - {kind: impute, columns: [a]}\n  - {kind: standardize, colums: [a]}",
     r"recipe step 2 \(standardize\): unknown parameter 'colums' \(did you mean 'columns'\?\); standardize takes columns"),
    ("steps:\n  - {kind: standardize, with_mean: 'yes', columns: [a]}",
     r"recipe step 1 \(standardize\): standardize: parameter 'with_mean' must be true or false, got 'yes'"),
    ("steps:\n  - {kind: standardize}", r"recipe step 1 \(standardize\): missing required parameter"),
    ("steps:\n  - {kind: one_hot, columns: [a], handle_unknown: drop}",
     r"parameter 'handle_unknown' must be one of 'ignore', 'infrequent', 'error'"),
    ("stepz: []", r"unknown recipe key\(s\) \['stepz'\]"),
    ("steps: [1]", r"recipe step 1: expected a mapping"),
    ("steps:\n  - {columns: [a], strategy: mean}", r"recipe step 1: say which step it is with 'kind:'"),
    ("steps: [\n", r"the recipe is not valid YAML"),
    ("steps:\n  - {kind: expression, name: x, expr: \"__import__('os')\"}", r"unknown function '__import__'"),
])
def test_bad_specs_say_which_step_and_what(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Recipe.from_yaml(text)


def test_unknown_column_names_the_column_and_the_step() -> None:
    df = make_frame(30)
    r = Recipe.from_dict({"steps": [{"kind": "impute", "columns": ["amount"]},
                                    {"kind": "standardize", "columns": ["amout"]}]})
    with pytest.raises(InvalidInput, match=r"recipe step 2 \(standardize\): unknown column 'amout' \(did you mean 'amount'\?\)"):
        r.fit(df)
    with pytest.raises(InvalidInput, match=r"step 1 \(log\): column pattern 'nums_\*' matches no column"):
        Recipe.from_dict({"steps": [{"kind": "log", "columns": ["nums_*"]}]}).fit(df)


def test_a_step_that_does_not_fit_the_column_type() -> None:
    df = make_frame(30)
    with pytest.raises(InvalidInput, match=r"recipe step 1 \(standardize\): column 'city' holds text \(str\), but standardize needs numbers"):
        Recipe([Standardize(columns=["city"])]).fit(df)
    with pytest.raises(InvalidInput, match=r"step 1 \(date_parts\): column 'when' holds text .* add a parse_dates step"):
        Recipe.from_dict({"steps": [{"kind": "date_parts", "columns": ["when"]}]}).fit(df)
    with pytest.raises(InvalidInput, match=r"step 1 \(box_cox\): column 'score' has values <= 0"):
        Recipe.from_dict({"steps": [{"kind": "box_cox", "columns": ["score"]}]}).fit(df)
    with pytest.raises(InvalidInput, match=r"step 1 \(target_encode\) needs a target column"):
        Recipe([TargetEncode(columns=["plan"])]).fit(df)
    with pytest.raises(InvalidInput, match=r"step 1 \(select_rfe\): column 'amount' has missing values"):
        Recipe.from_dict({"target": "y", "steps": [{"kind": "select_rfe", "columns": ["amount"]}]}).fit(df)
    # at apply time, the same column arriving as text is refused, for a frame and for a record
    fitted = Recipe([Standardize(columns=["amount"])]).fit(df)
    with pytest.raises(InvalidInput, match=r"step 1 \(standardize\): column 'amount' holds text"):
        fitted.transform(df.assign(amount=df["amount"].astype(str)))
    with pytest.raises(InvalidInput, match=r"step 1 \(standardize\): column 'amount' got the text '12'"):
        fitted.transform_one({**df.iloc[0].to_dict(), "amount": "12"})


def test_data_missing_a_column_names_the_column_and_the_step() -> None:
    df = make_frame(30)
    fitted = Recipe.from_dict({"steps": [{"kind": "impute", "columns": ["score"]},
                                         {"kind": "one_hot", "columns": ["city"]}]}).fit(df)
    with pytest.raises(InvalidInput, match=r"no column 'city', which recipe step 2 \(one_hot\) reads"):
        fitted.transform(df.drop(columns=["city"]))
    with pytest.raises(InvalidInput, match=r"no column 'city', which recipe step 2 \(one_hot\) reads"):
        fitted.transform_one({"score": 1.0})
    # columns no step reads are optional
    out = fitted.transform_one({"score": None, "city": "paris"})
    assert out["score"] == pytest.approx(df["score"].mean()) and out["city_paris"] == 1.0


def test_transform_keeps_order_and_index_and_does_not_touch_the_input() -> None:
    df = make_frame(50).set_index(pd.Index(np.arange(50)[::-1] * 3))
    before = df.copy()
    fitted = Recipe.from_dict({"steps": [{"kind": "impute", "columns": ["amount"]},
                                         {"kind": "drop_rows", "where": "visits > 15"},
                                         {"kind": "standardize", "columns": ["amount"]}]}).fit(df)
    out = fitted.transform(df)
    pd.testing.assert_frame_equal(df, before)
    keep = df["visits"] <= 15
    assert out.index.tolist() == df.index[keep].tolist()
    assert out["customer"].tolist() == df.loc[keep, "customer"].tolist()


def test_fitted_recipe_is_json_and_round_trips_exactly() -> None:
    df = make_frame()
    r = Recipe.from_yaml(YAML)
    fitted = r.fit(df)
    blob = fitted.to_bytes()
    doc = json.loads(blob)  # plain JSON, no pickle anywhere
    assert doc["format"] == "loopml.recipe" and doc["recipe"] == r.to_dict()
    assert blob == r.fit(df).to_bytes(), "equal fits give equal bytes (and artifact hashes)"
    loaded = FittedRecipe.from_bytes(blob)
    new = make_frame(60, seed=9)
    pd.testing.assert_frame_equal(loaded.transform(new), fitted.transform(new))
    for rec in new.to_dict("records")[:10]:
        assert str(loaded.transform_one(rec)) == str(fitted.transform_one(rec))
    assert loaded.output_columns == fitted.output_columns and loaded.required == fitted.required


def test_nan_and_infinite_learned_values_survive_json() -> None:
    df = pd.DataFrame({"c": pd.array(["a", None, "b"], dtype="str")})
    fitted = Recipe.from_dict({"steps": [{"kind": "ordinal", "columns": ["c"]}]}).fit(df)
    loaded = FittedRecipe.from_bytes(fitted.to_bytes())
    assert np.isnan(loaded.transform_one({"c": None})["c"])
    assert loaded.transform_one({"c": "b"})["c"] == 1.0


def test_a_foreign_or_future_artifact_is_refused() -> None:
    fitted = Recipe([Standardize(columns=["amount"])]).fit(make_frame(20))
    doc = json.loads(fitted.to_bytes())
    with pytest.raises(InvalidInput, match="format version 99"):
        FittedRecipe.from_bytes(json.dumps({**doc, "format_version": 99}).encode())
    with pytest.raises(InvalidInput, match="not a loopml fitted recipe"):
        FittedRecipe.from_bytes(b'{"format": "pickle"}')
    with pytest.raises(InvalidInput, match="not valid JSON"):
        FittedRecipe.from_bytes(b"\x80\x04K\x01.")


def test_out_of_fold_target_encoding_on_the_fitting_rows() -> None:
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    df = make_frame()
    fitted, train = Recipe([TargetEncode(columns=["city"])], target="y").fit_transform(df)
    again = fitted.transform(df)
    assert not np.allclose(train["city"], again["city"]), "fitting rows get out-of-fold values"
    x = df[["city"]].fillna("__missing__").to_numpy(dtype=object)
    ref = TargetEncoder(cv=StratifiedKFold(5, shuffle=True, random_state=0), target_type="binary")
    np.testing.assert_allclose(train["city"], ref.fit_transform(x, df["y"])[:, 0])
    assert fitted.transform_one({"city": "atlantis"})["city"] == pytest.approx(df["y"].mean())


def test_to_sklearn_pipeline_feeds_a_model() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    df = make_frame()
    fitted = Recipe.from_dict({"steps": [
        {"kind": "impute", "columns": ["amount", "score"]},
        {"kind": "one_hot", "columns": ["city", "plan"]},
        {"kind": "drop_columns", "columns": ["ts", "text", "birth", "when", "num_str", "y", "customer"]},
    ]}).fit(df)
    pipe = fitted.to_sklearn()
    x = pipe.transform(df)
    assert list(x.columns) == fitted.output_columns
    model = Pipeline([("recipe", pipe.steps[0][1]), ("lr", LogisticRegression(max_iter=300))])
    model.fit(df, df["y"])
    assert model.predict_proba(df.head(3)).shape == (3, 2)
