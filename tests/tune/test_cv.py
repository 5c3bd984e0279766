"""Cross-validated tuning, and pruning that stops trials without restarting the training process."""

from __future__ import annotations

import pandas as pd
import psutil
import pytest

from loopml import Workspace
from loopml.errors import InvalidInput
from loopml.train import Estimator
from loopml.tune import HyperparameterTuner, TrialInfo, get_tuning_job


def _job_pids() -> set[int]:
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "loopml.train._job" in " ".join(p.cmdline()):
                out.add(p.pid)
        except psutil.Error:
            pass
    return out


def test_cv_tuning_prunes_per_round_in_one_process_and_refits_the_best(
    any_ws: Workspace, churn_df: pd.DataFrame
) -> None:
    est = Estimator("xgboost", {"num_round": 30, "nthread": 1}, target="y", ws=any_ws)
    tuner = HyperparameterTuner(
        est, "validation:auc", ranges={"max_depth": (1, 6), "eta": (0.01, 0.5)}, max_trials=8, cv_folds=3,
        early_stopping={"pruner": "median", "n_startup_trials": 2, "warmup_fraction": 0.0}, name="cv-job",
        register_as="churn-cv",
    )
    pids: set[int] = set()

    def on_trial(info: TrialInfo, done: int, total: int) -> None:
        pids.update(_job_pids())

    result = tuner.fit(churn_df, on_trial=on_trial)
    counts = result.counts()
    assert result.status == "Completed" and counts.get("PRUNED", 0) >= 1, counts
    assert len(pids) == 1, "a pruned trial restarted the training process"

    tracker = any_ws.tracker
    parent = tracker.get_run(result.run_id)
    assert parent.params["cv_folds"] == "3"
    for t in result.trials:
        run = tracker.get_run(t.run_id or "")
        assert run.tags["cv.folds"] == "3"
        if t.state == "PRUNED":
            assert run.status == "KILLED" and "TrialPruned" in (run.message or "")
            assert run.tags["tuning.state"] == "PRUNED" and t.pruned_step is not None
        else:
            assert run.status == "FINISHED" and run.metrics["validation:auc"] == pytest.approx(t.value)
            assert len(tracker.metric_history(run.id, "validation:auc.fold")) == 3
            assert "model/manifest.json" not in {a.name for a in run.artifacts}  # trials keep no model

    # the best configuration trained on all the rows, registered
    best = result.best_trial
    assert best is not None and result.model_run_id not in (None, best.run_id)
    model_run = tracker.get_run(result.model_run_id or "")
    assert model_run.parent_run_id == result.run_id and model_run.tags["tuning.refit_of_trial"] == str(best.number)
    assert model_run.params["max_depth"] == str(best.params["max_depth"])
    assert "model/manifest.json" in {a.name for a in model_run.artifacts}
    assert result.model_version == "churn-cv:1"
    assert parent.tags["tuning.model_run_id"] == result.model_run_id
    again = get_tuning_job(any_ws, "cv-job")
    assert again.model_run_id == result.model_run_id and again.to_dict()["cv_folds"] == 3


def test_cv_tuning_without_refit_and_resume_keeps_the_setting(ws: Workspace, churn_df: pd.DataFrame) -> None:
    est = Estimator("xgboost", {"num_round": 5, "nthread": 1}, target="y", ws=ws)
    result = HyperparameterTuner(est, ranges={"max_depth": (2, 4)}, max_trials=2, cv_folds=2, refit=False,
                                 strategy="random", name="no-refit").fit(churn_df)
    assert result.model_run_id is None and result.best_trial is not None
    more = HyperparameterTuner.resume("no-refit", ws, max_trials=3)
    assert more.cv_folds == 2 and more.refit is False
    result = more.fit()
    assert len(result.trials) == 3
    assert all(ws.tracker.get_run(t.run_id or "").tags["cv.folds"] == "2" for t in result.trials)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cv_folds": 1}, "cv_folds must be an integer >= 2, got 1"),
    ({"cv_folds": True}, "cv_folds must be an integer >= 2, got True"),
    ({"cv_folds": 3, "objective": "train:auc"}, "with cv_folds the objective is measured on the held-out folds: "
                                                "use validation:auc, not train:auc"),
])
def test_bad_cv_settings(ws: Workspace, kwargs: dict[str, object], message: str) -> None:
    est = Estimator("xgboost", {"num_round": 5}, target="y", ws=ws, problem_type="binary")
    with pytest.raises(InvalidInput) as e:
        HyperparameterTuner(est, **kwargs)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_cv_with_validation_data_is_refused(ws: Workspace, churn_df: pd.DataFrame,
                                            churn_val: pd.DataFrame) -> None:
    est = Estimator("xgboost", {"num_round": 5}, target="y", ws=ws)
    tuner = HyperparameterTuner(est, ranges={"max_depth": (2, 4)}, max_trials=2, cv_folds=3)
    with pytest.raises(InvalidInput, match="with cv_folds=3 each trial holds out folds of the training data; "
                                           "give no validation data"):
        tuner.fit(churn_df, churn_val)


def test_cv_steps_count_every_folds_iterations(ws: Workspace) -> None:
    from loopml.tune import EarlyStopping

    est = Estimator("xgboost", {"num_round": 100}, target="y", ws=ws, problem_type="binary")
    tuner = HyperparameterTuner(est, strategy="hyperband", ranges={"max_depth": (2, 4)}, cv_folds=3)
    assert tuner.max_steps == 300 and tuner.early_stopping is not None
    assert tuner.early_stopping.max_resource == 300
    # rungs at 34, 102, 306: none just before the end, where stopping saves nothing
    assert tuner.early_stopping.make_pruner(300, 3)._min_resource == 34  # type: ignore[attr-defined]
    median = EarlyStopping("median", warmup_fraction=0.1).make_pruner(300, 3)
    assert median._n_warmup_steps == 10  # type: ignore[attr-defined]  # a tenth of one fold's rounds
