"""Search spaces: which hyperparameters a tuning job searches, over what range, on what scale.

A :class:`SearchSpace` is a tuple of ranges (:class:`ContinuousParameter`,
:class:`IntegerParameter`, :class:`CategoricalParameter`) plus fixed values.
It comes from an algorithm's hyperparameter schema (:func:`default_space`:
the tunable hyperparameters over their suggested search ranges), from Python
(:func:`build_space`) or from a YAML file (:func:`load_space`), and is checked
against the schema before any trial runs: unknown names, ``min > max``, a log
scale on a non-positive range, values outside what the algorithm accepts.

Scaling follows SageMaker's ``ScalingType``: ``auto`` (log where the schema
says so), ``linear``, ``log`` (positive ranges only) and ``reverse-log``
(continuous ranges inside [0, 1): dense near 1, for momentum-like values).
Each range draws its value through an Optuna ``suggest_*`` call; the samplers
themselves are Optuna's.

The YAML form names each hyperparameter::

    eta: {min: 0.01, max: 0.3, scaling: log}
    max_depth: {min: 3, max: 8}
    subsample: {min: 0.5, max: 0.99, scaling: reverse-log}
    tree_method: [hist, approx]      # categorical
    num_round: 200                   # fixed, not searched

The SageMaker form (``ContinuousParameterRanges``, ``IntegerParameterRanges``,
``CategoricalParameterRanges``, ``StaticHyperParameters``) is read as well.

Examples
--------
>>> from loopml.tune.ranges import build_space
>>> space = build_space("xgboost", {"eta": (0.01, 0.3), "max_depth": (3, 8), "num_round": 20})
>>> [r.name for r in space.ranges], space.fixed
(['eta', 'max_depth'], {'num_round': 20})
>>> space.ranges[0].scaling_used   # the schema searches eta on a log scale
'log'
>>> build_space("xgboost", {"max_depth": (8, 3)})
Traceback (most recent call last):
...
loopml.errors.InvalidInput: range of max_depth: min 8 > max 3; give min <= max
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import optuna

    from loopml.train.algorithms import Algorithm
    from loopml.train.hyperparameters import Hyperparameter

Scaling = Literal["auto", "linear", "log", "reverse-log"]
SCALINGS: tuple[str, ...] = ("auto", "linear", "log", "reverse-log")
_SAGEMAKER_SCALING = {"auto": "auto", "linear": "linear", "logarithmic": "log",
                      "reverselogarithmic": "reverse-log"}
#: how far apart (in orders of magnitude) ``auto`` needs low and high to pick a log scale
#: for a hyperparameter the schema says nothing about
_AUTO_LOG_DECADES = 2.0
#: at most this many points in a grid made from an integer range
MAX_GRID_INTEGERS = 1000


def _scaling(value: Any, name: str) -> str:
    text = str(value).strip().lower().replace("_", "-")
    text = _SAGEMAKER_SCALING.get(text.replace("-", ""), text)
    if text == "reverselog":
        text = "reverse-log"
    if text not in SCALINGS:
        raise InvalidInput(f"scaling {value!r} of {name} is not one of {', '.join(SCALINGS)}")
    return text


def _number(value: Any, name: str, what: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{what} of {name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} of {name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InvalidInput(f"{what} of {name} must be a finite number, got {value!r}")
    return out


@dataclass(frozen=True)
class ParameterRange:
    """Base class of the three kinds of range; ``name`` is the hyperparameter."""

    name: str
    kind: ClassVar[str] = ""

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        """Draw this hyperparameter's value for ``trial`` (through Optuna)."""
        raise NotImplementedError

    @property
    def optuna_name(self) -> str:
        """The parameter name in the Optuna study (differs for reverse-log ranges)."""
        return self.name

    def decode(self, value: Any) -> Any:
        """The hyperparameter value of a value stored in the study under :attr:`optuna_name`."""
        return value

    def to_optuna(self, value: Any) -> tuple[str, Any, optuna.distributions.BaseDistribution] | None:
        """``(optuna name, value as Optuna stores it, distribution)`` of a hyperparameter value,
        or None when the value is outside the range or the range is a single value (not searched)."""
        raise NotImplementedError

    def grid(self) -> list[Any]:
        """The values of this range in a grid search."""
        raise InvalidInput(f"grid search cannot enumerate the continuous range of {self.name}; "
                           f"give it as a list of values (categorical)")

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML form (``type`` names the kind)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for tables: ``0.01..0.3 log``."""
        raise NotImplementedError


@dataclass(frozen=True)
class ContinuousParameter(ParameterRange):
    """A real-valued range ``[low, high]``.

    Parameters
    ----------
    name
        The hyperparameter.
    low, high
        The closed range searched.
    scaling
        ``auto`` (the schema's log hint, else log when the range spans two
        orders of magnitude or more), ``linear``, ``log`` (``low > 0``) or
        ``reverse-log`` (``0 <= low < high < 1``).
    """

    low: float = 0.0
    high: float = 1.0
    scaling: str = "auto"
    #: the scaling ``auto`` resolved to (set by :func:`build_space`)
    resolved: str = field(default="", compare=False)
    kind: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        low = _number(self.low, self.name, "min")
        high = _number(self.high, self.name, "max")
        scaling = _scaling(self.scaling, self.name)
        if low > high:
            raise InvalidInput(f"range of {self.name}: min {_fmt(low)} > max {_fmt(high)}; give min <= max")
        if scaling == "log" and low <= 0:
            raise InvalidInput(f"range of {self.name}: a log scale needs min > 0, got "
                               f"[{_fmt(low)}, {_fmt(high)}]; use scaling linear or a positive min")
        if scaling == "reverse-log" and not (0 <= low < high < 1):
            raise InvalidInput(f"range of {self.name}: reverse-log scaling needs 0 <= min < max < 1, got "
                               f"[{_fmt(low)}, {_fmt(high)}]")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "scaling", scaling)
        if not self.resolved:
            object.__setattr__(self, "resolved", _auto(low, high, None) if scaling == "auto" else scaling)

    @property
    def scaling_used(self) -> str:
        """``linear``, ``log`` or ``reverse-log``: what ``auto`` resolved to."""
        return self.resolved

    @property
    def optuna_name(self) -> str:
        # reverse-log searches 1 - x on a log scale; the study stores that number
        return f"1-{self.name}" if self.resolved == "reverse-log" else self.name

    def suggest(self, trial: optuna.trial.BaseTrial) -> float:
        if self.low == self.high:
            return self.low
        if self.resolved == "reverse-log":
            u = trial.suggest_float(self.optuna_name, 1.0 - self.high, 1.0 - self.low, log=True)
            return min(self.high, max(self.low, 1.0 - u))
        return trial.suggest_float(self.name, self.low, self.high, log=self.resolved == "log")

    def decode(self, value: Any) -> Any:
        return 1.0 - float(value) if self.resolved == "reverse-log" else value

    def to_optuna(self, value: Any) -> tuple[str, Any, optuna.distributions.BaseDistribution] | None:
        from optuna.distributions import FloatDistribution

        if self.low == self.high or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        v = float(value)
        if not self.low <= v <= self.high:
            return None
        if self.resolved == "reverse-log":
            return self.optuna_name, 1.0 - v, FloatDistribution(1.0 - self.high, 1.0 - self.low, log=True)
        return self.name, v, FloatDistribution(self.low, self.high, log=self.resolved == "log")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "min": self.low, "max": self.high,
                "scaling": self.scaling, "resolved": self.resolved}

    def describe(self) -> str:
        return f"{_fmt(self.low)}..{_fmt(self.high)} {self.resolved}"


@dataclass(frozen=True)
class IntegerParameter(ParameterRange):
    """An integer range ``[low, high]`` (``linear``, ``log`` or ``auto`` scaling; no reverse-log)."""

    low: int = 0
    high: int = 1
    scaling: str = "auto"
    resolved: str = field(default="", compare=False)
    kind: ClassVar[str] = "integer"

    def __post_init__(self) -> None:
        low = _number(self.low, self.name, "min")
        high = _number(self.high, self.name, "max")
        if not (low.is_integer() and high.is_integer()):
            raise InvalidInput(f"range of {self.name}: an integer range needs whole numbers, got "
                               f"[{_fmt(low)}, {_fmt(high)}]")
        scaling = _scaling(self.scaling, self.name)
        if low > high:
            raise InvalidInput(f"range of {self.name}: min {_fmt(low)} > max {_fmt(high)}; give min <= max")
        if scaling == "reverse-log":
            raise InvalidInput(f"range of {self.name}: reverse-log scaling is for continuous ranges "
                               "inside [0, 1), not integers")
        if scaling == "log" and low < 1:
            raise InvalidInput(f"range of {self.name}: a log scale needs min >= 1 for integers, got "
                               f"[{int(low)}, {int(high)}]; use scaling linear")
        object.__setattr__(self, "low", int(low))
        object.__setattr__(self, "high", int(high))
        object.__setattr__(self, "scaling", scaling)
        if not self.resolved:
            object.__setattr__(self, "resolved", _auto(low, high, None, integer=True)
                               if scaling == "auto" else scaling)

    @property
    def scaling_used(self) -> str:
        """``linear`` or ``log``."""
        return self.resolved

    def suggest(self, trial: optuna.trial.BaseTrial) -> int:
        if self.low == self.high:
            return self.low
        return trial.suggest_int(self.name, self.low, self.high, log=self.resolved == "log")

    def to_optuna(self, value: Any) -> tuple[str, Any, optuna.distributions.BaseDistribution] | None:
        from optuna.distributions import IntDistribution

        if self.low == self.high or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not float(value).is_integer() or not self.low <= value <= self.high:
            return None
        return self.name, int(value), IntDistribution(self.low, self.high, log=self.resolved == "log")

    def grid(self) -> list[Any]:
        n = self.high - self.low + 1
        if n > MAX_GRID_INTEGERS:
            raise InvalidInput(f"grid search over {self.name} in [{self.low}, {self.high}] would have {n} "
                               f"values; give a list of values instead")
        return list(range(self.low, self.high + 1))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "min": self.low, "max": self.high,
                "scaling": self.scaling, "resolved": self.resolved}

    def describe(self) -> str:
        return f"{self.low}..{self.high} int {self.resolved}"


@dataclass(frozen=True)
class CategoricalParameter(ParameterRange):
    """A list of values to choose from (strings, numbers, booleans or None)."""

    values: tuple[Any, ...] = ()
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        values = self.values
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise InvalidInput(f"values of {self.name} must be a list, got {values!r}")
        values = tuple(values)
        if not values:
            raise InvalidInput(f"categorical range of {self.name} has no values; give at least one")
        for v in values:
            if v is not None and not isinstance(v, (str, int, float, bool)):
                raise InvalidInput(f"value {v!r} of {self.name} must be a string, number, boolean or null")
        if len(set(map(repr, values))) != len(values):
            raise InvalidInput(f"categorical range of {self.name} repeats a value: {list(values)!r}")
        object.__setattr__(self, "values", values)

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if len(self.values) == 1:
            return self.values[0]
        return trial.suggest_categorical(self.name, list(self.values))

    def to_optuna(self, value: Any) -> tuple[str, Any, optuna.distributions.BaseDistribution] | None:
        from optuna.distributions import CategoricalDistribution

        if len(self.values) == 1:
            return None
        for v in self.values:
            if v == value and type(v) is type(value):
                return self.name, v, CategoricalDistribution(list(self.values))
        return None

    def grid(self) -> list[Any]:
        return list(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "values": list(self.values)}

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.values)) + "}"


Range = ContinuousParameter | IntegerParameter | CategoricalParameter


@dataclass(frozen=True)
class SearchSpace:
    """The ranges a tuning job searches and the hyperparameters it fixes.

    Attributes
    ----------
    ranges
        One range per searched hyperparameter, in schema order.
    fixed
        Hyperparameters given one value (passed to every trial).
    """

    ranges: tuple[Range, ...]
    fixed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [r.name for r in self.ranges]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InvalidInput(f"the search space gives {dup[0]} twice")
        both = sorted(set(names) & set(self.fixed))
        if both:
            raise InvalidInput(f"{both[0]} is both searched and fixed; give one or the other")

    @property
    def names(self) -> list[str]:
        """The searched hyperparameters."""
        return [r.name for r in self.ranges]

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Draw every searched hyperparameter for ``trial``."""
        return {r.name: r.suggest(trial) for r in self.ranges}

    def decode(self, optuna_params: Mapping[str, Any]) -> dict[str, Any]:
        """Hyperparameter values from a trial's Optuna params (ranges it lacks are left out)."""
        out: dict[str, Any] = {}
        for r in self.ranges:
            if r.optuna_name in optuna_params:
                out[r.name] = r.decode(optuna_params[r.optuna_name])
        return out

    def grid(self) -> dict[str, list[Any]]:
        """Optuna ``GridSampler``'s search space (by Optuna parameter name)."""
        out: dict[str, list[Any]] = {}
        for r in self.ranges:
            values = r.grid()
            if len(values) > 1:
                out[r.optuna_name] = values
        return out

    def grid_size(self) -> int:
        """How many points the grid has."""
        return math.prod(len(v) for v in self.grid().values())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored with the tuning job."""
        return {"ranges": [r.to_dict() for r in self.ranges], "fixed": dict(self.fixed)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Read :meth:`to_dict`'s form back (no schema checks: they ran when it was made)."""
        return cls(tuple(_range_from_dict(d) for d in data.get("ranges", [])), dict(data.get("fixed") or {}))


