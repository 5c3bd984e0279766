"""Fuzz the data-plane routes from their OpenAPI description: no generated input gets a 5xx.

The description is the app's own ``/openapi.json``, with the endpoint names
and record fields of this workspace filled in so most generated requests
reach the models (and the rest probe the edges).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from loopml import Workspace
from loopml.serve import endpoints as eps
from loopml.serve.app import create_app
from loopml.train.package import Model
from tests.serve._fixtures import register_all, running

_NUMBER = {"anyOf": [{"type": "number"}, {"type": "null"}]}
_RECORD = {"type": "object", "properties": {"x1": _NUMBER, "x2": _NUMBER, "n": {"type": "integer"},
                                            "city": {"type": "string"}, "day": {"type": "string", "format": "date"}},
           "required": ["x1", "x2", "n", "city", "day"], "additionalProperties": False}
#: header values that lead somewhere (the negative mode tries the others)
_HEADERS = {"Accept": ["application/json", "text/csv", "application/jsonlines", "*/*"],
            "X-Amzn-SageMaker-Target-Variant": ["a", "b", "AllTraffic"],
            "X-Amzn-SageMaker-Target-Model": ["a", "b"]}


@schemathesis.serializer("text/csv", "application/jsonlines")
def _text(ctx: Any, value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else str(value).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained: Callable[..., Model]) -> Iterator[tuple[str, dict[str, Any]]]:
    ws = Workspace.init(tmp_path_factory.mktemp("fuzz") / "ws")
    register_all(ws, trained)
    eps.deploy(ws, "fz", variants=[eps.VariantSpec("a", "churn:1", 1), eps.VariantSpec("b", "churn:2", 1)],
               max_rows=50, capture_percentage=50)
    eps.deploy(ws, "mb", model="churn:1", micro_batching=True)
    eps.deploy(ws, "locked", model="churn:2", api_key_required=True)
    eps.deploy(ws, "mme", multi_model={"a": "churn:1", "b": "churn:2"}, max_loaded=1)
    app = create_app(ws, metrics_flush_interval_s=0)
    with running(app) as url:
        spec = httpx.get(f"{url}/openapi.json").json()
        yield url, spec
    ws.close()


@pytest.fixture(scope="module")
def api(served: tuple[str, dict[str, Any]]) -> Any:
    spec = copy.deepcopy(served[1])
    for path in ("/endpoints/{name}/invocations", "/invocations"):
        for p in spec["paths"][path]["post"]["parameters"]:
            if p["name"] == "name":
                p["schema"] = {"type": "string", "enum": ["fz", "mb", "locked", "mme", "missing"]}
            elif p["name"] in _HEADERS:
                p["schema"] = {"type": "string", "enum": _HEADERS[p["name"]]}
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        body["schema"] = {"oneOf": [{"type": "array", "items": _RECORD, "maxItems": 60}, _RECORD,
                                    {"type": "object", "properties": {"instances": {"type": "array"}},
                                     "required": ["instances"]}]}
    return schemathesis.openapi.from_dict(spec)


OPERATIONS = [("GET", "/ping", "positive"), ("GET", "/metrics", "positive"), ("GET", "/endpoints", "positive"),
              ("POST", "/invocations", "positive"), ("POST", "/invocations", "negative"),
              ("POST", "/endpoints/{name}/invocations", "positive"),
              ("POST", "/endpoints/{name}/invocations", "negative")]


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS, ids=[" ".join(o) for o in OPERATIONS])
def test_no_generated_request_gets_a_5xx(api: Any, served: tuple[str, dict[str, Any]], method: str, path: str,
                                        mode: str) -> None:
    base_url = served[0]
    operation = api[path][method]
    calls: list[int] = []

    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=50, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        response = case.call(base_url=base_url)
        calls.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path, case.headers, case.body,
                                            response.text)
        if response.status_code >= 400:
            doc = response.json()
            header = response.headers["x-amzn-errortype"]
            assert doc["message"] and [doc["code"]] == (header if isinstance(header, list) else [header])

    check()
    assert calls
    if path == "/endpoints/{name}/invocations" and mode == "positive":
        assert 200 in calls  # the fuzzing reached the models, not only the error paths
