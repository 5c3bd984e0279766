"""The contract every training algorithm implements.

An :class:`Algorithm` is a small class: a name, the problem types it solves,
the kind of input it reads, a typed hyperparameter schema, and five methods:
``fit`` (reporting per-iteration validation metrics through a callback where
the library gives them), ``predict`` / ``predict_proba``, and pickle-free
``save`` / ``load`` of its learned state in a folder. :class:`TabularAlgorithm`
does the DataFrame-to-matrix work for algorithms on numeric feature
matrices, so a new one only writes ``fit_matrix``, ``predict_matrix`` and
native ``save_model`` / ``load_model``.

Conventions an algorithm can rely on (the training job guarantees them):

- classification targets arrive encoded as integers ``0 .. n_classes-1``;
  ``predict`` returns those codes and ``predict_proba`` one column per code;
- role columns (``group`` for ranking, ``time`` / ``series`` for forecasting,
  ``user`` / ``item`` for recommendation, ...) stay in ``X`` under the names
  in ``self.roles``;
- the folder given to ``save`` is empty and private to the algorithm, and
  ``load`` is called on an instance built with the same hyperparameters,
  problem type, roles and number of classes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from loopml.errors import InvalidInput
from loopml.train.hyperparameters import Hyperparameter, validate_hyperparameters

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import Self

# -- problem types and input kinds -------------------------------------------------------------
BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
RANKING = "ranking"
CLUSTERING = "clustering"
DIMENSIONALITY_REDUCTION = "dimensionality_reduction"
ANOMALY_DETECTION = "anomaly_detection"
FORECASTING = "forecasting"
RECOMMENDATION = "recommendation"

#: every problem type an algorithm may declare
PROBLEM_TYPES = (
    BINARY, MULTICLASS, REGRESSION, RANKING, CLUSTERING, DIMENSIONALITY_REDUCTION,
    ANOMALY_DETECTION, FORECASTING, RECOMMENDATION,
)
CLASSIFICATION = (BINARY, MULTICLASS)
#: problem types that need a target column to train
SUPERVISED = (BINARY, MULTICLASS, REGRESSION, RANKING, FORECASTING)
#: what an algorithm reads: a feature table, (user, item, value) interactions, text, images
INPUT_KINDS = ("tabular", "interactions", "text", "image")

#: ``callback(step, {"validation:auc": 0.91, ...})``: step counts from 1
MetricCallback = Callable[[int, Mapping[str, float]], None]


class Algorithm(ABC):
    """Base class of every training algorithm (built in or registered by users).

    Subclasses set the class attributes and implement :meth:`fit`,
    :meth:`predict`, :meth:`save` and :meth:`load` (and :meth:`predict_proba`
    for classifiers). The constructor only stores configuration.

    Parameters
    ----------
    hyperparameters
        Values for the schema in :attr:`hyperparameters`; the rest take defaults.
    problem_type
        One of :attr:`problem_types`.
    seed
        Random seed for the library.
    roles
        Role name -> column name (e.g. ``{"group": "query_id"}``).
    n_classes
        Number of classes for classification.
    """

    #: registry name (``loopml train --algo NAME``)
    name: ClassVar[str] = ""
    #: one line for ``loopml algorithms list``
    description: ClassVar[str] = ""
    #: problem types it solves; the first one is the default for unsupervised algorithms
    problem_types: ClassVar[tuple[str, ...]] = ()
    #: ``tabular``, ``interactions``, ``text`` or ``image``
    input_kind: ClassVar[str] = "tabular"
    #: the typed hyperparameter schema (the tuner reads it)
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = ()
    #: role -> what the column means (e.g. ``{"group": "query id for ranking"}``)
    roles_doc: ClassVar[Mapping[str, str]] = {}
    #: problem type -> roles it needs
    required_roles: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: roles whose columns predict() also reads (the rest are needed for training only)
    predict_roles: ClassVar[tuple[str, ...]] = ()
    #: problem type -> metrics (without ``validation:``) reported per iteration during fit
    iteration_metrics: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: Python distributions whose versions go into the model manifest
    libraries: ClassVar[tuple[str, ...]] = ()
    #: modules a training job imports while the caller prepares (the library, mostly)
    imports: ClassVar[tuple[str, ...]] = ()
    #: libraries the job imports with scikit-learn hidden, because the algorithm does not use their
    #: optional scikit-learn classes (much quicker for XGBoost and LightGBM; see ``import_without_sklearn``)
    imports_without_sklearn: ClassVar[tuple[str, ...]] = ()
    #: missing values (NaN) in features are handled by the algorithm itself
    handles_missing: ClassVar[bool] = False
    #: how the default recipe encodes text columns when none is given: ordinal, one_hot or none
    categorical_encoding: ClassVar[str] = "ordinal"

    def __init__(
        self,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        problem_type: str,
        seed: int = 0,
        roles: Mapping[str, str] | None = None,
        n_classes: int | None = None,
    ) -> None:
        type(self).check_problem_type(problem_type)
        self.params: dict[str, Any] = type(self).check_hyperparameters(hyperparameters)
        self.problem_type = problem_type
        self.seed = int(seed)
        self.roles: dict[str, str] = dict(roles or {})
        self.n_classes = n_classes
        #: the per-iteration metrics someone listens to (names without ``validation:``); None: all of
        #: them. An algorithm may then compute only those each iteration (the job sets it).
        self.listened: frozenset[str] | None = None
        #: kept by a warm job process between fits on the same prepared data (the same rows after the
        #: same recipe, only the hyperparameters differ); an algorithm may keep there what it derives
        #: from the data alone, e.g. XGBoost's DMatrix with its quantile sketch. None: nothing is kept.
        self.scratch: dict[str, Any] | None = None

    # -- schema helpers --------------------------------------------------------------------------
    @classmethod
    def check_hyperparameters(cls, values: Mapping[str, Any] | None, *, parse_strings: bool = False) -> dict[str, Any]:
        """Validate ``values`` against the schema and fill in the defaults."""
        return validate_hyperparameters(cls.hyperparameters, values, cls.name, parse_strings=parse_strings)

    @classmethod
    def check_problem_type(cls, problem_type: str) -> str:
        """Return ``problem_type`` if this algorithm solves it, else raise InvalidInput."""
        if problem_type not in cls.problem_types:
            raise InvalidInput(
                f"{cls.name} does not solve {problem_type!r} problems; it solves {', '.join(cls.problem_types)}"
            )
        return problem_type

    @classmethod
    def reported_metrics(cls, problem_type: str) -> tuple[str, ...]:
        """Metric names (without ``train:`` / ``validation:``) a training job reports for this problem."""
        from loopml.train._metrics import metric_names

        extra = tuple(m for m in cls.iteration_metrics.get(problem_type, ()) if m not in metric_names(problem_type))
        return (*metric_names(problem_type), *extra)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Everything about the algorithm as JSON (``loopml algorithms show --json``)."""
        return {
            "name": cls.name,
            "description": cls.description,
            "problem_types": list(cls.problem_types),
            "input_kind": cls.input_kind,
            "roles": dict(cls.roles_doc),
            "required_roles": {k: list(v) for k, v in cls.required_roles.items()},
            "iteration_metrics": {k: list(v) for k, v in cls.iteration_metrics.items()},
            "metrics": {p: list(cls.reported_metrics(p)) for p in cls.problem_types},
            "hyperparameters": [h.to_dict() for h in cls.hyperparameters],
        }

    @property
    def is_classifier(self) -> bool:
        """True for binary and multiclass problems."""
        return self.problem_type in CLASSIFICATION

    # -- the contract ----------------------------------------------------------------------------
    @abstractmethod
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | None = None,
        *,
        callback: MetricCallback | None = None,
    ) -> Self:
        """Learn from ``X`` (features after the recipe, plus role columns) and ``y``.

        Where the library evaluates per iteration (boosting rounds, epochs),
        call ``callback(step, {"validation:<metric>": value, ...})`` after each.
        """

    @abstractmethod
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions for ``X``: class codes, values, cluster ids, scores or embeddings."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape ``(rows, n_classes)`` (classifiers only)."""
        raise InvalidInput(f"{self.name} {self.problem_type} models give no class probabilities")

    def predict_one(self, record: Mapping[str, Any]) -> Any:
        """The prediction for one record (after the recipe): the serving path; override to go fast."""
        import pandas as pd

        return self.predict(pd.DataFrame([dict(record)]))[0]

    def predict_proba_one(self, record: Mapping[str, Any]) -> np.ndarray:
        """Class probabilities for one record, shape ``(n_classes,)``."""
        import pandas as pd

        return np.asarray(self.predict_proba(pd.DataFrame([dict(record)]))[0])

    def score(self, X: pd.DataFrame, y: np.ndarray | None) -> dict[str, float]:
        """Final metrics on ``X`` / ``y`` (keys without a ``train:`` / ``validation:`` prefix)."""
        from loopml.train._metrics import evaluate

        proba = self.predict_proba(X) if self.is_classifier else None
        pred = np.argmax(proba, axis=1) if proba is not None else self.predict(X)
        groups = None
        if self.problem_type == RANKING and "group" in self.roles:
            groups = X[self.roles["group"]].to_numpy()
        return evaluate(self.problem_type, y, pred, proba=proba, groups=groups, n_classes=self.n_classes)

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the learned state into the (empty) folder ``path``: native formats or JSON, never a pickle."""

    @abstractmethod
    def load(self, path: Path) -> Self:
        """Restore the learned state written by :meth:`save`; return self."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(problem_type={self.problem_type!r}, params={self.params!r})"


