"""Cross-validation jobs, folds in lockstep, and stopping a job cooperatively (its process lives on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from sklearn import metrics as M
from sklearn.model_selection import StratifiedKFold

from loopml import Workspace
from loopml.errors import InvalidInput
from loopml.track import Tracker
from loopml.train import Estimator, TrainingError, metric_direction
from loopml.train import estimator as estimator_module
from loopml.train._job import FoldReports, cv_splits
from loopml.train._metrics import evaluate
from tests.train import _custom  # noqa: F401  (registers test_mean and test_crashy)
from tests.train._data import churn


@pytest.fixture(scope="module")
def cws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace.init(tmp_path_factory.mktemp("cv-ws"))
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def warm(cws: Workspace) -> Iterator[Estimator]:
    """One kept-alive job process shared by the tests (through clone)."""
    est = Estimator("xgboost", {"num_round": 12, "nthread": 1}, target="y", ws=cws, reuse_process=True)
    yield est
    est.close()


@pytest.fixture
def tracker(cws: Workspace) -> Iterator[Tracker]:
    t = Tracker(cws, capture_code_version=False)
    yield t
    t.close()


def _job_pids() -> set[int]:
    """The training-job processes this test process runs."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "loopml.train._job" in " ".join(p.cmdline()):
                out.add(p.pid)
        except psutil.Error:
            pass
    return out


# -- reports of folds trained one after another ----------------------------------------------------
def test_fold_reports_line_up_steps_and_average_the_folds_so_far() -> None:
    seen: list[tuple[int, float]] = []
    rep = FoldReports(lambda s, m: seen.append((s, m["m"])))
    for fold, rounds in enumerate((3, 3, 2)):  # the last fold stopped early (say, early stopping)
        cb = rep.callback(fold)
        for r in range(1, rounds + 1):
            cb(r, {"m": float(10 * fold + r)})
    # fold 0: its own values; fold 1 (steps 4..6): the mean of folds 0 and 1 at the same round; fold 2 (7, 8)
    assert seen == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 6.0), (5, 7.0), (6, 8.0), (7, 11.0), (8, 12.0)]
    rep2 = FoldReports(lambda s, m: seen.append((s, m["m"])))
    seen.clear()
    rep2.callback(0)(1, {"m": 1.0})  # fold 0 stopped after one round: fold 1 carries its last value
    rep2.callback(1)(1, {"m": 3.0})
    rep2.callback(1)(2, {"m": 5.0})
    assert seen == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_cv_splits_are_sklearns_and_refuse_what_cannot_be_split() -> None:
    y = np.array([0, 1] * 30)
    ours = cv_splits("binary", y, len(y), 3, seed=0)
    ref = list(StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros((len(y), 1)), y))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(ours, ref, strict=True))
    assert sorted(np.concatenate([va for _, va in cv_splits("regression", None, 10, 5, 0)]).tolist()) == list(
        range(10))
    groups = np.repeat(np.arange(6), 3)
    for tr, va in cv_splits("ranking", None, len(groups), 3, 0, groups):
        assert not set(groups[tr]) & set(groups[va])  # a group's rows stay together
    with pytest.raises(InvalidInput, match="smallest class has 2; use fewer folds"):
        cv_splits("binary", np.array([0] * 10 + [1] * 2), 12, 3, 0)
    with pytest.raises(InvalidInput, match="cross-validation is for binary, multiclass, regression, ranking "
                                           "problems, not clustering"):
        cv_splits("clustering", None, 10, 3, 0)
    with pytest.raises(InvalidInput, match="needs at least 5 rows; the training data has 3"):
        cv_splits("regression", None, 3, 5, 0)


def test_binary_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        y = rng.integers(0, 2, 300)
        p = np.round(rng.random(300), 1).astype(dtype)  # ties
        p[:4] = [0.0, 1.0, 0.0, 1.0]
        pred = (p > 0.5).astype(int)
        got = evaluate("binary", y, pred, proba=np.c_[1 - p, p])
        prec, rec, f1, _ = M.precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
        want = {"auc": M.roc_auc_score(y, p), "logloss": M.log_loss(y, p, labels=[0, 1]),
                "accuracy": M.accuracy_score(y, pred), "f1": f1, "precision": prec, "recall": rec}
        assert got == pytest.approx(want, rel=1e-12)
    assert evaluate("binary", np.zeros(5, int), np.zeros(5, int))["precision"] == 0.0  # zero_division=0
    yr, pr = rng.normal(size=50), rng.normal(size=50)
    got = evaluate("regression", yr, pr)
    assert got == pytest.approx({"rmse": M.mean_squared_error(yr, pr) ** 0.5, "mae": M.mean_absolute_error(yr, pr),
                                 "r2": M.r2_score(yr, pr)}, rel=1e-12)
    assert evaluate("regression", np.ones(4), np.ones(4))["r2"] == 1.0
    assert metric_direction("validation:logloss") == "minimize" and metric_direction("auc") == "maximize"


