"""The fitted recipe as ONNX nodes, in front of the model graph: the edge graph.

:func:`convert_recipe` turns a :class:`~loopml.prep.FittedRecipe` into ONNX
nodes that read the *raw* input columns (one named input per column the
recipe or the model reads, ``[N, 1]``) and produce the model's feature matrix;
:func:`merge` puts them in front of the model graph of :mod:`._onnx`, so one
graph maps raw rows to predictions.

Inputs are typed by the signature: numbers and booleans as ``tensor(double)``
(NaN is missing; float32 would round values before the recipe and move tree
splits, and int64 cannot carry a missing value), text as ``tensor(string)``
(``"__missing__"`` is missing, as loopml's encoders read it), dates/times as
``tensor(int64)`` nanoseconds since 1970 on the wall clock (``-2**63``, NaT, is
missing). The recipe runs in float64, as loopml runs it, and the features are
cast to float32 at the end, as the model reads them.

Steps are written with standard ONNX operators (opset 13 and later) plus
``ai.onnx.ml`` ``LabelEncoder`` for category lookups. A step that has no
faithful translation is reported with the reason (:class:`StepReport`); the
caller then keeps the recipe outside the graph.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.prep._base import MISSING, NS_PER_DAY

if TYPE_CHECKING:
    import onnx

    from loopml.prep import FittedRecipe, Step

NUMBER, STRING, DATETIME = "number", "string", "datetime"
#: how a missing value reaches the graph, per input kind
MISSING_VALUE = {NUMBER: "NaN", STRING: MISSING, DATETIME: "-9223372036854775808 (NaT)"}
ONNX_TYPES = {NUMBER: "tensor(double)", STRING: "tensor(string)", DATETIME: "tensor(int64)"}
NAT = int(np.iinfo(np.int64).min)
#: the name of the recipe's output inside the edge graph (the model's input)
FEATURES = "loopml:features"
#: the lowest opsets the recipe nodes need
MIN_OPSET = 13
MIN_ML_OPSET = 2

_NUMERIC_TYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "halffloat", "float", "double", "float16", "float32", "float64"}
_TEXT_TYPES = {"string", "large_string", "utf8", "large_utf8"}
_HISTORY = ("reads earlier rows of the same entity and the history fitted with the recipe; a graph maps "
            "each row on its own")
#: step kind -> why it never converts (whatever its parameters)
UNCONVERTIBLE = {
    "drop_duplicates": "drops repeated rows of a batch; a graph returns one prediction per input row",
    "drop_rows": "removes rows; a graph returns one prediction per input row",
    "parse_dates": "parses text into dates/times, which no ONNX operator does; send the column as a date/time "
                   "and fit the recipe without parse_dates",
    "tfidf": "tokenises text with scikit-learn's regular expression; standard ONNX operators do not tokenise",
    "hashing": "hashes terms with MurmurHash3, which no ONNX operator computes",
    "lag": _HISTORY, "rolling": _HISTORY, "diff": _HISTORY, "group_agg": _HISTORY,
}


class Unconvertible(Exception):
    """A step (or the model graph) has no faithful ONNX translation; the message says why."""


@dataclass(frozen=True)
class EdgeInput:
    """One input of the edge graph: a raw column, as the caller sends it."""

    name: str
    kind: str
    signature_type: str

    @property
    def onnx_type(self) -> str:
        """``tensor(double)``, ``tensor(string)`` or ``tensor(int64)``."""
        return ONNX_TYPES[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """The manifest form."""
        return {"name": self.name, "kind": self.kind, "onnx_type": self.onnx_type, "shape": [None, 1],
                "signature_type": self.signature_type, "missing": MISSING_VALUE[self.kind]}


@dataclass(frozen=True)
class StepReport:
    """Whether one recipe step became ONNX nodes, and if not, why."""

    step: int
    kind: str
    converted: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {"step": self.step, "kind": self.kind, "converted": self.converted}
        if self.reason:
            out["reason"] = self.reason
        return out

    def __str__(self) -> str:
        return f"step {self.step} ({self.kind}): {self.reason}" if self.reason else f"step {self.step} ({self.kind})"


@dataclass
class RecipeGraph:
    """The recipe as ONNX nodes (valid when :attr:`convertible`)."""

    inputs: list[EdgeInput]
    nodes: list[Any]
    initializers: list[Any]
    steps: list[StepReport]
    output: str = FEATURES
    problem: str = ""

    @property
    def convertible(self) -> bool:
        """True when every step converted and the features could be assembled."""
        return not self.problem and all(s.converted for s in self.steps)

    @property
    def unconvertible(self) -> list[StepReport]:
        """The steps that did not convert."""
        return [s for s in self.steps if not s.converted]

    def why_not(self) -> str:
        """One line: which steps did not convert and why."""
        parts = [str(s) for s in self.unconvertible]
        if self.problem:
            parts.append(self.problem)
        return "; ".join(parts)


def input_kind(signature_type: str) -> str | None:
    """The edge input kind of an Arrow type name (as the signature writes it), or None."""
    t = signature_type.strip()
    if t in _NUMERIC_TYPES or t.startswith("decimal"):
        return NUMBER
    if t in _TEXT_TYPES or (t.startswith("dictionary<values=") and t.split(",")[0].split("=")[1] in _TEXT_TYPES):
        return STRING
    if t.startswith("timestamp[") and ("tz=" not in t or t.rstrip("]").endswith(("tz=UTC", "tz=utc"))):
        return DATETIME
    return None


# -- the graph builder ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Col:
    kind: str
    tensor: str
    index: int = 0


class _Graph:
    """Nodes and initializers with fresh names (``loopml:<hint>:<n>``)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"loopml:{hint}:{self._n}"

    def const(self, value: Any, dtype: Any) -> str:
        from onnx import numpy_helper

        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes() if arr.dtype != object else repr(arr.tolist()).encode())
        name = self._consts.get(key)
        if name is None:
            name = self._consts[key] = self.fresh("const")
            self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def num(self, value: Any) -> str:
        """A float64 constant (scalars broadcast; lists become one ``[1, k]`` row)."""
        arr = np.asarray(value, dtype=np.float64)
        return self.const(arr.reshape(1, -1) if arr.ndim == 1 else arr, np.float64)

    def i64(self, value: Any) -> str:
        arr = np.asarray(value, dtype=np.int64)
        return self.const(arr.reshape(1, -1) if arr.ndim == 1 else arr, np.int64)

    def op(self, op_type: str, *inputs: str, domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, domain=domain, **attrs))
        return out

    # common shapes of several nodes
    def cast(self, x: str, to: str) -> str:
        from onnx import TensorProto

        return self.op("Cast", x, to={"double": TensorProto.DOUBLE, "float": TensorProto.FLOAT,
                                      "int64": TensorProto.INT64, "bool": TensorProto.BOOL}[to])

    def rsum(self, x: str) -> str:
        """Sum over axis 1, keeping it (``[N, k] -> [N, 1]``)."""
        return self.op("ReduceSum", x, self.const(np.array([1], dtype=np.int64), np.int64), keepdims=1)

    def floordiv(self, a: str, b: int) -> str:
        """Floor division of int64 ``a`` by a positive constant (ONNX Div truncates)."""
        d = self.i64(b)
        return self.op("Div", self.op("Sub", a, self.op("Mod", a, d, fmod=0)), d)

    def lookup(self, x: str, keys: Sequence[str], values: Sequence[int], default: int) -> str:
        """String ``x`` -> int64 code by a table (``ai.onnx.ml`` LabelEncoder)."""
        if not keys:  # LabelEncoder needs a key: one no input can be
            keys, values = ["\x00loopml:no-key"], [default]
        return self.op("LabelEncoder", x, domain="ai.onnx.ml", keys_strings=list(keys),
                       values_int64s=[int(v) for v in values], default_int64=int(default))

    def where_nan(self, mask: str, x: str) -> str:
        """``x`` with NaN where ``mask`` is true."""
        return self.op("Where", mask, self.num(np.nan), x)


