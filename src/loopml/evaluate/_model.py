"""What ``loopml evaluate MODEL_OR_RUN`` names: resolve it to a verified model, and let the model predict.

A reference is tried, in order, as a registered model version (``NAME``,
``NAME:VERSION``, ``NAME@ALIAS``), a tracking run (id or unique prefix) whose
``model.sha256`` tag (or ``model/manifest.json`` artifact) names its model
package, and a model package id (the sha256 of its manifest). Loading
verifies every file of the package before anything is deserialised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    import pandas as pd

    from loopml.train.package import Model
    from loopml.workspace import Workspace

#: the run tag a training job sets to its model package id
MODEL_SHA_TAG = "model.sha256"
_RUN_MANIFEST = "model/manifest.json"
_SHA = re.compile(r"[0-9a-f]{64}")
#: problem type -> evaluation task
TASK_OF = {"binary": "binary", "multiclass": "multiclass", "regression": "regression",
           "forecasting": "forecasting", "ranking": "ranking", "clustering": "clustering"}


@dataclass(frozen=True)
class ModelSource:
    """The model a reference resolved to.

    Attributes
    ----------
    ref
        The reference as given.
    kind
        ``model_version``, ``run`` or ``model_package``: what the reference named.
    label
        How to name it to people: ``churn:3``, ``run-1a2b... (name)``, ``package 1a2b3c4d5e6f``.
    sha256
        The model package id.
    version
        ``NAME:VERSION`` when it came from the registry.
    run_id
        The run that trained the package, when known.
    entities
        Lineage sources of the evaluation: what the reference named, and the package.
    """

    ref: str
    kind: str
    label: str
    sha256: str
    version: str | None = None
    run_id: str | None = None
    entities: list[EntityRef] = field(default_factory=list)

    def to_source(self) -> dict[str, Any]:
        """The ``source`` entries of an evaluation result."""
        return {"model": self.label, "model_ref": self.ref, "model_kind": self.kind,
                "model_sha256": self.sha256, "model_version": self.version, "training_run_id": self.run_id}


def _first_clause(message: str) -> str:
    """The finding of an error message, without its "; see ..." hint."""
    return str(message).split("; ", 1)[0]


def resolve_model(ws: Workspace, ref: str) -> tuple[Model, ModelSource]:
    """Load the model that ``ref`` names (registry ref, run id or prefix, package id), verified.

    Raises
    ------
    NotFound
        Nothing goes by that name (the message lists what was tried), or a
        run has no model package.
    IntegrityError
        A file of the package was modified in the artifact store.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput("give the model to evaluate: NAME[:VERSION|@ALIAS], a run id or a model package id")
    ref = ref.strip()
    from loopml.registry import get_model_version

    # 1. the registry; a ref with ':' or '@' can only be a registered model
    if ":" in ref or "@" in ref:
        try:
            v = get_model_version(ws, ref)
        except (NotFound, InvalidInput) as e:
            raise type(e)(f"nothing to evaluate named {ref!r}: model registry: {e} (a run or package id "
                          "has no ':' or '@')") from None
        return _version(ws, ref, v)
    tried: list[str] = []
    try:
        v = get_model_version(ws, ref)
    except (NotFound, InvalidInput) as e:
        tried.append(f"model registry: {_first_clause(str(e))}")
    else:
        return _version(ws, ref, v)
    # 2. a tracking run (id or unique prefix; an ambiguous prefix is an error of its own)
    try:
        run = ws.tracker.get_run(ref)
    except NotFound as e:
        tried.append(f"runs: {_first_clause(str(e))}")
    else:
        return _run(ws, ref, run)
    # 3. a model package id
    if not _SHA.fullmatch(ref):
        tried.append("model packages: not a package id (the sha256 of its manifest, 64 hex digits)")
    elif not ws.artifacts.exists(ref):
        tried.append(f"model packages: no package {ref[:12]}... in the artifact store")
    else:
        model = _load(ws, ref, f"model package {ref[:12]}")
        run_id = _training_run(ws, ref, model)
        return model, ModelSource(ref, "model_package", f"package {ref[:12]}", ref, run_id=run_id,
                                  entities=[EntityRef("model_package", ref)])
    raise NotFound(f"nothing to evaluate named {ref!r}: {'; '.join(tried)} "
                   "(see `loopml models list` and `loopml runs list`)")


def _load(ws: Workspace, sha: str, what: str) -> Model:
    from loopml.train.package import load_model_package

    try:
        return load_model_package(sha, ws=ws)
    except IntegrityError as e:
        raise IntegrityError(f"{what} cannot be loaded: {e}") from None
    except NotFound as e:
        raise NotFound(f"{what} cannot be loaded: {e}") from None


def _version(ws: Workspace, ref: str, v: Any) -> tuple[Model, ModelSource]:
    model = _load(ws, v.package_sha256, v.ref)
    return model, ModelSource(ref, "model_version", v.ref, v.package_sha256, version=v.ref, run_id=v.run_id,
                              entities=[v.entity, EntityRef("model_package", v.package_sha256)])


