"""Running pipelines: records, parallel steps, caching, retries, resume, conditions, idempotency."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopml import Workspace
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.pipelines import (
    EXECUTION_FINISHED,
    EXECUTION_STARTED,
    Param,
    Pipeline,
    StepExecutionInfo,
    get_execution,
    list_executions,
    run_pipeline,
    step_logs,
)
from loopml.pipelines.models import StepExecutionRow
from loopml.store import EntityRef
from tests.pipelines import _steps


def _chain() -> Pipeline:
    p = Pipeline("chain", params={"x": Param(int, 1)})
    a = p.add(_steps.add, name="a", a=p.param("x"), b=1)
    b = p.add(_steps.add, name="b", a=a.output("sum"), b=10)
    p.add(_steps.echo, name="c", total=b.output("sum"), label="run-${params.x}", ex="${execution.id}")
    return p


def test_a_run_is_recorded_step_by_step(any_ws: Workspace) -> None:
    seen: list[tuple[str, str]] = []

    def progress(s: StepExecutionInfo) -> None:
        seen.append((s.name, s.status))

    ex = run_pipeline(any_ws, _chain(), {"x": "4"}, executor="thread", on_step=progress)
    assert ex.status == "Succeeded" and ex.error is None and ex.params == {"x": 4}
    assert [s.name for s in ex.steps] == ["a", "b", "c"] == ex.step_names
    c = ex.step("c")
    assert c.outputs == {"total": 15, "label": "run-4", "ex": ex.id, "execution_id": ex.id, "step": "c",
                         "attempt": 1}
    assert c.inputs == {"total": 15, "label": "run-4", "ex": ex.id}
    assert all(s.status == "Succeeded" and s.attempt == 1 and s.duration_s is not None for s in ex.steps)
    assert ("a", "Executing") in seen and ("c", "Succeeded") in seen
    assert ex.outputs["a"] == {"sum": 5} and ex.end_time is not None and ex.executor == "thread"
    again = get_execution(any_ws, ex.id[:10])
    assert again.to_dict() == ex.to_dict()
    assert [e.id for e in list_executions(any_ws, pipeline="chain")] == [ex.id]
    assert list_executions(any_ws, pipeline="other") == [] and list_executions(any_ws, status="Failed") == []
    events = [(e.type, e.payload.get("status")) for e in any_ws.events.list()
              if e.type.startswith("pipeline.")]
    assert events == [(EXECUTION_STARTED, None), (EXECUTION_FINISHED, "Succeeded")]
    with pytest.raises(NotFound, match="no pipeline execution 'pex-nope'"):
        get_execution(any_ws, "pex-nope")
    with pytest.raises(NotFound, match="has no record of step 'zz'"):
        ex.step("zz")


def test_logs_are_captured_per_step(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    p = Pipeline("logs")
    p.add(_steps.slow, name="one", value="A")
    p.add(_steps.slow, name="two", value="B")
    ex = run_pipeline(ws, p, executor="thread")
    assert step_logs(ws, ex.id, "one") == "slow A slept 0.0\n"
    assert step_logs(ws, ex.id, "two") == "slow B slept 0.0\n"
    assert "slept" not in capsys.readouterr().out  # the step's prints went to its log, not the console


def test_independent_steps_overlap_in_worker_processes(ws: Workspace) -> None:
    p = Pipeline("par")
    a = p.add(_steps.slow, name="a", value=1, delay=1.5)
    b = p.add(_steps.slow, name="b", value=2, delay=1.5)
    p.add(_steps.add, name="join", a=a.output("value"), b=b.output("value"))
    ex = run_pipeline(ws, p, executor="local", max_workers=2)
    assert ex.status == "Succeeded", ex.error
    oa, ob = ex.step("a").outputs, ex.step("b").outputs
    assert oa["t0"] < ob["t1"] and ob["t0"] < oa["t1"]  # both were running at once
    assert ex.step("join").outputs == {"sum": 3}
    assert os.getpid() not in (oa["pid"], ob["pid"])
    # the recorded times say the same thing
    sa_, sb = ex.step("a"), ex.step("b")
    assert sa_.start_time and sb.start_time and sa_.end_time and sb.end_time
    assert sa_.start_time < sb.end_time and sb.start_time < sa_.end_time
    assert step_logs(ws, ex.id, "a") == "slow 1 slept 1.5\n"  # captured from the worker process


def test_threads_overlap_too(ws: Workspace) -> None:
    p = Pipeline("par")
    p.add(_steps.slow, name="a", value=1, delay=0.3)
    p.add(_steps.slow, name="b", value=2, delay=0.3)
    ex = run_pipeline(ws, p, executor="thread")
    oa, ob = ex.step("a").outputs, ex.step("b").outputs
    assert oa["t0"] < ob["t1"] and ob["t0"] < oa["t1"]
    seq = run_pipeline(ws, p, executor="inline")
    oa, ob = seq.step("a").outputs, seq.step("b").outputs
    assert oa["t1"] <= ob["t0"] or ob["t1"] <= oa["t0"]  # one at a time


# -- caching ---------------------------------------------------------------------------------------------
def _cached(folder: Path, value: int = 1, cache: object = "P1D") -> Pipeline:
    p = Pipeline("cache")
    a = p.add(_steps.count_calls, name="a", folder=str(folder), value=value, cache=cache)
    p.add(_steps.add, name="b", a=a.output("value"), b=1)
    return p


def test_cache_hit_reuses_outputs_and_marks_the_step(ws: Workspace, tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    first = run_pipeline(ws, _cached(tmp_path), executor="thread")
    second = run_pipeline(ws, _cached(tmp_path), executor="thread")
    a1, a2 = first.step("a"), second.step("a")
    assert a1.status == "Succeeded" and a2.status == "Cached" and a2.cached_from == a1.id
    assert a2.outputs == a1.outputs == {"value": 1, "calls": 1} and a1.cache_key == a2.cache_key
    assert len(counter.read_text().splitlines()) == 1  # it ran once
    assert second.step("b").status == "Succeeded"  # not cached: it did not opt in
    # other arguments: a miss
    third = run_pipeline(ws, _cached(tmp_path, value=2), executor="thread")
    assert third.step("a").status == "Succeeded" and third.step("a").outputs["calls"] == 2
    # no caching: runs
    fourth = run_pipeline(ws, _cached(tmp_path, cache=None), executor="thread")
    assert fourth.step("a").status == "Succeeded" and fourth.step("a").cache_key is None


def test_cache_expires(ws: Workspace, tmp_path: Path) -> None:
    first = run_pipeline(ws, _cached(tmp_path, cache="PT1H"), executor="thread")
    with ws.meta.session(write=True) as s:  # it ran two hours ago
        row = s.get_one(StepExecutionRow, first.step("a").id)
        row.end_time = row.end_time - timedelta(hours=2)
    second = run_pipeline(ws, _cached(tmp_path, cache="PT1H"), executor="thread")
    assert second.step("a").status == "Succeeded" and second.step("a").outputs["calls"] == 2
    third = run_pipeline(ws, _cached(tmp_path, cache="PT1H"), executor="thread")
    assert third.step("a").status == "Cached" and third.step("a").cached_from == second.step("a").id
    never = run_pipeline(ws, _cached(tmp_path, cache=True), executor="thread")
    assert never.step("a").status == "Cached" and never.step("a").cached_from == second.step("a").id


def test_cache_key_follows_input_file_content(ws: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "input.csv"
    data.write_text("a\n1\n")
    p = Pipeline("files")
    p.add(_steps.echo, name="read", path=str(data), cache="P1D")
    assert run_pipeline(ws, p, executor="thread").step("read").status == "Succeeded"
    assert run_pipeline(ws, p, executor="thread").step("read").status == "Cached"
    data.write_text("a\n2\n")  # same path, new content
    assert run_pipeline(ws, p, executor="thread").step("read").status == "Succeeded"


def test_cache_key_follows_function_code(ws: Workspace, tmp_path: Path) -> None:
    mod = tmp_path / "mod.py"
    mod.write_text("def f(x):\n    return {'y': x + 1}\n")
    p = Pipeline("code")
    p.add(f"{mod}:f", name="f", x=1, cache="P1D")
    assert run_pipeline(ws, p, executor="thread").step("f").outputs == {"y": 2}
    import sys

    from loopml.pipelines.steps import _FILE_MODULES

    mod.write_text("def f(x):\n    return {'y': x + 2}\n")
    for name in [n for n, path in _FILE_MODULES.items() if path == str(mod)]:  # a new process sees new code
        sys.modules.pop(name, None)
    q = Pipeline("code")
    q.add(f"{mod}:f", name="f", x=1, cache="P1D")
    ex = run_pipeline(ws, q, executor="thread")
    assert ex.step("f").status == "Succeeded" and ex.step("f").outputs == {"y": 3}


# -- retries and failures -----------------------------------------------------------------------------------
def test_a_flaky_step_is_retried_with_backoff(ws: Workspace, tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    p = Pipeline("retry")
    p.add(_steps.flaky, name="flaky", counter=str(counter), fail_times=2,
          retries={"max_attempts": 3, "interval": 0.2, "backoff_rate": 2})
    seen: list[str | None] = []
    ex = run_pipeline(ws, p, executor="thread", on_step=lambda s: seen.append(s.error))
    step = ex.step("flaky")
    assert ex.status == "Succeeded" and step.status == "Succeeded" and step.attempt == 3
    assert step.outputs == {"calls": 3} and step.error is None
    assert [h["error"] for h in step.history] == [
        "ConnectionError: transient failure on call 1", "ConnectionError: transient failure on call 2", None]
    times = [float(t) for t in counter.read_text().split()]
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4  # exponential backoff
    assert any(e and "retrying in 0.2s" in e for e in seen)
    logs = step_logs(ws, ex.id, "flaky")
    assert "--- attempt 1 ---\ncall 1\n" in logs and "ConnectionError: transient failure on call 1" in logs
    assert "--- attempt 3 ---\ncall 3\n" in logs


def test_retries_give_up_and_skip_non_transient_errors(ws: Workspace, tmp_path: Path) -> None:
    p = Pipeline("giveup")
    a = p.add(_steps.flaky, name="flaky", counter=str(tmp_path / "c1"), fail_times=5,
              retries={"max_attempts": 2, "interval": 0})
    p.add(_steps.add, name="after", a=a.output("calls"), b=1)
    ex = run_pipeline(ws, p, executor="thread")
    assert ex.status == "Failed" and ex.step("flaky").attempt == 2
    assert ex.error == "step 'flaky' failed: ConnectionError: transient failure on call 2"
    assert [s.name for s in ex.steps] == ["flaky"]  # 'after' never started
    # a LoopmlError (bad input) is not transient: no retry by default
    q = Pipeline("bad")
    q.add(_steps.flaky, name="flaky", counter=str(tmp_path / "c2"), fail_times=5, error="InvalidInput", retries=3)
    ex = run_pipeline(ws, q, executor="thread")
    assert ex.step("flaky").attempt == 1 and ex.step("flaky").error == "bad input on call 1"
    # only the listed types are retried
    r = Pipeline("only")
    r.add(_steps.flaky, name="flaky", counter=str(tmp_path / "c3"), fail_times=1, error="ValueError",
          retries={"max_attempts": 3, "interval": 0, "on": ["TimeoutError"]})
    assert run_pipeline(ws, r, executor="thread").step("flaky").attempt == 1
    r2 = Pipeline("only")
    r2.add(_steps.flaky, name="flaky", counter=str(tmp_path / "c4"), fail_times=1, error="TimeoutError",
           retries={"max_attempts": 3, "interval": 0, "on": ["OSError"]})  # TimeoutError is an OSError
    assert run_pipeline(ws, r2, executor="thread").step("flaky").attempt == 2


def test_bad_outputs_and_non_importable_functions(ws: Workspace) -> None:
    p = Pipeline("bad")
    p.add(_steps.not_json, name="obj")
    ex = run_pipeline(ws, p, executor="thread")
    assert ex.status == "Failed" and "a step output of type object is not JSON" in (ex.step("obj").error or "")
    q = Pipeline("scalar")
    q.add(_steps.scalar, x=2)
    assert run_pipeline(ws, q, executor="thread").step("scalar").outputs == {"result": 20}

    def local_fn() -> dict[str, int]:
        return {"x": 1}

    r = Pipeline("local")
    r.add(local_fn)
    with pytest.raises(InvalidInput, match=r"local worker processes cannot import .* executor='thread'"):
        run_pipeline(ws, r, executor="local")
    assert run_pipeline(ws, r, executor="thread").step("local_fn").outputs == {"x": 1}
    with pytest.raises(InvalidInput, match="executor 'dask' is not one of local, ray, thread, inline"):
        run_pipeline(ws, r, executor="dask")
    with pytest.raises(InvalidInput, match="needs parameter"):
        run_pipeline(ws, Pipeline.from_dict({"name": "p", "parameters": {"t": {"type": "float"}},
                                             "steps": [{"name": "a", "function": "tests.pipelines._steps:add",
                                                        "args": {"a": "${params.t}", "b": 1}}]}))
    assert list_executions(ws, pipeline="p") == []  # nothing ran


# -- resume ------------------------------------------------------------------------------------------------
def test_resume_reruns_from_the_failed_step(ws: Workspace, tmp_path: Path) -> None:
    counter, flag = tmp_path / "calls.txt", tmp_path / "fixed"
    (tmp_path / "side").mkdir()
    p = Pipeline("resume", params={"v": 7})
    a = p.add(_steps.count_calls, name="a", folder=str(tmp_path), value=p.param("v"))
    side = p.add(_steps.count_calls, name="side", folder=str(tmp_path / "side"))
    b = p.add(_steps.fail_unless, name="b", flag=str(flag), value=a.output("value"))
    p.add(_steps.add, name="c", a=b.output("value"), b=1, depends_on=[side])
    failed = run_pipeline(ws, p, {"v": 8}, executor="thread")
    assert failed.status == "Failed" and failed.step("b").status == "Failed"
    assert "fixed is missing" in (failed.error or "")
    with pytest.raises(InvalidInput, match="keeps the parameters"):
        run_pipeline(ws, p, {"v": 9}, executor="thread", resume_from=failed.id)
    flag.write_text("ok")
    resumed = run_pipeline(ws, None, executor="thread", resume_from=failed.id)  # from the stored definition
    assert resumed.status == "Succeeded" and resumed.resumed_from == failed.id and resumed.params == {"v": 8}
    assert resumed.step("a").status == "Cached" and resumed.step("a").cached_from == failed.step("a").id
    assert resumed.step("side").status == "Cached"
    assert resumed.step("b").status == "Succeeded" and resumed.step("c").outputs == {"sum": 9}
    assert len(counter.read_text().splitlines()) == 1  # 'a' ran once in all
    assert get_execution(ws, failed.id).status == "Failed"  # history is kept
    edges = ws.lineage.downstream(EntityRef("pipeline_execution", failed.id), depth=1)
    assert [(e.relation, e.dst.id) for e in edges] == [("resumed_by", resumed.id)]
    with pytest.raises(Conflict, match="succeeded; there is nothing to resume"):
        run_pipeline(ws, p, executor="thread", resume_from=resumed.id)
    other = Pipeline("other")
    other.add(_steps.add, a=1, b=1)
    again = run_pipeline(ws, p, {"v": 1}, executor="thread")
    assert again.status == "Succeeded"
    with pytest.raises(InvalidInput, match="ran pipeline 'resume', not 'other'"):
        run_pipeline(ws, other, executor="thread", resume_from=failed.id)


# -- conditions --------------------------------------------------------------------------------------------
def _gate() -> Pipeline:
    p = Pipeline("gate", params={"t": Param(float, 0.5), "margin": 0.0})
    ev = p.add(_steps.add, name="score", a=0.3, b=0.4)
    good = p.add(_steps.echo, name="register", score=ev.output("sum"))
    p.add(_steps.echo, name="deploy", model=good.output("score"))
    p.condition(ev.output("sum") >= p.param("t") + p.param("margin"), if_steps=[good],
                else_steps=[p.fail("score ${steps.score.outputs.sum} is below ${params.t}")], name="check")
    return p


def test_condition_true_runs_the_if_branch(ws: Workspace) -> None:
    ex = run_pipeline(ws, _gate(), executor="thread")
    assert ex.status == "Succeeded"
    check = ex.step("check")
    assert check.outputs["result"] is True
    assert check.outputs["detail"] == "0.7 >= (0.5 + 0) -> true"
    assert ex.step("register").status == "Succeeded" and ex.step("deploy").status == "Succeeded"
    assert ex.step("fail").status == "Skipped"
    assert ex.step("fail").inputs == {"skipped_because": "condition 'check' was true"}


def test_condition_false_runs_the_else_branch_and_skips_dependents(ws: Workspace) -> None:
    ex = run_pipeline(ws, _gate(), {"t": "0.9"}, executor="thread")
    assert ex.status == "Failed"
    assert ex.step("check").outputs["result"] is False
    assert ex.step("register").status == "Skipped" and ex.step("deploy").status == "Skipped"
    assert ex.step("deploy").inputs == {"skipped_because": "step 'register' was skipped"}
    fail = ex.step("fail")
    assert fail.status == "Failed" and fail.error == "score 0.7 is below 0.9"
    assert ex.error == "step 'fail' failed: score 0.7 is below 0.9"


def test_conditions_with_or_in_and_missing_values(ws: Workspace) -> None:
    p = Pipeline("ops")
    p.add(_steps.echo, name="a", label="blue", n=None)
    yes = p.add(_steps.add, name="yes", a=1, b=1)
    p.condition("${steps.a.outputs.label} in ['red', 'blue'] and not ${steps.a.outputs.label} == 'red' "
                "or ${steps.a.outputs.n} > 1", if_steps=[yes])
    ex = run_pipeline(ws, p, executor="thread")
    assert ex.status == "Succeeded" and ex.step("yes").status == "Succeeded"
    q = Pipeline("none")
    q.add(_steps.echo, name="a", n=None)
    y = q.add(_steps.add, name="yes", a=1, b=1)
    q.condition(q.handle("a").output("n") >= 0.5, if_steps=[y], name="check")
    ex = run_pipeline(ws, q, executor="thread")
    assert ex.status == "Failed"
    assert ex.step("check").error == ("cannot evaluate ${steps.a.outputs.n} >= 0.5: cannot compute None >= 0.5 in "
                                      "${steps.a.outputs.n} >= 0.5 (a value is missing (None))")
    r = Pipeline("missing")
    r.add(_steps.echo, name="a", n=1)
    r.add(_steps.add, name="b", a="${steps.a.outputs.nn}", b=1)
    ex = run_pipeline(ws, r, executor="thread")
    assert ex.step("b").error == "step 'a' has no output 'nn' (outputs holds: n, execution_id, step, attempt)"


# -- idempotency, lineage ---------------------------------------------------------------------------------
def test_the_same_idempotency_key_returns_the_same_execution(ws: Workspace, tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    p = Pipeline("idem")
    p.add(_steps.count_calls, name="a", folder=str(tmp_path))
    first = run_pipeline(ws, p, executor="thread", idempotency_key="event-42")
    second = run_pipeline(ws, p, executor="thread", idempotency_key="event-42")
    assert first.id == second.id and first.idempotency_key == "event-42"
    assert len(counter.read_text().splitlines()) == 1
    third = run_pipeline(ws, p, executor="thread", idempotency_key="event-43")
    assert third.id != first.id
    with ws.meta.session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM pipeline_executions")) == 2


def test_outputs_naming_entities_get_lineage(ws: Workspace) -> None:
    import pandas as pd

    from loopml.data import Catalog

    info = Catalog(ws).write("tbl", pd.DataFrame({"x": [1, 2]}))
    p = Pipeline("lin")
    p.add(_steps.echo, name="a", dataset=info.ref, run_id="run-xyz", model="not:registered")
    ex = run_pipeline(ws, p, executor="thread")
    edges = {(e.relation, str(e.dst)) for e in ws.lineage.downstream(EntityRef("pipeline_execution", ex.id), 1)}
    assert edges == {("produced", f"dataset_version:{info.id}"), ("produced", "run:run-xyz")}
    up = ws.lineage.upstream(EntityRef("pipeline_execution", ex.id), 1)
    assert [e.relation for e in up] == ["executed_as"] and up[0].src.kind == "pipeline"


# -- interruption ------------------------------------------------------------------------------------------
def test_an_interrupted_execution_is_stopped_and_resumable(ws: Workspace, tmp_path: Path) -> None:
    p = Pipeline("stop")
    a = p.add(_steps.count_calls, name="a", folder=str(tmp_path))
    p.add(_steps.interrupt, name="b", depends_on=[a])
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(ws, p, executor="inline")
    stopped = list_executions(ws, pipeline="stop")[0]
    assert stopped.status == "Stopped" and stopped.error == "stopped: interrupted"
    assert stopped.step("a").status == "Succeeded" and stopped.step("b").status == "Stopped"
    assert [e.payload["status"] for e in ws.events.list(type=EXECUTION_FINISHED)] == ["Stopped"]
    q = Pipeline("stop")
    q.add(_steps.count_calls, name="a", folder=str(tmp_path))
    q.add(_steps.add, name="b", a=1, b=2, depends_on=["a"])  # the fixed pipeline
    resumed = run_pipeline(ws, q, executor="thread", resume_from=stopped.id)
    assert resumed.status == "Succeeded" and resumed.step("a").status == "Cached"
    assert len((tmp_path / "calls.txt").read_text().splitlines()) == 1


def test_resuming_an_execution_whose_coordinator_died(ws: Workspace, tmp_path: Path) -> None:
    import subprocess
    import sys

    from loopml.pipelines.models import PipelineExecutionRow

    p = Pipeline("dead")
    p.add(_steps.count_calls, name="a", folder=str(tmp_path))
    p.add(_steps.fail_unless, name="b", flag=str(tmp_path / "flag"))
    ex = run_pipeline(ws, p, executor="thread")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)
    with ws.meta.session(write=True) as s:  # as if its process was killed while step b ran
        row = s.get_one(PipelineExecutionRow, ex.id)
        row.status, row.end_time = "Executing", None
        row.coordinator = {**row.coordinator, "pid": os.getpid()}
    with pytest.raises(Conflict, match="is still executing"):
        run_pipeline(ws, p, executor="thread", resume_from=ex.id)
    with ws.meta.session(write=True) as s:
        s.get_one(PipelineExecutionRow, ex.id).coordinator = {**row.coordinator, "pid": dead_pid}
    (tmp_path / "flag").write_text("ok")
    resumed = run_pipeline(ws, p, executor="thread", resume_from=ex.id)
    assert resumed.status == "Succeeded" and resumed.step("a").status == "Cached"
    old = get_execution(ws, ex.id)
    assert old.status == "Stopped" and old.error == "stopped: its coordinating process ended"


def test_steps_waiting_for_a_worker_are_starting(ws: Workspace) -> None:
    p = Pipeline("queue")
    for name in ("a", "b", "c"):
        p.add(_steps.slow, name=name, value=name, delay=0.05)
    seen: list[tuple[str, str]] = []
    ex = run_pipeline(ws, p, executor="thread", max_workers=1, on_step=lambda s: seen.append((s.name, s.status)))
    assert ex.status == "Succeeded"
    assert seen[:3] == [("a", "Executing"), ("b", "Starting"), ("c", "Starting")]
    assert seen.index(("b", "Executing")) > seen.index(("a", "Succeeded"))
    oa, ob, oc = (ex.step(n).outputs for n in "abc")
    assert oa["t1"] <= ob["t0"] and ob["t1"] <= oc["t0"]  # one worker: one at a time
    with pytest.raises(InvalidInput, match="max_workers must be a positive whole number"):
        run_pipeline(ws, p, executor="thread", max_workers=0)
