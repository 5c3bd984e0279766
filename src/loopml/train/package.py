"""The model package: the unit the registry stores and serving loads.

A model package is a folder::

    manifest.json     format, flavor, problem type, hyperparameters, signature,
                      target, recipe reference, metrics, library versions, and
                      the sha256 of every other file
    model/            the algorithm's files in their native format (no pickles)
    recipe.json       the fitted recipe (if the model has one)

The package's identity is the sha256 of ``manifest.json``; it lists the
hash of every other file, so one hash pins the whole package. Loading
verifies every hash before any file is deserialised. :class:`Model` applies
the recipe and then the model, exactly as the training job did.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.train.algorithms import algorithm_path, resolve_algorithm
from loopml.train.algorithms._base import CLASSIFICATION, Algorithm

if TYPE_CHECKING:
    import pandas as pd

    from loopml.prep import FittedRecipe
    from loopml.workspace import Workspace

FORMAT = "loopml.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_DIR = "model"
RECIPE_FILE = "recipe.json"


@dataclass(frozen=True)
class Signature:
    """What a model takes and returns.

    Attributes
    ----------
    inputs
        The columns a caller sends, before the recipe: ``{name, type, nullable}``
        (Arrow type names).
    outputs
        ``prediction`` and, for classifiers, ``probabilities`` with its ``labels``.
    features
        The columns the algorithm reads, after the recipe.
    classes
        The class labels (classifiers), in the order of the probabilities.
    """

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    features: list[str] = field(default_factory=list)
    classes: list[Any] | None = None

    @property
    def input_names(self) -> list[str]:
        """Names of the input columns, in order."""
        return [c["name"] for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        """The manifest form."""
        return {"inputs": self.inputs, "outputs": self.outputs, "features": self.features,
                "classes": self.classes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        """Read the manifest form."""
        return cls(inputs=list(d.get("inputs") or []), outputs=list(d.get("outputs") or []),
                   features=list(d.get("features") or []),
                   classes=list(d["classes"]) if d.get("classes") is not None else None)


def library_versions(algo: type[Algorithm]) -> dict[str, str]:
    """Versions of Python, loopml and the libraries the model needs."""
    out = {"python": platform.python_version()}
    for dist in ("loopml", "numpy", "pandas", "pyarrow", *algo.libraries):
        v = _dist_version(dist)
        if v is not None:
            out[dist] = v
    return out


@functools.lru_cache(maxsize=64)
def _dist_version(dist: str) -> str | None:
    # cached: reading a distribution's metadata takes a fraction of a millisecond, and a warm
    # training process writes a package per tuning trial (the versions cannot change under it)
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        pass
    try:  # installed under another distribution name (xgboost-cpu): ask the module
        module = importlib.import_module(_MODULES.get(dist, dist.replace("-", "_")))
        return str(module.__version__)
    except (ImportError, AttributeError):
        return None


_MODULES = {"scikit-learn": "sklearn"}


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def save_model_package(
    path: str | os.PathLike[str],
    algorithm: Algorithm,
    *,
    signature: Signature,
    target: str | None,
    recipe: FittedRecipe | None = None,
    recipe_ref: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write a model package into the empty (or new) folder ``path``.

    Parameters
    ----------
    path
        The package folder.
    algorithm
        A fitted algorithm.
    signature
        Inputs, outputs, features and classes.
    target
        The target column it was trained on.
    recipe
        The fitted recipe to apply before the model.
    recipe_ref
        Where the recipe came from (``{"ref": "name:ver", "id": ...}`` for a catalog recipe).
    metrics
        Final metrics of the training job.
    extra
        More manifest fields (run id, training data, ...).

    Returns
    -------
    str
        The package id: the sha256 of ``manifest.json``.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise InvalidInput(f"{root} is not empty; a model package needs an empty folder")
    (root / MODEL_DIR).mkdir()
    algorithm.save(root / MODEL_DIR)
    recipe_doc: dict[str, Any] | None = None
    if recipe is not None:
        (root / RECIPE_FILE).write_bytes(recipe.to_bytes())
        recipe_doc = {"file": RECIPE_FILE, **dict(recipe_ref or {})}
    files = {rel: _sha_file(root / rel) for rel in _files(root)}
    cls = type(algorithm)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "flavor": cls.name,
        "algorithm": {"name": cls.name, "class": algorithm_path(cls), "input_kind": cls.input_kind},
        "problem_type": algorithm.problem_type,
        "hyperparameters": algorithm.params,
        "seed": algorithm.seed,
        "roles": algorithm.roles,
        "n_classes": algorithm.n_classes,
        "target": target,
        "signature": signature.to_dict(),
        "recipe": recipe_doc,
        "metrics": dict(metrics or {}),
        "files": files,
        "libraries": library_versions(cls),
        **dict(extra or {}),
    }
    data = json.dumps(manifest, indent=2, sort_keys=True, default=_json_default).encode()
    (root / MANIFEST).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def read_manifest(path: str | os.PathLike[str], *, sha256: str | None = None) -> tuple[dict[str, Any], str]:
    """Read a package's manifest (checked against ``sha256`` if given); return it with its hash."""
    file = Path(path) / MANIFEST
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path} is not a model package: it has no {MANIFEST}") from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise IntegrityError(
            f"the manifest of the model package in {path} was modified (it hashes to {digest}, "
            f"expected {sha256}); restore it or train the model again"
        )
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise IntegrityError(f"the manifest of {path} is not valid JSON: {e}") from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a loopml model package")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"the model package in {path} has format version {manifest.get('format_version')}; this loopml "
            f"reads version {FORMAT_VERSION}"
        )
    return manifest, digest


