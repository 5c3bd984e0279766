"""Pipelines as code: a DAG of steps in Python or YAML, run with caching, retries and resume.

>>> from loopml.pipelines import Pipeline, Param, step, run_pipeline   # doctest: +SKIP
>>> @step(cache="P30D", retries=2)                                      # doctest: +SKIP
... def load(path: str) -> dict: ...
>>> p = Pipeline("churn", params={"threshold": Param(float, 0.8)})      # doctest: +SKIP
>>> ex = run_pipeline(ws, p, {"threshold": "0.85"})                      # doctest: +SKIP

- :mod:`loopml.pipelines.dsl`: :class:`Pipeline`, :class:`Param`, :func:`step`.
- :mod:`loopml.pipelines.yaml_loader`: the YAML form, :func:`load_pipeline`.
- :mod:`loopml.pipelines.steps`: the built-in step kinds, :func:`register_step_kind`.
- :mod:`loopml.pipelines.cache`: cache keys and expiry.
- :mod:`loopml.pipelines.execution`: :func:`run_pipeline` and the execution records.

See ``docs/pipelines.md``.
"""

from loopml.pipelines._expr import Expr
from loopml.pipelines.dsl import REQUIRED, Param, Pipeline, RetryPolicy, StepHandle, StepSpec, step
from loopml.pipelines.execution import (
    CACHED,
    EXECUTION_FINISHED,
    EXECUTION_STARTED,
    EXECUTION_STATUSES,
    EXECUTORS,
    FAILED,
    SKIPPED,
    STEP_STATUSES,
    STOPPED,
    SUCCEEDED,
    ExecutionInfo,
    StepExecutionInfo,
    get_definition,
    get_execution,
    list_executions,
    run_pipeline,
    step_logs,
)
from loopml.pipelines.steps import (
    StepContext,
    StepKind,
    get_step_kind,
    list_step_kinds,
    register_step_kind,
)
from loopml.pipelines.yaml_loader import load_pipeline, load_yaml

__all__ = [
    "CACHED",
    "EXECUTION_FINISHED",
    "EXECUTION_STARTED",
    "EXECUTION_STATUSES",
    "EXECUTORS",
    "FAILED",
    "REQUIRED",
    "SKIPPED",
    "STEP_STATUSES",
    "STOPPED",
    "SUCCEEDED",
    "ExecutionInfo",
    "Expr",
    "Param",
    "Pipeline",
    "RetryPolicy",
    "StepContext",
    "StepExecutionInfo",
    "StepHandle",
    "StepKind",
    "StepSpec",
    "get_definition",
    "get_execution",
    "get_step_kind",
    "list_executions",
    "list_step_kinds",
    "load_pipeline",
    "load_yaml",
    "register_step_kind",
    "run_pipeline",
    "step",
    "step_logs",
]
