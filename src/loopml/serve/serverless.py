"""Serverless endpoints: scale to zero when idle, a cold start on the first request, a concurrency cap.

A serverless endpoint (``loopml endpoints deploy EP --model M:V --serverless
--memory-mb M --max-concurrency C [--idle-timeout S]``) runs its model in
replica processes (:mod:`loopml.serve.replicas`) with ``min_replicas=0``:

- while idle no replica runs: the worker process is stopped ``idle_timeout_s``
  after its last request;
- the first request after that starts one and waits for it (a *cold start*:
  the time is exported as the metric ``ColdStartLatency`` and on ``/metrics``).
  Replicas are forked from a zygote process that imported numpy, pandas and the
  model libraries once, so a cold start costs a fork and the model load, not
  the imports;
- at most ``max_concurrency`` requests are in flight at once; the next one gets
  429 ``ThrottlingException`` at once (SageMaker's MaxConcurrency);
- each replica's address space is limited to ``memory_mb`` (``RLIMIT_AS``)
  where that is enforceable: a worker already mapping more than the limit
  after its imports cannot get it, and reports the limit as not enforced
  instead (``GET /endpoints`` shows which).

Examples
--------
>>> cfg = ServerlessConfig(memory_mb=2048, max_concurrency=8, idle_timeout_s=30)
>>> s = cfg.scaling(cpus=2)
>>> (s.min_replicas, s.max_replicas, s.idle_timeout_s)
(0, 2, 30.0)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.serve.autoscale import ScalingConfig

#: SageMaker's serverless bounds are 1024-6144 MB and 1-200; loopml runs locally and allows more
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 1 << 20
MAX_CONCURRENCY = 1000
DEFAULT_IDLE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServerlessConfig:
    """The serverless settings of an endpoint.

    Parameters
    ----------
    memory_mb
        Address-space limit of each replica process, in MB.
    max_concurrency
        Most requests in flight at once; more get 429 ``ThrottlingException``.
    idle_timeout_s
        A replica that served nothing for this long is stopped (scale to zero).
    max_replicas
        Most replica processes (default: ``max_concurrency``, at most the number of CPUs).
    """

    memory_mb: int = 2048
    max_concurrency: int = 20
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_replicas: int | None = None

    def scaling(self, *, cpus: int | None = None) -> ScalingConfig:
        """The replica policy this serverless config runs as: 0 to N replicas, one request each."""
        from loopml.serve.autoscale import ScalingConfig

        n = self.max_replicas or max(1, min(self.max_concurrency, cpus or os.cpu_count() or 1))
        idle = float(self.idle_timeout_s)
        return ScalingConfig(min_replicas=0, max_replicas=n, target_inflight=1.0, scale_out_cooldown_s=0.0,
                             scale_in_cooldown_s=idle, idle_timeout_s=idle, scale_out_window_s=0.25)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"memory_mb": self.memory_mb, "max_concurrency": self.max_concurrency,
                "idle_timeout_s": self.idle_timeout_s, "max_replicas": self.max_replicas}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ServerlessConfig:
        """The inverse of :meth:`to_dict` (checked)."""
        mr = d.get("max_replicas")
        return check_serverless(int(d.get("memory_mb", 2048)), int(d.get("max_concurrency", 20)),
                                idle_timeout_s=float(d.get("idle_timeout_s", DEFAULT_IDLE_TIMEOUT_S)),
                                max_replicas=None if mr is None else int(mr))


def check_serverless(memory_mb: int, max_concurrency: int, *, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                     max_replicas: int | None = None) -> ServerlessConfig:
    """A checked :class:`ServerlessConfig`; InvalidInput naming the setting otherwise.

    Examples
    --------
    >>> check_serverless(2048, 0)
    Traceback (most recent call last):
    ...
    loopml.errors.InvalidInput: --max-concurrency must be a whole number from 1 to 1000, got 0
    """
    def number(what: str, value: Any, lo: float, hi: float, integer: bool) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and integer and int(value) != value:
            ok = False
        if not ok or not lo <= value <= hi:
            kind = "a whole number" if integer else "a number of seconds"
            raise InvalidInput(f"{what} must be {kind} from {lo:g} to {hi:g}, got {value!r}")
        return int(value) if integer else float(value)

    from loopml.serve.autoscale import MAX_REPLICAS

    return ServerlessConfig(
        number("--memory-mb", memory_mb, MIN_MEMORY_MB, MAX_MEMORY_MB, True),
        number("--max-concurrency", max_concurrency, 1, MAX_CONCURRENCY, True),
        number("--idle-timeout", idle_timeout_s, 0.01, 86_400 * 7, False),
        None if max_replicas is None else number("serverless max replicas", max_replicas, 1, MAX_REPLICAS, True),
    )


def _vm_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def apply_memory_limit(memory_mb: int | None) -> str:
    """In a replica process: limit its address space to ``memory_mb`` MB; say how it went.

    Returns a sentence for humans: ``"enforced: RLIMIT_AS 2048 MB (412 MB mapped now)"``, or
    ``"not enforced: ..."`` with the reason (no ``resource`` module, or the process already
    maps more than the limit after its imports, so the limit would leave it no memory at all).
    """
    if memory_mb is None:
        return "none"
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return f"not enforced: this platform has no resource limits ({memory_mb} MB asked)"
    limit = int(memory_mb) * 1024 * 1024
    mapped_kib = _vm_kib("VmSize")
    mapped_mb = None if mapped_kib is None else mapped_kib // 1024
    if mapped_mb is not None and mapped_mb + 32 >= memory_mb:
        return (f"not enforced: the worker already maps {mapped_mb} MB of address space after its imports, "
                f"more than the {memory_mb} MB limit leaves room for; raise --memory-mb")
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and hard < limit:
            return f"not enforced: the hard address-space limit is already {hard // (1024 * 1024)} MB"
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError) as e:
        return f"not enforced: setrlimit(RLIMIT_AS) failed: {e}"
    now = "" if mapped_mb is None else f" ({mapped_mb} MB mapped now)"
    return f"enforced: RLIMIT_AS {memory_mb} MB{now}"


__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "MAX_CONCURRENCY",
    "MAX_MEMORY_MB",
    "MIN_MEMORY_MB",
    "ServerlessConfig",
    "apply_memory_limit",
    "check_serverless",
]
