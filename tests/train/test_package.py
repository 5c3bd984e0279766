"""Model packages: the manifest, hash verification before loading, and the recipe + model path."""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.errors import IntegrityError, InvalidInput
from loopml.prep import FittedRecipe
from loopml.train import load_model_package
from loopml.train.package import MANIFEST
from tests.train._data import churn, package


def _json_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a JSON body carries it: ISO dates, null for missing."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, pd.Timestamp):
            v = v.isoformat()
        elif isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


@pytest.fixture(scope="module")
def xgb_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return package(tmp_path_factory.mktemp("xgb"), churn(), "xgboost", {"num_round": 20})


def test_manifest(xgb_package: tuple[Path, dict[str, Any]]) -> None:
    folder, result = xgb_package
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format_version"] == 1 and manifest["flavor"] == "xgboost"
    assert manifest["problem_type"] == "binary" and manifest["target"] == "y"
    assert manifest["hyperparameters"]["num_round"] == 20 and manifest["hyperparameters"]["max_depth"] == 6
    sig = manifest["signature"]
    types = {c["name"]: c["type"] for c in sig["inputs"]}
    assert list(types) == ["x1", "x2", "city", "day"]  # before the recipe, without the target
    assert types["x1"] == "double" and "string" in types["city"] and types["day"].startswith("timestamp")
    assert "y" not in [c["name"] for c in sig["inputs"]]
    assert sig["classes"] == [0, 1]
    assert [o["name"] for o in sig["outputs"]] == ["prediction", "probabilities"]
    assert sig["outputs"][1]["labels"] == [0, 1]
    assert "city" in sig["features"] and "day_month" in sig["features"] and "day" not in sig["features"]
    assert manifest["recipe"] == {"file": "recipe.json", "auto": True}
    assert set(manifest["files"]) == {"model/features.json", "model/model.ubj", "recipe.json"}
    assert manifest["libraries"]["xgboost"] and manifest["libraries"]["python"]
    assert manifest["metrics"]["train:auc"] == pytest.approx(result["metrics"]["train:auc"])


def test_identical_to_the_raw_library_model(xgb_package: tuple[Path, dict[str, Any]]) -> None:
    import xgboost as xgb

    folder, _ = xgb_package
    model = load_model_package(folder)
    rows = churn(150, seed=9).drop(columns=["y"])
    # by hand: the stored recipe, then the stored booster
    recipe = FittedRecipe.from_bytes((folder / "recipe.json").read_bytes())
    features = json.loads((folder / "model/features.json").read_text())["features"]
    booster = xgb.Booster(model_file=str(folder / "model/model.ubj"))
    matrix = recipe.transform(rows)[features].to_numpy(dtype=np.float32, na_value=np.nan)
    raw = booster.predict(xgb.DMatrix(matrix, missing=np.nan))
    np.testing.assert_array_equal(model.predict_proba(rows)[:, 1], raw.astype(np.float64))
    np.testing.assert_array_equal(model.predict(rows), (raw > 0.5).astype(np.int64))
    # one record at a time, as JSON carries it
    for rec, want in zip(rows.head(40).to_dict("records"), raw[:40], strict=True):
        got = model.predict_one(_json_record(rec))
        assert got["probabilities"][1] == pytest.approx(float(want), abs=1e-7)
        assert got["prediction"] == int(want > 0.5)


def test_predict_one_is_fast(xgb_package: tuple[Path, dict[str, Any]]) -> None:
    model = load_model_package(xgb_package[0])
    records = [_json_record(r) for r in churn(50, seed=4).drop(columns=["y"]).to_dict("records")]
    for r in records:
        model.predict_one(r)
    times = []
    for i in range(500):
        t0 = time.perf_counter()
        model.predict_one(records[i % 50])
        times.append(time.perf_counter() - t0)
    p50 = statistics.median(times) * 1e3
    print(f"predict_one p50 {p50:.3f} ms")
    assert p50 < 2.0  # typically ~0.1-0.3 ms; loose for shared test machines


def test_tampering_is_refused_before_loading(xgb_package: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    import shutil

    def copy() -> Path:
        dst = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(xgb_package[0], dst)
        return dst

    p = copy()
    with open(p / "model/model.ubj", "ab") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError, match=r"model/model\.ubj .* was modified"):
        load_model_package(p)
    p = copy()
    (p / "recipe.json").write_text((p / "recipe.json").read_text().replace("city", "town"))
    with pytest.raises(IntegrityError, match=r"recipe\.json"):
        load_model_package(p)
    p = copy()
    (p / "model/extra.py").write_text("print('hi')")
    with pytest.raises(IntegrityError, match="does not list"):
        load_model_package(p)
    p = copy()
    sha = load_model_package(p).sha256
    manifest = json.loads((p / MANIFEST).read_text())
    manifest["metrics"]["train:auc"] = 1.0
    (p / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"manifest .* was modified"):
        load_model_package(p, sha256=sha)


