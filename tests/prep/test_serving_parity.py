"""No train/serve skew: transform(df) and transform_one(record) agree exactly, for every step kind."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.prep import FittedRecipe, Recipe, RowDropped
from loopml.prep._base import STEPS
from tests.prep._data import CITIES, PLANS, START, WORDS, as_json, make_frame, records

NUM = ["amount", "score"]
CASES: dict[str, list[dict[str, Any]]] = {
    "impute_mean": [{"kind": "impute", "columns": NUM, "strategy": "mean", "indicator": True}],
    "impute_median": [{"kind": "impute", "columns": NUM, "strategy": "median"}],
    "impute_most_frequent": [{"kind": "impute", "columns": ["city", "visits"], "strategy": "most_frequent"}],
    "impute_constant": [{"kind": "impute", "columns": ["city"], "strategy": "constant", "fill_value": "none"}],
    "impute_ffill": [{"kind": "impute", "columns": ["amount", "city"], "strategy": "ffill",
                      "time": "ts", "entity": "customer"}],
    "impute_bfill": [{"kind": "impute", "columns": ["amount"], "strategy": "bfill", "time": "ts"}],
    "impute_interpolate": [{"kind": "impute", "columns": ["score"], "strategy": "interpolate",
                            "time": "ts", "entity": "customer"}],
    "clip": [{"kind": "clip", "columns": NUM, "lower": 0.0, "upper": 50.0}],
    "winsorize": [{"kind": "winsorize", "columns": NUM, "limits": [0.05, 0.95]}],
    "cast": [{"kind": "cast", "columns": ["visits"], "to": "str"},
             {"kind": "cast", "columns": ["score"], "to": "float"}],
    "coerce_numeric": [{"kind": "coerce_numeric", "columns": ["num_str"]}],
    "parse_dates": [{"kind": "parse_dates", "columns": ["when"]}],
    "standardize": [{"kind": "standardize", "columns": [*NUM, "visits"]}],
    "minmax": [{"kind": "minmax", "columns": NUM, "clip": True}],
    "robust": [{"kind": "robust", "columns": NUM}],
    "log": [{"kind": "log", "columns": ["amount", "visits"]}],
    "box_cox": [{"kind": "box_cox", "columns": ["amount"], "standardize": True}],
    "yeo_johnson": [{"kind": "yeo_johnson", "columns": [*NUM, "visits"]}],
    "one_hot": [{"kind": "one_hot", "columns": ["city", "plan"], "max_categories": 3,
                 "handle_unknown": "infrequent"}],
    "one_hot_ignore": [{"kind": "one_hot", "columns": ["city", "visits"], "keep_original": True}],
    "ordinal": [{"kind": "ordinal", "columns": ["city", "plan"], "categories": {"plan": PLANS}}],
    "frequency": [{"kind": "frequency", "columns": ["city", "customer"]}],
    "target_encode": [{"kind": "target_encode", "columns": ["city", "customer"]}],
    "date_parts": [{"kind": "date_parts", "columns": ["ts", "birth"],
                    "parts": ["year", "quarter", "month", "day", "dow", "dayofyear", "hour", "minute",
                              "weekend", "holiday"]}],
    "age": [{"kind": "age", "birth": "birth", "at": "ts", "groups": [0, 18, 30, 50, 120]}],
    "bin": [{"kind": "bin", "columns": NUM, "n_bins": 4}],
    "bin_labels": [{"kind": "bin", "columns": ["visits"], "edges": [0, 5, 10, 20],
                    "labels": ["low", "mid", "high"]}],
    "expression": [{"kind": "expression", "name": "ratio", "expr": "amount / (visits + 1)"},
                   {"kind": "expression", "name": "mix",
                    "expr": "log1p(abs(score)) * 2 if city in ('paris', 'lyon') else where(isnull(amount), -1, sqrt(amount))"},
                   {"kind": "expression", "name": "days", "expr": "ts - birth"},
                   {"kind": "expression", "name": "label", "expr": "'big' if amount > 30 else 'small'"}],
    "flag_rows": [{"kind": "flag_rows", "where": "amount > 40 or isnull(score)", "name": "odd"}],
    "drop_rows": [{"kind": "drop_rows", "where": "visits > 15 and city == 'paris'"}],
    "drop_columns": [{"kind": "drop_columns", "columns": ["text", "when"]}],
    "drop_duplicates": [{"kind": "drop_duplicates", "columns": ["city", "plan"]}],
    "tfidf": [{"kind": "tfidf", "column": "text", "max_features": 6, "ngram_range": [1, 2]}],
    "tfidf_sublinear": [{"kind": "tfidf", "column": "text", "sublinear_tf": True, "norm": "l1"}],
    "hashing": [{"kind": "hashing", "column": "text", "n_features": 8}],
    "group_agg": [{"kind": "group_agg", "entity": "customer", "time": "ts", "columns": NUM,
                   "aggs": ["count", "sum", "mean", "min", "max", "std", "last"]}],
    "lag": [{"kind": "lag", "entity": "customer", "time": "ts", "columns": NUM, "lags": [1, 3]}],
    "rolling": [{"kind": "rolling", "entity": "customer", "time": "ts", "columns": ["amount"], "window": 3,
                 "stats": ["mean", "std", "min", "max", "sum", "count"]}],
    "diff": [{"kind": "diff", "time": "ts", "columns": ["score"], "periods": 2}],
    "select_variance": [{"kind": "impute", "columns": NUM},
                        {"kind": "select_variance", "threshold": 5.0}],
    "select_correlation": [{"kind": "impute", "columns": NUM},
                           {"kind": "expression", "name": "score2", "expr": "score * 2 + 1"},
                           {"kind": "select_correlation", "threshold": 0.9}],
    "select_mutual_info": [{"kind": "impute", "columns": NUM},
                           {"kind": "select_mutual_info", "columns": [*NUM, "visits"], "k": 2}],
    "select_model": [{"kind": "impute", "columns": NUM},
                     {"kind": "select_model", "columns": [*NUM, "visits"], "k": 1, "n_estimators": 10}],
    "select_rfe": [{"kind": "impute", "columns": NUM},
                   {"kind": "standardize", "columns": [*NUM, "visits"]},
                   {"kind": "select_rfe", "columns": [*NUM, "visits"], "k": 2}],
}


def test_every_step_kind_has_a_parity_case() -> None:
    covered = {s["kind"] for steps in CASES.values() for s in steps}
    assert covered == set(STEPS)


@cache
def fitted(case: str) -> FittedRecipe:
    return Recipe.from_dict({"target": "y", "steps": CASES[case]}).fit(make_frame())


# -- new rows, some unlike anything in the fitting data --------------------------------------------
def _opt(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), s)


ROW = st.fixed_dictionaries({
    "customer": st.integers(0, 20),
    # before and after the fitting data's last time (the cutoff)
    "ts": st.integers(-10 * 86400, 120 * 86400).map(lambda s: START + pd.Timedelta(seconds=s)),
    "amount": _opt(st.floats(0.01, 5000, allow_nan=False)),
    "visits": st.integers(0, 40),
    "score": _opt(st.floats(-10, 10, allow_nan=False)),
    "city": _opt(st.sampled_from([*CITIES, "rome"])),
    "plan": st.sampled_from([*PLANS, "free"]),
    "text": st.lists(st.sampled_from([*WORDS, "unseen", "Fast"]), max_size=5).map(" ".join),
    "birth": st.integers(0, 60 * 365).map(lambda d: pd.Timestamp("1950-01-01") + pd.Timedelta(days=d)),
    "when": st.one_of(st.integers(0, 400).map(lambda d: (START + pd.Timedelta(days=d)).strftime("%Y-%m-%d")),
                      st.sampled_from(["soon", "2024-13-40"])),
    "num_str": _opt(st.one_of(st.floats(-100, 100, allow_nan=False).map(lambda v: f"{v:.3f}"),
                              st.sampled_from(["n/a", "", " 7 "]))),
    "y": st.integers(0, 1),
})


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """New rows with the fitting data's column types."""
    ref = make_frame(5)
    df = pd.DataFrame(rows, columns=list(ref.columns))
    for c in ref.columns:
        df[c] = df[c].astype(ref[c].dtype) if ref[c].dtype.kind in "iuM" else pd.array(df[c], dtype=ref[c].dtype)
    return df