def _cat_str(v: Any) -> str:
    if type(v) is float and v.is_integer():
        return str(int(v))
    return str(v)


def _cat_number(key: str) -> float | None:
    """The number a category of a numeric column stands for (None: it can never match a number)."""
    if key in ("True", "False"):
        return 1.0 if key == "True" else 0.0
    try:
        f = float(key)
    except ValueError:
        return None
    return f if f == f and _cat_str(f) == key else None


# -- the recipe ------------------------------------------------------------------------------------------
class _Converter:
    def __init__(self, signature_inputs: Sequence[Mapping[str, Any]]) -> None:
        self.g = _Graph()
        self.cols: dict[str, _Col] = {}
        self.width: dict[str, int] = {}
        self.raw: dict[str, EdgeInput | str] = {}  # tensor name of a raw input -> its input, or why it cannot be one
        self.used: dict[str, EdgeInput] = {}
        for c in signature_inputs:
            name, t = str(c["name"]), str(c.get("type", ""))
            kind = input_kind(t)
            self.cols[name] = _Col(kind or "other", name)
            self.width[name] = 1
            self.raw[name] = EdgeInput(name, kind, t) if kind else t

    # -- reading and writing columns ----------------------------------------------------------------
    def col(self, c: str, where: str) -> _Col:
        col = self.cols.get(c)
        if col is None:
            raise Unconvertible(f"{where} reads column {c!r}, which is not there at that point")
        raw = self.raw.get(col.tensor)
        if raw is not None:
            if isinstance(raw, str):
                raise Unconvertible(f"input column {c!r} has the type {raw}, which the edge graph does not take "
                                    "(numbers, booleans, text and timestamps do)")
            self.used[raw.name] = raw
        return col

    def kind_of(self, c: str, where: str) -> str:
        return self.col(c, where).kind

    def num(self, names: Sequence[str], where: str) -> str:
        """The columns as one float64 ``[N, k]`` tensor."""
        cols = []
        for c in names:
            col = self.col(c, where)
            if col.kind != NUMBER:
                raise Unconvertible(f"{where} needs numbers, but column {c!r} holds {col.kind} values here")
            cols.append(col)
        if len(cols) == 1 and self.width[cols[0].tensor] == 1:
            return cols[0].tensor
        t0 = cols[0].tensor
        if all(col.tensor == t0 for col in cols) and [col.index for col in cols] == list(range(self.width[t0])):
            return t0
        parts: list[str] = []
        i = 0
        while i < len(cols):  # runs of columns from one tensor: one Gather (or the tensor itself)
            j = i
            while j + 1 < len(cols) and cols[j + 1].tensor == cols[i].tensor:
                j += 1
            run = cols[i:j + 1]
            t = run[0].tensor
            idx = [col.index for col in run]
            if idx == list(range(self.width[t])):
                parts.append(t)
            else:
                parts.append(self.g.op("Gather", t, self.g.const(np.array(idx, dtype=np.int64), np.int64), axis=1))
            i = j + 1
        return parts[0] if len(parts) == 1 else self.g.op("Concat", *parts, axis=1)

    def one(self, c: str, kind: str, where: str) -> str:
        """One column of ``kind`` as an ``[N, 1]`` tensor."""
        if kind == NUMBER:
            return self.num([c], where)
        col = self.col(c, where)
        if col.kind != kind:
            raise Unconvertible(f"{where} needs {kind} values, but column {c!r} holds {col.kind} values here")
        return col.tensor

    def put(self, names: Sequence[str], tensor: str, kind: str = NUMBER) -> None:
        self.width[tensor] = len(names)
        for j, n in enumerate(names):
            self.cols[n] = _Col(kind, tensor, j)

    def drop(self, names: Sequence[str]) -> None:
        for n in names:
            self.cols.pop(n, None)

    # -- category codes ------------------------------------------------------------------------------
    def codes(self, c: str, table: Mapping[str, int], default: int, where: str) -> str:
        """Column ``c`` read as categories (as loopml's encoders read it) -> int64 codes ``[N, 1]``."""
        kind = self.kind_of(c, where)
        g = self.g
        if kind == STRING:
            return g.lookup(self.one(c, STRING, where), list(table), list(table.values()), default)
        if kind != NUMBER:
            raise Unconvertible(f"{where} reads categories, but column {c!r} holds {kind} values")
        x = self.num([c], where)
        missing_code = int(table.get(MISSING, default))
        keys: list[float] = []
        vals: list[int] = []
        for k, v in table.items():
            f = _cat_number(k) if k != MISSING else None
            if f is not None and f not in keys:
                keys.append(f)
                vals.append(int(v))
        isnan = g.op("IsNaN", x)
        if keys:
            # within a few ulps: a computed column (log, power) may differ from numpy's in the last bit
            tol = 4 * np.spacing(np.abs(np.asarray(keys, dtype=np.float64)))
            eq = g.op("LessOrEqual", g.op("Abs", g.op("Sub", x, g.num(keys))), g.num(tol))
            hit = g.rsum(g.op("Where", eq, g.i64(vals), g.i64(0)))
            found = g.op("Greater", g.rsum(g.cast(eq, "int64")), g.i64(0))
            code = g.op("Where", found, hit, g.i64(default))
        else:
            code = g.op("Where", isnan, g.i64(missing_code), g.i64(default))
        return g.op("Where", isnan, g.i64(missing_code), code)

    def is_missing_text(self, x: str) -> str:
        return self.g.cast(self.g.lookup(x, [MISSING], [1], 0), "bool")

    # -- the steps ----------------------------------------------------------------------------------
    def step(self, step: Step, where: str) -> None:
        fn: Callable[[Any, str], None] | None = getattr(self, f"_s_{step.kind}", None)
        if fn is None:
            raise Unconvertible(UNCONVERTIBLE.get(step.kind, "has no ONNX translation in loopml"))
        fn(step, where)

    def _s_impute(self, s: Any, where: str) -> None:
        if s.strategy in ("ffill", "bfill", "interpolate"):
            raise Unconvertible(f"strategy {s.strategy} {_HISTORY}")
        g = self.g
        numeric = [c for c in s.columns_ if c in s.numeric_]
        flags: dict[str, str] = {}
        if numeric:
            x = self.num(numeric, where)
            isnan = g.op("IsNaN", x)
            self.put(numeric, g.op("Where", isnan, g.num([float(s.fill_[c]) for c in numeric]), x))
            if s.indicator:
                t = g.cast(isnan, "double")
                self.put([f"{c}_missing" for c in numeric], t)
                flags.update({c: t for c in numeric})
        for c in (c for c in s.columns_ if c not in s.numeric_):
            x = self.one(c, STRING, where)
            miss = self.is_missing_text(x)
            fill = g.const(np.array([[str(s.fill_[c])]], dtype=object), object)
            self.put([c], g.op("Where", miss, fill, x), STRING)
            if s.indicator:
                self.put([f"{c}_missing"], g.cast(miss, "double"))

    def _bounds(self, cols: list[str], lower: list[float], upper: list[float], where: str) -> None:
        g = self.g
        x = self.num(cols, where)
        lo, hi = g.num(lower), g.num(upper)
        self.put(cols, g.op("Where", g.op("Less", x, lo), lo, g.op("Where", g.op("Greater", x, hi), hi, x)))

    def _s_clip(self, s: Any, where: str) -> None:
        nan = float("nan")
        self._bounds(s.columns_, [nan if s.lower_.get(c) is None else float(s.lower_[c]) for c in s.columns_],
                     [nan if s.upper_.get(c) is None else float(s.upper_[c]) for c in s.columns_], where)

    _s_winsorize = _s_clip

    def _s_standardize(self, s: Any, where: str) -> None:
        g = self.g
        x = self.num(s.columns_, where)
        self.put(s.columns_, g.op("Div", g.op("Sub", x, g.num(s.center_)), g.num(s.scale_)))

    _s_robust = _s_standardize

    def _s_minmax(self, s: Any, where: str) -> None:
        g = self.g
        x = self.num(s.columns_, where)
        out = g.op("Add", g.op("Mul", x, g.num(s.scale_)), g.num(s.min_))
        if s.clip:
            lo, hi = g.num(float(s.feature_range[0])), g.num(float(s.feature_range[1]))
            out = g.op("Where", g.op("Less", out, lo), lo, g.op("Where", g.op("Greater", out, hi), hi, out))
        self.put(s.columns_, out)

    def _s_log(self, s: Any, where: str) -> None:
        g = self.g
        self.put(s.columns_, g.op("Log", g.op("Add", self.num(s.columns_, where), g.num(float(s.offset)))))

    def _power(self, s: Any, where: str, yeo: bool) -> None:
        g = self.g
        eps = float(np.spacing(1.0))
        lam = np.asarray(s.lambdas_, dtype=np.float64)
        x = self.num(s.columns_, where)
        one = g.num(1.0)
        if yeo:
            lam0 = np.abs(lam) < eps
            lam2 = np.abs(lam - 2) <= eps
            safe = np.where(lam0, 1.0, lam)
            pos_pow = g.op("Div", g.op("Sub", g.op("Pow", g.op("Add", x, one), g.num(safe)), one), g.num(safe))
            pos = g.op("Where", g.const(lam0.reshape(1, -1), bool), g.op("Log", g.op("Add", x, one)), pos_pow)
            mx1 = g.op("Sub", one, x)  # -x + 1
            other = np.where(lam2, 1.0, 2 - lam)
            neg_pow = g.op("Neg", g.op("Div", g.op("Sub", g.op("Pow", mx1, g.num(other)), one), g.num(other)))
            neg = g.op("Where", g.const(lam2.reshape(1, -1), bool), g.op("Neg", g.op("Log", mx1)), neg_pow)
            out = g.op("Where", g.op("GreaterOrEqual", x, g.num(0.0)), pos,
                       g.op("Where", g.op("Less", x, g.num(0.0)), neg, g.num(np.nan)))
        else:
            lam0 = np.abs(lam) < eps
            safe = np.where(lam0, 1.0, lam)
            powed = g.op("Div", g.op("Sub", g.op("Pow", x, g.num(safe)), one), g.num(safe))
            val = g.op("Where", g.const(lam0.reshape(1, -1), bool), g.op("Log", x), powed)
            out = g.op("Where", g.op("Greater", x, g.num(0.0)), val, g.num(np.nan))
        if s.standardize:
            out = g.op("Div", g.op("Sub", out, g.num(s.mean_)), g.num(s.std_))
        self.put(s.columns_, out)

    def _s_yeo_johnson(self, s: Any, where: str) -> None:
        self._power(s, where, yeo=True)

    def _s_box_cox(self, s: Any, where: str) -> None:
        self._power(s, where, yeo=False)

    def _s_one_hot(self, s: Any, where: str) -> None:
        if s.handle_unknown == "error":
            raise Unconvertible("handle_unknown: error raises on an unseen category, which a graph cannot do; "
                                "refit with handle_unknown: ignore or infrequent")
        g = self.g
        for c in s.columns_:
            k = len(s.categories_[c])
            table = {v: i for i, v in enumerate(s.categories_[c])}
            table.update({v: k for v in s.infrequent_[c]})
            names = s.names_[c]
            unknown = k if (s.handle_unknown == "infrequent" and s.infrequent_[c]) else -1
            code = self.codes(c, table, unknown, where)
            onehot = g.cast(g.op("Equal", code, g.i64(list(range(len(names))))), "double")
            if not s.keep_original:
                self.drop([c])
            self.put(names, onehot)

    def _mapping(self, s: Any, where: str) -> None:
        g = self.g
        for c in s.columns_:
            table = s.tables_[c]
            keys = list(table)
            values = [float(table[k]) for k in keys] + [float(s.default_[c])]
            code = self.codes(c, {k: i for i, k in enumerate(keys)}, len(keys), where)
            out = g.op("Gather", g.const(np.array(values, dtype=np.float64), np.float64), code, axis=0)
            self.put([c], out)

    _s_ordinal = _mapping
    _s_frequency = _mapping
    _s_target_encode = _mapping

    def _labels(self, code: str, valid: str, labels: Sequence[str]) -> str:
        """int64 codes -> label text (``__missing__`` where not ``valid``)."""
        g = self.g
        lab = g.op("LabelEncoder", code, domain="ai.onnx.ml", keys_int64s=list(range(len(labels))),
                   values_strings=[str(v) for v in labels], default_string=MISSING)
        return g.op("Where", valid, lab, g.const(np.array([[MISSING]], dtype=object), object))

    def _s_bin(self, s: Any, where: str) -> None:
        g = self.g
        for c in s.columns_:
            x = self.num([c], where)
            inner = [float(v) for v in s.edges_[c][1:-1]]
            isnan = g.op("IsNaN", x)
            count = (g.rsum(g.cast(g.op("GreaterOrEqual", x, g.num(inner)), "double")) if inner
                     else g.op("Where", isnan, g.num(0.0), g.num(0.0)))
            if s.labels:
                code = g.cast(g.op("Where", isnan, g.num(0.0), count), "int64")
                self.put([c], self._labels(code, g.op("Not", isnan), s.labels), STRING)
            else:
                self.put([c], g.where_nan(isnan, count))

    def _s_drop_columns(self, s: Any, where: str) -> None:
        self.drop(s.dropped_)

    def _select(self, s: Any, where: str) -> None:
        self.drop(s.dropped_)

    _s_select_variance = _select
    _s_select_correlation = _select
    _s_select_mutual_info = _select
    _s_select_model = _select
    _s_select_rfe = _select

    def _s_cast(self, s: Any, where: str) -> None:
        want = {"float": NUMBER, "str": STRING}.get(s.to)
        for c in s.columns_:
            kind = self.kind_of(c, where)
            if kind != want:
                raise Unconvertible(f"casting {kind} column {c!r} to {s.to} is not converted "
                                    "(only float on numbers and str on text, which change nothing)")

    def _s_coerce_numeric(self, s: Any, where: str) -> None:
        for c in s.columns_:
            kind = self.kind_of(c, where)
            if kind != NUMBER:
                raise Unconvertible(f"parsing the {kind} column {c!r} as numbers has no ONNX operator")

    # -- dates --------------------------------------------------------------------------------------
    def _civil(self, ns: str) -> dict[str, str]:
        """int64 calendar fields of wall-clock nanoseconds (NaT handled by the caller)."""
        g = self.g
        days = g.floordiv(ns, NS_PER_DAY)
        # Howard Hinnant's civil_from_days, on non-negative values after the shift
        z = g.op("Add", days, g.i64(719468))
        era = g.floordiv(z, 146097)
        doe = g.op("Sub", z, g.op("Mul", era, g.i64(146097)))

        def div(a: str, b: int) -> str:
            return g.op("Div", a, g.i64(b))

        yoe = div(g.op("Sub", g.op("Add", g.op("Sub", doe, div(doe, 1460)), div(doe, 36524)), div(doe, 146096)), 365)
        y = g.op("Add", yoe, g.op("Mul", era, g.i64(400)))
        doy = g.op("Sub", doe, g.op("Sub", g.op("Add", g.op("Mul", g.i64(365), yoe), div(yoe, 4)), div(yoe, 100)))
        mp = div(g.op("Add", g.op("Mul", g.i64(5), doy), g.i64(2)), 153)
        d = g.op("Add", g.op("Sub", doy, div(g.op("Add", g.op("Mul", g.i64(153), mp), g.i64(2)), 5)), g.i64(1))
        m = g.op("Add", mp, g.op("Where", g.op("Less", mp, g.i64(10)), g.i64(3), g.i64(-9)))
        y = g.op("Add", y, g.cast(g.op("LessOrEqual", m, g.i64(2)), "int64"))
        return {"days": days, "year": y, "month": m, "day": d}

    def _jan1(self, y: str) -> str:
        """Days since 1970 of January 1st of year ``y`` (days_from_civil)."""
        g = self.g
        y1 = g.op("Sub", y, g.i64(1))
        era = g.floordiv(y1, 400)
        yoe = g.op("Sub", y1, g.op("Mul", era, g.i64(400)))
        doe = g.op("Add", g.op("Sub", g.op("Add", g.op("Mul", yoe, g.i64(365)), g.op("Div", yoe, g.i64(4))),
                                      g.op("Div", yoe, g.i64(100))), g.i64(306))
        return g.op("Sub", g.op("Add", g.op("Mul", era, g.i64(146097)), doe), g.i64(719468))

    def _time(self, c: str, where: str) -> tuple[str, str]:
        """Column ``c`` as int64 ns with NaT replaced by 0, and its NaT mask."""
        g = self.g
        ns = self.one(c, DATETIME, where)
        nat = g.op("Equal", ns, g.i64(NAT))
        return g.op("Where", nat, g.i64(0), ns), nat

    def _s_date_parts(self, s: Any, where: str) -> None:
        from loopml.prep.steps.extraction import _holidays

        g = self.g
        for c in s.columns_:
            ns, nat = self._time(c, where)
            civ = self._civil(ns)
            days = civ["days"]
            tod = g.op("Mod", ns, g.i64(NS_PER_DAY), fmod=0)
            dow = g.op("Mod", g.op("Add", days, g.i64(3)), g.i64(7), fmod=0)
            parts = []
            for p in s.parts:
                if p in ("year", "month", "day"):
                    v = civ[p]
                elif p == "quarter":
                    v = g.op("Add", g.op("Div", g.op("Sub", civ["month"], g.i64(1)), g.i64(3)), g.i64(1))
                elif p == "dow":
                    v = dow
                elif p == "dayofyear":
                    v = g.op("Add", g.op("Sub", days, self._jan1(civ["year"])), g.i64(1))
                elif p == "hour":
                    v = g.op("Div", tod, g.i64(3_600_000_000_000))
                elif p == "minute":
                    v = g.op("Div", g.op("Mod", tod, g.i64(3_600_000_000_000), fmod=0), g.i64(60_000_000_000))
                elif p == "weekend":
                    v = g.cast(g.op("GreaterOrEqual", dow, g.i64(5)), "int64")
                elif p == "holiday":
                    import datetime as dt

                    epoch = dt.date(1970, 1, 1)
                    hol = sorted((d - epoch).days for d in _holidays())
                    v = g.cast(g.op("Greater", g.rsum(g.cast(g.op("Equal", days, g.i64(hol)), "int64")),
                                    g.i64(0)), "int64")
                else:  # pragma: no cover - the step validates its parts
                    raise Unconvertible(f"date part {p!r} is not converted")
                parts.append(v)
            block = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
            out = g.where_nan(nat, g.cast(block, "double"))
            if s.drop_original:
                self.drop([c])
            self.put([f"{c}_{p}" for p in s.parts], out)

    def _s_age(self, s: Any, where: str) -> None:
        g = self.g
        bns, bnat = self._time(s.birth, where)
        b = self._civil(bns)
        if s.at:
            ans, anat = self._time(s.at, where)
            a = self._civil(ans)
            ay, am, ad = a["year"], a["month"], a["day"]
            nat = g.op("Or", bnat, anat)
        else:
            import datetime as dt

            t = dt.date.fromisoformat(str(s.at_date)[:10])
            ay, am, ad = g.i64(t.year), g.i64(t.month), g.i64(t.day)
            nat = bnat
        before = g.op("Or", g.op("Less", am, b["month"]),
                      g.op("And", g.op("Equal", am, b["month"]), g.op("Less", ad, b["day"])))
        age_i = g.op("Sub", g.op("Sub", ay, b["year"]), g.cast(before, "int64"))
        age = g.where_nan(nat, g.cast(age_i, "double"))
        self.put([s.name_], age)
        if s.groups:
            groups = [float(v) for v in s.groups]
            count = g.rsum(g.cast(g.op("GreaterOrEqual", age, g.num(groups)), "int64"))
            code = g.op("Sub", count, g.i64(1))  # bisect_right(groups, age) - 1
            valid = g.op("And", g.op("GreaterOrEqual", age, g.num(groups[0])), g.op("Less", age, g.num(groups[-1])))
            code = g.op("Where", valid, code, g.i64(0))
            self.put([f"{s.name_}_group"], self._labels(code, valid, s.labels_), STRING)

    # -- expressions --------------------------------------------------------------------------------
    def _s_expression(self, s: Any, where: str) -> None:
        if s.text_output_:
            raise Unconvertible("the expression gives text, which is not converted")
        v = _Expr(self, s, where).build(s.expr)
        self.put([s.name], v.as_double(self.g))

    def _s_flag_rows(self, s: Any, where: str) -> None:
        v = _Expr(self, s, where).build(s.where)
        self.put([s.name], self.g.cast(v.truth(self.g), "double"))

    # -- the end --------------------------------------------------------------------------------------
    def features(self, features: Sequence[str]) -> str:
        where = "the model"
        missing = [c for c in features if c not in self.cols]
        if missing:
            raise Unconvertible(f"the model reads feature {missing[0]!r}, which the recipe does not produce")
        from onnx import TensorProto, helper

        x = self.num(list(features), where)
        self.g.nodes.append(helper.make_node("Cast", [x], [FEATURES], name=FEATURES, to=TensorProto.FLOAT))
        return FEATURES


