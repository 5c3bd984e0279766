"""The tuner end to end: trials as child runs, pruning, completion, failures, warm start, registry."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from loopml import Workspace
from loopml.errors import Conflict, InvalidInput
from loopml.track import Tracker
from loopml.train import Estimator
from loopml.tune import (
    CompletionCriteria,
    HyperparameterTuner,
    TuningError,
    WarmStart,
    get_tuning_job,
    list_tuning_jobs,
)


def _est(ws: Workspace, rounds: int = 20, **hp: object) -> Estimator:
    return Estimator("xgboost", {"num_round": rounds, "nthread": 1, **hp}, target="y", ws=ws)


def test_trials_are_child_runs_and_pruned_ones_say_so(
    any_ws: Workspace, churn_df: pd.DataFrame, churn_val: pd.DataFrame
) -> None:
    tuner = HyperparameterTuner(
        _est(any_ws), "validation:auc", ranges={"max_depth": (2, 6), "eta": (0.02, 0.5)}, max_trials=7,
        early_stopping={"pruner": "median", "n_startup_trials": 2, "warmup_fraction": 0.0}, name="job-a",
    )
    seen: list[int] = []
    result = tuner.fit(churn_df, churn_val, on_trial=lambda t, done, total: seen.append(done))
    assert result.status == "Completed" and len(result.trials) == 7 and seen == list(range(1, 8))
    assert result.direction == "maximize" and result.best_trial is not None
    assert result.best_value == max(t.value for t in result.trials if t.value is not None)
    assert set(result.best_params) == {"max_depth", "eta"}
    counts = result.counts()
    assert counts.get("COMPLETE", 0) >= 2 and counts.get("PRUNED", 0) >= 1, counts

    # the study is a journal in the workspace's own database, beside loopml's tables
    tables = set(sa.inspect(any_ws.meta.engine).get_table_names())
    assert {"tune_journal", "runs", "alembic_version"} <= tables and "trials" not in tables
    with any_ws.meta.engine.connect() as conn:
        parts = conn.execute(sa.text("SELECT partition, COUNT(*) FROM tune_journal GROUP BY partition")).all()
    assert [p for p, _ in parts] == [result.job_id] and parts[0][1] > 7

    tracker = Tracker(any_ws, capture_code_version=False)
    try:
        parent = tracker.get_run(result.run_id)
        assert parent.status == "FINISHED" and parent.tags["tuning.status"] == "Completed"
        assert parent.tags["tuning.best_run_id"] == result.best_run_id
        assert parent.params["strategy"] == "bayesian" and parent.params["early_stopping"] == "median"
        assert parent.metrics["trials_pruned"] == counts["PRUNED"]
        assert len(tracker.metric_history(result.run_id, "best_objective")) == 7
        children = {r.id: r for r in tracker.child_runs(result.run_id)}
        assert len(children) == 7
        for t in result.trials:
            run = children[t.run_id or ""]
            assert run.params["max_depth"] == str(t.params["max_depth"]) and run.tags["tuning.trial"] == str(t.number)
            if t.state == "COMPLETE":
                assert run.status == "FINISHED" and run.metrics["validation:auc"] == pytest.approx(t.value)
                assert len(tracker.metric_history(run.id, "validation:auc")) > 5  # per-round values
            else:
                assert t.state == "PRUNED" and run.status == "KILLED" and "TrialPruned" in (run.message or "")
                assert run.tags["tuning.state"] == "PRUNED" and t.pruned_step is not None
                assert t.last_value is not None
    finally:
        tracker.close()

    # a job name is taken once; the stored job reads back the same
    with pytest.raises(Conflict, match="tuning job 'job-a' exists; resume it"):
        HyperparameterTuner(_est(any_ws), ranges={"max_depth": (2, 3)}, name="job-a").fit(churn_df, churn_val)
    shown = get_tuning_job(any_ws, "job-a")
    assert shown.best_trial == result.best_trial and shown.status == "Completed"
    assert [j.job_id for j in list_tuning_jobs(any_ws)] == ["job-a"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"objective": "validation:rmse"}, "xgboost never reports validation:rmse for binary problems"),
    ({"objective": "auc"}, "must look like validation:METRIC"),
    ({"objective": "validation:f1", "early_stopping": True},
     "early stopping needs the objective each iteration, but xgboost reports validation:auc, validation:logloss"),
    ({"strategy": "grid", "ranges": {"max_depth": (1, 10)}, "max_trials": 5},
     "the grid has 10 points but max_trials is 5"),
    ({"strategy": "grid"}, "grid search cannot enumerate the continuous range of eta"),
    ({"strategy": "hyperband", "ranges": {"num_round": (10, 50)}},
     "hyperband allocates num_round (the training iterations) itself"),
    ({"max_trials": 0}, "max_trials must be a positive integer"),
    ({"direction": "up"}, "direction 'up' must be maximize or minimize"),
    ({"name": "bad name!"}, "tuning job name 'bad name!' is not allowed"),
    ({"warm_start": ["a", "b", "c", "d", "e", "f"]}, "at most 5 earlier jobs"),
])
def test_bad_settings_fail_before_any_trial(ws: Workspace, kwargs: dict[str, object], message: str) -> None:
    est = Estimator("xgboost", {"num_round": 5}, target="y", ws=ws, problem_type="binary")
    with pytest.raises(InvalidInput) as e:
        HyperparameterTuner(est, **kwargs)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_grid_runs_every_point_and_minimize_is_inferred(ws: Workspace, churn_df: pd.DataFrame) -> None:
    tuner = HyperparameterTuner(_est(ws, 8), "validation:logloss", strategy="grid",
                                ranges={"max_depth": (2, 3), "grow_policy": ["depthwise", "lossguide"]})
    assert tuner.direction == "minimize" and tuner.max_trials == 4
    result = tuner.fit(churn_df)  # validation held out from the training data
    points = {(t.params["max_depth"], t.params["grow_policy"]) for t in result.trials}
    assert len(points) == 4 and result.best_value == min(t.value for t in result.trials if t.value is not None)
    parent = ws.tracker.get_run(result.run_id)
    assert parent.params["fixed.num_round"] == "8"


def test_completion_target_stops_the_job(ws: Workspace, churn_df: pd.DataFrame, churn_val: pd.DataFrame) -> None:
    result = HyperparameterTuner(_est(ws, 5), ranges={"max_depth": (2, 4)}, max_trials=10, strategy="random",
                                 completion=CompletionCriteria(target=0.0)).fit(churn_df, churn_val)
    assert len(result.trials) == 1 and result.status == "Completed"
    assert result.stopped_reason is not None and result.stopped_reason.startswith("target reached")
    assert ws.tracker.get_run(result.run_id).tags["tuning.stopped_reason"] == result.stopped_reason


def test_a_job_whose_first_trials_all_fail_stops(ws: Workspace, churn_df: pd.DataFrame) -> None:
    one_class = churn_df.assign(y=1)
    tuner = HyperparameterTuner(_est(ws, 5), ranges={"max_depth": (2, 4)}, max_trials=10, name="doomed")
    with pytest.raises(TuningError, match="tuning job doomed failed: the first 3 trials failed; the last said"):
        tuner.fit(one_class, one_class)
    job = get_tuning_job(ws, "doomed")
    assert job.status == "Failed" and [t.state for t in job.trials] == ["FAIL"] * 3
    assert all(t.run_id and "one class" in (t.message or "") for t in job.trials)
    assert ws.tracker.get_run(job.run_id).status == "FAILED"


def test_warm_start_identical_and_transfer(ws: Workspace, churn_df: pd.DataFrame, churn_val: pd.DataFrame) -> None:
    ranges = {"max_depth": (2, 5), "eta": (0.05, 0.5)}
    first = HyperparameterTuner(_est(ws, 8), ranges=ranges, max_trials=3, strategy="random",
                                name="first").fit(churn_df, churn_val)
    second = HyperparameterTuner(_est(ws, 8), ranges=ranges, max_trials=2, warm_start="first",
                                 name="second").fit(churn_df, churn_val)
    copied = [t for t in second.trials if t.warm_start_from == "first"]
    own = [t for t in second.trials if t.warm_start_from is None]
    assert len(copied) == 3 and len(own) == 2 and second.counts() == {"COMPLETE": 2}
    assert sorted(t.value for t in copied) == sorted(t.value for t in first.trials)  # type: ignore[type-var]
    assert second.best_trial in own  # copies inform the sampler but are not this job's result
    third = HyperparameterTuner(_est(ws, 8), ranges=ranges, max_trials=2,
                                warm_start=WarmStart(("first",), "transfer", top_k=1), name="third")
    result = third.fit(churn_df, churn_val)
    assert result.trials[0].params == first.best_params  # the best earlier configuration runs first
    with pytest.raises(InvalidInput, match="an identical warm start needs the same algorithm and objective"):
        HyperparameterTuner(_est(ws, 8), "validation:logloss", ranges=ranges, max_trials=1,
                            warm_start="first").fit(churn_df, churn_val)


def test_hyperband_and_registering_the_best_model(
    ws: Workspace, churn_df: pd.DataFrame, churn_val: pd.DataFrame
) -> None:
    from loopml.registry import list_versions

    tuner = HyperparameterTuner(_est(ws, 27), strategy="hyperband", ranges={"max_depth": (2, 6)}, max_trials=6,
                                register_as="churn-tuned")
    assert tuner.early_stopping is not None and tuner.early_stopping.pruner == "hyperband"
    assert tuner.early_stopping.max_resource == 27 and tuner.max_steps == 27
    result = tuner.fit(churn_df, churn_val)
    assert len(result.trials) == 6 and result.best_trial is not None
    versions = list_versions(ws, "churn-tuned")
    assert result.model_version == versions[0].ref == "churn-tuned:1"
    assert ws.tracker.get_run(result.run_id).tags["tuning.model_version"] == "churn-tuned:1"