def test_multiclass_and_anomaly_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    for trial in range(40):
        n, k = int(rng.integers(5, 200)), int(rng.integers(3, 6))
        y = rng.integers(0, k, n)
        p = rng.random((n, k)).astype(np.float32 if trial % 2 else np.float64)
        pred = p.argmax(1) if trial % 3 else rng.integers(0, k - 1, n)  # a class never predicted
        got = evaluate("multiclass", y, pred, proba=p, n_classes=k)
        pn = p.astype(np.float64) / p.astype(np.float64).sum(axis=1, keepdims=True)
        want = {"accuracy": M.accuracy_score(y, pred), "logloss": M.log_loss(y, pn, labels=list(range(k))),
                "f1_macro": M.f1_score(y, pred, average="macro", zero_division=0)}
        assert got == pytest.approx(want, rel=1e-9)
    y = rng.integers(0, 2, 100)
    s = np.round(rng.normal(size=100), 1)  # anomaly scores with ties
    assert evaluate("anomaly_detection", y, s)["auc"] == pytest.approx(M.roc_auc_score(y, s), rel=1e-12)


def test_a_boosting_job_does_not_import_scikit_learn() -> None:
    """XGBoost is imported with scikit-learn hidden (0.7 s of the job's start); scoring needs none."""
    import subprocess
    import sys

    from loopml.train._job import preload_modules
    from loopml.train.algorithms import get_algorithm

    code = ("import sys; from loopml.train._job import _preload; _preload(sys.argv[1:], None); "
            "import xgboost, xgboost.compat as c, numpy as np; from loopml.train._metrics import evaluate; "
            "evaluate('binary', np.array([0, 1, 1]), np.array([0, 1, 0]), proba=np.array([[.9, .1], [.2, .8], "
            "[.6, .4]])); evaluate('multiclass', np.array([0, 1, 2]), np.array([0, 1, 1]), "
            "proba=np.eye(3)); print(c.SKLEARN_INSTALLED, 'sklearn' in sys.modules, 'scipy.stats' in sys.modules)")
    mods = preload_modules(get_algorithm("xgboost"))
    assert mods[0] == "without-sklearn:xgboost"
    out = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
    # once xgboost is in, scikit-learn imports normally (cross-validation splits use it)
    code2 = code.replace("print(", "import sklearn.model_selection; print(")
    out = subprocess.run([sys.executable, "-c", code2, *mods], capture_output=True, text=True, check=True)
    assert out.stdout.split()[1] == "True"


def test_a_warm_job_process_keeps_the_rows_it_read(tmp_path: Path) -> None:
    from loopml.train._job import PreparedData
    from loopml.train.estimator import stage_input

    df = churn(50, seed=1)
    first = stage_input(df, tmp_path / "a.arrow")
    same = stage_input(df.copy(), tmp_path / "b.arrow")  # other file, same content
    other = stage_input(churn(50, seed=2), tmp_path / "c.arrow")
    cache = PreparedData()
    (a, none) = cache.read([first.src, None], None)
    assert none is None and a is not None and a.shape == df.shape
    (b,) = cache.read([same.src], None)
    assert b is not None and b is not a and np.shares_memory(b["x1"].to_numpy(), a["x1"].to_numpy())
    b["new"] = 1  # a job adds columns to its copy, not to the kept frame
    (c,) = cache.read([same.src], None)
    assert c is not None and "new" not in c.columns
    (d,) = cache.read([other.src], None)
    assert d is not None and not np.shares_memory(d["x1"].to_numpy(), a["x1"].to_numpy())
    assert list(cache.frames) == [f"file:{other.src['sha256']}"]  # only the last job's inputs are kept


