"""The pipeline DSL: typed parameters, steps, and the :class:`Pipeline` that holds them.

A pipeline is data (Kedro/Hamilton style): steps are plain functions or
built-in kinds, and the graph comes from *references* between them — an
argument ``data=load.output("dataset")`` makes ``load`` run first and passes
its output — never from functions calling each other, so every step is
testable alone. The Python form and the YAML form are the same object:
``Pipeline.from_dict(p.to_dict())`` rebuilds ``p``.

>>> from loopml.pipelines import Pipeline, Param
>>> p = Pipeline("demo", params={"n": Param(int, 3)})
>>> a = p.add("loopml.pipelines.dsl:_echo", value=p.param("n"))
>>> b = p.add("loopml.pipelines.dsl:_echo", name="again", value=a.output("value"))
>>> [s.name for s in p.steps], p.dependencies()["again"]
(['_echo', 'again'], ['_echo'])
"""

from __future__ import annotations

import hashlib
import inspect
import json
import marshal
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from loopml.errors import InvalidInput
from loopml.pipelines import _expr
from loopml.pipelines._expr import Expr, Ref
from loopml.pipelines.cache import parse_duration
from loopml.pipelines.steps import KINDS, function_ref, resolve_function

_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$")
_PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def _echo(value: Any = None) -> dict[str, Any]:
    """A tiny step used by examples: returns its input."""
    return {"value": value}


# -- parameters ----------------------------------------------------------------------------------------
class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: the default of a parameter that must be given
REQUIRED: Any = _Required()

_TYPE_NAMES: dict[Any, str] = {
    str: "string", "str": "string", "string": "string", "text": "string",
    int: "integer", "int": "integer", "integer": "integer",
    float: "float", "float": "float", "number": "float",
    bool: "boolean", "bool": "boolean", "boolean": "boolean",
}
PARAM_TYPES = ("string", "integer", "float", "boolean")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


@dataclass(frozen=True, init=False)
class Param:
    """A typed pipeline parameter: ``string``, ``integer``, ``float`` or ``boolean``.

    Parameters
    ----------
    type
        ``str``, ``int``, ``float``, ``bool`` or their names.
    default
        The value when an execution does not give one; omit it for a required parameter.
    description
        What it is for.

    Examples
    --------
    >>> Param(float, 0.8).convert("0.9", "threshold")
    0.9
    >>> Param("boolean").convert("yes", "deploy")
    True
    """

    type: str
    default: Any
    description: str

    def __init__(self, type: Any, default: Any = REQUIRED, description: str = "") -> None:
        try:
            name = _TYPE_NAMES.get(type)
        except TypeError:  # unhashable: a list or a mapping
            name = None
        if name is None:
            raise InvalidInput(f"parameter type {type!r} is not one of {', '.join(PARAM_TYPES)}")
        object.__setattr__(self, "type", name)
        object.__setattr__(self, "description", str(description or ""))
        object.__setattr__(self, "default", REQUIRED)
        if default is not REQUIRED:
            object.__setattr__(self, "default", self.convert(default, "default", text_ok=False))

    @property
    def required(self) -> bool:
        """True when an execution must give a value."""
        return self.default is REQUIRED

    def convert(self, value: Any, name: str, *, text_ok: bool = True) -> Any:
        """``value`` as this parameter's type; text (from ``--param k=v``) is parsed when ``text_ok``.

        Raises
        ------
        InvalidInput
            The value is not of (or cannot be read as) the type.
        """
        t = self.type
        if t == "string":
            if isinstance(value, str):
                return value
        elif t == "boolean":
            if isinstance(value, bool):
                return value
            if text_ok and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                return value.strip().lower() in _TRUE
        elif t == "integer":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if text_ok and isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
                return int(value)
        else:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if text_ok and isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        hint = {"boolean": "true or false", "integer": "a whole number", "float": "a number",
                "string": "text"}[t]
        raise InvalidInput(f"parameter {name!r} is {t}: {value!r} is not {hint}")

    def to_dict(self) -> dict[str, Any]:
        """``{"type": ..., "default": ..., "description": ...}`` (default only when there is one)."""
        d: dict[str, Any] = {"type": self.type}
        if not self.required:
            d["default"] = self.default
        if self.description:
            d["description"] = self.description
        return d

    @classmethod
    def from_value(cls, value: Any, name: str) -> Param:
        """A parameter from its YAML form: ``{type, default, description}``, a type name, or a default."""
        if isinstance(value, Param):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"type", "default", "description"}
            if unknown:
                raise InvalidInput(f"parameter {name!r}: unknown key {sorted(unknown)[0]!r}; use type, default, "
                                   "description")
            if "type" not in value and "default" not in value:
                raise InvalidInput(f"parameter {name!r} needs a type or a default")
            ptype = value["type"] if "type" in value else _infer(value["default"], name)
            return cls(ptype, value.get("default", REQUIRED), value.get("description", ""))
        if isinstance(value, type) or (isinstance(value, str) and value in _TYPE_NAMES):
            return cls(value)
        return cls(_infer(value, name), value)


