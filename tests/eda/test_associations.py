from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association, crosstab

from loopml.eda import correlation_ratio, cramers_v
from loopml.eda._associations import pearson_matrix, rank_columns, spearman_matrix


def _with_gaps(seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    base = r.normal(size=500)
    df = pd.DataFrame({
        "p": base,
        "q": base * 2 + r.normal(size=500),
        "r": r.integers(0, 6, 500).astype(float),  # ties
        "s": np.exp(base) + r.normal(size=500) * 0.1,
    })
    for col, frac in (("p", 0.1), ("q", 0.05), ("s", 0.2)):
        df.loc[r.random(500) < frac, col] = np.nan
    return df


def test_pearson_is_pairwise_complete_like_pandas() -> None:
    df = _with_gaps()
    np.testing.assert_allclose(pearson_matrix(df.to_numpy()), df.corr().to_numpy(), atol=1e-10)


def test_spearman_matches_pandas_without_missing_values() -> None:
    df = _with_gaps().fillna(0.5)
    np.testing.assert_allclose(spearman_matrix(df.to_numpy()), df.corr("spearman").to_numpy(), atol=1e-10)


def test_average_ranks_match_scipy() -> None:
    from scipy.stats import rankdata

    x = _with_gaps().to_numpy()
    np.testing.assert_allclose(rank_columns(x), rankdata(x, axis=0, nan_policy="omit"), equal_nan=True)


def test_cramers_v_matches_scipy_and_is_one_for_a_perfect_pair() -> None:
    r = np.random.default_rng(3)
    x = r.choice(["a", "b", "c"], 400)
    y = np.where(r.random(400) < 0.7, x, r.choice(["a", "b", "c", "d"], 400))
    expected = association(crosstab(x, y).count, method="cramer", correction=False)
    assert cramers_v(x, y) == pytest.approx(expected, abs=1e-12)
    assert cramers_v(x, pd.Series(x).map({"a": 1, "b": 2, "c": 3})) == pytest.approx(1.0)
    assert cramers_v(["a", "a"], ["x", "x"]) is None  # one category: undefined
    assert cramers_v(["a", None, "b", "b"], ["x", "y", "z", "z"]) == pytest.approx(1.0)


def test_correlation_ratio_against_the_definition() -> None:
    r = np.random.default_rng(4)
    cats = r.choice(["u", "v", "w"], 300)
    vals = r.normal(size=300) + (cats == "w") * 2.0
    mean = vals.mean()
    between = sum((cats == c).sum() * (vals[cats == c].mean() - mean) ** 2 for c in "uvw")
    expected = np.sqrt(between / ((vals - mean) ** 2).sum())
    assert correlation_ratio(cats, vals) == pytest.approx(expected, rel=1e-12)
    assert correlation_ratio(["a", "a", "b"], [1.0, 1.0, 1.0]) is None  # no variance
    assert correlation_ratio(["a", "b", "a", "b"], [1.0, 5.0, 1.0, 5.0]) == pytest.approx(1.0)
