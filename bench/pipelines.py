#!/usr/bin/env python3
"""Benchmark: the overhead a pipeline adds per step over calling the step functions directly.

    .venv/bin/python bench/pipelines.py [--steps N] [--repeat K] [--work-ms W] [--executors ...] [--json]

Two pipelines of N Python steps, each step doing ``--work-ms`` of CPU work and
returning a small dict:

(a) a chain: step i takes step i-1's output (every step waits for the previous one);
(b) a fan-out: N independent steps, then one step that joins their outputs.

The floor is calling the N (+1) functions directly in this process, one after
the other. Each pipeline runs on a fresh workspace (SQLite, the default) with
each executor; overhead per step = (pipeline wall time - floor) / steps. That
covers validation, recording the execution and each step (two metadata
transactions per step, lineage, events), resolving references, capturing the
step's output and storing it. For ``local`` it also covers starting the worker
processes (reported separately as the time to the first step's start), and
the fan-out can run faster than the floor when the work parallelises.

Also measured: (c) the chain again with every step cached — the cost of a
cache hit (key computation and lookup) per step.

Target: under 25 ms per step in-process (``thread``/``inline``) on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_MS = 25.0


def work(i: int, x: float = 0.0, ms: float = 1.0) -> dict[str, Any]:
    """About ``ms`` milliseconds of CPU work; returns a small dict."""
    end = time.perf_counter() + ms / 1000
    acc = 0
    while time.perf_counter() < end:
        acc += 1
    return {"i": i, "x": x + 1.0, "acc": acc % 7}


def join(values: list[float]) -> dict[str, Any]:
    """Sum the fan-out's outputs."""
    return {"total": sum(values)}


def _chain(n: int, ms: float, cache: Any = None) -> Any:
    from loopml.pipelines import Pipeline

    p = Pipeline("bench_chain")
    prev = None
    for i in range(n):
        prev = p.add(work, name=f"s{i}", i=i, x=prev.output("x") if prev is not None else 0.0, ms=ms, cache=cache)
    return p


def _fan(n: int, ms: float) -> Any:
    from loopml.pipelines import Pipeline

    p = Pipeline("bench_fan")
    outs = [p.add(work, name=f"s{i}", i=i, ms=ms).output("x") for i in range(n)]
    p.add(join, values=outs)
    return p


def _direct(n: int, ms: float, fan: bool) -> float:
    t0 = time.perf_counter()
    x = 0.0
    xs = []
    for i in range(n):
        out = work(i, 0.0 if fan else x, ms)
        x = out["x"]
        xs.append(out["x"])
    if fan:
        join(xs)
    return time.perf_counter() - t0


def _run(build: Any, executor: str, workers: int | None, cached: bool = False) -> dict[str, float]:
    import loopml
    from loopml.pipelines import run_pipeline

    with loopml.Workspace.init(tempfile.mkdtemp(prefix="loopml-bench-pipe-")) as ws:
        if cached:  # fill the cache first
            run_pipeline(ws, build(), executor="thread")
        p = build()
        t0 = time.perf_counter()
        ex = run_pipeline(ws, p, executor=executor, max_workers=workers)
        wall = time.perf_counter() - t0
        if ex.status != "Succeeded":
            raise SystemExit(f"{executor}: the pipeline failed: {ex.error}")
        if cached and any(s.status != "Cached" for s in ex.steps):
            raise SystemExit("the cached run ran steps")
        first = min(s.start_time for s in ex.steps if s.start_time)
        return {"wall_s": wall, "first_step_s": (first - ex.start_time).total_seconds()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50, help="steps per pipeline (default 50)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each case; the median is reported")
    ap.add_argument("--work-ms", type=float, default=1.0, help="CPU milliseconds each step works (default 1)")
    ap.add_argument("--executors", nargs="+", default=["inline", "thread", "local"],
                    help="executors to measure (inline, thread, local, ray)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    n, ms = args.steps, args.work_ms
    workers = min(2, os.cpu_count() or 1)

    floor = {"chain": statistics.median(_direct(n, ms, False) for _ in range(args.repeat)),
             "fan": statistics.median(_direct(n, ms, True) for _ in range(args.repeat))}
    results: dict[str, Any] = {"steps": n, "work_ms": ms, "cpus": os.cpu_count(), "floor_s": floor,
                               "target_ms_per_step": TARGET_MS, "cases": []}
    cases = [(shape, ex) for ex in args.executors for shape in ("chain", "fan")]
    cases.append(("chain-cached", "thread"))
    for shape, ex in cases:
        def build(shape: str = shape) -> Any:
            if shape == "fan":
                return _fan(n, ms)
            return _chain(n, ms, cache="P1D" if shape == "chain-cached" else None)

        runs = [_run(build, ex, workers, cached=shape == "chain-cached") for _ in range(args.repeat)]
        wall = statistics.median(r["wall_s"] for r in runs)
        first = statistics.median(r["first_step_s"] for r in runs)
        steps = n + (1 if shape == "fan" else 0)
        base = floor["fan" if shape == "fan" else "chain"] if shape != "chain-cached" else 0.0
        case = {"shape": shape, "executor": ex, "wall_s": round(wall, 4), "first_step_s": round(first, 4),
                "overhead_ms_per_step": round((wall - base) / steps * 1000, 2)}
        if ex in ("inline", "thread"):
            case["within_target"] = case["overhead_ms_per_step"] <= TARGET_MS
        results["cases"].append(case)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{n} steps of {ms:g} ms work; floor (direct calls): chain {floor['chain'] * 1000:.1f} ms, "
          f"fan-out {floor['fan'] * 1000:.1f} ms; {os.cpu_count()} CPUs, {workers} workers")
    print(f"{'pipeline':<14}{'executor':<10}{'wall':>10}{'to 1st step':>13}{'overhead/step':>16}")
    for c in results["cases"]:
        mark = "" if "within_target" not in c else ("  ok" if c["within_target"] else f"  over {TARGET_MS:g} ms")
        print(f"{c['shape']:<14}{c['executor']:<10}{c['wall_s'] * 1000:>8.0f}ms{c['first_step_s'] * 1000:>11.0f}ms"
              f"{c['overhead_ms_per_step']:>13.2f} ms{mark}")


if __name__ == "__main__":
    main()
