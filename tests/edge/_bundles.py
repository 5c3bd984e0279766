"""Small seeded frames, model packages trained in this process, and their edge bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml import Workspace
from loopml.registry import ExportResult, export_model, register_model
from tests.train._data import package

#: imputation + one-hot + standard scaling, with a few more converted steps around them
RECIPE: dict[str, Any] = {"steps": [
    {"kind": "impute", "columns": ["x2", "x3"], "strategy": "median", "indicator": True},
    {"kind": "impute", "columns": ["plan"], "strategy": "most_frequent"},
    {"kind": "clip", "columns": ["x3"], "lower": -2.0, "upper": 2.0},
    {"kind": "date_parts", "columns": ["day"], "parts": ["month", "dow", "weekend"], "drop_original": True},
    {"kind": "expression", "name": "ratio", "expr": "x1 / (abs(x2) + 1)"},
    {"kind": "one_hot", "columns": ["city", "plan"]},
    {"kind": "frequency", "columns": ["shop"]},
    {"kind": "standardize", "columns": ["x1", "x2", "x3", "ratio"]},
]}


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Numbers (some missing), three text columns (some missing), a date, and three targets.

    ``y`` is binary, ``tier`` has three classes (text labels), ``amount`` is continuous.
    """
    r = np.random.default_rng(seed)
    x1, x2, x3 = r.normal(size=n), r.normal(size=n), r.normal(size=n)
    city = r.choice(np.array(["paris", "lyon", "nice"], dtype=object), n)
    plan = r.choice(np.array(["basic", "pro", None], dtype=object), n, p=[0.5, 0.4, 0.1])
    shop = r.choice(np.array([f"s{i}" for i in range(6)], dtype=object), n)
    logit = 1.5 * x1 - x2 + (city == "paris") * 1.0 + (plan == "pro") * 0.5
    score = logit + r.normal(scale=0.5, size=n)
    df = pd.DataFrame({
        "x1": x1,
        "x2": np.where(r.random(n) < 0.1, np.nan, x2),
        "x3": np.where(r.random(n) < 0.1, np.nan, x3),
        "city": pd.array(city, dtype="str"),
        "plan": pd.array(plan, dtype="str"),
        "shop": pd.array(shop, dtype="str"),
        "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(r.integers(0, 300 * 24, n), unit="h"),
        "y": (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        "tier": np.array(["low", "mid", "high"], dtype=object)[np.digitize(score, [-1.0, 1.0])],
        "amount": 3.0 * x1 - 2.0 * np.nan_to_num(x2) + (city == "nice") * 4.0 + r.normal(scale=0.1, size=n),
    })
    return df


TARGETS = ("y", "tier", "amount")


def inputs(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the target columns: what a caller sends."""
    return df.drop(columns=[c for c in TARGETS if c in df.columns])


def export(ws: Workspace, tmp: Path, algo: str, hp: dict[str, Any], *, target: str = "y",
           recipe: dict[str, Any] | None = RECIPE, rows: int = 240, name: str = "m",
           **kwargs: Any) -> tuple[ExportResult, Any]:
    """Train ``algo`` on ``frame(rows)`` (other targets dropped), register it, export it; return the export and model."""
    from loopml.registry import load_model

    df = frame(rows)
    df = df.drop(columns=[c for c in TARGETS if c != target])
    spec = {"kind": "spec", "spec": recipe} if recipe is not None else None
    folder, _ = package(tmp, df, algo, hp, target=target, recipe=spec, name=name)
    v = register_model(ws, folder, name)
    res = export_model(ws, v.ref, "onnx", out=tmp / f"{name}-edge", **kwargs)
    return res, load_model(ws, v.ref)
