"""The pipeline DSL: parameters, references, validation before anything runs, the YAML form."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.errors import InvalidInput
from loopml.pipelines import Param, Pipeline, RetryPolicy, load_pipeline, step
from loopml.pipelines.dsl import REQUIRED
from tests.pipelines import _steps


# -- parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ptype", "text", "value"), [
    (str, "abc", "abc"), ("string", "12", "12"),
    (int, "42", 42), ("integer", " -3 ", -3),
    (float, "0.85", 0.85), ("float", "1", 1.0),
    (bool, "true", True), ("boolean", "No", False), ("bool", "1", True),
])
def test_params_convert_text(ptype: object, text: str, value: object) -> None:
    got = Param(ptype).convert(text, "p")
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("ptype", "value", "message"), [
    (int, "4.5", "parameter 'p' is integer: '4.5' is not a whole number"),
    (int, True, "is not a whole number"),
    (float, "high", "'high' is not a number"),
    (bool, "maybe", "'maybe' is not true or false"),
    (str, 3, "3 is not text"),
])
def test_params_refuse_wrong_values(ptype: object, value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Param(ptype).convert(value, "p")


def test_params_defaults_and_required() -> None:
    p = Pipeline("x", params={"t": Param(float, 0.8), "n": 3, "name": Param(str), "on": {"default": True}})
    p.add(_steps.add, a=p.param("n"), b=p.param("t"))
    assert p.params["n"] == Param(int, 3) and p.params["on"].type == "boolean"
    assert p.params["name"].default is REQUIRED
    assert p.resolve_params({"name": "a", "t": "0.9"}) == {"t": 0.9, "n": 3, "name": "a", "on": True}
    assert p.resolve_params({"name": "a", "n": 5}) == {"t": 0.8, "n": 5, "name": "a", "on": True}
    with pytest.raises(InvalidInput, match="needs parameter 'name' \\(string\\); give it with --param name=VALUE"):
        p.resolve_params({})
    with pytest.raises(InvalidInput, match="has no parameter 'nme'; its parameters: t, n, name, on"):
        p.resolve_params({"nme": "a"})
    with pytest.raises(InvalidInput, match="parameter 't' is float: 'x' is not a number"):
        p.resolve_params({"name": "a", "t": "x"})
    with pytest.raises(InvalidInput, match="parameter type 'decimal' is not one of string, integer, float, boolean"):
        Param("decimal")
    with pytest.raises(InvalidInput, match=r"parameter 'default' is integer: 0.5 is not a whole number"):
        Param(int, 0.5)
    with pytest.raises(InvalidInput, match="has no parameter 'zzz'"):
        p.param("zzz")


# -- validation ----------------------------------------------------------------------------------------
def _ok() -> Pipeline:
    p = Pipeline("v", params={"x": 1})
    a = p.add(_steps.add, name="a", a=p.param("x"), b=1)
    p.add(_steps.add, name="b", a=a.output("sum"), b=2)
    return p


def test_a_valid_pipeline_orders_its_steps() -> None:
    p = _ok()
    p.validate()
    assert p.order() == ["a", "b"] and p.dependencies() == {"a": [], "b": ["a"]}


def test_cycles_are_refused_naming_the_steps() -> None:
    p = Pipeline("cyc")
    p.add(_steps.add, name="a", a="${steps.c.outputs.sum}", b=1)
    p.add(_steps.add, name="b", a="${steps.a.outputs.sum}", b=1)
    p.add(_steps.add, name="c", a="${steps.b.outputs.sum}", b=1)
    with pytest.raises(InvalidInput, match=r"form a cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"):
        p.validate()
    q = Pipeline("dep")
    q.add(_steps.add, name="a", a=1, b=1, depends_on=["b"])
    q.add(_steps.add, name="b", a=1, b=1, depends_on=["a"])
    with pytest.raises(InvalidInput, match="cycle"):
        q.validate()


@pytest.mark.parametrize(("build", "message"), [
    (lambda p: p.add(_steps.add, a="${steps.nope.outputs.sum}", b=1),
     "refers to step 'nope', which does not exist"),
    (lambda p: p.add(_steps.add, a="${params.y}", b=1), "\\$\\{params.y\\} is not a parameter of pipeline 'v'"),
    (lambda p: p.add(_steps.add, a="${steps.a}", b=1), "is not a reference; write"),
    (lambda p: p.add(_steps.add, a=1), "function tests.pipelines._steps:add needs argument 'b'"),
    (lambda p: p.add(_steps.add, a=1, b=2, c=3), "has no argument 'c'; it takes: a, b"),
    (lambda p: p.add("train", algo="xgboost", data="d:1", target="y", learning_rate=3),
     "step kind 'train' has no argument 'learning_rate'"),
    (lambda p: p.add("train", algo="xgboost", target="y"), "step kind 'train' needs argument 'data'"),
    (lambda p: p.add("train", name="t", algo="x", data="${steps.a.outputs.nope}"),
     "step 'a' has no output 'nope'; its outputs: sum"),
    (lambda p: p.add(_steps.add, a=1, b=1, depends_on=["ghost"]), "depends_on names step 'ghost'"),
    (lambda p: p.add("tests.pipelines._steps:missing", a=1), "cannot find function 'tests.pipelines._steps:missing'"),
    (lambda p: p.add("nosuchmodule_xyz:f"), "cannot find function 'nosuchmodule_xyz:f'"),
])
def test_bad_references_and_arguments_are_refused(build: object, message: str) -> None:
    p = Pipeline("v", params={"x": 1})
    a = p.add(_steps.slow, name="a", value=1)
    p._outputs["a"] = ("sum",)  # declared outputs
    assert a.name == "a"
    with pytest.raises(InvalidInput, match=message):
        build(p)  # type: ignore[operator]
        p.validate()


def test_unknown_kinds_duplicate_and_bad_names() -> None:
    p = Pipeline("v")
    with pytest.raises(InvalidInput, match=r"unknown step kind 'trian'; known kinds: .*train"):
        p.add("trian")
    p.add(_steps.add, a=1, b=2)
    with pytest.raises(InvalidInput, match="already has a step named 'add'"):
        p.add(_steps.add, name="add", a=1, b=2)
    assert p.add(_steps.add, a=1, b=2).name == "add_2"
    with pytest.raises(InvalidInput, match=r"step name 'a.b' must be letters"):
        p.add(_steps.add, name="a.b", a=1, b=2)
    with pytest.raises(InvalidInput, match="pipeline name 'a b' is not allowed"):
        Pipeline("a b")
    with pytest.raises(InvalidInput, match="has no steps"):
        Pipeline("empty").validate()
    with pytest.raises(InvalidInput, match="an argument can be a reference but not an expression"):
        p.add(_steps.add, a=p.handle("add").output("sum") + 1, b=2)
    with pytest.raises(InvalidInput, match=r"add condition steps with Pipeline.condition"):
        p.add("condition")


def test_conditions_gate_branches_and_are_checked() -> None:
    p = Pipeline("c", params={"t": 0.5})
    ev = p.add(_steps.add, name="ev", a=0.3, b=0.4)
    good = p.add(_steps.add, name="good", a=1, b=1)
    bad = p.fail("too low: ${steps.ev.outputs.sum}")
    cond = p.condition((ev.output("sum") >= p.param("t")) & ~ev.output("sum").isin([0, 1]),
                       if_steps=[good], else_steps=[bad])
    p.validate()
    assert p.gates() == {"good": ("condition", True), "fail": ("condition", False)}
    assert p.dependencies()["good"] == ["condition"] and p.dependencies()["condition"] == ["ev"]
    assert cond.spec.when["op"] == "and"
    with pytest.raises(InvalidInput, match="already in a branch of 'condition'"):
        p.condition(ev.output("sum") > 0, if_steps=[good], name="again")
        p.validate()
    q = Pipeline("c2")
    x = q.add(_steps.add, name="x", a=1, b=1)
    with pytest.raises(InvalidInput, match="cannot parse the condition"):
        q.condition("${steps.x.outputs.sum} >=", if_steps=[x])
    with pytest.raises(InvalidInput, match=r"'threshold' in the condition .* is not a value"):
        q.condition("${steps.x.outputs.sum} >= threshold", if_steps=[x])
    with pytest.raises(InvalidInput, match="uses something other than comparisons"):
        q.condition("len(${steps.x.outputs.sum}) > 1")
    with pytest.raises(TypeError, match="combine conditions with &, \\| and ~"):
        bool(x.output("sum") > 1)
    q.condition("${steps.x.outputs.sum} > 1", if_steps=["nope"], name="c")
    with pytest.raises(InvalidInput, match="branch step 'nope' does not exist"):
        q.validate()


def test_retry_policy_and_step_options() -> None:
    assert RetryPolicy.parse(2) == RetryPolicy(max_attempts=3)
    pol = RetryPolicy.parse({"max_attempts": 4, "interval": 0.5, "backoff_rate": 3, "on": "TimeoutError"})
    assert [pol.delay(i) for i in (1, 2, 3)] == [0.5, 1.5, 4.5] and pol.on == ("TimeoutError",)
    assert RetryPolicy(interval=10, backoff_rate=10, max_interval=30).delay(3) == 30
    with pytest.raises(InvalidInput, match="unknown retry setting 'tries'"):
        RetryPolicy.parse({"tries": 3})
    with pytest.raises(InvalidInput, match="retries must be 0 or more"):
        RetryPolicy.parse(-1)

    @step(cache="P1D", retries={"max_attempts": 2, "on": [TimeoutError]}, name="renamed")
    def f(x: int) -> dict[str, int]:
        return {"y": x}

    assert f(1) == {"y": 1}  # still a plain function
    p = Pipeline("o")
    h = p.add(f, x=1)
    assert h.name == "renamed" and h.spec.cache == "P1D" and h.spec.expire_after_s == 86400
    assert h.spec.retries.on == ("builtins.TimeoutError",)
    with pytest.raises(InvalidInput, match="cache expiry 'soon' is not a duration"):
        p.add(_steps.add, a=1, b=1, cache="soon")


# -- the YAML form ---------------------------------------------------------------------------------------
def test_python_and_yaml_forms_are_the_same_object(tmp_path: Path) -> None:
    p = Pipeline("same", params={"t": Param(float, 0.5, "threshold")}, description="d")
    a = p.add(_steps.add, name="a", a=1, b=2, cache="PT1H", retries=1)
    ok = p.add("tests.pipelines._steps:echo", name="ok", v=a.output("sum"), depends_on=[a])
    p.condition(a.output("sum") >= p.param("t"), if_steps=[ok], else_steps=[p.fail("low")])
    d = p.to_dict()
    assert d["steps"][0] == {"name": "a", "kind": "python", "function": "tests.pipelines._steps:add",
                             "args": {"a": 1, "b": 2}, "cache": "PT1H", "retries": {"max_attempts": 2}}
    again = Pipeline.from_dict(d)
    assert again.to_dict() == d and again.version == p.version
    path = tmp_path / "p.yaml"
    path.write_text(p.to_yaml())
    loaded = load_pipeline(path)
    assert loaded.to_dict() == d
    changed = Pipeline.from_dict({**d, "description": "other"})
    assert changed.version != p.version


def test_yaml_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: [\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml: not valid YAML"):
        load_pipeline(bad)
    bad.write_text("name: x\nstep: []\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml: unknown key 'step'; known keys: description, name"):
        load_pipeline(bad)
    bad.write_text("name: x\nsteps:\n  - name: a\n    kind: train\n    arg: {}\n")
    with pytest.raises(InvalidInput, match="step 'a': unknown key 'arg'"):
        load_pipeline(bad)
    bad.write_text("name: x\nsteps:\n  - name: a\n    kind: nope\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml: unknown step kind 'nope'"):
        load_pipeline(bad)
    bad.write_text("name: x\nparameters: {t: {type: float}}\nsteps:\n  - name: a\n"
                   "    function: tests.pipelines._steps:add\n    args: {a: '${params.t}', b: '${params.u}'}\n")
    with pytest.raises(InvalidInput, match=r"\$\{params.u\} is not a parameter"):
        load_pipeline(bad)
    with pytest.raises(InvalidInput, match="pipeline file not found"):
        load_pipeline(tmp_path / "missing.yaml")
    with pytest.raises(InvalidInput, match="no pipeline file 'nothing'"):
        load_pipeline("nothing")


def test_python_files_and_modules(tmp_path: Path) -> None:
    f = tmp_path / "pipe.py"
    f.write_text("from loopml.pipelines import Pipeline\n"
                 "def double(x: int) -> dict:\n    return {'y': 2 * x}\n"
                 "pipeline = Pipeline('file')\npipeline.add(double, x=2)\n"
                 "other = Pipeline('other')\nother.add(double, x=3)\n")
    p = load_pipeline(f)
    assert p.name == "file"
    ref = p.steps[0].function
    assert ref == f"{f}:double"  # workers load the file by path
    assert load_pipeline(f"{f}:other").name == "other"
    with pytest.raises(InvalidInput, match="has no attribute 'nope'"):
        load_pipeline(f"{f}:nope")
    two = tmp_path / "two.py"
    two.write_text("from loopml.pipelines import Pipeline\na = Pipeline('a')\nb = Pipeline('b')\n")
    with pytest.raises(InvalidInput, match=r"defines 2 Pipelines; name one as FILE.py:NAME"):
        load_pipeline(two)
    assert load_pipeline("tests.pipelines.test_dsl:_ok").name == "v"
