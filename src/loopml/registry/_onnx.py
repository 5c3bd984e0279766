"""ONNX conversion of the tabular flavors, and the parity checks against the native model.

:func:`convert` gives the model on the *feature matrix* (the columns the
algorithm reads, after the recipe, in :attr:`Signature.features` order, as
float32); :mod:`._onnx_recipe` puts the fitted recipe in front of it for the
edge graph, which reads the raw columns. :func:`parity` checks the first on
feature rows, :func:`edge_parity` the second on raw rows, both against the
native model.

Converters: XGBoost and LightGBM boosters with onnxmltools, scikit-learn
estimators (the linear learner, random forest, k-NN, k-means, PCA, isolation
forest, with their imputer and scaler) with skl2onnx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import InvalidInput, LoopmlError

if TYPE_CHECKING:
    import onnx
    import pandas as pd

    from loopml.edge import EdgeBundle
    from loopml.train.package import Model

#: flavor -> the library that converts it
CONVERTERS = {
    "xgboost": "onnxmltools", "lightgbm": "onnxmltools", "linear": "skl2onnx", "random_forest": "skl2onnx",
    "knn": "skl2onnx", "kmeans": "skl2onnx", "pca": "skl2onnx", "isolation_forest": "skl2onnx",
}
#: flavor -> problem types whose ONNX graph is wrong or missing (refused before converting)
_UNSUPPORTED = {"xgboost": {"ranking": "onnxmltools reads XGBoost ranking boosters as classifiers"}}
#: opsets every current onnxruntime runs
_SKL_OPSET = {"": 17, "ai.onnx.ml": 3}
INPUT_NAME = "features"
_PIP = "pip install 'loopml[onnx]' (onnx, onnxruntime, skl2onnx, onnxmltools)"


class ParityError(LoopmlError):
    """The ONNX model does not reproduce the native model's outputs within the tolerance."""

    http_status = 422
    code = "ParityError"


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX model reproduces the native one on sample rows."""

    rows: int
    compared: str
    max_abs_diff: float
    tolerance: float
    differing_rows: int
    rows_from: str

    @property
    def passed(self) -> bool:
        """True when every output is within the tolerance."""
        return self.differing_rows == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"rows": self.rows, "compared": self.compared, "max_abs_diff": self.max_abs_diff,
                "tolerance": self.tolerance, "differing_rows": self.differing_rows,
                "rows_from": self.rows_from, "passed": self.passed}


def check_convertible(model: Model) -> None:
    """Refuse, with the reason, a model whose flavor or problem type has no ONNX converter."""
    flavor, problem = model.flavor, model.problem_type
    if flavor not in CONVERTERS:
        raise InvalidInput(
            f"{flavor} models do not convert to ONNX (ONNX export covers {', '.join(sorted(CONVERTERS))}); "
            "export it with --format mlflow instead"
        )
    why = _UNSUPPORTED.get(flavor, {}).get(problem)
    if why:
        raise InvalidInput(f"{flavor} {problem} models do not convert to ONNX ({why}); "
                           "export it with --format mlflow instead")
    if not getattr(model.algorithm, "features_", None):
        raise InvalidInput(f"this {flavor} model has no feature list; it cannot be exported to ONNX")


def _require(*modules: str) -> None:
    import importlib

    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:
            raise InvalidInput(f"ONNX export needs the {m} package: {_PIP}") from None


def convert(model: Model) -> onnx.ModelProto:
    """The ONNX graph of a loaded model (input ``features``: float32, one column per feature).

    Outputs: ``label`` and ``probabilities`` (classifiers: the class code and one
    column per class, in the order of :attr:`Model.classes`); ``variable``
    (regression, ranking, PCA); ``label`` and ``scores`` (k-means: cluster id and
    distances); ``anomaly_score`` (isolation forest: higher is stranger, as loopml predicts).
    """
    check_convertible(model)
    _require("onnx", "onnxruntime", CONVERTERS[model.flavor])
    algo: Any = model.algorithm
    n = len(algo.features_)
    try:
        if model.flavor in ("xgboost", "lightgbm"):
            from onnxmltools.convert import convert_lightgbm, convert_xgboost
            from onnxmltools.convert.common.data_types import FloatTensorType

            types = [(INPUT_NAME, FloatTensorType([None, n]))]
            if model.flavor == "xgboost":
                proto = convert_xgboost(algo.booster_, initial_types=types)
            else:
                proto = convert_lightgbm(algo.booster_, initial_types=types, zipmap=False)
        else:
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType as SkFloat

            est = algo.estimator_
            options = {"zipmap": False} if model.problem_type in ("binary", "multiclass") else None
            proto = convert_sklearn(est, initial_types=[(INPUT_NAME, SkFloat([None, n]))], options=options,
                                    target_opset=_SKL_OPSET)
            if model.flavor == "isolation_forest":
                _anomaly_score(proto, float(est.offset_))
    except LoopmlError:
        raise
    except Exception as e:  # the converters raise anything from RuntimeError to NotImplementedError
        raise InvalidInput(
            f"{CONVERTERS[model.flavor]} could not convert this {model.flavor} {model.problem_type} model to "
            f"ONNX: {type(e).__name__}: {e}; export it with --format mlflow instead"
        ) from None
    _metadata(proto, model)
    return proto


def _anomaly_score(proto: onnx.ModelProto, offset: float) -> None:
    """Append ``anomaly_score = -(scores + offset_)``: skl2onnx gives decision_function, loopml predicts -score_samples."""
    from onnx import TensorProto, helper

    graph = proto.graph
    graph.initializer.append(helper.make_tensor("loopml_offset", TensorProto.FLOAT, [], [offset]))
    graph.node.append(helper.make_node("Add", ["scores", "loopml_offset"], ["loopml_shifted"]))
    graph.node.append(helper.make_node("Neg", ["loopml_shifted"], ["anomaly_score"]))
    graph.output.append(helper.make_tensor_value_info("anomaly_score", TensorProto.FLOAT, [None, 1]))


def _metadata(proto: onnx.ModelProto, model: Model) -> None:
    from onnx import helper

    props = {
        "loopml.package_sha256": model.sha256, "loopml.flavor": model.flavor,
        "loopml.problem_type": model.problem_type,
        "loopml.features": json.dumps(list(model.algorithm.features_)),  # type: ignore[attr-defined]
        "loopml.classes": json.dumps(model.classes, default=str),
        "loopml.recipe": "runs before this graph: apply recipe.json with loopml first" if model.recipe else "none",
    }
    helper.set_model_props(proto, props)
    proto.producer_name = "loopml"


def outputs_doc(model: Model) -> dict[str, str]:
    """What each output of the exported graph holds."""
    if model.problem_type in ("binary", "multiclass"):
        return {"label": "class code: an index into classes",
                "probabilities": "one column per class, in the order of classes"}
    if model.flavor == "kmeans":
        return {"label": "the cluster id", "scores": "distance to each cluster centre"}
    if model.flavor == "isolation_forest":
        return {"anomaly_score": "higher is more anomalous (as loopml predicts)",
                "label": "scikit-learn's outlier label (-1 outlier, 1 inlier)",
                "scores": "scikit-learn's decision_function"}
    if model.flavor == "pca":
        return {"variable": "the projection on the components"}
    return {"variable": "the predicted value"}


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # no shape warnings on stderr
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def prediction_rule(model: Model) -> tuple[str, str, str]:
    """The graph output that holds the prediction, how a prediction comes from it, and what parity compares.

    Rules: ``argmax`` (classifiers: the most probable of ``classes``),
    ``value`` (one number per row), ``vector`` (PCA: one list per row).
    """
    if model.problem_type in ("binary", "multiclass"):
        return "probabilities", "argmax", "probabilities"
    if model.flavor == "kmeans":
        return "label", "value", "cluster id"
    if model.flavor == "isolation_forest":
        return "anomaly_score", "value", "anomaly score"
    if model.flavor == "pca":
        return "variable", "vector", "prediction"
    return "variable", "value", "prediction"


def _native_matrix(model: Model, matrix: np.ndarray) -> np.ndarray:
    algo: Any = model.algorithm
    if model.problem_type in ("binary", "multiclass"):
        return np.asarray(algo.proba_matrix(matrix))
    return np.asarray(algo.predict_matrix(matrix))


def compare(onnx_out: Any, native: Any, *, compared: str, tolerance: float, rows_from: str) -> Parity:
    """The parity report of ``onnx_out`` against ``native`` (same rows).

    A value passes when ``|onnx - native| <= tolerance * max(1, |native|)``.
    """
    n = len(native)
    native = np.asarray(native, dtype=np.float64).reshape(n, -1)
    onnx_arr = np.asarray(onnx_out, dtype=np.float64).reshape(n, -1)
    if onnx_arr.shape != native.shape:
        raise ParityError(f"the ONNX model returns {compared} of shape {onnx_arr.shape}, the native model "
                          f"{native.shape}; nothing was exported")
    diff = np.abs(onnx_arr - native)
    diff[np.isnan(onnx_arr) & np.isnan(native)] = 0.0
    bad = ~(diff <= tolerance * np.maximum(1.0, np.abs(np.nan_to_num(native))))
    bad_rows = bad.any(axis=1)
    return Parity(rows=n, compared=compared,
                  max_abs_diff=float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))) if diff.size else 0.0,
                  tolerance=tolerance, differing_rows=int(bad_rows.sum()), rows_from=rows_from)


def parity(model: Model, data: bytes, matrix: np.ndarray, *, tolerance: float, rows_from: str) -> Parity:
    """Compare ONNX Runtime and the native model on the feature ``matrix``.

    A value passes when ``|onnx - native| <= tolerance * max(1, |native|)``.
    """
    sess = _session(data)
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, {INPUT_NAME: np.ascontiguousarray(matrix, dtype=np.float32)}), strict=True))
    output, _, compared = prediction_rule(model)
    return compare(got[output], _native_matrix(model, matrix), compared=compared, tolerance=tolerance,
                   rows_from=rows_from)


def edge_parity(model: Model, bundle: EdgeBundle, frame: pd.DataFrame, *, tolerance: float,
                rows_from: str) -> Parity:
    """Compare the edge graph (recipe + model, through :mod:`loopml.edge`) with the native model on raw rows."""
    output, _, compared = prediction_rule(model)
    got = bundle.run({c: frame[c].to_numpy() for c in bundle.input_names})[output]
    native = model.predict_proba(frame) if model.problem_type in ("binary", "multiclass") else model.predict(frame)
    return compare(got, native, compared=compared, tolerance=tolerance, rows_from=rows_from)


def latency(fn: Callable[[Any], Any], arg: Any, *, calls: int = 200, warmup: int = 20) -> dict[str, float]:
    """Single-call latency of ``fn(arg)``: p50, p99 and mean in milliseconds over ``calls`` calls."""
    for _ in range(warmup):
        fn(arg)
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        fn(arg)
        times.append(clock() - t0)
    times.sort()
    return {"p50_ms": times[(calls - 1) // 2] * 1e3, "p99_ms": times[min(calls - 1, int(np.ceil(0.99 * calls)) - 1)] * 1e3,
            "mean_ms": float(np.mean(times)) * 1e3, "calls": calls}


def parity_failure(model: Model, ref: str, report: Parity, matrix: np.ndarray) -> ParityError:
    """The error for a failed parity check, with the likely cause when rows with missing values differ."""
    msg = (f"the ONNX model of {ref} differs from the native {model.flavor} model by up to "
           f"{report.max_abs_diff:.3g} in {report.compared} (tolerance {report.tolerance:g}) on "
           f"{report.differing_rows} of {report.rows} rows; nothing was exported")
    if report.rows_from == "random feature rows":
        msg += ("; the rows were random feature values (no sample, no training data in the catalog): pass real "
                "rows as sample= for a meaningful check")
    elif np.isnan(matrix).any() and model.flavor in ("random_forest", "isolation_forest"):
        msg += (f"; {model.flavor} trees send missing values their own way, which ONNX does not reproduce: "
                "impute them in the recipe, or export with --format mlflow")
    return ParityError(msg)


def synthetic_matrix(n_features: int, rows: int, seed: int = 0) -> np.ndarray:
    """Random feature rows, for a parity check when no real rows are at hand."""
    return np.random.default_rng(seed).normal(size=(rows, n_features))


__all__ = ["CONVERTERS", "INPUT_NAME", "Parity", "ParityError", "check_convertible", "compare", "convert",
           "edge_parity", "latency", "outputs_doc", "parity", "parity_failure", "prediction_rule", "synthetic_matrix"]