def verify_package(path: str | os.PathLike[str], *, sha256: str | None = None) -> dict[str, Any]:
    """Check every file of a package against its manifest; return the manifest.

    Raises
    ------
    IntegrityError
        A file is missing, changed, or not listed in the manifest.
    """
    root = Path(path)
    manifest, _ = read_manifest(root, sha256=sha256)
    listed: dict[str, str] = dict(manifest.get("files") or {})
    present = [f for f in _files(root) if f != MANIFEST]
    unlisted = sorted(set(present) - set(listed))
    if unlisted:
        raise IntegrityError(f"the model package in {root} has files its manifest does not list: {unlisted[:5]}")
    for rel, want in sorted(listed.items()):
        p = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise IntegrityError(f"the manifest of {root} names a file outside the package: {rel!r}")
        if not p.is_file():
            raise IntegrityError(f"the model package in {root} is missing {rel}")
        got = _sha_file(p)
        if got != want:
            raise IntegrityError(
                f"{rel} in the model package {root} was modified or corrupted (it hashes to {got}, the "
                f"manifest says {want}); refusing to load it"
            )
    return manifest


# -- loading ----------------------------------------------------------------------------------------
def load_model_package(
    source: str | os.PathLike[str],
    *,
    ws: Workspace | None = None,
    sha256: str | None = None,
) -> Model:
    """Load a model package from a folder, or by its artifact id from a workspace.

    Every file is verified against the manifest (and the manifest against
    ``sha256`` / the artifact id) before anything is deserialised.

    Parameters
    ----------
    source
        A package folder, or the package id (sha256 of its manifest) in ``ws``'s artifact store.
    ws
        The workspace, to load by artifact id.
    sha256
        The expected package id when loading a folder.

    Returns
    -------
    Model
        Ready for ``predict(df)``, ``predict_proba(df)`` and ``predict_one(record)``.
    """
    text = os.fspath(source)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text) and not Path(text).is_dir():
        if ws is None:
            raise InvalidInput("loading a model package by artifact id needs the workspace: pass ws=")
        folder = materialize_package(ws, text)
        return _load(folder, sha256=text)
    folder = Path(text)
    if not folder.is_dir():
        raise NotFound(f"no model package at {text}")
    return _load(folder, sha256=sha256)


