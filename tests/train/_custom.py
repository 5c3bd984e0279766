"""Algorithms registered by the tests: a user-defined one, and one that misbehaves on purpose.

They live in an importable module because training jobs run in a new Python
process and import the algorithm class by its module and name.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from loopml.train import Hyperparameter, TabularAlgorithm, register_algorithm
from loopml.train.algorithms._base import MetricCallback


@register_algorithm
class MeanRegressor(TabularAlgorithm):
    """Predicts the training mean plus ``shift``; reports a fake per-iteration loss."""

    name = "test_mean"
    description = "test: the mean of the target"
    problem_types = ("regression",)
    hyperparameters = (
        Hyperparameter("shift", "float", 0.0, low=-100.0, high=100.0, description="added to the mean"),
        Hyperparameter("rounds", "int", 3, low=1, high=100, description="fake iterations"),
    )
    iteration_metrics: ClassVar[Mapping[str, tuple[str, ...]]] = {"regression": ("rmse",)}

    def fit_matrix(self, X, y, X_val, y_val, *, callback: MetricCallback | None, groups=None,  # type: ignore[no-untyped-def]
                   groups_val=None) -> None:
        self.mean_ = float(np.mean(y)) + self.params["shift"]
        for i in range(self.params["rounds"]):
            if callback is not None and y_val is not None:
                callback(i + 1, {"validation:rmse": float(np.sqrt(np.mean((y_val - self.mean_) ** 2))) + 1.0 / (i + 1)})

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.mean_)

    def save_model(self, path: Path) -> None:
        (path / "mean.json").write_text(json.dumps({"mean": self.mean_}))

    def load_model(self, path: Path) -> None:
        self.mean_ = float(json.loads((path / "mean.json").read_text())["mean"])


@register_algorithm
class Crashy(MeanRegressor):
    """Misbehaves in fit as ``mode`` says: raise, exit, segfault, sleep, or behave."""

    name = "test_crashy"
    description = "test: crashes on purpose"
    hyperparameters = (
        Hyperparameter("mode", "categorical", "ok", choices=("ok", "raise", "exit", "segfault", "sleep")),
        Hyperparameter("shift", "float", 0.0, low=-100.0, high=100.0),
        Hyperparameter("rounds", "int", 3, low=1, high=100),
    )

    def fit_matrix(self, X, y, X_val, y_val, *, callback: MetricCallback | None, groups=None,  # type: ignore[no-untyped-def]
                   groups_val=None) -> None:
        mode = self.params["mode"]
        print(f"crashy fit starting in mode {mode}", flush=True)
        if mode == "raise":
            raise RuntimeError("the library refused: invalid combination of knobs")
        if mode == "exit":
            os._exit(7)
        if mode == "segfault":
            import ctypes

            ctypes.string_at(0)
        if mode == "sleep":
            time.sleep(120)
        super().fit_matrix(X, y, X_val, y_val, callback=callback)
