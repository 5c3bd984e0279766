"""The edge bundle of ``export_model(..., "onnx")``: edge.json, edge.onnx, the fallback when a step does not convert."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import loopml.edge
from loopml import InvalidInput, Workspace
from loopml.registry import export_model, register_model
from tests.edge._bundles import export, frame, inputs
from tests.train._data import package

pytest.importorskip("onnxruntime")


def test_manifest_lists_signature_files_parity_and_latency(ws: Workspace, tmp_path: Path) -> None:
    res, model = export(ws, tmp_path, "linear", {}, target="amount", sample=frame(50, seed=2))
    out = res.path
    assert res.files == ["edge.json", "edge.onnx", "loopml_edge.py", "model.onnx", "onnx.json", "recipe.json"]
    doc = json.loads((out / "edge.json").read_text())
    assert doc["format"] == "loopml.edge" and doc["format_version"] == 1 and doc["model"] == "m:1"
    assert doc["package_sha256"] == model.sha256 == res.package_sha256
    assert (doc["flavor"], doc["problem_type"], doc["layout"], doc["graph"]) == ("linear", "regression", "raw", "edge.onnx")
    assert doc["prediction"] == {"output": "variable", "rule": "value"} and doc["classes"] is None
    assert [c["name"] for c in doc["signature"]["inputs"]] == ["x1", "x2", "x3", "city", "plan", "shop", "day"]
    assert {i["name"]: (i["onnx_type"], i["missing"]) for i in doc["inputs"]}["day"] == (
        "tensor(int64)", "-9223372036854775808 (NaT)")
    assert doc["features"] == model.signature.features
    for name, info in doc["files"].items():
        data = (out / name).read_bytes()
        assert info == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert (out / "loopml_edge.py").read_text() == Path(loopml.edge._runtime.__file__).read_text()
    assert doc["parity"] == res.edge["parity"] if res.edge else False
    assert doc["parity"]["compared"] == "prediction" and doc["parity"]["passed"]
    lat = doc["latency"]
    assert lat["rows"] == 1 and lat["edge_predict_one"]["calls"] == 200
    assert lat["edge_predict_one"]["p50_ms"] <= lat["edge_predict_one"]["p99_ms"]
    assert res.edge is not None and res.edge["device_bytes"] == doc["files"]["edge.onnx"]["bytes"] + len(
        (out / "edge.json").read_bytes())
    assert res.edge["bundle_bytes"] == sum(p.stat().st_size for p in out.iterdir())
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out / "edge.onnx")).metadata_props}
    assert meta["loopml.package_sha256"] == model.sha256 and meta["loopml.recipe"].startswith("in this graph")
    assert res.to_dict()["edge"]["layout"] == "raw"


def test_random_input_rows_when_no_rows_are_at_hand(ws: Workspace, tmp_path: Path) -> None:
    res, _ = export(ws, tmp_path, "lightgbm", {"num_boost_round": 5}, target="tier", rows=120)
    assert res.edge is not None and res.edge["layout"] == "raw"
    assert res.edge["parity"]["rows_from"] == "random input rows" and res.edge["parity"]["rows"] == 200
    assert res.parity is not None and res.parity.rows_from == "random feature rows"


def test_a_step_that_does_not_convert_keeps_the_recipe_outside(ws: Workspace, tmp_path: Path) -> None:
    recipe = {"steps": [
        {"kind": "impute", "columns": ["x2"], "strategy": "median"},
        {"kind": "hashing", "column": "shop", "n_features": 4},
        {"kind": "lag", "columns": ["x1"], "entity": "city", "time": "day"},
        {"kind": "one_hot", "columns": ["city", "plan"]},
        {"kind": "drop_columns", "columns": ["shop", "day", "x3"]},
    ]}
    res, model = export(ws, tmp_path, "xgboost", {"num_round": 10}, recipe=recipe, sample=frame(60, seed=3))
    assert res.files == ["edge.json", "loopml_edge.py", "model.onnx", "onnx.json", "recipe.json"]
    edge = res.edge
    assert edge is not None and edge["layout"] == "features" and edge["graph"] == "model.onnx"
    steps = edge["recipe"]["steps"]
    assert [(s["kind"], s["converted"]) for s in steps] == [
        ("impute", True), ("hashing", False), ("lag", False), ("one_hot", False), ("drop_columns", False)]
    assert steps[1]["reason"].startswith("hashes terms with MurmurHash3") and steps[2]["reason"].startswith(
        "reads earlier rows of the same entity")
    assert steps[3]["reason"] == "not tried: an earlier step did not convert"
    assert edge["recipe"]["reason"].startswith("step 2 (hashing): hashes terms with MurmurHash3")
    assert edge["inputs"] == [{"name": "features", "kind": "features", "onnx_type": "tensor(float)",
                               "shape": [None, len(model.signature.features)], "columns": model.signature.features}]
    assert edge["parity"] == res.parity.to_dict() if res.parity else False

    bundle = loopml.edge.load(res.path)
    assert bundle.layout == "features" and bundle.input_names == model.signature.features
    raw = inputs(frame(5, seed=8))
    with pytest.raises(InvalidInput, match=r"record 0 has no field 'shop_hash_0'; this model reads .* \(the recipe "
                                           r"stays outside this graph: step 2 \(hashing\): hashes terms .*; step 3 "
                                           r"\(lag\): reads earlier rows .*; apply recipe.json with loopml first\)"):
        bundle.predict(raw.to_dict("records"))
    # the recipe applied with loopml, record by record (lag reads the fitted history), then the bundle
    assert model.recipe is not None
    records = raw.to_dict("records")
    feats = [model.recipe.transform_one(r) for r in records]
    got = np.array([p["probabilities"] for p in bundle.predict(feats)])
    assert np.abs(got - np.array([model.predict_one(r)["probabilities"] for r in records])).max() < 1e-5
    assert bundle.predict_one(feats[0]) == bundle.predict(feats[:1])[0]
    with pytest.raises(InvalidInput, match=r"field 'x1' must be a number \(or null\), got the text 'a'.*apply recipe"):
        bundle.predict([{**feats[0], "x1": "a"}])


def test_a_model_without_recipe_takes_its_columns(ws: Workspace, tmp_path: Path) -> None:
    df = frame(150)[["x1", "x2", "x3", "amount"]]
    folder, _ = package(tmp_path, df, "xgboost", {"num_round": 5}, target="amount", name="plain")
    v = register_model(ws, folder, "plain")
    res = export_model(ws, v.ref, "onnx", out=tmp_path / "plain-edge", sample=df.head(40))
    assert "recipe.json" not in res.files and res.edge is not None and res.edge["layout"] == "raw"
    assert [i["name"] for i in res.edge["inputs"]] == ["x1", "x2", "x3"] and res.edge["recipe"]["steps"] == []
    preds = loopml.edge.load(res.path).predict({"x1": [0.5, None], "x2": [1.0, 2.0], "x3": [np.nan, 0.0]})
    assert len(preds) == 2 and all(isinstance(p["prediction"], float) for p in preds)
