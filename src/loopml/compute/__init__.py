"""Executors: where tasks run — this thread, threads of this process, local worker processes, or Ray.

Used by the tuner (trials), and meant for batch transform and pipeline steps.
Every executor follows the small :class:`Executor` protocol (``submit``
returning a :class:`concurrent.futures.Future`, ``shutdown``), so a caller
picks one by name and never looks inside.

>>> from loopml.compute import get_executor
>>> with get_executor("inline") as ex:
...     ex.submit(sum, [1, 2, 3]).result()
6
"""

from __future__ import annotations

from typing import Any

from loopml.compute._base import Executor, InlineExecutor, ThreadExecutor
from loopml.compute.local import LocalExecutor
from loopml.errors import InvalidInput

EXECUTORS: tuple[str, ...] = ("inline", "thread", "local", "ray")


def get_executor(name: str, max_workers: int | None = None, **options: Any) -> Executor:
    """An executor by name.

    Parameters
    ----------
    name
        ``inline`` (the calling thread), ``thread`` (threads of this process),
        ``local`` (worker processes) or ``ray``.
    max_workers
        Tasks at once (ignored by ``inline``).
    **options
        Passed to the executor (``address=...`` for Ray, ``env=...`` for local).

    Returns
    -------
    Executor
    """
    key = str(name).strip().lower()
    if key == "inline":
        return InlineExecutor()
    if key == "thread":
        return ThreadExecutor(max_workers or 1)
    if key == "local":
        return LocalExecutor(max_workers, **options)
    if key == "ray":
        from loopml.compute.ray import RayExecutor

        return RayExecutor(max_workers, **options)
    raise InvalidInput(f"executor {name!r} is not one of {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "LocalExecutor", "ThreadExecutor", "get_executor"]
