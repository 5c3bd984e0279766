"""The local executor: a pool of worker processes on this machine."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from loopml.compute._base import _ExecutorBase
from loopml.errors import InvalidInput

T = TypeVar("T")


class LocalExecutor(_ExecutorBase):
    """Run tasks in ``max_workers`` worker processes (``spawn``ed: no inherited threads or locks).

    Worker processes live as long as the executor, so state a task caches in
    its process (an open workspace, a warm training process) serves the next
    task that lands there.

    Parameters
    ----------
    max_workers
        Worker processes (default: the number of CPUs).
    env
        Environment variables set in the workers (e.g. ``{"OMP_NUM_THREADS": "1"}``).

    Examples
    --------
    >>> with LocalExecutor(2) as ex:   # doctest: +SKIP
    ...     [f.result() for f in [ex.submit(pow, 2, k) for k in range(3)]]
    [1, 2, 4]
    """

    name = "local"
    in_process = False

    def __init__(self, max_workers: int | None = None, *, env: dict[str, str] | None = None) -> None:
        n = (os.cpu_count() or 1) if max_workers is None else max_workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidInput(f"max_workers must be a positive integer, got {max_workers!r}")
        self.max_workers = n
        self.env = dict(env or {})
        self._pool = ProcessPoolExecutor(
            max_workers=n, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self.env,),
        )

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` for the next free worker process."""
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the worker processes (after their running tasks when ``wait``)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


def _init_worker(env: dict[str, str]) -> None:
    os.environ.update(env)


__all__ = ["LocalExecutor"]