def _infer(value: Any, name: str) -> str:
    for t, n in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string")):
        if isinstance(value, t):
            return n
    raise InvalidInput(f"parameter {name!r}: default {value!r} is not text, a number or a boolean")


# -- steps -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How a step is retried when it raises.

    Attributes
    ----------
    max_attempts
        Attempts in all (1: no retry).
    interval
        Seconds before the first retry.
    backoff_rate
        Each further wait is this many times the previous one.
    max_interval
        The longest wait between attempts.
    on
        Exception type names to retry (``"TimeoutError"``, ``"mymodule.Flaky"``);
        empty: every error except a :class:`~loopml.errors.LoopmlError` (bad
        input is not transient).
    """

    max_attempts: int = 1
    interval: float = 1.0
    backoff_rate: float = 2.0
    max_interval: float = 60.0
    on: tuple[str, ...] = ()

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        return float(min(self.max_interval, self.interval * self.backoff_rate ** max(0, attempt - 1)))

    @classmethod
    def parse(cls, value: Any, where: str = "") -> RetryPolicy:
        """From ``None``, a number of retries, a mapping of the fields (``retries`` counts retries), or itself."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise InvalidInput(f"{where}retries must be 0 or more, got {value}")
            return cls(max_attempts=value + 1)
        if isinstance(value, Mapping):
            known = {"max_attempts", "retries", "interval", "backoff_rate", "max_interval", "on"}
            unknown = set(value) - known
            if unknown:
                raise InvalidInput(f"{where}unknown retry setting {sorted(unknown)[0]!r}; use {', '.join(sorted(known))}")
            attempts = value.get("max_attempts", 1 + int(value.get("retries", 0)))
            on = value.get("on", ())
            on = (on,) if isinstance(on, str) else tuple(on)
            pol = cls(max_attempts=attempts, interval=value.get("interval", 1.0),
                      backoff_rate=value.get("backoff_rate", 2.0), max_interval=value.get("max_interval", 60.0),
                      on=tuple(t if isinstance(t, str) else f"{t.__module__}.{t.__qualname__}" for t in on))
            for name in ("interval", "backoff_rate", "max_interval"):
                v = getattr(pol, name)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise InvalidInput(f"{where}retry {name} must be a number ≥ 0, got {v!r}")
            if isinstance(pol.max_attempts, bool) or not isinstance(pol.max_attempts, int) or pol.max_attempts < 1:
                raise InvalidInput(f"{where}max_attempts must be a whole number ≥ 1, got {pol.max_attempts!r}")
            return pol
        raise InvalidInput(f"{where}retries must be a number of retries or a mapping, got {value!r}")

    def to_value(self) -> Any:
        """The YAML form (None for the default: no retry)."""
        if self == RetryPolicy():
            return None
        d: dict[str, Any] = {"max_attempts": self.max_attempts}
        for k in ("interval", "backoff_rate", "max_interval"):
            if getattr(self, k) != getattr(RetryPolicy, k):
                d[k] = getattr(self, k)
        if self.on:
            d["on"] = list(self.on)
        return d


