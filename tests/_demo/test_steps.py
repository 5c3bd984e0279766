"""The retraining pipeline's Python steps: canary deployment (and its rollback), promotion, the why-not record."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml import Workspace
from loopml._demo.data import FEATURES, TARGET, make_churn
from loopml._demo.steps import (
    CHALLENGER_NOT_PROMOTED,
    CanaryRolledBack,
    canary_deploy,
    promote,
    record_not_promoted,
)
from loopml.pipelines import StepContext


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """churn:1 (@production, on endpoint churn) and churn:2, both Approved."""
    from loopml.data import Catalog
    from loopml.registry import APPROVED, register_model, set_alias
    from loopml.serve import endpoints as eps
    from loopml.train import Estimator

    root = tmp_path_factory.mktemp("steps") / "ws"
    ws = Workspace.init(root)
    Catalog(ws).write("customers", make_churn(300, seed=5)[[*FEATURES, TARGET]])
    with Estimator("xgboost", {"num_round": 5}, target=TARGET, ws=ws, reuse_process=True) as est:
        set_alias(ws, register_model(ws, est.fit("customers"), "churn", approval=APPROVED).ref, "production")
        register_model(ws, est.clone(hyperparameters={"num_round": 8}).fit("customers"), "churn", approval=APPROVED)
    eps.deploy(ws, "churn", model="churn:1")
    ws.close()
    return root


@pytest.fixture
def ctx(base: Path, tmp_path: Path) -> Iterator[StepContext]:
    import shutil

    shutil.copytree(base, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield StepContext(ws, "churn_retrain", "pex-test", "deploy")
    ws.close()


def test_canary_moves_the_endpoint_and_promote_moves_the_alias(ctx: StepContext) -> None:
    from loopml.registry import get_model_version
    from loopml.serve import endpoints as eps

    out = canary_deploy(ctx, "churn", "churn:2", strategy="canary:50:1")
    assert out["status"] == "Succeeded" and out["deployed_model"] == "churn:2"
    assert eps.get_endpoint(ctx.ws, "churn").config.model_refs() == ["churn:2"]
    assert get_model_version(ctx.ws, "churn@production").ref == "churn:1"   # not until promote
    assert promote(ctx, "churn:2", reason="won")["aliases"] == ["production"]
    assert get_model_version(ctx.ws, "churn@production").ref == "churn:2"


def test_an_alarm_during_the_canary_rolls_it_back_and_fails_the_step(ctx: StepContext) -> None:
    from loopml.metrics import alarms
    from loopml.serve import endpoints as eps

    alarms.put_alarm(ctx.ws, "drill", metric="Invocation5XXErrors", threshold=0, comparison=">",
                     dimensions={"endpoint": "churn"}, statistic="Sum", period_s=10, treat_missing="ignore")
    alarms.set_alarm_state(ctx.ws, "drill", "OK", "start")
    # the alarm goes off while the canary bakes (from another connection, as an evaluator would)
    other = Workspace.open(ctx.ws.home)
    timer = threading.Timer(1.0, lambda: alarms.set_alarm_state(other, "drill", "ALARM", "drill: errors"))
    timer.start()
    try:
        with pytest.raises(CanaryRolledBack, match=r"ended RolledBack: .*drill.*churn still serves churn:1"):
            canary_deploy(ctx, "churn", "churn:2", strategy="canary:50:30", alarms="drill")
    finally:
        timer.join()
        other.close()
    assert eps.get_endpoint(ctx.ws, "churn").config.model_refs() == ["churn:1"]


def test_not_promoted_records_the_reason_as_an_event(ctx: StepContext) -> None:
    out = record_not_promoted(ctx, "run-123", "churn", metric="roc_auc", improvement=-0.01, margin=0.02,
                              challenger={"roc_auc": 0.74}, champion={"roc_auc": 0.75})
    assert out["promoted"] is False
    assert out["reason"] == ("the challenger's roc_auc 0.7400 against churn@production's 0.7500 (-0.0100) "
                             "does not beat it by the required margin 0.02")
    (ev,) = ctx.ws.events.list(type=CHALLENGER_NOT_PROMOTED)
    assert str(ev.entity) == "run:run-123" and ev.payload["reason"] == out["reason"]
    assert "could not be compared" in record_not_promoted(ctx, "run-124", "churn", metric="roc_auc")["reason"]
