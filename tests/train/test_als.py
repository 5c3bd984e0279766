"""ALS for implicit feedback: the maths against dense formulas, learning, unknown ids, native save, a job."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from loopml import Workspace
from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.train import Estimator, get_algorithm
from loopml.train.algorithms import _als
from loopml.train.algorithms._als import ALS, als_half_step, als_loss

ROLES = {"user": "user", "item": "item"}
FAST = {"factors": 8, "iterations": 8, "alpha": 5.0, "regularization": 0.1}


def interactions(seed: int = 0, users: int = 60, per_user: int = 10) -> pd.DataFrame:
    """Two taste groups: even users like items 0-19, odd users items 20-39 (counts as weights)."""
    r = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        group = u % 2
        for i in r.choice(np.arange(20) + 20 * group, per_user, replace=False):
            rows.append((f"u{u}", int(i), float(r.integers(1, 6))))
    return pd.DataFrame(rows, columns=["user", "item", "clicks"])


def split(df: pd.DataFrame, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    held = np.random.default_rng(seed).random(len(df)) < 0.25
    return df[~held].reset_index(drop=True), df[held].reset_index(drop=True)


def dense_half_step(C: np.ndarray, Y: np.ndarray, reg: float) -> np.ndarray:
    """Hu et al. eq. 4 literally: x_u = (Y^T C^u Y + reg I)^-1 Y^T C^u p(u), with C^u = 1 + (c - 1)."""
    f = Y.shape[1]
    out = np.zeros((C.shape[0], f))
    for u in range(C.shape[0]):
        Cu = np.diag(1.0 + C[u])
        p = (C[u] > 0).astype(float)
        out[u] = np.linalg.solve(Y.T @ Cu @ Y + reg * np.eye(f), Y.T @ Cu @ p)
    return out


@pytest.mark.parametrize("block_floats", [1 << 22, 20])
def test_half_step_and_loss_match_the_dense_formulas(block_floats: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_als, "_BLOCK_FLOATS", block_floats)  # 20: one row per block, many blocks
    r = np.random.default_rng(3)
    dense = r.random((9, 7)) * (r.random((9, 7)) < 0.4) * 4
    dense[4] = 0.0  # a row without interactions
    C = sp.csr_matrix(dense)
    Y = r.normal(size=(7, 3))
    X = als_half_step(C, Y, 0.5)
    np.testing.assert_allclose(X, dense_half_step(dense, Y, 0.5), rtol=1e-10, atol=1e-12)
    assert np.all(X[4] == 0)
    S = X @ Y.T
    P = (dense > 0).astype(float)
    want = float(np.sum((1 + dense) * (P - S) ** 2) + 0.5 * (np.sum(X**2) + np.sum(Y**2)))
    assert als_loss(C, X, Y, 0.5) == pytest.approx(want, rel=1e-10)


def test_learns_tastes_and_reports_each_iteration() -> None:
    train, val = split(interactions())
    seen: list[tuple[int, dict[str, float]]] = []
    algo = ALS(FAST, problem_type="recommendation", roles={**ROLES, "weight": "clicks"}, seed=0)
    algo.fit(train, None, val, None, callback=lambda s, m: seen.append((s, dict(m))))
    assert [s for s, _ in seen] == list(range(1, 9))
    assert set(seen[-1][1]) == {"train:loss", "validation:precision_at_10", "validation:recall_at_10",
                                "validation:ndcg_at_10"}
    losses = [m["train:loss"] for _, m in seen]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(losses))  # exact solves never go up
    # each user has ~2.5 held-out items among ~32 unseen: a random top 10 has precision ~0.08, recall ~0.3
    final = algo.score(val, None)
    assert final["precision_at_10"] > 0.13 and final["recall_at_10"] > 0.55 and final["coverage"] == 1.0
    recs = algo.recommend_many([f"u{u}" for u in range(60)], 10)
    same_group = (recs["item"].astype(int) // 20) == (recs["user"].str[1:].astype(int) % 2)
    assert same_group.mean() > 0.7  # ~12 unseen items of the user's group among ~32: random gives ~0.38

    top = algo.recommend("u0", 5)
    assert list(top.columns) == ["item", "score"] and len(top) == 5
    assert top["score"].is_monotonic_decreasing
    liked = set(train.loc[train["user"] == "u0", "item"])
    assert not liked & set(top["item"]) and set(top["item"]) <= set(range(20))  # unseen items of its group
    assert set(algo.recommend("u0", 40, exclude_seen=False)["item"]) == set(range(40))

    pairs = pd.DataFrame({"user": ["u0"] * 40 + ["u1"] * 40, "item": list(range(40)) * 2})
    s = algo.predict(pairs).reshape(2, 40)
    assert s[0, :20].mean() > s[0, 20:].mean() + 0.2 and s[1, 20:].mean() > s[1, :20].mean() + 0.2
    assert algo.predict_one({"user": "u1", "item": 25}) == pytest.approx(s[1, 25], rel=1e-12)


def test_unknown_ids_bad_weights_and_missing_roles() -> None:
    train, _ = split(interactions())
    algo = ALS(FAST, problem_type="recommendation", roles=ROLES).fit(train)
    got = algo.predict(pd.DataFrame({"user": ["u0", "stranger", "u0"], "item": [3, 3, 999]}))
    assert np.isfinite(got[0]) and np.isnan(got[1]) and np.isnan(got[2])
    assert np.isnan(algo.predict_one({"user": "stranger", "item": 3}))
    with pytest.raises(NotFound, match=r"user 'stranger' was not in the training data.*unknown='popular'"):
        algo.recommend("stranger")
    popular = algo.recommend("stranger", 3, unknown="popular")
    assert len(popular) == 3 and popular["score"].isna().all()
    both = algo.recommend_many(["u0", "stranger"], 3, unknown="popular")
    assert list(both.columns) == ["user", "item", "rank", "score"] and both["rank"].tolist() == [1, 2, 3] * 2
    with pytest.raises(InvalidInput, match="k must be a positive integer"):
        algo.recommend("u0", 0)

    with pytest.raises(InvalidInput, match="needs a item column: pass roles="):
        ALS(FAST, problem_type="recommendation", roles={"user": "user"}).fit(train)
    bad = train.assign(clicks=-train["clicks"])
    with pytest.raises(InvalidInput, match="weights must be >= 0"):
        ALS(FAST, problem_type="recommendation", roles={**ROLES, "weight": "clicks"}).fit(bad)
    with pytest.raises(InvalidInput, match="fractional numbers"):
        ALS(FAST, problem_type="recommendation", roles=ROLES).fit(train.assign(item=train["item"] + 0.5))
    with pytest.raises(InvalidInput, match="factors=0 is out of range"):
        get_algorithm("als")({"factors": 0}, problem_type="recommendation")


def test_integer_float_and_text_ids() -> None:
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", "b", "a", "c", "b"]})
    algo = ALS(FAST, problem_type="recommendation", roles=ROLES).fit(df)
    assert algo.users_ == [1, 2, 3]
    # 2.0 (a float column, as pandas makes of integers with missing values) is user 2; "2" is not
    got = algo.predict(pd.DataFrame({"user": [2.0, np.nan], "item": ["a", "a"]}))
    assert np.isfinite(got[0]) and np.isnan(got[1])
    assert np.isnan(algo.predict(pd.DataFrame({"user": ["2"], "item": ["a"]}))[0])


def test_native_save_and_load(tmp_path: Path) -> None:
    train, val = split(interactions())
    algo = ALS(FAST, problem_type="recommendation", roles=ROLES, seed=4).fit(train)
    algo.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["factors.npz", "ids.json"]
    with np.load(tmp_path / "factors.npz", allow_pickle=False) as z:
        assert z["user_factors"].shape == (60, 8) and z["item_factors"].shape == (40, 8)
    ids = json.loads((tmp_path / "ids.json").read_text())
    assert ids["users"][:2] == ["u0", "u1"] and all(isinstance(i, int) for i in ids["items"])

    back = ALS(FAST, problem_type="recommendation", roles=ROLES).load(tmp_path)
    np.testing.assert_array_equal(back.predict(val), algo.predict(val))
    pd.testing.assert_frame_equal(back.recommend("u3", 5), algo.recommend("u3", 5))
    assert back.score(val, None) == algo.score(val, None)

    ids["items"] = ids["items"][:-1]
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    with pytest.raises(IntegrityError, match="do not match its id maps"):
        ALS(FAST, problem_type="recommendation", roles=ROLES).load(tmp_path)


def test_estimator_trains_als_in_a_job(tmp_path: Path) -> None:
    train, val = split(interactions())
    ws = Workspace.init(tmp_path / "ws")
    try:
        steps: list[int] = []
        result = Estimator("als", FAST, target="clicks", roles=ROLES, ws=ws).fit(
            train, validation=val, on_metric=lambda s, m: steps.append(s))
    finally:
        ws.close()
    assert steps == list(range(1, 9)) and result.problem_type == "recommendation"
    assert result.metrics["validation:precision_at_10"] > 0.13
    model = result.model
    assert model.signature.input_names == ["user", "item"]
    local = ALS(FAST, problem_type="recommendation", roles=ROLES).fit(train, train["clicks"].to_numpy())
    np.testing.assert_array_equal(model.predict(val), local.predict(val))
    pd.testing.assert_frame_equal(model.algorithm.recommend("u5", 4), local.recommend("u5", 4))
    assert model.predict_one({"user": "u5", "item": 7})["prediction"] == pytest.approx(
        local.predict_one({"user": "u5", "item": 7}))
