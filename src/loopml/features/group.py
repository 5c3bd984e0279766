"""Feature group specs and the type checks every ingest goes through.

A :class:`FeatureGroup` names a record identifier column, an event time
column and typed feature definitions (``integral``, ``fractional``,
``string``, ``timestamp``). :func:`conform` turns incoming Arrow data into
the group's exact schema or raises :class:`~loopml.errors.InvalidInput`
naming the column, so nothing of the wrong type reaches a store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidInput

FeatureType = Literal["integral", "fractional", "string", "timestamp"]
IdType = Literal["integral", "string"]

#: feature types and their Arrow types at rest
FEATURE_TYPES: dict[str, pa.DataType] = {
    "integral": pa.int64(),
    "fractional": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
TIME_TYPE = FEATURE_TYPES["timestamp"]
#: extra column of every offline part: when the rows were ingested
WRITE_TIME = "_write_time"

_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,127}$")


def check_group_name(name: str) -> str:
    """Return ``name`` if it is a valid feature group name, else raise InvalidInput."""
    if not isinstance(name, str) or not _GROUP_NAME.match(name):
        raise InvalidInput(
            f"feature group name {name!r} is not allowed; use letters, digits, '_' or '-', "
            "starting with a letter or digit (at most 64 characters)"
        )
    return name


def check_column_name(name: str, what: str = "feature") -> str:
    """Return ``name`` if it is a valid feature/column name, else raise InvalidInput."""
    if not isinstance(name, str) or not _COLUMN_NAME.match(name):
        raise InvalidInput(
            f"{what} name {name!r} is not allowed; use letters, digits, '_' or '-', "
            "starting with a letter (at most 128 characters)"
        )
    return name


def parse_type(text: str, column: str = "") -> FeatureType:
    """Normalise a feature type (``integral``, ``Fractional``, ``str``, ...) or raise InvalidInput."""
    t = str(text).strip().lower()
    aliases = {"int": "integral", "integer": "integral", "float": "fractional", "double": "fractional",
               "str": "string", "datetime": "timestamp"}
    t = aliases.get(t, t)
    if t not in FEATURE_TYPES:
        where = f" of {column!r}" if column else ""
        raise InvalidInput(
            f"unknown feature type {text!r}{where}; use integral, fractional, string or timestamp"
        )
    return cast(FeatureType, t)


def infer_type(dtype: pa.DataType, column: str) -> FeatureType:
    """The feature type an Arrow column type maps to, or InvalidInput naming the column."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_integer(dtype) or pa.types.is_boolean(dtype):
        return "integral"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "fractional"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "timestamp"
    raise InvalidInput(
        f"column {column!r} has type {dtype}, which is not a feature type (integral, fractional, "
        "string, timestamp); list the features to keep explicitly"
    )


@dataclass(frozen=True)
class FeatureDefinition:
    """One feature: its name and type (``integral``, ``fractional``, ``string`` or ``timestamp``)."""

    name: str
    type: FeatureType

    def __post_init__(self) -> None:
        check_column_name(self.name)
        object.__setattr__(self, "type", parse_type(self.type, self.name))

    def to_dict(self) -> dict[str, str]:
        """``{"name": ..., "type": ...}``."""
        return {"name": self.name, "type": self.type}


