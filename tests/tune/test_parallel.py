"""Parallel trials: worker processes (and Ray tasks) share one study through the metadata database."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pandas as pd
import pytest

from loopml import Workspace
from loopml.train import Estimator
from loopml.tune import HyperparameterTuner, TuningResult


def _overlap(result: TuningResult) -> bool:
    spans = [(t.start_time, t.end_time) for t in result.trials if t.start_time and t.end_time]
    return any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])


def _check(ws: Workspace, result: TuningResult, n: int) -> None:
    assert result.status == "Completed" and [t.number for t in result.trials] == list(range(n))
    assert all(t.state == "COMPLETE" for t in result.trials), [t.message for t in result.trials]
    children = ws.tracker.child_runs(result.run_id)
    assert sorted(c.id for c in children) == sorted(t.run_id for t in result.trials if t.run_id)
    assert _overlap(result), "no two trials ran at the same time"


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_parallel_trials_share_the_study(
    ws: Workspace, churn_df: pd.DataFrame, churn_val: pd.DataFrame, executor: str
) -> None:
    """``local``: threads of this process coordinate, each trial trains in its own job process;
    ``processes``: a worker process per parallel trial."""
    est = Estimator("xgboost", {"num_round": 40, "nthread": 1}, target="y", ws=ws)
    tuner = HyperparameterTuner(est, ranges={"max_depth": (2, 6), "eta": (0.05, 0.5)}, max_trials=4,
                                max_parallel=2, early_stopping=True, executor=executor)
    _check(ws, tuner.fit(churn_df, churn_val), 4)


def test_a_grid_in_two_workers_visits_every_point_once(
    ws: Workspace, churn_df: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    """Every worker numbers the grid the same way, and the end of the grid is not an error."""
    est = Estimator("xgboost", {"num_round": 20, "nthread": 1}, target="y", ws=ws)
    tuner = HyperparameterTuner(est, ranges={"max_depth": [2, 3, 4], "eta": [0.1, 0.3]}, strategy="grid",
                                max_parallel=2, cv_folds=2, refit=False)
    result = tuner.fit(churn_df)
    _check(ws, result, 6)
    points = sorted((t.params["max_depth"], t.params["eta"]) for t in result.trials)
    assert points == [(d, e) for d in (2, 3, 4) for e in (0.1, 0.3)]
    inline = HyperparameterTuner(est, ranges={"max_depth": [2, 3]}, strategy="grid", cv_folds=2, refit=False)
    assert sorted(t.params["max_depth"] for t in inline.fit(churn_df).trials) == [2, 3]
    assert "could not run" not in caplog.text and "Study.stop" not in caplog.text


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_trials_as_ray_tasks(ray_local: None, ws: Workspace, churn_df: pd.DataFrame) -> None:
    from loopml.data import Catalog

    Catalog(ws).write("churn", churn_df)
    est = Estimator("xgboost", {"num_round": 40, "nthread": 1}, target="y", ws=ws)
    tuner = HyperparameterTuner(est, ranges={"max_depth": (2, 6)}, max_trials=3, max_parallel=2, executor="ray",
                                strategy="random")
    result = tuner.fit("churn")
    _check(ws, result, 3)
    assert ws.tracker.get_run(result.run_id).datasets[0].ref == "churn:1"  # lineage of the split dataset
