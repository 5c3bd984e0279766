#!/usr/bin/env python3
"""Benchmark: experiment tracking against MLflow 3.17 with a sqlite store (``shared/bench/PEERS.md``).

    .venv/bin/python bench/tracking.py [--repeat K] [--metadata-url URL] [--mlflow auto|skip] [--json]

The four workloads of ``shared/bench/peer_tracking_mlflow.py``, on a fresh workspace:

(a) 10,000 single ``run.log_metric`` calls in one run;
(b) 10,000 points in 10 batches of 1,000 (``run.log_metrics`` cannot repeat a key, so
    each batch is 1,000 ``log_metric`` calls of one series -- the same rows as
    MLflow's ``log_batch``);
(c) 200 runs, each with ``log_params`` of 10 and ``log_metrics`` of 10;
(d) ``search_runs(filter="metrics.m3 > 0.5", max_results=1000)`` over those runs, the
    first call in the process (cold statement cache) and the median of 20 more.

Every loopml figure includes writing the data to the database: (a) and (b) are
timed until the run has ended (its buffer flushed and committed), (c) until the
200th run's end has committed. MLflow's figures come from PEERS.md; when
``import mlflow`` works here, the peer script is also run side by side.

Target (issue 4): at least 10x faster than MLflow on each workload.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: MLflow 3.17.2, sqlite backend, 2 cores (shared/bench/PEERS.md)
MLFLOW = {"log_metric_10k_s": 28.4, "log_batch_10k_s": 0.91, "runs_200_s": 3.52, "search_s": 0.055}
LABELS = {
    "log_metric_10k_s": "10,000 log_metric calls",
    "log_batch_10k_s": "10,000 points in 10 batches",
    "runs_200_s": "200 runs x (10 params + 10 metrics)",
    "search_s": "search_runs 'metrics.m3 > 0.5' (first call)",
    "search_warm_s": "  same, warm (median of 20)",
}


def _loopml_once(metadata_url: str | None) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "src"))
    import loopml
    from loopml.track import Tracker

    root = tempfile.mkdtemp(prefix="loopml-bench-track-")
    ws = loopml.Workspace.init(root, metadata_url=metadata_url)
    tracker = Tracker(ws)
    out: dict[str, Any] = {"tool": f"loopml-{loopml.__version__}-{ws.meta.dialect}"}

    t0 = time.perf_counter()
    with tracker.start_run(experiment="bench") as run:
        for i in range(10_000):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
    out["log_metric_10k_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with tracker.start_run(experiment="bench") as run:
        ts = time.time()
        for k in range(10):
            for i in range(k * 1000, (k + 1) * 1000):
                run.log_metric("loss", 1.0 / (i + 1), step=i, timestamp=ts)
            tracker.flush()  # each batch written, like one log_batch call
    out["log_batch_10k_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for j in range(200):
        with tracker.start_run(experiment="bench") as run:
            run.log_params({f"p{k}": j * k for k in range(10)})
            run.log_metrics({f"m{k}": (j * 7 + k) % 100 / 100 for k in range(10)})
    out["runs_200_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = tracker.search_runs(filter="metrics.m3 > 0.5", max_results=1000)
    out["search_s"] = time.perf_counter() - t0
    out["search_hits"] = len(res)
    warm = []
    for _ in range(20):
        t0 = time.perf_counter()
        tracker.search_runs(filter="metrics.m3 > 0.5", max_results=1000)
        warm.append(time.perf_counter() - t0)
    out["search_warm_s"] = statistics.median(warm)

    # The cost of the call alone (what the user's training loop pays), buffer not flushed.
    with tracker.start_run(experiment="bench") as run:
        t0 = time.perf_counter()
        for i in range(10_000):
            run.log_metric("x", float(i), step=i)
        out["log_metric_calls_only_us"] = (time.perf_counter() - t0) / 10_000 * 1e6
    tracker.close()
    ws.close()
    return out


def _mlflow_side_by_side() -> dict[str, Any] | None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None
    script = None
    for c in (REPO.parent / "shared" / "bench", REPO / "shared" / "bench"):
        if (c / "peer_tracking_mlflow.py").is_file():
            script = c / "peer_tracking_mlflow.py"
            break
    if script is None:
        return None
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"mlflow peer script failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the loopml workloads (median shown)")
    ap.add_argument("--metadata-url", default=None, help="e.g. postgresql+psycopg://... (default SQLite)")
    ap.add_argument("--mlflow", choices=["auto", "skip"], default="auto",
                    help="run MLflow side by side when it is importable")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    # Each repeat in its own process: cold caches, no state carried between repeats.
    results = []
    for _ in range(args.repeat):
        cmd = [sys.executable, __file__, "--_one"] + (
            ["--metadata-url", args.metadata_url] if args.metadata_url else []
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    keys = [*LABELS, "log_metric_calls_only_us", "search_hits"]
    med = {k: statistics.median(r[k] for r in results) for k in keys}
    live = _mlflow_side_by_side() if args.mlflow == "auto" else None
    if args.json:
        print(json.dumps({"loopml": med, "tool": results[0]["tool"], "runs": results,
                          "mlflow_peers_md": MLFLOW, "mlflow_here": live}))
        return
    print(f"tracking benchmark: {results[0]['tool']}, median of {args.repeat} process(es)")
    head = f"{'workload':46} {'loopml':>10} {'MLflow':>10} {'speed-up':>9}"
    if live:
        head += f" {'MLflow here':>12}"
    print(head)
    for k, label in LABELS.items():
        ref = MLFLOW.get(k, MLFLOW["search_s"] if k == "search_warm_s" else None)
        ours = med[k]
        line = f"{label:46} {_fmt(ours):>10} {_fmt(ref):>10} {ref / ours:>8.0f}x"
        if live:
            here = live.get(k if k != "search_warm_s" else "search_s")
            line += f" {_fmt(here):>12}"
        print(line)
    print(f"(a log_metric call alone, buffered: {med['log_metric_calls_only_us']:.2f} us; "
          f"search hits: {med['search_hits']:.0f})")
    if live is None and args.mlflow == "auto":
        print("MLflow figures are from shared/bench/PEERS.md (MLflow is not installed here).")


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    if "--_one" in sys.argv:
        url = sys.argv[sys.argv.index("--metadata-url") + 1] if "--metadata-url" in sys.argv else None
        print(json.dumps(_loopml_once(url)))
    else:
        main()
