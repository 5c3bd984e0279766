"""Autoscaling of an endpoint variant's replicas: the settings, and the target-tracking decision.

A variant served by replicas (worker processes, see :mod:`loopml.serve.replicas`)
keeps between ``min_replicas`` and ``max_replicas`` of them. The policy tracks a
target of ``target_inflight`` requests in flight (running or waiting) per
replica, as SageMaker's target tracking on invocations per instance does:

- **scale out** when the average in-flight count over the last
  ``scale_out_window_s`` needs more replicas than run now: start as many as the
  target asks for (up to ``max_replicas``), then wait ``scale_out_cooldown_s``
  before the next scale-out. A variant with no replica at all and a request
  waiting starts one at once (the cold start of a serverless endpoint);
- **scale in** only when even the *peak* in-flight count of the last
  ``scale_in_cooldown_s`` fits in fewer replicas, and no scaling happened for
  that long: stop one idle replica at a time (scale-in is the conservative side);
- with ``idle_timeout_s`` (serverless), a replica that served nothing for that
  long is stopped, down to ``min_replicas`` (0: scale to zero).

:class:`Autoscaler` is the decision alone (numbers in, numbers out); the pool
that owns the processes calls it on every tick.

Examples
--------
>>> cfg = ScalingConfig(min_replicas=1, max_replicas=4, target_inflight=2, scale_out_cooldown_s=0,
...                     scale_in_cooldown_s=10)
>>> a = Autoscaler(cfg)
>>> for t in range(5):
...     a.observe(float(t) / 10, inflight=7)
>>> a.decide(0.5, replicas=1)          # 7 in flight / 2 per replica -> 4 replicas: start 3
3
>>> a.decide(20.0, replicas=4)         # nothing observed for 10 s: stop one
-1
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from loopml.errors import InvalidInput

#: most replicas one variant may run
MAX_REPLICAS = 64


@dataclass(frozen=True)
class ScalingConfig:
    """How many replicas a variant runs, and when that number changes.

    Parameters
    ----------
    min_replicas, max_replicas
        Bounds of the replica count (``min_replicas`` may be 0: scale to zero).
    target_inflight
        Requests in flight (running or waiting) per replica that the policy aims at.
    scale_out_cooldown_s
        Seconds after a scale-out before the next one.
    scale_in_cooldown_s
        Seconds of low load (and of no scaling) before a replica is stopped.
    idle_timeout_s
        Stop a replica that served nothing for this long (down to ``min_replicas``);
        None: only the target decides.
    scale_out_window_s
        The in-flight average that decides a scale-out is taken over this many seconds.
    """

    min_replicas: int = 1
    max_replicas: int = 1
    target_inflight: float = 2.0
    scale_out_cooldown_s: float = 5.0
    scale_in_cooldown_s: float = 30.0
    idle_timeout_s: float | None = None
    scale_out_window_s: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "target_inflight": self.target_inflight, "scale_out_cooldown_s": self.scale_out_cooldown_s,
                "scale_in_cooldown_s": self.scale_in_cooldown_s, "idle_timeout_s": self.idle_timeout_s,
                "scale_out_window_s": self.scale_out_window_s}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScalingConfig:
        """The inverse of :meth:`to_dict` (checked)."""
        idle = d.get("idle_timeout_s")
        return check_scaling(
            int(d.get("min_replicas", 1)), int(d.get("max_replicas", 1)),
            target_inflight=float(d.get("target_inflight", 2.0)),
            scale_out_cooldown_s=float(d.get("scale_out_cooldown_s", 5.0)),
            scale_in_cooldown_s=float(d.get("scale_in_cooldown_s", 30.0)),
            idle_timeout_s=None if idle is None else float(idle),
            scale_out_window_s=float(d.get("scale_out_window_s", 1.0)),
        )


def _number(what: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer and int(value) != value:
        ok = False
    if not ok or not lo <= value <= hi:
        kind = "a whole number" if integer else "a number"
        raise InvalidInput(f"{what} must be {kind} from {lo:g} to {hi:g}, got {value!r}")
    return int(value) if integer else float(value)


def check_scaling(
    min_replicas: int,
    max_replicas: int,
    *,
    target_inflight: float = 2.0,
    scale_out_cooldown_s: float = 5.0,
    scale_in_cooldown_s: float = 30.0,
    idle_timeout_s: float | None = None,
    scale_out_window_s: float = 1.0,
) -> ScalingConfig:
    """A checked :class:`ScalingConfig`; InvalidInput saying which setting is wrong.

    Examples
    --------
    >>> check_scaling(3, 1)
    Traceback (most recent call last):
    ...
    loopml.errors.InvalidInput: min replicas (3) is above max replicas (1); give --replicas MIN:MAX with MIN <= MAX
    """
    lo = _number("min replicas", min_replicas, 0, MAX_REPLICAS, integer=True)
    hi = _number("max replicas", max_replicas, 1, MAX_REPLICAS, integer=True)
    if lo > hi:
        raise InvalidInput(f"min replicas ({lo}) is above max replicas ({hi}); give --replicas MIN:MAX with MIN <= MAX")
    return ScalingConfig(
        lo, hi, _number("target in-flight requests per replica", target_inflight, 0.1, 10_000),
        _number("scale-out cooldown", scale_out_cooldown_s, 0, 86_400),
        _number("scale-in cooldown", scale_in_cooldown_s, 0, 86_400),
        None if idle_timeout_s is None else _number("idle timeout", idle_timeout_s, 0.01, 86_400 * 7),
        _number("scale-out window", scale_out_window_s, 0.01, 3600),
    )


def parse_replicas(text: str) -> tuple[int, int]:
    """Parse ``MIN:MAX`` (or ``N`` for a fixed count) of ``--replicas``.

    Examples
    --------
    >>> parse_replicas("1:4"), parse_replicas("2")
    ((1, 4), (2, 2))
    """
    lo, sep, hi = (text or "").strip().partition(":")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise InvalidInput(f"--replicas {text!r} must be MIN:MAX (e.g. 1:4) or one number of replicas") from None
    check_scaling(a, b)
    return a, b


class Autoscaler:
    """The target-tracking decision of one replica pool (no processes, no clock of its own).

    Call :meth:`observe` with the in-flight count every tick and :meth:`decide`
    to learn how many replicas to start (positive) or stop (negative).
    """

    def __init__(self, config: ScalingConfig) -> None:
        self.config = config
        self._samples: deque[tuple[float, int]] = deque()
        self._last_out = -math.inf
        self._last_change = -math.inf
        self._first = math.inf

    def observe(self, now: float, inflight: int) -> None:
        """Record the number of requests in flight (running or waiting) at ``now``."""
        if self._first == math.inf:
            self._first = now
        self._samples.append((now, int(inflight)))
        keep = max(self.config.scale_in_cooldown_s, self.config.scale_out_window_s) + 1.0
        while self._samples and self._samples[0][0] < now - keep:
            self._samples.popleft()

    def wanted(self, load: float) -> int:
        """Replicas that carry ``load`` requests in flight at the target, within the bounds."""
        c = self.config
        need = math.ceil(load / c.target_inflight - 1e-9) if load > 0 else 0
        return max(c.min_replicas, min(c.max_replicas, need))

    def decide(self, now: float, replicas: int, idle_for: Sequence[float] = ()) -> int:
        """Replicas to start (> 0) or stop (< 0) now, given ``replicas`` running or starting.

        ``idle_for`` gives, per idle replica, the seconds since it last served a request
        (for ``idle_timeout_s``).
        """
        c = self.config
        recent = [n for t, n in self._samples if t >= now - c.scale_out_window_s]
        current = self._samples[-1][1] if self._samples else 0
        if replicas < c.min_replicas:
            return self._changed(now, c.min_replicas - replicas, out=True)
        if replicas == 0 and current > 0:  # a request waits and nothing can serve it: start one now
            return self._changed(now, 1, out=True)
        average = sum(recent) / len(recent) if recent else 0.0
        want_out = self.wanted(average)
        if want_out > replicas and now - self._last_out >= c.scale_out_cooldown_s:
            return self._changed(now, want_out - replicas, out=True)
        if replicas > c.min_replicas and c.idle_timeout_s is not None:
            idle = sum(1 for s in idle_for if s >= c.idle_timeout_s)
            if idle:
                return self._changed(now, -min(idle, replicas - c.min_replicas), out=False)
        if replicas > c.min_replicas and now - self._last_change >= c.scale_in_cooldown_s \
                and now - self._first >= c.scale_in_cooldown_s:
            window = [n for t, n in self._samples if t >= now - c.scale_in_cooldown_s]
            peak = max(window) if window else 0
            if self.wanted(peak) < replicas:
                return self._changed(now, -1, out=False)
        return 0

    def _changed(self, now: float, delta: int, *, out: bool) -> int:
        if out:
            self._last_out = now
        self._last_change = now
        return delta


def merge(config: ScalingConfig, **changes: Any) -> ScalingConfig:
    """``config`` with some settings changed, checked again."""
    return ScalingConfig.from_dict(replace(config, **changes).to_dict())


__all__ = ["MAX_REPLICAS", "Autoscaler", "ScalingConfig", "check_scaling", "merge", "parse_replicas"]
