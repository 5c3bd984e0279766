"""Wire formats: content types, Accept negotiation, decoding and encoding, the validator's converters."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from loopml.serve import _codecs as c
from loopml.serve._fastpath import Validator, converter


def _decode(body: bytes, fmt: str = c.JSON, **kw: int) -> list[Any]:
    return c.decode(body, fmt, max_rows=kw.get("max_rows", 100), max_payload_bytes=kw.get("max_bytes", 10_000))


# -- content types -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "fmt"), [
    (None, c.JSON), ("", c.JSON), ("application/json", c.JSON), ("Application/JSON; charset=UTF-8", c.JSON),
    ("application/jsonlines", c.JSONL), ("application/x-ndjson", c.JSONL), ("text/csv; charset=utf-8", c.CSV),
    ("application/csv", c.CSV),
])
def test_request_formats(header: str | None, fmt: str) -> None:
    assert c.request_format(header) == fmt


def test_unsupported_request_format() -> None:
    with pytest.raises(UnsupportedMediaType, match="'application/x-npy' is not supported; send application/json"):
        c.request_format("application/x-npy")


@pytest.mark.parametrize(("accept", "request_fmt", "fmt"), [
    (None, c.CSV, c.CSV), ("*/*", c.JSONL, c.JSONL), ("", c.JSON, c.JSON),
    ("text/csv", c.JSON, c.CSV), ("application/jsonlines", c.CSV, c.JSONL),
    ("text/html, text/csv;q=0.5, application/json;q=0.9", c.CSV, c.JSON),
    ("image/png, */*;q=0.1", c.CSV, c.CSV), ("application/*", c.CSV, c.JSON), ("text/*", c.JSON, c.CSV),
    ("application/json;q=0, text/csv", c.JSON, c.CSV),
])
def test_accept_negotiation(accept: str | None, request_fmt: str, fmt: str) -> None:
    assert c.response_format(accept, request_fmt) == fmt


def test_not_acceptable() -> None:
    with pytest.raises(NotAcceptable, match=r"'image/png' asks for no format.*text/csv"):
        c.response_format("image/png", c.JSON)
    with pytest.raises(NotAcceptable):
        c.response_format("application/json;q=0", c.JSON)


# -- decoding ----------------------------------------------------------------------------------------
def test_json_shapes() -> None:
    assert _decode(b'{"a": 1}') == [{"a": 1}]
    assert _decode(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
    assert _decode(b'{"instances": [[1, "x"], {"a": 2}]}') == [[1, "x"], {"a": 2}]
    assert _decode(b'{"inputs": {"a": 3}}') == [{"a": 3}]
    with pytest.raises(InvalidInput, match=r"'instances' and also \['x'\]"):
        _decode(b'{"instances": [], "x": 1}')
    with pytest.raises(InvalidInput, match="row 0 of 'instances' is a string"):
        _decode(b'{"instances": ["a"]}')
    with pytest.raises(InvalidInput, match="not valid JSON at line 1, column"):
        _decode(b"[{]")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        _decode(b"\xff")


def test_jsonlines_skip_blank_lines() -> None:
    assert _decode(b'{"a": 1}\n\n[2]\r\n  \n', c.JSONL) == [{"a": 1}, [2]]
    with pytest.raises(InvalidInput, match="line 3 of the JSON lines body is not valid JSON"):
        _decode(b'{"a": 1}\n\n{"a": \n', c.JSONL)


def test_csv_quoting_and_missing_fields() -> None:
    assert _decode(b"1,,x\r\n2,3,y\n\n", c.CSV) == [["1", None, "x"], ["2", "3", "y"]]
    assert _decode(b'1,"a, b",""\n2,"say ""hi""",z\n', c.CSV) == [["1", "a, b", None], ["2", 'say "hi"', "z"]]
    assert _decode("\ufeff1,é\n".encode(), c.CSV) == [["1", "é"]]
    with pytest.raises(InvalidInput, match="malformed at line 1"):
        _decode(b'1,"a"b\n', c.CSV)


def test_limits() -> None:
    with pytest.raises(PayloadTooLarge, match=r"11 bytes.*at most 10 bytes") as e:
        _decode(b"[1,2,3,4,5]", max_bytes=10)
    assert e.value.http_status == 413
    with pytest.raises(PayloadTooLarge, match=r"3 rows.*at most 2 rows"):
        _decode(b"1\n2\n3\n", c.CSV, max_rows=2)
    assert len(_decode(b"1\n2\n", c.CSV, max_rows=2)) == 2


# -- encoding ----------------------------------------------------------------------------------------
OUTS = [{"prediction": "yes", "probabilities": [0.25, 0.75]},
        {"prediction": "no, really", "probabilities": [0.9, 0.1]}]


def test_encode_json_and_jsonlines() -> None:
    doc = json.loads(c.encode(OUTS, c.JSON, ["no", "yes"]))
    assert doc == {"predictions": OUTS, "classes": ["no", "yes"]}
    assert json.loads(c.encode([{"prediction": 1.5}], c.JSON, None)) == {"predictions": [{"prediction": 1.5}]}
    lines = c.encode(OUTS, c.JSONL, ["no", "yes"]).decode().splitlines()
    assert [json.loads(x) for x in lines] == OUTS
    assert c.encode([], c.JSONL, None) == b""


