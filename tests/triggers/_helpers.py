"""Shared pieces of the trigger tests: tiny pipelines and a poll helper."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopml.pipelines import Param, Pipeline
from tests.triggers import _steps


def record_pipeline(name: str = "rec") -> Pipeline:
    """One python step that returns the parameters it was given."""
    p = Pipeline(name, params={"dataset": Param(str, ""), "reason": Param(str, ""), "slot": Param(str, "")})
    p.add(_steps.record, name="rec", dataset=p.param("dataset"), reason=p.param("reason"), slot=p.param("slot"))
    return p


def slow_pipeline(seconds: float, name: str = "slow") -> Pipeline:
    """One step that sleeps."""
    p = Pipeline(name, params={"seconds": Param(float, seconds), "dataset": Param(str, "")})
    p.add(_steps.slow, name="sleep", seconds=p.param("seconds"))
    return p


def failing_pipeline(name: str = "boom") -> Pipeline:
    """One step that raises."""
    p = Pipeline(name, params={"dataset": Param(str, "")})
    p.add(_steps.boom, name="boom", dataset=p.param("dataset"))
    return p


def write_yaml_pipeline(folder: Path, name: str = "retrain") -> Path:
    """A YAML pipeline file whose step is importable from the tests package."""
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        "parameters:\n"
        "  dataset: {type: string, default: ''}\n"
        "  reason: {type: string, default: ''}\n"
        "  slot: {type: string, default: ''}\n"
        "steps:\n"
        "  - name: rec\n"
        "    function: tests.triggers._steps:record\n"
        "    args: {dataset: '${params.dataset}', reason: '${params.reason}', slot: '${params.slot}'}\n"
    )
    return path


def wait_for(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {timeout}s waiting for {check}")
        time.sleep(every)
