"""Point-in-time steps: brute-force references, no row sees its own future, the fitted history."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml import InvalidInput
from loopml.prep import Recipe
from loopml.prep.steps import Diff, GroupAgg, Impute, Lag, Rolling

AGGS = ["count", "sum", "mean", "min", "max", "std", "last"]


def events(n: int = 300, seed: int = 0, start: str = "2024-01-01", entities: int = 12) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    # coarse times (whole hours in ~5 days) so many rows of one entity share a time
    t = pd.Timestamp(start) + pd.to_timedelta(r.integers(0, 120, n), unit="h")
    amount = r.normal(100, 30, n).round(2)
    amount[r.random(n) < 0.15] = np.nan
    return pd.DataFrame({"cust": r.integers(0, entities, n), "t": t, "amount": amount})


def brute_agg(hist: pd.DataFrame, t: pd.Timestamp) -> dict[str, float]:
    """Aggregates of the rows of ``hist`` (one entity) strictly before ``t``."""
    before = hist[hist["t"] < t].sort_values("t", kind="stable")
    x = before["amount"].dropna()
    out = {
        "count": float(len(before)),
        "sum": float(x.sum()),
        "mean": float(x.mean()) if len(x) else math.nan,
        "min": float(x.min()) if len(x) else math.nan,
        "max": float(x.max()) if len(x) else math.nan,
        "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
        "last": float(x.iloc[-1]) if len(x) else math.nan,
        "recency": (t - before["t"].iloc[-1]) / pd.Timedelta(days=1) if len(before) else math.nan,
    }
    return out


def agg_names(prefix: str = "cust_") -> dict[str, str]:
    return {a: (f"{prefix}count" if a == "count" else f"{prefix}amount_{a}") for a in AGGS} | {
        "recency": f"{prefix}recency"}


def assert_close(got: float, want: float, what: str) -> None:
    if math.isnan(want):
        assert math.isnan(got), f"{what}: got {got}, want nan"
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), f"{what}: got {got}, want {want}"


def test_group_agg_matches_brute_force_with_ties() -> None:
    df = events()
    step = GroupAgg(entity="cust", time="t", columns=["amount"], aggs=AGGS)
    out = Recipe([step]).fit(df).transform(df)
    names = agg_names()
    for i in range(len(df)):
        row = df.iloc[i]
        want = brute_agg(df[df["cust"] == row["cust"]], row["t"])
        for a, col in names.items():
            assert_close(out[col].iloc[i], want[a], f"row {i} {a}")


def test_no_row_sees_its_own_future() -> None:
    """Rewrite every value at or after a time T: features of rows at or before T must not move."""
    df = events(seed=1)
    recipe = Recipe([
        GroupAgg(entity="cust", time="t", columns=["amount"], aggs=AGGS),
        Lag(entity="cust", time="t", columns=["amount"], lags=[1, 2]),
        Rolling(entity="cust", time="t", columns=["amount"], window=3, stats=["mean", "max"],
                include_current=False),
        Impute(columns=["amount"], strategy="ffill", time="t", entity="cust", indicator=True),
    ])
    fitted = recipe.fit(df)
    base = fitted.transform(df)
    features = [c for c in base.columns if c not in df.columns and c != "amount_missing"]
    r = np.random.default_rng(5)
    for cut in np.sort(df["t"].unique())[::15]:
        future = (df["t"] >= cut).to_numpy()
        changed = df.copy()
        changed.loc[future, "amount"] = r.normal(-500, 300, int(future.sum()))
        after = fitted.transform(changed)
        # aggregates use strictly earlier times: rows *at* T may not see rows at T either
        at_or_before = (df["t"] <= cut).to_numpy()
        agg_cols = [c for c in features if c.startswith("cust_")]
        pd.testing.assert_frame_equal(base.loc[at_or_before, agg_cols], after.loc[at_or_before, agg_cols])
        # lags and past-only windows step back by rows: every row strictly before T is untouched
        strictly_before = (df["t"] < cut).to_numpy()
        pd.testing.assert_frame_equal(base.loc[strictly_before, features], after.loc[strictly_before, features])
        pd.testing.assert_series_equal(base.loc[strictly_before, "amount"], after.loc[strictly_before, "amount"])


def test_rows_after_the_cutoff_see_the_fitted_history_plus_their_batch() -> None:
    train = events(seed=2)
    new = events(n=80, seed=3, start="2024-01-07")  # all later than the training data
    step = GroupAgg(entity="cust", time="t", columns=["amount"], aggs=AGGS)
    fitted = Recipe([step]).fit(train)
    out = fitted.transform(new)
    both = pd.concat([train, new], ignore_index=True)
    names = agg_names()
    for i in range(len(new)):
        row = new.iloc[i]
        want = brute_agg(both[both["cust"] == row["cust"]], row["t"])
        for a, col in names.items():
            assert_close(out[col].iloc[i], want[a], f"new row {i} {a}")
    # one record at serving time sees the training history only
    rec = fitted.transform_one({"cust": 3, "t": "2024-02-01T00:00:00", "amount": 5.0})
    want = brute_agg(train[train["cust"] == 3], pd.Timestamp("2024-02-01"))
    for a, col in names.items():
        assert_close(rec[col], want[a], f"record {a}")
    # ... and nothing for a new entity
    rec = fitted.transform_one({"cust": 999, "t": "2024-02-01", "amount": 5.0})
    assert rec["cust_count"] == 0.0 and math.isnan(rec["cust_amount_mean"]) and math.isnan(rec["cust_recency"])


def test_transforming_the_fitting_data_again_does_not_leak_the_history() -> None:
    df = events(seed=4)
    fitted = Recipe([GroupAgg(entity="cust", time="t", columns=["amount"])]).fit(df)
    first = fitted.transform(df)
    earliest = df.groupby("cust")["t"].transform("min") == df["t"]
    assert (first.loc[earliest, "cust_count"] == 0).all()
    # without a history, rows only see their own batch
    no_hist = Recipe([GroupAgg(entity="cust", time="t", columns=["amount"], keep_history=False)]).fit(df)
    assert no_hist.transform_one({"cust": 1, "t": "2030-01-01", "amount": 1.0})["cust_count"] == 0.0


def brute_lags(df: pd.DataFrame, k: int, carry: pd.DataFrame | None = None) -> np.ndarray:
    out = np.full(len(df), np.nan)
    for _, g in df.assign(_pos=np.arange(len(df))).sort_values(["cust", "t", "_pos"], kind="stable").groupby("cust"):
        values = list(g["amount"])
        prior = [] if carry is None else list(
            carry[carry["cust"] == g["cust"].iloc[0]].assign(_p=np.arange((carry["cust"] == g["cust"].iloc[0]).sum()))
            .sort_values(["t", "_p"], kind="stable")["amount"])
        seq = prior + values
        for j, pos in enumerate(g["_pos"]):
            idx = len(prior) + j - k
            out[pos] = seq[idx] if idx >= 0 else np.nan
    return out


def test_lag_diff_rolling_match_brute_force_and_continue_from_the_history() -> None:
    train, new = events(seed=6), events(n=60, seed=7, start="2024-01-08")
    recipe = Recipe([
        Lag(entity="cust", time="t", columns=["amount"], lags=[1, 2, 4]),
        Diff(entity="cust", time="t", columns=["amount"], periods=1),
        Rolling(entity="cust", time="t", columns=["amount"], window=3, stats=["mean", "min", "count"]),
    ])
    fitted = recipe.fit(train)
    for data, carry in ((train, None), (new, train)):
        out = fitted.transform(data)
        lags = {k: brute_lags(data, k, carry) for k in (1, 2, 4)}
        for k in (1, 2, 4):
            np.testing.assert_array_equal(out[f"amount_lag{k}"].to_numpy(), lags[k])
        np.testing.assert_array_equal(out["amount_diff1"].to_numpy(), data["amount"].to_numpy() - lags[1])
        window = np.column_stack([lags[2], lags[1], data["amount"].to_numpy()])
        with warnings.catch_warnings():  # rows whose window is all missing
            warnings.simplefilter("ignore", RuntimeWarning)
            np.testing.assert_allclose(out["amount_roll3_mean"], np.nanmean(window, axis=1))
            np.testing.assert_allclose(out["amount_roll3_min"], np.nanmin(window, axis=1))
        np.testing.assert_array_equal(out["amount_roll3_count"], (~np.isnan(window)).sum(axis=1).astype(float))


def test_grouped_ffill_orders_by_time_and_carries_the_last_value_forward() -> None:
    df = pd.DataFrame({
        "cust": [1, 1, 2, 1, 2],
        "t": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02"]),
        "v": [np.nan, 5.0, 7.0, np.nan, np.nan],
        "city": pd.array([None, "a", "b", None, None], dtype="str"),
    })
    fitted = Recipe([Impute(columns=["v", "city"], strategy="ffill", time="t", entity="cust")]).fit(df)
    out = fitted.transform(df)
    assert out["v"].tolist() == [5.0, 5.0, 7.0, 5.0, 7.0]
    assert out["city"].tolist() == ["a", "a", "b", "a", "b"]
    # after the fitted data, a record with no value gets its entity's last one
    assert fitted.transform_one({"cust": 2, "t": "2024-02-01", "v": None, "city": None}) == {
        "cust": 2, "t": "2024-02-01", "v": 7.0, "city": "b"}
    bfill = Recipe([Impute(columns=["v"], strategy="bfill", time="t", entity="cust")]).fit(df)
    assert bfill.transform(df)["v"].fillna(-1).tolist() == [-1, 5.0, 7.0, -1, -1]
    interp = Recipe([Impute(columns=["v"], strategy="interpolate", time="t")]).fit(
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04"]), "v": [1.0, None, 4.0]}))
    assert interp.transform(pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04"]),
                                          "v": [1.0, None, 4.0]}))["v"].tolist() == [1.0, 2.0, 4.0]


def test_time_problems_are_clear_errors() -> None:
    df = events(n=20)
    holes = df.assign(t=df["t"].where(df.index != 3))
    with pytest.raises(InvalidInput, match=r"step 1 \(group_agg\): column 't' has 1 missing value"):
        Recipe([GroupAgg(entity="cust", time="t")]).fit(holes)
    with pytest.raises(InvalidInput, match=r"column 't' holds text .* add a parse_dates step"):
        Recipe([Lag(entity="cust", time="t", columns=["amount"])]).fit(df.assign(t=df["t"].astype(str)))
    fitted = Recipe([GroupAgg(entity="cust", time="t")]).fit(df)
    with pytest.raises(InvalidInput, match=r"step 1 \(group_agg\): column 't' is missing"):
        fitted.transform_one({"cust": 1, "t": None})
    with pytest.raises(InvalidInput, match="needs 'time'"):
        Recipe.from_dict({"steps": [{"kind": "impute", "columns": ["amount"], "strategy": "ffill"}]})


def test_numeric_time_works_too() -> None:
    df = pd.DataFrame({"e": [1, 1, 1, 2], "step": [1.0, 2.0, 3.0, 1.0], "x": [1.0, 2.0, 4.0, 9.0]})
    fitted = Recipe([GroupAgg(entity="e", time="step", columns=["x"], aggs=["count", "mean"])]).fit(df)
    out = fitted.transform(df)
    assert out["e_count"].tolist() == [0.0, 1.0, 2.0, 0.0]
    assert out["e_recency"].tolist()[1:3] == [1.0, 1.0]
    rec: dict[str, Any] = fitted.transform_one({"e": 1, "step": 10, "x": 0.0})
    assert rec["e_count"] == 3.0 and rec["e_x_mean"] == pytest.approx(7 / 3) and rec["e_recency"] == 7.0