def test_encode_csv() -> None:
    assert c.encode(OUTS, c.CSV, None) == b'yes,0.25,0.75\n"no, really",0.9,0.1\n'
    assert c.encode([{"prediction": 0.1 + 0.2}, {"prediction": None}, {"prediction": True}], c.CSV, None) == (
        b"0.30000000000000004\n\ntrue\n")
    assert c.encode([{"prediction": [1.0, 2.5]}], c.CSV, None) == b"1.0,2.5\n"
    assert c.encode([{"prediction": float("nan")}, {"prediction": float("inf")}], c.CSV, None) == b"\ninf\n"


def test_numpy_values_serialise() -> None:
    outs: list[dict[str, Any]] = [{"prediction": np.int64(3), "probabilities": np.array([0.5, 0.5])}, {"prediction": np.float32(0.5)}]
    assert json.loads(c.encode(outs, c.JSON, None))["predictions"] == [
        {"prediction": 3, "probabilities": [0.5, 0.5]}, {"prediction": 0.5}]
    assert c.encode([{"prediction": np.int64(3)}], c.CSV, None) == b"3\n"
    assert json.loads(c.encode([{"prediction": float("nan")}], c.JSON, None)) == {"predictions": [{"prediction": None}]}


# -- the validator's converters ---------------------------------------------------------------------------
def _conv(type_name: str, v: Any, nullable: bool = True) -> Any:
    return converter(type_name, nullable)(v)


def test_numbers() -> None:
    assert _conv("double", 1) == 1.0 and type(_conv("double", 1)) is float
    assert _conv("double", " 2.5 ") == 2.5 and _conv("double", "") is None and _conv("double", "nan") is None
    assert _conv("float", np.float32(0.5)) == 0.5 and _conv("double", math.nan) is None
    assert _conv("int64", 3.0) == 3 and type(_conv("int64", 3.0)) is int and _conv("int64", "7") == 7
    assert _conv("int32", "7.0") == 7 and _conv("int64", None) is None
    assert _conv("decimal128(10, 2)", "1.25") == 1.25


def test_booleans_strings_and_times() -> None:
    assert _conv("bool", "True") is True and _conv("bool", "0") is False and _conv("bool", 1) is True
    assert _conv("string", 3) == "3" and _conv("large_string", 3.0) == "3" and _conv("string", 2.5) == "2.5"
    assert _conv("dictionary<values=string, indices=int32, ordered=0>", "a") == "a"
    ts = _conv("timestamp[us]", "2024-03-01T10:00:00+01:00")
    assert ts == pd.Timestamp("2024-03-01T09:00:00") and ts.tzinfo is None
    aware = _conv("timestamp[ns, tz=UTC]", "2024-03-01T10:00:00")
    assert aware == pd.Timestamp("2024-03-01T10:00:00", tz="UTC")
    assert str(_conv("date32[day]", "2024-03-01")) == "2024-03-01"
    assert _conv("list<item: double>", [1, 2]) == [1, 2]


@pytest.mark.parametrize(("type_name", "value", "message"), [
    ("double", "abc", r"expected a number \(double\), got the string 'abc'"),
    ("double", True, "got the boolean true"),
    ("double", [1], "got a list"),
    ("double", "-inf", r"expected a finite number \(double\), got the string '-inf'"),
    ("double", 1e39, r"1e\+39 is out of the range a model computes in \(float32"),
    ("double", -1e300, r"-1e\+300 is out of the range"),
    ("double", "3.5e38", r"3.5e\+38 is out of the range"),
    ("double", 10**400, r"1e\+400 is out of the range"),
    ("float", float("inf"), r"expected a finite number \(float\)"),
    ("int64", 10**39, r"1e\+39 is out of the range a model computes in"),
    ("int64", 2.5, r"expected an integer \(int64\), got the number 2.5"),
    ("int64", "x", "expected an integer"),
    ("bool", "maybe", "expected true or false"),
    ("bool", 2, "expected true or false"),
    ("string", {"a": 1}, "expected text, got an object"),
    ("string", False, "expected text, got the boolean false"),
    ("timestamp[us]", "not a date", "expected an ISO 8601 date/time"),
    ("timestamp[us]", 12, "expected an ISO 8601 date/time string"),
])
def test_refusals(type_name: str, value: Any, message: str) -> None:
    with pytest.raises(Exception, match=message):
        _conv(type_name, value)


@pytest.mark.parametrize(("type_name", "good"), [
    ("double", 1.5), ("int64", 1), ("bool", True), ("string", "x"), ("timestamp[us]", "2024-01-01"),
    ("list<item: int64>", [1]),
])
def test_null_where_the_model_needs_a_value(type_name: str, good: Any) -> None:
    v = Validator([{"name": "a", "type": type_name, "nullable": False}])
    assert len(v.validate([{"a": good}])) == 1
    for missing in (None, math.nan, ""):
        if missing == "" and type_name in ("string", "list<item: int64>"):  # "" is text; CSV sends null
            continue
        with pytest.raises(InvalidInput, match="row 1, column 'a': is null, but this model needs a value"):
            v.validate([{"a": good}, {"a": missing}])


def test_validator_rows() -> None:
    v = Validator([{"name": "a", "type": "double", "nullable": True}, {"name": "b", "type": "string", "nullable": True}])
    assert v.validate([{"b": "x", "a": 1}, [2, None]]) == [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": None}]
    with pytest.raises(InvalidInput, match=r"row 0 has 1 value\(s\); the model takes 2 column\(s\) in this order: "
                                           r"a \(double\), b \(string\)"):
        v.validate([[1]])
    with pytest.raises(InvalidInput, match=r"row 0: missing column\(s\) b; unknown column\(s\) c"):
        v.validate([{"a": 1, "c": 2}])
