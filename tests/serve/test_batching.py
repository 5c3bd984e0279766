"""MicroBatcher: concurrent requests share model calls, and each caller gets its own answer or error."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopml.errors import InvalidInput, ServiceUnavailable
from loopml.serve.runtime import MicroBatcher, Predictor
from loopml.train import load_model_package
from loopml.train.package import Model
from tests.serve.conftest import inputs_of, json_records, serve_frame
from tests.train._data import package


@pytest.fixture(scope="module")
def predictor(trained: Callable[..., Model]) -> Predictor:
    return Predictor(trained("xgboost", "multiclass", "spec"))


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return json_records(inputs_of(serve_frame(50, seed=21, unseen=True), "spec"))


def test_fifty_concurrent_requests_are_batched(predictor: Predictor, records: list[dict[str, Any]]) -> None:
    want = [predictor.predict_records([r]) for r in records]

    async def main() -> tuple[list[Any], MicroBatcher]:
        b = MicroBatcher(predictor, max_batch_rows=16, max_wait_ms=20.0)
        try:
            got = await asyncio.gather(*(b.predict([r]) for r in records))
        finally:
            await b.aclose()
        return list(got), b

    got, b = asyncio.run(main())
    assert got == want
    assert b.rows == 50 and b.requests == 50
    assert 4 <= b.batches < 50  # at most 16 rows a batch, and not one call per request
    assert "batches=" in repr(b)


def test_a_bad_request_fails_alone(predictor: Predictor, records: list[dict[str, Any]]) -> None:
    bad = {**records[3], "x1": "not a number"}
    sent = [*records[:10], bad, *records[10:20]]

    async def main() -> list[Any]:
        b = MicroBatcher(predictor, max_batch_rows=64, max_wait_ms=10.0)
        try:
            return list(await asyncio.gather(*(b.predict([r]) for r in sent), return_exceptions=True))
        finally:
            b.close()

    got = asyncio.run(main())
    errors = [g for g in got if isinstance(g, BaseException)]
    assert len(errors) == 1 and isinstance(got[10], InvalidInput)
    assert "row 0, column 'x1'" in str(got[10])
    assert [g for i, g in enumerate(got) if i != 10] == [predictor.predict_records([r]) for r in sent if r is not bad]


def test_a_failure_inside_the_model_call_fails_only_its_request(tmp_path: Path) -> None:
    # categories unseen in training pass validation (they are text) but this recipe refuses them
    df = serve_frame(150, seed=4)[["x1", "city", "y_bin"]]
    recipe = {"kind": "spec", "spec": {"steps": [{"kind": "one_hot", "columns": ["city"], "handle_unknown": "error"}]}}
    folder, _ = package(tmp_path, df, "xgboost", {"num_round": 5}, target="y_bin", recipe=recipe, name="strict")
    p = Predictor(load_model_package(folder))
    sent = [{"x1": float(i), "city": "paris" if i != 5 else "atlantis"} for i in range(12)]

    async def main() -> tuple[list[Any], MicroBatcher]:
        b = MicroBatcher(p, max_batch_rows=64, max_wait_ms=20.0)
        try:
            return list(await asyncio.gather(*(b.predict([r]) for r in sent), return_exceptions=True)), b
        finally:
            b.close()

    got, b = asyncio.run(main())
    assert isinstance(got[5], InvalidInput) and "atlantis" in str(got[5])
    assert all(not isinstance(g, BaseException) for i, g in enumerate(got) if i != 5)
    assert [g for i, g in enumerate(got) if i != 5] == [p.predict_records([r]) for i, r in enumerate(sent) if i != 5]
    assert b.rows == 12


def test_timing_and_big_requests(predictor: Predictor, records: list[dict[str, Any]]) -> None:
    async def main() -> None:
        b = MicroBatcher(predictor, max_batch_rows=8, max_wait_ms=30.0)
        # alone, a request waits for company at most max_wait_ms
        t0 = time.perf_counter()
        assert await b.predict([records[0]]) == predictor.predict_records([records[0]])
        assert 0.02 <= time.perf_counter() - t0 < 2.0
        # a full batch goes at once, long before the wait is over
        t0 = time.perf_counter()
        got = await asyncio.gather(*(b.predict([r]) for r in records[:8]))
        assert time.perf_counter() - t0 < 0.5
        assert list(got) == [predictor.predict_records([r]) for r in records[:8]]
        # a request with more rows than a batch holds is predicted on its own
        before = b.batches
        assert await b.predict(records[:20]) == predictor.predict_records(records[:20])
        assert b.batches == before + 1
        # requests of several rows share batches too, each getting its own rows back
        parts = [records[i:i + 3] for i in range(0, 12, 3)]
        got = await asyncio.gather(*(b.predict(part) for part in parts))
        assert list(got) == [predictor.predict_records(part) for part in parts]
        assert await b.predict([]) == []
        await b.aclose()
        with pytest.raises(ServiceUnavailable, match="closed"):
            await b.predict([records[0]])

    asyncio.run(main())


def test_the_model_runs_off_the_event_loop(predictor: Predictor, records: list[dict[str, Any]]) -> None:
    threads: set[str] = set()
    original = predictor.predict_valid

    def spy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        threads.add(threading.current_thread().name)
        return original(rows)

    async def main() -> None:
        b = MicroBatcher(predictor, max_batch_rows=4, max_wait_ms=1.0)
        b.predictor = _Spy(predictor, spy)  # type: ignore[assignment]
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.get_running_loop().create_task(ticker())
        await asyncio.gather(*(b.predict([r]) for r in records[:12]))
        t.cancel()
        await b.aclose()
        assert ticks > 0

    asyncio.run(main())
    assert threads and all(name.startswith("loopml-batch") for name in threads)


class _Spy:
    """The predictor, with predict_valid observed (which thread runs the model)."""

    def __init__(self, inner: Predictor, fn: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        self._inner = inner
        self.predict_valid = fn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_close_from_another_thread(predictor: Predictor, records: list[dict[str, Any]]) -> None:
    async def main() -> None:
        b = MicroBatcher(predictor, max_batch_rows=64, max_wait_ms=5000.0)
        pending = asyncio.ensure_future(b.predict([records[0]]))
        await asyncio.sleep(0.01)
        closer = threading.Thread(target=b.close)
        closer.start()
        closer.join()
        with pytest.raises(ServiceUnavailable):
            await asyncio.wait_for(pending, 2.0)

    asyncio.run(main())


def test_settings_are_checked(predictor: Predictor) -> None:
    with pytest.raises(InvalidInput, match="max_batch_rows"):
        MicroBatcher(predictor, max_batch_rows=0)
    with pytest.raises(InvalidInput, match="max_wait_ms"):
        MicroBatcher(predictor, max_wait_ms=-1)