@dataclass(frozen=True)
class StepSpec:
    """One step of a pipeline as data (its YAML form).

    Attributes
    ----------
    name
        Unique in the pipeline; outputs are referred to as ``${steps.NAME.outputs.X}``.
    kind
        A registered step kind (``train``, ``python``, ...).
    args
        Arguments, possibly holding references.
    function
        For ``python`` steps: ``module:function`` or ``path/file.py:function``.
    cache
        Cache expiry as written (``P30D``, seconds, or True for no expiry); None: no caching.
    retries
        The retry policy.
    depends_on
        Steps to run first although no argument refers to them.
    when, if_steps, else_steps
        For ``condition`` steps: the condition tree and the steps of each branch.
    """

    name: str
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    function: str | None = None
    cache: Any = None
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    depends_on: tuple[str, ...] = ()
    when: Any = None
    if_steps: tuple[str, ...] = ()
    else_steps: tuple[str, ...] = ()
    description: str = ""

    @property
    def expire_after_s(self) -> float | None:
        """Cache expiry in seconds (None: never expires); only meaningful when :attr:`cached`."""
        return parse_duration(self.cache) if self.cached else None

    @property
    def cached(self) -> bool:
        """True when the step opted in to caching."""
        return self.cache is not None and self.cache is not False

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (default fields left out)."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.function:
            d["function"] = self.function
        if self.args:
            d["args"] = self.args
        if self.description:
            d["description"] = self.description
        if self.cached:
            d["cache"] = self.cache
        retries = self.retries.to_value()
        if retries is not None:
            d["retries"] = retries
        if self.depends_on:
            d["depends_on"] = list(self.depends_on)
        if self.kind == "condition":
            d["when"] = self.when
            d["if_steps"] = list(self.if_steps)
            d["else_steps"] = list(self.else_steps)
        return d


@dataclass(frozen=True)
class StepOptions:
    """Options the :func:`step` decorator attaches to a function."""

    name: str | None = None
    cache: Any = None
    retries: Any = None
    description: str = ""
    outputs: tuple[str, ...] = ()


def step(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    cache: Any = None,
    retries: Any = None,
    description: str = "",
    outputs: Sequence[str] = (),
) -> Any:
    """Mark a function as a pipeline step with default options; the function stays callable as is.

    Parameters
    ----------
    name
        Default step name (default: the function's name).
    cache
        Opt in to caching with an expiry: ISO-8601 (``"P30D"``), seconds, or True (no expiry).
    retries
        Retries on error: a number, or a mapping (``max_attempts``, ``interval``,
        ``backoff_rate``, ``max_interval``, ``on``) — see :class:`RetryPolicy`.
    description
        Shown by ``loopml pipelines show``.
    outputs
        Output names it returns (references to others are refused before running).

    Examples
    --------
    >>> @step(cache="P1D", retries=2)
    ... def double(x: int) -> dict:
    ...     return {"y": 2 * x}
    >>> double(2), double.__loopml_step__.cache
    ({'y': 4}, 'P1D')
    """

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        if cache is not None:
            parse_duration(cache)
        RetryPolicy.parse(retries)
        f.__loopml_step__ = StepOptions(name, cache, retries, description, tuple(outputs))  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


class StepHandle:
    """What :meth:`Pipeline.add` returns: refer to the step's outputs with :meth:`output`."""

    __slots__ = ("name", "pipeline")

    def __init__(self, pipeline: Pipeline, name: str) -> None:
        self.pipeline = pipeline
        self.name = name

    def output(self, path: str = "") -> Expr:
        """A reference to output ``path`` (``"dataset"``, ``"metrics.auc"``), or to every output."""
        tail = f".{path}" if path else ""
        ref = f"${{steps.{self.name}.outputs{tail}}}"
        _expr.parse_ref(ref[2:-1], f"step {self.name!r}: ")
        return Expr(ref)

    def __getitem__(self, path: str) -> Expr:
        return self.output(path)

    @property
    def spec(self) -> StepSpec:
        """The step's current spec."""
        return self.pipeline.step_spec(self.name)

    def __repr__(self) -> str:
        return f"StepHandle({self.name!r})"


