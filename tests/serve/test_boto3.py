"""boto3's ``sagemaker-runtime`` client against a real ``loopml serve`` on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import boto3
import numpy as np
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from loopml import Workspace
from loopml.serve import endpoints as eps
from loopml.serve.app import create_app
from loopml.serve.endpoints import VariantSpec
from loopml.train.package import Model
from tests.serve._fixtures import body, frame, register_all, running


@pytest.fixture
def served(ws: Workspace, trained: Callable[..., Model]) -> Iterator[tuple[str, dict[str, Model], str]]:
    models = register_all(ws, trained, ("churn:1", "churn:2", "reg:1"))
    eps.deploy(ws, "churn", variants=[VariantSpec("a", "churn:1", 1), VariantSpec("b", "churn:2", 1)])
    eps.deploy(ws, "locked", model="churn:1", api_key_required=True)
    eps.deploy(ws, "mme", multi_model={"reg": "reg:1", "churn": "churn:1"})
    key = eps.create_api_key(ws, "locked").key
    app = create_app(ws, metrics_flush_interval_s=0)
    with running(app) as url:
        yield url, models, key


def _client(url: str) -> object:
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))


def test_invoke_endpoint_with_boto3(served: tuple[str, dict[str, Model], str]) -> None:
    url, models, _ = served
    client = _client(url)
    df = frame(4)
    seen = set()
    for _ in range(12):
        r = client.invoke_endpoint(EndpointName="churn", Body=body(4), ContentType="application/json",  # type: ignore[attr-defined]
                                   Accept="application/json", CustomAttributes="trace=abc",
                                   InferenceId="boto-1")
        variant = r["InvokedProductionVariant"]
        seen.add(variant)
        ref = {"a": "churn:1", "b": "churn:2"}[variant]
        doc = orjson.loads(r["Body"].read())
        assert np.allclose([p["probabilities"][1] for p in doc["predictions"]],
                           models[ref].predict_proba(df)[:, 1])
        assert r["ContentType"] == "application/json" and r["CustomAttributes"] == "trace=abc"
    assert seen == {"a", "b"}
    r = client.invoke_endpoint(EndpointName="churn", Body=body(1), ContentType="application/json",  # type: ignore[attr-defined]
                               TargetVariant="b")
    assert r["InvokedProductionVariant"] == "b"
    csv = df.assign(day=df["day"].dt.strftime("%Y-%m-%d")).to_csv(header=False, index=False)
    r = client.invoke_endpoint(EndpointName="churn", Body=csv, ContentType="text/csv", Accept="text/csv",  # type: ignore[attr-defined]
                               TargetVariant="a")
    assert len(r["Body"].read().decode().strip().splitlines()) == 4
    # multi-model: TargetModel
    r = client.invoke_endpoint(EndpointName="mme", Body=body(2, recipe="none"), ContentType="application/json",  # type: ignore[attr-defined]
                               TargetModel="reg")
    assert np.allclose([p["prediction"] for p in orjson.loads(r["Body"].read())["predictions"]],
                       models["reg:1"].predict(frame(2, recipe="none")))


def test_boto3_errors_and_api_keys(served: tuple[str, dict[str, Model], str]) -> None:
    url, _, key = served
    client = _client(url)
    cases = [
        (dict(EndpointName="nope", Body=body(1), ContentType="application/json"), "ValidationError", 404, "nope"),
        (dict(EndpointName="churn", Body=b"{", ContentType="application/json"), "ValidationError", 400, "JSON"),
        (dict(EndpointName="churn", Body=body(1), ContentType="application/json", TargetVariant="zz"),
         "ValidationError", 400, "a, b"),
        (dict(EndpointName="mme", Body=body(1), ContentType="application/json"), "ValidationError", 400,
         "Target-Model"),
        (dict(EndpointName="locked", Body=body(1), ContentType="application/json"), "UnauthorizedException", 401,
         "API key"),
    ]
    for kwargs, code, status, needle in cases:
        with pytest.raises(ClientError) as e:
            client.invoke_endpoint(**kwargs)  # type: ignore[attr-defined]
        err = e.value.response
        assert err["Error"]["Code"] == code and err["ResponseMetadata"]["HTTPStatusCode"] == status
        assert needle in err["Error"]["Message"]
    # boto3 signs with SigV4 in Authorization; the API key travels in X-Loopml-Api-Key
    keyed = _client(url)

    def add_key(request: object, **_: object) -> None:
        request.headers["X-Loopml-Api-Key"] = key  # type: ignore[attr-defined]

    keyed.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", add_key)  # type: ignore[attr-defined]
    r = keyed.invoke_endpoint(EndpointName="locked", Body=body(1), ContentType="application/json")  # type: ignore[attr-defined]
    assert r["InvokedProductionVariant"] == "AllTraffic"
