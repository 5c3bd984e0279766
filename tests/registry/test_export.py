"""Export: ONNX with a parity check for the flavors that convert, and the MLflow model format."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from loopml import Conflict, IntegrityError, InvalidInput, Workspace
from loopml.data import Catalog
from loopml.prep import FittedRecipe
from loopml.registry import ParityError, export_model, load_model, register_model
from loopml.store.lineage import EntityRef
from loopml.train.package import verify_package
from tests.registry._packages import record_run, train_package
from tests.train import _custom  # noqa: F401  (registers test_mean)
from tests.train._data import churn

ort = pytest.importorskip("onnxruntime")


def _complete(n: int, seed: int = 0) -> pd.DataFrame:
    """Churn rows without missing values (scikit-learn trees route NaN in a way ONNX does not)."""
    df = churn(n, seed=seed)
    df["x2"] = df["x2"].fillna(0.0)
    return df


def _session(path: Path) -> Any:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def xgb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_package(tmp_path_factory.mktemp("xgb"), churn(300), "xgboost", {"num_round": 15}, name="xgb")


def test_onnx_xgboost_with_parity_on_training_rows(ws: Workspace, xgb_folder: Path, tmp_path: Path) -> None:
    data = Catalog(ws).write("churn", churn(300))
    v = register_model(ws, record_run(ws, xgb_folder, data=data), "churn")
    res = export_model(ws, "churn:1", "onnx", out=tmp_path / "edge")
    assert res.files == ["edge.json", "edge.onnx", "loopml_edge.py", "model.onnx", "onnx.json", "recipe.json"]
    assert res.model == "churn:1" and res.edge is not None and res.edge["layout"] == "raw"
    p = res.parity
    assert p is not None and p.passed and p.rows == 200 and p.compared == "probabilities"
    assert p.rows_from == "training data churn:1" and p.max_abs_diff < 1e-5
    doc = json.loads((tmp_path / "edge" / "onnx.json").read_text())
    assert doc["input"] == {"name": "features", "type": "float32", "shape": [None, len(doc["features"])]}
    assert doc["classes"] == [0, 1] and set(doc["outputs"]) == {"label", "probabilities"}
    assert doc["parity"]["passed"] and "before the ONNX model" in doc["recipe"]
    assert [e.dst.kind for e in ws.lineage.downstream(v.entity, depth=1)] == ["onnx_model"]

    # the edge path: recipe.json, then the ONNX graph on the features in order
    rows = churn(60, seed=7).drop(columns=["y"])
    recipe = FittedRecipe.from_bytes((tmp_path / "edge" / "recipe.json").read_bytes())
    matrix = recipe.transform(rows)[doc["features"]].to_numpy(dtype=np.float32, na_value=np.nan)
    sess = _session(tmp_path / "edge" / "model.onnx")
    label, proba = sess.run(["label", "probabilities"], {"features": matrix})
    native = load_model(ws, "churn:1")
    np.testing.assert_allclose(proba, native.predict_proba(rows), atol=1e-5)
    np.testing.assert_array_equal(np.array(doc["classes"])[label], native.predict(rows))
    meta = {p.key: p.value for p in __import__("onnx").load(str(tmp_path / "edge" / "model.onnx")).metadata_props}
    assert meta["loopml.package_sha256"] == v.package_sha256 and json.loads(meta["loopml.features"]) == doc["features"]


@pytest.mark.parametrize(("algo", "hp", "target"), [
    ("linear", {}, "y"),
    ("linear", {}, "x1"),
    ("lightgbm", {"num_boost_round": 10}, "y"),
    ("random_forest", {"num_trees": 10, "max_depth": 5}, "y"),
    ("knn", {"k": 5}, "y"),
    ("kmeans", {"k": 3}, None),
    ("pca", {"num_components": 2}, None),
    ("isolation_forest", {"num_trees": 20}, None),
])
def test_onnx_parity_per_flavor(ws: Workspace, tmp_path: Path, algo: str, hp: dict[str, Any],
                                target: str | None) -> None:
    df = _complete(200)
    if target != "y":
        df = df.drop(columns=["y"])
    folder = train_package(tmp_path, df, algo, hp, target=target, name="pkg")
    v = register_model(ws, folder, "m")  # a folder: no run, no training data in the catalog
    res = export_model(ws, v.ref, "onnx", out=tmp_path / "out", sample=_complete(80, seed=3), tolerance=1e-4)
    assert res.parity is not None and res.parity.passed and res.parity.rows == 80
    assert res.parity.rows_from == "the given sample"
    if algo == "knn":  # random rows sit far from every neighbour: float32 ties pick other ones
        with pytest.raises(ParityError, match=r"the rows were random feature values .* pass real rows as sample="):
            export_model(ws, v.ref, "onnx", out=tmp_path / "out2", rows=50)
        return
    # without sample rows or catalog data: random feature rows
    again = export_model(ws, v.ref, "onnx", out=tmp_path / "out2", rows=50)
    assert again.parity is not None and again.parity.rows_from == "random feature rows" and again.parity.rows == 50


def test_onnx_refusals(ws: Workspace, tmp_path: Path, xgb_folder: Path) -> None:
    mean = train_package(tmp_path, churn(100).drop(columns=["city", "day"]), "test_mean", target="x1", name="mean")
    register_model(ws, mean, "mean")
    with pytest.raises(InvalidInput, match=r"^test_mean models do not convert to ONNX \(ONNX export covers .*xgboost\); "
                                           r"export it with --format mlflow instead$"):
        export_model(ws, "mean:1", "onnx", out=tmp_path / "o")
    groups = churn(120)
    groups["q"] = np.arange(120) // 10
    rank = train_package(tmp_path, groups, "xgboost", {"num_round": 3}, roles={"group": "q"}, name="rank")
    register_model(ws, rank, "rank")
    with pytest.raises(InvalidInput, match="xgboost ranking models do not convert to ONNX"):
        export_model(ws, "rank:1", "onnx", out=tmp_path / "o")

    # a forest trained with missing values routes them its own way: parity fails, nothing is written
    forest = train_package(tmp_path, churn(200), "random_forest", {"num_trees": 10}, name="rf")
    register_model(ws, forest, "rf")
    with pytest.raises(ParityError) as exc:
        export_model(ws, "rf:1", "onnx", out=tmp_path / "rf-out", sample=churn(100, seed=4))
    msg = str(exc.value)
    assert msg.startswith("the ONNX model of rf:1 differs from the native random_forest model by up to ")
    assert "nothing was exported; random_forest trees send missing values their own way" in msg
    assert not (tmp_path / "rf-out").exists() and not list(tmp_path.glob(".tmp-export-*"))

    register_model(ws, xgb_folder, "churn")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(Conflict, match="already exists and is not an empty folder"):
        export_model(ws, "churn:1", "onnx", out=tmp_path / "full")
    with pytest.raises(InvalidInput, match="unknown export format 'pmml'; use one of onnx, mlflow"):
        export_model(ws, "churn:1", "pmml", out=tmp_path / "p")


def _mlflow_load(folder: Path) -> Any:
    """What ``mlflow.pyfunc.load_model`` does with a ``loader_module`` flavor."""
    import importlib

    conf = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    return importlib.import_module(conf["loader_module"])._load_pyfunc(str(folder / conf["data"]))


def test_mlflow_layout_and_loader(ws: Workspace, xgb_folder: Path, tmp_path: Path) -> None:
    v = register_model(ws, xgb_folder, "churn", approval="Approved")
    res = export_model(ws, "churn", "mlflow", out=tmp_path / "mlf")
    out = tmp_path / "mlf"
    assert res.parity is None and set(res.files) == {
        "MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "model/manifest.json",
        "model/model/features.json", "model/model/model.ubj", "model/recipe.json"}
    mlmodel = yaml.safe_load((out / "MLmodel").read_text())
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "loopml.registry._mlflow_loader" and pyfunc["data"] == "model"
    assert pyfunc["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert mlmodel["flavors"]["loopml"]["package_sha256"] == v.package_sha256
    assert mlmodel["metadata"]["loopml_package_sha256"] == v.package_sha256
    assert mlmodel["metadata"]["loopml_model"] == "churn:1" and len(mlmodel["model_uuid"]) == 32
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert inputs == [{"type": "double", "name": "x1", "required": True},
                      {"type": "double", "name": "x2", "required": True},
                      {"type": "string", "name": "city", "required": True},
                      {"type": "datetime", "name": "day", "required": True}]
    assert json.loads(mlmodel["signature"]["outputs"]) == [{"type": "long", "name": "prediction", "required": True}]
    reqs = (out / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("loopml==") for r in reqs) and any(r.startswith("xgboost==") for r in reqs)
    env = yaml.safe_load((out / "python_env.yaml").read_text())
    assert env["dependencies"] == ["-r requirements.txt"] and env["python"].count(".") == 2
    assert verify_package(out / "model", sha256=v.package_sha256)["flavor"] == "xgboost"

    pf = _mlflow_load(out)
    rows = churn(30, seed=8).drop(columns=["y"])
    native = load_model(ws, "churn:1")
    np.testing.assert_array_equal(pf.predict(rows), native.predict(rows))
    proba = pf.predict(rows, params={"output": "probabilities"})
    assert list(proba.columns) == ["0", "1"]
    np.testing.assert_array_equal(proba.to_numpy(), native.predict_proba(rows))
    assert pf.predict(rows.iloc[0].to_dict())[0] == native.predict(rows.head(1))[0]

    # the exported files are verified when loaded
    manifest = out / "model" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"num_round": 15', '"num_round": 16'))
    with pytest.raises(IntegrityError, match=r"manifest of the model package .* was modified"):
        _mlflow_load(out)


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_mlflow_pyfunc_loads_the_export(ws: Workspace, xgb_folder: Path, tmp_path: Path) -> None:  # pragma: no cover
    import mlflow.pyfunc

    register_model(ws, xgb_folder, "churn")
    export_model(ws, "churn:1", "mlflow", out=tmp_path / "mlf")
    model = mlflow.pyfunc.load_model(str(tmp_path / "mlf"))
    rows = churn(20, seed=8).drop(columns=["y"])
    np.testing.assert_array_equal(np.asarray(model.predict(rows)), load_model(ws, "churn:1").predict(rows))


def test_exports_name_the_model_version(ws: Workspace, xgb_folder: Path, tmp_path: Path) -> None:
    register_model(ws, xgb_folder, "churn")
    res = export_model(ws, "churn:latest", "onnx", out=tmp_path / "a", rows=20)
    assert res.to_dict()["parity"]["rows"] == 20 and res.to_dict()["model"] == "churn:1"
    edges = ws.lineage.downstream(EntityRef("model_package", res.package_sha256), depth=2)
    assert {e.relation for e in edges} == {"registered_as", "exported_as"}
