"""Data capture wired into the server: what is captured, with which ids and variants, and what is not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from loopml import Workspace
from loopml.serve import endpoints as eps
from loopml.serve.app import Server, create_app
from loopml.serve.capture import capture_files, read_capture
from loopml.serve.endpoints import VariantSpec
from loopml.train.package import Model
from tests.serve._fixtures import Req, asgi_requests, body, frame, register_all

PATH = "/endpoints/cap/invocations"
JSON = {"content-type": "application/json"}


def test_captured_requests_read_back(ws: Workspace, trained: Callable[..., Model]) -> None:
    models = register_all(ws, trained)
    eps.deploy(ws, "cap", variants=[VariantSpec("a", "churn:1", 1), VariantSpec("b", "churn:2", 1)],
               capture_percentage=100)
    eps.deploy(ws, "quiet", model="churn:1")
    app = create_app(ws, metrics_flush_interval_s=0, capture_flush_interval_s=0.05)
    server: Server = app.state.server
    try:
        df = frame(3)
        csv = df.assign(day=df["day"].dt.strftime("%Y-%m-%d")).to_csv(header=False, index=False).encode()
        rs = asgi_requests(app, [
            Req(PATH, body(3), {**JSON, "x-amzn-sagemaker-inference-id": "req-1",
                                "x-amzn-sagemaker-target-variant": "a"}),
            Req(PATH, csv, {"content-type": "text/csv", "x-amzn-sagemaker-inference-id": "req-2",
                            "x-amzn-sagemaker-target-variant": "b"}),
            Req(PATH, b"{broken", {**JSON, "x-amzn-sagemaker-inference-id": "req-3"}),  # errors are not captured
            Req("/endpoints/quiet/invocations", body(1)),
        ])
        assert [r.status_code for r in rs] == [200, 200, 400, 200]
        writer = server.live["cap"].capture
        assert writer is not None and server.live["quiet"].capture is None
        assert writer.flush(5)
    finally:
        server.close()
    cap = read_capture(ws, "cap").sort_values(["inference_id"]).reset_index(drop=True)
    assert cap["inference_id"].tolist() == ["req-1", "req-1:1", "req-1:2", "req-2", "req-2:1", "req-2:2"]
    assert cap["variant"].tolist() == ["a"] * 3 + ["b"] * 3
    assert cap["model"].tolist() == ["churn:1"] * 3 + ["churn:2"] * 3
    assert np.allclose(cap["x1"].astype(float), np.concatenate([df["x1"], df["x1"]]))
    expected = np.concatenate([models["churn:1"].predict_proba(df)[:, 1], models["churn:2"].predict_proba(df)[:, 1]])
    assert np.allclose([p[1] for p in cap["probabilities"]], expected, atol=1e-6)
    assert read_capture(ws, "cap", variant="b")["inference_id"].tolist()[0].startswith("req-2")
    assert list(capture_files(ws, "quiet")) == []
    # the files sit in SageMaker's layout
    files = list(capture_files(ws, "cap"))
    assert files and all("/capture/cap/" in f and f.endswith(".jsonl") for f in files)
    line = orjson.loads(Path(files[0]).read_bytes().splitlines()[0])
    assert line["eventMetadata"]["inputColumns"] == ["x1", "x2", "n", "city", "day"]
    assert line["eventMetadata"]["latencyMs"] > 0


def test_capture_follows_config_changes(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained, ["churn:1"])
    eps.deploy(ws, "cap", model="churn:1")
    app = create_app(ws, metrics_flush_interval_s=0, capture_flush_interval_s=0.05)
    server: Server = app.state.server
    try:
        assert asgi_requests(app, [Req(PATH, body(1))])[0].status_code == 200
        eps.update_endpoint(ws, "cap", capture_percentage=100)
        server.refresh()
        writer = server.live["cap"].capture
        assert writer is not None
        ids = {"x-amzn-sagemaker-inference-id": "after", **JSON}
        assert asgi_requests(app, [Req(PATH, body(1), ids)])[0].status_code == 200
        assert writer.flush(5)
        eps.update_weights(ws, "cap", {"AllTraffic": 2})  # other changes keep the same writer
        server.refresh()
        assert server.live["cap"].capture is writer
        eps.update_endpoint(ws, "cap", capture_percentage=0)
        server.refresh()
        assert server.live["cap"].capture is None
        assert asgi_requests(app, [Req(PATH, body(1))])[0].status_code == 200
    finally:
        server.close()
    assert read_capture(ws, "cap")["inference_id"].tolist() == ["after"]
