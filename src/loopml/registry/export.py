"""Export a registered version: to the MLflow model format, or to ONNX with a parity check.

MLflow (``format="mlflow"``) writes a folder ``mlflow.pyfunc.load_model``
reads::

    MLmodel            flavors: python_function (loader_module loopml.registry._mlflow_loader,
                       data: model) and loopml; the signature; the package id in metadata
    model/             the loopml model package, unchanged (manifest, native files, recipe)
    requirements.txt   loopml and the libraries the model was trained with, pinned
    python_env.yaml    for ``mlflow models serve --env-manager virtualenv``
    conda.yaml         for ``--env-manager conda``

ONNX (``format="onnx"``) writes an edge bundle::

    edge.json          the manifest: the raw signature and the graph's inputs, outputs, classes,
                       package sha256, which recipe steps converted (and why others did not),
                       the sha256 and size of every other file, the parity report, single-row latency
    edge.onnx          recipe + model in one graph: one named input per raw column read
                       (numbers tensor(double), text tensor(string), dates/times tensor(int64) ns);
                       written when every recipe step converts (see ``_onnx_recipe``)
    loopml_edge.py     a copy of the runtime (:mod:`loopml.edge`: numpy + onnxruntime only)
    model.onnx         the model on the feature matrix (input ``features``, float32)
    recipe.json        the fitted recipe that runs before ``model.onnx`` (if the model has one)
    onnx.json          feature order, classes, what each output holds, the parity report of model.onnx

``loopml.edge.load(DIR)`` predicts from the bundle. When a recipe step has
no ONNX translation, ``edge.json`` names ``model.onnx`` as the graph and lists
the steps with the reason; apply ``recipe.json`` with
:class:`loopml.prep.FittedRecipe` first and feed the ``features`` columns in
order. Before anything is written, ONNX Runtime and the native model predict
the same rows and must agree within ``tolerance``: ``model.onnx`` on feature
rows (else :class:`ParityError`, nothing is written), ``edge.onnx`` on raw
rows (else the bundle falls back to ``model.onnx``, with the reason).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import Conflict, InvalidInput, LoopmlError
from loopml.registry._mlflow_loader import PACKAGE_KEY
from loopml.registry._onnx import Parity
from loopml.registry.versions import ModelVersionInfo, get_model_version, load_model
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    import pandas as pd

    from loopml.train.package import Model
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

FORMATS = ("onnx", "mlflow")
LOADER_MODULE = "loopml.registry._mlflow_loader"
#: default number of rows the ONNX parity check compares
PARITY_ROWS = 200
#: default tolerance of the ONNX parity check (absolute, relative above 1)
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote."""

    format: str
    path: Path
    model: str
    package_sha256: str
    files: list[str] = field(default_factory=list)
    parity: Parity | None = None
    #: ONNX: the edge bundle (layout, graph, recipe steps, edge parity, latency, size), as in edge.json
    edge: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"format": self.format, "path": str(self.path), "model": self.model,
                "package_sha256": self.package_sha256, "files": self.files,
                "parity": self.parity.to_dict() if self.parity else None, "edge": self.edge}