def _run(ws: Workspace, ref: str, run: Any) -> tuple[Model, ModelSource]:
    sha = run.tags.get(MODEL_SHA_TAG) or {a.name: a.sha256 for a in run.artifacts}.get(_RUN_MANIFEST)
    if not sha:
        why = f" ({run.status}: {run.message})" if run.message else f" (status {run.status})"
        raise NotFound(
            f"run {run.id} ({run.name}) has no model package{why}: it has no {MODEL_SHA_TAG} tag; evaluate a "
            "finished training run (see `loopml runs list`)"
        )
    model = _load(ws, sha, f"the model of run {run.id}")
    return model, ModelSource(ref, "run", f"{run.id} ({run.name})", sha, run_id=run.id,
                              entities=[run.entity, EntityRef("model_package", sha)])


def _training_run(ws: Workspace, sha: str, model: Model) -> str | None:
    """The run that produced package ``sha``: its manifest says, else the lineage."""
    candidates = [model.manifest.get("run_id")]
    candidates += [e.src.id for e in ws.lineage.upstream(EntityRef("model_package", sha), depth=1)
                   if e.relation == "produced" and e.src.kind == "run"]
    for run_id in candidates:
        if not run_id:
            continue
        try:
            return ws.tracker.get_run(str(run_id)).id
        except (NotFound, InvalidInput):
            continue
    return None


# -- predicting --------------------------------------------------------------------------------------
@dataclass
class Predicted:
    """The model's output on the rows of a dataset version, ready for ``evaluate_predictions``."""

    task: str
    #: rows kept (a prediction for each)
    keep: np.ndarray
    y_pred: Any = None
    y_score: Any = None
    labels: list[Any] | None = None
    X: Any = None
    notes: list[str] = field(default_factory=list)


def columns_for(model: Model, task: str) -> tuple[list[str], str | None]:
    """The input columns the model reads, and its group column (ranking)."""
    group = (model.manifest.get("roles") or {}).get("group") if task == "ranking" else None
    return model.signature.input_names, group


def predict(model: Model, df: pd.DataFrame, inputs: list[str], *, task: str, threshold: float | None,
            y_true: np.ndarray | None) -> Predicted:
    """Predict every row of ``df``: labels and class probabilities (in class order) for classifiers."""
    X = df[inputs]
    if task in ("binary", "multiclass"):
        classes = list(model.classes or [])
        proba = model.predict_proba(X)
        keep = ~np.isnan(proba).any(axis=1)
        out = Predicted(task, keep, labels=classes)
        out.y_score = proba[keep]
        # a threshold turns the positive-class probability into labels; else the most probable class
        out.y_pred = None if threshold is not None and task == "binary" else _labels(model.predict(X))[keep]
        if y_true is not None and len(np.unique(y_true[keep])) < 2:
            out.y_score = None
            out.notes.append("the target holds one class only: AUC-ROC, PR-AUC and the curves are left out")
            if out.y_pred is None:
                out.y_pred = _labels(model.predict(X))[keep]
        return out
    values = np.asarray(model.predict(X))
    if values.ndim != 1:
        raise InvalidInput(f"this {model.flavor} {model.problem_type} model returns {values.ndim}-D predictions; "
                           "evaluation takes one value per row")
    keep = ~_missing(values)
    if task == "ranking":
        return Predicted(task, keep, y_score=values[keep].astype(float))
    if task == "clustering":
        feats = model.transform(X)
        names = [f for f in model.signature.features if f in feats.columns] or list(feats.columns)
        matrix = feats.reindex(X.index)[names].to_numpy(dtype=float)
        keep &= ~np.isnan(matrix).any(axis=1)
        return Predicted(task, keep, y_pred=_labels(values[keep]), X=matrix[keep])
    return Predicted(task, keep, y_pred=values[keep].astype(float))


def _labels(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object and len(arr) and not isinstance(arr[0], str):
        try:
            return np.asarray(arr.tolist())
        except (TypeError, ValueError):
            return arr
    return arr


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype == object:
        return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


# -- latency -----------------------------------------------------------------------------------------
def json_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as a JSON request body carries it: ISO dates, null for missing, plain scalars."""
    import pandas as pd

    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            v = None
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        elif hasattr(v, "item"):
            v = v.item()
            if isinstance(v, float) and math.isnan(v):
                v = None
        out[str(k)] = v
    return out


def latency_sample(df: pd.DataFrame, inputs: list[str], rows: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``rows`` seeded sample records of ``df`` (input columns only), as JSON carries them."""
    n = min(rows, len(df))
    idx = np.sort(np.random.default_rng(seed).choice(len(df), size=n, replace=False))
    return [json_record(r) for r in df.iloc[idx][inputs].to_dict("records")]


def one_record_predict(model: Model) -> Callable[[list[dict[str, Any]]], Any]:
    """``measure_latency``'s predict: the serving path, ``predict_one`` on one record."""
    predict_one = model.predict_one

    def call(batch: list[dict[str, Any]]) -> Any:
        return predict_one(batch[0])

    return call
