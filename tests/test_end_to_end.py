"""End to end, on the embedded defaults: drift on a live endpoint retrains the model and canaries the winner.

Ingest data, train and deploy v1, send traffic over real HTTP (127.0.0.1),
send drifted traffic, the drift monitor raises an alarm, the scheduler fires
the retraining trigger on new labelled data, the champion/challenger pipeline
finds that v2 beats v1 and deploys it by canary while continuous traffic gets
no failed answer.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from loopml import Workspace
from loopml._demo.data import FEATURES, TARGET, make_churn
from loopml._demo.lifecycle import retrain_pipeline_text
from loopml._demo.server import Client, Traffic, serving

pytestmark = pytest.mark.slow

EXPECT = """\
columns:
  customer_id: {type: int, unique: true}
  monthly_charges: {type: float, min: 0}
  churn: {allowed: [0, 1]}
"""
HP = {"num_round": 30, "max_depth": 4}


def _wait_for_capture(ws: Workspace, since: object, rows: int, timeout_s: float = 20.0) -> None:
    from loopml.serve.capture import read_capture

    deadline = time.monotonic() + timeout_s
    while len(read_capture(ws, "churn", since=since)) < rows:  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "captured requests did not reach the capture files"
        time.sleep(0.1)


def test_drift_alarm_retrains_and_canaries_the_winner_without_a_failed_request(tmp_path: Path) -> None:
    from loopml._util import utcnow
    from loopml.data import Catalog
    from loopml.data.ingest import ingest
    from loopml.data.sources import FileSource
    from loopml.metrics import alarms
    from loopml.monitor import baseline, get_result, run_data_quality
    from loopml.pipelines import get_execution
    from loopml.registry import APPROVED, get_model_version, register_model, set_alias
    from loopml.serve import endpoints as eps
    from loopml.serve.capture import read_capture
    from loopml.train import Estimator
    from loopml.triggers import (
        add_monitor_schedule,
        add_trigger,
        list_firings,
        run_monitor_schedule,
        run_scheduler,
    )

    ws = Workspace.init(tmp_path / "ws")
    try:
        # -- data in, v1 trained, registered, deployed --------------------------------------------
        csv = tmp_path / "customers.csv"
        make_churn(1500, seed=11, broken=0.01).to_csv(csv, index=False)
        (tmp_path / "expect.yaml").write_text(EXPECT)
        info = ingest(ws, FileSource(str(csv)), "customers", expectations=tmp_path / "expect.yaml")
        assert info.quarantine_count > 0 and info.row_count + info.quarantine_count == 1500
        cat = Catalog(ws)
        df = cat.read_pandas(info, columns=[*FEATURES, TARGET])
        cat.write("churn_train", df[:1100])
        with Estimator("xgboost", HP, target=TARGET, ws=ws) as est:
            v1 = register_model(ws, est.fit("churn_train"), "churn", approval=APPROVED)
        set_alias(ws, v1.ref, "production")
        baseline(ws, model=v1.ref)
        eps.deploy(ws, "churn", model="churn@production", capture_percentage=100, api_key_required=True)
        key = eps.create_api_key(ws, "churn").key
        alarms.put_alarm(ws, "churn-drift", metric="dataset_drift_share", threshold=0.1, comparison=">",
                         dimensions={"endpoint": "churn", "monitor": "data_quality"}, statistic="Maximum",
                         period_s=600)
        alarms.put_alarm(ws, "churn-5xx", metric="Invocation5XXErrors", threshold=0, comparison=">",
                         dimensions={"endpoint": "churn"}, statistic="Sum", period_s=10,
                         treat_missing="notBreaching")
        sched = add_monitor_schedule(ws, "churn", every="1h", window="1h")
        pipeline = tmp_path / "retrain.yaml"
        pipeline.write_text(retrain_pipeline_text())
        add_trigger(ws, "retrain-on-drift", pipeline=str(pipeline), event_type="alarm.state_changed",
                    event_filter={"alarm": "churn-drift", "new_state": "ALARM"}, executor="thread",
                    params={"dataset": "churn_fresh", "holdout": "churn_fresh_holdout", "num_round": 30,
                            "strategy": "canary:30:3", "rollback_alarms": "churn-5xx", "margin": 0.02})

        with serving(ws, metrics_flush_interval_s=0.5, capture_flush_interval_s=0.1) as url, \
                Client(url, "churn", key) as client:
            # -- traffic like the training data: no violation, the alarm is OK -----------------------
            t0 = utcnow()
            answers = client.send(make_churn(150, seed=12)[FEATURES], batch=25)
            assert [a.status for a in answers] == [200] * 6
            assert {a.variant for a in answers} == {"AllTraffic"} and len(answers[0].predictions) == 25
            with Client(url, "churn") as anonymous:
                assert anonymous.invoke([dict.fromkeys(FEATURES)]).status == 401
            _wait_for_capture(ws, t0, 150)
            ok = run_data_quality(ws, endpoint="churn", since=t0)
            assert ok.status == "Completed", ok.summary.get("violations")
            assert [c.new_state for c in alarms.evaluate_alarms(ws, names=["churn-drift"])] == ["OK"]

            # -- drifted traffic: the scheduled monitor finds it --------------------------------------
            t1 = utcnow()
            answers = client.send(make_churn(300, seed=13, drift=True)[FEATURES], batch=25)
            assert all(a.status == 200 for a in answers)
            _wait_for_capture(ws, t1, 300)
            run = run_monitor_schedule(ws, sched.name)
            assert run.status == "CompletedWithViolations", run.error
            res = get_result(ws, str(run.result_id))
            assert {"monthly_charges", "plan"} <= set(res.summary["drifted_features"])
            assert "categorical_values_check" in {v["constraint_check_type"] for v in res.summary["violations"]}

            # -- new labelled data; the scheduler raises the alarm and the trigger retrains ------------
            fresh = make_churn(1600, seed=14, drift=True, first_id=1_000_000)[[*FEATURES, TARGET]]
            cat.write("churn_fresh", fresh[:1200])
            cat.write("churn_fresh_holdout", fresh[1200:])
            t2 = utcnow()
            with Traffic(client, make_churn(200, seed=15, drift=True)[FEATURES], batch=4, pause_s=0.01) as traffic:
                stats = run_scheduler(ws, once=True)
            assert traffic.requests >= 50, traffic.requests
            assert traffic.failed == 0, (traffic.statuses, traffic.errors)
            assert stats.firings == 1, stats

        # -- what happened, from the records ---------------------------------------------------------
        assert alarms.get_alarm(ws, "churn-drift").state == "ALARM"
        (firing,) = list_firings(ws, trigger="retrain-on-drift")
        assert firing.status == "Succeeded", firing.error
        ex = get_execution(ws, str(firing.execution_id))
        status = {s.name: s.status for s in ex.steps}
        assert ex.status == "Succeeded" and status["not_promoted"] == "Skipped", status
        assert all(status[s] == "Succeeded" for s in ("train", "evaluate", "register", "baseline", "deploy",
                                                       "promote")), status
        ev = ex.step("evaluate").outputs
        assert ev["beats_baseline"] is True and ev["baseline"] == "churn@production"
        assert ev["metrics"]["roc_auc"] > ev["baseline_metrics"]["roc_auc"] + 0.02
        v2 = get_model_version(ws, "churn@production")
        assert v2.ref == "churn:2" and v2.approval_status == APPROVED
        assert eps.get_endpoint(ws, "churn").config.model_refs() == ["churn:2"]
        # the canary: both models answered the live traffic, the new one more and more
        served = Counter(read_capture(ws, "churn", since=t2)["model"])
        assert served["churn:1"] > 0 and served["churn:2"] > 0, served
        # the trigger fires once per event: another scheduler pass starts nothing
        assert run_scheduler(ws, once=True).firings == 0
        assert len(list_firings(ws, trigger="retrain-on-drift")) == 1
    finally:
        ws.close()


def test_a_challenger_that_does_not_win_stays_out_and_says_why(tmp_path: Path) -> None:
    from loopml.data import Catalog
    from loopml.pipelines import run_pipeline
    from loopml.registry import APPROVED, list_versions, register_model, set_alias
    from loopml.serve import endpoints as eps
    from loopml.train import Estimator

    ws = Workspace.init(tmp_path / "ws")
    try:
        df = make_churn(1000, seed=21)[[*FEATURES, TARGET]]
        cat = Catalog(ws)
        cat.write("old", df[:700])
        cat.write("old_holdout", df[700:])
        with Estimator("xgboost", HP, target=TARGET, ws=ws) as est:
            set_alias(ws, register_model(ws, est.fit("old"), "churn", approval=APPROVED).ref, "production")
        eps.deploy(ws, "churn", model="churn:1")
        pipeline = tmp_path / "retrain.yaml"
        pipeline.write_text(retrain_pipeline_text())
        # the same kind of data again: the challenger is no better than the champion by 0.05
        ex = run_pipeline(ws, str(pipeline), {"dataset": "old", "holdout": "old_holdout", "margin": 0.05,
                                              "num_round": 30}, executor="thread")
        status = {s.name: s.status for s in ex.steps}
        assert ex.status == "Succeeded", ex.error
        assert status["not_promoted"] == "Succeeded"
        assert {status[s] for s in ("register", "baseline", "deploy", "promote")} == {"Skipped"}
        reason = ex.step("not_promoted").outputs["reason"]
        assert "does not beat it by the required margin 0.05" in reason and "churn@production" in reason
        (event,) = ws.events.list(type="model.challenger_not_promoted")
        assert event.payload["reason"] == reason and event.payload["run_id"] == ex.step("train").outputs["run_id"]
        assert [v.ref for v in list_versions(ws, "churn")] == ["churn:1"]
        assert eps.get_endpoint(ws, "churn").config.model_refs() == ["churn:1"]
    finally:
        ws.close()


def test_the_example_pipeline_is_the_one_the_demo_ships() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "churn" / "retrain.yaml"
    assert example.read_text() == retrain_pipeline_text()