class TabularAlgorithm(Algorithm):
    """An algorithm on a numeric feature matrix: the base of the built-in tabular algorithms.

    It picks the feature columns (every column but the role columns), turns
    frames into ``float32``/``float64`` matrices with clear errors for text
    columns, and keeps the feature order with the saved model. Subclasses
    implement :meth:`fit_matrix`, :meth:`predict_matrix`, :meth:`save_model`,
    :meth:`load_model` and, for classifiers, :meth:`proba_matrix`.
    """

    #: the matrix dtype the library trains and predicts on
    dtype: ClassVar[type] = np.float32

    features_: list[str]

    # -- what subclasses write ---------------------------------------------------------------------
    @abstractmethod
    def fit_matrix(
        self,
        X: np.ndarray,
        y: np.ndarray | None,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        *,
        callback: MetricCallback | None,
        groups: np.ndarray | None = None,
        groups_val: np.ndarray | None = None,
    ) -> None:
        """Fit on matrices (``groups``: per-row group ids for ranking)."""

    @abstractmethod
    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Predictions for a matrix."""

    def proba_matrix(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities for a matrix (classifiers)."""
        raise InvalidInput(f"{self.name} {self.problem_type} models give no class probabilities")

    @abstractmethod
    def save_model(self, path: Path) -> None:
        """Write the native model file(s) into ``path``."""

    @abstractmethod
    def load_model(self, path: Path) -> None:
        """Read what :meth:`save_model` wrote."""

    # -- the Algorithm contract on top -------------------------------------------------------------
    def feature_columns(self, X: pd.DataFrame) -> list[str]:
        """The columns used as features: all but the role columns."""
        skip = set(self.roles.values())
        return [str(c) for c in X.columns if c not in skip]

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | None = None,
        *,
        callback: MetricCallback | None = None,
    ) -> Self:
        self.features_ = self.feature_columns(X)
        if not self.features_:
            raise InvalidInput(f"{self.name} needs at least one feature column; the data has none besides the target")
        groups = groups_val = None
        if self.problem_type == RANKING:
            col = self.roles.get("group")
            if col is None:
                raise InvalidInput(f"{self.name} ranking needs a group column: pass roles={{'group': COLUMN}}")
            groups = _group_codes(X[col])
            groups_val = _group_codes(X_val[col]) if X_val is not None else None
        self.fit_matrix(
            self.matrix(X), y, self.matrix(X_val) if X_val is not None else None, y_val,
            callback=callback, groups=groups, groups_val=groups_val,
        )
        return self

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """``X``'s feature columns as a matrix of :attr:`dtype` (missing -> NaN)."""
        missing = [c for c in self.features_ if c not in X.columns]
        if missing:
            raise InvalidInput(
                f"the data has no feature column {missing[0]!r}; the model was trained on "
                f"{', '.join(self.features_[:12])}{' ...' if len(self.features_) > 12 else ''}"
            )
        frame = X[self.features_]
        try:
            return np.ascontiguousarray(frame.to_numpy(dtype=self.dtype, na_value=np.nan))
        except (TypeError, ValueError):
            pass
        for c in self.features_:
            try:
                frame[c].to_numpy(dtype=self.dtype, na_value=np.nan)
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"feature column {c!r} holds {frame[c].dtype} values, not numbers; encode it with a "
                    "recipe step (one_hot, ordinal, frequency, target_encode) or leave the recipe out to "
                    "let training encode text columns"
                ) from None
        raise InvalidInput("the feature columns could not be read as numbers")  # pragma: no cover

    def row(self, record: Mapping[str, Any]) -> np.ndarray:
        """One record as a 1-row matrix in feature order (the serving path)."""
        try:
            return np.array([[record[c] for c in self.features_]], dtype=self.dtype)
        except KeyError as e:
            raise InvalidInput(f"the record has no field {e.args[0]!r}, a feature of this model") from None
        except (TypeError, ValueError):
            for c in self.features_:
                try:
                    np.array([record[c]], dtype=self.dtype)
                except (TypeError, ValueError):
                    raise InvalidInput(f"field {c!r} must be a number (or null), got {record[c]!r}") from None
            raise

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(self.matrix(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba_matrix(self.matrix(X))

    def predict_one(self, record: Mapping[str, Any]) -> Any:
        return self.predict_matrix(self.row(record))[0]

    def predict_proba_one(self, record: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(self.proba_matrix(self.row(record))[0])

    def save(self, path: Path) -> None:
        (path / "features.json").write_text(json.dumps({"features": self.features_}))
        self.save_model(path)

    def load(self, path: Path) -> Self:
        self.features_ = list(json.loads((path / "features.json").read_text())["features"])
        self.load_model(path)
        return self


def _group_codes(s: pd.Series) -> np.ndarray:
    """Group ids as integer codes (missing ids form one group)."""
    import pandas as pd

    codes, _ = pd.factorize(s, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64)


def binary_proba(p: np.ndarray) -> np.ndarray:
    """``[1 - p, p]`` columns from positive-class probabilities."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    return np.column_stack([1.0 - p, p])


def labels_from_proba(proba: np.ndarray) -> np.ndarray:
    """Class codes from probabilities (the most probable; ties to the lower code)."""
    return np.asarray(np.argmax(proba, axis=1), dtype=np.int64)


def check_fitted(algo: Algorithm, attr: str) -> None:
    """Raise InvalidInput when ``algo`` has no learned ``attr`` yet."""
    if not hasattr(algo, attr):
        raise InvalidInput(f"this {algo.name} model is not fitted yet; call fit() or load() first")


def need_validation(algo: Algorithm, what: str, X_val: object) -> None:
    """Raise InvalidInput when a hyperparameter needs validation data that is missing."""
    if X_val is None:
        raise InvalidInput(f"{what} for {algo.name} needs validation data; pass validation=NAME[:VER]")


def group_order(groups: np.ndarray) -> np.ndarray:
    """The row order that makes each group contiguous (ranking libraries need that)."""
    return np.asarray(np.argsort(groups, kind="stable"))


def group_sizes(sorted_groups: np.ndarray) -> np.ndarray:
    """Sizes of the consecutive runs of equal ids in sorted group ids."""
    if len(sorted_groups) == 0:
        return np.zeros(0, dtype=np.int64)
    _, counts = np.unique(sorted_groups, return_counts=True)
    return counts


__all__ = [
    "ANOMALY_DETECTION",
    "BINARY",
    "CLASSIFICATION",
    "CLUSTERING",
    "DIMENSIONALITY_REDUCTION",
    "FORECASTING",
    "INPUT_KINDS",
    "MULTICLASS",
    "PROBLEM_TYPES",
    "RANKING",
    "RECOMMENDATION",
    "REGRESSION",
    "SUPERVISED",
    "Algorithm",
    "MetricCallback",
    "TabularAlgorithm",
]
