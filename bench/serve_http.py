#!/usr/bin/env python3
"""Benchmark: ``loopml serve`` over HTTP with ``wrk``, beside the serving peers.

    .venv/bin/python bench/serve_http.py [--rows N] [--rounds R] [--duration S] [--gen PATH] [--json]

The model is the peers' (``shared/bench/peer_serve_model.py``): one-hot of the 5
categoricals + the 20 numerics -> XGBoost, 200 trees of depth 6 (eta 0.1), trained
through loopml (``Estimator`` with a ``OneHot`` recipe) on ``make(rows, seed=1)`` of
``shared/bench/gen_data.py``, registered, and deployed twice: endpoint ``direct``
(micro-batching off) and ``batched`` (micro-batching on). A ``loopml serve`` process
(one uvicorn worker, uvloop + httptools) serves both, and ``wrk`` with
``shared/bench/post.lua`` drives it (``BODY=file.json wrk -tT -cC -dDs -s post.lua URL``):

- 1-row JSON at concurrency 1 and 32, micro-batching off and on;
- 100-row JSON at concurrency 8.

Each run is preceded by a 2 s warm-up. wrk shares the machine's cores with the
server, as it did for the peers' figures. Printed: requests/s, p50 and p99 beside
``shared/bench/PEERS.md`` (MLflow 87 / 72 / 58 req/s, BentoML 135 / 120 / 97, a bare
Starlette server around the sklearn pipeline 158 / 182 / 134) and the targets of
issue 6: p50 <= 1.5 ms at c=1; >= 1,000 req/s at c=32 with micro-batching
(>= 500 without); 100-row payloads >= 10x MLflow.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

PEERS = {  # req/s from shared/bench/PEERS.md: (1-row c=1, 1-row c=32, 100-row c=8)
    "MLflow 3.17 serve": (87, 72, 58),
    "BentoML 1.4": (135, 120, 97),
    "floor: bare Starlette + sklearn pipeline": (158, 182, 134),
}
MLFLOW_P50_C1_MS = 11.8
TARGET_P50_C1_MS = 1.5
TARGET_C32_BATCHED = 1000.0
TARGET_C32_DIRECT = 500.0
TARGET_100_FACTOR = 10.0


def _find_post_lua(gen: Path) -> Path:
    lua = gen.parent / "post.lua"
    if not lua.is_file():
        sys.exit(f"cannot find post.lua beside {gen}")
    return lua


def _records(df: Any) -> list[dict[str, Any]]:
    import math

    return [{k: (None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v))
             for k, v in row.items()} for row in df.to_dict("records")]


def _wrk(url: str, body: Path, lua: Path, conns: int, seconds: float) -> dict[str, Any]:
    threads = min(2, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(lua), url]
    proc = subprocess.run(cmd, env={**os.environ, "BODY": str(body)}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"wrk failed: {proc.stderr[-2000:]}")
    line = [x for x in proc.stdout.strip().splitlines() if x.startswith("{")][-1]
    return dict(json.loads(line))


def _train(a: argparse.Namespace, ws: Any, gen: Any) -> tuple[Any, Any]:
    from loopml.prep import Recipe
    from loopml.prep.steps import OneHot
    from loopml.registry import APPROVED, register_model
    from loopml.train import Estimator

    df = gen.make(a.rows, 1)
    cols = [c for c in df.columns if c.startswith(("num_", "cat_"))]
    cats = [c for c in cols if c.startswith("cat_")]
    t0 = time.perf_counter()
    est = Estimator("xgboost", {"num_round": a.rounds, "max_depth": 6, "eta": 0.1}, target="churn",
                    recipe=Recipe([OneHot(columns=cats)]), experiment="bench", ws=ws)
    result = est.fit(df[[*cols, "churn"]])
    print(f"trained {a.rounds} trees on {len(df):,} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    register_model(ws, result, "peer", approval=APPROVED)
    return result.model, gen.make(200, 7)[cols]


def _model(a: argparse.Namespace, ws: Any, gen: Any) -> tuple[Any, Any]:
    """The model of a previous run in ``--workspace`` (same number of rounds), or a new one."""
    from loopml.registry import get_model_version, list_models, load_model

    if "peer" in {m.name for m in list_models(ws)}:
        info = get_model_version(ws, "peer:latest")
        hp = info.hyperparameters
        if int(hp.get("num_round", -1)) == a.rounds:
            df = gen.make(200, 7)
            return load_model(ws, info.ref), df[[c for c in df.columns if c.startswith(("num_", "cat_"))]]
    return _train(a, ws, gen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000, help="training rows (default 20000)")
    ap.add_argument("--rounds", type=int, default=200, help="boosting rounds (default 200)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    ap.add_argument("--max-wait-ms", type=float, default=2.0, help="micro-batching wait (default 2 ms)")
    ap.add_argument("--workspace", help="keep the trained model in this workspace and reuse it on later runs")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    a = ap.parse_args()
    _common.use_src(a.src)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    import httpx
    import numpy as np
    import orjson

    import loopml
    from loopml.serve import endpoints as eps

    gen_path = _common.find_gen(a.gen)
    lua = _find_post_lua(gen_path)
    gen = _common.load_gen(gen_path)
    res: dict[str, Any] = {"train_rows": a.rows, "rounds": a.rounds, "duration_s": a.duration,
                           "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="loopml-bench-http-") as tmp:
        root = Path(tmp)
        ws = loopml.Workspace.init(Path(a.workspace) if a.workspace else root / "ws")
        model, test = _model(a, ws, gen)
        ref = f"peer:{model_version(ws)}"
        eps.deploy(ws, "direct", model=ref)
        eps.deploy(ws, "batched", model=ref, micro_batching=True, max_wait_ms=a.max_wait_ms)
        home = ws.home
        ws.close()
        recs = _records(test)
        one, hundred = root / "one.json", root / "hundred.json"
        one.write_bytes(orjson.dumps(recs[:1]))
        hundred.write_bytes(orjson.dumps(recs[:100]))

        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
        env["LOOPML_HOME"] = str(home)
        if a.src:
            env["PYTHONPATH"] = str(Path(a.src).resolve())
        server = subprocess.Popen([sys.executable, "-m", "loopml", "serve", "--port", str(port), "--no-streams"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, server)
            # the answers are the model's
            r = httpx.post(f"{url}/endpoints/direct/invocations", content=hundred.read_bytes(),
                           headers={"content-type": "application/json"})
            got = np.array([p["probabilities"][1] for p in r.json()["predictions"]])
            want = model.predict_proba(test.head(100))[:, 1]
            res["max_abs_diff_vs_model"] = float(np.max(np.abs(got - want)))
            runs = [("1-row c=1", "direct", one, 1), ("1-row c=1 batched", "batched", one, 1),
                    ("1-row c=32", "direct", one, 32), ("1-row c=32 batched", "batched", one, 32),
                    ("100-row c=8", "direct", hundred, 8)]
            res["runs"] = {}
            for label, endpoint, body, conns in runs:
                target = f"{url}/endpoints/{endpoint}/invocations"
                _wrk(target, body, lua, conns, 2)  # warm-up
                out = _wrk(target, body, lua, conns, a.duration)
                res["runs"][label] = out
                print(f"{label:20s} {out['rps']:9.1f} req/s  p50 {out['p50_ms']:7.2f} ms  p99 {out['p99_ms']:7.2f} ms"
                      f"  errors {out['errors']} non2xx {out['non2xx']}", file=sys.stderr)
            m = httpx.get(f"{url}/metrics").text
            res["server_invocations"] = sum(float(x.rsplit(" ", 1)[1]) for x in m.splitlines()
                                            if x.startswith("loopml_invocations_total{"))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    runs = res["runs"]
    c1 = runs["1-row c=1"]
    checks = {
        "p50 <= 1.5 ms at c=1": c1["p50_ms"] <= TARGET_P50_C1_MS,
        ">= 1000 req/s at c=32, micro-batching": runs["1-row c=32 batched"]["rps"] >= TARGET_C32_BATCHED,
        ">= 500 req/s at c=32, no micro-batching": runs["1-row c=32"]["rps"] >= TARGET_C32_DIRECT,
        "100-row >= 10x MLflow": runs["100-row c=8"]["rps"] >= TARGET_100_FACTOR * PEERS["MLflow 3.17 serve"][2],
    }
    res["targets"] = {k: _common.verdict(v) for k, v in checks.items()}
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"\nloopml serve, one worker, {res['cpus']} cores shared with wrk; {a.duration:g} s per run; "
          f"model: {a.rounds} trees, answers within {res['max_abs_diff_vs_model']:.1e} of the model\n")
    print(f"{'':44s} {'1-row c=1':>12s} {'1-row c=32':>12s} {'100-row c=8':>12s}")
    for peer, (x, y, z) in PEERS.items():
        print(f"{peer:44s} {x:>8d} r/s {y:>8d} r/s {z:>8d} r/s")
    print(f"{'loopml serve (micro-batching off)':44s} {c1['rps']:>8.0f} r/s {runs['1-row c=32']['rps']:>8.0f} r/s "
          f"{runs['100-row c=8']['rps']:>8.0f} r/s")
    b1, b32 = runs["1-row c=1 batched"], runs["1-row c=32 batched"]
    print(f"{'loopml serve (micro-batching on)':44s} {b1['rps']:>8.0f} r/s {b32['rps']:>8.0f} r/s {'':>12s}")
    print(f"\nlatency (ms)           p50      p99      (MLflow c=1 p50 {MLFLOW_P50_C1_MS} ms)")
    for label, out in runs.items():
        print(f"  {label:20s} {out['p50_ms']:7.2f}  {out['p99_ms']:7.2f}")
    print("\ntargets:")
    for k, v in res["targets"].items():
        print(f"  {k:42s} {v}")


def model_version(ws: Any) -> int:
    from loopml.registry import get_model_version

    return int(get_model_version(ws, "peer:latest").version)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"loopml serve exited: {proc.communicate()[1][-2000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit("loopml serve did not answer /ping")


if __name__ == "__main__":
    main()
