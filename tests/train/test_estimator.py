"""Training jobs in their own process: runs, streamed logs and metrics, failures, timeouts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.errors import InvalidInput
from loopml.prep import Recipe, fit_recipe
from loopml.prep.steps import OneHot, Standardize
from loopml.store.lineage import EntityRef
from loopml.track import Tracker
from loopml.train import Estimator, TrainingError, load_model_package
from tests.train import _custom  # noqa: F401  (registers test_mean and test_crashy)
from tests.train._data import churn


@pytest.fixture(scope="module")
def mws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace.init(tmp_path_factory.mktemp("train-ws"))
    cat = Catalog(ws)
    cat.write("churn", churn(400, seed=0))
    cat.write("churn_val", churn(150, seed=1))
    one = churn(50, seed=2)
    one["y"] = 1
    cat.write("one_class", one)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def pool(mws: Workspace) -> Iterator[Estimator]:
    """One kept-alive job process shared (through clone) by the tests that do not kill it."""
    est = Estimator("xgboost", {"num_round": 10}, target="y", ws=mws, experiment="tests", reuse_process=True)
    yield est
    est.close()


@pytest.fixture
def tracker(mws: Workspace) -> Iterator[Tracker]:
    t = Tracker(mws, capture_code_version=False)
    yield t
    t.close()


def test_fit_records_everything(pool: Estimator, mws: Workspace, tracker: Tracker) -> None:
    lines: list[str] = []
    steps: list[int] = []
    result = pool.clone().fit("churn", "churn_val", run_name="first", on_log=lines.append,
                              on_metric=lambda s, m: steps.append(s))
    assert steps == list(range(1, 11))
    assert any("train data churn:1: 400 rows" in line for line in lines)
    assert all(line.startswith("[first] ") for line in lines)
    assert result.problem_type == "binary" and result.metrics["validation:auc"] > 0.7

    run = tracker.get_run(result.run_id)
    assert run.status == "FINISHED" and run.experiment == "tests" and run.seed == 0
    assert run.params["max_depth"] == "6" and run.params["num_round"] == "10" and run.params["target"] == "y"
    assert run.tags["problem_type"] == "binary" and run.tags["model.sha256"] == result.model_sha256
    assert {(d.ref, d.role) for d in run.datasets} == {("churn:1", "train"), ("churn_val:1", "validation")}
    names = {a.name for a in run.artifacts}
    assert {"logs/train.log", "model/manifest.json", "model/model/model.ubj", "model/recipe.json",
            "recipe/recipe.json"} <= names
    assert "validation:auc" in tracker.read_artifact(result.run_id, "logs/train.log").decode()
    history = tracker.metric_history(result.run_id, "validation:auc")
    assert [p.step for p in history][:10] == list(range(1, 11))
    assert run.metrics["validation:auc"] == pytest.approx(result.metrics["validation:auc"])
    down = mws.lineage.downstream(EntityRef("run", result.run_id), depth=1)
    assert [(e.relation, e.dst.kind, e.dst.id) for e in down] == [("produced", "model_package", result.model_sha256)]
    assert {e.src.kind for e in mws.lineage.upstream(EntityRef("run", result.run_id), depth=1)} == {"dataset_version"}

    # the model: from the result, and from the run's artifacts by id, identical to training
    df = Catalog(mws).read_pandas("churn_val")
    direct = load_model_package(result.model_sha256, ws=mws)
    np.testing.assert_array_equal(result.model.predict_proba(df), direct.predict_proba(df))
    assert result.model.predict_one(df.drop(columns=["y"]).iloc[0].to_dict())["prediction"] in (0, 1)
    assert not (mws.home / "jobs").exists() or not any((mws.home / "jobs").iterdir())


def test_dataframes_and_recipes(pool: Estimator, mws: Workspace, tracker: Tracker, tmp_path: Path) -> None:
    df = churn(300, seed=5)
    # a recipe YAML file: fitted on the training data inside the job
    path = tmp_path / "recipe.yaml"
    path.write_text(Recipe([Standardize(columns=["x1", "x2"]), OneHot(columns=["city"])]).to_yaml())
    lin = pool.clone(algo="linear", hyperparameters={}, recipe=str(path))
    result = lin.fit(df.drop(columns=["day"]), df.drop(columns=["day"]).head(100))
    run = tracker.get_run(result.run_id)
    assert run.tags["data.train"].startswith("DataFrame 300x4 sha256:") and run.datasets == []
    model = result.model
    assert model.manifest["recipe"]["fitted_in_job"] is True and "city_paris" in model.signature.features
    assert [s.kind for s in model.recipe.steps] == ["standardize", "one_hot"]  # type: ignore[union-attr]

    # a fitted recipe from the catalog, by NAME:VER: recorded, and lineage recipe -> run
    info = fit_recipe(mws, Recipe([OneHot(columns=["city"])]), "churn", "enc")
    result = pool.clone(recipe="enc:1").fit("churn")
    manifest = result.model.manifest
    assert manifest["recipe"]["ref"] == "enc:1" and manifest["recipe"]["id"] == info.id
    up = mws.lineage.upstream(EntityRef("run", result.run_id), depth=1)
    assert ("used_by", "recipe_version") in {(e.relation, e.src.kind) for e in up}
    assert tracker.get_run(result.run_id).params["recipe"] == "enc:1"


def test_user_algorithm_and_metric_callback_stop(pool: Estimator, tracker: Tracker) -> None:
    est = pool.clone(algo="test_mean", hyperparameters={"shift": 1.0, "rounds": 4}, target="x1")
    result = est.fit("churn", "churn_val")
    assert result.problem_type == "regression"
    assert result.model.predict_one({"x1": 0.0, "x2": 1.0, "city": "paris", "day": "2024-02-01",
                                     "y": 0})["prediction"] == pytest.approx(result.model.predict(
                                         Catalog(pool.ws).read_pandas("churn").head(1))[0])  # type: ignore[arg-type]
    assert [p.step for p in tracker.metric_history(result.run_id, "validation:rmse")][:4] == [1, 2, 3, 4]

    class Prune(Exception):
        pass

    def prune(step: int, metrics: Any) -> None:
        if step == 2:
            raise Prune("not promising")

    with pytest.raises(Prune):
        est.clone(hyperparameters={"rounds": 50}).fit("churn", "churn_val", run_name="pruned", on_metric=prune)
    run = tracker.search_runs(filter="attributes.name = 'pruned'")[0]
    assert run.status == "KILLED" and "Prune: not promising" in (run.message or "")
    assert "logs/train.log" in {a.name for a in run.artifacts}


def test_bad_input_before_any_run(pool: Estimator, tracker: Tracker) -> None:
    with pytest.raises(InvalidInput, match=r"unknown algorithm 'xgbost' \(did you mean 'xgboost'\?\); known: ") as e:
        Estimator("xgbost", target="y")
    assert "forecast, isolation_forest" in str(e.value)
    with pytest.raises(InvalidInput, match="unknown hyperparameter 'max_dept' for xgboost"):
        Estimator("xgboost", {"max_dept": 3}, target="y")
    with pytest.raises(InvalidInput, match=r"max_depth=0 is out of range \[1, 20\]"):
        Estimator("xgboost", {"max_depth": 0}, target="y")
    before = len(tracker.search_runs())
    with pytest.raises(InvalidInput, match="target column 'churned' is not in the training data churn:1; "
                                           "columns: x1, x2, city, day, y"):
        pool.clone(target="churned").fit("churn")
    with pytest.raises(InvalidInput, match="xgboost needs a target column"):
        pool.clone(target=None).fit("churn")
    assert len(tracker.search_runs()) == before


def test_failures_in_the_job_fail_the_run_and_keep_logs(pool: Estimator, tracker: Tracker) -> None:
    with pytest.raises(InvalidInput) as e:
        pool.clone().fit("one_class", run_name="one-class")
    assert "the target 'y' has one class (1) in the training data" in str(e.value)
    run = tracker.search_runs(filter="attributes.name = 'one-class'")[0]
    assert run.status == "FAILED" and "has one class" in (run.message or "")
    assert "has one class" in tracker.read_artifact(run.id, "logs/train.log").decode()

    # an invalid combination inside LightGBM: its own message comes back
    with pytest.raises(TrainingError) as t:
        pool.clone(algo="lightgbm", hyperparameters={"boosting": "rf"}).fit("churn", run_name="lgb-rf")
    assert "LightGBMError" in str(t.value) and "bagging_freq" in str(t.value) and t.value.run_id
    run = tracker.get_run(t.value.run_id)  # type: ignore[arg-type]
    assert run.status == "FAILED" and "bagging" in (run.message or "")
    assert "Traceback" in tracker.read_artifact(run.id, "logs/train.log").decode()


@pytest.mark.parametrize(("mode", "message"), [
    ("raise", "RuntimeError: the library refused: invalid combination of knobs"),
    ("exit", "exited with code 7 without a result"),
    ("segfault", "died from signal SIGSEGV"),
])
def test_a_crashing_job_does_not_take_the_caller_down(mode: str, message: str, mws: Workspace,
                                                      tracker: Tracker) -> None:
    est = Estimator("test_crashy", {"mode": mode}, target="x1", ws=mws, experiment="tests")
    with pytest.raises(TrainingError) as e:
        est.fit("churn", run_name=f"crash-{mode}")
    assert message in str(e.value) and "FAILED" in str(e.value)
    run = tracker.get_run(e.value.run_id)  # type: ignore[arg-type]
    assert run.status == "FAILED" and message in (run.message or "")
    log = tracker.read_artifact(run.id, "logs/train.log").decode()
    assert f"crashy fit starting in mode {mode}" in log


def test_timeout_kills_the_process_group(mws: Workspace, tracker: Tracker) -> None:
    est = Estimator("test_crashy", {"mode": "sleep"}, target="x1", ws=mws, timeout=1.5)
    with pytest.raises(TrainingError, match=r"timed out after 1\.5 s") as e:
        est.fit("churn")
    run = tracker.get_run(e.value.run_id)  # type: ignore[arg-type]
    assert run.status == "FAILED" and "timed out" in (run.message or "")
    assert "crashy fit starting in mode sleep" in tracker.read_artifact(run.id, "logs/train.log").decode()


def test_abort_stops_fits_running_in_other_threads(mws: Workspace, tracker: Tracker) -> None:
    """How a tuner stops the trials its threads are running when the user presses Ctrl-C."""
    import threading
    import time

    est = Estimator("test_crashy", {"mode": "sleep"}, target="x1", ws=mws, experiment="tests")
    lines: list[str] = []
    errors: list[BaseException] = []

    def fit() -> None:
        try:
            est.clone().fit("churn", on_log=lines.append)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=fit)
    thread.start()
    deadline = time.monotonic() + 60
    while not any("crashy fit starting" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert est.abort() == 1
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - started < 15  # not the job's 120 s sleep
    assert len(errors) == 1 and isinstance(errors[0], TrainingError) and "SIGKILL" in str(errors[0])
    assert tracker.get_run(errors[0].run_id).status == "FAILED"  # type: ignore[attr-defined]
    assert est.abort() == 0  # nothing runs any more


def test_forecast_with_roles(pool: Estimator, mws: Workspace) -> None:
    days = pd.date_range("2024-01-01", periods=80, freq="D")
    frames = [pd.DataFrame({"store": s, "day": days, "sales": base + np.sin(np.arange(80))})
              for s, base in (("a", 5.0), ("b", 9.0))]
    df = pd.concat(frames, ignore_index=True)
    train, val = df[df.day < "2024-03-10"], df[df.day >= "2024-03-10"]
    est = pool.clone(algo="forecast", hyperparameters={"lags": 7, "num_boost_round": 30}, target="sales",
                     roles={"time": "day", "series": "store"})
    result = est.fit(train, val)
    assert result.problem_type == "forecasting" and "validation:mase" in result.metrics
    model = result.model
    assert [c["name"] for c in model.signature.inputs] == ["store", "day"]
    assert isinstance(model.predict_one({"store": "a", "day": "2024-03-12"})["prediction"], float)
    with pytest.raises(InvalidInput, match="has no role 'user'"):
        pool.clone(algo="forecast", roles={"user": "u"})


def test_job_environment_passes_our_import_paths() -> None:
    from loopml.train._worker import child_env

    env = child_env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert str(Path(__file__).resolve().parents[2]) in env.get("PYTHONPATH", "").split(os.pathsep)


@pytest.mark.parametrize("algo", ["xgboost", "lightgbm"])
def test_iteration_metrics_limit_what_each_round_computes(pool: Estimator, algo: str) -> None:
    seen: list[set[str]] = []
    hp = {"num_round": 4} if algo == "xgboost" else {"num_boost_round": 4}
    est = pool.clone(algo=algo, hyperparameters=hp, iteration_metrics=["validation:auc"])
    result = est.fit("churn", "churn_val", on_metric=lambda s, m: seen.append(set(m)))
    assert seen and all(keys == {"validation:auc"} for keys in seen)
    assert {"validation:auc", "validation:logloss", "train:auc"} <= set(result.metrics)  # final ones: all
    everything: list[set[str]] = []
    pool.clone(algo=algo, hyperparameters=hp).fit("churn", "churn_val", on_metric=lambda s, m: everything.append(set(m)))
    assert everything[0] == {"validation:auc", "validation:logloss"}
    with pytest.raises(InvalidInput, match="list of metric names"):
        pool.clone(iteration_metrics="validation:auc")


def test_a_job_process_started_early_runs_the_fit(mws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """`loopml train` starts the job before the CLI loads; the fit then uses that process."""
    from loopml.train import _worker

    monkeypatch.delenv("LOOPML_NO_PRESTART", raising=False)
    for argv in (["--data", "d", "--help", "--algo", "xgboost"], ["--data", "d"], ["--algo"], ["-a", "--data"]):
        _worker.prestart_from_argv(argv)
        assert not _worker._PRESTARTED, argv
    monkeypatch.setenv("LOOPML_NO_PRESTART", "1")
    _worker.prestart_from_argv(["--algo", "xgboost"])
    assert not _worker._PRESTARTED
    monkeypatch.delenv("LOOPML_NO_PRESTART")

    _worker.prestart_from_argv(["--data", "churn", "--algo=xgboost", "--target", "y"])
    early = _worker._PRESTARTED["xgboost"]
    result = Estimator("xgboost", {"num_round": 3}, target="y", ws=mws, experiment="tests").fit("churn")
    assert result.metrics["train:auc"] > 0.5
    assert not _worker._PRESTARTED
    assert early.proc.wait(timeout=30) == 0  # it ran the job; an unused one would still wait for its spec
    # an algorithm the early start does not know leaves the fit to start its own process
    _worker.prestart("no_such_algo")
    late = _worker.take_prestarted("no_such_algo")
    assert late is not None
    late.close()
    assert late.proc.wait(timeout=30) != 0  # killed, or exits at the end of its empty stdin


def test_loopml_train_command_in_a_fresh_process(mws: Workspace) -> None:
    """The console script's entry: the early job start, then the command line."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "loopml", "train", "--algo", "xgboost", "--data", "churn", "--target", "y",
         "--hp", "num_round=3", "--json", "--quiet"],
        cwd=mws.root, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["metrics"]["train:auc"] > 0.5
    bad = subprocess.run([sys.executable, "-m", "loopml", "train", "--algo", "xgboost", "--data", "nope"],
                         cwd=mws.root, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "nope" in bad.stderr


def test_fit_on_a_postgresql_workspace(pool: Estimator, pg_url: str, tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "pg-ws", metadata_url=pg_url) as ws:
        Catalog(ws).write("churn", churn(200, seed=7))
        result = pool.clone(ws=ws, experiment="pg").fit("churn", run_name="on-pg")
        with Tracker(ws, capture_code_version=False) as tracker:
            run = tracker.get_run(result.run_id)
            assert run.status == "FINISHED" and [d.ref for d in run.datasets] == ["churn:1"]
        assert load_model_package(result.model_sha256, ws=ws).problem_type == "binary"
