"""A small, safe expression language for recipe steps (``amount / (visits + 1)``).

User text is parsed with :mod:`ast` and only a whitelist of node types is
accepted: numbers, strings, column names, arithmetic, comparisons, ``and`` /
``or`` / ``not``, ``x if c else y``, ``in (...)`` and a few named functions.
The tree is compiled into closures over numpy arrays; nothing is ever passed
to Python's ``eval``. Columns that are not identifiers are written in
backticks: ```num 00` * 2``.

The same compiled expression serves a whole column (arrays of n values) and
a single record (arrays of one value), so both paths give identical results.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from loopml.prep._base import (
    NAN,
    NS_PER_DAY,
    Record,
    StepError,
    column_kind,
    datetime_ns,
    describe_kind,
    is_missing,
    num_array,
    num_value,
    to_timestamp,
)

Array = np.ndarray
Fn = Callable[[Mapping[str, Array]], Any]

MAX_LENGTH = 2000
MAX_NODES = 500


def _isnull(a: Any) -> Array:
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return np.isnan(a)
    if a.dtype.kind in "biu":
        return np.zeros(a.shape, dtype=bool)
    return np.asarray(pd.isna(a), dtype=bool)


def _num(a: Any) -> Any:
    a = np.asarray(a)
    if a.dtype.kind == "b":
        return a.astype(np.float64)
    if a.dtype.kind == "O":
        raise StepError("arithmetic on text is not supported in expressions")
    return a


def _truth(a: Any) -> Array:
    a = np.asarray(a)
    if a.dtype.kind == "b":
        return a
    if a.dtype.kind in "iuf":
        return (a != 0) & ~np.isnan(a.astype(np.float64))
    raise StepError("a text value cannot be used as a condition; compare it, e.g. city == 'Paris'")


def _where(c: Any, a: Any, b: Any) -> Array:
    return np.where(_truth(c), a, b)


def _clip(x: Any, lo: Any, hi: Any) -> Array:
    x = _num(x)
    return np.where(x < lo, lo, np.where(x > hi, hi, x))


FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "abs": (1, lambda x: np.abs(_num(x))),
    "log": (1, lambda x: np.log(_num(x))),
    "log1p": (1, lambda x: np.log1p(_num(x))),
    "log10": (1, lambda x: np.log10(_num(x))),
    "exp": (1, lambda x: np.exp(_num(x))),
    "sqrt": (1, lambda x: np.sqrt(_num(x))),
    "floor": (1, lambda x: np.floor(_num(x))),
    "ceil": (1, lambda x: np.ceil(_num(x))),
    "round": (1, lambda x: np.round(_num(x))),
    "min": (2, lambda a, b: np.minimum(_num(a), _num(b))),
    "max": (2, lambda a, b: np.maximum(_num(a), _num(b))),
    "isnull": (1, _isnull),
    "notnull": (1, lambda x: ~_isnull(x)),
    "fillna": (2, lambda x, v: np.where(_isnull(x), v, x)),
    "where": (3, _where),
    "clip": (3, _clip),
}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: _num(a) + _num(b),
    ast.Sub: lambda a, b: _num(a) - _num(b),
    ast.Mult: lambda a, b: _num(a) * _num(b),
    ast.Div: lambda a, b: _num(a) / _num(b),
    ast.FloorDiv: lambda a, b: np.floor_divide(_num(a), _num(b)),
    ast.Mod: lambda a, b: np.mod(_num(a), _num(b)),
    ast.Pow: lambda a, b: np.power(_num(a), _num(b)),
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: np.asarray(a == b),
    ast.NotEq: lambda a, b: np.asarray(a != b),
    ast.Lt: lambda a, b: np.asarray(a < b),
    ast.LtE: lambda a, b: np.asarray(a <= b),
    ast.Gt: lambda a, b: np.asarray(a > b),
    ast.GtE: lambda a, b: np.asarray(a >= b),
}

_QUOTED = re.compile(r"`([^`]+)`")


class Expression:
    """A parsed, checked expression over columns.

    Parameters
    ----------
    text
        The expression, e.g. ``"amount / (visits + 1)"`` or ``"age < 0 or age > 120"``.

    Examples
    --------
    >>> import numpy as np
    >>> e = Expression("a / (b + 1)")
    >>> e.names
    ['a', 'b']
    >>> e.evaluate({"a": np.array([4.0]), "b": np.array([1.0])}).tolist()
    [2.0]
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise StepError("the expression is empty")
        if len(text) > MAX_LENGTH:
            raise StepError(f"the expression is longer than {MAX_LENGTH} characters")
        self.text = text
        quoted: dict[str, str] = {}

        def _sub(m: re.Match[str]) -> str:
            key = f"__col{len(quoted)}__"
            quoted[key] = m.group(1)
            return key

        source = _QUOTED.sub(_sub, text)
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
            raise StepError(f"cannot parse the expression {text!r}: {getattr(e, 'msg', e)}") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise StepError(f"the expression {text!r} is too complex (more than {MAX_NODES} parts)")
        self._quoted = quoted
        self.names: list[str] = []
        self._fn = self._compile(tree.body)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    # -- compiling ----------------------------------------------------------------------
    def _bad(self, node: ast.AST, what: str) -> StepError:
        return StepError(f"{what} is not allowed in the expression {self.text!r}")

    def _compile(self, node: ast.AST) -> Fn:
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or v is None:
                c: Any = np.nan if v is None else float(v)
            elif isinstance(v, (int, float)):
                c = float(v)
            elif isinstance(v, str):
                c = v
            else:
                raise self._bad(node, f"the constant {v!r}")
            return lambda env: c
        if isinstance(node, ast.Name):
            name = self._quoted.get(node.id, node.id)
            if name in FUNCTIONS and node.id not in self._quoted:
                raise StepError(f"{name!r} is a function; call it, e.g. {name}(x), in {self.text!r}")
            if name not in self.names:
                self.names.append(name)
            return lambda env: env[name]
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self._bad(node, f"the operator {type(node.op).__name__}")
            left, right = self._compile(node.left), self._compile(node.right)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.USub):
                return lambda env: -_num(operand(env))
            if isinstance(node.op, ast.UAdd):
                return lambda env: _num(operand(env))
            if isinstance(node.op, ast.Not):
                return lambda env: ~_truth(operand(env))
            raise self._bad(node, "the operator ~")
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                def _and(env: Mapping[str, Array]) -> Array:
                    out = _truth(parts[0](env))
                    for p in parts[1:]:
                        out = out & _truth(p(env))
                    return out
                return _and

            def _or(env: Mapping[str, Array]) -> Array:
                out = _truth(parts[0](env))
                for p in parts[1:]:
                    out = out | _truth(p(env))
                return out
            return _or
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            test, body, other = (self._compile(n) for n in (node.test, node.body, node.orelse))
            return lambda env: _where(test(env), body(env), other(env))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                raise StepError(
                    f"unknown function {name!r} in the expression {self.text!r}; "
                    f"available: {', '.join(sorted(FUNCTIONS))}"
                )
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise self._bad(node, "keyword or starred arguments")
            arity, fn = FUNCTIONS[node.func.id]
            if len(node.args) != arity:
                raise StepError(f"{node.func.id}() takes {arity} argument(s) in the expression {self.text!r}")
            args = [self._compile(a) for a in node.args]
            return lambda env: fn(*(a(env) for a in args))
        raise self._bad(node, f"{type(node).__name__} syntax")

    def _compare(self, node: ast.Compare) -> Fn:
        left = self._compile(node.left)
        steps: list[tuple[Callable[[Any, Any], Any] | None, Fn, list[Any] | None, bool]] = []
        for op, comp in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(comp, (ast.Tuple, ast.List, ast.Set)) or not all(
                    isinstance(e, ast.Constant) and isinstance(e.value, (str, int, float))
                    for e in comp.elts
                ):
                    raise self._bad(comp, "'in' with anything but a list of constants")
                values = [e.value for e in comp.elts if isinstance(e, ast.Constant)]
                steps.append((None, left, values, isinstance(op, ast.NotIn)))
                continue
            cmp = _CMPOPS.get(type(op))
            if cmp is None:
                raise self._bad(node, f"the comparison {type(op).__name__}")
            steps.append((cmp, self._compile(comp), None, False))

        def _run(env: Mapping[str, Array]) -> Array:
            a = left(env)
            out: Array | None = None
            for cmp, right, values, negate in steps:
                if cmp is None:
                    assert values is not None
                    arr = np.asarray(a)
                    vals = values if arr.dtype.kind == "O" else [float(v) for v in values
                                                                  if not isinstance(v, str)]
                    r = np.isin(arr, vals)
                    r = ~r if negate else r
                else:
                    b = right(env)
                    r = cmp(a, b)
                    a = b
                out = r if out is None else out & r
            assert out is not None
            return out

        return _run

    # -- evaluating --------------------------------------------------------------------------
    def evaluate(self, env: Mapping[str, Array]) -> Array:
        """Evaluate over arrays of equal length (one per referenced column)."""
        try:
            with np.errstate(all="ignore"):
                out = self._fn(env)
        except (TypeError, ValueError) as e:  # e.g. text compared with a number
            raise StepError(f"cannot evaluate {self.text!r}: {' '.join(str(e).split())}") from None
        return np.asarray(out)


