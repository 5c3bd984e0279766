"""statistics.json: types, counts, numeric summaries, the quantile sketch, categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.monitor.statistics import (
    GRID_SIZE,
    MAX_CATEGORIES,
    category_counts,
    compute_statistics,
    feature_statistics,
    infer_type,
    sketch_of,
)


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, 3], "Integral"),
    ([True, False], "Integral"),
    ([1.0, 2.0, np.nan], "Integral"),
    ([1.5, 2.0], "Fractional"),
    (["a", "b", None], "String"),
    (["1", "2", "3"], "Integral"),
    (["1.5", "2"], "Fractional"),
    (["1", "x"], "String"),
    ([None, None], "Unknown"),
    (pd.to_datetime(["2024-01-01", "2024-01-02"]), "Unknown"),
    ([[1, 2], [3]], "Unknown"),
])
def test_infer_type(values: object, expected: str) -> None:
    assert infer_type(pd.Series(values)) == expected


def test_numeric_statistics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.lognormal(1.0, 0.6, 5000)
    x[::50] = np.nan
    f = feature_statistics("x", pd.Series(x))
    num = f["numerical_statistics"]
    present = x[~np.isnan(x)]
    assert num["common"] == {"num_present": len(present), "num_missing": 100}
    assert num["mean"] == pytest.approx(present.mean()) and num["sum"] == pytest.approx(present.sum())
    assert num["std_dev"] == pytest.approx(present.std()) and num["min"] == present.min() and num["max"] == present.max()
    q, n = sketch_of(f)  # type: ignore[misc]
    assert n == len(present) and len(q) == GRID_SIZE
    assert np.allclose(q, np.quantile(present, np.linspace(0, 1, GRID_SIZE)))
    buckets = num["distribution"]["histogram"]["buckets"]
    assert sum(b["count"] for b in buckets) == len(present)
    assert buckets[0]["lower_bound"] == present.min() and buckets[-1]["upper_bound"] == present.max()
    assert f["type_counts"] == {"integral": 0, "fractional": len(present), "string": 0}


def test_string_statistics_and_truncation() -> None:
    s = pd.Series(["b", "a", "b", None, "c", "b"])
    st = feature_statistics("s", s)["string_statistics"]
    assert st["common"] == {"num_present": 5, "num_missing": 1} and st["distinct_count"] == 3
    assert st["distribution"]["categorical"]["buckets"][0] == {"value": "b", "count": 3.0}
    many = pd.Series([f"id{i}" for i in range(MAX_CATEGORIES + 10)] + ["id0"])
    f = feature_statistics("ids", many)
    counts = category_counts(f)
    assert counts is not None and len(counts) == MAX_CATEGORIES + 1 and counts["__other__"] == 10


def test_forced_types_describe_current_data_like_the_baseline() -> None:
    cur = pd.DataFrame({"n": ["1", "2", "oops", None], "s": [1, 2, 2, 3]})
    st = compute_statistics(cur, types={"n": "Integral", "s": "String"})
    n, s = st["features"]
    assert n["inferred_type"] == "Integral" and n["type_counts"] == {"integral": 2, "fractional": 0, "string": 1}
    assert n["numerical_statistics"]["mean"] == 1.5  # the text value is not a number
    assert s["inferred_type"] == "String" and category_counts(s) == {"2": 2.0, "1": 1.0, "3": 1.0}


def test_all_missing_and_empty() -> None:
    st = compute_statistics(pd.DataFrame({"x": [np.nan, np.nan]}), types={"x": "Fractional"})
    f = st["features"][0]
    assert f["numerical_statistics"]["common"] == {"num_present": 0, "num_missing": 2} and sketch_of(f) is None
    assert compute_statistics(pd.DataFrame({"x": []}))["dataset"]["item_count"] == 0
