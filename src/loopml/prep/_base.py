"""The step contract shared by every recipe step, and the helpers steps use.

A step follows scikit-learn's contract: the constructor only stores
parameters (a dataclass, so the parameters are data that round-trips to
YAML), :meth:`Step.fit` learns state into attributes ending with ``_`` and
returns the step, :meth:`Step.transform` maps a DataFrame. On top of that,
:meth:`Step.transform_one` maps one record (a dict) from the same learned
state in plain Python, which is the serving path: it must give exactly what
:meth:`Step.transform` gives for that row.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
import types
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput

#: the category that stands for a missing value in categorical encoders
MISSING = "__missing__"
NAN = math.nan

Record = dict[str, Any]
Report = dict[str, Any]
S = TypeVar("S", bound="Step")


class StepError(InvalidInput):
    """A step refused its input; the recipe prefixes which step it was."""


class RowDropped(InvalidInput):
    """:meth:`FittedRecipe.transform_one`: a filtering step removed the record."""

    code = "RowDropped"


# -- missing values and value kinds -------------------------------------------------
def is_missing(v: Any) -> bool:
    """True for None, NaN, NaT and pd.NA (the missing values of a record)."""
    if v is None:
        return True
    try:
        return bool(v != v)
    except TypeError:  # pd.NA
        return True


def column_kind(s: pd.Series) -> str:
    """``numeric``, ``bool``, ``datetime``, ``text``, ``category`` or ``other``."""
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_numeric_dtype(dt):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
    if isinstance(dt, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt):
        return "text"
    return "other"


def describe_kind(s: pd.Series) -> str:
    kind = column_kind(s)
    words = {"text": "text", "datetime": "dates/times", "category": "categories",
             "other": "values", "numeric": "numbers", "bool": "booleans"}
    return f"{words[kind]} ({s.dtype})"


def num_array(s: pd.Series) -> np.ndarray:
    """A numeric or boolean column as float64 (missing -> NaN)."""
    return np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def num_value(v: Any, column: str, kind: str) -> float:
    """One record value as a float (the row-path twin of :func:`num_array`)."""
    if type(v) is float:
        return v
    if v is None:
        return NAN
    if isinstance(v, (str, bytes)):
        raise StepError(
            f"column {column!r} got the text {v!r}, but {kind} needs a number; "
            "send a number (or null), or add a coerce_numeric step"
        )
    try:
        return float(v)
    except TypeError:
        if is_missing(v):
            return NAN
        raise StepError(f"column {column!r} got {v!r}, but {kind} needs a number") from None


def cat_array(s: pd.Series) -> np.ndarray:
    """A column as categories: an object array of str, missing -> :data:`MISSING`."""
    miss = s.isna().to_numpy()
    if column_kind(s) == "text" and s.dtype != object:
        vals = s.to_numpy(dtype=object, na_value=MISSING)
    else:
        vals = np.array([_cat_str(v) for v in s.tolist()], dtype=object)
    vals[miss] = MISSING
    return vals


def _cat_str(v: Any) -> str:
    # 3.0 and 3 are one category: JSON does not keep ints and floats apart
    if type(v) is float and v.is_integer():
        return str(int(v))
    return str(v)


def cat_value(v: Any) -> str:
    """One record value as a category (the row-path twin of :func:`cat_array`)."""
    if type(v) is str:
        return v
    if is_missing(v):
        return MISSING
    return _cat_str(v)


def to_timestamp(v: Any, column: str, kind: str) -> pd.Timestamp | None:
    """A record value as a Timestamp (ISO strings are parsed); None if missing."""
    if type(v) is pd.Timestamp:
        return v
    if is_missing(v):
        return None
    if isinstance(v, (str, np.datetime64)) or hasattr(v, "year"):
        try:
            ts = pd.Timestamp(v)
        except (ValueError, TypeError) as e:
            raise StepError(f"column {column!r} got {v!r}, which {kind} cannot read as a date/time") from e
        return None if ts is pd.NaT else ts
    raise StepError(f"column {column!r} got {v!r}, but {kind} needs a date/time")


# -- columns ----------------------------------------------------------------------------
def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def unknown_column(name: str, available: Sequence[str]) -> StepError:
    close = difflib.get_close_matches(name, list(available), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return StepError(f"unknown column {name!r}{hint}; the data has {_listing(list(available))}")


def resolve_columns(
    patterns: Sequence[str], available: Sequence[str], *, exclude: Sequence[str] = ()
) -> list[str]:
    """Expand names and glob patterns (``num_*``) against ``available``, in order."""
    out: list[str] = []
    for p in patterns:
        if any(ch in p for ch in "*?["):
            matched = [c for c in available if fnmatch.fnmatchcase(c, p) and c not in exclude]
            if not matched:
                raise StepError(f"column pattern {p!r} matches no column; the data has {_listing(list(available))}")
        else:
            if p not in available:
                raise unknown_column(p, available)
            matched = [p]
        out.extend(c for c in matched if c not in out)
    return out


def check_present(df: pd.DataFrame, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in df.columns:
            raise StepError(f"the data has no column {c!r}; the recipe was fitted on data that had it")


def check_new_names(df: pd.DataFrame, names: Sequence[str], replaced: Sequence[str] = ()) -> None:
    clash = [n for n in names if n in df.columns and n not in replaced]
    if clash:
        raise StepError(
            f"output column {clash[0]!r} already exists in the data; rename it or set "
            "the step's name/prefix parameter"
        )


# -- parameters ---------------------------------------------------------------------------
def _describe_type(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        parts = [_describe_type(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"a list of {_describe_type(args[0])}s" if args else "a list"
    if origin is dict:
        return f"a mapping of names to {_describe_type(args[1])}" if args else "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` checked (and lightly normalised) against ``tp``; raise ValueError."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a)
            except ValueError:
                continue
        raise ValueError
    if origin is Literal:
        if value in args:
            return value
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    if origin is list:
        if isinstance(value, str) and args and args[0] is str:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError
        return [_coerce(v, args[0]) for v in value] if args else list(value)
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ValueError
        return {k: _coerce(v, args[1]) for k, v in value.items()} if args else dict(value)
    raise ValueError


_HINTS: dict[type, dict[str, Any]] = {}


def _param_types(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        module = __import__(cls.__module__, fromlist=["_"])
        all_hints = get_type_hints(cls, vars(module))
        hints = _HINTS[cls] = {f.name: all_hints[f.name] for f in dataclasses.fields(cls)}
    return hints


# -- the step base class ------------------------------------------------------------------
STEPS: dict[str, type[Step]] = {}


@dataclasses.dataclass
class Step:
    """Base class of recipe steps (see the module docstring for the contract).

    Subclasses are dataclasses whose fields are the step's parameters; they set
    :attr:`kind` (the name used in YAML), and list their learned attributes in
    :attr:`state_attrs` so a fitted recipe can be saved as JSON.
    """

    #: the step's name in a recipe (``standardize``)
    kind: ClassVar[str] = ""
    #: a row's output depends only on that row and the learned state (so data can stream)
    row_wise: ClassVar[bool] = True
    #: fit needs the recipe's target column
    needs_target: ClassVar[bool] = False
    #: learned attributes (ending with ``_``) saved with a fitted recipe; JSON values only
    state_attrs: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind:
            STEPS[kind] = cls

    def __post_init__(self) -> None:
        for name, tp in _param_types(type(self)).items():
            value = getattr(self, name)
            try:
                setattr(self, name, _coerce(value, tp))
            except ValueError:
                raise InvalidInput(
                    f"{self.kind}: parameter {name!r} must be {_describe_type(tp)}, got {value!r}"
                ) from None
        self.validate()

    def validate(self) -> None:
        """Check the parameters together (called on construction); raise InvalidInput."""

    # -- parameters as data ------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        """The names of the step's parameters."""
        return [f.name for f in dataclasses.fields(cls)]

    def get_params(self) -> dict[str, Any]:
        """Every parameter, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., <parameters that differ from their defaults>}``."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                out[f.name] = value
                continue
            if value != default:
                out[f.name] = value
        return out

    def clone(self: S) -> S:
        """A new, unfitted step with the same parameters."""
        return type(self)(**{k: _copy(v) for k, v in self.get_params().items()})

    # -- the contract -----------------------------------------------------------------------
    def fit(self: S, df: pd.DataFrame, y: pd.Series | None = None) -> S:
        """Learn the step's state from ``df`` (``y`` is the target, if the recipe has one)."""
        self._fit(df, y)
        self._prepare()
        return self

    def fit_transform(
        self, df: pd.DataFrame, y: pd.Series | None = None, report: Report | None = None
    ) -> pd.DataFrame:
        """Fit, then transform the fitting data (target encoding overrides this: out-of-fold)."""
        return self.fit(df, y).transform(df, report)

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        """Map a DataFrame (not modified in place); ``report`` collects counts (coerced, dropped)."""
        raise NotImplementedError

    def transform_one(self, rec: Record) -> None:
        """Map one record in place; must equal :meth:`transform` on that row."""
        raise NotImplementedError

    def input_columns(self) -> list[str]:
        """Columns this fitted step reads when transforming."""
        return list(getattr(self, "columns_", []))

    # -- learned state --------------------------------------------------------------------------
    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        """Learn the state (set the attributes named in :attr:`state_attrs`)."""

    def _prepare(self) -> None:
        """Build fast lookups for :meth:`transform_one` from the learned state."""

    def get_state(self) -> dict[str, Any]:
        """The learned state as JSON-ready values."""
        return {a: _jsonable(getattr(self, a)) for a in self.state_attrs}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore learned state saved by :meth:`get_state`."""
        missing = [a for a in self.state_attrs if a not in state]
        if missing:
            raise InvalidInput(f"{self.kind}: the saved state lacks {missing}; re-fit the recipe")
        for a in self.state_attrs:
            setattr(self, a, state[a])
        self._prepare()

    def _columns(self, df: pd.DataFrame, y: pd.Series | None, patterns: Sequence[str]) -> list[str]:
        exclude = [str(y.name)] if y is not None and y.name is not None else []
        return resolve_columns(patterns, [str(c) for c in df.columns], exclude=exclude)

    def _require_numeric(self, df: pd.DataFrame, columns: Sequence[str]) -> None:
        for c in columns:
            if column_kind(df[c]) not in ("numeric", "bool"):
                raise StepError(
                    f"column {c!r} holds {describe_kind(df[c])}, but {self.kind} needs numbers; "
                    "convert it first (coerce_numeric, cast) or encode it (one_hot, ordinal)"
                )

    def _require_datetime(self, df: pd.DataFrame, columns: Sequence[str]) -> None:
        for c in columns:
            if column_kind(df[c]) != "datetime":
                raise StepError(
                    f"column {c!r} holds {describe_kind(df[c])}, but {self.kind} needs dates/times; "
                    "add a parse_dates step before it"
                )

    def _require_text(self, df: pd.DataFrame, columns: Sequence[str]) -> None:
        for c in columns:
            if column_kind(df[c]) not in ("text", "category"):
                raise StepError(f"column {c!r} holds {describe_kind(df[c])}, but {self.kind} needs text")


def _copy(v: Any) -> Any:
    if isinstance(v, list):
        return [_copy(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def new_columns(df: pd.DataFrame, data: Mapping[str, np.ndarray | pd.Series | list[Any]]) -> pd.DataFrame:
    """``df`` with columns set or added (new ones at the end) in one go."""
    existing = {k: v for k, v in data.items() if k in df.columns}
    added = {k: v for k, v in data.items() if k not in df.columns}
    out = df.copy(deep=False)
    for k, v in existing.items():
        out[k] = v.to_numpy() if isinstance(v, pd.Series) else v
    if added:
        extra = pd.DataFrame(
            {k: (v.to_numpy() if isinstance(v, pd.Series) else v) for k, v in added.items()},
            index=out.index,
        )
        out = pd.concat([out, extra], axis=1)
    return out


def add_report(report: Report | None, **counts: Any) -> None:
    """Add counts to a step's report (a dict the recipe passes in, or None)."""
    if report is None:
        return
    for k, v in counts.items():
        if v:  # zero counts say nothing
            report[k] = report.get(k, 0) + v if isinstance(v, (int, float)) else v


