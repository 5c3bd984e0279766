"""The data plane: routes, formats, every 4xx path, auth, reloads without restart, model sharing, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import orjson
import pytest

from loopml import Workspace
from loopml.errors import ModelError
from loopml.serve import endpoints as eps
from loopml.serve.app import LocalBackend, ModelCache, Server, create_app
from loopml.serve.endpoints import EndpointConfig, VariantSpec
from loopml.serve.runtime import InvokeResult
from loopml.train.package import Model
from tests.serve._fixtures import (
    Req,
    asgi,
    asgi_requests,
    body,
    frame,
    register_all,
    running,
    wait_for,
)

JSON = {"content-type": "application/json"}


@pytest.fixture
def models(ws: Workspace, trained: Callable[..., Model]) -> dict[str, Model]:
    return register_all(ws, trained)


@pytest.fixture
def server_app(ws: Workspace, models: dict[str, Model]) -> Iterator[object]:
    eps.deploy(ws, "churn", model="churn:1")
    app = create_app(ws, metrics_flush_interval_s=0)
    yield app
    app.state.server.close()


def _error(r: httpx.Response, status: int, code: str, *needles: str) -> None:
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) >= {"message", "code"} and doc["code"] == code and r.headers["x-amzn-errortype"] == code
    for n in needles:
        assert n in doc["message"], doc["message"]


def test_predictions_match_the_model_in_every_format(server_app: object, models: dict[str, Model]) -> None:
    app = server_app
    df = frame(5)
    model = models["churn:1"]
    expected_p = model.predict_proba(df)
    expected = model.predict(df)
    r = asgi(app, "/endpoints/churn/invocations", body(5),  # type: ignore[arg-type]
             {**JSON, "X-Amzn-SageMaker-Custom-Attributes": "trace=1", "X-Amzn-SageMaker-Inference-Id": "req-1"})
    assert r.status_code == 200 and r.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert r.headers["x-amzn-sagemaker-custom-attributes"] == "trace=1"
    doc = r.json()
    assert doc["classes"] == [0, 1]
    assert [p["prediction"] for p in doc["predictions"]] == expected.tolist()
    assert np.allclose([p["probabilities"] for p in doc["predictions"]], expected_p)
    # CSV in (signature order, no header), CSV out
    csv = df.assign(day=df["day"].dt.strftime("%Y-%m-%d")).to_csv(header=False, index=False).encode()
    r = asgi(app, "/endpoints/churn/invocations", csv, {"content-type": "text/csv", "accept": "text/csv"})  # type: ignore[arg-type]
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = [line.split(",") for line in r.text.strip().splitlines()]
    assert [int(x[0]) for x in rows] == expected.tolist()
    assert np.allclose([[float(v) for v in x[1:]] for x in rows], expected_p)
    # JSON lines in and out
    lines = b"\n".join(orjson.dumps(rec) for rec in orjson.loads(body(5)))
    r = asgi(app, "/endpoints/churn/invocations", lines, {"content-type": "application/jsonlines"})  # type: ignore[arg-type]
    assert r.status_code == 200
    assert [orjson.loads(x)["prediction"] for x in r.content.splitlines()] == expected.tolist()
    # ping, the human listing, the OpenAPI description
    r = asgi(app, "/ping", method="GET")  # type: ignore[arg-type]
    assert r.status_code == 200 and r.json() == {"status": "Healthy"}
    listing = asgi(app, "/endpoints", method="GET").json()["endpoints"]  # type: ignore[arg-type]
    assert listing[0]["name"] == "churn" and listing[0]["variants"][0]["model"] == "churn:1"
    spec = asgi(app, "/openapi.json", method="GET").json()  # type: ignore[arg-type]
    op = spec["paths"]["/endpoints/{name}/invocations"]["post"]
    assert {"application/json", "text/csv", "application/jsonlines"} <= set(op["requestBody"]["content"])
    assert "X-Amzn-SageMaker-Target-Variant" in {p["name"] for p in op["parameters"]}


def test_every_bad_request_is_a_4xx(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "churn", variants=[VariantSpec("a", "churn:1", 1), VariantSpec("b", "churn:2", 1)],
               max_rows=3, max_payload_bytes=2000)
    app = create_app(ws, metrics_flush_interval_s=0)
    try:
        path = "/endpoints/churn/invocations"
        rec = orjson.loads(body(1))[0]
        cases = [
            (Req("/endpoints/nope/invocations", body(1)), 404, "ValidationError", ["no endpoint named 'nope'",
                                                                                   "endpoints: churn"]),
            (Req(path, b"{not json"), 400, "ValidationError", ["not valid JSON"]),
            (Req(path, b""), 400, "ValidationError", []),
            (Req(path, orjson.dumps([{k: v for k, v in rec.items() if k != "x1"}])), 400, "ValidationError",
             ["x1"]),
            (Req(path, orjson.dumps([{**rec, "x1": "abc"}])), 400, "ValidationError", ["x1"]),
            (Req(path, orjson.dumps([{**rec, "extra": 1}])), 400, "ValidationError", ["extra"]),
            (Req(path, body(4)), 413, "ValidationError", ["4 rows", "at most 3"]),
            (Req(path, b"[" + b" " * 3000 + b"]"), 413, "ValidationError", ["at most 2,000"]),
            (Req(path, body(1), {"content-type": "application/xml"}), 415, "ValidationError", ["application/xml"]),
            (Req(path, body(1), {**JSON, "accept": "image/png"}), 406, "ValidationError", ["image/png"]),
            (Req(path, body(1), {**JSON, "x-amzn-sagemaker-target-variant": "c"}), 400, "ValidationError",
             ["no variant 'c'", "a, b"]),
            (Req(path, body(1), {**JSON, "x-amzn-sagemaker-target-model": "m"}), 400, "ValidationError",
             ["not a multi-model endpoint"]),
            (Req(path, body(1), {**JSON, "x-amzn-sagemaker-custom-attributes": "x" * 1025}), 400,
             "ValidationError", ["Custom-Attributes"]),
            (Req(path, body(1), {**JSON, "x-amzn-sagemaker-inference-id": "i" * 65}), 400, "ValidationError",
             ["Inference-Id"]),
            (Req("/invocations", body(1)), 400, "ValidationError", ["/endpoints/{name}/invocations"]),
            (Req(path, method="GET"), 405, "MethodNotAllowed", []),
            (Req("/nowhere", method="GET"), 404, "NotFound", []),
        ]
        responses = asgi_requests(app, [c[0] for c in cases])
        for (_, status, code, needles), r in zip(cases, responses, strict=True):
            _error(r, status, code, *needles)
        text = asgi(app, "/metrics", method="GET").text
        assert 'loopml_invocation_4xx_errors_total{endpoint="churn"' in text
        assert "nope" not in text  # unknown endpoints do not become labels
    finally:
        app.state.server.close()


def test_single_endpoint_server(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "one", model="churn:1")
    eps.deploy(ws, "two", model="churn:2")
    with pytest.raises(Exception, match="no endpoint named 'three'"):
        create_app(ws, endpoint="three")
    app = create_app(ws, endpoint="one", metrics_flush_interval_s=0)
    try:
        r = asgi(app, "/invocations", body(2))
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        _error(asgi(app, "/endpoints/two/invocations", body(2)), 404, "ValidationError", "serves endpoint 'one' only")
        eps.delete_endpoint(ws, "one")
        app.state.server.refresh()
        _error(asgi(app, "/ping", method="GET"), 503, "ServiceUnavailable")
    finally:
        app.state.server.close()


def test_auth(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "open", model="churn:1")
    eps.deploy(ws, "locked", model="churn:1", api_key_required=True)
    key = eps.create_api_key(ws, "locked").key
    other = eps.create_api_key(ws, "open").key
    app = create_app(ws, metrics_flush_interval_s=0, reload_interval_s=0.01)
    try:
        p = "/endpoints/locked/invocations"
        rs = asgi_requests(app, [
            Req(p, body(1)),
            Req(p, body(1), {**JSON, "authorization": "Bearer lmk.abc.def"}),
            Req(p, body(1), {**JSON, "authorization": f"Bearer {other}"}),
            Req(p, body(1), {**JSON, "authorization": "AWS4-HMAC-SHA256 Credential=x/y"}),
            Req(p, body(1), {**JSON, "authorization": f"Bearer {key}"}),
            Req(p, body(1), {**JSON, "authorization": "AWS4-HMAC-SHA256 Credential=x/y", "x-loopml-api-key": key}),
            Req("/endpoints/open/invocations", body(1), {**JSON, "authorization": "Bearer whatever"}),
        ])
        _error(rs[0], 401, "UnauthorizedException", "requires an API key", "loopml endpoints api-key locked")
        _error(rs[1], 403, "AccessDeniedException")
        _error(rs[2], 403, "AccessDeniedException")
        _error(rs[3], 401, "UnauthorizedException")
        assert [r.status_code for r in rs[4:]] == [200, 200, 200]
        # a revoked key stops working, without a restart
        eps.revoke_api_key(ws, "locked", key.split(".")[1])

        def refused() -> bool:
            return asgi(app, p, body(1), {**JSON, "authorization": f"Bearer {key}"}).status_code == 403
        wait_for(refused, what="the revoked key to be refused")
    finally:
        app.state.server.close()


def test_changes_apply_without_restart_on_a_real_server(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "churn", model="churn:1")
    app = create_app(ws, reload_interval_s=0.05, metrics_flush_interval_s=0, retire_grace_s=0)
    server: Server = app.state.server
    expected = {ref: m.predict_proba(frame(2))[:, 1].round(6).tolist() for ref, m in models.items()}
    with running(app) as url, httpx.Client(base_url=url) as c:
        def probs(name: str = "churn") -> list[float] | int:
            r = c.post(f"/endpoints/{name}/invocations", content=body(2), headers=JSON)
            if r.status_code != 200:
                return r.status_code
            return [round(p["probabilities"][1], 6) for p in r.json()["predictions"]]

        assert probs() == expected["churn:1"]
        eps.deploy(ws, "churn", model="churn:2")
        wait_for(lambda: probs() == expected["churn:2"], what="the redeploy to apply")
        assert server.cache.loaded == [models["churn:2"].sha256]  # the replaced model was dropped
        eps.deploy(ws, "late", model="churn:1")  # a new endpoint is served at once (a forced look-up)
        assert probs("late") == expected["churn:1"]
        eps.delete_endpoint(ws, "churn")
        wait_for(lambda: probs() == 404, what="the deletion to apply")
        r = c.get("/endpoints").json()["endpoints"]
        assert [e["name"] for e in r] == ["late"]


def test_models_are_shared_and_failures_are_not_500s_for_input(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "x", variants=[VariantSpec("a", "churn:1", 1), VariantSpec("b", "churn:1", 1)])
    eps.deploy(ws, "y", model="churn:1")
    eps.deploy(ws, "z", model="churn:1", max_rows=5)
    app = create_app(ws, metrics_flush_interval_s=0)
    server: Server = app.state.server
    try:
        assert server.cache.loads == 1 and server.cache.loaded == [models["churn:1"].sha256]
        x = server.live["x"]
        assert x.backends["a"] is x.backends["b"] is server.live["y"].backends["AllTraffic"]
        assert server.live["z"].backends["AllTraffic"] is not x.backends["a"]  # other limits, other predictor
    finally:
        server.close()
    assert server.cache.loaded == []


class _Failing:
    """A backend whose model fails: ModelError for 'model', anything else for 'bug'."""

    def __init__(self, inner: LocalBackend, how: str) -> None:
        self.inner = inner
        self.how = how
        self.input_names = inner.input_names

    async def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> InvokeResult:
        self.inner.predictor.decode(body, content_type)  # bad input still fails as bad input
        if self.how == "model":
            raise ModelError("the model failed: ValueError: boom")
        raise RuntimeError("a bug")

    def close(self) -> None:
        self.inner.close()


def test_backend_seam_model_errors_and_internal_failures(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "model", model="churn:1")
    eps.deploy(ws, "bug", model="churn:2")
    made: list[str] = []

    def factory(cache: ModelCache, sha: str, config: EndpointConfig) -> _Failing:
        how = "model" if sha == models["churn:1"].sha256 else "bug"
        made.append(how)
        return _Failing(LocalBackend(cache, sha, config), how)

    app = create_app(ws, backend_factory=factory, metrics_flush_interval_s=0)
    try:
        assert sorted(made) == ["bug", "model"]
        r = asgi(app, "/endpoints/model/invocations", body(1))
        _error(r, 424, "ModelError", "boom")
        assert r.json()["OriginalStatusCode"] == 500
        _error(asgi(app, "/endpoints/bug/invocations", body(1)), 500, "InternalFailure", "a bug")
        _error(asgi(app, "/endpoints/bug/invocations", b"{"), 400, "ValidationError")
        text = asgi(app, "/metrics", method="GET").text
        assert 'loopml_invocation_5xx_errors_total{endpoint="bug",variant="AllTraffic"} 1.0' in text
    finally:
        app.state.server.close()


def test_micro_batching_groups_concurrent_requests(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "mb", model="churn:1", micro_batching=True, max_batch_rows=16, max_wait_ms=20)
    app = create_app(ws, metrics_flush_interval_s=0)
    server: Server = app.state.server
    try:
        df = frame(24)
        records = orjson.loads(orjson.dumps([orjson.loads(body(24))]))[0]
        reqs = [Req("/endpoints/mb/invocations", orjson.dumps(rec)) for rec in records]
        reqs.append(Req("/endpoints/mb/invocations", orjson.dumps({**records[0], "x1": "bad"})))
        reqs.append(Req("/endpoints/mb/invocations", body(1), {**JSON, "accept": "image/png"}))
        rs = asgi_requests(app, reqs, concurrent=True)
        assert [r.status_code for r in rs] == [200] * 24 + [400, 406]
        got = [r.json()["predictions"][0]["probabilities"][1] for r in rs[:24]]
        assert np.allclose(got, models["churn:1"].predict_proba(df)[:, 1])
        backend = server.live["mb"].backends["AllTraffic"]
        assert isinstance(backend, LocalBackend) and backend.batcher is not None
        assert backend.batcher.requests == 24 and backend.batcher.batches < 24
        # a request alone does not wait for a batch: it goes straight to the model
        r = asgi(app, "/endpoints/mb/invocations", orjson.dumps(records[0]))
        assert r.status_code == 200 and backend.batcher.requests == 24
        # multi-row requests pass through too
        r = asgi(app, "/endpoints/mb/invocations", body(3))
        assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    finally:
        server.close()


def test_metrics_are_written_to_the_metrics_table(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "churn", variants=[VariantSpec("a", "churn:1", 1), VariantSpec("b", "churn:2", 1)])
    app = create_app(ws, metrics_flush_interval_s=0.2)
    try:
        pin = {"a": {**JSON, "x-amzn-sagemaker-target-variant": "a"},
               "b": {**JSON, "x-amzn-sagemaker-target-variant": "b"}}
        asgi_requests(app, [Req("/endpoints/churn/invocations", body(1), pin["a"])] * 3
                      + [Req("/endpoints/churn/invocations", b"{", pin["b"])] * 2)
        wait_for(lambda: len(ws.metrics.query("Invocations", dimensions={"endpoint": "churn"})) == 2,
                 what="the metrics flush")
    finally:
        app.state.server.close()

    def total(name: str, variant: str) -> float:
        return sum(p.value for p in ws.metrics.query(name, dimensions={"endpoint": "churn", "variant": variant}))

    assert (total("Invocations", "a"), total("Invocation4XXErrors", "a"), total("Invocation5XXErrors", "a")) == (
        3, 0, 0)
    assert (total("Invocations", "b"), total("Invocation4XXErrors", "b")) == (2, 2)
    (ml,) = ws.metrics.query("ModelLatency", dimensions={"variant": "a"})
    (ol,) = ws.metrics.query("OverheadLatency", dimensions={"variant": "a"})
    (p99,) = ws.metrics.query("LatencyP99", dimensions={"variant": "a"})
    assert 0 < ml.value < 1000 and 0 <= ol.value < 1000 and p99.value >= ml.value
    assert ws.metrics.query("ModelLatency", dimensions={"variant": "b"}) == []  # no successful call


def test_stream_ingestion_is_mounted(ws: Workspace) -> None:
    app = create_app(ws, streams=True, metrics_flush_interval_s=0)
    try:
        r = asgi(app, "/streams/nope/records", b'{"a": 1}')
        assert r.status_code == 404 and "nope" in r.json()["message"]
        assert asgi(app, "/ping", method="GET").status_code == 200  # no endpoints is healthy
    finally:
        app.state.server.close()
        app.state.ingestion.close()


def test_lifespan_closes_everything(ws: Workspace, models: dict[str, Model]) -> None:
    eps.deploy(ws, "churn", model="churn:1", micro_batching=True, capture_percentage=100)
    app = create_app(ws, metrics_flush_interval_s=0)
    server: Server = app.state.server
    with running(app) as url:
        assert httpx.post(f"{url}/endpoints/churn/invocations", content=body(1), headers=JSON).status_code == 200
    assert server.live == {} and server.cache.loaded == []

    async def nothing() -> None:
        await server.aclose()  # idempotent
    asyncio.run(nothing())


def test_endpoint_client_in_process_and_over_http(ws: Workspace, models: dict[str, Model]) -> None:
    from loopml import InvalidInput, NotFound
    from loopml.serve import Endpoint

    eps.deploy(ws, "churn", variants=[VariantSpec("a", "churn:1", 1), VariantSpec("b", "churn:2", 1)])
    eps.update_weights(ws, "churn", {"b": 0})  # b answers pinned requests only
    eps.deploy(ws, "mme", multi_model={"x": "churn:2"})
    df = frame(6)
    want = models["churn:1"].predict_proba(df)[:, 1]
    with Endpoint(ws, "churn", seed=0) as local:
        got = local.predict(df)
        assert list(got.columns) == ["prediction", "probabilities"] and list(got.index) == list(df.index)
        assert np.allclose([p[1] for p in got["probabilities"]], want)
        assert got["prediction"].tolist() == models["churn:1"].predict(df).tolist()
        pinned = local.predict(df, variant="b")
        assert np.allclose([p[1] for p in pinned["probabilities"]], models["churn:2"].predict_proba(df)[:, 1])
        r = local.invoke(body(2), accept="text/csv", custom_attributes="c=1")
        assert r.variant == "a" and r.content_type == "text/csv" and r.custom_attributes == "c=1"
        with pytest.raises(InvalidInput, match="no variant 'zz'"):
            local.predict(df, variant="zz")
        with pytest.raises(InvalidInput, match="x1"):
            local.predict(df.drop(columns="x1"))
    with Endpoint(ws, "mme") as local_mm:
        assert np.allclose([p[1] for p in local_mm.predict(df, target_model="x")["probabilities"]],
                           models["churn:2"].predict_proba(df)[:, 1])
        with pytest.raises(InvalidInput, match="Target-Model"):
            local_mm.predict(df)
    app = create_app(ws, metrics_flush_interval_s=0)
    with running(app) as url:
        with Endpoint(url, "churn") as remote:
            got_http = remote.predict(df)
            assert list(got_http.index) == list(df.index)
            assert np.allclose([p[1] for p in got_http["probabilities"]], want)
            assert remote.invoke(body(1), variant="b").variant == "b"
            with pytest.raises(InvalidInput, match=r"no variant 'zz'.*\(HTTP 400\)"):
                remote.predict(df, variant="zz")
        with Endpoint(url, "nope") as missing, pytest.raises(NotFound, match="no endpoint named 'nope'"):
            missing.predict(df)
    with pytest.raises(InvalidInput, match="http"):
        Endpoint("ftp://x", "churn")
