"""Shared setup of the model-quality, bias and attribution tests: small data, a registered model, capture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml import Workspace
from loopml.registry import ModelVersionInfo, load_model, register_model
from loopml.serve.capture import CaptureWriter
from tests.registry._packages import record_run
from tests.train._data import package


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numbers and a text column with a learnable 0/1 target ``y`` driven mostly by ``x1``."""
    r = np.random.default_rng(seed)
    x1, x2, x3 = r.normal(size=n), r.normal(size=n), r.normal(size=n)
    city = r.choice(np.array(["paris", "lyon", "nice"], dtype=object), n)
    logit = 2.5 * x1 - 1.0 * x2 + 0.3 * x3 + 0.8 * (city == "paris")
    y = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "city": pd.array(city, dtype="str"), "y": y})


def regression_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    x1, x2 = r.normal(size=n), r.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": 3.0 * x1 - x2 + r.normal(scale=0.3, size=n)})


def registered(ws: Workspace, tmp: Path, df: pd.DataFrame, algo: str = "xgboost", hp: dict[str, Any] | None = None,
               *, name: str = "churn", recipe: Any = None) -> ModelVersionInfo:
    """Train ``algo`` on ``df`` in this process and register it as the next version of ``name``."""
    hp = hp if hp is not None else ({"num_round": 20, "max_depth": 3} if algo == "xgboost" else {})
    spec = {"kind": "spec", "spec": recipe.to_dict()} if recipe is not None else None
    folder, _ = package(tmp, df, algo, hp, recipe=spec, name=f"{name}-{algo}")
    run = record_run(ws, folder, experiment="monitor")
    return register_model(ws, run, name)


def capture(ws: Workspace, endpoint: str, model_ref: str, df: pd.DataFrame, ids: list[str], *,
            variant: str = "v1", batch: int = 1, probabilities: bool = True) -> None:
    """Send ``df``'s rows through the model and capture them as the serving app would (JSON in and out)."""
    model = load_model(ws, model_ref)
    inputs = list(model.signature.input_names)
    w = CaptureWriter(ws, endpoint, flush_interval_s=0.05)
    try:
        records = df[inputs].to_dict("records")
        for start in range(0, len(records), batch):
            part = records[start:start + batch]
            outs = model.predict_records(part)
            preds = []
            for o in outs:
                p: dict[str, Any] = {"prediction": _py(o["prediction"])}
                if probabilities and "probabilities" in o:
                    p["probabilities"] = [float(v) for v in o["probabilities"]]
                preds.append(p)
            body = {"predictions": preds, **({"classes": model.classes} if model.classes else {})}
            assert w.record(variant=variant, model=model_ref, inference_id=ids[start],
                            request_body=json.dumps([{k: _py(v) for k, v in r.items()} for r in part]).encode(),
                            request_content_type="application/json",
                            response_body=json.dumps(body, default=_py).encode(),
                            response_content_type="application/json", latency_ms=0.5, input_columns=inputs)
        assert w.flush()
    finally:
        w.close()


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def write_ground_truth(path: Path, ids: list[str], labels: list[Any]) -> Path:
    """SageMaker's ground-truth JSON lines."""
    lines = [json.dumps({"groundTruthData": {"data": str(lab), "encoding": "CSV"},
                         "eventMetadata": {"eventId": i}, "eventVersion": "0"}) for i, lab in zip(ids, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path