def export_model(
    ws: Workspace,
    ref: str,
    format: str = "onnx",
    out: str | os.PathLike[str] | None = None,
    *,
    sample: pd.DataFrame | None = None,
    rows: int = PARITY_ROWS,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Write a registered version in another model format into the new folder ``out``.

    Parameters
    ----------
    ws
        The workspace.
    ref
        ``NAME:VERSION``, ``NAME@ALIAS`` or ``NAME``.
    format
        ``onnx`` or ``mlflow``.
    out
        A folder that does not exist yet (or is empty).
    sample
        ONNX: input rows (as callers send them, before the recipe) for the
        parity check; default: the first ``rows`` rows of the training data
        version, else random feature rows.
    rows
        ONNX: at most this many rows in the parity check.
    tolerance
        ONNX: the largest difference allowed (relative for values above 1).

    Returns
    -------
    ExportResult
        The files written, and for ONNX the parity report and the edge
        bundle's summary (:attr:`ExportResult.edge`).

    Raises
    ------
    InvalidInput
        An unknown format; a flavor that does not convert to ONNX; missing ONNX packages.
    Conflict
        ``out`` exists and is not empty.
    ParityError
        ONNX and the native model disagree beyond ``tolerance`` (nothing is written).
    """
    if format not in FORMATS:
        raise InvalidInput(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if out is None:
        raise InvalidInput("say where to write the export: out=FOLDER (--out DIR)")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InvalidInput(f"rows must be a positive integer, got {rows!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise InvalidInput(f"tolerance must be a number >= 0, got {tolerance!r}")
    target = Path(out).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"{target} already exists and is not an empty folder; choose a new --out folder")
    info = get_model_version(ws, ref)
    model = load_model(ws, info.ref)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=target.parent))
    try:
        parity, edge = None, None
        if format == "mlflow":
            _write_mlflow(tmp, info, model)
        else:
            parity, edge = _write_onnx(ws, tmp, info, model, sample=sample, rows=rows, tolerance=float(tolerance))
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if format == "onnx":
        import hashlib

        digest = hashlib.sha256((target / "model.onnx").read_bytes()).hexdigest()
        ws.lineage.add(info.entity, EntityRef("onnx_model", digest), "exported_as")
    log.info("exported %s as %s to %s", info.ref, format, target)
    return ExportResult(format=format, path=target, model=info.ref, package_sha256=info.package_sha256,
                        files=files, parity=parity, edge=edge)


# -- MLflow ------------------------------------------------------------------------------------------
#: Arrow type (as the signature writes it) -> MLflow column type
_MLFLOW_TYPES = {
    "bool": "boolean", "int8": "integer", "int16": "integer", "int32": "integer", "uint8": "integer",
    "uint16": "integer", "int64": "long", "uint32": "long", "uint64": "long", "halffloat": "float",
    "float": "float", "double": "double", "string": "string", "large_string": "string",
    "binary": "binary", "large_binary": "binary",
}


def _mlflow_type(arrow_type: str) -> str | None:
    t = arrow_type.strip()
    if t in _MLFLOW_TYPES:
        return _MLFLOW_TYPES[t]
    if t.startswith(("timestamp", "date")):
        return "datetime"
    if t.startswith("dictionary<values=") and "string" in t.split(",")[0]:
        return "string"
    return None


def mlflow_signature(signature: dict[str, Any]) -> dict[str, Any] | None:
    """The MLmodel ``signature`` block (column specs as JSON text), or None when a type has no MLflow twin."""
    inputs = []
    for c in signature.get("inputs") or []:
        t = _mlflow_type(str(c.get("type", "")))
        if t is None:
            return None
        inputs.append({"type": t, "name": c["name"], "required": True})
    outputs = []
    for o in signature.get("outputs") or []:
        if o.get("name") == "prediction":
            t = _mlflow_type(str(o.get("type", "")))
            if t is not None:
                outputs.append({"type": t, "name": "prediction", "required": True})
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs) if outputs else None, "params": None}


def _requirements(model: Model) -> list[str]:
    libs = dict(model.manifest.get("libraries") or {})
    libs.pop("python", None)
    from loopml import __version__

    libs["loopml"] = libs.get("loopml") or __version__
    libs.setdefault("pyyaml", _version("pyyaml") or "")
    return [f"{name}=={ver}" if ver else name for name, ver in sorted(libs.items())]


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _write_mlflow(folder: Path, info: ModelVersionInfo, model: Model) -> None:
    import yaml

    from loopml.train.package import MANIFEST

    data = folder / "model"
    data.mkdir()
    for rel in [MANIFEST, *sorted(model.manifest.get("files") or {})]:
        dst = data / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.path / rel, dst)
    python = str((model.manifest.get("libraries") or {}).get("python") or platform.python_version())
    reqs = _requirements(model)
    (folder / "requirements.txt").write_text("".join(r + "\n" for r in reqs))
    (folder / "python_env.yaml").write_text(yaml.safe_dump(
        {"python": python, "build_dependencies": ["pip", "setuptools", "wheel"],
         "dependencies": ["-r requirements.txt"]}, sort_keys=False))
    (folder / "conda.yaml").write_text(yaml.safe_dump(
        {"name": "mlflow-env", "channels": ["conda-forge"],
         "dependencies": [f"python={python}", "pip", {"pip": reqs}]}, sort_keys=False))
    from loopml import __version__

    mlmodel: dict[str, Any] = {
        "flavors": {
            "python_function": {
                "loader_module": LOADER_MODULE, "data": "model",
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}, "python_version": python,
            },
            "loopml": {
                "loopml_version": __version__, "data": "model", "flavor": model.flavor,
                "problem_type": model.problem_type, "package_sha256": model.sha256,
            },
        },
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "metadata": {
            "loopml_model": info.ref, PACKAGE_KEY: model.sha256, "approval_status": info.approval_status,
            "run_id": info.run_id, "classes": json.loads(json.dumps(model.classes, default=str)),
        },
    }
    sig = mlflow_signature(dict(model.manifest.get("signature") or {}))
    if sig is not None:
        mlmodel["signature"] = sig
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False, default_flow_style=False))


# -- ONNX --------------------------------------------------------------------------------------------
def _write_onnx(
    ws: Workspace, folder: Path, info: ModelVersionInfo, model: Model, *,
    sample: pd.DataFrame | None, rows: int, tolerance: float,
) -> tuple[Parity, dict[str, Any]]:
    from loopml.registry import _onnx

    _onnx.check_convertible(model)
    proto = _onnx.convert(model)
    data = proto.SerializeToString()
    matrix, rows_from, frame = _parity_rows(ws, info, model, sample, rows)
    report = _onnx.parity(model, data, matrix, tolerance=tolerance, rows_from=rows_from)
    if not report.passed:
        raise _onnx.parity_failure(model, info.ref, report, matrix)
    (folder / "model.onnx").write_bytes(data)
    recipe_file = (model.manifest.get("recipe") or {}).get("file")
    if recipe_file:
        shutil.copyfile(model.path / recipe_file, folder / "recipe.json")
    doc = {
        "model": info.ref, "package_sha256": model.sha256, "flavor": model.flavor,
        "problem_type": model.problem_type, "input": {"name": _onnx.INPUT_NAME, "type": "float32",
                                                      "shape": [None, len(model.algorithm.features_)]},  # type: ignore[attr-defined]
        "features": list(model.algorithm.features_),  # type: ignore[attr-defined]
        "classes": json.loads(json.dumps(model.classes, default=str)),
        "outputs": _onnx.outputs_doc(model),
        "recipe": ("recipe.json: apply it (loopml.prep.FittedRecipe.from_bytes(...).transform(df)) before the "
                   "ONNX model, then pass the feature columns in this order as float32") if recipe_file else None,
        "inputs_before_recipe": list((model.manifest.get("signature") or {}).get("inputs") or []),
        "parity": report.to_dict(),
    }
    (folder / "onnx.json").write_text(json.dumps(doc, indent=2, default=str))
    edge = _write_edge(folder, info, model, proto, data, frame, rows_from if frame is not None else "",
                       model_parity=report, rows=rows, tolerance=tolerance)
    return report, edge


# -- the edge bundle ---------------------------------------------------------------------------------
EDGE_GRAPH = "edge.onnx"
EDGE_RUNTIME = "loopml_edge.py"
#: single-row calls timed for the manifest's latency figures
LATENCY_CALLS = 200


def _write_edge(
    folder: Path, info: ModelVersionInfo, model: Model, proto: Any, model_data: bytes,
    frame: pd.DataFrame | None, rows_from: str, *, model_parity: Parity, rows: int, tolerance: float,
) -> dict[str, Any]:
    """Write ``edge.onnx`` (when the recipe converts and parity holds), ``loopml_edge.py`` and ``edge.json``."""
    from loopml.edge import EdgeBundle
    from loopml.edge import _runtime as runtime
    from loopml.registry import _onnx
    from loopml.registry import _onnx_recipe as rx

    algo: Any = model.algorithm
    features = list(algo.features_)
    signature = dict(model.manifest.get("signature") or {})
    output, rule, _ = _onnx.prediction_rule(model)
    classes = json.loads(json.dumps(model.classes, default=str))
    graph = rx.convert_recipe(model.recipe, signature.get("inputs") or [], features)
    reason = "" if graph.convertible else graph.why_not()
    edge_data = None
    if graph.convertible:
        try:
            merged = rx.merge(graph, proto, _onnx.INPUT_NAME)
        except rx.Unconvertible as e:
            reason = str(e)
        except Exception as e:  # the ONNX checker refused the merged graph
            reason = f"the merged graph is not valid ONNX: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
        else:
            from onnx import helper

            props = {p.key: p.value for p in merged.metadata_props}
            props["loopml.recipe"] = "in this graph: the inputs are the raw columns"
            helper.set_model_props(merged, props)
            edge_data = merged.SerializeToString()
    doc: dict[str, Any] = {
        "format": runtime.FORMAT, "format_version": runtime.FORMAT_VERSION,
        "model": info.ref, "package_sha256": model.sha256, "flavor": model.flavor,
        "problem_type": model.problem_type, "layout": "raw", "graph": EDGE_GRAPH,
        "inputs": [i.to_dict() for i in graph.inputs], "features": features,
        "prediction": {"output": output, "rule": rule}, "outputs": _onnx.outputs_doc(model), "classes": classes,
        "signature": {"inputs": list(signature.get("inputs") or []), "outputs": list(signature.get("outputs") or [])},
        "recipe": {"in_graph": False, "steps": [s.to_dict() for s in graph.steps], "reason": reason},
    }
    edge_parity: Parity | None = None
    if edge_data is not None:
        try:
            bundle = EdgeBundle(doc, edge_data)
            if frame is None:
                frame, rows_from = _synthetic_frame(model, rows), "random input rows"
            edge_parity = _onnx.edge_parity(model, bundle, frame, tolerance=tolerance, rows_from=rows_from)
        except LoopmlError as e:  # the native model refused the rows: no check, no edge graph
            reason = f"the edge graph could not be checked against the native model: {e}"
        except Exception as e:  # ONNX Runtime refused the graph: a translation bug, reported, not fatal
            reason = f"ONNX Runtime could not run the edge graph: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
        else:
            if not edge_parity.passed:
                reason = (f"the edge graph differs from the native model by up to {edge_parity.max_abs_diff:.3g} in "
                          f"{edge_parity.compared} on {edge_parity.differing_rows} of {edge_parity.rows} rows "
                          f"(tolerance {tolerance:g})")
        if reason:
            log.warning("%s: keeping the recipe outside the ONNX graph: %s", info.ref, reason)
            edge_data = None
    if edge_data is None:
        doc.update(layout="features", graph="model.onnx", inputs=[
            {"name": _onnx.INPUT_NAME, "kind": "features", "onnx_type": "tensor(float)",
             "shape": [None, len(features)], "columns": features}])
        doc["recipe"]["reason"] = reason
        bundle = EdgeBundle(doc, model_data)
    else:
        doc["recipe"].update(in_graph=True, reason="")
        (folder / EDGE_GRAPH).write_bytes(edge_data)
    # the parity of the graph the bundle runs: edge.onnx on raw rows, or model.onnx on feature rows
    doc["parity"] = (edge_parity if doc["layout"] == "raw" and edge_parity is not None else model_parity).to_dict()
    if frame is None:
        try:
            frame = _synthetic_frame(model, 1)
        except Exception:  # no record to time: the latency stays empty
            frame = None
    doc["latency"] = _latency(model, bundle, frame)
    shutil.copyfile(Path(runtime.__file__), folder / EDGE_RUNTIME)
    doc["files"] = {p.name: {"sha256": _sha256_file(p), "bytes": p.stat().st_size}
                    for p in sorted(folder.iterdir()) if p.is_file()}
    from loopml import __version__

    doc["created_by"] = {"loopml": __version__, "onnxruntime": _version("onnxruntime") or "",
                         "onnx": _version("onnx") or ""}
    text = json.dumps(doc, indent=2, default=str).encode()
    (folder / runtime.MANIFEST).write_bytes(text)
    summary = {k: doc[k] for k in ("layout", "graph", "inputs", "recipe", "parity", "latency")}
    summary["device_bytes"] = doc["files"][doc["graph"]]["bytes"] + len(text)  # what a device needs
    summary["bundle_bytes"] = sum(f["bytes"] for f in doc["files"].values()) + len(text)
    return summary


def _sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _latency(model: Model, bundle: Any, frame: pd.DataFrame | None) -> dict[str, Any]:
    """Single-row latency of the bundle and of the native model on one record."""
    from loopml.registry import _onnx

    if frame is None or not len(frame):
        return {}
    record = frame.head(1).to_dict("records")[0]
    record = {str(k): v for k, v in record.items()}
    out: dict[str, Any] = {"rows": 1, "threads": 1}
    try:
        out["native_predict_one"] = _onnx.latency(model.predict_one, record, calls=LATENCY_CALLS)
        if bundle.layout == "features" and model.recipe is not None:
            record = model.recipe.transform_one(record)
        out["edge_predict_one"] = _onnx.latency(bundle.predict_one, record, calls=LATENCY_CALLS)
    except LoopmlError as e:
        return {"skipped": f"the sample record did not predict: {e}"}
    return out


def _synthetic_frame(model: Model, rows: int, seed: int = 0) -> pd.DataFrame:
    """Random raw rows from the signature (categories from the recipe's fitted tables), for the edge parity check."""
    import pandas as pd

    from loopml.prep._base import MISSING
    from loopml.registry._onnx_recipe import DATETIME, NUMBER, STRING, input_kind

    rng = np.random.default_rng(seed)
    cats: dict[str, set[str]] = {}
    for step in model.recipe.steps if model.recipe is not None else []:
        for attr in ("categories_", "infrequent_", "tables_"):
            for col, values in (getattr(step, attr, None) or {}).items():
                cats.setdefault(col, set()).update(str(v) for v in values)
    data: dict[str, Any] = {}
    for c in (model.manifest.get("signature") or {}).get("inputs") or []:
        name, t = str(c["name"]), str(c.get("type", ""))
        kind = input_kind(t)
        if kind == NUMBER:
            data[name] = (rng.random(rows) < 0.5 if t == "bool" else rng.integers(0, 10, rows)
                          if t.startswith(("int", "uint")) else rng.normal(size=rows))
        elif kind == STRING:
            choices = [*sorted(cats.get(name, set()) - {MISSING}), "unseen"]
            data[name] = pd.array(rng.choice(np.array(choices, dtype=object), rows), dtype="str")
        elif kind == DATETIME:
            data[name] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 5 * 365 * 86400, rows), unit="s")
        else:
            data[name] = [None] * rows
    return pd.DataFrame(data)


