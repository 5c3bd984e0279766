"""Drift distances against scipy, their noise bounds, and verdicts on data with known drift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopml.monitor.checks import check_data
from loopml.monitor.constraints import DEFAULT_THRESHOLDS, FeatureConfig, suggest_constraints
from loopml.monitor.drift import (
    categorical_scores,
    ks_distance,
    ks_p_value,
    numeric_scores,
    psi,
    sketch_cdf,
    wasserstein_distance,
)
from loopml.monitor.statistics import compute_statistics, feature_statistics, quantile_sketch
from tests.monitor._data import DRIFTED, FEATURES, make


def _cfg(primary: tuple[str, ...] = ("KS",), robust: bool = True) -> FeatureConfig:
    return FeatureConfig(True, robust, 0.001, primary, dict(DEFAULT_THRESHOLDS))


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3, 1.0])
def test_ks_and_wasserstein_match_scipy(shift: float) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 8000), rng.normal(shift, 1.3, 6000)
    qa, qb = quantile_sketch(np.sort(a)), quantile_sketch(np.sort(b))
    assert ks_distance(qa, qb) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=0.003)
    assert wasserstein_distance(qa, qb) == pytest.approx(stats.wasserstein_distance(a, b), rel=0.02, abs=0.003)
    d = stats.ks_2samp(a, b).statistic
    assert ks_p_value(d, 8000, 6000) == pytest.approx(stats.ks_2samp(a, b, method="asymp").pvalue, rel=0.05, abs=1e-12)


def test_sketch_cdf_on_discrete_values() -> None:
    x = np.sort(np.repeat([0.0, 1.0, 2.0], [200, 500, 300]))
    q = quantile_sketch(x)
    assert sketch_cdf(q, np.array([0.0, 1.0, 2.0])) == pytest.approx([0.2, 0.7, 1.0], abs=0.002)
    assert sketch_cdf(q, np.array([0.0, 1.0]), left=True) == pytest.approx([0.0, 0.2], abs=0.002)
    y = np.sort(np.repeat([0.0, 1.0, 2.0], [500, 200, 300]))
    assert ks_distance(q, quantile_sketch(y)) == pytest.approx(0.3, abs=0.002)


def test_categorical_distances_match_scipy() -> None:
    base = {"a": 500.0, "b": 300.0, "c": 200.0}
    cur = {"a": 200.0, "b": 300.0, "c": 400.0, "new": 100.0}
    r = categorical_scores(base, cur, _cfg(("LInfinity",)))
    m = r["methods"]
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([0.2, 0.3, 0.4, 0.1])
    assert m["LInfinity"]["distance"] == pytest.approx(0.3)
    assert m["JensenShannon"]["distance"] == pytest.approx(jensenshannon(p, q, base=2), rel=1e-5)
    table = np.array([[500, 300, 200, 0], [200, 300, 400, 100]])
    assert m["ChiSquare"]["p_value"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-4)
    assert m["ChiSquare"]["distance"] == pytest.approx(math.sqrt(0.5 * np.sum((p - q) ** 2 / (p + q))), rel=1e-5)
    assert m["PSI"]["distance"] == pytest.approx(psi(table[0], table[1]), rel=1e-5)
    assert r["drift"] and r["categories"] == 4 and all(x["drift"] for x in m.values())


def test_psi_formula() -> None:
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    b, c = np.array([600.0, 400.0]), np.array([300.0, 700.0])
    pb, pc = (b + 0.5) / 1001, (c + 0.5) / 1001
    assert psi(b, c) == pytest.approx(np.sum((pc - pb) * np.log(pc / pb)))


def test_robust_comparison_needs_more_than_noise_in_small_samples() -> None:
    rng = np.random.default_rng(5)
    base = feature_statistics("x", pd.Series(rng.normal(0, 1, 50_000)))
    small = feature_statistics("x", pd.Series(rng.normal(0, 1, 60)), "Fractional")
    simple, robust = numeric_scores(base, small, _cfg(robust=False)), numeric_scores(base, small, _cfg())
    ks = robust["methods"]["KS"]
    assert ks["critical"] > 0.2 and simple["methods"]["KS"]["critical"] is None
    # noise of 60 rows often exceeds 0.1 but never the bound; the Simple comparison would flag it
    assert not robust["drift"]
    assert simple["methods"]["KS"]["distance"] == ks["distance"]
    shifted = feature_statistics("x", pd.Series(rng.normal(1.5, 1, 60)), "Fractional")
    assert numeric_scores(base, shifted, _cfg())["drift"]  # real drift still shows in 60 rows


def _flagged(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[set[str], dict[str, set[str]]]:
    bs = compute_statistics(ref, features=FEATURES)
    cons = suggest_constraints(bs)
    cs = compute_statistics(cur, features=FEATURES, types={f["name"]: f["inferred_type"] for f in cons["features"]})
    doc = check_data(bs, cons, cs, current_columns=FEATURES)
    by_method: dict[str, set[str]] = {}
    for name, d in doc["drift"]["features"].items():
        for m, s in d["methods"].items():
            if s["drift"]:
                by_method.setdefault(m, set()).add(name)
    return {v["feature_name"] for v in doc["violations"]}, by_method


@pytest.mark.parametrize("seed", range(5))
def test_known_drift_is_flagged_and_nothing_else(seed: int) -> None:
    ref = make(20_000, 100 + seed)
    flagged, by_method = _flagged(ref, make(20_000, 200 + seed, drift=True))
    assert flagged == DRIFTED
    assert by_method["KS"] == by_method["Wasserstein"] == {"num_00", "num_01"}
    for m in ("LInfinity", "JensenShannon", "ChiSquare"):
        assert by_method[m] == {"cat_0", "cat_1"}, m
    assert by_method["PSI"] == {"num_00", "num_01", "cat_0", "cat_1"}
    # the same process without drift: no violation, no method flags anything (0 false positives)
    flagged, by_method = _flagged(ref, make(20_000, 300 + seed))
    assert flagged == set() and by_method == {}
    # a window of 500 rows: still no false alarm, and the drift is still found
    small = make(500, 400 + seed)
    assert _flagged(ref, small)[0] == set()
    assert _flagged(ref, make(500, 500 + seed, drift=True))[0] == DRIFTED
