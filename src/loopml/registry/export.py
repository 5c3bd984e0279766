"""Export a registered version: to the MLflow model format, or to ONNX with a parity check.

MLflow (``format="mlflow"``) writes a folder ``mlflow.pyfunc.load_model``
reads::

    MLmodel            flavors: python_function (loader_module loopml.registry._mlflow_loader,
                       data: model) and loopml; the signature; the package id in metadata
    model/             the loopml model package, unchanged (manifest, native files, recipe)
    requirements.txt   loopml and the libraries the model was trained with, pinned
    python_env.yaml    for ``mlflow models serve --env-manager virtualenv``
    conda.yaml         for ``--env-manager conda``

ONNX (``format="onnx"``) writes::

    model.onnx         the model on the feature matrix (input ``features``, float32)
    recipe.json        the fitted recipe that runs before it (if the model has one)
    onnx.json          feature order, classes, what each output holds, the parity report

The ONNX graph covers the model, not the recipe: apply ``recipe.json`` with
:class:`loopml.prep.FittedRecipe` (or the same steps elsewhere) and feed the
``features`` columns in order. Before anything is written, ONNX Runtime and
the native model predict the same rows and must agree within ``tolerance``.
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

from loopml.errors import Conflict, InvalidInput
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"format": self.format, "path": str(self.path), "model": self.model,
                "package_sha256": self.package_sha256, "files": self.files,
                "parity": self.parity.to_dict() if self.parity else None}


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
        The files written, and for ONNX the parity report.

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
        parity = None
        if format == "mlflow":
            _write_mlflow(tmp, info, model)
        else:
            parity = _write_onnx(ws, tmp, info, model, sample=sample, rows=rows, tolerance=float(tolerance))
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
                        files=files, parity=parity)


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
) -> Parity:
    from loopml.registry import _onnx

    _onnx.check_convertible(model)
    proto = _onnx.convert(model)
    data = proto.SerializeToString()
    matrix, rows_from = _parity_rows(ws, info, model, sample, rows)
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
    return report


def _parity_rows(
    ws: Workspace, info: ModelVersionInfo, model: Model, sample: pd.DataFrame | None, rows: int
) -> tuple[np.ndarray, str]:
    """The feature matrix the parity check compares on, and where its rows came from."""
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
            return matrix, source
    from loopml.registry._onnx import synthetic_matrix

    return synthetic_matrix(len(algo.features_), rows).astype(algo.dtype), "random feature rows"


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