def _parity_rows(
    ws: Workspace, info: ModelVersionInfo, model: Model, sample: pd.DataFrame | None, rows: int
) -> tuple[np.ndarray, str, pd.DataFrame | None]:
    """The feature matrix the parity check compares on, where its rows came from, and the raw rows (if real)."""
    algo: Any = model.algorithm
    frame, source = None, ""
    if sample is not None:
        import pandas as pd

        if not isinstance(sample, pd.DataFrame):
            raise InvalidInput(f"sample must be a pandas DataFrame, got {type(sample).__name__}")
        frame, source = sample.head(rows), "the given sample"
    else:
        frame, source = _training_rows(ws, info, rows)
    if frame is not None and len(frame):
        if model.target and model.target in frame.columns:
            frame = frame.drop(columns=[model.target])
        matrix = algo.matrix(model.transform(frame))
        if len(matrix):
            return matrix, source, frame
    from loopml.registry._onnx import synthetic_matrix

    return synthetic_matrix(len(algo.features_), rows).astype(algo.dtype), "random feature rows", None


def _training_rows(ws: Workspace, info: ModelVersionInfo, rows: int) -> tuple[Any, str]:
    import pyarrow as pa

    from loopml.data import Catalog
    from loopml.errors import LoopmlError

    train = [d for d in info.datasets if d.get("role") == "train"] or info.datasets
    if not train:
        return None, ""
    ref = f"{train[0]['name']}:{train[0]['version']}"
    try:
        batches = []
        taken = 0
        for b in Catalog(ws).iter_batches(ref, batch_size=rows):
            batches.append(b)
            taken += b.num_rows
            if taken >= rows:
                break
    except LoopmlError:  # the dataset version is gone: fall back to random rows
        return None, ""
    if not batches:
        return None, ""
    return pa.Table.from_batches(batches).slice(0, rows).to_pandas(), f"training data {ref}"


__all__ = ["FORMATS", "PARITY_ROWS", "PARITY_TOLERANCE", "ExportResult", "export_model", "mlflow_signature"]