@dataclass(frozen=True)
class FeatureGroup:
    """A feature group: what identifies a record, when it happened, and its typed features.

    Parameters
    ----------
    name
        Group name (letters, digits, ``_``, ``-``).
    record_id
        Column identifying a record (an entity such as a customer).
    event_time
        Column with the time each record's values became true.
    features
        The feature definitions (without the id and event-time columns).
    id_type
        ``"integral"`` or ``"string"``: the type of ``record_id``.
    description, owner, tags
        Free-form documentation.
    online
        Keep the latest record per id in the online store.
    ttl
        Online records whose event time is older than this are not returned.
    id, created_at
        Set by the registry once the group is created.
    """

    name: str
    record_id: str
    event_time: str
    features: tuple[FeatureDefinition, ...]
    id_type: IdType = "string"
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    online: bool = True
    ttl: timedelta | None = None
    id: str = ""
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        check_group_name(self.name)
        check_column_name(self.record_id, "record identifier column")
        check_column_name(self.event_time, "event time column")
        if self.record_id == self.event_time:
            raise InvalidInput(f"record identifier and event time are both {self.record_id!r}; "
                               "give two different columns")
        if self.id_type not in ("integral", "string"):
            raise InvalidInput(f"record identifier type {self.id_type!r} is not allowed; "
                               "use integral or string")
        if self.ttl is not None and self.ttl.total_seconds() <= 0:
            raise InvalidInput(f"ttl {self.ttl} must be positive (or None for no expiry)")
        seen = {self.record_id, self.event_time}
        for f in self.features:
            if f.name in seen:
                raise InvalidInput(
                    f"feature {f.name!r} of group {self.name!r} is defined twice (or is the "
                    "record identifier or event time column)"
                )
            seen.add(f.name)
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "tags", dict(self.tags))

    # -- derived --------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """Names of the features, in definition order."""
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """Record id, event time, then the features: the columns of an offline part."""
        return [self.record_id, self.event_time, *self.feature_names]

    def feature(self, name: str) -> FeatureDefinition:
        """The definition of feature ``name`` (InvalidInput if the group has none)."""
        for f in self.features:
            if f.name == name:
                return f
        raise InvalidInput(
            f"feature group {self.name!r} has no feature {name!r}; its features are "
            f"{self.feature_names}"
        )

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the group's rows (without the ``_write_time`` column)."""
        return pa.schema(
            [
                pa.field(self.record_id, FEATURE_TYPES[self.id_type], nullable=False),
                pa.field(self.event_time, TIME_TYPE, nullable=False),
                *(pa.field(f.name, FEATURE_TYPES[f.type]) for f in self.features),
            ]
        )

    @property
    def ttl_us(self) -> int | None:
        """The TTL in microseconds (None without one)."""
        return None if self.ttl is None else int(self.ttl.total_seconds() * 1_000_000)

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "name": self.name,
            "id": self.id,
            "record_id": self.record_id,
            "id_type": self.id_type,
            "event_time": self.event_time,
            "features": [f.to_dict() for f in self.features],
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
            "online": self.online,
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureGroup:
        """Build a group from :meth:`to_dict` output (or the same shape written by hand)."""
        ttl = d.get("ttl_seconds")
        created = d.get("created_at")
        return cls(
            name=d["name"],
            record_id=d["record_id"],
            event_time=d["event_time"],
            features=tuple(FeatureDefinition(f["name"], f["type"]) for f in d.get("features", [])),
            id_type=d.get("id_type", "string"),
            description=d.get("description", ""),
            owner=d.get("owner", ""),
            tags=dict(d.get("tags") or {}),
            online=bool(d.get("online", True)),
            ttl=None if ttl is None else timedelta(seconds=float(ttl)),
            id=d.get("id", ""),
            created_at=datetime.fromisoformat(created) if isinstance(created, str) else created,
        )

    def with_identity(self, id: str, created_at: datetime) -> FeatureGroup:
        """A copy carrying the registry's id and creation time."""
        return replace(self, id=id, created_at=created_at)


def make_definitions(
    features: Mapping[str, str] | Iterable[FeatureDefinition | tuple[str, str] | str] | None,
    schema: pa.Schema | None,
    *,
    exclude: Sequence[str] = (),
) -> list[FeatureDefinition]:
    """Feature definitions from a spec (``{"name": "type"}``, ``"name:type"``, ``"name"``, tuples).

    A bare name takes its type from ``schema``; with no spec at all, every column
    of ``schema`` except ``exclude`` becomes a feature.
    """

    def from_schema(name: str) -> FeatureDefinition:
        if schema is None or name not in schema.names:
            raise InvalidInput(
                f"give the type of feature {name!r} as {name}:TYPE (integral, fractional, string "
                "or timestamp), or data to infer it from"
                + (f"; the data has columns {schema.names}" if schema is not None else "")
            )
        return FeatureDefinition(name, infer_type(schema.field(name).type, name))

    if features is None:
        if schema is None:
            raise InvalidInput("give the feature definitions, or data to infer them from")
        return [from_schema(n) for n in schema.names if n not in exclude]
    items: Iterable[Any] = features.items() if isinstance(features, Mapping) else features
    out: list[FeatureDefinition] = []
    for item in items:
        if isinstance(item, FeatureDefinition):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(FeatureDefinition(str(item[0]), parse_type(item[1], str(item[0]))))
        elif isinstance(item, str):
            name, sep, typ = item.partition(":")
            out.append(FeatureDefinition(name, parse_type(typ, name)) if sep else from_schema(name))
        else:
            raise InvalidInput(f"cannot read feature definition {item!r}; write it as 'name:type'")
    return [f for f in out if f.name not in exclude]


# -- conforming data to a group ---------------------------------------------------------
def _fail(group: FeatureGroup, column: str, col: pa.ChunkedArray | pa.Array, expected: str,
          detail: str = "") -> InvalidInput:
    extra = f" ({detail})" if detail else ""
    return InvalidInput(
        f"column {column!r} has type {col.type}, but feature group {group.name!r} declares it "
        f"{expected}{extra}; fix the data or the definition"
    )


def _first_message(e: Exception) -> str:
    return str(e).split("\n")[0][:200]