def test_load_by_artifact_id(xgb_package: tuple[Path, dict[str, Any]], ws: Workspace) -> None:
    folder, result = xgb_package
    manifest = json.loads((folder / MANIFEST).read_text())
    for rel in manifest["files"]:
        ws.artifacts.put_file(folder / rel)
    sha = ws.artifacts.put_file(folder / MANIFEST).sha256
    assert sha == result["package_sha256"]
    model = load_model_package(sha, ws=ws)
    rows = churn(30, seed=5)
    np.testing.assert_array_equal(model.predict_proba(rows), load_model_package(folder).predict_proba(rows))
    # a damaged cache copy is replaced from the store
    with open(model.path / "model/model.ubj", "ab") as f:
        f.write(b"junk")
    np.testing.assert_array_equal(load_model_package(sha, ws=ws).predict(rows), model.predict(rows))
    with pytest.raises(InvalidInput, match="pass ws="):
        load_model_package(sha)


def test_string_labels_multiclass_with_lightgbm(tmp_path: Path) -> None:
    df = churn(300, seed=2)
    df["tier"] = np.where(df["x1"] > 0.5, "gold", np.where(df["x1"] < -0.5, "bronze", "silver"))
    folder, result = package(tmp_path, df.drop(columns=["y"]), "lightgbm",
                             {"num_boost_round": 20, "min_data_in_leaf": 5}, target="tier")
    model = load_model_package(folder)
    assert model.problem_type == "multiclass" and model.classes == ["bronze", "gold", "silver"]
    pred = model.predict(df.head(50))
    assert set(pred) <= {"bronze", "gold", "silver"} and (pred == df["tier"].head(50).to_numpy()).mean() > 0.8
    one = model.predict_one(_json_record(df.drop(columns=["y", "tier"]).iloc[0].to_dict()))
    assert one["prediction"] == pred[0] and len(one["probabilities"]) == 3
    assert result["metrics"]["train:accuracy"] > 0.8


def test_linear_uses_one_hot_and_regression_outputs(tmp_path: Path) -> None:
    df = churn(200, seed=3)
    df["amount"] = 3 * df["x1"] + (df["city"] == "paris") * 2.0
    folder, result = package(tmp_path, df.drop(columns=["y"]), "linear", {"l2": 0.01}, target="amount")
    model = load_model_package(folder)
    assert model.problem_type == "regression" and model.classes is None
    assert any(f.startswith("city_") for f in model.signature.features)
    assert result["metrics"]["train:r2"] > 0.95
    with pytest.raises(InvalidInput, match="no class probabilities"):
        model.predict_proba(df)
    assert isinstance(model.predict_one(_json_record(df.iloc[0].to_dict()))["prediction"], float)


@pytest.mark.parametrize(("algo", "hp", "target", "problem", "metric"), [
    ("kmeans", {"k": 3}, None, "clustering", "train:silhouette"),
    ("pca", {"num_components": 2}, None, "dimensionality_reduction", "train:explained_variance"),
    ("isolation_forest", {"num_trees": 20}, "y", "anomaly_detection", "train:auc"),
    ("random_forest", {"num_trees": 10}, "y", "binary", "train:auc"),
    ("knn", {"k": 7}, "x1", "regression", "train:r2"),
])
def test_every_kind_of_job_makes_a_loadable_package(tmp_path: Path, algo: str, hp: dict[str, Any],
                                                    target: str | None, problem: str, metric: str) -> None:
    df = churn(250, seed=8)
    data = df if target is not None else df.drop(columns=["y"])
    folder, result = package(tmp_path, data, algo, hp, target=target)
    assert result["problem_type"] == problem and metric in result["metrics"]
    model = load_model_package(folder)
    rows = data.head(20)
    out = model.predict(rows)
    assert len(out) == 20
    one = model.predict_one(_json_record(rows.drop(columns=[target] if target else []).iloc[0].to_dict()))
    np.testing.assert_allclose(np.asarray(one["prediction"], dtype=float), np.asarray(out[0], dtype=float),
                               rtol=1e-6)
    assert [c["name"] for c in model.signature.inputs] == [c for c in ["x1", "x2", "city", "day", "y"]
                                                          if c != target and c in data.columns]
