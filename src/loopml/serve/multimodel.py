"""Multi-model endpoints: many models behind one endpoint, loaded on demand, evicted LRU.

A request names its model with the ``X-Amzn-SageMaker-Target-Model`` header.
The first request for a target pays its load (in a worker thread; concurrent
requests for the same target wait for the same load); loaded targets are kept
in least-recently-used order, and when more than ``max_loaded`` are loaded,
or their packages take more than ``max_memory_mb`` on disk (a stand-in for
memory), the least recently used ones are evicted and their models dropped.
An evicted target loads again on its next request.

The router knows nothing about how a target is served: the server gives it a
``load`` function (target -> backend and its size) and an ``unload`` one.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from loopml.errors import InvalidInput
from loopml.serve.endpoints import ModelTarget

B = TypeVar("B")

#: the suffix SageMaker clients put on target names (``model-a.tar.gz``); accepted and ignored
_ARCHIVE = ".tar.gz"


def resolve_target(endpoint: str, targets: Mapping[str, ModelTarget], target: str | None) -> str:
    """The configured target a request's header names; InvalidInput (400) when it names none."""
    names = sorted(targets)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    if not target:
        raise InvalidInput(
            f"endpoint {endpoint!r} is a multi-model endpoint: name the model in the "
            f"X-Amzn-SageMaker-Target-Model header (one of {shown})"
        )
    if target in targets:
        return target
    if target.endswith(_ARCHIVE) and target[: -len(_ARCHIVE)] in targets:
        return target[: -len(_ARCHIVE)]
    raise InvalidInput(f"endpoint {endpoint!r} has no target model {target[:200]!r}; its models are {shown}")


class MultiModelRouter(Generic[B]):
    """The loaded targets of one multi-model endpoint, in LRU order.

    Parameters
    ----------
    endpoint
        The endpoint's name (for messages).
    targets
        ``{target name: model}`` from the endpoint's config.
    load
        Called in a worker thread: returns the backend serving a target and its size in bytes.
    unload
        Called with a backend when its target is evicted (or the router closes).
    max_loaded
        Most targets loaded at once.
    max_memory_mb
        Most megabytes of loaded packages (None: no bound); the newest load always stays.
    """

    def __init__(
        self,
        endpoint: str,
        targets: Mapping[str, ModelTarget],
        *,
        load: Callable[[str, ModelTarget], tuple[B, int]],
        unload: Callable[[B], None],
        max_loaded: int = 8,
        max_memory_mb: float | None = None,
    ) -> None:
        if max_loaded < 1:
            raise InvalidInput(f"max_loaded must be at least 1, got {max_loaded}")
        self.endpoint = endpoint
        self.targets = dict(targets)
        self.max_loaded = int(max_loaded)
        self.max_bytes = None if max_memory_mb is None else float(max_memory_mb) * 1024 * 1024
        self._load = load
        self._unload = unload
        self._loaded: OrderedDict[str, tuple[B, int]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[B]] = {}
        self._lock = threading.Lock()
        self.loads = 0
        self.evictions = 0
        self._closed = False

    # -- reading --------------------------------------------------------------------------------
    @property
    def loaded(self) -> list[str]:
        """The loaded targets, least recently used first."""
        with self._lock:
            return list(self._loaded)

    @property
    def loaded_bytes(self) -> int:
        """Bytes of the loaded packages."""
        with self._lock:
            return sum(size for _, size in self._loaded.values())

    def model_of(self, target: str) -> ModelTarget:
        """The model a (resolved) target serves."""
        return self.targets[target]

    # -- serving ----------------------------------------------------------------------------------
    async def get(self, target: str | None) -> tuple[str, B]:
        """The backend of the target a request names (loading it if needed): ``(target, backend)``.

        Raises
        ------
        InvalidInput
            No target named, or one the endpoint does not have.
        """
        name = resolve_target(self.endpoint, self.targets, target)
        with self._lock:
            hit = self._loaded.get(name)
            if hit is not None:
                self._loaded.move_to_end(name)
                return name, hit[0]
        fut = self._loading.get(name)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._loading[name] = fut
            try:
                backend, size = await loop.run_in_executor(None, self._load, name, self.targets[name])
            except BaseException as e:
                del self._loading[name]
                if not fut.done():
                    fut.set_exception(e)
                    fut.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise
            evicted = self._add(name, backend, size)
            del self._loading[name]
            fut.set_result(backend)
            for b in evicted:
                self._unload(b)
            return name, backend
        return name, await asyncio.shield(fut)

    def get_sync(self, target: str | None) -> tuple[str, B]:
        """:meth:`get` for callers without an event loop (loads in this thread)."""
        name = resolve_target(self.endpoint, self.targets, target)
        with self._lock:
            hit = self._loaded.get(name)
            if hit is not None:
                self._loaded.move_to_end(name)
                return name, hit[0]
        backend, size = self._load(name, self.targets[name])
        for b in self._add(name, backend, size):
            self._unload(b)
        return name, backend

    def _add(self, name: str, backend: B, size: int) -> list[B]:
        evicted: list[B] = []
        with self._lock:
            old = self._loaded.pop(name, None)
            if old is not None:
                evicted.append(old[0])
            self._loaded[name] = (backend, int(size))
            if self._closed:
                evicted += [b for b, _ in self._loaded.values()]
                self._loaded.clear()
                return evicted
            total = sum(s for _, s in self._loaded.values())
            while len(self._loaded) > 1 and (
                len(self._loaded) > self.max_loaded or (self.max_bytes is not None and total > self.max_bytes)
            ):
                _, (b, s) = self._loaded.popitem(last=False)
                total -= s
                evicted.append(b)
                self.evictions += 1
            self.loads += 1
        return evicted

    def close(self) -> None:
        """Unload every target."""
        with self._lock:
            self._closed = True
            backends = [b for b, _ in self._loaded.values()]
            self._loaded.clear()
        for b in backends:
            self._unload(b)


__all__ = ["MultiModelRouter", "resolve_target"]
