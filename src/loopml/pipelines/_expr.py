"""References (``${params.X}``, ``${steps.S.outputs.X}``) and condition expressions.

The canonical (YAML/JSON) form of a value that refers to another step or a
parameter is a string holding ``${...}``; a condition is a tree of
``{"op": OP, "args": [...]}`` nodes whose leaves are literals or reference
strings. The Python DSL builds the same forms with :class:`Expr` (operator
overloading), and YAML may also write a condition as one string, parsed with
Python's :mod:`ast` into that tree (nothing is ever ``eval``-ed).

>>> node = parse_condition("${steps.eval.outputs.metrics.auc} >= ${params.threshold} + 0.01")
>>> node["op"], node["args"][0]
('>=', '${steps.eval.outputs.metrics.auc}')
>>> values = {"${steps.eval.outputs.metrics.auc}": 0.9, "${params.threshold}": 0.8}
>>> evaluate(node, values.__getitem__)
True
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidInput

REF = re.compile(r"(?<!\$)\$\{([^{}]*)\}")
_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_PARAM = re.compile(rf"^params\.({_NAME})$")
_STEP = re.compile(rf"^steps\.({_NAME})\.outputs(?:\.(.+))?$")
_EXEC = ("id", "start_time", "pipeline")

COMPARE = (">=", ">", "<=", "<", "==", "!=", "in", "not in")
LOGIC = ("and", "or", "not")
ARITH = ("+", "-", "*", "/")
OPS = COMPARE + LOGIC + ARITH


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``kind`` is ``param``, ``step`` or ``execution``."""

    kind: str
    name: str
    #: the output path inside the step's outputs (``metrics.auc`` -> ("metrics", "auc")); () for all
    path: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The canonical ``${...}`` form."""
        if self.kind == "param":
            return f"${{params.{self.name}}}"
        if self.kind == "execution":
            return f"${{execution.{self.name}}}"
        tail = "." + ".".join(self.path) if self.path else ""
        return f"${{steps.{self.name}.outputs{tail}}}"


def parse_ref(inner: str, where: str = "") -> Ref:
    """Parse the inside of ``${...}``; raise InvalidInput naming ``where`` if it is not a reference."""
    text = inner.strip()
    m = _PARAM.match(text)
    if m:
        return Ref("param", m.group(1))
    m = _STEP.match(text)
    if m:
        path = tuple(m.group(2).split(".")) if m.group(2) else ()
        if any(not p for p in path):
            raise InvalidInput(f"{where}reference ${{{text}}} has an empty output path segment")
        return Ref("step", m.group(1), path)
    if text.startswith("execution.") and text[len("execution."):] in _EXEC:
        return Ref("execution", text[len("execution."):])
    raise InvalidInput(
        f"{where}${{{text}}} is not a reference; write ${{params.NAME}}, "
        "${steps.STEP.outputs.NAME} or ${execution.id}"
    )


def refs_in(value: Any, where: str = "") -> Iterator[Ref]:
    """Every reference inside a value (strings, lists, dicts, condition trees), in order."""
    if isinstance(value, str):
        for m in REF.finditer(value):
            yield parse_ref(m.group(1), where)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from refs_in(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from refs_in(v, where)


def resolve(value: Any, lookup: Callable[[Ref], Any]) -> Any:
    """Replace references in ``value`` by what ``lookup`` returns.

    A string that is exactly one reference becomes the referenced value (any
    JSON type); references inside a longer string are interpolated as text;
    ``$${`` stands for a literal ``${``.

    >>> resolve({"p": "${params.n}", "s": "run-${params.n}", "l": ["$${x}"]}, lambda r: 3)
    {'p': 3, 's': 'run-3', 'l': ['${x}']}
    """
    if isinstance(value, str):
        m = REF.fullmatch(value)
        if m:
            return lookup(parse_ref(m.group(1)))
        if "${" not in value:
            return value

        def text(m: re.Match[str]) -> str:
            v = lookup(parse_ref(m.group(1)))
            return v if isinstance(v, str) else json.dumps(v, default=str)

        return REF.sub(text, value).replace("$${", "${")
    if isinstance(value, Mapping):
        return {k: resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve(v, lookup) for v in value]
    return value


def get_path(outputs: Any, path: tuple[str, ...], what: str) -> Any:
    """``outputs["metrics"]["auc"]`` for path ``("metrics", "auc")``; list items by index."""
    cur = outputs
    for i, key in enumerate(path):
        if isinstance(cur, Mapping) and key in cur:
            cur = cur[key]
        elif isinstance(cur, list) and key.lstrip("-").isdigit() and -len(cur) <= int(key) < len(cur):
            cur = cur[int(key)]
        else:
            done = ".".join(path[:i]) or "outputs"
            have = ", ".join(map(str, cur)) if isinstance(cur, Mapping) else type(cur).__name__
            raise InvalidInput(f"{what} has no output {'.'.join(path)!r} ({done} holds: {have or 'nothing'})")
    return cur


# -- conditions ------------------------------------------------------------------------------------
class Expr:
    """A reference or an expression over references, built with Python operators.

    ``a.output("metrics.auc") >= p.param("threshold")`` makes a condition;
    combine conditions with ``&`` (and), ``|`` (or) and ``~`` (not), test
    membership with :meth:`isin`, and compute margins with ``+ - * /``.

    Examples
    --------
    >>> auc, t = Expr("${steps.ev.outputs.auc}"), Expr("${params.t}")
    >>> to_text(((auc >= t + 0.01) & ~(auc > 1)).node)
    '(${steps.ev.outputs.auc} >= (${params.t} + 0.01)) and (not (${steps.ev.outputs.auc} > 1))'
    """

    __slots__ = ("node",)

    def __init__(self, node: Any) -> None:
        self.node = node

    def _op(self, op: str, *others: Any) -> Expr:
        return Expr({"op": op, "args": [self.node, *(as_node(o) for o in others)]})

    def _rop(self, op: str, other: Any) -> Expr:
        return Expr({"op": op, "args": [as_node(other), self.node]})

    def __ge__(self, other: Any) -> Expr:
        return self._op(">=", other)

    def __gt__(self, other: Any) -> Expr:
        return self._op(">", other)

    def __le__(self, other: Any) -> Expr:
        return self._op("<=", other)

    def __lt__(self, other: Any) -> Expr:
        return self._op("<", other)

    def __eq__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._op("==", other)

    def __ne__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._op("!=", other)

    def __hash__(self) -> int:
        return id(self)

    def __and__(self, other: Any) -> Expr:
        return self._op("and", other)

    def __rand__(self, other: Any) -> Expr:
        return self._rop("and", other)

    def __or__(self, other: Any) -> Expr:
        return self._op("or", other)

    def __ror__(self, other: Any) -> Expr:
        return self._rop("or", other)

    def __invert__(self) -> Expr:
        return Expr({"op": "not", "args": [self.node]})

    def __add__(self, other: Any) -> Expr:
        return self._op("+", other)

    def __radd__(self, other: Any) -> Expr:
        return self._rop("+", other)

    def __sub__(self, other: Any) -> Expr:
        return self._op("-", other)

    def __rsub__(self, other: Any) -> Expr:
        return self._rop("-", other)

    def __mul__(self, other: Any) -> Expr:
        return self._op("*", other)

    def __rmul__(self, other: Any) -> Expr:
        return self._rop("*", other)

    def __truediv__(self, other: Any) -> Expr:
        return self._op("/", other)

    def __rtruediv__(self, other: Any) -> Expr:
        return self._rop("/", other)

    def isin(self, values: Any) -> Expr:
        """True when the value is one of ``values`` (a list, or a reference to one)."""
        return self._op("in", values)

    def not_in(self, values: Any) -> Expr:
        """True when the value is not one of ``values``."""
        return self._op("not in", values)

    def __bool__(self) -> bool:
        raise TypeError("a pipeline expression has no truth value while the pipeline is being "
                        "declared; combine conditions with &, | and ~ instead of and, or, not")

    def __repr__(self) -> str:
        return f"Expr({to_text(self.node)})"


def as_node(value: Any) -> Any:
    """The canonical node of an :class:`Expr` or a literal (lists and tuples become lists)."""
    if isinstance(value, Expr):
        return value.node
    if isinstance(value, (list, tuple)):
        return [as_node(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InvalidInput(f"a condition can hold numbers, text, booleans, lists and references, not "
                       f"{type(value).__name__} ({value!r})")


def check_condition(node: Any, where: str) -> Any:
    """Validate a condition tree (ops and arity) and return it; strings are parsed first."""
    if isinstance(node, str) and not REF.fullmatch(node.strip()):
        node = parse_condition(node, where)
    _check(node, where)
    return node


def _check(node: Any, where: str) -> None:
    if isinstance(node, Mapping):
        if set(node) != {"op", "args"}:
            raise InvalidInput(f"{where}a condition node must be {{op: ..., args: [...]}}, got keys "
                               f"{sorted(map(str, node))}")
        op, args = node["op"], node["args"]
        if op not in OPS:
            raise InvalidInput(f"{where}unknown operator {op!r}; use one of {', '.join(OPS)}")
        if not isinstance(args, list):
            raise InvalidInput(f"{where}the args of {op!r} must be a list")
        want = 1 if op == "not" else 2
        if (op in ("and", "or") and len(args) < 2) or (op not in ("and", "or") and len(args) != want):
            raise InvalidInput(f"{where}{op!r} takes {want if op not in ('and', 'or') else 'two or more'} "
                               f"operand(s), got {len(args)}")
        for a in args:
            _check(a, where)
    elif isinstance(node, list):
        for a in node:
            _check(a, where)
    elif isinstance(node, str):
        list(refs_in(node, where))
    elif not (node is None or isinstance(node, (bool, int, float))):
        raise InvalidInput(f"{where}{node!r} cannot be part of a condition")


_AST_OPS: dict[type, str] = {
    ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=", ast.Lt: "<", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
}
_WORDS = {"true": True, "false": False, "null": None, "none": None}


def parse_condition(text: str, where: str = "") -> Any:
    """Parse ``"${a} >= ${b} and ${c} in ['x', 'y']"`` into a condition tree."""
    refs: dict[str, str] = {}

    def hold(m: re.Match[str]) -> str:
        parse_ref(m.group(1), where)
        key = f"__ref{len(refs)}__"
        refs[key] = m.group(0)
        return key

    src = REF.sub(hold, text)
    try:
        tree = ast.parse(src.strip(), mode="eval")
    except SyntaxError as e:
        raise InvalidInput(f"{where}cannot parse the condition {text!r}: {e.msg}") from None

    def conv(n: ast.AST) -> Any:
        if isinstance(n, ast.Constant) and (n.value is None or isinstance(n.value, (bool, int, float, str))):
            return n.value
        if isinstance(n, ast.Name):
            if n.id in refs:
                return refs[n.id]
            if n.id.lower() in _WORDS:
                return _WORDS[n.id.lower()]
            raise InvalidInput(f"{where}{n.id!r} in the condition {text!r} is not a value; refer to "
                               "${params.NAME} or ${steps.STEP.outputs.NAME}, or quote text")
        if isinstance(n, (ast.List, ast.Tuple)):
            return [conv(e) for e in n.elts]
        if isinstance(n, ast.BoolOp):
            return {"op": _AST_OPS[type(n.op)], "args": [conv(v) for v in n.values]}
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not):
            return {"op": "not", "args": [conv(n.operand)]}
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            inner = conv(n.operand)
            return -inner if isinstance(inner, (int, float)) else {"op": "-", "args": [0, inner]}
        if isinstance(n, ast.BinOp) and type(n.op) in _AST_OPS:
            return {"op": _AST_OPS[type(n.op)], "args": [conv(n.left), conv(n.right)]}
        if isinstance(n, ast.Compare):
            parts = [conv(n.left), *(conv(c) for c in n.comparators)]
            nodes = []
            for i, op in enumerate(n.ops):
                if type(op) not in _AST_OPS:
                    break
                nodes.append({"op": _AST_OPS[type(op)], "args": [parts[i], parts[i + 1]]})
            else:
                return nodes[0] if len(nodes) == 1 else {"op": "and", "args": nodes}
        raise InvalidInput(f"{where}the condition {text!r} uses something other than comparisons "
                           "(>= > <= < == != in, not in), and/or/not, + - * / and literals")

    return conv(tree.body)


def to_text(node: Any) -> str:
    """A readable form of a condition tree (references as written)."""
    if isinstance(node, Mapping):
        op, args = node["op"], [to_text(a) for a in node["args"]]
        if op == "not":
            return f"not ({args[0]})"
        wrap = [f"({a})" if isinstance(n, Mapping) else a for a, n in zip(args, node["args"], strict=True)]
        return f" {op} ".join(wrap)
    if isinstance(node, list):
        return "[" + ", ".join(to_text(a) for a in node) + "]"
    if isinstance(node, str) and not REF.fullmatch(node):
        return repr(node)
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, float):
        return f"{node:.6g}"
    return str(node)


def evaluate(node: Any, lookup: Callable[[str], Any]) -> Any:
    """Evaluate a condition tree; ``lookup`` maps a reference string to its value.

    Raises
    ------
    InvalidInput
        An operation does not apply to the values (e.g. ``None >= 0.8``); the
        message shows the values.
    """
    if isinstance(node, Mapping):
        op = node["op"]
        if op == "and":
            return all(bool(evaluate(a, lookup)) for a in node["args"])
        if op == "or":
            return any(bool(evaluate(a, lookup)) for a in node["args"])
        if op == "not":
            return not bool(evaluate(node["args"][0], lookup))
        a, b = (evaluate(x, lookup) for x in node["args"])
        try:
            return _apply(op, a, b)
        except (TypeError, ZeroDivisionError) as e:
            raise InvalidInput(f"cannot compute {a!r} {op} {b!r} in {to_text(node)} ({e})") from None
    if isinstance(node, list):
        return [evaluate(a, lookup) for a in node]
    if isinstance(node, str) and REF.search(node):
        return resolve(node, lambda r: lookup(r.text))
    return node


def _apply(op: str, a: Any, b: Any) -> Any:
    if op in ("in", "not in"):
        if not isinstance(b, (list, str, Mapping)):
            raise TypeError(f"'{op}' needs a list on the right, got {type(b).__name__}")
        return (a in b) if op == "in" else (a not in b)
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if a is None or b is None or (isinstance(a, bool) != isinstance(b, bool) and op in ARITH):
        raise TypeError("a value is missing (None)" if a is None or b is None else "mixing booleans and numbers")
    if op == ">=":
        return a >= b
    if op == ">":
        return a > b
    if op == "<=":
        return a <= b
    if op == "<":
        return a < b
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b
