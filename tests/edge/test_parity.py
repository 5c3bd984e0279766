"""Parity: the edge bundle (recipe + model in one ONNX graph) predicts what the native model predicts.

Four flavors x binary / multiclass / regression, with a recipe of imputation,
one-hot encoding and standard scaling (plus clipping, date parts, an
expression and frequency encoding), on fresh raw rows with missing values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml.edge
from loopml import Workspace
from tests.edge._bundles import export, frame, inputs

pytest.importorskip("onnxruntime")

HP = {
    "xgboost": {"num_round": 20, "max_depth": 4},
    "lightgbm": {"num_boost_round": 20, "num_leaves": 8},
    "linear": {},
    "random_forest": {"num_trees": 20, "max_depth": 6},
}
CASES = [(algo, target) for algo in HP for target in ("y", "tier", "amount")]


def _json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON body carries them: dates as ISO text, missing as null."""
    out = []
    for rec in df.to_dict("records"):
        row: dict[str, Any] = {}
        for k, v in rec.items():
            if isinstance(v, pd.Timestamp):
                v = v.isoformat()
            elif isinstance(v, float) and math.isnan(v):
                v = None
            row[str(k)] = v
        out.append(row)
    return json.loads(json.dumps(out))


@pytest.mark.parametrize(("algo", "target"), CASES, ids=[f"{a}-{t}" for a, t in CASES])
def test_edge_bundle_matches_native(ws: Workspace, tmp_path: Path, algo: str, target: str) -> None:
    sample = frame(100, seed=5)
    res, model = export(ws, tmp_path, algo, HP[algo], target=target, sample=sample)
    edge = res.edge
    assert edge is not None and edge["layout"] == "raw" and edge["graph"] == "edge.onnx", edge["recipe"]
    assert [s["kind"] for s in edge["recipe"]["steps"]] == [
        "impute", "impute", "clip", "date_parts", "expression", "one_hot", "frequency", "standardize"]
    assert all(s["converted"] for s in edge["recipe"]["steps"]) and edge["recipe"]["in_graph"]
    assert edge["parity"]["passed"] and edge["parity"]["rows"] == 100 and edge["parity"]["rows_from"] == "the given sample"
    assert edge["parity"]["max_abs_diff"] < 1e-4
    assert [i["name"] for i in edge["inputs"]] == ["x1", "x2", "x3", "city", "plan", "shop", "day"]
    lat = edge["latency"]
    assert lat["edge_predict_one"]["p50_ms"] > 0 and lat["native_predict_one"]["p50_ms"] > 0
    assert 0 < edge["device_bytes"] < edge["bundle_bytes"]

    bundle = loopml.edge.load(res.path)
    rows = inputs(frame(150, seed=9))
    by_records = bundle.predict(_json_records(rows))
    by_columns = bundle.predict({c: rows[c].to_numpy() for c in rows.columns})
    one = [bundle.predict_one(r) for r in _json_records(rows.head(25))]
    if target == "amount":
        assert model.problem_type == "regression" and bundle.classes is None
        native = model.predict(rows).astype(np.float64)
        got = np.array([p["prediction"] for p in by_records])
        np.testing.assert_allclose(got, native, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(np.array([p["prediction"] for p in by_columns]), got)
        np.testing.assert_allclose([p["prediction"] for p in one], native[:25], rtol=1e-4, atol=1e-4)
        assert set(by_records[0]) == {"prediction"}
        return
    native_p = model.predict_proba(rows)
    got_p = np.array([p["probabilities"] for p in by_records])
    assert np.abs(got_p - native_p).max() < 1e-4
    np.testing.assert_array_equal(np.array([p["probabilities"] for p in by_columns]), got_p)
    assert np.abs(np.array([p["probabilities"] for p in one]) - native_p[:25]).max() < 1e-4
    assert bundle.classes == model.classes and len(bundle.classes) == (2 if target == "y" else 3)
    # the labels agree wherever the top two classes are not a near tie
    top2 = np.sort(native_p, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-3
    labels = np.array([p["prediction"] for p in by_records], dtype=object)
    assert clear.sum() > 100
    assert (labels[clear] == np.asarray(model.predict(rows), dtype=object)[clear]).all()
    native_one = model.predict_one(_json_records(rows.head(1))[0])
    assert one[0]["prediction"] == native_one["prediction"]
