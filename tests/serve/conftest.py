"""Fixtures for the serving tests: small real models trained through loopml's training job.

``trained(algo, problem, recipe)`` trains (once per test session) a model
package with the in-process training job of ``tests.train._data.package``
and loads it:

- ``recipe="auto"``: no recipe given, so training encodes the text and date
  columns with its default recipe;
- ``recipe="spec"``: an explicit recipe with imputation, one-hot encoding,
  standardisation and date parts;
- ``recipe="none"``: numeric columns only, so the model has no recipe at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.train import load_model_package
from loopml.train.package import Model
from tests.train._data import package

#: small, quick hyperparameters per algorithm
HP: dict[str, dict[str, Any]] = {
    "xgboost": {"num_round": 15, "max_depth": 4},
    "lightgbm": {"num_boost_round": 15, "num_leaves": 8, "min_data_in_leaf": 5},
    "linear": {},
    "random_forest": {"num_trees": 12, "max_depth": 6},
}
TARGETS = {"binary": "y_bin", "multiclass": "y_multi", "regression": "y_reg"}
RECIPE_SPEC = {"steps": [
    {"kind": "impute", "columns": ["x2", "n"], "strategy": "median"},
    {"kind": "one_hot", "columns": ["city"]},
    {"kind": "standardize", "columns": ["x1", "x2"]},
    {"kind": "date_parts", "columns": ["day"], "parts": ["month", "dow"], "drop_original": True},
]}


def serve_frame(n: int = 300, seed: int = 0, *, unseen: bool = False) -> pd.DataFrame:
    """Numbers (some missing), an integer, text, a date, and binary / 3-class / numeric targets."""
    r = np.random.default_rng(seed)
    x1 = r.normal(size=n)
    x2 = r.normal(size=n)
    k = r.integers(0, 10, n)
    cities = ["paris", "lyon", "nice"] + (["marseille"] if unseen else [])
    city = r.choice(np.array(cities, dtype=object), n)
    score = 1.2 * x1 - x2 + (city == "paris") * 1.0 + 0.1 * k + r.normal(scale=0.5, size=n)
    y_multi = np.where(score < -0.5, "low", np.where(score < 1.0, "mid", "high"))
    x2[r.random(n) < 0.08] = np.nan
    return pd.DataFrame({
        "x1": x1,
        "x2": x2,
        "n": k.astype(np.int64),
        "city": pd.array(city, dtype="str"),
        "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(r.integers(0, 300, n), unit="D"),
        "y_bin": (score > 0.5).astype(np.int64),
        "y_multi": pd.array(y_multi, dtype="str"),
        "y_reg": score * 10.0,
    })


def inputs_of(df: pd.DataFrame, recipe: str) -> pd.DataFrame:
    """The input columns a model trained with ``recipe`` takes."""
    cols = ["x1", "x2", "n"] if recipe == "none" else ["x1", "x2", "n", "city", "day"]
    return df[cols]


def json_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a JSON body carries it: ISO dates, null for missing, plain Python numbers."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, pd.Timestamp):
            v = v.isoformat()
        elif (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Every row of ``df`` as :func:`json_record`."""
    return [json_record(r) for r in df.to_dict("records")]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Model]:
    """``trained(algo, problem="binary", recipe="auto")`` -> a loaded Model (cached per session)."""
    cache: dict[tuple[str, str, str], Model] = {}
    root = tmp_path_factory.mktemp("serve-models")
    data = serve_frame()

    def get(algo: str, problem: str = "binary", recipe: str = "auto") -> Model:
        key = (algo, problem, recipe)
        if key not in cache:
            target = TARGETS[problem]
            df = pd.concat([inputs_of(data, recipe), data[[target]]], axis=1)
            spec = {"kind": "spec", "spec": RECIPE_SPEC} if recipe == "spec" else None
            folder: Path
            folder, _ = package(root, df, algo, HP[algo], target=target, recipe=spec,
                                name=f"{algo}-{problem}-{recipe}")
            cache[key] = load_model_package(folder)
        return cache[key]

    return get
