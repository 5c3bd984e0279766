from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml import InvalidInput
from loopml.eda import Profile, ProfileConfig, profile


@pytest.fixture(scope="module")
def prof(frame: pd.DataFrame) -> Profile:
    return profile(frame, target="label")


def test_counts_missing_distinct_are_exact(frame: pd.DataFrame, prof: Profile) -> None:
    assert prof.rows == len(frame)
    for name in frame.columns:
        c = prof.column(name)
        s = frame[name]
        assert c["count"] == s.notna().sum(), name
        assert c["missing"] == s.isna().sum(), name
        assert c["distinct"] == s.nunique(), name
        assert c["missing_pct"] == pytest.approx(100 * s.isna().mean(), abs=1e-3)
    assert prof.data["overview"]["missing_cells"] == int(frame.isna().sum().sum())


def test_moments_quantiles_zeros_match_pandas(frame: pd.DataFrame, prof: Profile) -> None:
    for name in ("x", "skewed", "zeros", "count"):
        st, s = prof.column(name)["stats"], frame[name].dropna()
        assert st["mean"] == pytest.approx(s.mean(), rel=1e-12)
        assert st["std"] == pytest.approx(s.std(), rel=1e-9)
        assert st["skewness"] == pytest.approx(s.skew(), rel=1e-9)
        assert st["kurtosis"] == pytest.approx(s.kurt(), rel=1e-9)
        assert (st["min"], st["max"]) == (s.min(), s.max())
        for key, q in (("p05", 0.05), ("q1", 0.25), ("median", 0.5), ("q3", 0.75), ("p95", 0.95)):
            assert st[key] == pytest.approx(s.quantile(q), rel=1e-12), (name, key)
        assert st["zeros"] == (s == 0).sum()
        assert st["negatives"] == (s < 0).sum()
    hist = prof.column("x")["histogram"]
    assert sum(hist["counts"]) == frame["x"].notna().sum()
    expected = pd.cut(frame["x"].dropna(), hist["edges"], right=True, include_lowest=True).value_counts(sort=False)
    assert hist["counts"] == expected.tolist()
    count_hist = prof.column("count")["histogram"]  # small integer range: one bin per value
    assert len(count_hist["counts"]) == frame["count"].max() - frame["count"].min() + 1
    assert count_hist["counts"][0] == (frame["count"] == frame["count"].min()).sum()


def test_top_values_are_exact_and_ordered(frame: pd.DataFrame, prof: Profile) -> None:
    top = prof.column("color")["top"]
    vc = frame["color"].value_counts()
    assert [(t["value"], t["count"]) for t in top] == list(zip(vc.index, vc.tolist(), strict=True))
    flag = {t["value"]: t["count"] for t in prof.column("flag")["top"]}
    assert flag == {True: frame["flag"].sum(), False: (~frame["flag"]).sum()}