def check(f: FittedRecipe, df: pd.DataFrame) -> None:
    recs = records(df)
    if f.streamable:
        expected: list[Any] = records(f.transform(df).reset_index(drop=True))
        kept = [not _dropped(f, r) for r in recs]
        assert sum(kept) == len(expected)
        expected_iter = iter(expected)
        expected = [next(expected_iter) if k else "dropped" for k in kept]
    else:  # history steps: one record is the one-row frame
        expected = [(records(f.transform(df.iloc[[i]])) or ["dropped"])[0] for i in range(len(df))]
    for rec, want in zip(recs, expected, strict=True):
        for variant, same in ((rec, dict), (as_json(rec), as_json)):
            if want == "dropped":
                with pytest.raises(RowDropped):
                    f.transform_one(variant)
                continue
            # a JSON record keeps untouched dates as text: compare in JSON form
            got, exp = same({k: _n(v) for k, v in f.transform_one(variant).items()}), same(want)
            assert got == exp, _diff(got, exp)
            assert list(got) == list(exp), "same columns in the same order"


def _dropped(f: FittedRecipe, rec: dict[str, Any]) -> bool:
    try:
        f.transform_one(rec)
    except RowDropped:
        return True
    return False


def _n(v: Any) -> Any:
    from tests.prep._data import norm

    return norm(v)


def _diff(got: dict[str, Any], want: dict[str, Any]) -> str:
    keys = sorted(set(got) | set(want))
    return "; ".join(f"{k}: one={got.get(k, '<absent>')!r} batch={want.get(k, '<absent>')!r}"
                     for k in keys if got.get(k, "<absent>") != want.get(k, "<absent>"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_fitting_rows_agree(case: str) -> None:
    check(fitted(case), make_frame(40, seed=7))


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=5))
def test_new_rows_agree(case: str, rows: list[dict[str, Any]]) -> None:
    check(fitted(case), frame_of(rows))


def test_a_long_recipe_agrees_on_seeded_rows() -> None:
    steps = [s for c in ("impute_median", "winsorize", "log", "standardize", "frequency", "target_encode",
                         "date_parts", "age", "bin", "expression", "tfidf")
             for s in CASES[c]]
    steps.insert(4, {"kind": "one_hot", "columns": ["plan"]})
    f = Recipe.from_dict({"target": "y", "steps": steps}).fit(make_frame())
    assert f.streamable
    check(f, make_frame(120, seed=11))
    assert np.isfinite(f.transform(make_frame(50, seed=3))["amount"]).all()


@pytest.mark.parametrize("case", sorted(CASES))
def test_empty_frames_keep_the_output_columns(case: str) -> None:
    f = fitted(case)
    out = f.transform(make_frame(5).iloc[:0])
    assert len(out) == 0 and list(out.columns) == f.output_columns