# -- the expression language (loopml.prep._expr) as ONNX -------------------------------------------------
@dataclass
class _Val:
    """A typed value of an expression: a tensor (double, bool, string) or a Python constant."""

    kind: str  # "num", "bool", "str" tensors; "const" a Python float or str
    tensor: str = ""
    value: Any = None
    dt: bool = False  # a date column (days since 1970)

    def as_double(self, g: _Graph) -> str:
        if self.kind == "num":
            return self.tensor
        if self.kind == "bool":
            return g.cast(self.tensor, "double")
        if self.kind == "const" and not isinstance(self.value, str):
            return g.num(float(self.value))
        raise Unconvertible("text is used as a number in the expression")

    def truth(self, g: _Graph) -> str:
        if self.kind == "bool":
            return self.tensor
        if self.kind == "num":
            x = self.tensor
            return g.op("And", g.op("Not", g.op("Equal", x, g.num(0.0))), g.op("Not", g.op("IsNaN", x)))
        if self.kind == "const" and not isinstance(self.value, str):
            v = float(self.value)
            return g.const(np.array(v != 0 and v == v), bool)
        raise Unconvertible("text is used as a condition in the expression")


_ARITH = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.Div: "Div", ast.Pow: "Pow"}
_CMP = {ast.Lt: "Less", ast.LtE: "LessOrEqual", ast.Gt: "Greater", ast.GtE: "GreaterOrEqual"}
_UNARY_FN = {"abs": "Abs", "exp": "Exp", "sqrt": "Sqrt", "floor": "Floor", "ceil": "Ceil", "round": "Round",
             "log": "Log"}


