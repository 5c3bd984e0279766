"""Each built-in algorithm in this process: fit, per-iteration metrics, predict, native save/load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import Conflict, IntegrityError, InvalidInput
from loopml.train import Algorithm, get_algorithm, list_algorithms, register_algorithm
from loopml.train.algorithms import resolve_algorithm

R = np.random.default_rng(0)
N = 300
X = pd.DataFrame({"a": R.normal(size=N), "b": R.normal(size=N), "q": R.integers(0, 30, N)})
X.loc[X.index[:10], "a"] = np.nan
Y_BIN = (np.nan_to_num(X["a"].to_numpy()) + 0.5 * X["b"].to_numpy() > 0).astype(np.int64)
Y_MULTI = np.digitize(X["b"].to_numpy(), [-0.5, 0.5]).astype(np.int64)
Y_REG = 2 * X["b"].to_numpy() + 1
TRAIN, VAL = slice(0, 220), slice(220, None)
FAST = {"xgboost": {"num_round": 15}, "lightgbm": {"num_boost_round": 15, "min_data_in_leaf": 5},
        "random_forest": {"num_trees": 10}, "isolation_forest": {"num_trees": 10}}


def _roundtrip(algo: Algorithm, tmp_path: Path, **kw: Any) -> Algorithm:
    folder = tmp_path / algo.name
    folder.mkdir()
    algo.save(folder)
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    return type(algo)(algo.params, problem_type=algo.problem_type, seed=algo.seed, roles=algo.roles,
                      n_classes=algo.n_classes).load(folder)


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "linear", "random_forest", "knn"])
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_supervised(name: str, problem: str, tmp_path: Path) -> None:
    y, k = {"binary": (Y_BIN, 2), "multiclass": (Y_MULTI, 3), "regression": (Y_REG, None)}[problem]
    cls = get_algorithm(name)
    algo = cls(FAST.get(name), problem_type=problem, n_classes=k, seed=1)
    seen: list[tuple[int, dict[str, float]]] = []
    cols = ["a", "b"]
    algo.fit(X[cols][TRAIN], y[TRAIN], X[cols][VAL], y[VAL], callback=lambda s, m: seen.append((s, dict(m))))
    if cls.iteration_metrics.get(problem):
        assert [s for s, _ in seen] == list(range(1, 16))
        assert set(seen[-1][1]) == {f"validation:{m}" for m in cls.iteration_metrics[problem]}
    else:
        assert seen == []
    scores = algo.score(X[cols][VAL], y[VAL])
    if problem == "regression":
        assert scores["r2"] > 0.5
    else:
        assert scores["accuracy"] > 0.6
        proba = algo.predict_proba(X[cols][VAL])
        assert proba.shape == (80, k) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
        assert np.array_equal(algo.predict(X[cols][VAL]), np.argmax(proba, axis=1))
    back = _roundtrip(algo, tmp_path)
    np.testing.assert_array_equal(back.predict(X[cols]), algo.predict(X[cols]))
    rec = {"a": None, "b": 0.7}
    np.testing.assert_allclose(np.asarray(back.predict_one(rec)),
                               np.asarray(algo.predict(pd.DataFrame([{"a": np.nan, "b": 0.7}]))[0]), rtol=1e-6)


@pytest.mark.parametrize("name", ["xgboost", "lightgbm"])
def test_ranking_uses_the_group_role(name: str) -> None:
    rel = np.clip(np.round(X["b"].to_numpy() + 1), 0, 3)
    hp = {**FAST[name]}
    algo = get_algorithm(name)(hp, problem_type="ranking", roles={"group": "q"})
    seen: list[dict[str, float]] = []
    algo.fit(X[TRAIN], rel[TRAIN], X[VAL], rel[VAL], callback=lambda s, m: seen.append(dict(m)))
    assert algo.features_ == ["a", "b"]  # the group column is not a feature
    assert "validation:ndcg@10" in seen[-1]
    assert algo.score(X[VAL], rel[VAL])["ndcg@10"] > 0.7
    with pytest.raises(InvalidInput, match="group column"):
        get_algorithm(name)(hp, problem_type="ranking").fit(X, rel)


def test_early_stopping_needs_validation_and_keeps_the_best_rounds() -> None:
    xgb = get_algorithm("xgboost")
    with pytest.raises(InvalidInput, match="needs validation data"):
        xgb({"early_stopping_rounds": 3}, problem_type="binary").fit(X[["a", "b"]], Y_BIN)
    noisy = np.random.default_rng(1).integers(0, 2, N)
    algo = xgb({"early_stopping_rounds": 3, "num_round": 200, "eta": 0.5}, problem_type="binary")
    algo.fit(X[["a", "b"]][TRAIN], noisy[TRAIN], X[["a", "b"]][VAL], noisy[VAL])
    assert algo.booster_.num_boosted_rounds() < 200


def test_unsupervised(tmp_path: Path) -> None:
    cols = ["a", "b"]
    km = get_algorithm("kmeans")({"k": 3}, problem_type="clustering").fit(X[cols], None)
    assert set(np.unique(km.predict(X[cols]))) == {0, 1, 2}
    assert {"silhouette", "davies_bouldin", "inertia_per_row"} <= set(km.score(X[cols], None))
    np.testing.assert_array_equal(_roundtrip(km, tmp_path).predict(X[cols]), km.predict(X[cols]))

    pca = get_algorithm("pca")({"num_components": 2}, problem_type="dimensionality_reduction").fit(X[cols], None)
    assert pca.predict(X[cols]).shape == (N, 2) and pca.score(X[cols], None)["explained_variance"] == pytest.approx(1)
    assert len(_roundtrip(pca, tmp_path).predict_one({"a": 1.0, "b": 2.0})) == 2
    with pytest.raises(InvalidInput, match="num_components=5"):
        get_algorithm("pca")({"num_components": 5}, problem_type="dimensionality_reduction").fit(X[cols], None)

    outliers = pd.concat([X[cols], pd.DataFrame({"a": [40.0, -35.0], "b": [30.0, 50.0]})], ignore_index=True)
    labels = np.r_[np.zeros(N), np.ones(2)]
    iso = get_algorithm("isolation_forest")(FAST["isolation_forest"], problem_type="anomaly_detection")
    iso.fit(outliers, None)
    scores = iso.predict(outliers)
    assert scores[-2:].min() > np.median(scores)  # higher is stranger
    assert iso.score(outliers, labels)["auc"] > 0.95
    np.testing.assert_array_equal(_roundtrip(iso, tmp_path).predict(outliers), scores)


def _series() -> pd.DataFrame:
    r = np.random.default_rng(3)
    rows = []
    for s, base in (("a", 10.0), ("b", 50.0)):
        t = pd.date_range("2024-01-01", periods=100, freq="D")
        y = base + 5 * np.sin(np.arange(100) * 2 * np.pi / 7) + r.normal(size=100) * 0.5
        rows.append(pd.DataFrame({"store": s, "day": t, "sales": y}))
    return pd.concat(rows, ignore_index=True)


def test_forecast_recursive_multi_step(tmp_path: Path) -> None:
    df = _series()
    train, val = df[df.day < "2024-03-20"], df[df.day >= "2024-03-20"]
    roles = {"time": "day", "series": "store"}
    algo = get_algorithm("forecast")({"lags": 7, "num_boost_round": 60}, problem_type="forecasting", roles=roles)
    seen: list[int] = []
    algo.fit(train[["store", "day"]], train.sales.to_numpy(), val[["store", "day"]], val.sales.to_numpy(),
             callback=lambda s, m: seen.append(s))
    assert seen == list(range(1, 61))
    scores = algo.score(val[["store", "day"]], val.sales.to_numpy())
    assert scores["mase"] < 1.5 and scores["mape"] < 0.2
    back = _roundtrip(algo, tmp_path)
    shuffled = val.sample(frac=1, random_state=0)
    np.testing.assert_allclose(back.predict(shuffled[["store", "day"]]), algo.predict(shuffled[["store", "day"]]))
    assert back.predict_one({"store": "b", "day": "2024-03-22"}) == pytest.approx(
        float(algo.predict(pd.DataFrame({"store": ["b"], "day": [pd.Timestamp("2024-03-22")]}))[0]))
    fc = back.forecast(3)
    assert list(fc.columns) == ["store", "day", "forecast"] and len(fc) == 6
    with pytest.raises(InvalidInput, match="after the last training time"):
        back.predict(pd.DataFrame({"store": ["a"], "day": [pd.Timestamp("2024-02-01")]}))
    with pytest.raises(InvalidInput, match="not in the training data"):
        back.predict(pd.DataFrame({"store": ["zz"], "day": [pd.Timestamp("2024-04-01")]}))


def test_skops_files_with_untrusted_types_are_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.ensemble import RandomForestRegressor

    algo = get_algorithm("linear")({}, problem_type="regression").fit(X[["a", "b"]].fillna(0), Y_REG)
    algo.save(tmp_path)
    # a forest (holding sklearn.tree._tree.Tree) where a linear model should be
    sio.dump(RandomForestRegressor(n_estimators=2).fit(X[["b"]], Y_REG), tmp_path / "model.skops")
    with pytest.raises(IntegrityError, match="does not trust"):
        get_algorithm("linear")({}, problem_type="regression").load(tmp_path)


def test_text_features_get_a_clear_error() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "city": ["x", "y", "x", "y"]})
    with pytest.raises(InvalidInput, match="feature column 'city' holds"):
        get_algorithm("xgboost")({"num_round": 2}, problem_type="binary").fit(frame, np.array([0, 1, 0, 1]))


def test_registry() -> None:
    names = [a.name for a in list_algorithms()]
    assert {"xgboost", "lightgbm", "linear", "random_forest", "knn", "kmeans", "pca", "isolation_forest",
            "forecast"} <= set(names)
    with pytest.raises(InvalidInput, match="unknown algorithm 'xgbost' \\(did you mean 'xgboost'\\?\\); known: "):
        get_algorithm("xgbost")
    with pytest.raises(InvalidInput, match="problem_types"):
        register_algorithm(type("Bad", (get_algorithm("linear"),), {"name": "bad", "problem_types": ("magic",)}))
    with pytest.raises(Conflict, match="already registered"):
        register_algorithm(type("Other", (get_algorithm("linear"),), {"name": "xgboost"}))
    with pytest.raises(InvalidInput, match="does not solve 'clustering'"):
        get_algorithm("xgboost")({}, problem_type="clustering")
    custom = resolve_algorithm("test_mean", "tests.train._custom:MeanRegressor")
    assert custom.name == "test_mean" and "test_mean" in [a.name for a in list_algorithms()]
    with pytest.raises(InvalidInput, match="__main__"):
        resolve_algorithm("nowhere", "__main__:Nowhere")


def test_xgboost_keeps_its_matrices_in_the_scratch_space_between_fits() -> None:
    """A warm job's next trial on the same data reuses the DMatrix (and its quantile sketch)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X["a"] + rng.normal(scale=0.3, size=300) > 0).astype(int).to_numpy()
    cls = get_algorithm("xgboost")
    plain = cls({"num_round": 5, "max_depth": 3}, problem_type="binary")
    plain.fit(X[:200], y[:200], X[200:], y[200:])
    scratch: dict[str, Any] = {}
    first = cls({"num_round": 5, "max_depth": 3}, problem_type="binary")
    first.scratch = scratch
    first.fit(X[:200], y[:200], X[200:], y[200:])
    kept = dict(scratch)
    assert sorted(kept) == ["xgboost.dmatrix.train.-1", "xgboost.dmatrix.validation.-1"]
    again = cls({"num_round": 5, "max_depth": 5}, problem_type="binary")  # another trial, same data
    again.scratch = scratch
    again.fit(X[:200], y[:200], X[200:], y[200:])
    assert all(scratch[k] is kept[k] for k in kept) and len(scratch) == 2
    np.testing.assert_array_equal(first.predict_proba(X), plain.predict_proba(X))
