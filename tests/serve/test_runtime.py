"""The Predictor: same numbers as Model.predict, every content type, every error path."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from loopml.errors import (
    InvalidInput,
    ModelError,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from loopml.serve.runtime import InvokeResult, Predictor
from loopml.train.package import Model
from tests.serve.conftest import inputs_of, json_records, serve_frame

ALGOS = ["xgboost", "lightgbm", "linear", "random_forest"]
PROBLEMS = ["binary", "multiclass", "regression"]


def _check_parity(model: Model, df: pd.DataFrame, outputs: list[dict[str, Any]]) -> None:
    assert len(outputs) == len(df)
    want = model.predict(df)
    got = [o["prediction"] for o in outputs]
    if model.classes is not None:
        assert got == list(want.tolist())  # labels: exact
        proba = np.array([o["probabilities"] for o in outputs], dtype=np.float64)
        np.testing.assert_allclose(proba, model.predict_proba(df), rtol=0, atol=1e-9)
        assert set(outputs[0]) == {"prediction", "probabilities"}
    else:
        np.testing.assert_allclose(np.array(got, dtype=np.float64), want.astype(np.float64), rtol=1e-9, atol=0)
        assert set(outputs[0]) == {"prediction"}


@pytest.mark.parametrize("recipe", ["auto", "spec"])
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("algo", ALGOS)
def test_predictions_equal_model_predict(trained: Callable[..., Model], algo: str, problem: str,
                                         recipe: str) -> None:
    model = trained(algo, problem, recipe)
    p = Predictor(model)
    df = inputs_of(serve_frame(80, seed=7, unseen=True), recipe)
    records = json_records(df)
    # all rows in one request, and one row per request (the single-row path)
    _check_parity(model, df, p.predict_records(records))
    singles = [p.predict_records([r])[0] for r in records[:25]]
    _check_parity(model, df.head(25), singles)
    assert p.is_classifier == (problem != "regression")
    assert p.classes == model.classes


@pytest.mark.parametrize("algo", ALGOS)
def test_a_model_without_any_recipe(trained: Callable[..., Model], algo: str) -> None:
    model = trained(algo, "binary", "none")
    assert model.recipe is None
    df = inputs_of(serve_frame(60, seed=8), "none")
    _check_parity(model, df, Predictor(model).predict_records(json_records(df)))


@pytest.mark.parametrize("algo", ["xgboost", "lightgbm"])
def test_the_all_threads_path_of_boosters(trained: Callable[..., Model], algo: str) -> None:
    model = trained(algo, "multiclass", "spec")
    p = Predictor(model)
    p._rows.small_rows = 4  # more rows than this go to the multi-threaded booster
    df = inputs_of(serve_frame(40, seed=9), "spec")
    _check_parity(model, df, p.predict_records(json_records(df)))


def test_unsupervised_models(tmp_path: Any) -> None:
    from loopml.train import load_model_package
    from tests.train._data import package

    df = inputs_of(serve_frame(120, seed=14), "auto")
    for algo, hp in (("kmeans", {"k": 3}), ("pca", {"num_components": 2})):
        folder, _ = package(tmp_path, df, algo, hp, target=None, name=algo)
        model = load_model_package(folder)
        rows = inputs_of(serve_frame(20, seed=15), "auto")
        got = Predictor(model).predict_records(json_records(rows))
        want = model.predict(rows)
        assert [o["prediction"] for o in got] == want.tolist(), algo


def test_models_without_the_matrix_contract(tmp_path: Any) -> None:
    # ALS reads (user, item) ids, not a feature matrix: each record goes through predict_one
    from loopml.train import load_model_package
    from tests.train._data import package
    from tests.train.test_als import FAST, ROLES, interactions

    data = interactions()
    folder, _ = package(tmp_path, data, "als", FAST, target="clicks", roles=ROLES, name="als")
    model = load_model_package(folder)
    p = Predictor(model)
    assert not p._rows.tabular
    rows = pd.DataFrame({"user": ["u5", "u1", "nobody"], "item": [7, 3, 7]})
    got = [o["prediction"] for o in p.predict_records(json_records(rows))]
    want = model.predict(rows)
    assert got[:2] == pytest.approx(want[:2].tolist(), rel=1e-12) and got[2] is None and np.isnan(want[2])


@pytest.mark.parametrize(("algo", "problem"), [("xgboost", "binary"), ("linear", "multiclass"),
                                             ("random_forest", "regression")])
def test_the_dataframe_path_for_big_requests(trained: Callable[..., Model], algo: str, problem: str) -> None:
    model = trained(algo, problem, "spec")
    p = Predictor(model)
    p.frame_rows = 10  # more rows than this go through Model.predict on a DataFrame
    df = inputs_of(serve_frame(30, seed=10, unseen=True), "spec")
    records = json_records(df)
    _check_parity(model, df, p.predict_records(records))
    frame = p.records_frame(p.validate(records))
    assert [str(t) for t in frame.dtypes] == [str(t) for t in df.dtypes]


def test_every_content_type_gives_the_same_predictions(trained: Callable[..., Model]) -> None:
    model = trained("xgboost", "multiclass", "spec")
    p = Predictor(model)
    df = inputs_of(serve_frame(30, seed=11), "spec")
    records = json_records(df)
    lists = [[r[c] for c in p.input_names] for r in records]
    csv_buf = io.StringIO()
    csv.writer(csv_buf, lineterminator="\n").writerows([["" if v is None else v for v in row] for row in lists])
    bodies = [
        (orjson.dumps(records), "application/json"),
        (orjson.dumps({"instances": records}), "application/json; charset=utf-8"),
        (orjson.dumps({"instances": lists}), "application/json"),
        (orjson.dumps({"inputs": lists}), "application/json"),
        (b"\n".join(orjson.dumps(r) for r in records) + b"\n", "application/jsonlines"),
        (b"\n".join(orjson.dumps(r) for r in lists), "application/jsonlines"),
        (csv_buf.getvalue().encode(), "text/csv"),
        (orjson.dumps(records), None),  # no Content-Type: JSON
    ]
    want = model.predict(df).tolist()
    for body, ctype in bodies:
        res = p.invoke(body, ctype, "application/json")
        doc = json.loads(res.body)
        assert [o["prediction"] for o in doc["predictions"]] == want, ctype
        assert doc["classes"] == model.classes
        np.testing.assert_allclose([o["probabilities"] for o in doc["predictions"]], model.predict_proba(df),
                                   rtol=0, atol=1e-9)
    # a single object is one row
    one = p.invoke(orjson.dumps(records[0]), "application/json", None)
    assert one.n_rows == 1 and json.loads(one.body)["predictions"][0]["prediction"] == want[0]


def test_invoke_result_and_response_formats(trained: Callable[..., Model]) -> None:
    model = trained("xgboost", "binary", "auto")
    p = Predictor(model)
    df = inputs_of(serve_frame(3, seed=12), "auto")
    records = json_records(df)
    body = orjson.dumps(records)
    res = p.invoke(body, "application/json", None)
    assert isinstance(res, InvokeResult)
    assert res.content_type == "application/json" and res.n_rows == 3 and res.model_ms > 0
    assert [list(r) for r in res.records] == [p.input_names] * 3
    proba = model.predict_proba(df)
    labels = model.predict(df).tolist()
    # JSON lines: one object per line
    jl = p.invoke(body, "application/json", "application/jsonlines")
    assert jl.content_type == "application/jsonlines"
    lines = jl.body.decode().splitlines()
    assert [json.loads(x)["prediction"] for x in lines] == labels
    # CSV: prediction, then one probability per class, floats that read back exactly
    c = p.invoke(body, "application/json", "text/csv")
    rows = [line.split(",") for line in c.body.decode().splitlines()]
    assert [int(r[0]) for r in rows] == labels
    assert np.array_equal(np.array([[float(x) for x in r[1:]] for r in rows]), proba)
    # */* and no Accept answer in the request's format
    assert p.invoke(_csv_of(records, p), "text/csv", "*/*").content_type == "text/csv"
    assert p.invoke(_csv_of(records, p), "text/csv", None).content_type == "text/csv"
    assert p.invoke(body, "application/json", "").content_type == "application/json"
    assert p.invoke(body, "application/json", "text/csv;q=0.2, application/json").content_type == "application/json"
    # encode() alone
    out, ctype = p.encode(res.outputs, None, request_content_type="application/jsonlines")
    assert ctype == "application/jsonlines" and out.count(b"\n") == 3


def _csv_of(records: list[dict[str, Any]], p: Predictor) -> bytes:
    return "".join(",".join("" if r[c] is None else str(r[c]) for c in p.input_names) + "\n"
                   for r in records).encode()


def test_regression_outputs(trained: Callable[..., Model]) -> None:
    model = trained("lightgbm", "regression", "spec")
    p = Predictor(model)
    df = inputs_of(serve_frame(4, seed=13), "spec")
    res = p.invoke(orjson.dumps(json_records(df)), "application/json", None)
    doc = json.loads(res.body)
    assert "classes" not in doc and set(doc["predictions"][0]) == {"prediction"}
    c = p.invoke(_csv_of(json_records(df), p), "text/csv", None)
    assert c.content_type == "text/csv"
    assert [float(x) for x in c.body.decode().split()] == model.predict(df).tolist()


# -- bad requests ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor(trained: Callable[..., Model]) -> Predictor:
    return Predictor(trained("xgboost", "binary", "spec"), max_rows=5, max_payload_bytes=4000)


@pytest.fixture
def good() -> dict[str, Any]:
    return {"x1": 0.5, "x2": None, "n": 3, "city": "paris", "day": "2024-03-01T00:00:00"}


def test_unknown_content_type_and_accept(predictor: Predictor, good: dict[str, Any]) -> None:
    body = orjson.dumps([good])
    with pytest.raises(UnsupportedMediaType, match=r"application/xml.*application/json, application/jsonlines, text/csv"):
        predictor.invoke(body, "application/xml", None)
    with pytest.raises(NotAcceptable, match="image/png"):
        predictor.invoke(body, "application/json", "image/png")
    with pytest.raises(NotAcceptable):
        predictor.encode([{"prediction": 1}], "application/xml")
    assert UnsupportedMediaType.http_status == 415 and NotAcceptable.http_status == 406


def test_payload_limits(predictor: Predictor, good: dict[str, Any]) -> None:
    with pytest.raises(PayloadTooLarge, match="at most 4000 bytes"):
        predictor.invoke(b"[" + b" " * 5000 + b"]", "application/json", None)
    with pytest.raises(PayloadTooLarge, match=r"6 rows.*at most 5 rows"):
        predictor.invoke(orjson.dumps([good] * 6), "application/json", None)
    assert len(predictor.predict_records([good] * 5)) == 5


def test_malformed_bodies_say_where(predictor: Predictor, good: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="not valid JSON at line 2"):
        predictor.decode(b'[{"x1": 1,\n  "x2": }]', "application/json")
    with pytest.raises(InvalidInput, match="line 2 of the JSON lines body is not valid JSON"):
        predictor.decode(orjson.dumps(good) + b"\n{oops\n", "application/jsonlines")
    with pytest.raises(InvalidInput, match="line 2 of the JSON lines body is a number"):
        predictor.decode(orjson.dumps(good) + b"\n3\n", "application/jsonlines")
    with pytest.raises(InvalidInput, match="CSV body is malformed at line 2"):
        predictor.decode(b'1,2,3,paris,2024-01-01\n1,2,3,"par"is,2024-01-01\n', "text/csv")
    with pytest.raises(InvalidInput, match=r"row 1 has 3 value\(s\); the model takes 5 column\(s\) in this order: x1"):
        predictor.decode(b"1,2,3,paris,2024-01-01\n1,2,3\n", "text/csv")
    with pytest.raises(InvalidInput, match="no rows"):
        predictor.decode(b"", "text/csv")
    with pytest.raises(InvalidInput, match="no rows"):
        predictor.decode(b"[]", "application/json")
    with pytest.raises(InvalidInput, match="the JSON body is a string"):
        predictor.decode(b'"hello"', "application/json")
    with pytest.raises(InvalidInput, match="row 1 of the JSON list is a number"):
        predictor.decode(orjson.dumps([good, 5]), "application/json")
    with pytest.raises(InvalidInput, match="'instances' must be a list"):
        predictor.decode(b'{"instances": 5}', "application/json")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        predictor.decode(b"\xff\xfe1,2", "text/csv")


def test_invalid_records_name_the_row_and_column(predictor: Predictor, good: dict[str, Any]) -> None:
    missing = {k: v for k, v in good.items() if k != "city"}
    with pytest.raises(InvalidInput, match=r"row 1: missing column\(s\) city; the model takes exactly x1 \(double\)"):
        predictor.predict_records([good, missing])
    with pytest.raises(InvalidInput, match=r"row 0: unknown column\(s\) churn, extra; the model takes exactly"):
        predictor.predict_records([{**good, "churn": 1, "extra": 2}])
    with pytest.raises(InvalidInput, match=r"row 2, column 'x1': expected a number \(double\), got the string 'abc'"):
        predictor.predict_records([good, good, {**good, "x1": "abc"}])
    with pytest.raises(InvalidInput, match=r"row 0, column 'n': expected an integer \(int64\), got the number 2.5"):
        predictor.predict_records([{**good, "n": 2.5}])
    with pytest.raises(InvalidInput, match=r"row 0, column 'day': expected an ISO 8601 date/time"):
        predictor.predict_records([{**good, "day": "someday"}])
    with pytest.raises(InvalidInput, match=r"row 0, column 'city': expected text, got an object"):
        predictor.predict_records([{**good, "city": {"a": 1}}])
    with pytest.raises(InvalidInput, match=r"row 0, column 'x2': expected a number \(double\), got the boolean true"):
        predictor.predict_records([{**good, "x2": True}])
    with pytest.raises(InvalidInput, match="row 0 is the number 3"):
        predictor.predict_records([3])  # type: ignore[list-item]
    # through invoke too: a 4xx, never a model call
    with pytest.raises(InvalidInput, match="row 0, column 'x1'"):
        predictor.invoke(b"oops,,1,paris,2024-01-01\n", "text/csv", None)


def test_coercions_that_are_fine(predictor: Predictor, good: dict[str, Any]) -> None:
    base = predictor.predict_records([good])
    # ints for floats, integral floats for ints, numeric strings, empty CSV fields as missing
    same = [
        {**good, "x1": "0.5"},
        {**good, "n": 3.0},
        {**good, "n": "3"},
        {**good, "x2": ""},
        {**good, "day": "2024-03-01"},
    ]
    for rec in same:
        assert predictor.predict_records([rec]) == base, rec
    assert predictor.predict_records([{**good, "x1": 1}]) == predictor.predict_records([{**good, "x1": 1.0}])
    csv_body = b'0.5,,3,"paris",2024-03-01T00:00:00\r\n'
    assert predictor.invoke(csv_body, "text/csv", "application/json").outputs == base


def test_many_rows_are_validated_column_by_column(predictor: Predictor, good: dict[str, Any]) -> None:
    v = predictor._validator
    # a few rows, or records with another field order, are checked one by one (no columns)
    assert v.validate_columns([good] * 3)[1] is None
    shuffled = {k: good[k] for k in reversed(list(good))}
    records, columns = v.validate_columns([good] * 9 + [shuffled])
    assert columns is None and len(records) == 10 and records[-1] == records[0]
    assert list(records[-1]) == predictor.input_names
    # many records in input order: the columns too, with the values converted where needed
    rows = [{**good, "x1": i, "n": float(i), "x2": None if i % 2 else 0.25} for i in range(12)]
    records, columns = v.validate_columns(rows)
    assert columns is not None and list(columns) == predictor.input_names
    for name in predictor.input_names:
        assert list(columns[name]) == [r[name] for r in records], name
    assert [type(x) for x in columns["x1"]] == [float] * 12 and [type(x) for x in columns["n"]] == [int] * 12
    # a bad value among many: the message names the first bad row, as row by row
    with pytest.raises(InvalidInput, match=r"row 10, column 'x1': expected a number"):
        v.validate_columns([*rows[:10], {**good, "x1": "abc"}, good])


def test_columns_that_need_values_take_floats_as_they_are() -> None:
    from loopml.serve._fastpath import Validator

    v = Validator([{"name": "x1", "type": "double", "nullable": False},
                   {"name": "x2", "type": "double", "nullable": True},
                   {"name": "n", "type": "int64", "nullable": False}])
    rows = [{"x1": 0.25 * i, "x2": None, "n": i} for i in range(10)]
    records, columns = v.validate_columns(rows)
    assert columns is not None and columns["x1"] == tuple(r["x1"] for r in rows) and records == rows
    with pytest.raises(InvalidInput, match=r"row 7, column 'x1': is null, but this model needs a value"):
        v.validate_columns([*rows[:7], {**rows[7], "x1": float("nan")}, *rows[8:]])
    with pytest.raises(InvalidInput, match=r"row 2, column 'x1': is null"):
        v.validate_columns([*rows[:2], {**rows[2], "x1": None}, *rows[3:]])


def test_small_requests_go_record_by_record_and_big_ones_column_by_column(
        trained: Callable[..., Model]) -> None:
    model = trained("xgboost", "binary", "spec")
    p = Predictor(model)
    assert p._rows.vector is not None and p._rows.vector_rows == 8
    df = inputs_of(serve_frame(40, seed=31, unseen=True), "spec")
    records = json_records(df)
    body = orjson.dumps(records)
    big = p.invoke(body, "application/json", None).outputs
    assert p._rows.vector_fallbacks == 0
    _check_parity(model, df, big)
    # the record-by-record path (no compiled recipe) gives the very same outputs
    p._rows.vector = None
    assert p.invoke(body, "application/json", None).outputs == big
    assert [p.invoke(orjson.dumps([r]), "application/json", None).outputs[0] for r in records] == big


def test_model_failures_are_model_errors(trained: Callable[..., Model], tmp_path: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopml.train import load_model_package
    from tests.train._data import package

    df = serve_frame(120, seed=3)
    folder, _ = package(tmp_path, df[["x1", "x2", "n", "y_bin"]], "linear", {}, target="y_bin", name="broken")
    model = load_model_package(folder)
    # a model whose estimator expects other features: the library raises on valid input
    model.algorithm.estimator_ = LogisticRegression().fit(np.eye(2), [0, 1])  # type: ignore[attr-defined]
    p = Predictor(model)
    with pytest.raises(ModelError, match=r"the model failed: ValueError: .*2 features") as e:
        p.predict_records([{"x1": 1.0, "x2": 2.0, "n": 3}])
    assert e.value.http_status == 424 and e.value.code == "ModelError"


def test_limits_are_checked(trained: Callable[..., Model]) -> None:
    with pytest.raises(InvalidInput, match="max_rows"):
        Predictor(trained("xgboost", "binary", "auto"), max_rows=0)
    with pytest.raises(InvalidInput, match="max_payload_bytes"):
        Predictor(trained("xgboost", "binary", "auto"), max_payload_bytes=0)


# -- frames and the registry ------------------------------------------------------------------------
def test_predict_frame(trained: Callable[..., Model]) -> None:
    model = trained("random_forest", "multiclass", "spec")
    p = Predictor(model)
    df = inputs_of(serve_frame(20, seed=5), "spec").assign(extra=1)
    df.index = range(100, 120)
    out = p.predict_frame(df)
    assert list(out.columns) == ["prediction", "probabilities"] and list(out.index) == list(df.index)
    assert out["prediction"].tolist() == model.predict(df).tolist()
    np.testing.assert_array_equal(np.array(out["probabilities"].tolist()), model.predict_proba(df))
    with pytest.raises(InvalidInput, match=r"no column.*'city'"):
        p.predict_frame(df.drop(columns=["city"]))
    with pytest.raises(InvalidInput, match="DataFrame"):
        p.predict_frame([1, 2])


def test_load_from_the_registry(ws: Any, trained: Callable[..., Model]) -> None:
    from loopml.registry import register_model

    model = trained("xgboost", "binary", "auto")
    v = register_model(ws, model.path, "churn")
    p = Predictor.load(ws, f"churn:{v.version}", max_rows=7)
    assert p.max_rows == 7 and p.model.sha256 == model.sha256
    assert Predictor.load(ws, "churn").input_names == ["x1", "x2", "n", "city", "day"]
    df = inputs_of(serve_frame(10, seed=2), "auto")
    _check_parity(model, df, p.predict_records(json_records(df)))
