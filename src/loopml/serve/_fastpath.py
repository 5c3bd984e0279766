"""The per-request hot path: input validation and prediction without pandas.

:class:`Validator` is compiled once per model from its signature: one small
converter per input column (by Arrow type), so checking a record is a loop
over plain Python values. :class:`RowPredictor` applies the fitted recipe to
each record (:meth:`FittedRecipe.transform_one`), stacks the records into one
matrix in the algorithm's feature order and calls the library once: the same
functions :meth:`Model.predict` / :meth:`Model.predict_proba` reach through
the DataFrame path, so the numbers are the same. From
:attr:`RowPredictor.vector_rows` rows on, the recipe runs column by column
instead (:mod:`loopml.serve._vector_recipe`), building the very same matrix
with a few numpy operations per column.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import InvalidInput, LoopmlError, ModelError
from loopml.serve._vector_recipe import VectorFallback, VectorRecipe

if TYPE_CHECKING:
    from loopml.train.package import Model

Converter = Callable[[Any], Any]


class _Bad(Exception):
    """A value a converter refuses; the validator adds the row and the column."""


# -- converters, by Arrow type ------------------------------------------------------------------------
_INT_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_TYPES = {"double", "float", "halffloat", "float64", "float32", "float16"}
_STRING_TYPES = {"string", "large_string", "utf8", "large_utf8", "str"}
_INF = math.inf
#: the largest magnitude a model's float32 feature matrix holds; larger numbers would become inf
_F32_MAX = float(np.finfo(np.float32).max)
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, str):
        s = v if len(v) <= 40 else v[:37] + "..."
        return f"the string {s!r}"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return f"{type(v).__name__} {v!r}"


def _missing(nullable: bool, what: str) -> Any:
    if not nullable:
        raise _Bad(f"is null, but this model needs a value ({what}; it saw no missing values in training)")
    return None


def _too_large(v: Any, type_name: str) -> _Bad:
    try:
        shown = f"{float(v):.6g}"
    except OverflowError:  # an integer beyond any float
        digits = str(abs(v))
        rest = digits[1:6].rstrip("0")
        shown = f"{'-' if v < 0 else ''}{digits[0]}{'.' + rest if rest else ''}e+{len(digits) - 1}"
    return _Bad(f"{shown} is out of the range a model computes in (float32, magnitude up to 3.4e38); "
                f"scale the value ({type_name})")


def _float_converter(type_name: str, nullable: bool) -> Converter:
    def conv(v: Any) -> Any:
        t = type(v)
        if t is float:
            if v != v:
                return _missing(nullable, type_name)
            if not -_F32_MAX <= v <= _F32_MAX:
                if v in (_INF, -_INF):
                    raise _Bad(f"expected a finite number ({type_name}), got {_show(v)}")
                raise _too_large(v, type_name)
            return v
        if t is int:
            try:
                x = float(v)
            except OverflowError:
                raise _too_large(v, type_name) from None
            if not -_F32_MAX <= x <= _F32_MAX:
                raise _too_large(v, type_name)
            return x
        if v is None:
            return _missing(nullable, type_name)
        if t is str:
            s = v.strip()
            if not s:
                return _missing(nullable, type_name)
            try:
                x = float(s)
            except ValueError:
                raise _Bad(f"expected a number ({type_name}), got {_show(v)}") from None
            if x != x:
                return _missing(nullable, type_name)
            if x in (_INF, -_INF):
                raise _Bad(f"expected a finite number ({type_name}), got {_show(v)}")
            if not -_F32_MAX <= x <= _F32_MAX:
                raise _too_large(x, type_name)
            return x
        if isinstance(v, (np.floating, np.integer)):
            return conv(v.item())
        raise _Bad(f"expected a number ({type_name}), got {_show(v)}")

    return conv


def _int_converter(type_name: str, nullable: bool) -> Converter:
    def conv(v: Any) -> Any:
        t = type(v)
        if t is int:
            if not -_F32_MAX <= v <= _F32_MAX:
                raise _too_large(v, type_name)
            return v
        if t is float:
            if v != v:
                return _missing(nullable, type_name)
            if v.is_integer():
                return int(v)
            raise _Bad(f"expected an integer ({type_name}), got {_show(v)}")
        if v is None:
            return _missing(nullable, type_name)
        if t is str:
            s = v.strip()
            if not s:
                return _missing(nullable, type_name)
            try:
                return int(s)
            except ValueError:
                pass
            try:
                x = float(s)
            except ValueError:
                raise _Bad(f"expected an integer ({type_name}), got {_show(v)}") from None
            return conv(x)
        if isinstance(v, (np.floating, np.integer)):
            return conv(v.item())
        raise _Bad(f"expected an integer ({type_name}), got {_show(v)}")

    return conv


def _bool_converter(type_name: str, nullable: bool) -> Converter:
    def conv(v: Any) -> Any:
        t = type(v)
        if t is bool:
            return v
        if v is None:
            return _missing(nullable, type_name)
        if t is int and v in (0, 1):
            return bool(v)
        if t is float:
            if v != v:
                return _missing(nullable, type_name)
            if v in (0.0, 1.0):
                return bool(v)
        if t is str:
            s = v.strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            if not s:
                return _missing(nullable, type_name)
        raise _Bad(f"expected true or false, got {_show(v)}")

    return conv


def _string_converter(type_name: str, nullable: bool) -> Converter:
    def conv(v: Any) -> Any:
        t = type(v)
        if t is str:
            return v
        if v is None:
            return _missing(nullable, "text")
        if t is int:
            return str(v)
        if t is float:
            if v != v:
                return _missing(nullable, "text")
            return str(int(v)) if v.is_integer() else repr(v)
        raise _Bad(f"expected text, got {_show(v)}")

    return conv


def _timestamp_converter(type_name: str, nullable: bool) -> Converter:
    import pandas as pd

    tz: str | None = None
    if "tz=" in type_name:
        tz = type_name.split("tz=", 1)[1].rstrip("]").strip() or None

    def conv(v: Any) -> Any:
        if v is None:
            return _missing(nullable, "a date/time")
        if type(v) is float and v != v:
            return _missing(nullable, "a date/time")
        if isinstance(v, str):
            if not v.strip():
                return _missing(nullable, "a date/time")
            try:
                ts = pd.Timestamp(v)
            except (ValueError, TypeError, OverflowError):
                raise _Bad(f"expected an ISO 8601 date/time such as 2024-01-31T12:00:00, got {_show(v)}") from None
        elif isinstance(v, (datetime, date, np.datetime64)):
            ts = pd.Timestamp(v)
        else:
            raise _Bad(f"expected an ISO 8601 date/time string such as 2024-01-31T12:00:00, got {_show(v)}")
        if ts is pd.NaT:
            return _missing(nullable, "a date/time")
        if tz is None and ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        elif tz is not None:
            ts = ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)
        return ts

    return conv


def _date_converter(type_name: str, nullable: bool) -> Converter:
    ts_conv = _timestamp_converter("timestamp[ns]", nullable)

    def conv(v: Any) -> Any:
        ts = ts_conv(v)
        return None if ts is None else ts.date()

    return conv


def _any_converter(type_name: str, nullable: bool) -> Converter:
    def conv(v: Any) -> Any:
        if v is None or (type(v) is float and v != v):
            return _missing(nullable, type_name)
        return v

    return conv


def converter(type_name: str, nullable: bool) -> Converter:
    """The converter for a column of Arrow type ``type_name`` (as the signature names it)."""
    t = type_name.strip().lower()
    if t in _FLOAT_TYPES or t.startswith("decimal"):
        return _float_converter(t, nullable)
    if t in _INT_TYPES:
        return _int_converter(t, nullable)
    if t in ("bool", "boolean"):
        return _bool_converter(t, nullable)
    if t in _STRING_TYPES or (t.startswith("dictionary<") and "values=string" in t):
        return _string_converter(t, nullable)
    if t.startswith("timestamp"):
        return _timestamp_converter(type_name.strip(), nullable)
    if t.startswith("date"):
        return _date_converter(t, nullable)
    return _any_converter(t, nullable)


def _ready_types(type_name: str, nullable: bool) -> frozenset[type]:
    """Python types a column of ``type_name`` takes as they are, with no conversion (maybe none).

    Floats are taken as they are only where nulls are allowed (NaN is a null).
    """
    t = type_name.strip().lower()
    if t in _FLOAT_TYPES or t.startswith("decimal"):
        ready: set[type] = {float} if nullable else set()
    elif t in _INT_TYPES:
        ready = {int}
    elif t in ("bool", "boolean"):
        ready = {bool}
    elif t in _STRING_TYPES or (t.startswith("dictionary<") and "values=string" in t):
        ready = {str}
    else:
        return frozenset()
    if nullable:
        ready.add(type(None))
    return frozenset(ready)


def _listing(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


class Validator:
    """Check and convert decoded rows against a model's input signature.

    Parameters
    ----------
    inputs
        The signature's inputs: ``{"name", "type" (an Arrow type name), "nullable"}`` each.
    """

    def __init__(self, inputs: Sequence[dict[str, Any]]) -> None:
        self.names: list[str] = [str(c["name"]) for c in inputs]
        self.types: list[str] = [str(c.get("type", "")) for c in inputs]
        self._name_set = frozenset(self.names)
        self._names_t = tuple(self.names)
        self._convs: list[tuple[str, Converter]] = [
            (str(c["name"]), converter(str(c.get("type", "")), bool(c.get("nullable", True)))) for c in inputs
        ]
        self._n = len(self.names)
        #: per column: name, converter, and the value types it takes as they are
        self._plan: list[tuple[str, Converter, frozenset[type]]] = [
            (name, conv, _ready_types(str(c.get("type", "")), bool(c.get("nullable", True))))
            for (name, conv), c in zip(self._convs, inputs, strict=True)
        ]
        #: the same for whole columns: floats of a column that needs values are taken as they are
        #: too, once a look at the column finds no NaN in it
        self._column_plan: list[tuple[str, Converter, frozenset[type], bool]] = []
        for (name, conv, ready), c in zip(self._plan, inputs, strict=True):
            t = str(c.get("type", "")).strip().lower()
            no_nan = (t in _FLOAT_TYPES or t.startswith("decimal")) and float not in ready
            self._column_plan.append((name, conv, ready | {float} if no_nan else ready, no_nan))

    def expected(self) -> str:
        """``name (type), ...`` for error messages."""
        return _listing([f"{n} ({t})" for n, t in zip(self.names, self.types, strict=True)])

    def validate(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """Records in signature order with converted values, from records or value lists.

        Many rows are checked column by column (a set of the value types per
        column, conversion only where needed); anything wrong there is looked
        for again row by row, so the message names the first bad row.

        Raises
        ------
        InvalidInput
            Naming the row (from 0), the column and what is expected.
        """
        return self.validate_columns(rows)[0]

    def validate_columns(self, rows: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, Sequence[Any]] | None]:
        """:meth:`validate`, and the validated values column by column where they were checked so.

        Returns
        -------
        records : list of dict
            What :meth:`validate` returns.
        columns : dict or None
            Input name -> the validated values of every row (the records' values,
            column-wise), or None where the rows were checked one by one.
        """
        if len(rows) >= 8:
            out = self._columns(rows)
            if out is not None:
                return out
        return self._rows(rows), None

    def _columns(self, rows: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, Sequence[Any]]] | None:
        names = self._names_t
        for row in rows:  # records with exactly the input keys, in input order (what clients mostly send)
            if type(row) is not dict or tuple(row) != names:
                return None
        columns: dict[str, Sequence[Any]] = {}
        changed: list[tuple[str, list[Any]]] = []
        # one pass over the records gives every column (the keys are in input order)
        for (name, conv, ready, no_nan), vals in zip(self._column_plan, zip(*map(dict.values, rows))):  # noqa: B905
            if set(map(type, vals)) <= ready and not (no_nan and any(map(math.isnan, vals))):
                columns[name] = vals
                continue
            try:
                converted = [conv(v) for v in vals]
            except _Bad:
                return None
            columns[name] = converted
            changed.append((name, converted))
        if not changed:
            return list(rows), columns  # nothing to convert: the decoded records are the validated ones
        out = [dict(r) for r in rows]
        for name, new in changed:
            for rec, v in zip(out, new):  # noqa: B905 - equal lengths
                rec[name] = v
        return out, columns

    def _rows(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        append = out.append
        plan = self._plan
        name = ""
        i = 0
        try:
            for i, row in enumerate(rows):
                rec: dict[str, Any] = {}
                if type(row) is dict:
                    if row.keys() != self._name_set:
                        self._keys_error(i, row)
                    for name, conv, ready in plan:
                        v = row[name]
                        rec[name] = v if type(v) in ready else conv(v)
                elif type(row) is list:
                    if len(row) != self._n:
                        raise InvalidInput(
                            f"row {i} has {len(row)} value(s); the model takes {self._n} column(s) in this "
                            f"order: {self.expected()}"
                        )
                    for (name, conv, ready), v in zip(plan, row):  # noqa: B905 - lengths checked above
                        rec[name] = v if type(v) in ready else conv(v)
                else:
                    raise InvalidInput(
                        f"row {i} is {_show(row)}; send a record (an object) or a list of values in the "
                        f"order {_listing(self.names)}"
                    )
                append(rec)
        except _Bad as e:
            raise InvalidInput(f"row {i}, column {name!r}: {e}") from None
        return out

    def _keys_error(self, i: int, row: dict[str, Any]) -> None:
        missing = [n for n in self.names if n not in row]
        extra = [str(k) for k in row if k not in self._name_set]
        parts = []
        if missing:
            parts.append(f"missing column(s) {_listing(missing)}")
        if extra:
            parts.append(f"unknown column(s) {_listing(extra)}")
        raise InvalidInput(f"row {i}: {'; '.join(parts)}; the model takes exactly {self.expected()}")


# -- prediction ------------------------------------------------------------------------------------
class RowPredictor:
    """Predict validated records with a model's recipe and algorithm, without pandas.

    Parameters
    ----------
    model
        The loaded model package.
    small_rows
        Up to this many rows, boosters predict on one thread (an OpenMP team
        costs more than it saves on a few rows).
    vector_rows
        From this many rows on, the recipe runs column by column
        (:class:`~loopml.serve._vector_recipe.VectorRecipe`) and the matrix
        is built from the columns; fewer rows go record by record.

    Attributes
    ----------
    vector
        The compiled recipe of the column path (None for models without the
        matrix contract).
    vector_fallbacks
        Requests the column path handed to the row path (a value it does not
        mirror, or an error the row path reports).
    """

    def __init__(self, model: Model, *, small_rows: int = 512, vector_rows: int = 8) -> None:
        from loopml.train.algorithms._base import (
            BINARY,
            CLASSIFICATION,
            MULTICLASS,
            TabularAlgorithm,
        )

        self.model = model
        algo = model.algorithm
        cls = type(algo)
        self.is_classifier = model.problem_type in CLASSIFICATION
        self.labels: list[Any] | None = list(model.classes) if model.classes is not None else None
        self._recipe_one = model.recipe.transform_one if model.recipe is not None else None
        self.small_rows = small_rows
        self.vector_rows = vector_rows
        self.vector: VectorRecipe | None = None
        self.vector_fallbacks = 0
        #: the matrix path needs the stock DataFrame-to-matrix contract
        self.tabular = (
            isinstance(algo, TabularAlgorithm)
            and cls.predict is TabularAlgorithm.predict
            and cls.predict_proba is TabularAlgorithm.predict_proba
            and hasattr(algo, "features_")
        )
        if self.tabular:
            assert isinstance(algo, TabularAlgorithm)
            self.features: list[str] = list(algo.features_)
            self.dtype = algo.dtype
            self._getter = _itemgetter(self.features)
            self._matrix_fn = algo.proba_matrix if self.is_classifier else algo.predict_matrix
            #: boosters: the library's raw output on one thread (few rows) and on all threads
            self._raw_small, self._raw_big = _booster_raw(algo)
            self._post = {BINARY: "binary", MULTICLASS: "multiclass"}.get(model.problem_type, "values")
            inputs = [str(c["name"]) for c in model.signature.inputs]
            try:
                self.vector = VectorRecipe.compile(model.recipe, inputs, self.features, self.dtype)
            except Exception:  # a recipe the compiler does not understand: the row path serves it
                self.vector = None

    # -- the recipe ---------------------------------------------------------------------------------
    def transformed(self, records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
        """Records after the recipe, with the indexes of the records a filtering step dropped."""
        fn = self._recipe_one
        if fn is None:
            return list(records), []
        from loopml.prep._base import RowDropped

        out: list[dict[str, Any]] = []
        dropped: list[int] = []
        i = 0
        try:
            for i, rec in enumerate(records):
                try:
                    out.append(fn(rec))
                except RowDropped:
                    dropped.append(i)
        except LoopmlError as e:
            raise type(e)(f"row {i}: {e}") from None
        except Exception as e:  # a step failed on a value the validator let through
            raise ModelError(f"row {i}: the model's recipe failed: {type(e).__name__}: {e}") from e
        return out, dropped

    # -- the model ----------------------------------------------------------------------------------
    def predict(self, records: Sequence[dict[str, Any]],
                columns: Mapping[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
        """``{"prediction": ..., "probabilities": [...]}`` per validated record.

        A record a recipe step drops gets ``None`` prediction (and probabilities).

        Parameters
        ----------
        records
            Validated records (:meth:`Validator.validate`).
        columns
            The same values column by column, if at hand
            (:meth:`Validator.validate_columns`); saves reading them out of the records.
        """
        vector = self.vector
        if vector is not None and len(records) >= self.vector_rows:
            n = len(records)
            try:
                X, kept = vector.matrix(columns if columns is not None else vector.columns_of(records), n)
            except VectorFallback:
                self.vector_fallbacks += 1
            else:
                outs = self._predict_matrix(X)
                if kept is None:
                    return outs
                return self._with_dropped(outs, kept.tolist(), n)
        rows, dropped = self.transformed(records)
        outs = self._matrix(rows) if self.tabular else self._generic(rows)
        if dropped:
            blank: dict[str, Any] = {"prediction": None}
            if self.is_classifier:
                blank["probabilities"] = None
            for i in dropped:
                outs.insert(i, dict(blank))
        return outs

    def _with_dropped(self, outs: list[dict[str, Any]], kept: list[int], n: int) -> list[dict[str, Any]]:
        blank: dict[str, Any] = {"prediction": None}
        if self.is_classifier:
            blank["probabilities"] = None
        full: list[dict[str, Any]] = [blank] * n
        for i, o in zip(kept, outs, strict=True):
            full[i] = o
        return [dict(blank) if o is blank else o for o in full]

    def _matrix(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not rows:
            return []
        getter = self._getter
        try:
            X: np.ndarray = np.array([getter(r) for r in rows], dtype=self.dtype)
        except KeyError as e:
            raise InvalidInput(f"a record has no field {e.args[0]!r}, a feature of this model") from None
        except (TypeError, ValueError):
            self._explain_matrix(rows)
            raise
        if X.ndim != 2:
            self._explain_matrix(rows)
        return self._predict_matrix(X)

    def _predict_matrix(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Outputs of the rows of the feature matrix ``X`` (one library call)."""
        n = len(X)
        if not n:
            return []
        labels = self.labels
        try:
            if self._raw_small is None or self._raw_big is None:
                res = self._matrix_fn(X)
                post = "proba" if self.is_classifier else "values"
            else:
                res = (self._raw_small if n <= self.small_rows else self._raw_big)(X)
                post = self._post
        except LoopmlError:
            raise
        except Exception as e:
            raise ModelError(f"the model failed: {type(e).__name__}: {e}") from e
        if post == "binary":
            # what binary_proba + argmax give, without the arrays: [1 - p, p], ties to class 0
            assert labels is not None
            neg, pos = labels[0], labels[1]
            return [{"prediction": pos if p > 1.0 - p else neg, "probabilities": [1.0 - p, p]}
                    for p in np.asarray(res).reshape(-1).tolist()]
        if post in ("multiclass", "proba"):
            assert labels is not None
            proba = np.asarray(res, dtype=np.float64).reshape(n, -1)
            codes = np.argmax(proba, axis=1).tolist()
            return [{"prediction": labels[c], "probabilities": p}
                    for c, p in zip(codes, proba.tolist(), strict=True)]
        return [{"prediction": v} for v in np.asarray(res).tolist()]

    def _explain_matrix(self, rows: list[dict[str, Any]]) -> None:
        for i, r in enumerate(rows):
            for c in self.features:
                v = r[c]
                try:
                    np.array([v], dtype=self.dtype)
                    ok = np.ndim(v) == 0
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise InvalidInput(
                        f"row {i}: feature {c!r} must be a number (or null) after the recipe, got {_show(v)}"
                    )
        raise InvalidInput("the records could not be read as a numeric matrix")  # pragma: no cover

    def _generic(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        algo = self.model.algorithm
        labels = self.labels
        out: list[dict[str, Any]] = []
        i = 0
        try:
            for i, rec in enumerate(rows):  # noqa: B007 - i names the failing row
                if self.is_classifier:
                    assert labels is not None
                    proba = np.asarray(algo.predict_proba_one(rec), dtype=np.float64)
                    out.append({"prediction": labels[int(np.argmax(proba))], "probabilities": proba.tolist()})
                else:
                    value = algo.predict_one(rec)
                    out.append({"prediction": _plain(value)})
        except LoopmlError as e:
            raise type(e)(f"row {i}: {e}") from None
        except Exception as e:
            raise ModelError(f"row {i}: the model failed: {type(e).__name__}: {e}") from e
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _itemgetter(names: Sequence[str]) -> Callable[[dict[str, Any]], Any]:
    if len(names) == 1:
        only = names[0]
        return lambda r: (r[only],)
    return operator.itemgetter(*names)


def _booster_raw(algo: Any) -> tuple[Callable[[np.ndarray], np.ndarray] | None,
                                      Callable[[np.ndarray], np.ndarray] | None]:
    """Raw booster output (what ``_raw`` gives) on one thread and on all threads; (None, None) otherwise.

    A few rows go on one thread: an OpenMP team costs more than it saves there,
    and waits a scheduler slice when another process holds a core.
    """
    from loopml.train.algorithms._boosting import LightGBM, XGBoost

    if isinstance(algo, XGBoost) and hasattr(algo, "_raw_one") and hasattr(algo, "booster_"):
        small = algo._raw_one
        big = algo._raw
        return _XGBDirect.build(algo, lambda: algo._one_thread, small) or small, \
            _XGBDirect.build(algo, lambda: algo.booster_, big) or big
    if isinstance(algo, LightGBM) and hasattr(algo, "booster_"):
        def small_lgb(X: np.ndarray) -> np.ndarray:
            return algo._raw(X, threads=1)

        return small_lgb, algo._raw
    return None, None


class _XGBDirect:
    """XGBoost's in-place prediction through its C API, without the Python wrapper.

    ``Booster.inplace_predict`` spends about 100 us per call in Python (input
    sniffing, JSON encoding of the array interface and the arguments, output
    copies) around the C call; for a few rows that is most of the time. This
    calls the same C function (``XGBoosterPredictFromDense``) with the
    arguments prepared once, so the numbers are the very same ones. Built only
    after a probe gives results identical to ``inplace_predict``.
    """

    _ARGS = (b'{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, '
             b'"missing": NaN, "strict_shape": false, "cache_id": 0}')

    def __init__(self, booster: Any) -> None:
        import ctypes
        import threading

        from xgboost.core import _LIB, c_bst_ulong

        self._ctypes = ctypes
        self._booster = booster  # keeps the handle alive
        self._handle = booster.handle
        self._fn = _LIB.XGBoosterPredictFromDense
        self._error = _LIB.XGBGetLastError
        self._ulong = c_bst_ulong
        self._local = threading.local()

    @classmethod
    def build(cls, algo: Any, booster: Callable[[], Any],
              reference: Callable[[np.ndarray], np.ndarray]) -> _XGBDirect | None:
        """A direct caller for ``booster()`` if it gives what ``reference`` gives on a probe, else None."""
        try:
            n = len(algo.features_)
            probe = np.zeros((3, n), dtype=np.float32)
            probe[1] = np.nan
            probe[2] = np.linspace(-3.0, 3.0, n, dtype=np.float32)
            want = np.asarray(reference(probe))  # the one-thread booster exists after this
            direct = cls(booster())
            got = direct(probe)
            if got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True):
                return direct
        except Exception:  # an xgboost without this C API: keep the Python wrapper
            return None
        return None

    def _refs(self) -> tuple[Any, Any, Any, Any, Any, Any]:
        ct = self._ctypes
        shape = ct.POINTER(self._ulong)()
        dims = self._ulong()
        preds = ct.POINTER(ct.c_float)()
        refs = (shape, dims, preds, ct.byref(shape), ct.byref(dims), ct.byref(preds))
        self._local.refs = refs
        return refs

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if X.dtype != np.float32 or not X.flags.c_contiguous or X.ndim != 2:
            X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)
        try:
            shape, dims, preds, b_shape, b_dims, b_preds = self._local.refs
        except AttributeError:
            shape, dims, preds, b_shape, b_dims, b_preds = self._refs()
        iface = b'{"data": [%d, true], "strides": null, "typestr": "<f4", "shape": [%d, %d], "version": 3}' % (
            X.ctypes.data, X.shape[0], X.shape[1])
        if self._fn(self._handle, iface, self._ARGS, None, b_shape, b_dims, b_preds) != 0:
            raise RuntimeError(self._error().decode(errors="replace"))
        nd = dims.value
        dims_ = [int(shape[i]) for i in range(nd)]
        total = 1
        for d in dims_:
            total *= d
        ct = self._ctypes
        buf = (ct.c_float * total).from_address(ct.addressof(preds.contents))
        return np.frombuffer(buf, dtype=np.float32).copy().reshape(dims_)


__all__ = ["RowPredictor", "Validator", "converter"]
