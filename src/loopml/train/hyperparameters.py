"""Typed hyperparameter schemas: what an algorithm accepts, its ranges and defaults.

Each algorithm declares a tuple of :class:`Hyperparameter`. The schema
validates user values (with messages that name the value and the range),
parses ``--hp k=v`` strings from the CLI, and tells the tuner what it may
search: the type, the valid range, a suggested search range and whether to
search on a log scale.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from loopml.errors import InvalidInput

HyperparameterType = Literal["int", "float", "categorical", "bool", "str"]
_TYPES = ("int", "float", "categorical", "bool", "str")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of an algorithm.

    Parameters
    ----------
    name
        The name users pass (``max_depth``).
    type
        ``int``, ``float``, ``categorical``, ``bool`` or ``str`` (free text such as a
        path or a model id; never tuned).
    default
        The value used when the user gives none.
    low, high
        The valid closed range of an ``int`` or ``float``.
    choices
        The allowed values of a ``categorical``.
    log
        Search it on a log scale (a hint for the tuner).
    description
        One line for ``loopml algorithms show``.
    nullable
        ``None`` is allowed (it means "no limit" or "let the library decide").
    tunable
        Part of the tuner's default search space.
    search
        The tuner's default (low, high) for numbers when narrower than the
        valid range (e.g. ``num_round`` is valid up to 10,000 but searched in 50..1000).
    problem_types
        Only meaningful for these problem types (empty: all).

    Examples
    --------
    >>> hp = Hyperparameter("max_depth", "int", 6, low=1, high=20)
    >>> hp.validate(4, "xgboost")
    4
    >>> hp.parse("8")
    8
    """

    name: str
    type: HyperparameterType
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    log: bool = False
    description: str = ""
    nullable: bool = False
    tunable: bool = True
    search: tuple[float, float] | None = None
    problem_types: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"hyperparameter {self.name!r}: type must be one of {_TYPES}, got {self.type!r}")
        if self.type == "str" and self.tunable:
            raise ValueError(f"str hyperparameter {self.name!r} cannot be tunable: declare tunable=False")
        if self.type == "categorical" and not self.choices:
            raise ValueError(f"categorical hyperparameter {self.name!r} needs choices")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"hyperparameter {self.name!r}: low > high")
        if self.log:
            rng = self.search_range
            if rng is None or rng[0] <= 0:
                raise ValueError(f"hyperparameter {self.name!r}: a log scale needs a positive search range")
        if self.default is not None or not self.nullable:
            self.validate(self.default, "<schema>")

    @property
    def search_range(self) -> tuple[float, float] | None:
        """The (low, high) the tuner searches by default (numbers only)."""
        if self.type not in ("int", "float"):
            return None
        if self.search is not None:
            return self.search
        if self.low is None or self.high is None:
            return None
        return (self.low, self.high)

    def range_text(self) -> str:
        """``[1, 20]``, ``{'hist', 'approx'}`` or ``true/false``."""
        if self.type == "bool":
            return "true/false"
        if self.type == "str":
            return "a non-empty string"
        if self.type == "categorical":
            return "{" + ", ".join(repr(c) for c in self.choices) + "}"
        lo = "-inf" if self.low is None else _num(self.low)
        hi = "inf" if self.high is None else _num(self.high)
        return f"[{lo}, {hi}]"

    # -- checking and parsing ----------------------------------------------------------------
    def validate(self, value: Any, algorithm: str) -> Any:
        """Return ``value`` as this hyperparameter's type, or raise InvalidInput saying why not."""
        if value is None:
            if self.nullable:
                return None
            raise InvalidInput(f"{self.name} of {algorithm} cannot be None; give a value in {self.range_text()}")
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if hasattr(value, "dtype") and str(getattr(value, "dtype", "")) == "bool":
                return bool(value)
            raise InvalidInput(f"{self.name}={value!r} for {algorithm} must be true or false")
        if self.type == "str":
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{self.name}={value!r} for {algorithm} must be {self.range_text()}")
            return value.strip()
        if self.type == "categorical":
            for c in self.choices:
                if value == c and type(value) is type(c):
                    return c
            for c in self.choices:  # 1 and 1.0, numpy scalars
                if not isinstance(value, bool) and value == c:
                    return c
            raise InvalidInput(
                f"{self.name}={value!r} is not a choice for {algorithm}; choose one of {self.range_text()}"
            )
        if isinstance(value, bool) or (not isinstance(value, (int, float)) and not _is_number(value)):
            raise InvalidInput(f"{self.name}={value!r} for {algorithm} must be {_article(self.type)}")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInput(f"{self.name}={value!r} for {algorithm} must be a finite number")
        if self.type == "int":
            if not number.is_integer():
                raise InvalidInput(f"{self.name}={value!r} for {algorithm} must be a whole number")
            out: int | float = int(number)
        else:
            out = number
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise InvalidInput(f"{self.name}={_num(out)} is out of range {self.range_text()} for {algorithm}")
        return out

    def parse(self, text: str) -> Any:
        """Parse a command-line string (``"6"``, ``"0.1"``, ``"true"``, ``"hist"``, ``"none"``)."""
        t = text.strip()
        if self.nullable and t.lower() in _NONE:
            return None
        if self.type == "str":
            return t
        if self.type == "bool":
            if t.lower() in _TRUE:
                return True
            if t.lower() in _FALSE:
                return False
            return t
        if self.type == "categorical":
            for c in self.choices:
                if str(c) == t or (isinstance(c, str) and c.lower() == t.lower()):
                    return c
            return t
        try:
            return int(t) if self.type == "int" and _looks_int(t) else float(t)
        except ValueError:
            return t

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the tuner and ``loopml algorithms show --json`` read."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "choices": list(self.choices) if self.choices else None,
            "log": self.log,
            "nullable": self.nullable,
            "tunable": self.tunable,
            "search": list(self.search_range) if self.search_range else None,
            "problem_types": list(self.problem_types),
            "description": self.description,
        }


