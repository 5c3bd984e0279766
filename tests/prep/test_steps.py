"""What individual steps learn and produce, against scikit-learn / pandas references."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml import InvalidInput
from loopml.prep import FittedRecipe, Recipe, RowDropped
from tests.prep._data import make_frame


def fit(steps: list[dict[str, Any]], df: pd.DataFrame, target: str | None = None) -> FittedRecipe:
    return Recipe.from_dict({"steps": steps, "target": target}).fit(df)


def test_scalers_match_scikit_learn() -> None:
    from sklearn.preprocessing import MinMaxScaler, PowerTransformer, RobustScaler, StandardScaler

    df = make_frame()
    x = df[["amount", "score"]].to_numpy()
    for kind, ref in (("standardize", StandardScaler()), ("minmax", MinMaxScaler()), ("robust", RobustScaler()),
                      ("yeo_johnson", PowerTransformer(standardize=False))):
        out = fit([{"kind": kind, "columns": ["amount", "score"]}], df).transform(df)
        np.testing.assert_allclose(out[["amount", "score"]].to_numpy(), ref.fit_transform(x), rtol=1e-9,
                                   err_msg=kind)
    bc = fit([{"kind": "box_cox", "columns": ["amount"]}], df).transform(df)
    ref = PowerTransformer(method="box-cox", standardize=False).fit_transform(df[["amount"]])
    np.testing.assert_allclose(bc["amount"].to_numpy(), ref[:, 0], rtol=1e-9)


def test_imputers_and_outliers() -> None:
    df = make_frame()
    f = fit([{"kind": "impute", "columns": ["amount"], "strategy": "median", "indicator": True},
             {"kind": "impute", "columns": ["city"], "strategy": "most_frequent"},
             {"kind": "winsorize", "columns": ["score"], "limits": [0.1, 0.9]},
             {"kind": "clip", "columns": ["visits"], "upper": 10}], df)
    report: dict[str, Any] = {}
    out = f.transform(df, report=report)
    assert out["amount"].isna().sum() == 0 and out["amount_missing"].sum() == df["amount"].isna().sum()
    assert (out.loc[df["amount"].isna(), "amount"] == df["amount"].median()).all()
    assert out["city"].isna().sum() == 0 and (out.loc[df["city"].isna(), "city"] == "paris").all()
    lo, hi = np.nanquantile(df["score"], [0.1, 0.9])
    assert out["score"].min() == pytest.approx(lo) and out["score"].max() == pytest.approx(hi)
    assert out["visits"].max() == 10
    assert report["1:impute"] == {"values_filled": int(df["amount"].isna().sum())}
    assert report["4:clip"]["values_clipped"] == int((df["visits"] > 10).sum())
    with pytest.raises(InvalidInput, match=r"step 1 \(impute\): column 'city' holds text .* needs numbers"):
        fit([{"kind": "impute", "columns": ["city"], "strategy": "mean"}], df)


def test_type_conversions_report_what_became_missing() -> None:
    df = make_frame()
    f = fit([{"kind": "coerce_numeric", "columns": ["num_str"]},
             {"kind": "parse_dates", "columns": ["when"]}], df)
    bad = int((df["num_str"] == "n/a").sum())
    assert f.fit_report == {"1:coerce_numeric": {"values_coerced_to_null": bad, "by_column": {"num_str": bad}}}
    new = df.head(4).assign(when=pd.array(["2024-02-30", "2024-02-03", None, "x"], dtype="str"))
    report: dict[str, Any] = {}
    out = f.transform(new, report=report)
    assert out["when"].dtype.kind == "M" and out["when"].isna().tolist() == [True, False, True, True]
    assert report["2:parse_dates"] == {"values_coerced_to_null": 2}
    with pytest.raises(InvalidInput, match=r"step 1 \(cast\): column 'num_str' has the value 'n/a', which is not a valid float"):
        fit([{"kind": "cast", "columns": ["num_str"], "to": "float"}], df)
    casted = fit([{"kind": "cast", "columns": ["visits"], "to": "bool"}], df).transform(df)
    assert casted["visits"].tolist() == (df["visits"] != 0).tolist()


def test_one_hot_categories_unknowns_and_rare_ones() -> None:
    df = pd.DataFrame({"c": pd.array([*list("aaaabbbccd"), None], dtype="str")})
    f = fit([{"kind": "one_hot", "columns": ["c"], "max_categories": 3, "handle_unknown": "infrequent"}], df)
    assert f.output_columns == ["c_a", "c_b", "c_infrequent"]
    assert f.transform_one({"c": "zzz"}) == {"c_a": 0.0, "c_b": 0.0, "c_infrequent": 1.0}
    plain = fit([{"kind": "one_hot", "columns": ["c"]}], df)
    assert plain.transform_one({"c": "zzz"}) == dict.fromkeys(plain.output_columns, 0.0)
    assert plain.transform_one({"c": None})["c___missing__"] == 1.0
    strict = fit([{"kind": "one_hot", "columns": ["c"], "handle_unknown": "error"}], df)
    with pytest.raises(InvalidInput, match=r"step 1 \(one_hot\): column 'c' has the category 'zzz', not seen"):
        strict.transform(pd.DataFrame({"c": ["a", "zzz"]}))
    with pytest.raises(InvalidInput, match="'zzz', not seen"):
        strict.transform_one({"c": "zzz"})


def test_ordinal_and_frequency() -> None:
    df = pd.DataFrame({"size": ["S", "L", "M", "M", None], "k": [1, 1, 2, 3, 3]})
    f = fit([{"kind": "ordinal", "columns": ["size"], "categories": {"size": ["S", "M", "L"]}},
             {"kind": "frequency", "columns": ["k"]}], df)
    out = f.transform(df)
    assert out["size"].fillna(-9).tolist() == [0.0, 2.0, 1.0, 1.0, -9]
    assert out["k"].tolist() == [0.4, 0.4, 0.2, 0.4, 0.4]
    assert f.transform_one({"size": "XL", "k": 7}) == {"size": -1.0, "k": 0.0}


def test_date_parts_age_and_bins() -> None:
    df = pd.DataFrame({
        "t": pd.to_datetime(["2024-07-04 13:30", "2024-07-06 08:00", "2024-12-31 23:59"]),
        "born": pd.to_datetime(["2000-07-04", "2000-07-07", "1990-01-01"]),
        "x": [1.0, 5.0, 9.0],
    })
    f = fit([{"kind": "date_parts", "columns": ["t"], "parts": ["dow", "month", "hour", "weekend", "holiday"]},
             {"kind": "age", "birth": "born", "at": "t", "groups": [0, 18, 30, 120]},
             {"kind": "bin", "columns": ["x"], "edges": [0, 4, 8, 10], "labels": ["lo", "mid", "hi"]}], df)
    out = f.transform(df)
    assert out["t_dow"].tolist() == [3.0, 5.0, 1.0] and out["t_weekend"].tolist() == [0.0, 1.0, 0.0]
    assert out["t_holiday"].tolist() == [1.0, 0.0, 0.0] and out["t_hour"].tolist() == [13.0, 8.0, 23.0]
    assert out["born_age"].tolist() == [24.0, 23.0, 34.0]  # a birthday counts on the day, not before
    assert out["born_age_group"].tolist() == ["18-30", "18-30", "30-120"]
    assert out["x"].tolist() == ["lo", "mid", "hi"]
    q = fit([{"kind": "bin", "columns": ["x"], "n_bins": 2}], make_frame().rename(columns={"amount": "x"}))
    assert q.transform_one({"x": -1e9})["x"] == 0.0 and q.transform_one({"x": 1e9})["x"] == 1.0


def test_expressions_and_row_filters() -> None:
    df = make_frame(60)
    f = fit([{"kind": "expression", "name": "per_visit", "expr": "amount / (visits + 1)"},
             {"kind": "expression", "name": "`odd name`", "expr": "`per_visit` * 2"},
             {"kind": "flag_rows", "where": "city in ('paris', 'lyon') and not isnull(amount)", "name": "big_city"},
             {"kind": "drop_rows", "where": "visits >= 18"}], df)
    report: dict[str, Any] = {}
    out = f.transform(df, report=report)
    keep = df["visits"] < 18
    np.testing.assert_allclose(out["per_visit"], (df["amount"] / (df["visits"] + 1))[keep])
    np.testing.assert_allclose(out["`odd name`"], out["per_visit"] * 2)
    assert report["4:drop_rows"] == {"rows_dropped": int((~keep).sum())}
    flag = (df["city"].isin(["paris", "lyon"]) & df["amount"].notna())[keep]
    assert out["big_city"].tolist() == flag.astype(float).tolist()
    with pytest.raises(RowDropped, match=r"recipe step 4 \(drop_rows\): the record matches 'visits >= 18'"):
        f.transform_one({**df.iloc[0].to_dict(), "visits": 19})


def test_text_features() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    df = make_frame()
    f = fit([{"kind": "tfidf", "column": "text", "max_features": 5}], df)
    ref = TfidfVectorizer(max_features=5).fit(df["text"])
    out = f.transform(df)
    np.testing.assert_allclose(out.filter(like="text_tfidf_").to_numpy(), ref.transform(df["text"]).toarray())
    assert [c.removeprefix("text_tfidf_") for c in out.filter(like="text_tfidf_").columns] == list(
        ref.get_feature_names_out())
    h = fit([{"kind": "hashing", "column": "text", "n_features": 4}], df).transform_one({"text": "brand new words"})
    assert sum(v * v for k, v in h.items() if k.startswith("text_hash_")) == pytest.approx(1.0)
    with pytest.raises(InvalidInput, match=r"step 1 \(tfidf\): column 'amount' holds numbers .* needs text"):
        fit([{"kind": "tfidf", "column": "amount"}], df)


def test_selection_is_part_of_the_fitted_state() -> None:
    r = np.random.default_rng(0)
    n = 400
    signal = r.normal(size=n)
    df = pd.DataFrame({
        "signal": signal, "copy": signal * 3 + 1, "noise": r.normal(size=n), "constant": np.ones(n),
        "y": (signal + r.normal(scale=0.3, size=n) > 0).astype(int),
    })
    var = fit([{"kind": "select_variance"}], df, target="y")
    assert var.steps[0].dropped_ == ["constant"] and "y" in var.output_columns
    corr = fit([{"kind": "select_correlation", "threshold": 0.99}], df, target="y")
    assert corr.steps[0].selected_ == ["signal", "noise", "constant"]
    for kind in ("select_mutual_info", "select_model", "select_rfe"):
        f = fit([{"kind": "select_variance"}, {"kind": kind, "columns": ["signal", "noise"], "k": 1}], df, target="y")
        assert f.steps[1].selected_ == ["signal"], kind
        assert "noise" not in f.transform_one(df.iloc[0].to_dict())
        assert "noise" not in f.output_columns
    with pytest.raises(InvalidInput, match=r"step 1 \(select_model\) needs a target column"):
        fit([{"kind": "select_model"}], df)


def test_group_agg_recency_in_days() -> None:
    df = pd.DataFrame({"c": [1, 1], "t": pd.to_datetime(["2024-01-01 00:00", "2024-01-03 12:00"]), "v": [1.0, 2.0]})
    out = fit([{"kind": "group_agg", "entity": "c", "time": "t", "columns": ["v"]}], df).transform(df)
    assert math.isnan(out["c_recency"].iloc[0]) and out["c_recency"].iloc[1] == 2.5
    assert out["c_v_mean"].fillna(-1).tolist() == [-1, 1.0]


def test_json_numbers_are_one_category_whether_int_or_float() -> None:
    df = pd.DataFrame({"k": [1, 2, 2], "f": [1.0, 2.5, 2.5]})
    f = fit([{"kind": "one_hot", "columns": ["k"]}, {"kind": "frequency", "columns": ["f"]}], df)
    assert f.transform_one({"k": 2.0, "f": 2.5}) == f.transform_one({"k": 2, "f": 2.5})
    assert f.transform_one({"k": 2.0, "f": 2.5})["k_2"] == 1.0
