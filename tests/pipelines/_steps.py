"""Importable step functions for the pipeline tests (worker processes import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from loopml.errors import InvalidInput
from loopml.pipelines import StepContext, step


@step(outputs=["value", "t0", "t1", "pid"])
def slow(value: Any = None, delay: float = 0.0) -> dict[str, Any]:
    """Sleep, print, and report when it ran and where."""
    t0 = time.time()
    time.sleep(delay)
    print(f"slow {value} slept {delay}")
    return {"value": value, "t0": t0, "t1": time.time(), "pid": os.getpid()}


def add(a: float, b: float) -> dict[str, Any]:
    """Add two numbers."""
    return {"sum": a + b}


def echo(ctx: StepContext, **values: Any) -> dict[str, Any]:
    """Return the arguments, plus where it ran."""
    return {**values, "execution_id": ctx.execution_id, "step": ctx.step, "attempt": ctx.attempt}


def count_calls(folder: str, value: Any = None) -> dict[str, Any]:
    """Append a line to ``folder/calls.txt`` each call (a file, so calls in other processes count too).

    The argument is the folder, not the file: a file argument's content would enter the cache key.
    """
    counter = Path(folder) / "calls.txt"
    with open(counter, "a") as f:
        f.write("x\n")
    return {"value": value, "calls": len(counter.read_text().splitlines())}


def flaky(counter: str, fail_times: int, error: str = "ConnectionError") -> dict[str, Any]:
    """Fail ``fail_times`` calls (counted in a file), then succeed."""
    with open(counter, "a") as f:
        f.write(f"{time.time()}\n")
    calls = len(Path(counter).read_text().splitlines())
    print(f"call {calls}")
    if calls <= fail_times:
        if error == "InvalidInput":
            raise InvalidInput(f"bad input on call {calls}")
        raise {"ConnectionError": ConnectionError, "ValueError": ValueError, "TimeoutError": TimeoutError}[error](
            f"transient failure on call {calls}")
    return {"calls": calls}


def fail_unless(flag: str, value: Any = None) -> dict[str, Any]:
    """Fail while the file ``flag`` does not exist."""
    if not os.path.exists(flag):
        raise RuntimeError(f"{flag} is missing")
    return {"value": value}


def not_json() -> dict[str, Any]:
    """Return something that is not JSON."""
    return {"obj": object()}


def scalar(x: int) -> int:
    """Return a plain value (stored as the output ``result``)."""
    return x * 10


def interrupt() -> dict[str, Any]:
    """Behave like Ctrl-C in the middle of a step."""
    raise KeyboardInterrupt