class _Expr:
    """Translate one expression, node by node, with numpy's semantics as :mod:`loopml.prep._expr` uses them."""

    def __init__(self, conv: _Converter, step: Any, where: str) -> None:
        self.conv, self.g, self.where = conv, conv.g, where
        self.kinds: dict[str, str] = dict(step.kinds_)

    def build(self, text: str) -> _Val:
        from loopml.prep._expr import _QUOTED

        quoted: dict[str, str] = {}

        def _sub(m: Any) -> str:
            key = f"__col{len(quoted)}__"
            quoted[key] = m.group(1)
            return key

        self.quoted = quoted
        tree = ast.parse(_QUOTED.sub(_sub, text).strip(), mode="eval")
        out = self.node(tree.body)
        if out.kind == "const":
            raise Unconvertible("the expression is a constant")
        return out

    def _bad(self, what: str) -> Unconvertible:
        return Unconvertible(f"{what} in the expression is not converted")

    def node(self, n: ast.AST) -> _Val:
        g = self.g
        if isinstance(n, ast.Constant):
            v = n.value
            if isinstance(v, bool) or v is None:
                return _Val("const", value=float("nan") if v is None else float(v))
            return _Val("const", value=float(v) if isinstance(v, (int, float)) else v)
        if isinstance(n, ast.Name):
            return self.column(self.quoted.get(n.id, n.id))
        if isinstance(n, ast.BinOp):
            a, b = self.node(n.left), self.node(n.right)
            x, y = self.number(a), self.number(b)
            if type(n.op) in _ARITH:
                return _Val("num", g.op(_ARITH[type(n.op)], x, y))
            if isinstance(n.op, ast.FloorDiv):
                return _Val("num", g.op("Floor", g.op("Div", x, y)))
            if isinstance(n.op, ast.Mod):  # numpy's mod takes the sign of the divisor
                r = g.op("Mod", x, y, fmod=1)
                fix = g.op("And", g.op("Not", g.op("Equal", r, g.num(0.0))),
                           g.op("Xor", g.op("Less", r, g.num(0.0)), g.op("Less", y, g.num(0.0))))
                return _Val("num", g.op("Where", fix, g.op("Add", r, y), r))
            raise self._bad(f"the operator {type(n.op).__name__}")
        if isinstance(n, ast.UnaryOp):
            operand = self.node(n.operand)
            if isinstance(n.op, ast.USub):
                return _Val("num", g.op("Neg", self.number(operand)))
            if isinstance(n.op, ast.UAdd):
                return _Val("num", self.number(operand))
            if isinstance(n.op, ast.Not):
                return _Val("bool", g.op("Not", operand.truth(g)))
            raise self._bad("the operator ~")
        if isinstance(n, ast.BoolOp):
            parts = [self.node(v).truth(g) for v in n.values]
            out = parts[0]
            for p in parts[1:]:
                out = g.op("And" if isinstance(n.op, ast.And) else "Or", out, p)
            return _Val("bool", out)
        if isinstance(n, ast.Compare):
            return self.compare(n)
        if isinstance(n, ast.IfExp):
            return self.ifelse(self.node(n.test), self.node(n.body), self.node(n.orelse))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            return self.call(n.func.id, [self.node(a) for a in n.args])
        raise self._bad(f"{type(n).__name__} syntax")

    def column(self, name: str) -> _Val:
        g = self.g
        kind = self.kinds.get(name, "num")
        if kind == "num":
            return _Val("num", self.conv.num([name], self.where))
        if kind == "dt":
            ns = self.conv.one(name, DATETIME, self.where)
            nat = g.op("Equal", ns, g.i64(NAT))
            days = g.op("Div", g.cast(ns, "double"), g.num(float(NS_PER_DAY)))
            return _Val("num", g.where_nan(nat, days), dt=True)
        return _Val("str", self.conv.one(name, STRING, self.where))

    def number(self, v: _Val) -> str:
        if v.kind == "str" or (v.kind == "const" and isinstance(v.value, str)):
            raise self._bad("arithmetic on text")
        return v.as_double(self.g)

    def isnull(self, v: _Val) -> str:
        g = self.g
        if v.kind == "num":
            return g.op("IsNaN", v.tensor)
        if v.kind == "str":
            return self.conv.is_missing_text(v.tensor)
        if v.kind == "bool":
            return g.op("And", v.tensor, g.const(np.array(False), bool))
        raise self._bad("isnull of a constant")

    def ifelse(self, c: _Val, a: _Val, b: _Val) -> _Val:
        g = self.g
        cond = c.truth(g)
        if a.kind == "bool" and b.kind == "bool":
            return _Val("bool", g.op("Where", cond, a.tensor, b.tensor))
        return _Val("num", g.op("Where", cond, self.number(a), self.number(b)))

    def call(self, fn: str, args: list[_Val]) -> _Val:
        g = self.g
        if fn in _UNARY_FN and len(args) == 1:
            return _Val("num", g.op(_UNARY_FN[fn], self.number(args[0])))
        if fn == "log1p" and len(args) == 1:
            return _Val("num", g.op("Log", g.op("Add", self.number(args[0]), g.num(1.0))))
        if fn == "log10" and len(args) == 1:
            return _Val("num", g.op("Div", g.op("Log", self.number(args[0])), g.num(float(np.log(10.0)))))
        if fn in ("min", "max") and len(args) == 2:
            a, b = self.number(args[0]), self.number(args[1])
            pick = g.op("Where", g.op("Less" if fn == "min" else "Greater", b, a), b, a)
            return _Val("num", g.op("Where", g.op("IsNaN", b), b, g.op("Where", g.op("IsNaN", a), a, pick)))
        if fn == "isnull" and len(args) == 1:
            return _Val("bool", self.isnull(args[0]))
        if fn == "notnull" and len(args) == 1:
            return _Val("bool", g.op("Not", self.isnull(args[0])))
        if fn == "fillna" and len(args) == 2 and args[0].kind == "num":
            return _Val("num", g.op("Where", g.op("IsNaN", args[0].tensor), self.number(args[1]), args[0].tensor))
        if fn == "where" and len(args) == 3:
            return self.ifelse(*args)
        if fn == "clip" and len(args) == 3:
            x, lo, hi = (self.number(a) for a in args)
            return _Val("num", g.op("Where", g.op("Less", x, lo), lo, g.op("Where", g.op("Greater", x, hi), hi, x)))
        raise self._bad(f"{fn}() on these arguments")

    def compare(self, n: ast.Compare) -> _Val:
        g = self.g
        left = self.node(n.left)
        out: str | None = None
        for op, comp in zip(n.ops, n.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(comp, (ast.Tuple, ast.List, ast.Set)):
                    raise self._bad("'in' with anything but a list of constants")
                values = [e.value for e in comp.elts if isinstance(e, ast.Constant)]
                r = self.isin(left, values)
                if isinstance(op, ast.NotIn):
                    r = g.op("Not", r)
            else:
                right = self.node(comp)
                r = self.cmp(op, left, right)
                left = right
            out = r if out is None else g.op("And", out, r)
        assert out is not None
        return _Val("bool", out)

    def isin(self, v: _Val, values: list[Any]) -> str:
        g = self.g
        if v.kind == "str":
            keys = [x for x in values if isinstance(x, str)]
            return g.cast(g.lookup(v.tensor, keys, [1] * len(keys), 0), "bool")
        nums = [float(x) for x in values if not isinstance(x, str)]
        x = self.number(v)
        if not nums:
            return g.op("IsNaN", g.op("Add", x, g.num(np.nan)))  # all false... of the right shape
        eq = g.op("Equal", x, g.num(nums))
        return g.op("Greater", g.rsum(g.cast(eq, "int64")), g.i64(0))

    def cmp(self, op: ast.cmpop, a: _Val, b: _Val) -> str:
        g = self.g
        texts = [v for v in (a, b) if v.kind == "str" or (v.kind == "const" and isinstance(v.value, str))]
        if texts:
            if not isinstance(op, (ast.Eq, ast.NotEq)) or len(texts) != 2 or (a.kind == "str") == (b.kind == "str"):
                raise self._bad("this comparison of text")
            col, const = (a, b) if a.kind == "str" else (b, a)
            eq = g.cast(g.lookup(col.tensor, [const.value], [1], 0), "bool")
            return eq if isinstance(op, ast.Eq) else g.op("Not", eq)
        x, y = self.number(a), self.number(b)
        if isinstance(op, ast.Eq):
            return g.op("Equal", x, y)
        if isinstance(op, ast.NotEq):
            return g.op("Not", g.op("Equal", x, y))
        if type(op) in _CMP:
            return g.op(_CMP[type(op)], x, y)
        raise self._bad(f"the comparison {type(op).__name__}")


# -- the public functions ---------------------------------------------------------------------------------
def convert_recipe(
    recipe: FittedRecipe | None, signature_inputs: Sequence[Mapping[str, Any]], features: Sequence[str],
) -> RecipeGraph:
    """The recipe as ONNX nodes from the raw inputs to ``loopml:features`` (float32 ``[N, len(features)]``).

    Every step is tried in order; the first one that does not convert stops the
    translation (the later ones are still checked for reasons that hold
    whatever comes before them). Check :attr:`RecipeGraph.convertible`.
    """
    conv = _Converter(signature_inputs)
    reports: list[StepReport] = []
    failed = False
    for i, step in enumerate(recipe.steps if recipe is not None else [], 1):
        where = f"step {i} ({step.kind})"
        if failed:
            why = UNCONVERTIBLE.get(step.kind) or _static_reason(step)
            reports.append(StepReport(i, step.kind, False, why or "not tried: an earlier step did not convert"))
            continue
        try:
            conv.step(step, where)
        except Unconvertible as e:
            reports.append(StepReport(i, step.kind, False, str(e)))
            failed = True
            continue
        except Exception as e:  # a state this translation does not expect: reported, not fatal
            reports.append(StepReport(i, step.kind, False, f"the translation failed ({type(e).__name__}: {e})"))
            failed = True
            continue
        reports.append(StepReport(i, step.kind, True))
    problem = ""
    if not failed:
        try:
            conv.features(features)
        except Unconvertible as e:
            problem = str(e)
    order = [c for c in conv.raw if c in conv.used]
    return RecipeGraph(inputs=[conv.used[c] for c in order], nodes=conv.g.nodes, initializers=conv.g.inits,
                       steps=reports, problem=problem)


def _static_reason(step: Step) -> str:
    if step.kind == "impute" and getattr(step, "strategy", "") in ("ffill", "bfill", "interpolate"):
        return f"strategy {getattr(step, 'strategy', '')} {_HISTORY}"
    if step.kind == "one_hot" and getattr(step, "handle_unknown", "") == "error":
        return "handle_unknown: error raises on an unseen category, which a graph cannot do"
    return ""


def _opsets(model: onnx.ModelProto | None) -> dict[str, int]:
    opsets: dict[str, int] = {}
    for o in model.opset_import if model is not None else []:
        opsets[o.domain] = max(opsets.get(o.domain, 0), int(o.version))
    opsets[""] = max(opsets.get("", 0), MIN_OPSET)
    opsets["ai.onnx.ml"] = max(opsets.get("ai.onnx.ml", 0), MIN_ML_OPSET)
    return opsets


def _inputs(rg: RecipeGraph) -> list[Any]:
    from onnx import TensorProto, helper

    types = {NUMBER: TensorProto.DOUBLE, STRING: TensorProto.STRING, DATETIME: TensorProto.INT64}
    return [helper.make_tensor_value_info(i.name, types[i.kind], [None, 1]) for i in rg.inputs]


def recipe_model(rg: RecipeGraph, n_features: int) -> onnx.ModelProto:
    """The recipe alone as a model: raw inputs -> ``loopml:features`` (float32 ``[N, n_features]``)."""
    import onnx
    from onnx import helper

    if not rg.convertible:
        raise Unconvertible(rg.why_not())
    out = helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, [None, n_features])
    graph = helper.make_graph(list(rg.nodes), "loopml_recipe", _inputs(rg), [out], initializer=list(rg.initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(_opsets(None).items())],
                              producer_name="loopml")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _rename_graph(graph: Any, rename: Callable[[str], str], *, top: bool) -> None:
    """Apply ``rename`` to every name in ``graph`` and its subgraphs, in place (one pure mapping keeps scopes)."""
    import onnx

    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _rename_graph(a.g, rename, top=False)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    _rename_graph(sub, rename, top=False)
    for t in graph.initializer:
        t.name = rename(t.name)
    for sp in graph.sparse_initializer:
        sp.values.name = rename(sp.values.name)
    for vi in graph.value_info:
        vi.name = rename(vi.name)
    if not top:
        for vi in [*graph.input, *graph.output]:
            vi.name = rename(vi.name)


