"""The Ray executor: tasks as Ray tasks, on a local Ray instance or a cluster.

Needs the ``ray`` extra (``pip install 'loopml[ray]'``). Tasks must be able to
reach the workspace's stores from wherever Ray runs them: a PostgreSQL
metadata URL and an object-store artifact root for a cluster of machines; a
local folder is enough on one machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from loopml.compute._base import _ExecutorBase
from loopml.errors import InvalidInput

T = TypeVar("T")
log = logging.getLogger(__name__)


class RayExecutor(_ExecutorBase):
    """Run tasks as Ray tasks.

    Parameters
    ----------
    max_workers
        Tasks in flight at once (default: the cluster's CPUs / ``num_cpus_per_task``).
    address
        A Ray cluster (``ray://host:10001`` or ``auto``); None starts a local Ray
        instance unless one is already connected.
    num_cpus
        CPUs of a local instance started here (default: all).
    num_cpus_per_task
        CPUs Ray reserves for each task.
    runtime_env
        Ray runtime environment of the tasks (e.g. ``{"env_vars": {...}}``).

    Notes
    -----
    A Ray instance this executor started is shut down by :meth:`shutdown`; one
    that was already connected is left running.
    """

    name = "ray"
    in_process = False

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        num_cpus_per_task: float = 1.0,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidInput("the ray executor needs Ray: pip install 'loopml[ray]'") from None
        if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
            raise InvalidInput(f"max_workers must be a positive integer, got {max_workers!r}")
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "ignore_reinit_error": True}
            if address is not None:
                kwargs["address"] = address
            elif num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            if runtime_env:
                kwargs["runtime_env"] = runtime_env
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = address or "a local instance"
                raise InvalidInput(f"cannot start or reach Ray at {where}: {' '.join(str(e).split())}") from None
            self._owns = True
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.max_workers = max_workers or max(1, int(cpus // num_cpus_per_task))
        self.num_cpus_per_task = num_cpus_per_task
        self._remote: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Start ``fn(*args)`` as a Ray task; the future resolves with its result."""
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._ray.remote(num_cpus=self.num_cpus_per_task, max_retries=0)(fn)
            self._remote[fn] = remote
        fut: Future[T] = remote.remote(*args).future()
        return fut

    def shutdown(self, wait: bool = True) -> None:
        """Disconnect from Ray (shutting down a local instance this executor started)."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False


__all__ = ["RayExecutor"]
