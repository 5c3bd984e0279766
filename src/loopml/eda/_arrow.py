"""Input normalisation for profiling: any table becomes a plain Arrow table with known kinds.

Profiling works on one Arrow table. Here it is made uniform so every later
step can rely on it: dictionary columns are decoded, decimals become floats,
NaN becomes null (a missing value is a missing value, however it was
written), and each column gets a *kind* that decides which analyses apply.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

#: column kinds, in the order the report lists them
KINDS = ("numeric", "categorical", "boolean", "datetime", "other")

_MAX_TEXT = 120


def to_table(data: pa.Table | pa.RecordBatch | pd.DataFrame) -> pa.Table:
    """Return ``data`` as an Arrow table (a DataFrame's index is dropped)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if len(set(map(str, data.columns))) != data.shape[1]:
            raise InvalidInput("the DataFrame has duplicate column names; rename them before profiling")
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInput(
                f"cannot convert the DataFrame to Arrow ({e}); give each column one type"
            ) from e
    raise InvalidInput(
        f"profile() takes a pyarrow Table or a pandas DataFrame, not {type(data).__name__}"
    )


def kind_of(t: pa.DataType) -> str:
    """The profiling kind of an Arrow type: numeric, categorical, boolean, datetime or other."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "numeric"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "categorical"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    return "other"


def normalise(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Decode dictionaries, widen odd types, turn NaN into null.

    Returns the new table and, per floating column, how many values are
    infinite (kept in the table; the aggregates skip them).
    """
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(f"the table has duplicate column names {dupes}; rename them before profiling")
    arrays: list[pa.ChunkedArray] = []
    infinite: dict[str, int] = {}
    for name, col in zip(names, table.columns, strict=True):
        t = col.type
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
            t = col.type
        if pa.types.is_decimal(t) or pa.types.is_float16(t):
            col = col.cast(pa.float64())
            t = col.type
        elif pa.types.is_string_view(t):
            col = col.cast(pa.string())
            t = col.type
        if pa.types.is_floating(t) and len(col) > col.null_count:
            nan = pc.is_nan(col)
            if pc.any(nan).as_py():
                col = pc.if_else(nan, pa.scalar(None, t), col)
            n_inf = pc.sum(pc.is_inf(col)).as_py() or 0
            if n_inf:
                infinite[name] = int(n_inf)
        arrays.append(col)
    return pa.table(arrays, names=names), infinite


def jsonable(value: Any) -> Any:
    """A JSON-ready form of one cell value (long text shortened, non-finite floats as None)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 1] + "…"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return jsonable(value.hex())
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return jsonable(str(value))


def number(value: Any) -> float | None:
    """A finite float, or None (for NaN, inf and missing values)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def quote(name: str) -> str:
    """A DuckDB identifier for a column name."""
    return '"' + name.replace('"', '""') + '"'
