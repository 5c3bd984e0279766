"""Blue/green deployments: strategies, guardrail alarms, automatic rollback, crash-safe controllers.

The two traffic tests run a real uvicorn server on 127.0.0.1 and a client thread
that sends requests for the whole update; every response is counted.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from loopml import Workspace
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.metrics import alarms
from loopml.registry import APPROVED, register_model
from loopml.serve import deployments as deps
from loopml.serve import endpoints as eps
from loopml.serve.app import create_app
from loopml.serve.endpoints import VariantSpec
from loopml.serve.models import EndpointDeployment
from loopml.train import TabularAlgorithm, register_algorithm
from loopml.train.package import Model
from tests.serve._fixtures import body, frame, register_all, running, wait_for
from tests.serve.conftest import inputs_of, serve_frame
from tests.train._data import package

# -- a model that trains and evaluates fine, then fails on every prediction once deployed ----------------------


@register_algorithm
class BrokenOnceDeployed(TabularAlgorithm):
    """Predicts 0.5 while training; a package loaded for serving raises on every prediction."""

    name = "test_broken_once_deployed"
    description = "test: raises on predict once loaded from its package"
    problem_types = ("binary",)
    hyperparameters = ()

    def fit_matrix(self, X, y, X_val, y_val, *, callback=None, groups=None, groups_val=None):  # type: ignore[no-untyped-def]
        self.loaded_ = False

    def proba_matrix(self, X: np.ndarray) -> np.ndarray:
        if getattr(self, "loaded_", False):
            raise RuntimeError("the new model is broken: it cannot find its lookup table")
        return np.tile([0.5, 0.5], (len(X), 1))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return self.proba_matrix(X).argmax(axis=1)

    def save_model(self, path: Path) -> None:
        (path / "broken.json").write_text("{}")

    def load_model(self, path: Path) -> None:
        self.loaded_ = True


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = serve_frame()
    df = inputs_of(data, "auto").assign(y_bin=data["y_bin"])
    folder, _ = package(tmp_path_factory.mktemp("broken"), df, "test_broken_once_deployed", {}, target="y_bin",
                        name="broken")
    return folder


@pytest.fixture
def models(ws: Workspace, trained: Callable[..., Model], broken_folder: Path) -> dict[str, Model]:
    out = register_all(ws, trained)  # churn:1 xgboost, churn:2 lightgbm
    assert register_model(ws, broken_folder, "churn", approval=APPROVED).ref == "churn:3"
    return out


# -- traffic ------------------------------------------------------------------------------------------------------
@dataclass
class Traffic:
    """A client thread POSTing one-row requests in a loop; every answer (or transport error) is kept."""

    url: str
    answers: list[tuple[float, int, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        payload = body(1)
        with httpx.Client(base_url=self.url, timeout=10) as c:
            while not self._stop.is_set():
                try:
                    r = c.post("/endpoints/ep/invocations", content=payload,
                               headers={"content-type": "application/json"})
                except httpx.HTTPError as e:
                    self.errors.append(f"{type(e).__name__}: {e}")
                    continue
                code = r.headers.get("x-amzn-errortype", "")
                self.answers.append((time.monotonic(), r.status_code,
                                     r.headers.get("x-amzn-invoked-production-variant", ""), code))

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
def traffic(ws: Workspace, models: dict[str, Model]) -> Iterator[Traffic]:
    eps.deploy(ws, "ep", model="churn:1")
    app = create_app(ws, reload_interval_s=0.05, metrics_flush_interval_s=0.2, retire_grace_s=1.0)
    with running(app) as url:
        t = Traffic(url)
        thread = threading.Thread(target=t.run, daemon=True)
        thread.start()
        wait_for(lambda: len(t.answers) > 20, what="the first answers")
        try:
            yield t
        finally:
            t.stop()
            thread.join(20)


def _served_version(url: str) -> int:
    doc = httpx.get(f"{url}/endpoints").json()
    return int(next(e["version"] for e in doc["endpoints"] if e["name"] == "ep"))


FAST = dict(guardrail_period_s=1, poll_s=0.1)


def test_canary_update_under_continuous_traffic_fails_no_request(ws: Workspace, traffic: Traffic,
                                                                   models: dict[str, Model]) -> None:
    seen: list[deps.Progress] = []
    d = deps.update_endpoint(ws, "ep", model="churn:2", strategy="canary:30:1.5", termination_wait_s=0.5,
                             max_p99_ms=5000, progress=seen.append, reason="lightgbm is better", **FAST)
    assert d.status == deps.SUCCEEDED, d.reason
    info = eps.get_endpoint(ws, "ep")
    assert [(v.name, v.model, v.weight) for v in info.config.variants] == [("AllTraffic", "churn:2", 1.0)]
    assert info.status == eps.IN_SERVICE and d.to_version == info.version
    wait_for(lambda: _served_version(traffic.url) == info.version, what="the server to apply the last version")
    n_during = len(traffic.answers)
    wait_for(lambda: len(traffic.answers) > n_during + 30, what="answers after the update")
    traffic.stop()

    # every request got an answer, and every answer was a success
    assert traffic.errors == []
    statuses = Counter(status for _, status, _, _ in traffic.answers)
    assert set(statuses) == {200}, statuses
    # green really served during the canary, and blue answered until it was retired
    variants = Counter(v for _, _, v, _ in traffic.answers)
    assert variants["AllTraffic-green"] > 0 and variants["AllTraffic"] > 0, variants
    # the answers after the update are churn:2's
    r = httpx.post(f"{traffic.url}/endpoints/ep/invocations", content=body(1),
                   headers={"content-type": "application/json"})
    want = models["churn:2"].predict_proba(frame(1))[0, 1]
    assert np.isclose(r.json()["predictions"][0]["probabilities"][1], want)

    # the history: one shift per step, the termination wait, the retirement of blue
    actions = [h.action for h in eps.endpoint_history(ws, "ep")]
    assert actions == ["create", "deployment_shift", "deployment_shift", "deployment_shift", "deployment_complete"]
    shares = [h.details.get("green_share") for h in eps.endpoint_history(ws, "ep")[1:4]]
    assert shares == [0.3, 1.0, 1.0]
    assert [e["event"] for e in d.log] == ["created", "shift", "shift", "shift", "Succeeded"]
    assert {p.phase for p in seen} >= {"shift", "bake", "termination-wait", "done"}
    # the guardrails were watched (error rate and p99 of green), then removed
    assert len(d.guardrail_alarms) == 2 and not [a for a in alarms.list_alarms(ws) if a.name.startswith(d.id)]
    assert ws.metrics.query("Invocation5XXErrorRate", dimensions={"endpoint": "ep", "variant": "AllTraffic-green"})
    (listed,) = deps.list_deployments(ws, "ep")
    assert listed.id == d.id and listed.status == deps.SUCCEEDED and listed.owner is None


def test_broken_version_rolls_back_by_its_error_rate_alarm(ws: Workspace, traffic: Traffic) -> None:
    t0 = time.monotonic()
    d = deps.update_endpoint(ws, "ep", model="churn:3", strategy="canary:20:3", max_error_rate=0.1, **FAST)
    assert d.status == deps.ROLLED_BACK
    assert time.monotonic() - t0 < 3.0  # the alarm fired before the end of the baking period
    # the alarm that caused it, and why
    assert d.alarm == f"{d.id}-AllTraffic-green-error-rate"
    assert d.reason is not None and d.alarm in d.reason and "Threshold Crossed" in d.reason
    assert d.log[-1]["event"] == "RolledBack" and d.log[-1]["alarm"] == d.alarm
    # the endpoint: blue only, its weights restored, in service
    info = eps.get_endpoint(ws, "ep")
    assert [(v.name, v.model, v.weight) for v in info.config.variants] == [("AllTraffic", "churn:1", 1.0)]
    assert info.status == eps.IN_SERVICE
    assert eps.endpoint_history(ws, "ep")[-1].action == "deployment_rollback"
    wait_for(lambda: _served_version(traffic.url) == info.version, what="the server to apply the rollback")
    n_rolled_back = len(traffic.answers)
    wait_for(lambda: len(traffic.answers) > n_rolled_back + 30, what="answers after the rollback")
    traffic.stop()

    assert traffic.errors == []  # never a connection error
    failed = [(s, v, c) for _, s, v, c in traffic.answers if s != 200]
    # only requests routed to the broken version failed, each as a ModelError
    assert failed and set(failed) == {(424, "AllTraffic-green", "ModelError")}
    ok_variants = {v for _, s, v, _ in traffic.answers if s == 200}
    assert ok_variants == {"AllTraffic"}
    # after the rollback every request succeeds
    after = traffic.answers[n_rolled_back:]
    assert after and {(s, v) for _, s, v, _ in after} == {(200, "AllTraffic")}


# -- without a server -------------------------------------------------------------------------------------
def test_strategies_parse_into_steps() -> None:
    assert [(s.share, s.bake_s) for s in deps.parse_strategy("all-at-once").steps()] == [(1.0, 0.0)]
    assert [(s.share, s.bake_s) for s in deps.parse_strategy("ALL-AT-ONCE:30").steps()] == [(1.0, 30.0)]
    assert [s.share for s in deps.parse_strategy("linear:30:1").steps()] == [0.3, 0.6, 0.9, 1.0]
    assert deps.parse_strategy("linear:30:1").steps()[-1].bake_s == 0.0
    assert deps.parse_strategy("canary:5:60").text == "canary:5:60"
    for bad, needle in [("canary:0:5", "above 0 and below 100"), ("canary:100:5", "all-at-once"),
                        ("linear:10", "malformed"), ("canary:10:-1", "0 to 86400"), ("rolling", "unknown strategy"),
                        ("linear:0.5:1", "more than 100 steps"), ("canary:x:1", "malformed")]:
        with pytest.raises(InvalidInput, match=needle):
            deps.parse_strategy(bad)


def _quick(ws: Workspace, **kwargs: Any) -> deps.DeploymentInfo:
    return deps.update_endpoint(ws, "ep", **{"model": "churn:2", "strategy": "all-at-once", **FAST, **kwargs})


def test_all_at_once_keeps_settings_and_names_variants(any_ws: Workspace, trained: Callable[..., Model]) -> None:
    ws = any_ws
    register_all(ws, trained)
    eps.deploy(ws, "ep", variants=[VariantSpec("a", "churn:1", 3), VariantSpec("b", "churn:1", 1)],
               capture_percentage=5, max_rows=100)
    d = deps.update_endpoint(ws, "ep", variants=[VariantSpec("a", "churn:2", 1), VariantSpec("c", "churn:2", 1)],
                             strategy="all-at-once", **FAST)
    assert d.status == deps.SUCCEEDED
    # while both ran, green's "a" ran as "a-green" (blue had an "a"); "c" kept its name
    assert [(g["name"], g["running_as"]) for g in d.green] == [("a", "a-green"), ("c", "c")]
    shift = eps.endpoint_history(ws, "ep")[1]
    assert [(v["name"], v["weight"]) for v in shift.new_config["variants"]] == [
        ("a", 0.0), ("b", 0.0), ("a-green", 0.5), ("c", 0.5)]
    info = eps.get_endpoint(ws, "ep")
    assert [(v.name, v.model, v.weight) for v in info.config.variants] == [("a", "churn:2", 1.0), ("c", "churn:2", 1.0)]
    assert info.config.capture.percentage == 5 and info.config.limits.max_rows == 100
    # a second deployment: canary weights respect blue's own split
    d2 = deps.start_deployment(ws, "ep", model="churn:1", strategy="canary:10:0", **FAST)
    assert [g["name"] for g in d2.green] == ["AllTraffic"]  # two blue variants: the default name
    assert deps.run_deployment(ws, d2.id).status == deps.SUCCEEDED
    shift = eps.endpoint_history(ws, "ep")[-4]
    assert [(v["name"], round(v["weight"], 6)) for v in shift.new_config["variants"]] == [
        ("a", 0.45), ("c", 0.45), ("AllTraffic", 0.1)]


def test_user_alarm_on_real_metrics_rolls_back(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained)
    eps.deploy(ws, "ep", model="churn:1")
    alarms.put_alarm(ws, "ep-drift", metric="FeatureDrift", threshold=0.5, comparison=">",
                     dimensions={"endpoint": "ep"}, period_s=5)

    def drift_during_bake(p: deps.Progress) -> None:
        if p.phase == "bake":
            ws.metrics.put("FeatureDrift", 0.9, dimensions={"endpoint": "ep", "feature": "x1"})

    d = _quick(ws, strategy="linear:50:5", alarms=["ep-drift"], progress=drift_during_bake)
    assert d.status == deps.ROLLED_BACK and d.alarm == "ep-drift"
    assert "alarm 'ep-drift' went to ALARM" in (d.reason or "")
    assert alarms.get_alarm(ws, "ep-drift").state == alarms.ALARM  # the user's alarm stays
    assert [v.model for v in eps.get_endpoint(ws, "ep").config.variants] == ["churn:1"]
    # an alarm in ALARM already refuses a new deployment (it would roll back at once)
    with pytest.raises(InvalidInput, match="is in ALARM now"):
        _quick(ws, alarms=["ep-drift"])
    with pytest.raises(NotFound, match="no alarm named 'nope'"):
        _quick(ws, alarms=["nope"])


def test_timeout_external_change_and_refusals(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained)
    eps.deploy(ws, "ep", model="churn:1")
    d = _quick(ws, strategy="canary:10:30", timeout_s=1)
    assert d.status == deps.ROLLED_BACK and "past its timeout (1 s)" in (d.reason or "")

    # someone changes the endpoint during the deployment: it stops, failed, and leaves their change
    def meddle(p: deps.Progress) -> None:
        if p.phase == "bake" and eps.get_endpoint(ws, "ep").config.variants[0].weight != 7:
            eps.update_weights(ws, "ep", {"AllTraffic": 7})

    d = _quick(ws, strategy="canary:10:30", progress=meddle)
    assert d.status == deps.FAILED and "changed outside this deployment" in (d.reason or "")
    info = eps.get_endpoint(ws, "ep")
    assert info.status == eps.IN_SERVICE and info.config.variants[0].weight == 7

    with pytest.raises(InvalidInput, match="not both"):
        _quick(ws, variants=[VariantSpec("x", "churn:2", 1)])
    with pytest.raises(InvalidInput, match="max-error-rate"):
        _quick(ws, max_error_rate=2)
    with pytest.raises(NotFound, match="no version 9"):
        _quick(ws, model="churn:9")
    eps.deploy(ws, "mm", multi_model={"a": "churn:1"})
    with pytest.raises(InvalidInput, match="multi-model"):
        deps.update_endpoint(ws, "mm", model="churn:2")
    started = deps.start_deployment(ws, "ep", model="churn:2", strategy="canary:10:5", **FAST)
    with pytest.raises(Conflict, match=f"already has deployment {started.id} in progress"):
        _quick(ws)
    assert eps.get_endpoint(ws, "ep").status == deps.UPDATING
    # a deployment nobody drives yet can be rolled back by hand
    rolled = deps.rollback_deployment(ws, "ep", reason="changed my mind")
    assert rolled.status == deps.ROLLED_BACK and "changed my mind" in (rolled.reason or "")
    with pytest.raises(NotFound, match="no deployment in progress"):
        deps.rollback_deployment(ws, "ep")


def test_rollback_by_hand_stops_a_running_controller(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained)
    eps.deploy(ws, "ep", model="churn:1")
    result: list[deps.DeploymentInfo] = []
    t = threading.Thread(target=lambda: result.append(_quick(ws, strategy="canary:50:30")))
    t.start()
    def shifted() -> bool:
        cur = deps.current_deployment(ws, "ep")
        return cur is not None and cur.step == 0
    wait_for(shifted, what="the first shift")
    d = deps.rollback_deployment(ws, "ep", reason="drill")
    t.join(10)
    assert not t.is_alive() and result[0].status == deps.ROLLED_BACK and d.id == result[0].id
    assert [v.model for v in eps.get_endpoint(ws, "ep").config.variants] == ["churn:1"]


def test_a_resumed_controller_continues_after_a_crash(ws: Workspace, trained: Callable[..., Model]) -> None:
    """A detached controller is SIGKILLed mid-bake; a new one takes over and continues to the end."""
    register_all(ws, trained)
    eps.deploy(ws, "ep", model="churn:1")
    d = deps.update_endpoint(ws, "ep", model="churn:2", strategy="linear:50:1", wait=False, **FAST)
    assert d.status == deps.IN_PROGRESS

    def shifted() -> bool:
        cur = deps.get_deployment(ws, d.id)
        return cur.step == 0 and cur.owner is not None
    wait_for(shifted, timeout=30, what="the detached controller's first shift")
    owner = deps.get_deployment(ws, d.id).owner
    assert owner is not None
    pid = int(owner.split(":")[1])
    assert pid != os.getpid()
    with pytest.raises(Conflict, match=f"driven by controller pid {pid}"):
        deps.resume_deployment(ws, "ep")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not deps._pid_alive(pid), what="the controller to die")
    assert deps.get_deployment(ws, d.id).status == deps.IN_PROGRESS  # nobody finished it

    done = deps.resume_deployment(ws, "ep")
    assert done.status == deps.SUCCEEDED
    events = [e["event"] for e in done.log]
    assert events[:2] == ["created", "shift"] and "taken_over" in events and events[-1] == "Succeeded"
    resumed = [e for e in done.log if e["event"] == "shift" and e["resumed"]]
    assert [e["step"] for e in resumed] == [0]  # the step it found is baked again, not skipped
    assert [v.model for v in eps.get_endpoint(ws, "ep").config.variants] == ["churn:2"]
    assert (ws.home / "logs" / "deployments" / f"{d.id}.log").exists()
    assert deps.resume_deployment(ws, "ep").status == deps.SUCCEEDED  # nothing left to resume


def test_takeover_of_a_silent_controller_on_postgres_too(any_ws: Workspace, trained: Callable[..., Model]) -> None:
    ws = any_ws
    register_all(ws, trained)
    eps.deploy(ws, "ep", model="churn:1")
    d = deps.start_deployment(ws, "ep", model="churn:2", strategy="canary:50:0.2", **FAST)
    # a controller on another host took it and went silent 5 s ago
    with ws.meta.session(write=True) as s:
        row = s.get(EndpointDeployment, d.id)
        assert row is not None
        row.owner = "elsewhere:123:abcd"
        row.heartbeat_at = row.created_at
    with pytest.raises(Conflict, match="on elsewhere"):
        deps.resume_deployment(ws, "ep", stale_after_s=3600)
    time.sleep(0.1)
    done = deps.resume_deployment(ws, "ep", stale_after_s=0.05)
    assert done.status == deps.SUCCEEDED
    taken = [e for e in done.log if e["event"] == "taken_over"]
    assert taken and taken[0]["previous"] == "elsewhere:123:abcd"
    assert json.dumps(done.to_dict())  # JSON-ready