def validate_hyperparameters(
    schema: Iterable[Hyperparameter],
    values: Mapping[str, Any] | None,
    algorithm: str,
    *,
    parse_strings: bool = False,
) -> dict[str, Any]:
    """Check ``values`` against ``schema`` and fill in the defaults.

    Parameters
    ----------
    schema
        The algorithm's hyperparameters.
    values
        User values; unknown names are refused (with a "did you mean").
    algorithm
        The algorithm's name, for messages.
    parse_strings
        Parse string values first (``--hp k=v`` from the command line).

    Returns
    -------
    dict
        Every hyperparameter of the schema, in schema order, with a valid value.
    """
    by_name = {h.name: h for h in schema}
    values = dict(values or {})
    for key in values:
        if key not in by_name:
            close = difflib.get_close_matches(str(key), list(by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(by_name)) or "none"
            raise InvalidInput(f"unknown hyperparameter {key!r} for {algorithm}{hint}; known: {known}")
    out: dict[str, Any] = {}
    for name, hp in by_name.items():
        if name in values:
            v = values[name]
            if parse_strings and isinstance(v, str):
                v = hp.parse(v)
            out[name] = hp.validate(v, algorithm)
        else:
            out[name] = hp.default
    return out


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Split ``["max_depth=4", "eta=0.1"]`` into a dict of strings (CLI ``--hp``)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--hp {item!r} must look like NAME=VALUE, e.g. --hp max_depth=4")
        out[key.strip()] = value
    return out


def _is_number(v: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(v, (np.integer, np.floating))


def _looks_int(t: str) -> bool:
    return t.lstrip("+-").isdigit()


def _num(v: float | int) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _article(t: str) -> str:
    return "an integer" if t == "int" else "a number"


__all__ = ["Hyperparameter", "HyperparameterType", "parse_assignments", "validate_hyperparameters"]
