"""Micro-batching: concurrent small requests answered by one model call.

Under load an asyncio server receives many single-row requests at once. A
:class:`MicroBatcher` validates each request on arrival (so a bad request
fails alone, at once), queues the valid ones, and predicts them together
when ``max_batch_rows`` rows are waiting or ``max_wait_ms`` has passed since
the first one arrived. The model runs on one worker thread, so the event
loop stays free; while it runs, the next batch gathers. Every caller gets
its own outputs, or its own error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    from loopml.serve.runtime import Predictor

_Item = tuple[list[dict[str, Any]], "asyncio.Future[list[dict[str, Any]]]", float]


class MicroBatcher:
    """Group concurrent predictions of one :class:`~loopml.serve.runtime.Predictor`.

    Parameters
    ----------
    predictor
        The model to predict with.
    max_batch_rows
        A batch is predicted as soon as this many rows wait. A request with more
        rows is predicted on its own.
    max_wait_ms
        Longest a request waits for others to join its batch.

    Attributes
    ----------
    batches
        Model calls made so far.
    rows
        Rows predicted so far.
    requests
        Requests answered so far.

    Examples
    --------
    >>> b = MicroBatcher(predictor, max_batch_rows=64, max_wait_ms=2.0)   # doctest: +SKIP
    >>> outs = await asyncio.gather(*(b.predict([r]) for r in records))   # doctest: +SKIP
    >>> b.batches < len(records)                                          # doctest: +SKIP
    True
    """

    def __init__(self, predictor: Predictor, *, max_batch_rows: int = 64, max_wait_ms: float = 2.0) -> None:
        if max_batch_rows < 1:
            raise InvalidInput(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        if max_wait_ms < 0:
            raise InvalidInput(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self.predictor = predictor
        self.max_batch_rows = int(max_batch_rows)
        self.max_wait_s = float(max_wait_ms) / 1e3
        self.batches = 0
        self.rows = 0
        self.requests = 0
        self._queue: deque[_Item] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-batch")
        self._closed = False

    def __repr__(self) -> str:
        return (f"MicroBatcher(max_batch_rows={self.max_batch_rows}, max_wait_ms={self.max_wait_s * 1e3:g}, "
                f"batches={self.batches}, rows={self.rows})")

    async def predict(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Validate ``records`` now, predict them in the next batch, return their outputs.

        Raises
        ------
        InvalidInput
            The records are invalid (raised at once; nothing is queued).
        ModelError
            The model failed on these records.
        ServiceUnavailable
            The batcher was closed.
        """
        return await self.predict_valid(self.predictor.validate(records))

    async def predict_valid(self, valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`predict` for records that :meth:`Predictor.validate` returned (no second check)."""
        if self._closed:
            raise ServiceUnavailable("the micro-batcher is closed; the endpoint is shutting down")
        if not valid:
            return []
        loop = asyncio.get_running_loop()
        if len(valid) >= self.max_batch_rows:
            return await self._run(loop, valid)
        self._start(loop)
        fut: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._queue.append((valid, fut, time.monotonic()))
        assert self._wake is not None
        self._wake.set()
        return await fut

    def close(self) -> None:
        """Stop the batching task; requests still waiting fail with ServiceUnavailable.

        Safe to call from any thread: off the batcher's event loop, the work is
        handed to that loop.
        """
        self._closed = True
        loop = self._loop
        if loop is not None and loop.is_running() and not _on(loop):
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._close_now)
                return
        self._close_now()

    def _close_now(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        while self._queue:
            _, fut, _ = self._queue.popleft()
            if not fut.done():
                fut.set_exception(ServiceUnavailable("the micro-batcher was closed before this request ran"))
        self._pool.shutdown(wait=False)

    async def aclose(self) -> None:
        """:meth:`close`, then wait for the batching task to stop."""
        task = self._task
        self.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- internals --------------------------------------------------------------------------------
    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._collect(), name="loopml-micro-batcher")

    async def _collect(self) -> None:
        assert self._wake is not None
        wake = self._wake
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            while not queue:
                wake.clear()
                await wake.wait()
            # wait for more rows until the batch is full or the first request has waited long enough
            deadline = queue[0][2] + self.max_wait_s
            while sum(len(q[0]) for q in queue) < self.max_batch_rows:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), left)
                except TimeoutError:
                    break
            batch: list[_Item] = []
            n = 0
            while queue and (not batch or n + len(queue[0][0]) <= self.max_batch_rows):
                item = queue.popleft()
                if item[1].done():  # the caller went away
                    continue
                batch.append(item)
                n += len(item[0])
            if not batch:
                continue
            parts = [b[0] for b in batch]
            try:
                results = await self._run_parts(loop, parts)
            except asyncio.CancelledError:
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(ServiceUnavailable("the micro-batcher was closed before this request ran"))
                raise
            for (_, fut, _), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    async def _run(self, loop: asyncio.AbstractEventLoop, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        res = (await self._run_parts(loop, [records]))[0]
        if isinstance(res, BaseException):
            raise res
        return res

    async def _run_parts(self, loop: asyncio.AbstractEventLoop,
                         parts: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]] | BaseException]:
        return await loop.run_in_executor(self._pool, self._predict_parts, parts)

    def _predict_parts(self, parts: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]] | BaseException]:
        """In the worker thread: one model call for all parts; on failure, each part alone.

        Never raises: a part's error is returned in its place.
        """
        predict = self.predictor.predict_valid
        self.requests += len(parts)
        flat = parts[0] if len(parts) == 1 else [r for p in parts for r in p]
        try:
            outs = predict(flat)
        except Exception as e:
            if len(parts) == 1:
                self.batches += 1
                self.rows += len(flat)
                return [e]
            # someone's rows broke the batch: predict each request alone so only it fails
            results: list[list[dict[str, Any]] | BaseException] = []
            for p in parts:
                try:
                    results.append(predict(p))
                except Exception as e2:
                    results.append(e2)
                self.batches += 1
                self.rows += len(p)
            return results
        self.batches += 1
        self.rows += len(flat)
        results = []
        i = 0
        for p in parts:
            results.append(outs[i:i + len(p)])
            i += len(p)
        return results


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


__all__ = ["MicroBatcher"]
