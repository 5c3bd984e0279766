"""Validation on arrival: expectations that every ingested row must meet.

An expectations file is YAML. ``columns`` maps a column name to its rules;
``row_count`` bounds the number of rows that pass (checked once, at the end)::

    row_count: {min: 1, max: 1000000}
    columns:
      id:      {type: int, nullable: false, unique: true}
      age:     {type: int, min: 0, max: 120}
      score:   {type: float}
      country: {allowed: [US, DE, FR]}
      email:   {type: string, regex: '^[^@]+@[^@]+$'}
      signup:  {type: timestamp}
      active:  {type: bool}

Column rules:

``type``
    ``int``, ``float``, ``string``, ``bool``, ``timestamp`` or ``date``
    (Arrow int64, float64, string, bool, timestamp[us], date32). Values are
    converted, so a CSV column read as text comes out typed; a value that does
    not convert breaks ``"<col>: type <type>"``.
``nullable``
    ``false``: a missing value breaks ``"<col>: not null"``.
``min``, ``max``
    Inclusive bounds (numbers, or dates/strings for temporal and text columns).
``allowed``
    A list of the permitted values (nulls pass unless ``nullable: false``).
``regex``
    A pattern (RE2 syntax) the text of each value must contain; anchor it
    with ``^...$`` to match the whole value.
``unique``
    ``true``: a value seen earlier in the same run, in any batch, breaks
    ``"<col>: unique"`` (the first occurrence passes; nulls are not compared).

A row that breaks any rule goes to the version's quarantine with the original
values, its source row number (``_row``) and every rule it broke (``_rule``,
e.g. ``"age: max 120; email: regex"``); the other rows are ingested.

Examples
--------
>>> import pyarrow as pa
>>> exp = Expectations.from_dict({"columns": {"age": {"type": "int", "max": 120}}})
>>> good, bad = exp.validator().check(pa.record_batch({"age": ["31", "150", "x"]}))
>>> good.column("age").to_pylist()
[31]
>>> bad.column("_rule").to_pylist()
['age: max 120', 'age: type int']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from loopml.data.catalog import QUARANTINE_ROW, QUARANTINE_RULE
from loopml.errors import InvalidInput, ValidationFailed

log = logging.getLogger(__name__)

TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(), "float": pa.float64(), "string": pa.string(),
    "bool": pa.bool_(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
}
RULES = ("type", "nullable", "min", "max", "allowed", "regex", "unique")
_TOP_KEYS = ("row_count", "columns")
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)

Bound = int | float | str
Value = int | float | str | bool


@dataclass(frozen=True)
class ColumnExpectation:
    """The rules for one column (see the module docstring for their meaning)."""

    name: str
    type: str | None = None
    nullable: bool = True
    min: Bound | None = None
    max: Bound | None = None
    allowed: tuple[Value, ...] | None = None
    regex: str | None = None
    unique: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The rules that are set, as in the YAML file."""
        d: dict[str, Any] = {}
        if self.type is not None:
            d["type"] = self.type
        if not self.nullable:
            d["nullable"] = False
        for key in ("min", "max", "regex"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.allowed is not None:
            d["allowed"] = list(self.allowed)
        if self.unique:
            d["unique"] = True
        return d


@dataclass(frozen=True)
class RowCount:
    """Inclusive bounds on the number of rows that pass the column rules."""

    min: int | None = None
    max: int | None = None


@dataclass(frozen=True)
class Expectations:
    """What the data must look like on arrival: column rules and row-count bounds.

    Build one with :meth:`from_file` or :meth:`from_dict`; each ingest run
    checks its batches with a fresh :meth:`validator`.
    """

    columns: tuple[ColumnExpectation, ...] = ()
    row_count: RowCount = RowCount()
    #: where the expectations came from (a file name), used in error messages
    source: str = field(default="expectations", compare=False)

    @classmethod
    def from_file(cls, path: str | Path) -> Expectations:
        """Read an expectations YAML file.

        Raises
        ------
        InvalidInput
            The file is missing, is not valid YAML, or holds an invalid rule.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise InvalidInput(f"expectations file not found: {p}; check the path") from e
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"cannot read expectations file {p}: {e}") from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidInput(f"{p}: not valid YAML: {e}") from e
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "expectations") -> Expectations:
        """Build from the parsed YAML form (``{"row_count": ..., "columns": ...}``).

        Raises
        ------
        InvalidInput
            A key, rule, type or value is not allowed; the message names it.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput(
                f"{source}: expected a mapping with keys {', '.join(_TOP_KEYS)}, "
                f"got {type(data).__name__}"
            )
        unknown = [k for k in data if k not in _TOP_KEYS]
        if unknown:
            raise InvalidInput(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(_TOP_KEYS)}")
        cols = data.get("columns") or {}
        if not isinstance(cols, Mapping):
            raise InvalidInput(
                f"{source}: 'columns' must map column names to rules, got {type(cols).__name__}"
            )
        return cls(
            columns=tuple(_parse_column(str(n), spec, source) for n, spec in cols.items()),
            row_count=_parse_row_count(data.get("row_count"), source),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML form; ``Expectations.from_dict(e.to_dict()) == e``."""
        d: dict[str, Any] = {}
        rc = {k: v for k, v in (("min", self.row_count.min), ("max", self.row_count.max)) if v is not None}
        if rc:
            d["row_count"] = rc
        d["columns"] = {c.name: c.to_dict() for c in self.columns}
        return d

    def validator(self) -> Validator:
        """A fresh validator for one run (it remembers values for ``unique``)."""
        return Validator(self)


class Validator:
    """Checks the batches of one ingest run against :class:`Expectations`.

    Parameters
    ----------
    expectations
        The rules to apply.
    """

    def __init__(self, expectations: Expectations) -> None:
        self.expectations = expectations
        self.failures: dict[str, int] = {}
        self.rows_checked = 0
        self._seen: dict[str, set[Any]] = {c.name: set() for c in expectations.columns if c.unique}
        self._allowed = {c.name: _value_set(c) for c in expectations.columns if c.allowed is not None}

    def check(
        self, batch: pa.RecordBatch, first_row: int = 0
    ) -> tuple[pa.RecordBatch, pa.RecordBatch | None]:
        """Split ``batch`` into the rows that pass and the rows that break a rule.

        Parameters
        ----------
        batch
            Rows as read from the source.
        first_row
            Source row number of the batch's first row (for ``_row``).

        Returns
        -------
        good, bad
            ``good``: the passing rows, typed columns converted. ``bad``: None
            if every row passed, else the failing rows as read plus ``_row``
            (int64) and ``_rule`` (every rule broken, joined by ``"; "``).
        """
        exp = self.expectations
        names = batch.schema.names
        missing = [c.name for c in exp.columns if c.name not in names]
        if missing:
            raise InvalidInput(
                f"column {missing[0]!r} named in {exp.source} is not in the data; the columns "
                f"are {names}. Fix the expectations file or the data"
            )
        self.rows_checked += batch.num_rows
        arrays = list(batch.columns)
        broken: list[tuple[str, pa.Array]] = []
        for spec in exp.columns:
            i = names.index(spec.name)
            arrays[i], fails = _check_column(
                spec, arrays[i], self._allowed.get(spec.name), self._seen.get(spec.name), exp.source
            )
            broken.extend((rule, mask) for rule, mask in fails if mask.true_count)
        typed = pa.RecordBatch.from_arrays(arrays, names=names)
        if not broken:
            return typed, None
        any_bad = broken[0][1]
        for _, mask in broken[1:]:
            any_bad = pc.or_(any_bad, mask)
        for rule, mask in broken:
            self.failures[rule] = self.failures.get(rule, 0) + mask.true_count
        rows = pc.add(pc.cast(pc.indices_nonzero(any_bad), pa.int64()), first_row)
        pieces = [pc.if_else(mask.filter(any_bad), rule, None) for rule, mask in broken]
        rules = pc.binary_join_element_wise(*pieces, "; ", null_handling="skip")
        bad = batch.filter(any_bad)
        bad = pa.RecordBatch.from_arrays(
            [*bad.columns, rows, rules], names=[*names, QUARANTINE_ROW, QUARANTINE_RULE]
        )
        return typed.filter(pc.invert(any_bad)), bad

    def finish(self, rows_ingested: int) -> dict[str, Any]:
        """Check the row-count bounds and return the run's validation summary.

        Parameters
        ----------
        rows_ingested
            Rows that passed (and were written).

        Raises
        ------
        ValidationFailed
            ``rows_ingested`` is outside ``row_count``.
        """
        exp = self.expectations
        lo, hi = exp.row_count.min, exp.row_count.max
        failed = self.rows_checked - rows_ingested
        if lo is not None and rows_ingested < lo:
            raise ValidationFailed(
                f"only {rows_ingested} rows passed the expectations ({failed} broke a rule), but "
                f"row_count.min in {exp.source} is {lo}; check that the source is complete, or "
                "lower row_count.min"
            )
        if hi is not None and rows_ingested > hi:
            raise ValidationFailed(
                f"{rows_ingested} rows passed the expectations, more than row_count.max {hi} in "
                f"{exp.source}; check the source for duplicated or unexpected data, or raise "
                "row_count.max"
            )
        return {
            "expectations": exp.to_dict(),
            "failures": dict(self.failures),
            "rows_checked": self.rows_checked,
        }


# -- checking one column ----------------------------------------------------------


def _check_column(
    spec: ColumnExpectation, col: pa.Array, allowed: pa.Array | None, seen: set[Any] | None,
    source: str,
) -> tuple[pa.Array, list[tuple[str, pa.Array]]]:
    """Return the (typed) column and a ``(rule, failing-rows mask)`` per rule."""
    name = spec.name
    fails: list[tuple[str, pa.Array]] = []
    values = col
    if spec.type is not None:
        values, bad_type = _convert(col, TYPES[spec.type])
        if bad_type is not None:
            fails.append((f"{name}: type {spec.type}", bad_type))
    if not spec.nullable:
        fails.append((f"{name}: not null", pc.is_null(col)))
    for key, op in (("min", pc.less), ("max", pc.greater)):
        bound = getattr(spec, key)
        if bound is not None:
            fails.append((f"{name}: {key} {bound}", _out_of_bound(values, bound, op, spec, key, source)))
    if allowed is not None:
        view = values
        try:
            allowed = pc.cast(allowed, view.type)
        except _CAST_ERRORS:
            view, allowed = _as_text(view, spec, source), pc.cast(allowed, pa.string())
        fails.append((f"{name}: allowed", pc.and_(pc.is_valid(view), pc.invert(pc.is_in(view, value_set=allowed)))))
    if spec.regex is not None:
        matched = pc.match_substring_regex(_as_text(values, spec, source), spec.regex)
        fails.append((f"{name}: regex", pc.fill_null(pc.invert(matched), False)))
    if seen is not None:
        fails.append((f"{name}: unique", _repeated(values, seen)))
    return values, fails


def _out_of_bound(
    values: pa.Array, bound: Bound, op: Any, spec: ColumnExpectation, key: str, source: str
) -> pa.Array:
    """Rows whose value is beyond ``bound`` (``op`` is pc.less for min, pc.greater for max)."""
    unconverted = None
    t = values.type
    if isinstance(bound, (int, float)) and (pa.types.is_string(t) or pa.types.is_large_string(t)
                                            or pa.types.is_null(t)):
        # a numeric bound on an untyped text column: compare as numbers; non-numbers fail
        values, unconverted = _convert(values, pa.float64())
    scalar = _scalar(bound, values.type)
    if scalar is None:
        raise InvalidInput(
            f"{source}: column {spec.name!r} rule {key!r} value {bound!r} cannot be compared with "
            f"its {values.type} values; declare the column's type (type: int, float, date, ...)"
        )
    beyond = pc.fill_null(op(values, scalar), False)
    return beyond if unconverted is None else pc.or_(beyond, unconverted)


def _value_set(spec: ColumnExpectation) -> pa.Array:
    """The ``allowed`` values as an array (of the declared type, if any)."""
    assert spec.allowed is not None
    if spec.type is None:
        return pa.array(spec.allowed)
    typ = TYPES[spec.type]
    return pa.array([_scalar(v, typ) for v in spec.allowed], typ)


def _as_text(values: pa.Array, spec: ColumnExpectation, source: str) -> pa.Array:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values
    try:
        return pc.cast(values, pa.string())
    except _CAST_ERRORS as e:
        raise InvalidInput(
            f"{source}: column {spec.name!r} holds {values.type} values, which cannot be compared as "
            "text; remove its 'regex'/'allowed' rule"
        ) from e


def _repeated(values: pa.Array, seen: set[Any]) -> pa.Array:
    """Rows whose non-null value occurred earlier in this batch or in an earlier one."""
    valid = pc.is_valid(values)
    present = values.filter(valid)
    distinct = pc.unique(present)
    codes = pc.index_in(present, value_set=distinct).to_numpy(zero_copy_only=False)
    repeat = np.ones(len(present), dtype=bool)
    repeat[np.unique(codes, return_index=True)[1]] = False
    distinct_py = distinct.to_pylist()
    earlier = seen.intersection(distinct_py)
    seen.update(distinct_py)
    if earlier:
        hit = pc.is_in(present, value_set=pa.array(list(earlier), values.type))
        repeat |= hit.to_numpy(zero_copy_only=False)
    out = np.zeros(len(values), dtype=bool)
    out[pc.indices_nonzero(valid).to_numpy()] = repeat
    return pa.array(out)


# -- type conversion ----------------------------------------------------------------

_INT_TEXT = r"^-?[0-9]{1,19}$"  # int64 has at most 19 digits
_FLOAT_TEXT = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|nan|inf|infinity)$"
_BOOL_TEXT = ("true", "false", "1", "0")
_DATE_TEXT = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME_TEXT = (
    _DATE_TEXT + r"([ T]([01][0-9]|2[0-3])(:[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?)?$"
)
_ZONED_TEXT = r"[T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})$"


def _cast(col: pa.Array, typ: pa.DataType) -> pa.Array:
    """Arrow's cast, lenient where it loses nothing the user cares about."""
    if pa.types.is_temporal(col.type) and pa.types.is_temporal(typ):
        return pc.cast(col, typ, safe=False)  # drop sub-microsecond digits, time zone
    try:
        return pc.cast(col, typ)
    except pa.ArrowInvalid:
        if not (pa.types.is_timestamp(typ) and typ.tz is None and pa.types.is_string(col.type)):
            raise
        # ISO text with "Z" or an offset: read it as UTC and store it without the zone
        zoned = pc.fill_null(pc.match_substring_regex(col, _ZONED_TEXT), False)
        if not zoned.true_count:
            raise
        utc = pc.cast(pc.cast(_keep(col, zoned), pa.timestamp(typ.unit, tz="UTC")), typ)
        return pc.if_else(zoned, utc, pc.cast(_keep(col, pc.invert(zoned)), typ))


def _convert(col: pa.Array, typ: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """``col`` cast to ``typ``, nulls where a value does not convert, and the mask of those.

    One cast of the whole column is the common path. When it fails, a
    vectorised pre-filter (a regex for text) finds the bad values, and a
    bisection finds any left (e.g. out-of-range numbers or dates).
    """
    if col.type == typ:
        return col, None
    try:
        return _cast(col, typ), None
    except pa.ArrowNotImplementedError:
        ok = pc.is_null(col)  # no conversion exists: every value fails
    except _CAST_ERRORS:
        ok = _plausible(col, typ)
    try:
        out = _cast(_keep(col, ok), typ)
    except pa.ArrowNotImplementedError:
        ok = pc.is_null(col)
        out = pa.nulls(len(col), typ)
    except _CAST_ERRORS:
        ok = pc.and_(ok, _bisect(_keep(col, ok), typ))
        out = _cast(_keep(col, ok), typ)
    return out, pc.and_(pc.is_valid(col), pc.invert(ok))


def _keep(col: pa.Array, ok: pa.Array) -> pa.Array:
    return pc.if_else(ok, col, pa.scalar(None, col.type))


def _plausible(col: pa.Array, typ: pa.DataType) -> pa.Array:
    """A cheap vectorised guess of which values convert (True for nulls)."""
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if pa.types.is_integer(typ):
            ok = pc.match_substring_regex(col, _INT_TEXT)
        elif pa.types.is_floating(typ):
            ok = pc.match_substring_regex(col, _FLOAT_TEXT, ignore_case=True)
        elif pa.types.is_boolean(typ):
            ok = pc.is_in(pc.utf8_lower(col), value_set=pa.array(_BOOL_TEXT))
        elif pa.types.is_date(typ):
            ok = pc.match_substring_regex(col, _DATE_TEXT + "$")
        elif pa.types.is_timestamp(typ):
            ok = pc.match_substring_regex(col, _TIME_TEXT)
        else:
            ok = pc.is_valid(col)
    elif pa.types.is_floating(t) and pa.types.is_integer(typ):
        ok = pc.and_(pc.equal(pc.floor(col), col), pc.less(pc.abs(col), 2.0**63))
    else:
        ok = pc.is_valid(col)
    return pc.fill_null(ok, True)


def _bisect(col: pa.Array, typ: pa.DataType) -> pa.Array:
    """Mask of the values of ``col`` that cast to ``typ``: halve failing slices until one value."""
    ok = np.ones(len(col), dtype=bool)
    todo = [(0, len(col))]
    while todo:
        lo, hi = todo.pop()
        try:
            _cast(col.slice(lo, hi - lo), typ)
        except _CAST_ERRORS:
            if hi - lo == 1:
                ok[lo] = False
            else:
                mid = (lo + hi) // 2
                todo += [(lo, mid), (mid, hi)]
    return pa.array(ok)


def _scalar(value: Value, typ: pa.DataType) -> pa.Scalar | None:
    """``value`` as a scalar of ``typ``, or None if it does not convert."""
    converted, bad = _convert(pa.array([value]), typ)
    return None if bad is not None and bad[0].as_py() else converted[0]


# -- parsing ----------------------------------------------------------------------------


def _parse_row_count(spec: Any, source: str) -> RowCount:
    if spec is None:
        return RowCount()
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{source}: 'row_count' must be a mapping like {{min: 1, max: 1000}}, got {spec!r}")
    unknown = [k for k in spec if k not in ("min", "max")]
    if unknown:
        raise InvalidInput(f"{source}: 'row_count' has unknown key {unknown[0]!r}; known keys: min, max")
    for key in ("min", "max"):
        v = spec.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise InvalidInput(f"{source}: row_count {key} must be a whole number >= 0, got {v!r}")
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInput(f"{source}: row_count min {lo} is greater than max {hi}")
    return RowCount(lo, hi)


def _parse_column(name: str, spec: Any, source: str) -> ColumnExpectation:
    where = f"{source}: column {name!r}"
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{where} must map rule names to values (e.g. {{type: int, min: 0}}), got {spec!r}")
    unknown = [k for k in spec if k not in RULES]
    if unknown:
        raise InvalidInput(f"{where} has unknown rule {unknown[0]!r}; known rules: {', '.join(RULES)}")
    typ = spec.get("type")
    if typ is not None and typ not in TYPES:
        raise InvalidInput(f"{where} has unknown type {typ!r}; known types: {', '.join(TYPES)}")
    for key in ("nullable", "unique"):
        if key in spec and not isinstance(spec[key], bool):
            raise InvalidInput(f"{where} rule {key!r} must be true or false, got {spec[key]!r}")
    bounds = {k: _parse_value(spec[k], where, k) for k in ("min", "max") if k in spec}
    if typ is not None:
        for key, v in bounds.items():
            if _scalar(v, TYPES[typ]) is None:
                raise InvalidInput(f"{where} rule {key!r} value {v!r} is not a {typ}")
    if len(bounds) == 2:
        lo, hi = bounds["min"], bounds["max"]
        if typ is not None:
            lo_s, hi_s = _scalar(lo, TYPES[typ]), _scalar(hi, TYPES[typ])
            above = bool(pc.greater(lo_s, hi_s).as_py())
        elif isinstance(lo, str) == isinstance(hi, str):
            above = lo > hi
        else:
            raise InvalidInput(f"{where}: min {lo!r} and max {hi!r} must both be numbers or both text")
        if above:
            raise InvalidInput(f"{where} has min {lo!r} greater than max {hi!r}")
    allowed = spec.get("allowed")
    if "allowed" in spec:
        if not isinstance(allowed, list) or not allowed:
            raise InvalidInput(f"{where} rule 'allowed' must be a non-empty list of values, got {allowed!r}")
        allowed = tuple(_parse_value(v, where, "allowed", allow_bool=True) for v in allowed)
        if typ is not None:
            for v in allowed:
                if _scalar(v, TYPES[typ]) is None:
                    raise InvalidInput(f"{where} rule 'allowed' value {v!r} is not a {typ}")
        else:
            try:
                pa.array(allowed)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise InvalidInput(
                    f"{where} rule 'allowed' mixes numbers and text: {list(allowed)}; "
                    "declare the column's type"
                ) from e
    regex = spec.get("regex")
    if "regex" in spec:
        if not isinstance(regex, str):
            raise InvalidInput(f"{where} rule 'regex' must be a text pattern, got {regex!r}")
        try:
            pc.match_substring_regex(pa.array([""]), regex)
        except pa.ArrowInvalid as e:
            raise InvalidInput(f"{where} rule 'regex' {regex!r} does not compile: {e}") from e
    return ColumnExpectation(
        name=name, type=typ, nullable=spec.get("nullable", True), min=bounds.get("min"),
        max=bounds.get("max"), allowed=allowed, regex=regex, unique=spec.get("unique", False),
    )


def _parse_value(v: Any, where: str, key: str, allow_bool: bool = False) -> Any:
    """A rule value as JSON-ready data (dates become ISO text)."""
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, bool) and not allow_bool:
        raise InvalidInput(f"{where} rule {key!r} must be a number, a date or text, got {v!r}")
    if isinstance(v, (bool, int, float, str)):
        return v
    raise InvalidInput(f"{where} rule {key!r} must be a number, a date or text, got {v!r}")


__all__ = ["TYPES", "ColumnExpectation", "Expectations", "RowCount", "Validator"]
