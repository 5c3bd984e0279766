"""A tuning job killed mid-way resumes from its study without losing finished trials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.track import Tracker
from loopml.train import Estimator
from loopml.tune import HyperparameterTuner, get_tuning_job
from loopml.tune._storage import open_studies

REPO = Path(__file__).resolve().parents[2]


def _states(url: str, job: str) -> list[str]:
    with open_studies(url) as studies:
        try:
            study = optuna.load_study(study_name=job, storage=studies.storage(job))
        except KeyError:
            return []
        return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_sigkill_mid_job_then_resume_keeps_finished_trials(tmp_path: Path, churn_df: pd.DataFrame) -> None:
    ws = Workspace.init(tmp_path)
    Catalog(ws).write("churn", churn_df)
    url = ws.settings.metadata_url
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "loopml", "tune", "--algo", "xgboost", "--data", "churn", "--target", "y",
           "--metric", "validation:auc", "--strategy", "random", "--max-trials", "6", "--hp", "num_round=150",
           "--hp", "nthread=1", "--name", "killme", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        states: list[str] = []
        while time.monotonic() < deadline:  # kill while a trial runs, after two finished
            states = _states(url, "killme")
            if states.count("COMPLETE") >= 2 and states[-1] == "RUNNING":
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        else:
            pytest.fail(f"the job did not get going in time: {states}")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = {t.number: t for t in get_tuning_job(ws, "killme").trials if t.state == "COMPLETE"}
    assert len(before) >= 2

    tuner = HyperparameterTuner.resume("killme", ws)
    result = tuner.fit()
    assert result.status == "Completed"
    counted = [t for t in result.trials if t.counted]
    assert len(counted) == 6 and all(t.state == "COMPLETE" for t in counted)
    after = {t.number: t for t in result.trials}
    for n, t in before.items():  # finished trials are kept as they were
        assert after[n].value == t.value and after[n].run_id == t.run_id
    interrupted = [t for t in result.trials if t.interrupted]
    assert len(interrupted) == 1 and interrupted[0].state == "FAIL"
    tracker = Tracker(ws, capture_code_version=False)
    try:
        parent = tracker.get_run(result.run_id)
        assert parent.status == "FINISHED" and "tuning.resumed" in parent.tags
        children = tracker.child_runs(result.run_id)
        assert all(c.status in ("FINISHED", "KILLED") for c in children)
        assert {t.run_id for t in counted} <= {c.id for c in children}
    finally:
        tracker.close()
        ws.close()


def test_resume_on_any_backend_counts_only_real_trials(any_ws: Workspace, churn_df: pd.DataFrame) -> None:
    est = Estimator("xgboost", {"num_round": 5, "nthread": 1}, target="y", ws=any_ws)
    HyperparameterTuner(est, ranges={"max_depth": (2, 5)}, max_trials=2, name="again").fit(churn_df)
    with open_studies(any_ws.settings.metadata_url) as studies:  # a worker died holding a trial
        optuna.load_study(study_name="again", storage=studies.storage("again")).ask()
    result = HyperparameterTuner.resume("again", any_ws, max_trials=4).fit()
    assert [t.state for t in result.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert result.trials[2].interrupted and result.max_trials == 4 and len(result.counts()) == 1
    with pytest.raises(Exception, match="trains on its own data"):
        HyperparameterTuner.resume("again", any_ws).fit(churn_df)
