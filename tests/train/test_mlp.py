"""The PyTorch MLP: each problem type, per-epoch metrics, determinism, safe save/load, a job, no torch."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.errors import IntegrityError, InvalidInput
from loopml.train import Algorithm, Estimator, get_algorithm

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None and not os.environ.get("CI"),
    reason="PyTorch is not installed (pip install 'loopml[torch]'); in CI a missing torch fails instead",
)

R = np.random.default_rng(0)
N = 240
X = pd.DataFrame({"a": R.normal(size=N), "b": R.normal(size=N)})
X.loc[X.index[:8], "a"] = np.nan
Y = {
    "binary": ((np.nan_to_num(X["a"].to_numpy()) + 0.5 * X["b"].to_numpy()) > 0).astype(np.int64),
    "multiclass": np.digitize(X["b"].to_numpy(), [-0.5, 0.5]).astype(np.int64),
    "regression": 2 * X["b"].to_numpy() + 1,
}
K = {"binary": 2, "multiclass": 3, "regression": None}
FAST = {"epochs": 12, "width": 16, "lr": 1e-2, "batch_size": 32}
TR, VA = slice(0, 180), slice(180, None)


def mlp(problem: str, seed: int = 1, **hp: object) -> Algorithm:
    return get_algorithm("mlp")({**FAST, **hp}, problem_type=problem, n_classes=K[problem], seed=seed)


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_learns_reports_each_epoch_and_round_trips(problem: str, tmp_path: Path) -> None:
    y = Y[problem]
    algo = mlp(problem)
    seen: list[tuple[int, dict[str, float]]] = []
    algo.fit(X[TR], y[TR], X[VA], y[VA], callback=lambda s, m: seen.append((s, dict(m))))
    assert [s for s, _ in seen] == list(range(1, 13))
    want = {"train:loss", *(f"validation:{m}" for m in get_algorithm("mlp").iteration_metrics[problem])}
    assert set(seen[-1][1]) == want
    assert seen[-1][1]["train:loss"] < seen[0][1]["train:loss"]
    scores = algo.score(X[VA], y[VA])
    if problem == "regression":
        assert scores["r2"] > 0.9
    else:
        assert scores["accuracy"] > 0.85
        proba = algo.predict_proba(X[VA])
        assert proba.shape == (60, K[problem]) and np.allclose(proba.sum(axis=1), 1)

    algo.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.json", "mlp.json", "weights.pt"]
    import torch

    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    back = mlp(problem).load(tmp_path)
    np.testing.assert_array_equal(back.predict(X), algo.predict(X))
    record = {"a": None, "b": 0.3}
    np.testing.assert_array_equal(back.predict_one(record), algo.predict_one(record))


def test_seeded_runs_repeat_and_leave_the_global_generator_alone() -> None:
    import torch

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = mlp("binary", seed=7).fit(X, Y["binary"])
    assert torch.equal(torch.rand(3), expected_next)
    threads = torch.get_num_threads()
    b = mlp("binary", seed=7).fit(X, Y["binary"])
    c = mlp("binary", seed=8).fit(X, Y["binary"])
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_early_stopping_keeps_the_best_epoch() -> None:
    y = Y["binary"]
    with pytest.raises(InvalidInput, match="early_stopping_patience for mlp needs validation data"):
        mlp("binary", early_stopping_patience=2).fit(X, y)
    seen: list[dict[str, float]] = []
    algo = mlp("binary", epochs=200, lr=0.05, width=64, dropout=0.0, early_stopping_patience=3)
    algo.fit(X[TR], y[TR], X[VA], y[VA], callback=lambda s, m: seen.append(dict(m)))
    losses = [m["validation:logloss"] for m in seen]
    assert len(losses) < 200
    best = int(np.argmin(losses))
    assert len(losses) - 1 - best == 3
    assert algo.score(X[VA], y[VA])["logloss"] == pytest.approx(losses[best], rel=1e-6)


def test_refuses_weights_that_are_not_plain_tensors(tmp_path: Path) -> None:
    import torch

    algo = mlp("regression", epochs=1).fit(X, Y["regression"])
    algo.save(tmp_path)
    torch.save({"net.0.weight": Path("/etc/passwd")}, tmp_path / "weights.pt")  # any non-tensor object
    with pytest.raises(IntegrityError, match="not a plain file of tensors"):
        mlp("regression").load(tmp_path)
    torch.save({"net.0.weight": torch.zeros(2, 2)}, tmp_path / "weights.pt")
    with pytest.raises(IntegrityError, match="does not fit the architecture"):
        mlp("regression").load(tmp_path)


def test_without_torch_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    algo = mlp("binary")  # the schema and the registry need no torch
    with pytest.raises(InvalidInput, match=r"needs PyTorch.*pip install 'loopml\[torch\]'"):
        algo.fit(X, Y["binary"])


def test_estimator_trains_the_mlp_in_a_job(tmp_path: Path) -> None:
    df = X.assign(y=np.where(Y["binary"] == 1, "yes", "no"))
    ws = Workspace.init(tmp_path / "ws")
    try:
        steps: list[int] = []
        result = Estimator("mlp", FAST, target="y", ws=ws, seed=3).fit(
            df[TR], validation=df[VA], on_metric=lambda s, m: steps.append(s))
    finally:
        ws.close()
    assert steps == list(range(1, 13)) and result.metrics["validation:auc"] > 0.9
    model = result.model
    local = mlp("binary", seed=3).fit(X[TR], Y["binary"][TR])
    np.testing.assert_array_equal(model.predict_proba(X), local.predict_proba(X))
    assert list(model.predict(X[:3])) == [["no", "yes"][c] for c in local.predict(X[:3])]
    one = model.predict_one({"a": 0.2, "b": -1.0})
    np.testing.assert_array_equal(one["probabilities"], local.predict_proba_one({"a": 0.2, "b": -1.0}))
