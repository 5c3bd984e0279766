"""Request bodies in, response bodies out: the wire formats of an invocation.

Requests (``Content-Type``; parameters such as ``charset`` are ignored, a
missing type is read as JSON):

``application/json``
    A list of records (``[{"x1": 1.5, "city": "paris"}, ...]``), a single
    record (``{"x1": 1.5, ...}``), or ``{"instances": [...]}`` (also
    ``{"inputs": [...]}``) whose items are records or lists of values in the
    signature's input order.
``application/jsonlines``
    One record (or one list in input order) per line; blank lines are skipped.
``text/csv``
    No header; one row per line, the columns in the signature's input order;
    RFC 4180 quoting; an empty field is a missing value.

Responses (``Accept``; ``*/*`` or none answers in the request's family):

``application/json``
    ``{"predictions": [{"prediction": p, "probabilities": [...]}, ...], "classes": [...]}``
    (``probabilities`` and ``classes`` for classifiers only).
``application/jsonlines``
    One ``{"prediction": p, "probabilities": [...]}`` per line.
``text/csv``
    One line per row: ``prediction[,p_class0,p_class1,...]``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import orjson

from loopml.errors import InvalidInput, NotAcceptable, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"
JSONL = "application/jsonlines"
CSV = "text/csv"
#: what each accepted media type is read as
MEDIA_TYPES: dict[str, str] = {
    JSON: JSON,
    "text/json": JSON,
    JSONL: JSONL,
    "application/jsonl": JSONL,
    "application/x-jsonlines": JSONL,
    "application/x-ndjson": JSONL,
    "application/ndjson": JSONL,
    CSV: CSV,
    "application/csv": CSV,
}
SUPPORTED = (JSON, JSONL, CSV)
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

#: a decoded row: a record, or the values in signature input order
Row = dict[str, Any] | list[Any]


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters.

    >>> media_type("Text/CSV; charset=utf-8")
    'text/csv'
    """
    if not content_type:
        return ""
    cut = content_type.find(";")
    return (content_type if cut < 0 else content_type[:cut]).strip().lower()


def request_format(content_type: str | None) -> str:
    """:data:`JSON`, :data:`JSONL` or :data:`CSV` for a request's ``Content-Type`` (none -> JSON).

    Raises
    ------
    UnsupportedMediaType
        Any other type; the message lists the supported ones.
    """
    mt = media_type(content_type)
    if not mt:
        return JSON
    fmt = MEDIA_TYPES.get(mt)
    if fmt is None:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported; send {', '.join(SUPPORTED)}"
        )
    return fmt


def response_format(accept: str | None, request: str = JSON) -> str:
    """The response format for an ``Accept`` header.

    ``*/*``, a missing header or an empty one answer in ``request``'s format;
    a list (``text/csv;q=0.5, application/json``) gives the supported type
    with the highest ``q`` (the first one on ties); ``application/*`` and
    ``text/*`` match JSON and CSV.

    Raises
    ------
    NotAcceptable
        Nothing in ``accept`` is a supported type.

    Examples
    --------
    >>> response_format("*/*", "text/csv")
    'text/csv'
    >>> response_format("text/csv;q=0.5, application/json", "text/csv")
    'application/json'
    """
    if not accept or accept == "*/*":
        return request
    best: tuple[float, int] | None = None
    chosen = ""
    for i, part in enumerate(accept.split(",")):
        bits = part.split(";")
        mt = bits[0].strip().lower()
        q = 1.0
        for p in bits[1:]:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q <= 0 or not mt:
            continue
        if mt == "*/*":
            fmt = request
        elif mt == "application/*":
            fmt = request if request in (JSON, JSONL) else JSON
        elif mt == "text/*":
            fmt = CSV
        else:
            fmt = MEDIA_TYPES.get(mt, "")
        if fmt and (best is None or (q, -i) > best):
            best, chosen = (q, -i), fmt
    if not chosen:
        raise NotAcceptable(f"Accept {accept!r} asks for no format this endpoint writes; ask for {', '.join(SUPPORTED)}")
    return chosen


# -- decoding ---------------------------------------------------------------------------------------
def decode(body: bytes, fmt: str, *, max_rows: int, max_payload_bytes: int) -> list[Row]:
    """Parse a request body of format ``fmt`` into rows (records or lists of values).

    Raises
    ------
    PayloadTooLarge
        The body is over ``max_payload_bytes`` or has more than ``max_rows`` rows.
    InvalidInput
        The body is not valid JSON / JSON lines / CSV (the message says where), or is empty.
    """
    if len(body) > max_payload_bytes:
        raise PayloadTooLarge(
            f"the request body is {len(body)} bytes; this endpoint takes at most {max_payload_bytes} "
            "bytes per request; split it into smaller requests or use batch transform"
        )
    if fmt is JSON or fmt == JSON:
        rows = _decode_json(body)
    elif fmt == JSONL:
        rows = _decode_jsonl(body)
    else:
        rows = _decode_csv(body)
    if not rows:
        raise InvalidInput("the request has no rows; send at least one record")
    if len(rows) > max_rows:
        raise PayloadTooLarge(
            f"the request has {len(rows)} rows; this endpoint takes at most {max_rows} rows per request; "
            "split it into smaller requests or use batch transform"
        )
    return rows