def merge(rg: RecipeGraph, model: onnx.ModelProto, input_name: str) -> onnx.ModelProto:
    """One graph: the recipe's nodes, then the model's (its ``input_name`` fed by the recipe).

    The model's internal names (in subgraphs too) get a ``loopml:model:``
    prefix so they cannot meet a column name; its outputs keep their names.
    """
    import onnx
    from onnx import helper

    if not rg.convertible:
        raise Unconvertible(rg.why_not())
    src = onnx.GraphProto()
    src.CopyFrom(model.graph)
    outputs = {o.name for o in src.output}
    clash = [i.name for i in rg.inputs if i.name in outputs]
    if clash:
        raise Unconvertible(f"input column {clash[0]!r} has the name of a graph output; rename the column")

    def rename(name: str) -> str:
        if not name or name in outputs:
            return name
        return FEATURES if name == input_name else f"loopml:model:{name}"

    _rename_graph(src, rename, top=True)
    graph = helper.make_graph([*rg.nodes, *src.node], "loopml_edge", _inputs(rg), list(src.output),
                              initializer=[*rg.initializers, *src.initializer])
    graph.sparse_initializer.extend(src.sparse_initializer)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(_opsets(model).items())],
                            producer_name="loopml")
    out.ir_version = max(int(model.ir_version), 8)
    for p in model.metadata_props:
        out.metadata_props.add(key=p.key, value=p.value)
    onnx.checker.check_model(out)
    return out


__all__ = ["DATETIME", "FEATURES", "NUMBER", "STRING", "UNCONVERTIBLE", "EdgeInput", "RecipeGraph",
           "StepReport", "Unconvertible", "convert_recipe", "input_kind", "merge", "recipe_model"]
