"""Multi-model endpoints: the Target-Model header, lazy loads, LRU eviction by count and by size."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from loopml import InvalidInput, Workspace
from loopml.serve import endpoints as eps
from loopml.serve.app import Server, create_app
from loopml.serve.endpoints import ModelTarget
from loopml.serve.multimodel import MultiModelRouter, resolve_target
from loopml.train.package import Model
from tests.serve._fixtures import asgi, body, frame, register_all

PATH = "/endpoints/mme/invocations"
REFS = ("churn:1", "churn:2", "reg:1")


def _call(app: object, target: str | None, recipe: str = "auto", **headers: str) -> object:
    h = {"content-type": "application/json", **headers}
    if target is not None:
        h["x-amzn-sagemaker-target-model"] = target
    return asgi(app, PATH, body(2, recipe=recipe), h)  # type: ignore[arg-type]


def test_targets_load_lazily_and_evict_lru(ws: Workspace, trained: Callable[..., Model]) -> None:
    models = register_all(ws, trained, REFS)
    eps.deploy(ws, "mme", multi_model={"a": "churn:1", "b": "churn:2", "r": "reg:1"}, max_loaded=2)
    app = create_app(ws, metrics_flush_interval_s=0, retire_grace_s=0)
    server: Server = app.state.server
    router = server.live["mme"].router
    assert router is not None
    try:
        assert server.cache.loaded == [] and router.loaded == []  # nothing loads before its first request
        for bad, needle in ((None, "name the model in the X-Amzn-SageMaker-Target-Model header (one of a, b, r)"),
                            ("zzz", "has no target model 'zzz'; its models are a, b, r")):
            r = _call(app, bad)
            assert r.status_code == 400 and needle in r.json()["message"]  # type: ignore[attr-defined]
        r = _call(app, "a")
        assert r.status_code == 200 and r.headers["x-amzn-invoked-production-variant"] == "AllTraffic"  # type: ignore[attr-defined]
        got = [p["probabilities"][1] for p in r.json()["predictions"]]  # type: ignore[attr-defined]
        assert np.allclose(got, models["churn:1"].predict_proba(frame(2))[:, 1])
        r = _call(app, "r.tar.gz", recipe="none")  # SageMaker-style archive names work too
        assert r.status_code == 200  # type: ignore[attr-defined]
        assert np.allclose([p["prediction"] for p in r.json()["predictions"]],  # type: ignore[attr-defined]
                           models["reg:1"].predict(frame(2, recipe="none")))
        assert router.loaded == ["a", "r"]
        assert _call(app, "a").status_code == 200  # type: ignore[attr-defined]
        assert router.loaded == ["r", "a"]  # a is the most recently used now
        r = _call(app, "b")
        assert r.status_code == 200  # type: ignore[attr-defined]
        assert np.allclose([p["probabilities"][1] for p in r.json()["predictions"]],  # type: ignore[attr-defined]
                           models["churn:2"].predict_proba(frame(2))[:, 1])
        assert router.loaded == ["a", "b"] and router.evictions == 1
        # the evicted model is dropped from memory...
        assert sorted(server.cache.loaded) == sorted({models["churn:1"].sha256, models["churn:2"].sha256})
        # ...and loads again on its next request
        loads = server.cache.loads
        assert _call(app, "r", recipe="none").status_code == 200  # type: ignore[attr-defined]
        assert server.cache.loads == loads + 1 and router.loaded == ["b", "r"]
        # bad input for the chosen model is still a 400; variants: only AllTraffic
        r = _call(app, "a", recipe="none")
        assert r.status_code == 400 and "city" in r.json()["message"]  # type: ignore[attr-defined]
        r = _call(app, "a", **{"x-amzn-sagemaker-target-variant": "v1"})
        assert r.status_code == 400 and "AllTraffic" in r.json()["message"]  # type: ignore[attr-defined]
        listing = asgi(app, "/endpoints", method="GET").json()["endpoints"][0]
        assert listing["multi_model"]["loaded"] == router.loaded == ["r", "a"]
    finally:
        server.close()
    assert server.cache.loaded == []


def test_memory_bound_and_live_changes(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained, REFS)
    eps.deploy(ws, "mme", multi_model={"a": "churn:1", "b": "churn:2"}, max_loaded=10, max_memory_mb=0.001)
    app = create_app(ws, metrics_flush_interval_s=0, retire_grace_s=0)
    server: Server = app.state.server
    try:
        router = server.live["mme"].router
        assert router is not None
        for t in ("a", "b", "a"):
            assert _call(app, t).status_code == 200  # type: ignore[attr-defined]
            assert router.loaded == [t]  # every package is over 1 KB: one loaded at a time
        # a settings change keeps the router (and what it loaded); a new target set replaces it
        eps.update_endpoint(ws, "mme", capture_percentage=0.0, max_rows=50)
        server.refresh()
        assert server.live["mme"].router is not router  # other limits: new predictors
        router = server.live["mme"].router
        eps.update_endpoint(ws, "mme", capture_percentage=5.0)
        server.refresh()
        assert server.live["mme"].router is router
        eps.update_endpoint(ws, "mme", max_memory_mb=None)
        server.refresh()
        new = server.live["mme"].router
        assert new is not router and new is not None and new.max_bytes is None
        assert _call(app, "a").status_code == 200 and _call(app, "b").status_code == 200  # type: ignore[attr-defined]
        assert new.loaded == ["a", "b"]
    finally:
        server.close()


def test_router_loads_a_target_once_for_concurrent_requests() -> None:
    targets = {t: ModelTarget(f"m:{i}", str(i) * 64) for i, t in enumerate(("x", "y"), 1)}
    calls: list[str] = []
    unloaded: list[str] = []
    lock = threading.Lock()

    def load(name: str, t: ModelTarget) -> tuple[str, int]:
        with lock:
            calls.append(name)
        time.sleep(0.05)
        return f"backend-{name}", 10

    router: MultiModelRouter[str] = MultiModelRouter("ep", targets, load=load, unload=unloaded.append, max_loaded=1)

    async def go() -> list[tuple[str, str]]:
        return list(await asyncio.gather(*(router.get("x") for _ in range(8))))

    assert asyncio.run(go()) == [("x", "backend-x")] * 8 and calls == ["x"]
    assert router.get_sync("y") == ("y", "backend-y") and unloaded == ["backend-x"] and router.loaded == ["y"]
    assert router.loaded_bytes == 10
    router.close()
    assert unloaded == ["backend-x", "backend-y"] and router.loaded == []

    def failing(name: str, t: ModelTarget) -> tuple[str, int]:
        raise InvalidInput("cannot load")

    bad: MultiModelRouter[str] = MultiModelRouter("ep", targets, load=failing, unload=unloaded.append)
    with pytest.raises(InvalidInput, match="cannot load"):
        asyncio.run(bad.get("x"))
    assert bad.loaded == []
    with pytest.raises(InvalidInput, match="max_loaded"):
        MultiModelRouter("ep", targets, load=load, unload=unloaded.append, max_loaded=0)
    assert resolve_target("ep", targets, "y.tar.gz") == "y"
