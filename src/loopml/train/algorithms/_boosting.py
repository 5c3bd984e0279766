"""Gradient boosting: XGBoost and LightGBM (classification, regression, ranking).

Hyperparameter names follow the SageMaker built-in algorithms (``num_round``,
``eta`` for XGBoost; ``num_boost_round``, ``learning_rate`` for LightGBM).
Both report validation metrics after every boosting round; models are saved
in the libraries' own formats (XGBoost UBJSON, LightGBM text).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from loopml.train.algorithms import register_algorithm
from loopml.train.algorithms._base import (
    BINARY,
    MULTICLASS,
    RANKING,
    REGRESSION,
    MetricCallback,
    TabularAlgorithm,
    binary_proba,
    check_fitted,
    group_order,
    group_sizes,
    labels_from_proba,
    need_validation,
)
from loopml.train.hyperparameters import Hyperparameter as H

_ITERATION_METRICS: dict[str, tuple[str, ...]] = {
    BINARY: ("auc", "logloss"),
    MULTICLASS: ("logloss", "accuracy"),
    REGRESSION: ("rmse", "mae"),
    RANKING: ("ndcg@10",),
}
_GROUP_DOC = {"group": "query/group id for ranking: rows with the same id are ranked against each other"}


def _eval_metrics(algo: TabularAlgorithm, defaults: list[str], names: Mapping[str, str],
                  early_stopping: bool) -> list[str]:
    """The library metrics to evaluate each round: those someone listens to, else all of them.

    Each is computed on the validation rows every round (logloss beside auc adds about a fifth to a
    small XGBoost job). Early stopping watches a particular one, so then all are kept.
    """
    if algo.listened is None or early_stopping:
        return list(defaults)
    kept = [m for m in defaults if names.get(m) in algo.listened]
    return kept or list(defaults)


def _report(callback: MetricCallback, step: int, raw: Mapping[str, float], names: Mapping[str, str]) -> None:
    """Translate library metric names to ours and hand them to the callback."""
    out: dict[str, float] = {}
    for key, value in raw.items():
        ours = names.get(key)
        if ours is None:
            continue
        v = float(value)
        if ours == "accuracy":  # the libraries report the error rate
            v = 1.0 - v
        out[f"validation:{ours}"] = v
    if out:
        callback(step, out)


# -- XGBoost -------------------------------------------------------------------------------------
_XGB_METRICS = {"auc": "auc", "logloss": "logloss", "mlogloss": "logloss", "merror": "accuracy",
                "rmse": "rmse", "mae": "mae", "ndcg@10": "ndcg@10"}
# the last metric is the one early stopping watches
_XGB_EVAL = {BINARY: ["logloss", "auc"], MULTICLASS: ["merror", "mlogloss"], REGRESSION: ["mae", "rmse"],
             RANKING: ["ndcg@10"]}
_XGB_OBJECTIVE = {BINARY: "binary:logistic", MULTICLASS: "multi:softprob", REGRESSION: "reg:squarederror",
                  RANKING: "rank:ndcg"}


@register_algorithm
class XGBoost(TabularAlgorithm):
    """XGBoost gradient-boosted trees.

    Per-round validation metrics: ``auc`` and ``logloss`` (binary),
    ``logloss`` and ``accuracy`` (multiclass), ``rmse`` and ``mae``
    (regression), ``ndcg@10`` (ranking, with a ``group`` role column).
    """

    name = "xgboost"
    description = "Gradient-boosted trees (XGBoost): binary/multiclass classification, regression, ranking."
    problem_types = (BINARY, MULTICLASS, REGRESSION, RANKING)
    roles_doc = _GROUP_DOC
    required_roles: ClassVar[Mapping[str, tuple[str, ...]]] = {RANKING: ("group",)}
    iteration_metrics = _ITERATION_METRICS
    libraries = ("xgboost",)
    imports = ("xgboost",)
    imports_without_sklearn = ("xgboost",)
    handles_missing = True
    hyperparameters = (
        H("num_round", "int", 100, low=1, high=10_000, log=True, search=(50, 1000),
          description="Boosting rounds (trees per class)."),
        H("eta", "float", 0.3, low=1e-4, high=1.0, log=True, search=(0.01, 0.3),
          description="Learning rate: shrinks each tree's contribution."),
        H("max_depth", "int", 6, low=1, high=20, search=(3, 10), description="Maximum tree depth."),
        H("min_child_weight", "float", 1.0, low=0.0, high=1000.0, log=True, search=(0.1, 20.0),
          description="Minimum sum of instance weight (hessian) in a leaf."),
        H("subsample", "float", 1.0, low=0.1, high=1.0, search=(0.5, 1.0), description="Row sampling per tree."),
        H("colsample_bytree", "float", 1.0, low=0.1, high=1.0, search=(0.5, 1.0),
          description="Column sampling per tree."),
        H("gamma", "float", 0.0, low=0.0, high=1000.0, search=(0.0, 5.0),
          description="Minimum loss reduction to split a leaf."),
        H("lambda", "float", 1.0, low=0.0, high=1000.0, log=True, search=(1e-3, 100.0),
          description="L2 regularisation of leaf weights."),
        H("alpha", "float", 0.0, low=0.0, high=1000.0, log=True, search=(1e-3, 10.0),
          description="L1 regularisation of leaf weights."),
        H("max_bin", "int", 256, low=2, high=65_536, tunable=False, description="Histogram bins per feature."),
        H("tree_method", "categorical", "hist", choices=("hist", "approx", "exact"), tunable=False,
          description="Tree construction algorithm."),
        H("grow_policy", "categorical", "depthwise", choices=("depthwise", "lossguide"), tunable=False,
          description="Split nodes closest to the root first, or with the largest loss change."),
        H("max_leaves", "int", 0, low=0, high=131_072, tunable=False, description="Maximum leaves (0: no limit)."),
        H("scale_pos_weight", "float", 1.0, low=1e-3, high=1e4, log=True, tunable=False,
          problem_types=(BINARY,), description="Weight of positive examples (imbalanced binary problems)."),
        H("early_stopping_rounds", "int", 0, low=0, high=10_000, tunable=False,
          description="Stop when the validation metric has not improved for this many rounds (0: off)."),
        H("nthread", "int", 0, low=0, high=1024, tunable=False, description="Threads (0: all cores)."),
    )

    booster_: Any

    def _params(self) -> dict[str, Any]:
        p = self.params
        params: dict[str, Any] = {
            "objective": _XGB_OBJECTIVE[self.problem_type],
            "eval_metric": _eval_metrics(self, _XGB_EVAL[self.problem_type], _XGB_METRICS,
                                         bool(p["early_stopping_rounds"])),
            "eta": p["eta"], "max_depth": p["max_depth"], "min_child_weight": p["min_child_weight"],
            "subsample": p["subsample"], "colsample_bytree": p["colsample_bytree"], "gamma": p["gamma"],
            "lambda": p["lambda"], "alpha": p["alpha"], "max_bin": p["max_bin"],
            "tree_method": p["tree_method"], "grow_policy": p["grow_policy"], "max_leaves": p["max_leaves"],
            "seed": self.seed, "verbosity": 1,
        }
        if p["nthread"]:
            params["nthread"] = p["nthread"]
        if self.problem_type == MULTICLASS:
            params["num_class"] = int(self.n_classes or 0)
        if self.problem_type == BINARY:
            params["scale_pos_weight"] = p["scale_pos_weight"]
        return params

    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        import xgboost as xgb

        early = self.params["early_stopping_rounds"] or None
        if early:
            need_validation(self, "early_stopping_rounds", X_val)
        if groups is not None:
            order = group_order(groups)
            X, groups = X[order], groups[order]
            y = y[order] if y is not None else None
        # the matrices are built with the booster's threads: a default OpenMP team of every core
        # spins after its work, taking a core from the other processes of a tuning job
        threads = self.params["nthread"] or -1

        def matrix(role: str, X: np.ndarray, y: np.ndarray | None, qid: np.ndarray | None) -> Any:
            # kept for the next job on the same data (a tuning trial): the DMatrix caches its quantile
            # sketch and histogram index, which otherwise are rebuilt for every trial
            key = f"xgboost.dmatrix.{role}.{threads}"
            if self.scratch is not None and key in self.scratch:
                return self.scratch[key]
            d = xgb.DMatrix(X, label=y, qid=qid, missing=np.nan, nthread=threads)
            if self.scratch is not None:
                self.scratch[key] = d
            return d

        dtrain = matrix("train", X, y, groups)
        evals = []
        if X_val is not None:
            if groups_val is not None:
                order = group_order(groups_val)
                X_val, groups_val = X_val[order], groups_val[order]
                y_val = y_val[order] if y_val is not None else None
            evals.append((matrix("validation", X_val, y_val, groups_val), "validation"))
        callbacks: list[Any] = []
        if callback is not None and evals:
            callbacks.append(_xgb_callback(xgb, callback))
        booster = xgb.train(
            self._params(), dtrain, num_boost_round=self.params["num_round"], evals=evals,
            callbacks=callbacks, early_stopping_rounds=early, verbose_eval=False,
        )
        if early and getattr(booster, "best_iteration", None) is not None:
            booster = booster[: booster.best_iteration + 1]
        self.booster_ = booster

    def _raw(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "booster_")
        return np.asarray(self.booster_.inplace_predict(X, missing=np.nan))

    def _raw_one(self, X: np.ndarray) -> np.ndarray:
        # One row on one thread: an OpenMP team for a single row costs more than it saves, and
        # when another process holds a core its barrier waits a whole scheduler slice (~20 ms).
        one = getattr(self, "_one_thread", None)
        if one is None:
            check_fitted(self, "booster_")
            one = self.booster_.copy()
            one.set_param({"nthread": 1})
            self._one_thread = one
        return np.asarray(one.inplace_predict(X, missing=np.nan))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        if self.problem_type in (BINARY, MULTICLASS):
            return labels_from_proba(self.proba_matrix(X))
        return self._raw(X)

    def proba_matrix(self, X: np.ndarray) -> np.ndarray:
        if self.problem_type == BINARY:
            return binary_proba(self._raw(X))
        if self.problem_type == MULTICLASS:
            return np.asarray(self._raw(X), dtype=np.float64).reshape(len(X), -1)
        return super().proba_matrix(X)

    def predict_one(self, record: Mapping[str, Any]) -> Any:
        if self.problem_type in (BINARY, MULTICLASS):
            return int(np.argmax(self.predict_proba_one(record)))
        return self._raw_one(self.row(record))[0]

    def predict_proba_one(self, record: Mapping[str, Any]) -> np.ndarray:
        raw = self._raw_one(self.row(record))
        if self.problem_type == BINARY:
            p = float(raw[0])
            return np.array([1.0 - p, p])
        if self.problem_type == MULTICLASS:
            return np.asarray(raw, dtype=np.float64).reshape(-1)
        return super().predict_proba_one(record)

    def save_model(self, path: Path) -> None:
        self.booster_.save_model(str(path / "model.ubj"))

    def load_model(self, path: Path) -> None:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path / "model.ubj"))
        self.booster_ = booster


def _xgb_callback(xgb: Any, callback: MetricCallback) -> Any:
    class _Report(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[float]]]) -> bool:
            log = evals_log.get("validation", {})
            _report(callback, epoch + 1, {k: v[-1] for k, v in log.items() if v}, _XGB_METRICS)
            return False

    return _Report()


# -- LightGBM ------------------------------------------------------------------------------------
_LGB_METRICS = {"auc": "auc", "binary_logloss": "logloss", "multi_logloss": "logloss",
                "multi_error": "accuracy", "rmse": "rmse", "l1": "mae", "ndcg@10": "ndcg@10"}
# the first metric is the one early stopping watches
_LGB_EVAL = {BINARY: ["auc", "binary_logloss"], MULTICLASS: ["multi_logloss", "multi_error"],
             REGRESSION: ["rmse", "l1"], RANKING: ["ndcg"]}
_LGB_OBJECTIVE = {BINARY: "binary", MULTICLASS: "multiclass", REGRESSION: "regression", RANKING: "lambdarank"}


@register_algorithm
class LightGBM(TabularAlgorithm):
    """LightGBM gradient-boosted trees (leaf-wise growth, histogram splits)."""

    name = "lightgbm"
    description = "Gradient-boosted trees (LightGBM): binary/multiclass classification, regression, ranking."
    problem_types = (BINARY, MULTICLASS, REGRESSION, RANKING)
    roles_doc = _GROUP_DOC
    required_roles: ClassVar[Mapping[str, tuple[str, ...]]] = {RANKING: ("group",)}
    iteration_metrics = _ITERATION_METRICS
    libraries = ("lightgbm",)
    imports = ("lightgbm",)
    imports_without_sklearn = ("lightgbm",)
    handles_missing = True
    hyperparameters = (
        H("num_boost_round", "int", 100, low=1, high=10_000, log=True, search=(50, 1000),
          description="Boosting rounds."),
        H("learning_rate", "float", 0.1, low=1e-4, high=1.0, log=True, search=(0.01, 0.3),
          description="Shrinkage of each tree's contribution."),
        H("num_leaves", "int", 31, low=2, high=131_072, log=True, search=(8, 256),
          description="Maximum leaves per tree."),
        H("max_depth", "int", -1, low=-1, high=64, search=(3, 12), tunable=False,
          description="Maximum tree depth (-1: no limit)."),
        H("min_data_in_leaf", "int", 20, low=1, high=1_000_000, log=True, search=(5, 200),
          description="Minimum rows in a leaf."),
        H("feature_fraction", "float", 1.0, low=0.01, high=1.0, search=(0.5, 1.0),
          description="Column sampling per tree."),
        H("bagging_fraction", "float", 1.0, low=0.01, high=1.0, search=(0.5, 1.0),
          description="Row sampling (with bagging_freq > 0)."),
        H("bagging_freq", "int", 0, low=0, high=1000, tunable=False, description="Bag every k rounds (0: off)."),
        H("lambda_l1", "float", 0.0, low=0.0, high=1000.0, log=True, search=(1e-3, 10.0),
          description="L1 regularisation."),
        H("lambda_l2", "float", 0.0, low=0.0, high=1000.0, log=True, search=(1e-3, 10.0),
          description="L2 regularisation."),
        H("min_gain_to_split", "float", 0.0, low=0.0, high=1000.0, search=(0.0, 1.0),
          description="Minimum gain to make a split."),
        H("max_bin", "int", 255, low=2, high=65_535, tunable=False, description="Histogram bins per feature."),
        H("boosting", "categorical", "gbdt", choices=("gbdt", "dart", "rf"), tunable=False,
          description="gbdt, dart (dropout trees) or rf (random forest: needs bagging)."),
        H("scale_pos_weight", "float", 1.0, low=1e-3, high=1e4, log=True, tunable=False,
          problem_types=(BINARY,), description="Weight of positive examples."),
        H("early_stopping_rounds", "int", 0, low=0, high=10_000, tunable=False,
          description="Stop when the validation metric has not improved for this many rounds (0: off)."),
        H("num_threads", "int", 0, low=0, high=1024, tunable=False, description="Threads (0: all cores)."),
    )

    booster_: Any

    def _params(self) -> dict[str, Any]:
        p = self.params
        params: dict[str, Any] = {
            "objective": _LGB_OBJECTIVE[self.problem_type],
            "metric": _eval_metrics(self, _LGB_EVAL[self.problem_type], _LGB_METRICS,
                                    bool(p["early_stopping_rounds"])),
            "learning_rate": p["learning_rate"], "num_leaves": p["num_leaves"], "max_depth": p["max_depth"],
            "min_data_in_leaf": p["min_data_in_leaf"], "feature_fraction": p["feature_fraction"],
            "bagging_fraction": p["bagging_fraction"], "bagging_freq": p["bagging_freq"],
            "lambda_l1": p["lambda_l1"], "lambda_l2": p["lambda_l2"],
            "min_gain_to_split": p["min_gain_to_split"], "max_bin": p["max_bin"], "boosting": p["boosting"],
            "seed": self.seed, "deterministic": True, "verbosity": -1,
        }
        if p["num_threads"]:
            params["num_threads"] = p["num_threads"]
        if self.problem_type == MULTICLASS:
            params["num_class"] = int(self.n_classes or 0)
        if self.problem_type == BINARY:
            params["scale_pos_weight"] = p["scale_pos_weight"]
        if self.problem_type == RANKING:
            params["eval_at"] = [10]
        return params

    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        import lightgbm as lgb

        early = self.params["early_stopping_rounds"]
        if early:
            need_validation(self, "early_stopping_rounds", X_val)
        sizes = sizes_val = None
        if groups is not None:
            order = group_order(groups)
            X, groups = X[order], groups[order]
            y = y[order] if y is not None else None
            sizes = group_sizes(groups)
        dtrain = lgb.Dataset(X, label=y, group=sizes, free_raw_data=True)
        valid_sets, names = [], []
        if X_val is not None:
            if groups_val is not None:
                order = group_order(groups_val)
                X_val, groups_val = X_val[order], groups_val[order]
                y_val = y_val[order] if y_val is not None else None
                sizes_val = group_sizes(groups_val)
            valid_sets.append(lgb.Dataset(X_val, label=y_val, group=sizes_val, reference=dtrain))
            names.append("validation")
        callbacks: list[Any] = []
        if callback is not None and valid_sets:
            callbacks.append(_lgb_callback(callback))
        if early:
            callbacks.append(lgb.early_stopping(early, first_metric_only=True, verbose=False))
        booster = lgb.train(
            self._params(), dtrain, num_boost_round=self.params["num_boost_round"],
            valid_sets=valid_sets, valid_names=names, callbacks=callbacks,
        )
        if early and booster.best_iteration > 0:
            # keep only the best rounds, so the saved model is the one early stopping chose
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        self.booster_ = booster

    def _raw(self, X: np.ndarray, threads: int = 0) -> np.ndarray:
        check_fitted(self, "booster_")
        if threads:
            return np.asarray(self.booster_.predict(X, num_threads=threads))
        return np.asarray(self.booster_.predict(X))

    def predict_one(self, record: Mapping[str, Any]) -> Any:
        if self.problem_type in (BINARY, MULTICLASS):
            return int(np.argmax(self.predict_proba_one(record)))
        return self._raw(self.row(record), threads=1)[0]  # one row: one thread (see XGBoost._raw_one)

    def predict_proba_one(self, record: Mapping[str, Any]) -> np.ndarray:
        raw = self._raw(self.row(record), threads=1)
        if self.problem_type == BINARY:
            p = float(raw[0])
            return np.array([1.0 - p, p])
        if self.problem_type == MULTICLASS:
            return np.asarray(raw, dtype=np.float64).reshape(-1)
        return super().predict_proba_one(record)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        if self.problem_type in (BINARY, MULTICLASS):
            return labels_from_proba(self.proba_matrix(X))
        return self._raw(X)

    def proba_matrix(self, X: np.ndarray) -> np.ndarray:
        if self.problem_type == BINARY:
            return binary_proba(self._raw(X))
        if self.problem_type == MULTICLASS:
            return np.asarray(self._raw(X), dtype=np.float64).reshape(len(X), -1)
        return super().proba_matrix(X)

    def save_model(self, path: Path) -> None:
        self.booster_.save_model(str(path / "model.txt"))

    def load_model(self, path: Path) -> None:
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_file=str(path / "model.txt"))


def _lgb_callback(callback: MetricCallback) -> Any:
    def _cb(env: Any) -> None:
        raw = {name: value for data, name, value, *_ in env.evaluation_result_list if data == "validation"}
        _report(callback, env.iteration - env.begin_iteration + 1, raw, _LGB_METRICS)

    _cb.order = 5  # type: ignore[attr-defined]  # before early stopping (order 30)
    return _cb


__all__ = ["LightGBM", "XGBoost"]
