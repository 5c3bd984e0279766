"""Executors: inline, local processes and Ray run the same tasks and report errors the same way."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from loopml.compute import Executor, InlineExecutor, LocalExecutor, get_executor
from loopml.errors import InvalidInput


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def _boom(x: int) -> int:
    raise ValueError(f"bad {x}")


def _env(name: str) -> str | None:
    return os.environ.get(name)


def test_inline_runs_in_the_caller() -> None:
    ex = get_executor("inline")
    assert isinstance(ex, InlineExecutor) and isinstance(ex, Executor) and ex.in_process
    assert ex.submit(_pid_and_square, 3).result() == (os.getpid(), 9)
    with pytest.raises(ValueError, match="bad 1"):
        ex.submit(_boom, 1).result()


def test_local_runs_in_worker_processes() -> None:
    with LocalExecutor(2, env={"LOOPML_TEST_MARK": "yes"}) as ex:
        assert ex.max_workers == 2 and not ex.in_process
        futures = [ex.submit(_pid_and_square, i) for i in range(4)]
        results = [f.result(timeout=60) for f in futures]
        assert [r[1] for r in results] == [0, 1, 4, 9]
        assert os.getpid() not in {r[0] for r in results}
        assert ex.submit(_env, "LOOPML_TEST_MARK").result(timeout=60) == "yes"
        with pytest.raises(ValueError, match="bad 2"):
            ex.submit(_boom, 2).result(timeout=60)
    with pytest.raises(InvalidInput, match="max_workers must be a positive integer"):
        LocalExecutor(0)
    with pytest.raises(InvalidInput, match="executor 'dask' is not one of inline, thread, local, ray"):
        get_executor("dask")


def test_threads_run_tasks_at_once_in_this_process() -> None:
    import threading

    gate = threading.Barrier(2, timeout=30)  # both tasks must be running together to pass it

    def meet(i: int) -> tuple[int, int]:
        gate.wait()
        return os.getpid(), i * i

    with get_executor("thread", 2) as ex:
        assert ex.in_process and ex.max_workers == 2 and ex.name == "thread"
        results = [f.result(timeout=60) for f in [ex.submit(meet, i) for i in (2, 3)]]
        assert results == [(os.getpid(), 4), (os.getpid(), 9)]
        with pytest.raises(ValueError, match="bad 1"):
            ex.submit(_boom, 1).result(timeout=60)


ray_installed = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A real local Ray instance with 2 CPUs for this module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.skipif(not ray_installed, reason="ray is not installed (pip install 'loopml[ray]')")
def test_ray_runs_tasks_on_its_workers(ray_cluster: None) -> None:
    ex = get_executor("ray")
    assert ex.max_workers == 2 and not ex.in_process
    results = [f.result(timeout=60) for f in [ex.submit(_pid_and_square, i) for i in range(3)]]
    assert [r[1] for r in results] == [0, 1, 4] and os.getpid() not in {r[0] for r in results}
    with pytest.raises(Exception, match="bad 5"):
        ex.submit(_boom, 5).result(timeout=60)
    ex.shutdown()
    import ray

    assert ray.is_initialized()  # it did not start Ray, so it leaves it running