def materialize_package(ws: Workspace, sha256: str) -> Path:
    """Copy a stored package into the workspace's model cache (verified); return its folder."""
    cache = ws.home / "cache" / "models"
    folder = cache / sha256
    if folder.is_dir():
        try:
            verify_package(folder, sha256=sha256)
            return folder
        except (IntegrityError, NotFound, InvalidInput):
            shutil.rmtree(folder, ignore_errors=True)
    data = ws.artifacts.get_bytes(sha256)
    try:
        manifest = json.loads(data)
    except ValueError:
        raise InvalidInput(f"artifact {sha256} is not a model package manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"artifact {sha256} is not a model package manifest")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache))
    try:
        for rel, file_sha in dict(manifest.get("files") or {}).items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise IntegrityError(f"the manifest {sha256} names a file outside the package: {rel!r}")
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(ws.artifacts.get_bytes(file_sha))
        (tmp / MANIFEST).write_bytes(data)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process put it there first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _load(folder: Path, *, sha256: str | None) -> Model:
    manifest = verify_package(folder, sha256=sha256)
    _, digest = read_manifest(folder)
    algo_doc = manifest["algorithm"]
    cls = resolve_algorithm(algo_doc["name"], algo_doc.get("class"))
    algo = cls(manifest["hyperparameters"], problem_type=manifest["problem_type"], seed=manifest.get("seed", 0),
               roles=manifest.get("roles") or {}, n_classes=manifest.get("n_classes"))
    algo.load(folder / MODEL_DIR)
    recipe = None
    if manifest.get("recipe"):
        from loopml.prep import FittedRecipe

        recipe = FittedRecipe.from_bytes((folder / manifest["recipe"]["file"]).read_bytes())
    return Model(folder, manifest, algo, recipe, sha256=digest)


class Model:
    """A loaded model package: the fitted recipe, then the model.

    Parameters
    ----------
    path
        The package folder.
    manifest
        Its verified manifest.
    algorithm
        The loaded algorithm.
    recipe
        The fitted recipe, if any.
    sha256
        The package id.
    """

    def __init__(
        self, path: Path, manifest: dict[str, Any], algorithm: Algorithm, recipe: FittedRecipe | None,
        *, sha256: str,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.algorithm = algorithm
        self.recipe = recipe
        self.sha256 = sha256
        self.signature = Signature.from_dict(manifest["signature"])
        self.classes = self.signature.classes
        self._labels = np.array(self.classes, dtype=object) if self.classes is not None else None
        self._is_classifier = self.problem_type in CLASSIFICATION
        # the serving path: bound methods, looked up once
        self._recipe_one = recipe.transform_one if recipe is not None else None
        self._proba_one = algorithm.predict_proba_one
        self._predict_one = algorithm.predict_one

    # -- what it is ----------------------------------------------------------------------------------
    @property
    def flavor(self) -> str:
        """The algorithm name (``xgboost``, ``linear``, ...)."""
        return str(self.manifest["flavor"])

    @property
    def problem_type(self) -> str:
        """``binary``, ``multiclass``, ``regression``, ..."""
        return str(self.manifest["problem_type"])

    @property
    def target(self) -> str | None:
        """The target column of the training data."""
        return self.manifest.get("target")

    @property
    def metrics(self) -> dict[str, float]:
        """Final metrics of the training job."""
        return dict(self.manifest.get("metrics") or {})

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter value the model was trained with."""
        return dict(self.manifest.get("hyperparameters") or {})

    def __repr__(self) -> str:
        return f"Model(flavor={self.flavor!r}, problem_type={self.problem_type!r}, sha256={self.sha256[:12]!r})"

    # -- predicting ------------------------------------------------------------------------------------
    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` after the model's recipe (the frame the algorithm reads)."""
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise InvalidInput(f"predict needs a pandas DataFrame, got {type(df).__name__}")
        return self.recipe.transform(df) if self.recipe is not None else df

    def _aligned(self, df: pd.DataFrame, Xt: pd.DataFrame, values: np.ndarray) -> np.ndarray:
        if len(Xt) == len(df):
            return values
        # the recipe dropped rows: their predictions are missing
        import pandas as pd

        if values.ndim == 1:
            return pd.Series(values, index=Xt.index, dtype=object).reindex(df.index).to_numpy()
        return pd.DataFrame(values, index=Xt.index).reindex(df.index).to_numpy()

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predictions for every row of ``df``: class labels, values, scores, cluster ids or projections."""
        Xt = self.transform(df)
        if self._is_classifier:
            assert self._labels is not None
            codes = np.argmax(self.algorithm.predict_proba(Xt), axis=1)
            out = self._labels[codes]
            if len(out) and not isinstance(out[0], str):
                out = np.array(out.tolist())
        else:
            out = np.asarray(self.algorithm.predict(Xt))
        return self._aligned(df, Xt, out)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Class probabilities, one column per label in :attr:`classes` (classifiers only)."""
        if not self._is_classifier:
            raise InvalidInput(f"this {self.flavor} {self.problem_type} model gives no class probabilities")
        Xt = self.transform(df)
        return self._aligned(df, Xt, np.asarray(self.algorithm.predict_proba(Xt), dtype=np.float64))

    def predict_one(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Predict one record (a dict of input fields): the serving path.

        Returns
        -------
        dict
            ``{"prediction": ...}``, plus ``"probabilities"`` (a list in the
            order of :attr:`classes`) for classifiers.
        """
        rec = self._recipe_one(record) if self._recipe_one is not None else record
        if self._is_classifier:
            proba = self._proba_one(rec)
            code = int(np.argmax(proba))
            assert self._labels is not None
            return {"prediction": self._labels[code], "probabilities": proba.tolist()}
        value = self._predict_one(rec)
        if isinstance(value, np.ndarray):
            return {"prediction": value.tolist()}
        return {"prediction": value.item() if hasattr(value, "item") else value}

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`predict_one` for each record."""
        return [self.predict_one(r) for r in records]


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "Model",
    "Signature",
    "load_model_package",
    "materialize_package",
    "read_manifest",
    "save_model_package",
    "verify_package",
]
