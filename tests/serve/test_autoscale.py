"""Replicas and autoscaling: the target-tracking decision, and a real pool under bounded loopback load."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml import Workspace
from loopml.errors import InvalidInput
from loopml.serve import endpoints as eps
from loopml.serve.app import create_app
from loopml.serve.autoscale import Autoscaler, ScalingConfig, check_scaling, parse_replicas
from loopml.serve.replicas import ReplicaBackend
from loopml.train.package import Model
from tests.serve._fixtures import body, frame, register_all, running, wait_for


# -- the decision ------------------------------------------------------------------------------------------
def _cfg(**kw: float) -> ScalingConfig:
    base = dict(min_replicas=1, max_replicas=4, target_inflight=2.0, scale_out_cooldown_s=5.0,
                scale_in_cooldown_s=10.0, scale_out_window_s=1.0)
    return ScalingConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_scale_out_tracks_the_target_within_bounds_and_cooldown() -> None:
    a = Autoscaler(_cfg())
    for t in range(10):
        a.observe(t / 10, 3)
    assert a.decide(1.0, replicas=1) == 1           # 3 in flight / 2 per replica -> 2 replicas
    a.observe(1.1, 20)
    assert a.decide(1.1, replicas=2) == 0            # cooldown: no second scale-out yet
    for t in range(12, 70):
        a.observe(t / 10, 20)
    assert a.decide(7.0, replicas=2) == 2            # 20 in flight wants 10, the maximum is 4
    assert a.wanted(0) == 1 and a.wanted(1000) == 4


def test_scale_in_is_conservative_one_at_a_time() -> None:
    a = Autoscaler(_cfg(scale_out_cooldown_s=0))
    for t in range(20):
        a.observe(t / 10, 8)
    assert a.decide(2.0, replicas=1) == 3
    # load drops to 1 in flight: nothing happens before the scale-in cooldown (10 s) has passed
    for t in range(21, 115):
        a.observe(t / 10, 1)
    assert a.decide(11.5, replicas=4) == 0           # the last 10 s still saw 8 in flight
    for t in range(115, 130):
        a.observe(t / 10, 1)
    assert a.decide(13.0, replicas=4) == -1          # one at a time
    assert a.decide(13.1, replicas=3) == 0           # and the cooldown starts again
    for t in range(131, 240):
        a.observe(t / 10, 0)
    assert a.decide(24.0, replicas=3) == -1
    assert a.decide(40.0, replicas=1) == 0           # never below the minimum


def test_zero_to_one_at_once_and_idle_timeout_to_zero() -> None:
    a = Autoscaler(ScalingConfig(min_replicas=0, max_replicas=2, target_inflight=1, scale_out_cooldown_s=60,
                                 scale_in_cooldown_s=60, idle_timeout_s=0.5))
    a.observe(0.0, 0)
    assert a.decide(0.0, replicas=0) == 0            # idle: nothing runs
    a.observe(0.1, 1)
    assert a.decide(0.1, replicas=0) == 1            # a request waits: a cold start, whatever the cooldown
    assert a.decide(0.2, replicas=1, idle_for=[0.1]) == 0
    assert a.decide(0.9, replicas=1, idle_for=[0.6]) == -1   # idle longer than the timeout: scale to zero


@settings(max_examples=200, deadline=None)
@given(lo=st.integers(0, 4), span=st.integers(0, 4), target=st.floats(0.5, 8),
       loads=st.lists(st.integers(0, 50), min_size=1, max_size=60), replicas=st.integers(0, 10))
def test_decisions_stay_within_bounds(lo: int, span: int, target: float, loads: list[int], replicas: int) -> None:
    cfg = ScalingConfig(min_replicas=lo, max_replicas=max(lo + span, 1), target_inflight=target,
                        scale_out_cooldown_s=0.3, scale_in_cooldown_s=0.5)
    a = Autoscaler(cfg)
    n = min(max(replicas, cfg.min_replicas), cfg.max_replicas)
    for i, load in enumerate(loads):
        a.observe(i * 0.1, load)
        n += a.decide(i * 0.1, replicas=n, idle_for=[1.0] * n)
        assert cfg.min_replicas <= n <= cfg.max_replicas


def test_settings_are_checked() -> None:
    assert parse_replicas("2:5") == (2, 5) and parse_replicas(" 3 ") == (3, 3)
    for text in ("", "a:b", "1:2:3", "5:1", "0:0", "1:100"):
        with pytest.raises(InvalidInput):
            parse_replicas(text)
    with pytest.raises(InvalidInput, match="target in-flight"):
        check_scaling(1, 2, target_inflight=0)
    with pytest.raises(InvalidInput, match="scale-in cooldown"):
        check_scaling(1, 2, scale_in_cooldown_s=-1)
    c = check_scaling(0, 3, target_inflight=4, idle_timeout_s=30)
    assert ScalingConfig.from_dict(c.to_dict()) == c


# -- a real pool ---------------------------------------------------------------------------------------------
def _replicas(url: str) -> int:
    doc = httpx.get(f"{url}/endpoints").json()
    (ep,) = doc["endpoints"]
    return int(ep["variants"][0]["backend"]["replicas"])


def test_replicas_scale_out_under_load_and_back_in_when_idle(ws: Workspace, trained: Callable[..., Model]) -> None:
    models = register_all(ws, trained)
    scaling = ScalingConfig(min_replicas=1, max_replicas=3, target_inflight=1.0, scale_out_cooldown_s=0.3,
                            scale_in_cooldown_s=1.0, scale_out_window_s=0.5)
    eps.deploy(ws, "ep", model="churn:1", scaling=scaling)
    app = create_app(ws, metrics_flush_interval_s=0.2)
    payload = body(300)  # a few ms of model time per request: the replicas, not the clients, are the bottleneck
    with running(app) as url:
        assert _replicas(url) == 1  # the minimum runs before the endpoint takes traffic
        backend = app.state.server.live["ep"].backends["AllTraffic"]
        assert isinstance(backend, ReplicaBackend)
        # the answers come from the replica processes and are the model's
        r = httpx.post(f"{url}/endpoints/ep/invocations", content=body(5), headers={"content-type": "application/json"})
        want = models["churn:1"].predict_proba(frame(5))[:, 1]
        got = [p["probabilities"][1] for p in r.json()["predictions"]]
        assert r.status_code == 200 and got == pytest.approx(want, abs=1e-6)

        stop = threading.Event()
        statuses: list[int] = []
        errors: list[str] = []

        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                deadline = time.monotonic() + 20  # bounded, whatever happens
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        statuses.append(c.post("/endpoints/ep/invocations", content=payload,
                                               headers={"content-type": "application/json"}).status_code)
                    except httpx.HTTPError as e:
                        errors.append(str(e))

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: _replicas(url) >= 2, timeout=15, what="a scale-out under load")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        peak = backend.stats()["replicas"]
        assert 2 <= peak <= 3
        wait_for(lambda: _replicas(url) == 1, timeout=15, what="the scale-in when idle")
        stats = backend.stats()
        assert stats["starts"] >= 2 and stats["stops"] >= 1 and stats["start_failures"] == 0
        assert len(stats["pids"]) == 1
        metrics = httpx.get(f"{url}/metrics").text
        assert 'loopml_replicas{endpoint="ep",variant="AllTraffic"} 1.0' in metrics
        assert "loopml_cold_starts_total" in metrics
    assert statuses and set(statuses) == {200} and errors == []
    # the replica count went up, then down, in the metrics table too
    counts = [p.value for p in ws.metrics.query("Replicas", dimensions={"endpoint": "ep"})]
    assert max(counts) >= 2 and counts[-1] == 1
    assert len(ws.metrics.query("ColdStartLatency", dimensions={"endpoint": "ep"})) >= 2


def test_model_errors_bad_input_and_a_dead_replica(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained)
    eps.deploy(ws, "ep", model="churn:1", replicas=(1, 1))
    app = create_app(ws, metrics_flush_interval_s=0)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        post = lambda content, **h: c.post("/endpoints/ep/invocations", content=content,  # noqa: E731
                                           headers={"content-type": "application/json", **h})
        r = post(b'[{"x1": "a"}]')
        assert r.status_code == 400 and "missing column" in r.json()["message"]
        r = post(body(1), accept="image/png")
        assert r.status_code == 406
        r = post(body(1), **{"content-type": "application/x-npy"})
        assert r.status_code == 415
        backend = app.state.server.live["ep"].backends["AllTraffic"]
        (pid,) = backend.stats()["pids"]
        os.kill(pid, signal.SIGKILL)
        # the next request either meets the dead replica (424, named) or a new one (200); never a hang
        r = post(body(1))
        assert r.status_code in (200, 424), r.text
        if r.status_code == 424:
            assert "died" in r.json()["message"]
        wait_for(lambda: post(body(1)).status_code == 200, timeout=15, what="a replacement replica")
        assert backend.stats()["pids"] != [pid]