def _range_from_dict(d: Mapping[str, Any]) -> Range:
    kind = d.get("type")
    if kind == "continuous":
        return ContinuousParameter(d["name"], d["min"], d["max"], d.get("scaling", "auto"),
                                   resolved=d.get("resolved", ""))
    if kind == "integer":
        return IntegerParameter(d["name"], d["min"], d["max"], d.get("scaling", "auto"),
                                resolved=d.get("resolved", ""))
    if kind == "categorical":
        return CategoricalParameter(d["name"], tuple(d["values"]))
    raise InvalidInput(f"unknown range type {kind!r} for {d.get('name')!r}; use continuous, integer or categorical")


def _auto(low: float, high: float, hint: bool | None, *, integer: bool = False) -> str:
    """What ``auto`` scaling means for a range: the schema's hint, else log for wide positive ranges."""
    if low <= 0 or (integer and low < 1):
        return "linear"
    if hint is not None:
        return "log" if hint else "linear"
    return "log" if math.log10(high / low) >= _AUTO_LOG_DECADES else "linear"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


# -- building spaces from the schema ---------------------------------------------------------------
def _schema(algorithm: str | type[Algorithm]) -> tuple[str, dict[str, Hyperparameter]]:
    from loopml.train.algorithms import get_algorithm

    cls = get_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
    return cls.name, {h.name: h for h in cls.hyperparameters}


