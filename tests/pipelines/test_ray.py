"""The Ray executor: steps as Ray tasks on a local Ray cluster give the same results as the local executors."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from loopml import Workspace
from loopml.pipelines import Pipeline, run_pipeline, step_logs
from tests.pipelines import _steps

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (loopml[ray])"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A real local Ray instance with 2 CPUs for this module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _pipeline(csv: Path, flag_dir: Path) -> Pipeline:
    p = Pipeline("ray_parity", params={"n": 3})
    a = p.add(_steps.slow, name="a", value=p.param("n"), delay=0.5)  # a and b first: they take the 2 CPUs
    b = p.add(_steps.slow, name="b", value=4, delay=0.5)
    raw = p.add("ingest", source=str(csv), dataset="numbers")
    total = p.add(_steps.add, name="total", a=a.output("value"), b=b.output("value"))
    flaky = p.add(_steps.flaky, name="flaky", counter=str(flag_dir / "calls.txt"), fail_times=1,
                  retries={"max_attempts": 2, "interval": 0.1})
    big = p.add(_steps.echo, name="big", total=total.output("sum"), rows=raw.output("rows"),
                calls=flaky.output("calls"))
    p.condition(total.output("sum") > 5, if_steps=[big], else_steps=[p.fail("small")])
    return p


def _comparable(outputs: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    drop = {"t0", "t1", "pid", "execution_id", "dataset_id"}
    return {n: {k: v for k, v in o.items() if k not in drop} for n, o in outputs.items()}


def test_ray_tasks_give_the_same_results(ray_local: None, tmp_path: Path) -> None:
    csv = tmp_path / "numbers.csv"
    pd.DataFrame({"x": range(10)}).to_csv(csv, index=False)
    results = {}
    for executor in ("thread", "ray"):
        folder = tmp_path / executor
        folder.mkdir()
        with Workspace.init(folder / "ws") as ws:
            ex = run_pipeline(ws, _pipeline(csv, folder), executor=executor)
            assert ex.status == "Succeeded", ex.error
            results[executor] = _comparable(ex.outputs)
            if executor == "ray":
                oa, ob = ex.step("a").outputs, ex.step("b").outputs
                assert os.getpid() not in (oa["pid"], ob["pid"])  # Ray workers ran them
                assert oa["t0"] < ob["t1"] and ob["t0"] < oa["t1"]  # at the same time
                assert ex.step("flaky").attempt == 2
                assert step_logs(ws, ex.id, "a") == "slow 3 slept 0.5\n"
    assert results["ray"] == results["thread"]
    assert results["ray"]["big"] == {"total": 7, "rows": 10, "calls": 2, "step": "big", "attempt": 1}