# -- the columns an expression reads ---------------------------------------------------------
def expr_kinds(df: pd.DataFrame, names: list[str]) -> dict[str, str]:
    """How each referenced column enters an expression: ``num``, ``dt`` (days) or ``text``."""
    kinds = {}
    for n in names:
        k = column_kind(df[n])
        kinds[n] = "num" if k in ("numeric", "bool") else "dt" if k == "datetime" else "text"
    return kinds


def expr_env(df: pd.DataFrame, kinds: Mapping[str, str]) -> dict[str, Array]:
    """The arrays an expression evaluates over, one per column (datetimes as days since 1970)."""
    env: dict[str, Array] = {}
    for n, k in kinds.items():
        s = df[n]
        actual = column_kind(s)
        if k == "num":
            if actual not in ("numeric", "bool"):
                raise StepError(f"column {n!r} was fitted as numbers; the data now has {describe_kind(s)}")
            env[n] = num_array(s)
        elif k == "dt":
            if actual != "datetime":
                raise StepError(f"column {n!r} was fitted as dates/times; the data now has {describe_kind(s)}")
            ns, miss = datetime_ns(s)
            env[n] = np.where(miss, NAN, ns.astype(np.float64) / NS_PER_DAY)
        else:
            env[n] = s.to_numpy(dtype=object, na_value=None)
    return env


def expr_env_one(rec: Record, kinds: Mapping[str, str]) -> dict[str, Array]:
    """:func:`expr_env` for one record (arrays of one value)."""
    env: dict[str, Array] = {}
    for n, k in kinds.items():
        v = rec[n]
        if k == "num":
            env[n] = np.array([num_value(v, n, "the expression")])
        elif k == "dt":
            ts = to_timestamp(v, n, "the expression")
            env[n] = np.array([NAN if ts is None else float(ts.value) / NS_PER_DAY])
        else:
            env[n] = np.array([None if is_missing(v) else v], dtype=object)
    return env


__all__ = ["FUNCTIONS", "Expression", "expr_env", "expr_env_one", "expr_kinds"]