def test_metric_events_go_in_batches_and_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.train import _job

    sent: list[dict[str, Any]] = []
    clock = [100.0]
    monkeypatch.setattr(_job.time, "monotonic", lambda: clock[0])
    batches = _job.MetricBatches(sent.append)
    batches.emit({"event": "metric", "step": 1, "metrics": {"a": 1.0}})  # the first goes at once
    for step in (2, 3, 4):
        clock[0] += 0.01
        batches.emit({"event": "metric", "step": step, "metrics": {"a": float(step)}})
    assert [e["points"] for e in sent] == [[[1, {"a": 1.0}]], [[2, {"a": 2.0}], [3, {"a": 3.0}], [4, {"a": 4.0}]]]
    batches.emit({"event": "metric", "step": 5, "metrics": {"a": 5.0}})
    batches.emit({"event": "result", "metrics": {}})  # pending points first, then the result
    assert sent[-2] == {"event": "metrics", "points": [[5, {"a": 5.0}]]} and sent[-1]["event"] == "result"
    batches.flush()
    assert len(sent) == 4


# -- cross-validation jobs -----------------------------------------------------------------------
def test_cross_validate_reports_fold_means_per_iteration(warm: Estimator, tracker: Tracker) -> None:
    df = churn(360, seed=4)
    steps: list[tuple[int, float]] = []
    cv = warm.clone().cross_validate(df, 3, run_name="cv3",
                                     on_metric=lambda s, m: steps.append((s, m["validation:auc"])))
    # one report per boosting round of each fold, on one scale: fold 2's round 1 is step 13
    assert [s for s, _ in steps] == list(range(1, 37))
    assert len(cv.folds) == 3 and cv.problem_type == "binary"
    aucs = [f["validation:auc"] for f in cv.folds]
    assert cv.metrics["validation:auc"] == pytest.approx(np.mean(aucs))
    assert steps[11][1] == pytest.approx(aucs[0], abs=1e-4)  # fold 1 alone after its last round
    assert steps[-1][1] == pytest.approx(np.mean(aucs), abs=1e-4)  # all folds' last round: the final mean
    run = tracker.get_run(cv.run_id)
    assert run.status == "FINISHED" and run.tags["cv.folds"] == "3"
    assert run.metrics["validation:auc"] == pytest.approx(cv.metrics["validation:auc"])
    assert [p.value for p in tracker.metric_history(cv.run_id, "validation:auc.fold")] == pytest.approx(aucs)
    assert run.metrics["validation:auc.std"] == pytest.approx(np.std(aucs))
    assert len(tracker.metric_history(cv.run_id, "validation:logloss")) >= 36
    names = {a.name for a in run.artifacts}
    assert names == {"logs/train.log"}  # no model is kept
    log = tracker.read_artifact(cv.run_id, "logs/train.log").decode()
    assert "3-fold cross-validation (stratified)" in log and "fold 3: validation:accuracy=" in log
    assert len(_job_pids()) == 1  # folds run in the job process itself


def test_fit_with_cv_trains_on_all_rows(warm: Estimator, tracker: Tracker) -> None:
    df = churn(300, seed=6)
    result = warm.clone().fit(df, cv=3)
    assert {"train:auc", "validation:auc"} <= set(result.metrics)
    manifest = result.model.manifest
    assert manifest["training"]["train_rows"] == 300
    assert manifest["training"]["cross_validation"] == {"folds": 3, "split": "stratified", "seed": 0}
    run = tracker.get_run(result.run_id)
    assert "model/manifest.json" in {a.name for a in run.artifacts}
    assert len(tracker.metric_history(result.run_id, "validation:auc.fold")) == 3
    regression = warm.clone(algo="test_mean", hyperparameters={"rounds": 4}, target="x1")
    cv = regression.cross_validate(df.drop(columns=["day"]), 4)
    assert len(cv.folds) == 4 and "validation:rmse" in cv.metrics


