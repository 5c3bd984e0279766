"""The algorithm registry: built-in algorithms, plugins and the ones users register.

Built-ins: ``xgboost``, ``lightgbm``, ``linear``, ``random_forest``, ``knn``,
``kmeans``, ``pca``, ``isolation_forest`` and ``forecast``. Packages can add
algorithms through the ``loopml.algorithms`` entry-point group; code can add
one with :func:`register_algorithm`. Modules of built-ins import their
library only when training or loading, so listing algorithms stays fast.

Examples
--------
>>> from loopml.train.algorithms import get_algorithm
>>> xgb = get_algorithm("xgboost")
>>> xgb.check_hyperparameters({"max_depth": 4})["max_depth"]
4
"""

from __future__ import annotations

import difflib
import importlib
import logging
from typing import TypeVar

from loopml.errors import Conflict, InvalidInput
from loopml.train.algorithms._base import (
    ANOMALY_DETECTION,
    BINARY,
    CLASSIFICATION,
    CLUSTERING,
    DIMENSIONALITY_REDUCTION,
    FORECASTING,
    INPUT_KINDS,
    MULTICLASS,
    PROBLEM_TYPES,
    RANKING,
    RECOMMENDATION,
    REGRESSION,
    SUPERVISED,
    Algorithm,
    MetricCallback,
    TabularAlgorithm,
)

log = logging.getLogger(__name__)

A = TypeVar("A", bound=type[Algorithm])

_BUILTIN_MODULES = (
    "loopml.train.algorithms._boosting",
    "loopml.train.algorithms._sklearn",
    "loopml.train.algorithms._forecast",
    "loopml.train.algorithms._als",
    "loopml.train.algorithms._mlp",
    "loopml.train.algorithms._text",
)
ENTRY_POINT_GROUP = "loopml.algorithms"

_registry: dict[str, type[Algorithm]] = {}
_loaded: list[bool] = []


def register_algorithm(cls: A, *, replace: bool = False) -> A:
    """Add an algorithm class to the registry (usable as a class decorator).

    Parameters
    ----------
    cls
        A subclass of :class:`Algorithm` with ``name``, ``problem_types``
        and a hyperparameter schema.
    replace
        Replace an algorithm registered under the same name by another class.

    Returns
    -------
    type
        ``cls``, unchanged.

    Notes
    -----
    A training job runs in a new Python process and imports the class by its
    module and name, so define it in an importable module (not ``__main__``).
    """
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise InvalidInput(f"register_algorithm needs a subclass of loopml.train.Algorithm, got {cls!r}")
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise InvalidInput(f"{cls.__qualname__} needs a class attribute 'name' (letters, digits, '_' or '-')")
    if not cls.problem_types or any(p not in PROBLEM_TYPES for p in cls.problem_types):
        raise InvalidInput(
            f"{cls.__qualname__}.problem_types must be a non-empty tuple of {', '.join(PROBLEM_TYPES)}; "
            f"got {cls.problem_types!r}"
        )
    if cls.input_kind not in INPUT_KINDS:
        raise InvalidInput(f"{cls.__qualname__}.input_kind must be one of {', '.join(INPUT_KINDS)}")
    seen: set[str] = set()
    for hp in cls.hyperparameters:
        if hp.name in seen:
            raise InvalidInput(f"{cls.__qualname__} declares hyperparameter {hp.name!r} twice")
        seen.add(hp.name)
    old = _registry.get(name)
    if old is not None and old is not cls and not replace and algorithm_path(old) != algorithm_path(cls):
        raise Conflict(
            f"an algorithm named {name!r} is already registered ({algorithm_path(old)}); "
            "pick another name or pass replace=True"
        )
    _registry[name] = cls
    return cls


def _ensure_loaded() -> None:
    if _loaded:
        return
    _loaded.append(True)
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                cls = ep.load()
                if cls.name not in _registry:
                    register_algorithm(cls)
            except Exception as e:  # a broken plugin must not break the built-ins
                log.warning("could not load algorithm plugin %s: %s", ep.value, e)
    except Exception as e:  # pragma: no cover - broken metadata
        log.warning("could not read algorithm plugins: %s", e)


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name``; InvalidInput listing the known ones otherwise."""
    _ensure_loaded()
    cls = _registry.get(name)
    if cls is None:
        close = difflib.get_close_matches(str(name), list(_registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidInput(
            f"unknown algorithm {name!r}{hint}; known: {', '.join(sorted(_registry))}"
        )
    return cls


def list_algorithms() -> list[type[Algorithm]]:
    """Every registered algorithm, by name."""
    _ensure_loaded()
    return [_registry[k] for k in sorted(_registry)]


def algorithm_path(cls: type[Algorithm]) -> str:
    """``module:QualName`` of an algorithm class (how a training job finds it)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_algorithm(name: str, path: str | None = None) -> type[Algorithm]:
    """Find an algorithm by name, importing ``path`` (``module:QualName``) first if given."""
    _ensure_loaded()
    if path is not None and name not in _registry:
        module, _, qual = path.partition(":")
        if module == "__main__":
            raise InvalidInput(
                f"algorithm {name!r} is defined in __main__; a training job runs in a new process and "
                "cannot import it: define the class in an importable module"
            )
        try:
            obj: object = importlib.import_module(module)
        except ImportError as e:
            raise InvalidInput(f"cannot import the module of algorithm {name!r} ({path}): {e}") from None
        for part in qual.split("."):
            obj = getattr(obj, part, None)
        if not (isinstance(obj, type) and issubclass(obj, Algorithm)):
            raise InvalidInput(f"{path} is not an algorithm class")
        if name not in _registry:
            register_algorithm(obj)
    return get_algorithm(name)


__all__ = [
    "ANOMALY_DETECTION",
    "BINARY",
    "CLASSIFICATION",
    "CLUSTERING",
    "DIMENSIONALITY_REDUCTION",
    "ENTRY_POINT_GROUP",
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
    "algorithm_path",
    "get_algorithm",
    "list_algorithms",
    "register_algorithm",
    "resolve_algorithm",
]
