"""Tiny pipeline steps for the trigger tests (importable, so every executor can run them)."""

from __future__ import annotations

import time
from typing import Any


def record(dataset: str = "", reason: str = "", slot: str = "") -> dict[str, Any]:
    """Return what the trigger passed in."""
    return {"dataset": dataset, "reason": reason, "slot": slot}


def slow(seconds: float) -> dict[str, Any]:
    """Sleep, then return (a long pipeline)."""
    time.sleep(seconds)
    return {"slept": seconds}


def boom(dataset: str = "") -> dict[str, Any]:
    """Fail."""
    raise RuntimeError(f"cannot process {dataset}")