@pytest.mark.parametrize(("call", "message"), [
    (lambda e, df: e.fit(df, df, cv=3), "cross-validation (cv=...) holds out parts of the training data"),
    (lambda e, df: e.fit(df, cv=1), "cross-validation folds must be an integer >= 2, got 1"),
    (lambda e, df: e.cross_validate(df, 0), "cross-validation folds must be an integer >= 2, got 0"),
    (lambda e, df: e.cross_validate(df.assign(y=[1] * 58 + [0] * 2), 3), "smallest class has 2; use fewer"),
    (lambda e, df: e.clone(algo="kmeans", hyperparameters={"k": 2}, target=None).cross_validate(
        df.drop(columns=["day", "city", "y"]), 3), "cross-validation is for binary, multiclass, regression"),
])
def test_cross_validation_bad_input(warm: Estimator, call: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        call(warm.clone(), churn(60, seed=1))
    assert message in str(e.value)


# -- stopping a job ---------------------------------------------------------------------------------
def test_a_stopped_job_keeps_its_process_for_the_next_one(warm: Estimator, tracker: Tracker) -> None:
    df, val = churn(300, seed=0), churn(100, seed=1)
    warm.clone().fit(df, val)  # the warm process exists
    before = _job_pids()

    class Prune(Exception):
        pass

    def prune(step: int, metrics: Any) -> None:
        if step == 3:
            raise Prune("not promising")

    seen: list[int] = []
    for call in (lambda e: e.fit(df, val, run_name="stop-fit", on_metric=lambda s, m: (seen.append(s), prune(s, m))),
                 lambda e: e.cross_validate(df, 3, run_name="stop-cv", on_metric=prune)):
        with pytest.raises(Prune):
            call(warm.clone(hyperparameters={"num_round": 5000}))
    assert max(seen) < 50  # stopped at the next rounds, far from 5000
    for name in ("stop-fit", "stop-cv"):
        run = tracker.search_runs(filter=f"attributes.name = '{name}'")[0]
        assert max(p.step for p in tracker.metric_history(run.id, "validation:auc")) < 1000
        assert run.status == "KILLED" and run.message == "stopped by the caller: Prune: not promising"
        log = tracker.read_artifact(run.id, "logs/train.log").decode()
        assert "the caller asked" in log  # the job stopped itself, it was not killed
    result = warm.clone().fit(df, val)
    assert result.metrics["validation:auc"] > 0.5
    assert _job_pids() == before  # no new process: every job ran in the same one


def test_a_job_that_ignores_the_stop_is_killed(cws: Workspace, tracker: Tracker,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimator_module, "STOP_GRACE_S", 0.5)

    class Stop(Exception):
        pass

    def on_log(line: str) -> None:
        if "crashy fit starting" in line:
            raise Stop("enough")

    est = Estimator("test_crashy", {"mode": "sleep"}, target="x1", ws=cws, reuse_process=True, timeout=60)
    try:
        with pytest.raises(Stop):
            est.fit(churn(50, seed=0).drop(columns=["day"]), run_name="deaf", on_log=on_log)
    finally:
        est.close()
    run = tracker.search_runs(filter="attributes.name = 'deaf'")[0]
    assert run.status == "KILLED" and "Stop: enough" in (run.message or "")
    with pytest.raises(TrainingError):  # and a crash after a stop request is still a crash, not a hang
        Estimator("test_crashy", {"mode": "exit"}, target="x1", ws=cws).fit(
            churn(50, seed=0).drop(columns=["day"]), on_metric=lambda s, m: None)


def test_cross_validation_with_a_recipe_is_deterministic(warm: Estimator) -> None:
    from loopml.prep import Recipe
    from loopml.prep.steps import OneHot, Standardize

    df = churn(240, seed=9).drop(columns=["day"])
    est = warm.clone(recipe=Recipe([Standardize(columns=["x1", "x2"]), OneHot(columns=["city"])]))
    cv = est.cross_validate(df, 3)
    full = est.fit(df, cv=3)
    assert full.metrics["validation:auc"] == pytest.approx(cv.metrics["validation:auc"])
    assert full.model.manifest["recipe"]["fitted_in_job"] is True


def test_the_job_process_reuses_prepared_data_for_the_same_data_and_recipe(warm: Estimator,
                                                                           tracker: Tracker) -> None:
    from loopml.prep import Recipe
    from loopml.prep.steps import OneHot, Standardize

    df, val = churn(200, seed=11).drop(columns=["day"]), churn(80, seed=12).drop(columns=["day"])
    est = warm.clone(recipe=Recipe([Standardize(columns=["x1", "x2"]), OneHot(columns=["city"])]))
    first = est.fit(df, val)
    again = est.clone(hyperparameters={"max_depth": 2}).fit(df, val)
    same = est.fit(df, val)
    logs = [tracker.read_artifact(r.run_id, "logs/train.log").decode() for r in (first, again, same)]
    assert "fitted the recipe (2 steps)" in logs[0]
    assert all("reusing the recipe fitted by the previous job" in text for text in logs[1:])
    assert same.metrics == first.metrics and again.metrics != first.metrics
    np.testing.assert_array_equal(same.model.predict_proba(val), first.model.predict_proba(val))
    other = est.fit(df.assign(x1=df["x1"] * 2), val)  # other data: prepared again
    assert "fitted the recipe" in tracker.read_artifact(other.run_id, "logs/train.log").decode()