def _json_error(e: orjson.JSONDecodeError, body: bytes, what: str = "the request body") -> InvalidInput:
    line = getattr(e, "lineno", None)
    col = getattr(e, "colno", None)
    where = f" at line {line}, column {col}" if line is not None else ""
    return InvalidInput(f"{what} is not valid JSON{where}: {e.msg if hasattr(e, 'msg') else e}")


def _decode_json(body: bytes) -> list[Row]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise _json_error(e, body) from None
    if isinstance(doc, list):
        return _rows(doc, "the JSON list")
    if isinstance(doc, dict):
        for key in ("instances", "inputs"):
            if key in doc:
                if len(doc) > 1:
                    extra = sorted(k for k in doc if k != key)
                    raise InvalidInput(
                        f"the JSON body has {key!r} and also {extra}; send only {{{key!r}: [...]}}"
                    )
                items = doc[key]
                if isinstance(items, dict):
                    return [items]
                if not isinstance(items, list):
                    raise InvalidInput(f"{key!r} must be a list of records or of value lists, got {_kind(items)}")
                return _rows(items, f"{key!r}")
        return [doc]
    raise InvalidInput(
        f"the JSON body is {_kind(doc)}; send a record, a list of records or {{\"instances\": [...]}}"
    )


def _rows(items: list[Any], what: str) -> list[Row]:
    for i, item in enumerate(items):
        if not isinstance(item, (dict, list)):
            raise InvalidInput(
                f"row {i} of {what} is {_kind(item)}; each row must be a record (an object) or a list of "
                "values in the model's input order"
            )
    return items


def _decode_jsonl(body: bytes) -> list[Row]:
    rows: list[Row] = []
    for n, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise InvalidInput(f"line {n} of the JSON lines body is not valid JSON: {e}") from None
        if not isinstance(item, (dict, list)):
            raise InvalidInput(
                f"line {n} of the JSON lines body is {_kind(item)}; each line must be a record (an object) "
                "or a list of values in the model's input order"
            )
        rows.append(item)
    return rows


def _decode_csv(body: bytes) -> list[Row]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the CSV body is not UTF-8 text (byte {e.start}): send UTF-8") from None
    rows: list[Row] = []
    if '"' not in text:  # the common case: split, no quoting to honour
        for line in text.split("\n"):
            if line.endswith("\r"):
                line = line[:-1]
            if line:
                rows.append([v if v else None for v in line.split(",")])
        return rows
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            if row and row != [""]:
                rows.append([v if v else None for v in row])
    except csv.Error as e:
        raise InvalidInput(f"the CSV body is malformed at line {reader.line_num}: {e}") from None
    return rows


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)


# -- encoding ---------------------------------------------------------------------------------------
def encode(outputs: Sequence[dict[str, Any]], fmt: str, classes: Sequence[Any] | None) -> bytes:
    """Serialise ``outputs`` (``{"prediction": ..., "probabilities": [...]}`` each) as ``fmt``."""
    if fmt == JSON:
        doc: dict[str, Any] = {"predictions": outputs}
        if classes is not None:
            doc["classes"] = classes
        return orjson.dumps(doc, option=_DUMPS_OPTS)
    if fmt == JSONL:
        if not outputs:
            return b""
        return b"\n".join(orjson.dumps(o, option=_DUMPS_OPTS) for o in outputs) + b"\n"
    return "".join(_csv_line(o) for o in outputs).encode()


def _csv_line(o: dict[str, Any]) -> str:
    p = o.get("prediction")
    cells = [_csv_cell(x) for x in p] if isinstance(p, (list, tuple)) else [_csv_cell(p)]
    proba = o.get("probabilities")
    if proba is not None:
        cells.extend(_csv_cell(x) for x in proba)
    return ",".join(cells) + "\n"


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    t = type(v)
    if t is float:
        return repr(v) if math.isfinite(v) else ("" if v != v else repr(v))
    if t is int:
        return str(v)
    if t is bool:
        return "true" if v else "false"
    if hasattr(v, "item"):  # numpy scalar
        return _csv_cell(v.item())
    s = str(v)
    if any(ch in s for ch in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


__all__ = ["CSV", "JSON", "JSONL", "SUPPORTED", "decode", "encode", "media_type", "request_format",
           "response_format"]