def to_timestamp(col: pa.Array | pa.ChunkedArray, *, numeric: bool) -> pa.Array | pa.ChunkedArray:
    """Convert a column to ``timestamp[us, UTC]`` (naive times are UTC).

    Accepts timestamps, dates, ISO-8601 strings and, with ``numeric``, Unix
    seconds (integral or fractional). Raises ``pa.ArrowInvalid``/``TypeError``
    if it cannot.
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = col.cast(pa.timestamp("us"), safe=False)
        return col.cast(TIME_TYPE, safe=False)
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).cast(TIME_TYPE)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        col = col.cast(pa.string())
        try:
            return col.cast(TIME_TYPE)
        except pa.ArrowInvalid:
            return col.cast(pa.timestamp("us")).cast(TIME_TYPE)
    if pa.types.is_null(t):
        return col.cast(TIME_TYPE)
    if numeric and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        micros = pc.round(pc.multiply(col.cast(pa.float64()), 1_000_000.0))
        return micros.cast(pa.int64()).cast(TIME_TYPE)
    raise TypeError(f"{t} is not a time")


def _convert(group: FeatureGroup, name: str, col: pa.ChunkedArray, ftype: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    target = FEATURE_TYPES[ftype]
    if pa.types.is_null(t):
        return col.cast(target)
    try:
        if ftype == "integral":
            if pa.types.is_integer(t) or pa.types.is_boolean(t):
                return col.cast(target)
            if pa.types.is_floating(t) or pa.types.is_decimal(t):
                return col.cast(target)  # safe: refuses 2.5, NaN
        elif ftype == "fractional":
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
                return col.cast(target)
        elif ftype == "string":
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                return col.cast(target)
        elif ftype == "timestamp":
            return cast(pa.ChunkedArray, to_timestamp(col, numeric=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, OverflowError) as e:
        raise _fail(group, name, col, ftype, _first_message(e)) from e
    raise _fail(group, name, col, ftype)


def conform(group: FeatureGroup, data: pa.Table | pa.RecordBatch) -> pa.Table:
    """Check ``data`` against the group's definitions and return it in the group's schema.

    Columns not in the group are dropped. The record identifier and event
    time must be present and non-null; every feature column must be present
    and convertible to its declared type without loss.

    Raises
    ------
    InvalidInput
        Naming the missing or wrongly typed column.
    """
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    names = set(table.schema.names)
    for col, what in ((group.record_id, "record identifier"), (group.event_time, "event time")):
        if col not in names:
            raise InvalidInput(
                f"feature group {group.name!r} needs its {what} column {col!r}, but the data has "
                f"columns {table.schema.names}"
            )
    missing = [f for f in group.feature_names if f not in names]
    if missing:
        raise InvalidInput(
            f"the data lacks feature column(s) {missing} of feature group {group.name!r}; "
            f"the data has columns {table.schema.names}"
        )
    arrays: list[pa.ChunkedArray] = []
    # record identifier
    rid = table.column(group.record_id)
    rt = rid.type.value_type if pa.types.is_dictionary(rid.type) else rid.type
    if group.id_type == "string" and pa.types.is_integer(rt):
        rid = rid.cast(pa.string())
    else:
        rid = _convert(group, group.record_id, rid, group.id_type)
    if rid.null_count:
        raise InvalidInput(
            f"{rid.null_count} row(s) have no record identifier (column {group.record_id!r} of "
            f"feature group {group.name!r}); every record needs one"
        )
    arrays.append(rid)
    # event time
    et = table.column(group.event_time)
    try:
        et = cast(pa.ChunkedArray, to_timestamp(et, numeric=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, OverflowError) as e:
        raise _fail(group, group.event_time, et, "its event time",
                    "use timestamps, ISO-8601 strings or Unix seconds; " + _first_message(e)) from e
    if et.null_count:
        raise InvalidInput(
            f"{et.null_count} row(s) have no event time (column {group.event_time!r} of feature "
            f"group {group.name!r}); every record needs one"
        )
    arrays.append(et)
    for f in group.features:
        arrays.append(_convert(group, f.name, table.column(f.name), f.type))
    return pa.Table.from_arrays(arrays, schema=group.arrow_schema())


def conform_ids(group: FeatureGroup, col: pa.ChunkedArray, column: str) -> pa.ChunkedArray:
    """Entity ids (for a point-in-time join) in the type of ``group``'s record identifier."""
    t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if group.id_type == "string" and pa.types.is_integer(t):
        return col.cast(pa.string())
    return _convert(group, column, col, group.id_type)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w)?\s*$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: timedelta | float | int | str | None, what: str = "duration") -> timedelta | None:
    """A duration from a timedelta, seconds, or text such as ``"90s"``, ``"12h"``, ``"30d"``, ``"2w"``."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    m = _DURATION.match(str(value))
    if not m:
        raise InvalidInput(
            f"{what} {value!r} is not a duration; write a number with a unit, e.g. 90s, 15m, 12h, "
            "30d or 2w"
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])
