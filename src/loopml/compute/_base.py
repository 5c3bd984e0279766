"""The executor protocol, and the inline executor (the caller's own thread).

An executor runs picklable top-level functions somewhere and hands back a
:class:`concurrent.futures.Future` for each. The tuner keeps
``max_workers`` tasks in flight and reacts as each finishes; where a task runs
(this thread, a local worker process, a Ray worker on another machine) is the
executor's business alone.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    """Runs tasks and returns futures.

    Attributes
    ----------
    name
        ``inline``, ``local`` or ``ray``.
    max_workers
        How many tasks may run at once.
    in_process
        Tasks run in the caller's process (so they may share its objects).
    """

    name: str
    max_workers: int
    in_process: bool

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Start ``fn(*args)``; its result or exception arrives through the future."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Release the workers (waiting for running tasks when ``wait``)."""
        ...


class _ExecutorBase:
    """Context-manager plumbing shared by the executors."""

    def shutdown(self, wait: bool = True) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown(wait=exc is None)


class InlineExecutor(_ExecutorBase):
    """Run each task at once in the calling thread (one at a time).

    The default for one trial at a time: no worker process to start, and
    the tasks share the caller's warm objects.

    Examples
    --------
    >>> ex = InlineExecutor()
    >>> ex.submit(pow, 2, 10).result()
    1024
    """

    name = "inline"
    max_workers = 1
    in_process = True

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run ``fn(*args)`` now; the future is already done."""
        fut: Future[T] = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:
            if not isinstance(e, Exception):
                raise  # KeyboardInterrupt, SystemExit: stop the caller too
            fut.set_exception(e)
        return fut

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release."""


class ThreadExecutor(_ExecutorBase):
    """Run up to ``max_workers`` tasks at once in threads of the calling process.

    For tasks that spend their time waiting on work done elsewhere (a tuning
    trial's training runs in its own job process, so its thread only
    coordinates it), or that must share the caller's objects (pipeline steps
    defined in a notebook). The tasks share the caller's warm objects and no
    worker process has to start.

    Examples
    --------
    >>> with ThreadExecutor(2) as ex:
    ...     sorted(f.result() for f in [ex.submit(pow, 2, n) for n in (3, 4)])
    [8, 16]
    """

    name = "thread"
    in_process = True

    def __init__(self, max_workers: int, *, thread_name_prefix: str = "loopml-task") -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.max_workers = max(1, int(max_workers))
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix=thread_name_prefix)

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Start ``fn(*args)`` in a free thread (queued while all are busy)."""
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads: queued tasks are cancelled, running ones finish (awaited when ``wait``)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


__all__ = ["Executor", "InlineExecutor", "ThreadExecutor"]