# -- the pipeline ----------------------------------------------------------------------------------
def _arg_node(value: Any, where: str) -> Any:
    """Canonical form of an argument: references as ``${...}`` strings, containers walked."""
    if isinstance(value, Expr):
        if not (isinstance(value.node, str) and _expr.REF.fullmatch(value.node)):
            raise InvalidInput(f"{where}an argument can be a reference but not an expression "
                               f"({_expr.to_text(value.node)}); compute it in a python step, or use a condition")
        return value.node
    if isinstance(value, StepHandle):
        return f"${{steps.{value.name}.outputs}}"
    if isinstance(value, Mapping):
        return {str(k): _arg_node(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_arg_node(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InvalidInput(f"{where}argument value {value!r} ({type(value).__name__}) is not JSON; pass text, "
                       "numbers, lists, mappings or references to other steps' outputs")


def _names(items: Iterable[Any], where: str) -> tuple[str, ...]:
    out = []
    for it in items:
        if isinstance(it, StepHandle):
            out.append(it.name)
        elif isinstance(it, str):
            out.append(it)
        else:
            raise InvalidInput(f"{where}expected steps (handles or names), got {it!r}")
    return tuple(out)


def _code_hash(fn: Callable[..., Any]) -> str:
    try:
        src = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        src = marshal.dumps(code) if code is not None else repr(fn).encode()
    return hashlib.sha256(src).hexdigest()


class Pipeline:
    """A DAG of steps with typed parameters.

    Parameters
    ----------
    name
        The pipeline's name (executions are listed under it).
    params
        Parameter name -> :class:`Param`, a type, or a default value.
    description
        What the pipeline does.

    Examples
    --------
    >>> p = Pipeline("churn", params={"threshold": Param(float, 0.8)})
    >>> train = p.add("train", algo="xgboost", data="churn:1", target="y")
    >>> ok = p.add("register", run=train.output("run_id"), model="churn")
    >>> gate = p.condition(train.output("metrics.train:auc") >= p.param("threshold"),
    ...                    if_steps=[ok], else_steps=[p.fail("AUC too low")])
    >>> sorted(p.dependencies()["register"])
    ['condition', 'train']
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, *, description: str = "") -> None:
        if not isinstance(name, str) or not _PIPELINE_NAME.match(name):
            raise InvalidInput(f"pipeline name {name!r} is not allowed; use letters, digits, '_', '-' or '.', "
                               "starting with a letter or digit")
        self.name = name
        self.description = description
        self.params: dict[str, Param] = {}
        for pname, value in (params or {}).items():
            if not isinstance(pname, str) or not _STEP_NAME.match(pname):
                raise InvalidInput(f"parameter name {pname!r} must be letters, digits, '_' or '-', starting with a "
                                   "letter or '_'")
            self.params[pname] = Param.from_value(value, pname)
        self._steps: dict[str, StepSpec] = {}
        #: functions given as objects, by reference (for ones other processes cannot import)
        self.functions: dict[str, Callable[..., Any]] = {}
        self._outputs: dict[str, tuple[str, ...]] = {}

    # -- building ------------------------------------------------------------------------------------
    def param(self, name: str) -> Expr:
        """A reference to parameter ``name`` (declared in ``params``)."""
        if name not in self.params:
            raise InvalidInput(f"pipeline {self.name!r} has no parameter {name!r}; declare it in params= "
                               f"(declared: {', '.join(self.params) or 'none'})")
        return Expr(f"${{params.{name}}}")

    @property
    def execution_id(self) -> Expr:
        """A reference to the running execution's id (``${execution.id}``)."""
        return Expr("${execution.id}")

    def add(
        self,
        what: Callable[..., Any] | str,
        /,
        *,
        name: str | None = None,
        args: Mapping[str, Any] | None = None,
        depends_on: Iterable[StepHandle | str] = (),
        cache: Any = None,
        retries: Any = None,
        description: str = "",
        **kwargs: Any,
    ) -> StepHandle:
        """Add a step: a function, a ``"module:function"`` reference, or a built-in kind by name.

        Parameters
        ----------
        what
            A function (a ``python`` step), ``"module:function"``, or a kind
            (``"train"``, ``"evaluate"``, ...; see :mod:`loopml.pipelines.steps`).
        name
            The step's name (default: the function's or kind's name, made unique).
        args, **kwargs
            The step's arguments (``args`` for names that clash with these options).
            Values may be references: ``other.output("x")``, ``p.param("y")``.
        depends_on
            Steps that must finish first although no argument refers to them.
        cache
            Opt in to caching with an expiry (``"P30D"``, seconds, True for none).
        retries
            Retries on error: a number or a :class:`RetryPolicy` mapping.
        description
            Shown by ``loopml pipelines show``.

        Returns
        -------
        StepHandle
        """
        opts = StepOptions()
        function: str | None = None
        if callable(what):
            opts = getattr(what, "__loopml_step__", opts)
            function, _importable = function_ref(what)
            self.functions[function] = what
            kind = "python"
            default_name = str(opts.name or getattr(what, "__name__", "step"))
        elif isinstance(what, str) and ":" in what:
            function, kind = what, "python"
            default_name = what.rpartition(":")[2].rpartition(".")[2]
        elif isinstance(what, str):
            kind = what
            KINDS.get(kind)
            if kind in ("condition", "fail"):
                raise InvalidInput(f"add {kind} steps with Pipeline.{kind}()")
            default_name = kind
        else:
            raise InvalidInput(f"a step is a function, 'module:function' or a step kind name, got {what!r}")
        step_name = name or self._unique(default_name)
        where = f"step {step_name!r}: "
        merged = {**dict(args or {}), **kwargs}
        spec = StepSpec(
            name=step_name, kind=kind, args=_arg_node(merged, where), function=function,
            cache=cache if cache is not None else opts.cache,
            retries=RetryPolicy.parse(retries if retries is not None else opts.retries, where),
            depends_on=_names(depends_on, where), description=description or opts.description,
        )
        if opts.outputs:
            self._outputs[step_name] = opts.outputs
        return self._add_spec(spec)

    def condition(
        self,
        when: Expr | str | Mapping[str, Any],
        *,
        if_steps: Iterable[StepHandle | str] = (),
        else_steps: Iterable[StepHandle | str] = (),
        name: str | None = None,
        description: str = "",
    ) -> StepHandle:
        """Add a condition: ``if_steps`` run when ``when`` holds, ``else_steps`` otherwise.

        ``when`` is built with operators on references (``a.output("auc") >= p.param("t")``,
        ``&``, ``|``, ``~``, ``.isin([...])``) or written as text
        (``"${steps.eval.outputs.metrics.auc} >= ${params.t}"``). The steps of the
        branch not taken, and every step depending on them, are Skipped. Its
        outputs are ``result`` (bool) and ``detail`` (the comparison with values).
        """
        step_name = name or self._unique("condition")
        where = f"condition {step_name!r}: "
        node = when.node if isinstance(when, Expr) else when
        if isinstance(node, bool):
            raise InvalidInput(f"{where}the condition is a plain {node}; it must refer to parameters or step "
                               "outputs (did you compare with == on something that is not a reference?)")
        spec = StepSpec(name=step_name, kind="condition", when=_expr.check_condition(node, where),
                        if_steps=_names(if_steps, where), else_steps=_names(else_steps, where),
                        description=description)
        return self._add_spec(spec)

    def fail(self, message: str | Expr, *, name: str | None = None) -> StepHandle:
        """Add a step that stops the execution as Failed with ``message`` (which may hold references)."""
        step_name = name or self._unique("fail")
        spec = StepSpec(name=step_name, kind="fail", args={"message": _arg_node(message, f"step {step_name!r}: ")})
        return self._add_spec(spec)

    def _unique(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_\-]", "_", base)[:90] or "step"
        if base[0].isdigit() or base[0] == "-":
            base = "_" + base
        if base not in self._steps:
            return base
        i = 2
        while f"{base}_{i}" in self._steps:
            i += 1
        return f"{base}_{i}"

    def _add_spec(self, spec: StepSpec) -> StepHandle:
        if not _STEP_NAME.match(spec.name):
            raise InvalidInput(f"step name {spec.name!r} must be letters, digits, '_' or '-', starting with a "
                               "letter or '_' (no dots: references use them)")
        if spec.name in self._steps:
            raise InvalidInput(f"pipeline {self.name!r} already has a step named {spec.name!r}; give this one "
                               "another name=")
        if spec.cached:
            parse_duration(spec.cache, f"step {spec.name!r}: cache expiry")
        self._steps[spec.name] = spec
        return StepHandle(self, spec.name)

    # -- reading -------------------------------------------------------------------------------------
    @property
    def steps(self) -> list[StepSpec]:
        """The steps in the order they were added."""
        return list(self._steps.values())

    def step_spec(self, name: str) -> StepSpec:
        """The step called ``name``."""
        try:
            return self._steps[name]
        except KeyError:
            raise InvalidInput(f"pipeline {self.name!r} has no step {name!r}; steps: "
                               f"{', '.join(self._steps) or 'none'}") from None

    def handle(self, name: str) -> StepHandle:
        """A handle on an existing step (to refer to its outputs)."""
        self.step_spec(name)
        return StepHandle(self, name)

    def gates(self) -> dict[str, tuple[str, bool]]:
        """Step -> (condition step, branch) for the steps inside a condition's branch."""
        out: dict[str, tuple[str, bool]] = {}
        for s in self._steps.values():
            for branch, names in ((True, s.if_steps), (False, s.else_steps)):
                for n in names:
                    out[n] = (s.name, branch)
        return out

    def dependencies(self) -> dict[str, list[str]]:
        """Step -> the steps it waits for (references, ``depends_on``, its condition), in step order."""
        gates = self.gates()
        deps: dict[str, list[str]] = {}
        for s in self._steps.values():
            found: list[str] = []
            refs = [*_expr.refs_in(s.args), *_expr.refs_in(s.when)]
            for r in refs:
                if r.kind == "step" and r.name not in found:
                    found.append(r.name)
            for d in s.depends_on:
                if d not in found:
                    found.append(d)
            if s.name in gates and gates[s.name][0] not in found:
                found.append(gates[s.name][0])
            deps[s.name] = found
        return deps

    def kind_outputs(self, name: str) -> tuple[str, ...]:
        """Declared output names of step ``name`` (empty: not declared)."""
        spec = self._steps[name]
        if spec.kind == "python":
            return self._outputs.get(name, ())
        return KINDS.get(spec.kind).outputs

    # -- checking ----------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the whole pipeline before anything runs.

        Raises
        ------
        InvalidInput
            An unknown kind, function, argument, parameter or step reference, a
            missing required argument, a step in two branches, or a cycle.
        """
        if not self._steps:
            raise InvalidInput(f"pipeline {self.name!r} has no steps")
        gates: dict[str, str] = {}
        for s in self._steps.values():
            where = f"step {s.name!r}: "
            kind = KINDS.get(s.kind)
            if s.kind == "condition":
                if s.when is None:
                    raise InvalidInput(f"{where}a condition needs when:")
                for n in (*s.if_steps, *s.else_steps):
                    if n not in self._steps:
                        raise InvalidInput(f"{where}branch step {n!r} does not exist; steps: {', '.join(self._steps)}")
                    if n == s.name:
                        raise InvalidInput(f"{where}a condition cannot be in its own branch")
                    if n in gates:
                        raise InvalidInput(f"{where}step {n!r} is already in a branch of {gates[n]!r}; a step "
                                           "belongs to at most one branch")
                    gates[n] = s.name
            elif s.when is not None or s.if_steps or s.else_steps:
                raise InvalidInput(f"{where}when/if_steps/else_steps belong to condition steps only")
            if s.kind == "python":
                if not s.function:
                    raise InvalidInput(f"{where}a python step needs function: module:function")
                fn = resolve_function(s.function, self.functions)
                self._check_args(fn, s.args, where, f"function {s.function}")
            elif not kind.inline:
                self._check_args(kind.fn, s.args, where, f"step kind {s.kind!r}")
            elif s.kind == "fail" and "message" not in s.args:
                raise InvalidInput(f"{where}a fail step needs a message")
            for d in s.depends_on:
                if d not in self._steps:
                    raise InvalidInput(f"{where}depends_on names step {d!r}, which does not exist")
            for r in [*_expr.refs_in(s.args, where), *_expr.refs_in(s.when, where)]:
                self._check_ref(r, s.name, where)
        self.order()

    def _check_ref(self, r: Ref, me: str, where: str) -> None:
        if r.kind == "param":
            if r.name not in self.params:
                raise InvalidInput(f"{where}${{params.{r.name}}} is not a parameter of pipeline {self.name!r} "
                                   f"(parameters: {', '.join(self.params) or 'none'})")
        elif r.kind == "step":
            if r.name not in self._steps:
                raise InvalidInput(f"{where}{r.text} refers to step {r.name!r}, which does not exist "
                                   f"(steps: {', '.join(self._steps)})")
            if r.name == me:
                raise InvalidInput(f"{where}a step cannot use its own outputs")
            declared = self.kind_outputs(r.name)
            if declared and r.path and r.path[0] not in declared:
                raise InvalidInput(f"{where}{r.text}: step {r.name!r} has no output {r.path[0]!r}; its outputs: "
                                   f"{', '.join(declared)}")

    @staticmethod
    def _check_args(fn: Callable[..., Any], args: Mapping[str, Any], where: str, what: str) -> None:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return
        params = [p for p in sig.parameters.values() if p.name != "ctx"]
        if any(p.kind is p.VAR_KEYWORD for p in params):
            names = {p.name for p in params if p.kind is not p.VAR_KEYWORD}
            unknown: list[str] = []
        else:
            names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            unknown = sorted(set(args) - names)
        if unknown:
            raise InvalidInput(f"{where}{what} has no argument {unknown[0]!r}; it takes: "
                               f"{', '.join(sorted(names)) or 'nothing'}")
        missing = [p.name for p in params
                   if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   and p.name not in args]
        if missing:
            raise InvalidInput(f"{where}{what} needs argument {missing[0]!r}")

    def order(self) -> list[str]:
        """The steps in a dependency order (raises InvalidInput naming a cycle if there is one)."""
        deps = self.dependencies()
        for n, ds in deps.items():
            for d in ds:
                if d not in self._steps:
                    raise InvalidInput(f"step {n!r} waits for step {d!r}, which does not exist")
        indeg = {n: len(ds) for n, ds in deps.items()}
        users: dict[str, list[str]] = {n: [] for n in deps}
        for n, ds in deps.items():
            for d in ds:
                users[d].append(n)
        ready = [n for n in self._steps if indeg[n] == 0]
        out: list[str] = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for u in users[n]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    ready.append(u)
        if len(out) < len(self._steps):
            raise InvalidInput(f"the steps of pipeline {self.name!r} form a cycle: {' -> '.join(self._cycle(deps))}")
        return out

    def _cycle(self, deps: Mapping[str, list[str]]) -> list[str]:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(n: str) -> list[str] | None:
            state[n] = 1
            stack.append(n)
            for d in deps[n]:
                if state.get(d) == 1:
                    return [*stack[stack.index(d):], d]
                if d not in state:
                    found = visit(d)
                    if found:
                        return found
            stack.pop()
            state[n] = 2
            return None

        for n in deps:
            if n not in state:
                found = visit(n)
                if found:
                    return list(reversed(found))
        return []  # pragma: no cover - only called when a cycle exists

    # -- parameters ---------------------------------------------------------------------------------
    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter's value: ``given`` (text from ``--param`` is parsed) over the defaults.

        Raises
        ------
        InvalidInput
            An unknown parameter, a value of the wrong type, or a required one missing.
        """
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise InvalidInput(f"pipeline {self.name!r} has no parameter {unknown[0]!r}; its parameters: "
                               f"{', '.join(self.params) or 'none'}")
        out: dict[str, Any] = {}
        for n, p in self.params.items():
            if n in given:
                out[n] = p.convert(given[n], n)
            elif p.required:
                raise InvalidInput(f"pipeline {self.name!r} needs parameter {n!r} ({p.type}); give it with "
                                   f"--param {n}=VALUE")
            else:
                out[n] = p.default
        return out

    # -- the data form -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The canonical YAML/JSON form."""
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        if self.params:
            d["parameters"] = {n: p.to_dict() for n, p in self.params.items()}
        d["steps"] = [s.to_dict() for s in self._steps.values()]
        outputs = {n: list(o) for n, o in self._outputs.items()}
        if outputs:
            for s in d["steps"]:
                if s["name"] in outputs:
                    s["outputs"] = outputs[s["name"]]
        return d

    def to_yaml(self) -> str:
        """The YAML text of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "pipeline") -> Pipeline:
        """Build (and validate) a pipeline from its YAML/JSON form.

        Raises
        ------
        InvalidInput
            A missing or unknown key, or anything :meth:`validate` refuses; the
            message starts with ``source``.
        """
        try:
            return cls._from_dict(data)
        except InvalidInput as e:
            raise InvalidInput(f"{source}: {e}") from None

    @classmethod
    def _from_dict(cls, data: Any) -> Pipeline:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a pipeline is a mapping with name, parameters and steps, got {type(data).__name__}")
        top = {"name", "description", "parameters", "steps"}
        unknown = set(data) - top
        if unknown:
            raise InvalidInput(f"unknown key {sorted(unknown)[0]!r}; known keys: {', '.join(sorted(top))}")
        if "name" not in data:
            raise InvalidInput("the pipeline needs a name")
        params = data.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise InvalidInput("parameters must map names to {type, default}")
        p = cls(str(data["name"]), params, description=str(data.get("description") or ""))
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise InvalidInput("steps must be a non-empty list")
        keys = {"name", "kind", "function", "args", "description", "cache", "retries", "depends_on", "when",
                "if_steps", "else_steps", "outputs", "message"}
        for i, raw in enumerate(steps):
            if not isinstance(raw, Mapping):
                raise InvalidInput(f"step {i + 1} must be a mapping, got {type(raw).__name__}")
            label = f"step {raw.get('name', i + 1)!r}: "
            bad = set(raw) - keys
            if bad:
                raise InvalidInput(f"{label}unknown key {sorted(bad)[0]!r}; known keys: {', '.join(sorted(keys))}")
            if "name" not in raw:
                raise InvalidInput(f"step {i + 1} needs a name")
            name = str(raw["name"])
            kind = raw.get("kind", "python" if raw.get("function") else None)
            if kind is None:
                raise InvalidInput(f"{label}needs a kind (or a function for a python step)")
            args = raw.get("args") or {}
            if not isinstance(args, Mapping):
                raise InvalidInput(f"{label}args must be a mapping")
            if kind == "condition":
                if "when" not in raw:
                    raise InvalidInput(f"{label}a condition needs when:")
                p.condition(raw["when"], if_steps=_str_list(raw.get("if_steps"), label),
                            else_steps=_str_list(raw.get("else_steps"), label), name=name,
                            description=str(raw.get("description") or ""))
                continue
            if kind == "fail":
                message = raw.get("message", args.get("message"))
                if message is None:
                    raise InvalidInput(f"{label}a fail step needs a message")
                p.fail(message, name=name)
                continue
            for k in ("when", "if_steps", "else_steps"):
                if k in raw:
                    raise InvalidInput(f"{label}{k} belongs to condition steps only")
            if kind == "python":
                if not raw.get("function"):
                    raise InvalidInput(f"{label}a python step needs function: module:function")
                what: Any = str(raw["function"])
            else:
                if raw.get("function"):
                    raise InvalidInput(f"{label}function belongs to python steps only")
                what = str(kind)
            p.add(what, name=name, args=args, depends_on=_str_list(raw.get("depends_on"), label),
                  cache=raw.get("cache"), retries=raw.get("retries"), description=str(raw.get("description") or ""))
            if raw.get("outputs"):
                p._outputs[name] = tuple(_str_list(raw["outputs"], label))
        p.validate()
        return p

    @property
    def version(self) -> str:
        """The content hash of the definition and the code of its Python steps."""
        parts = [json.dumps(self.to_dict(), sort_keys=True, default=str)]
        for s in self._steps.values():
            if s.kind == "python" and s.function:
                parts.append(_code_hash(resolve_function(s.function, self.functions)))
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def code_id(self, name: str) -> str:
        """What identifies the code of step ``name``: its function reference and source hash, or its kind."""
        s = self._steps[name]
        if s.kind == "python" and s.function:
            return f"{s.function}@{_code_hash(resolve_function(s.function, self.functions))}"
        kind = KINDS.get(s.kind)
        return f"kind:{s.kind}@{_code_hash(kind.fn)}"

    def copy(self) -> Pipeline:
        """An independent copy (same steps, parameters and functions)."""
        other = Pipeline(self.name, dict(self.params), description=self.description)
        other._steps = {n: replace(s) for n, s in self._steps.items()}
        other.functions = dict(self.functions)
        other._outputs = dict(self._outputs)
        return other

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={list(self._steps)})"


def _str_list(value: Any, label: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidInput(f"{label}expected a step name or a list of names, got {value!r}")


__all__ = ["REQUIRED", "Param", "Pipeline", "RetryPolicy", "StepHandle", "StepOptions", "StepSpec", "step"]