def _unknown(name: str, algo: str, schema: Mapping[str, Hyperparameter]) -> InvalidInput:
    close = difflib.get_close_matches(name, list(schema), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InvalidInput(f"unknown hyperparameter {name!r} for {algo}{hint}; known: {', '.join(sorted(schema))}")


def _from_schema(hp: Hyperparameter) -> Range | None:
    """The default range of a tunable hyperparameter (None when it has no finite search range)."""
    if hp.type == "bool":
        return CategoricalParameter(hp.name, (False, True))
    if hp.type == "categorical":
        return CategoricalParameter(hp.name, tuple(hp.choices))
    rng = hp.search_range
    if rng is None:
        return None
    low, high = rng
    if hp.type == "int":
        scaling = "log" if hp.log and low >= 1 else "linear"
        return IntegerParameter(hp.name, int(low), int(high), "auto", resolved=scaling)
    scaling = "log" if hp.log and low > 0 else "linear"
    return ContinuousParameter(hp.name, float(low), float(high), "auto", resolved=scaling)


def default_space(
    algorithm: str | type[Algorithm],
    *,
    fixed: Mapping[str, Any] | None = None,
    problem_type: str | None = None,
    exclude: Sequence[str] = (),
) -> SearchSpace:
    """The algorithm's tunable hyperparameters over their suggested search ranges.

    Parameters
    ----------
    algorithm
        Algorithm name or class.
    fixed
        Hyperparameters the user already set (not searched; kept fixed).
    problem_type
        Leave out hyperparameters meant only for other problem types.
    exclude
        More hyperparameters not to search (e.g. the boosting rounds under Hyperband).

    Returns
    -------
    SearchSpace
    """
    algo, schema = _schema(algorithm)
    fixed = dict(fixed or {})
    ranges: list[Range] = []
    for hp in schema.values():
        if not hp.tunable or hp.name in fixed or hp.name in exclude:
            continue
        if hp.problem_types and problem_type not in hp.problem_types:
            continue
        r = _from_schema(hp)
        if r is not None:
            ranges.append(r)
    if not ranges:
        raise InvalidInput(f"{algo} has no tunable hyperparameters left to search; give ranges (--space FILE)")
    return SearchSpace(tuple(ranges), fixed)


def _check_against_schema(r: Range, hp: Hyperparameter, algo: str) -> Range:
    """Check a user range against the hyperparameter's type and valid range; resolve ``auto``."""
    if isinstance(r, CategoricalParameter):
        values = tuple(hp.validate(v, algo) for v in r.values)
        return CategoricalParameter(r.name, values)
    if hp.type not in ("int", "float"):
        raise InvalidInput(f"{r.name} of {algo} is {hp.type}; give it a list of values, not a range "
                           f"(choices: {hp.range_text()})")
    if hp.type == "int" and isinstance(r, ContinuousParameter):
        if not (float(r.low).is_integer() and float(r.high).is_integer()):
            raise InvalidInput(f"{r.name} of {algo} is an integer; give whole-number bounds, got "
                               f"[{_fmt(r.low)}, {_fmt(r.high)}]")
        r = _integer_range(r.name, r.low, r.high, r.scaling)
    for bound in (r.low, r.high):
        if (hp.low is not None and bound < hp.low) or (hp.high is not None and bound > hp.high):
            raise InvalidInput(f"range of {r.name} [{_fmt(r.low)}, {_fmt(r.high)}] is outside what {algo} "
                               f"accepts: {hp.range_text()}")
    if r.scaling == "auto":
        hint = hp.log if hp.log else None
        if isinstance(r, IntegerParameter):
            return IntegerParameter(r.name, r.low, r.high, "auto", resolved=_auto(r.low, r.high, hint, integer=True))
        return ContinuousParameter(r.name, r.low, r.high, "auto", resolved=_auto(r.low, r.high, hint))
    return r


def _integer_range(name: str, low: Any, high: Any, scaling: str) -> IntegerParameter:
    lo = _number(low, name, "min")
    hi = _number(high, name, "max")
    if not (lo.is_integer() and hi.is_integer()):
        raise InvalidInput(f"range of {name}: an integer range needs whole numbers, got [{_fmt(lo)}, {_fmt(hi)}]")
    return IntegerParameter(name, int(lo), int(hi), scaling)


def _as_range(name: str, spec: Any, hp: Hyperparameter | None) -> Range | tuple[str, Any]:
    """A range from one Python/YAML entry, or ``("fixed", value)``."""
    if isinstance(spec, ParameterRange):
        if spec.name != name:
            raise InvalidInput(f"the range given for {name} is named {spec.name!r}")
        if not isinstance(spec, (ContinuousParameter, IntegerParameter, CategoricalParameter)):
            raise InvalidInput(f"the range of {name} must be continuous, integer or categorical")
        return spec
    if isinstance(spec, tuple):
        if len(spec) not in (2, 3):
            raise InvalidInput(f"range of {name}: give (min, max) or (min, max, scaling), got {spec!r}")
        low, high = spec[0], spec[1]
        scaling = spec[2] if len(spec) == 3 else "auto"
        integer = (hp is not None and hp.type == "int") or (
            hp is None and isinstance(low, int) and isinstance(high, int)
            and not isinstance(low, bool) and not isinstance(high, bool))
        if integer:
            return _integer_range(name, low, high, scaling)
        return ContinuousParameter(name, low, high, scaling)
    if isinstance(spec, list):
        return CategoricalParameter(name, tuple(spec))
    if isinstance(spec, Mapping):
        keys = {str(k).lower(): v for k, v in spec.items()}
        unknown = set(keys) - {"min", "max", "low", "high", "scaling", "type", "values", "choices"}
        if unknown:
            raise InvalidInput(f"range of {name}: unknown key {sorted(unknown)[0]!r}; use min, max, scaling, "
                               f"type (continuous|integer|categorical) or values")
        values = keys.get("values", keys.get("choices"))
        kind = str(keys.get("type", "")).lower()
        if values is not None or kind == "categorical":
            if values is None:
                raise InvalidInput(f"categorical range of {name} needs values: [...]")
            return CategoricalParameter(name, tuple(values) if isinstance(values, list) else values)
        low = keys.get("min", keys.get("low"))
        high = keys.get("max", keys.get("high"))
        if low is None or high is None:
            raise InvalidInput(f"range of {name} needs min and max (or values: [...])")
        scaling = keys.get("scaling", "auto")
        if kind in ("", "auto"):
            kind = "integer" if (hp is not None and hp.type == "int") else "continuous"
        if kind in ("integer", "int"):
            return _integer_range(name, low, high, scaling)
        if kind in ("continuous", "float"):
            return ContinuousParameter(name, low, high, scaling)
        raise InvalidInput(f"range type {kind!r} of {name} is not continuous, integer or categorical")
    return ("fixed", spec)


def build_space(
    algorithm: str | type[Algorithm],
    ranges: Mapping[str, Any] | Sequence[ParameterRange] | SearchSpace,
    *,
    fixed: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """A search space from Python values, checked against the algorithm's schema.

    Parameters
    ----------
    algorithm
        Algorithm name or class.
    ranges
        Hyperparameter name -> a range object, ``(min, max)`` or
        ``(min, max, scaling)``, a list of values (categorical), a mapping
        (``{"min": .., "max": .., "scaling": ..}``, as in YAML) or a single
        value (fixed); or a sequence of range objects.
    fixed
        Hyperparameters fixed elsewhere (the estimator's); not searched.

    Returns
    -------
    SearchSpace

    Raises
    ------
    InvalidInput
        An unknown hyperparameter, ``min > max``, a bad scaling, values the
        algorithm does not accept.
    """
    algo, schema = _schema(algorithm)
    if isinstance(ranges, SearchSpace):
        items: list[tuple[str, Any]] = [(r.name, r) for r in ranges.ranges] + list(ranges.fixed.items())
    elif isinstance(ranges, Mapping):
        items = [(str(k), v) for k, v in ranges.items()]
    elif isinstance(ranges, Sequence) and not isinstance(ranges, (str, bytes)):
        items = []
        for r in ranges:
            if not isinstance(r, ParameterRange):
                raise InvalidInput(f"ranges must be range objects or a mapping name -> range, got {r!r}")
            items.append((r.name, r))
    else:
        raise InvalidInput(f"ranges must be a mapping name -> range or a list of ranges, got {type(ranges).__name__}")
    out_ranges: list[Range] = []
    out_fixed: dict[str, Any] = dict(fixed or {})
    for name, spec in items:
        hp = schema.get(name)
        if hp is None:
            raise _unknown(name, algo, schema)
        got = _as_range(name, spec, hp)
        if isinstance(got, tuple):
            out_fixed[name] = hp.validate(got[1], algo)
            continue
        out_ranges.append(_check_against_schema(got, hp, algo))
    searched = {r.name for r in out_ranges}
    for name in list(out_fixed):
        if name in searched and fixed and name in fixed:
            del out_fixed[name]  # the space searches what the estimator set as a default
    order = list(schema)
    out_ranges.sort(key=lambda r: order.index(r.name))
    if not out_ranges:
        raise InvalidInput("the search space has no ranges: give at least one hyperparameter to search")
    return SearchSpace(tuple(out_ranges), out_fixed)


def _sagemaker_items(doc: Mapping[str, Any]) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, kind in (("ContinuousParameterRanges", "continuous"), ("IntegerParameterRanges", "integer")):
        for r in doc.get(key) or []:
            try:
                items.append((str(r["Name"]), {"min": r["MinValue"], "max": r["MaxValue"], "type": kind,
                                                "scaling": r.get("ScalingType", "Auto")}))
            except (KeyError, TypeError):
                raise InvalidInput(f"each of {key} needs Name, MinValue and MaxValue, got {r!r}") from None
    for r in doc.get("CategoricalParameterRanges") or []:
        try:
            items.append((str(r["Name"]), {"values": list(r["Values"])}))
        except (KeyError, TypeError):
            raise InvalidInput(f"each of CategoricalParameterRanges needs Name and Values, got {r!r}") from None
    for k, v in dict(doc.get("StaticHyperParameters") or {}).items():
        items.append((str(k), v))
    return items


_SAGEMAKER_KEYS = ("ContinuousParameterRanges", "IntegerParameterRanges", "CategoricalParameterRanges",
                   "StaticHyperParameters")


def load_space(
    source: str | os.PathLike[str] | Mapping[str, Any],
    algorithm: str | type[Algorithm],
    *,
    fixed: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """Read a search space from a YAML file (or its parsed mapping) and check it.

    Parameters
    ----------
    source
        Path of a YAML file, or the mapping it holds. Either one entry per
        hyperparameter (``name: {min, max, scaling}``, ``name: [values]``,
        ``name: value``), optionally under a ``parameters:`` key, or the
        SageMaker ``ParameterRanges`` form.
    algorithm
        Algorithm name or class.
    fixed
        Hyperparameters fixed elsewhere.

    Returns
    -------
    SearchSpace
    """
    if isinstance(source, Mapping):
        doc: Any = source
        where = "the search space"
    else:
        import yaml

        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"search space file {str(path)!r} does not exist")
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise InvalidInput(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
        where = str(path)
    if not isinstance(doc, Mapping) or not doc:
        raise InvalidInput(f"{where} must be a mapping of hyperparameter -> range, e.g. 'eta: {{min: 0.01, max: 0.3}}'")
    if any(k in doc for k in _SAGEMAKER_KEYS):
        items = _sagemaker_items(doc)
    else:
        body = doc.get("parameters", doc) if isinstance(doc.get("parameters"), Mapping) else doc
        items = [(str(k), v) for k, v in body.items()]
    # YAML flow sequences arrive as lists (categorical); a mapping per range
    return build_space(algorithm, dict(items), fixed=fixed)


__all__ = [
    "SCALINGS",
    "CategoricalParameter",
    "ContinuousParameter",
    "IntegerParameter",
    "ParameterRange",
    "Range",
    "Scaling",
    "SearchSpace",
    "build_space",
    "default_space",
    "load_space",
]
