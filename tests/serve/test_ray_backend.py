"""The Ray Serve backend: our autoscaling settings mapped to Ray Serve's, and an endpoint served by a local Ray cluster."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loopml import Workspace
from loopml.serve import endpoints as eps
from loopml.serve.app import create_app
from loopml.serve.autoscale import check_scaling
from loopml.serve.endpoints import EndpointConfig
from loopml.serve.ray_backend import RayBackend, ray_deployment_options
from loopml.serve.serverless import check_serverless
from loopml.train.package import Model
from tests.serve._fixtures import asgi, asgi_many, body, frame, register_all, wait_for


def test_our_settings_map_to_ray_serve_options() -> None:
    plain = ray_deployment_options(EndpointConfig(extra={"backend": "ray"}))
    assert plain["num_replicas"] == 1 and "autoscaling_config" not in plain
    scaling = check_scaling(2, 6, target_inflight=3, scale_out_cooldown_s=1, scale_in_cooldown_s=40)
    opts = ray_deployment_options(EndpointConfig(extra={"backend": "ray", "scaling": scaling.to_dict()}))
    assert opts["autoscaling_config"] == {"min_replicas": 2, "initial_replicas": 2, "max_replicas": 6,
                                          "target_ongoing_requests": 3.0, "upscale_delay_s": 1.0,
                                          "downscale_delay_s": 40.0}
    assert opts["max_ongoing_requests"] == 6
    sv = check_serverless(3072, 8, idle_timeout_s=15)
    opts = ray_deployment_options(EndpointConfig(extra={"backend": "ray", "serverless": sv.to_dict()}))
    auto = opts["autoscaling_config"]
    assert (auto["min_replicas"], auto["initial_replicas"], auto["target_ongoing_requests"],
            auto["downscale_delay_s"]) == (0, 0, 1.0, 15.0)
    assert opts["ray_actor_options"]["memory"] == 3072 * 2**20


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray cluster of 2 CPUs (skips, saying why, where Ray Serve cannot be imported)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed: pip install 'loopml[ray]'")
    try:
        import ray
        from ray import serve
    except Exception as e:  # Ray without the serve extra misses grpc reflection, among others
        pytest.skip(f"Ray Serve cannot be imported here ({type(e).__name__}: {e}); pip install 'loopml[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        yield ray
    finally:
        serve.shutdown()
        ray.shutdown()


def _deployment_config(app_name: str) -> dict[str, Any]:
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()
    return dict(details["applications"][app_name]["deployments"]["predictor"]["deployment_config"])


@pytest.mark.slow
def test_an_endpoint_served_by_ray_serve(ws: Workspace, trained: Callable[..., Model], local_ray: Any) -> None:
    from ray import serve

    models = register_all(ws, trained)
    eps.deploy(ws, "ep", model="churn:1", replicas=(1, 2), target_inflight=2, backend="ray")
    app = create_app(ws, metrics_flush_interval_s=0)
    try:
        backend = app.state.server.live["ep"].backends["AllTraffic"]
        assert isinstance(backend, RayBackend)
        # the answers come from the Ray Serve replica and are the model's
        r = asgi(app, "/endpoints/ep/invocations", body(5))
        assert r.status_code == 200
        got = [p["probabilities"][1] for p in r.json()["predictions"]]
        assert got == pytest.approx(models["churn:1"].predict_proba(frame(5))[:, 1], abs=1e-6)
        # bad input is still a 4xx, named, from the replica
        r = asgi(app, "/endpoints/ep/invocations", b'[{"x1": 1}]')
        assert r.status_code == 400 and "missing column" in r.json()["message"]
        answers = asgi_many(app, "/endpoints/ep/invocations", body(1), 20)
        assert {s for s, _, _ in answers} == {200}
        # Ray Serve runs it with our autoscaling settings
        auto = _deployment_config(backend.app_name)["autoscaling_config"]
        assert (auto["min_replicas"], auto["max_replicas"], auto["target_ongoing_requests"]) == (1, 2, 2.0)
        stats = backend.stats()
        assert stats["backend"] == "ray" and stats["replicas"] >= 1 and "RUNNING" in stats["status"]
        # a new model version: a new Ray application, the old one deleted after the switch
        eps.deploy(ws, "ep", model="churn:2", replicas=(1, 2), target_inflight=2, backend="ray")
        app.state.server.refresh()
        new = app.state.server.live["ep"].backends["AllTraffic"]
        assert isinstance(new, RayBackend) and new.app_name != backend.app_name
        r = asgi(app, "/endpoints/ep/invocations", body(5))
        got = [p["probabilities"][1] for p in r.json()["predictions"]]
        assert got == pytest.approx(models["churn:2"].predict_proba(frame(5))[:, 1], abs=1e-6)
    finally:
        app.state.server.close()
    wait_for(lambda: not {a for a in serve.status().applications if a.startswith("loopml-")}, timeout=60,
             what="the Ray Serve applications to be deleted")