def test_iqr_and_zscore_outliers(frame: pd.DataFrame, prof: Profile) -> None:
    s = frame["x"].dropna()
    q1, q3 = s.quantile(0.25), s.quantile(0.75)
    lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    z = (s - s.mean()).abs() > 3 * s.std()
    [o] = [o for o in prof.data["outliers"]["columns"] if o["column"] == "x"]
    assert o["iqr_count"] == ((s < lo) | (s > hi)).sum()
    assert o["z_count"] == z.sum()
    assert (o["low"], o["high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert o["examples"] == [1, 0, 2]  # the planted -30, 40, 35: farthest from the median first
    assert prof.data["rows"]["1"]["x"] == -30.0
    listed = {o["column"] for o in prof.data["outliers"]["columns"]}
    assert not {"row_id", "const", "label"} & listed  # keys, constants and flags have no outliers
    forest = prof.data["outliers"]["isolation_forest"]
    assert forest["rows_scored"] == len(frame)
    assert {t["row"] for t in forest["top"][:3]} & {0, 1, 2}  # planted rows are among the strangest
    assert "label" not in forest["features"]


def test_constant_id_and_co_missing_are_flagged(frame: pd.DataFrame, prof: Profile) -> None:
    assert "constant" in prof.column("const")["flags"]
    assert "id_like" in prof.column("row_id")["flags"]
    assert "skewed" in prof.column("skewed")["flags"]
    assert "many_zeros" in prof.column("zeros")["flags"]
    kinds = {(w["kind"], tuple(w["columns"])) for w in prof.warnings}
    assert ("constant", ("const",)) in kinds and ("id_like", ("row_id",)) in kinds
    assert ("co_missing", ("a", "b")) in kinds
    m = prof.data["missing"]
    [pair] = [p for p in m["pairs"] if {p["a"], p["b"]} == {"a", "b"}]
    assert pair["jaccard"] == 1.0 and pair["phi"] == pytest.approx(1.0)
    assert m["patterns"][0]["columns"] == ["a", "b"]  # the most common pattern: a and b together
    with_a = [p for p in m["patterns"] if "a" in p["columns"]]
    assert all("b" in p["columns"] for p in with_a)
    assert sum(p["count"] for p in with_a) == prof.column("a")["missing"]
    assert m["rows_with_missing"] == frame.isna().any(axis=1).sum()
    assert prof.warnings[0]["severity"] == "warning"  # warnings come before notes
    assert not any(w["severity"] == "warning" and w["kind"] == "skewed" for w in prof.warnings)


def test_correlations(frame: pd.DataFrame, prof: Profile) -> None:
    cr = prof.data["correlations"]
    assert "row_id" not in cr["numeric_columns"] and "const" not in cr["numeric_columns"]
    cats = cr["categorical_columns"]
    i, j = cats.index("color"), cats.index("shade")
    assert cr["cramers_v"][i][j] == pytest.approx(1.0)  # shade is a relabelling of color
    nums = cr["numeric_columns"]
    expected = frame[nums].corr().to_numpy()
    np.testing.assert_allclose(np.array(cr["pearson"], dtype=float), expected, atol=1e-4)
    top = cr["top_pairs"][0]
    assert {top["a"], top["b"]} in ({"color", "shade"}, {"x", "amount"})
    kinds = {(w["kind"], tuple(sorted(w["columns"]))) for w in prof.warnings}
    assert ("high_correlation", ("color", "shade")) in kinds


def test_time_coverage(frame: pd.DataFrame, prof: Profile) -> None:
    c = prof.column("when")
    assert c["kind"] == "datetime"
    assert c["stats"]["min"] == frame["when"].min().isoformat()
    assert c["time"]["grain"] == "day" and sum(c["time"]["counts"]) == len(frame)
    days = frame["when"].dt.floor("D").value_counts().sort_index()
    assert c["time"]["counts"] == days.tolist()


def test_classification_target(frame: pd.DataFrame, prof: Profile) -> None:
    t = prof.target
    assert t is not None and t["task"] == "classification"
    vc = frame["label"].value_counts()
    assert {k["value"]: k["count"] for k in t["classes"]} == vc.to_dict()
    assert t["imbalance_ratio"] == pytest.approx(vc.max() / vc.min(), rel=1e-3)
    assoc = t["associations"]
    assert assoc[0]["feature"] in ("x", "amount") and assoc[0]["method"] == "correlation_ratio"
    assert all(a["feature"] != "label" for a in assoc)
    assert [p["type"] for p in t["plots"]][:2] == ["box", "box"]
    assert len(t["plots"]) == ProfileConfig().target_plots


def test_regression_target(frame: pd.DataFrame) -> None:
    p = profile(frame, target="amount")
    t = p.target
    assert t is not None and t["task"] == "regression"
    [x] = [a for a in t["associations"] if a["feature"] == "x"]
    assert x["value"] == pytest.approx(frame["x"].corr(frame["amount"]), abs=1e-4)
    assert t["associations"][0]["feature"] == "x"
    scatter = next(pl for pl in t["plots"] if pl["type"] == "scatter")
    assert len(scatter["x"]) == len(scatter["y"]) == ProfileConfig().scatter_points
    assert sum(t["histogram"]["counts"]) == len(frame)
    assert profile(frame, target="label", task="regression").target["task"] == "regression"  # type: ignore[index]


def test_sampling_is_deterministic_and_keeps_counts_exact(frame: pd.DataFrame) -> None:
    one = profile(frame, target="label", sample_rows=500, seed=1)
    again = profile(frame, target="label", sample_rows=500, seed=1)
    assert one.to_json() == again.to_json()
    other = profile(frame, target="label", sample_rows=500, seed=2)
    assert one.data["overview"]["sample"] == {"rows": 500, "sampled": True, "seed": 1, "limit": 500}
    assert one.data["correlations"]["pearson"] != other.data["correlations"]["pearson"]
    full = profile(frame, target="label")
    for key in ("columns", "missing", "duplicates"):
        assert one.data[key] == other.data[key] == full.data[key]  # exact parts ignore the sample
    assert one.data["outliers"]["columns"] == full.data["outliers"]["columns"]
    assert one.data["outliers"]["isolation_forest"]["rows_scored"] == 500


def test_json_round_trip(prof: Profile) -> None:
    text = prof.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert Profile.from_json(text).data == json.loads(text)
    with pytest.raises(InvalidInput, match="not a loopml EDA profile"):
        Profile.from_json("{}")


def test_duplicates_are_counted_with_examples() -> None:
    df = pd.DataFrame({"k": [1, 2, 2, 3, 3, 3, None, None], "v": ["a", "b", "b", "c", "c", "c", None, None]})
    d = profile(df).data["duplicates"]
    assert (d["rows"], d["groups"]) == (4, 3)
    assert d["examples"][0] == {"row": 3, "copies": 3}
    assert any(w["kind"] == "duplicates" for w in profile(df).warnings)


def test_odd_types_nan_inf_and_arrow_input() -> None:
    table = pa.table({
        "cat": pa.array(["x", "y", "x", None]).dictionary_encode(),
        "dec": pa.array([Decimal("1.5"), Decimal("2.5"), None, Decimal("0")]),
        "f": pa.array([1.0, float("inf"), float("nan"), 3.0]),
        "empty": pa.array([None, None, None, None], pa.float64()),
        "nested": pa.array([[1], [2, 3], None, [1]]),
    })
    p = profile(table)
    assert p.column("cat")["kind"] == "categorical" and p.column("cat")["distinct"] == 2
    assert p.column("dec")["stats"]["mean"] == pytest.approx(4 / 3)
    f = p.column("f")
    assert (f["missing"], f["stats"]["infinite"], f["stats"]["max"]) == (1, 1, 3.0)  # NaN is missing; inf skipped
    assert p.column("empty")["flags"] == ["empty"]
    assert p.column("nested")["kind"] == "other" and p.column("nested")["distinct"] == 2
    assert {"empty", "infinite"} <= {w["kind"] for w in p.warnings}


def test_bad_input() -> None:
    df = pd.DataFrame({"a": [1, 2], "t": pd.to_datetime(["2025-01-01", "2025-01-02"]), "s": ["u", "v"]})
    with pytest.raises(InvalidInput, match=r"target column 'nope' is not in the data; columns are \['a', 't', 's'\]"):
        profile(df, target="nope")
    with pytest.raises(InvalidInput, match="no rows"):
        profile(df.iloc[:0])
    with pytest.raises(InvalidInput, match="no columns"):
        profile(pd.DataFrame())
    with pytest.raises(InvalidInput, match="give a numeric, text or boolean target"):
        profile(df, target="t")
    with pytest.raises(InvalidInput, match="cannot be a regression target"):
        profile(df, target="s", task="regression")
    with pytest.raises(InvalidInput, match="task must be"):
        profile(df, task="clustering")
    with pytest.raises(InvalidInput, match="sample_rows"):
        profile(df, sample_rows=1)
    with pytest.raises(InvalidInput, match="pyarrow Table or a pandas DataFrame"):
        profile([1, 2, 3])


@pytest.mark.parametrize(("name", "expected"), [
    ("customer_id", True), ("orderId", True), ("id_order", True), ("session-uuid", True), ("key", True),
    ("paid", False), ("valid", False), ("monkey", False), ("idea", False),
])
def test_id_names(name: str, expected: bool) -> None:
    from loopml.eda.profile import _id_name

    assert _id_name(name) is expected


def test_a_column_named_like_the_internal_row_number() -> None:
    df = pd.DataFrame({"x": [1.0, 2, 3, 2, 3, 2, 1, 2, 3, 100], "__loopml_row__": [9] * 10, 'q"uote': list("abcdeabcde")})
    p = profile(df)
    [o] = p.data["outliers"]["columns"]
    assert o["examples"] == [9] and p.data["rows"]["9"]["x"] == 100.0
    assert p.column('q"uote')["distinct"] == 5
