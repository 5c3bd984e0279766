"""Serverless endpoints: scale to zero, cold starts measured and exported, 429 past max concurrency, memory limit."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from loopml import Workspace
from loopml.errors import InvalidInput
from loopml.serve import endpoints as eps
from loopml.serve.app import create_app
from loopml.serve.replicas import ReplicaBackend
from loopml.serve.serverless import ServerlessConfig, apply_memory_limit, check_serverless
from loopml.train.package import Model
from tests.serve._fixtures import asgi, asgi_many, body, register_all, wait_for

PATH = "/endpoints/sl/invocations"


def _backend(app: object) -> ReplicaBackend:
    backend = app.state.server.live["sl"].backends["AllTraffic"]  # type: ignore[attr-defined]
    assert isinstance(backend, ReplicaBackend)
    return backend


def _limit_mb(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            soft = line.split()[3]
            return None if soft == "unlimited" else int(soft) / 2**20
    raise AssertionError("no address-space line")


def test_scale_to_zero_cold_start_and_its_metrics(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained)
    eps.deploy(ws, "sl", model="churn:1",
               serverless=check_serverless(2048, 4, idle_timeout_s=0.5))
    app = create_app(ws, metrics_flush_interval_s=0.2)
    try:
        b = _backend(app)
        assert b.stats()["replicas"] == 0  # nothing runs while idle
        t0 = time.perf_counter()
        r = asgi(app, PATH, body(2))
        first_ms = (time.perf_counter() - t0) * 1e3
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        st = b.stats()
        assert st["replicas"] == 1 and st["cold_starts"] == 1 and st["serverless"] and st["max_concurrency"] == 4
        assert 0 < st["last_cold_start_ms"] <= first_ms
        assert st["memory_limit"].startswith("enforced: RLIMIT_AS 2048 MB")
        (pid,) = st["pids"]
        assert _limit_mb(pid) == 2048  # the worker really runs under the limit
        # warm now: the next request costs no start
        assert asgi(app, PATH, body(1)).status_code == 200 and b.stats()["cold_starts"] == 1
        # idle longer than the timeout: the worker process is stopped
        wait_for(lambda: b.stats()["replicas"] == 0, timeout=10, what="the scale to zero")
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the worker process to exit")
        # ... and the next request starts one again
        assert asgi(app, PATH, body(1)).status_code == 200 and b.stats()["cold_starts"] == 2
        text = asgi(app, "/metrics", method="GET").text
        assert 'loopml_cold_starts_total{endpoint="sl",variant="AllTraffic"} 2.0' in text
        assert 'loopml_cold_start_latency_seconds{endpoint="sl",variant="AllTraffic"}' in text
        wait_for(lambda: len(ws.metrics.query("ColdStartLatency", dimensions={"endpoint": "sl"})) == 2,
                 what="the cold starts in the metrics table")
        points = ws.metrics.query("ColdStartLatency", dimensions={"endpoint": "sl", "variant": "AllTraffic"})
        assert all(0 < p.value < 30_000 for p in points)
        described = orjson.loads(asgi(app, "/endpoints", method="GET").content)["endpoints"][0]
        assert described["variants"][0]["backend"]["serverless"] is True
    finally:
        app.state.server.close()


def test_requests_past_max_concurrency_get_429(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained)
    eps.deploy(ws, "sl", model="churn:1", serverless=check_serverless(2048, 2, idle_timeout_s=60))
    app = create_app(ws, metrics_flush_interval_s=0)
    try:
        # eight at once on a cold endpoint: two wait for the cold start, six are refused at once
        answers = asgi_many(app, PATH, body(1), 8)
        statuses = sorted(s for s, _, _ in answers)
        assert statuses == [200, 200] + [429] * 6, statuses
        refused = [orjson.loads(b) for s, _, b in answers if s == 429]
        assert {d["code"] for d in refused} == {"ThrottlingException"}
        assert "max concurrency (2)" in refused[0]["message"] and "--max-concurrency" in refused[0]["message"]
        assert {h["x-amzn-errortype"] for s, h, _ in answers if s == 429} == {"ThrottlingException"}
        assert _backend(app).stats()["throttled"] == 6
        text = asgi(app, "/metrics", method="GET").text
        assert 'loopml_throttled_requests_total{endpoint="sl",variant="AllTraffic"} 6.0' in text
    finally:
        app.state.server.close()


def test_settings_and_memory_limit_reporting(ws: Workspace, trained: Callable[..., Model]) -> None:
    c = check_serverless(1024, 8, idle_timeout_s=30)
    assert ServerlessConfig.from_dict(c.to_dict()) == c
    assert c.scaling(cpus=2).max_replicas == 2 and c.scaling(cpus=64).max_replicas == 8
    for args, needle in [((64, 1), "--memory-mb"), ((1024, 1001), "--max-concurrency"),
                         ((1024, 1.5), "--max-concurrency")]:
        with pytest.raises(InvalidInput, match=needle):
            check_serverless(*args)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="--idle-timeout"):
        check_serverless(1024, 1, idle_timeout_s=0)
    assert apply_memory_limit(None) == "none"
    # a limit below what the worker maps after its imports cannot be applied: it says so instead
    register_all(ws, trained)
    eps.deploy(ws, "sl", model="churn:1", serverless=check_serverless(128, 1, idle_timeout_s=60))
    app = create_app(ws, metrics_flush_interval_s=0)
    try:
        assert asgi(app, PATH, body(1)).status_code == 200
        st = _backend(app).stats()
        assert st["memory_limit"].startswith("not enforced: the worker already maps")
        assert _limit_mb(st["pids"][0]) is None
    finally:
        app.state.server.close()