__all__ = [
    "MISSING",
    "STEPS",
    "Record",
    "RowDropped",
    "Step",
    "StepError",
    "cat_array",
    "cat_value",
    "column_kind",
    "is_missing",
    "num_array",
    "num_value",
    "resolve_columns",
]


# -- times ------------------------------------------------------------------------------------
NS_PER_DAY = 86_400_000_000_000


def datetime_ns(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A datetime column as int64 nanoseconds since the epoch (UTC) and its missing mask."""
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = s.to_numpy(dtype="datetime64[ns]")
    return arr.view(np.int64), np.isnat(arr)


def time_array(s: pd.Series, column: str, kind: str) -> tuple[np.ndarray, bool]:
    """The time column of a point-in-time step: int64 ns (datetimes) or float64 (numbers).

    Returns the values and whether they are datetimes; refuses missing times.
    """
    k = column_kind(s)
    if k == "datetime":
        arr, miss = datetime_ns(s)
        is_dt = True
    elif k in ("numeric", "bool"):
        arr = num_array(s)
        miss = np.isnan(arr)
        is_dt = False
    else:
        raise StepError(
            f"column {column!r} holds {describe_kind(s)}, but {kind} orders rows by it and needs "
            "dates/times or numbers; add a parse_dates step before it"
        )
    if miss.any():
        raise StepError(
            f"column {column!r} has {int(miss.sum())} missing value(s); {kind} needs a time on every row"
        )
    return arr, is_dt


def time_value(v: Any, is_dt: bool, column: str, kind: str) -> int | float:
    """One record's time, as :func:`time_array` gives it."""
    if is_dt:
        ts = to_timestamp(v, column, kind)
        if ts is None:
            raise StepError(f"column {column!r} is missing; {kind} needs a time on every record")
        return int(ts.value)
    x = num_value(v, column, kind)
    if x != x:
        raise StepError(f"column {column!r} is missing; {kind} needs a time on every record")
    return x
