"""Completion criteria: when a tuning job stops before it has run all its trials.

SageMaker's ``TuningJobCompletionCriteria``: a target objective value
(``TargetObjectiveMetricValue``), no improvement of the best for N trials
(``BestObjectiveNotImproving``), plus a limit on the job's wall time
(``MaxRuntimeInSeconds``). A pure function of the finished trials, checked by
the job after each trial.

Examples
--------
>>> c = CompletionCriteria(target=0.9)
>>> c.check([0.7, 0.85, 0.91], "maximize")
'target reached: 0.91 >= 0.9'
>>> CompletionCriteria(max_trials_without_improvement=2, min_improvement=0.01).check(
...     [0.80, 0.805, 0.809], "maximize")
'no improvement of the best by more than 0.01 in the last 2 trials'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from loopml.errors import InvalidInput


@dataclass(frozen=True)
class CompletionCriteria:
    """When to stop a tuning job early.

    Parameters
    ----------
    target
        Stop once a trial's objective reaches this value (>= when maximizing, <= when minimizing).
    max_trials_without_improvement
        Stop when this many trials in a row (pruned and failed ones count) did not
        improve the best by more than ``min_improvement``.
    min_improvement
        The margin an improvement must exceed (absolute, in the objective's units).
    max_runtime
        Start no trial after this many seconds of the job (running trials finish).
    """

    target: float | None = None
    max_trials_without_improvement: int | None = None
    min_improvement: float = 0.0
    max_runtime: float | None = None

    def __post_init__(self) -> None:
        if self.target is not None and (isinstance(self.target, bool) or not math.isfinite(float(self.target))):
            raise InvalidInput(f"completion target must be a finite number, got {self.target!r}")
        n = self.max_trials_without_improvement
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InvalidInput(f"max_trials_without_improvement must be a positive integer, got {n!r}")
        if isinstance(self.min_improvement, bool) or not self.min_improvement >= 0:
            raise InvalidInput(f"min_improvement must be >= 0, got {self.min_improvement!r}")
        if self.max_runtime is not None and not self.max_runtime > 0:
            raise InvalidInput(f"max_runtime must be a positive number of seconds, got {self.max_runtime!r}")

    @classmethod
    def parse(cls, value: CompletionCriteria | Mapping[str, Any] | None) -> CompletionCriteria:
        """A CompletionCriteria from itself, a mapping of its fields, or None (no criteria)."""
        if value is None:
            return cls()
        if isinstance(value, CompletionCriteria):
            return value
        if isinstance(value, Mapping):
            try:
                return cls(**dict(value))
            except TypeError as e:
                raise InvalidInput(f"completion: {e}") from None
        raise InvalidInput(f"completion must be CompletionCriteria(...) or a mapping, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored with the job."""
        return asdict(self)

    def check(self, values: Sequence[float | None], direction: str, elapsed: float = 0.0) -> str | None:
        """Why the job should stop now, or None.

        Parameters
        ----------
        values
            The objective of each finished trial in the order they finished
            (None for a pruned or failed trial).
        direction
            ``maximize`` or ``minimize``.
        elapsed
            Seconds since the job started.
        """
        sign = 1.0 if direction == "maximize" else -1.0
        if self.target is not None:
            for v in values:
                if v is not None and sign * (v - self.target) >= 0:
                    op = ">=" if sign > 0 else "<="
                    return f"target reached: {v:.6g} {op} {self.target:g}"
        n = self.max_trials_without_improvement
        if n is not None:
            best: float | None = None
            since = 0
            for v in values:
                if v is not None and (best is None or sign * (v - best) > self.min_improvement):
                    best = v
                    since = 0
                else:
                    since += 1
            if best is not None and since >= n:
                margin = f" by more than {self.min_improvement:g}" if self.min_improvement else ""
                return f"no improvement of the best{margin} in the last {n} trials"
        if self.max_runtime is not None and elapsed >= self.max_runtime:
            return f"max_runtime of {self.max_runtime:g} s reached"
        return None


__all__ = ["CompletionCriteria"]
