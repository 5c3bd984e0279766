"""Custom metrics: user functions registered by name and computed alongside the built-in ones.

A :class:`MetricRegistry` holds them. :func:`register_metric` adds to the
default registry that :func:`loopml.evaluate.evaluate_predictions` reads
unless it is given another one (pass ``registry=MetricRegistry()`` for a
private, empty set).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound

#: tasks a metric can apply to ("classification" = binary and multiclass, "any" = every task)
TASK_GROUPS: dict[str, frozenset[str]] = {
    "binary": frozenset({"binary"}),
    "multiclass": frozenset({"multiclass"}),
    "classification": frozenset({"binary", "multiclass"}),
    "regression": frozenset({"regression"}),
    "forecasting": frozenset({"forecasting"}),
    "clustering": frozenset({"clustering"}),
    "ranking": frozenset({"ranking"}),
    "any": frozenset({"binary", "multiclass", "regression", "forecasting", "clustering", "ranking"}),
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@\-]{0,63}$")
Needs = Literal["pred", "score", "features"]


@dataclass(frozen=True)
class CustomMetric:
    """A registered metric.

    Attributes
    ----------
    name
        Key in :attr:`EvaluationResult.metrics`.
    fn
        Called as ``fn(y_true, y_pred)``, ``fn(y_true, y_score)`` or
        ``fn(X, y_pred)`` (see ``needs``) with numpy arrays; returns a number.
    tasks
        The tasks it applies to.
    greater_is_better
        Direction (recorded with the result; used by model comparison).
    needs
        ``"pred"`` (labels or values), ``"score"`` (binary: positive-class
        score; multiclass: one column per sorted class) or ``"features"``
        (clustering: the feature matrix and the cluster labels).
    """

    name: str
    fn: Callable[..., Any]
    tasks: frozenset[str]
    greater_is_better: bool = True
    needs: Needs = "pred"

    def compute(self, y_true: Any, y_pred: Any, y_score: Any, X: Any) -> float | None:
        """Call the function with the inputs it needs; None if they are missing."""
        if self.needs == "score":
            if y_score is None:
                return None
            args = (y_true, y_score)
        elif self.needs == "features":
            if X is None:
                return None
            args = (X, y_pred)
        else:
            if y_pred is None:
                return None
            args = (y_true, y_pred)
        try:
            value = self.fn(*args)
        except LoopmlError:
            raise
        except Exception as e:
            raise InvalidInput(
                f"custom metric {self.name!r} failed: {type(e).__name__}: {e}"
            ) from e
        try:
            out = float(value)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"custom metric {self.name!r} must return a number; it returned {value!r}") from e
        return out if math.isfinite(out) else None


class MetricRegistry:
    """Named custom metrics.

    Examples
    --------
    >>> reg = MetricRegistry()
    >>> _ = reg.register("max_error", lambda t, p: abs(t - p).max(), task="regression",
    ...                  greater_is_better=False)
    >>> [m.name for m in reg.for_task("regression")]
    ['max_error']
    """

    def __init__(self) -> None:
        self._metrics: dict[str, CustomMetric] = {}

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        task: str | tuple[str, ...] = "any",
        greater_is_better: bool = True,
        needs: Needs = "pred",
        replace: bool = False,
    ) -> CustomMetric:
        """Add a metric (see :func:`register_metric`)."""
        from loopml.evaluate.result import BUILTIN_METRICS

        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(
                f"metric name {name!r} is not allowed; use letters, digits, '_', '.', '@' or '-', "
                "starting with a letter or '_'"
            )
        if name in BUILTIN_METRICS or re.match(r"^(precision|recall|ndcg|map)@\d+$", name):
            raise Conflict(f"{name!r} is a built-in metric; register yours under another name")
        if name in self._metrics and not replace:
            raise Conflict(f"a metric named {name!r} is already registered; pass replace=True to replace it")
        if not callable(fn):
            raise InvalidInput(f"metric {name!r}: fn must be callable; got {type(fn).__name__}")
        groups = (task,) if isinstance(task, str) else tuple(task)
        unknown = [t for t in groups if t not in TASK_GROUPS]
        if unknown or not groups:
            raise InvalidInput(f"metric {name!r}: task must be one of {', '.join(TASK_GROUPS)}; got {task!r}")
        if needs not in ("pred", "score", "features"):
            raise InvalidInput(f"metric {name!r}: needs must be 'pred', 'score' or 'features'; got {needs!r}")
        tasks = frozenset().union(*(TASK_GROUPS[t] for t in groups))
        metric = CustomMetric(name, fn, tasks, bool(greater_is_better), needs)
        self._metrics[name] = metric
        return metric

    def unregister(self, name: str) -> None:
        """Remove a metric."""
        if name not in self._metrics:
            raise NotFound(f"no custom metric named {name!r}; registered: {sorted(self._metrics)}")
        del self._metrics[name]

    def get(self, name: str) -> CustomMetric:
        """The metric called ``name``."""
        try:
            return self._metrics[name]
        except KeyError:
            raise NotFound(f"no custom metric named {name!r}; registered: {sorted(self._metrics)}") from None

    def for_task(self, task: str) -> list[CustomMetric]:
        """Metrics that apply to ``task``, in registration order."""
        return [m for m in self._metrics.values() if task in m.tasks]

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __iter__(self) -> Iterator[CustomMetric]:
        return iter(list(self._metrics.values()))

    def __len__(self) -> int:
        return len(self._metrics)


#: the registry :func:`register_metric` adds to and evaluations read by default
default_registry = MetricRegistry()


def register_metric(
    name: str,
    fn: Callable[..., Any],
    *,
    task: str | tuple[str, ...] = "any",
    greater_is_better: bool = True,
    needs: Needs = "pred",
    replace: bool = False,
) -> CustomMetric:
    """Register a custom metric by name; evaluations of matching tasks compute it alongside the rest.

    Parameters
    ----------
    name
        The metric's key in the results (not a built-in name).
    fn
        ``fn(y_true, y_pred) -> float`` (or ``fn(y_true, y_score)`` / ``fn(X, labels)``, see ``needs``).
    task
        ``binary``, ``multiclass``, ``classification``, ``regression``,
        ``forecasting``, ``clustering``, ``ranking``, ``any``, or a tuple of them.
    greater_is_better
        Whether higher values are better.
    needs
        ``"pred"``, ``"score"`` or ``"features"``.
    replace
        Replace a metric already registered under ``name``.

    Returns
    -------
    CustomMetric

    Raises
    ------
    Conflict
        The name is built in, or taken and ``replace`` is False.
    InvalidInput
        A bad name, task or ``needs``.

    Examples
    --------
    >>> import numpy as np
    >>> from loopml.evaluate import evaluate_predictions, register_metric, unregister_metric
    >>> _ = register_metric("fn_rate", lambda t, p: float(np.mean((t == 1) & (p == 0))),
    ...                     task="binary", greater_is_better=False)
    >>> evaluate_predictions([1, 0, 1, 1], [1, 0, 0, 1]).metrics["fn_rate"]
    0.25
    >>> unregister_metric("fn_rate")
    """
    return default_registry.register(
        name, fn, task=task, greater_is_better=greater_is_better, needs=needs, replace=replace
    )


def unregister_metric(name: str) -> None:
    """Remove a metric from the default registry."""
    default_registry.unregister(name)


def as_array(value: Any) -> Any:
    """Arrays for user functions (None stays None)."""
    return None if value is None else np.asarray(value)
