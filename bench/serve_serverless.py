#!/usr/bin/env python3
"""Benchmark: the cold start of a serverless endpoint, beside its warm latency and a replica pool's.

    .venv/bin/python bench/serve_serverless.py [--rows N] [--rounds R] [--repeats K] [--gen PATH] [--json]

The model is the peers' (``shared/bench/peer_serve_model.py``): one-hot of the 5
categoricals + the 20 numerics -> XGBoost, 200 trees of depth 6 (eta 0.1), trained
through loopml (``Estimator`` with a ``OneHot`` recipe) on ``make(rows, seed=1)`` of
``shared/bench/gen_data.py`` and registered. It is deployed as a serverless endpoint
(``--serverless --memory-mb 2048 --max-concurrency 4 --idle-timeout 1``) served by a
``loopml serve`` process (one uvicorn worker) on 127.0.0.1.

Measured, ``--repeats`` times: wait until the endpoint has scaled to zero (no replica
process), then time the first request (one JSON row) from the client: that is the
cold start a caller sees. The server's own figure (replica start to model ready,
exported as ``ColdStartLatency``) and a warm request right after are printed beside
it. Target (issue 7): the first request after scale-to-zero answers in under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

TARGET_COLD_S = 1.0


def _stats(url: str) -> dict[str, Any]:
    import httpx

    doc = httpx.get(f"{url}/endpoints", timeout=10).json()
    (ep,) = [e for e in doc["endpoints"] if e["name"] == "peer"]
    return dict(ep["variants"][0]["backend"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000, help="training rows (default 20000)")
    ap.add_argument("--rounds", type=int, default=200, help="boosting rounds (default 200)")
    ap.add_argument("--repeats", type=int, default=5, help="cold starts measured (default 5)")
    ap.add_argument("--idle-timeout", type=float, default=1.0, help="seconds to scale to zero (default 1)")
    ap.add_argument("--workspace", help="keep the trained model in this workspace and reuse it on later runs")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    a = ap.parse_args()
    _common.use_src(a.src)

    import httpx
    import orjson

    import loopml
    from loopml.serve import endpoints as eps
    from loopml.serve.serverless import check_serverless

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_http import _free_port, _model, _records, _wait_up, model_version

    gen = _common.load_gen(_common.find_gen(a.gen))
    res: dict[str, Any] = {"train_rows": a.rows, "rounds": a.rounds, "repeats": a.repeats, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="loopml-bench-serverless-") as tmp:
        root = Path(tmp)
        ws = loopml.Workspace.init(Path(a.workspace) if a.workspace else root / "ws")
        _, test = _model(a, ws, gen)
        ref = f"peer:{model_version(ws)}"
        eps.deploy(ws, "peer", model=ref,
                   serverless=check_serverless(2048, 4, idle_timeout_s=a.idle_timeout))
        home = ws.home
        ws.close()
        one = orjson.dumps(_records(test)[:1])

        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
        env["LOOPML_HOME"] = str(home)
        if a.src:
            env["PYTHONPATH"] = str(Path(a.src).resolve())
        server = subprocess.Popen([sys.executable, "-m", "loopml", "serve", "--port", str(port), "--no-streams",
                                   "--metrics-interval", "1"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        cold: list[float] = []
        server_ms: list[float] = []
        warm: list[float] = []
        try:
            _wait_up(url, server)
            with httpx.Client(base_url=url, timeout=60) as c:
                post = lambda: c.post("/endpoints/peer/invocations", content=one,  # noqa: E731
                                      headers={"content-type": "application/json"})
                r = post()  # the zygote's imports happen once per server; not a cold start of the endpoint
                if r.status_code != 200:
                    sys.exit(f"the endpoint answered {r.status_code}: {r.text}")
                for _ in range(a.repeats):
                    deadline = time.monotonic() + 60
                    while _stats(url)["replicas"] != 0:
                        if time.monotonic() > deadline:
                            sys.exit("the endpoint did not scale to zero")
                        time.sleep(0.1)
                    before = _stats(url)["cold_starts"]
                    t0 = time.perf_counter()
                    r = post()
                    cold.append(time.perf_counter() - t0)
                    st = _stats(url)
                    if r.status_code != 200 or st["cold_starts"] != before + 1:
                        sys.exit(f"expected a cold start: {r.status_code} {st}")
                    server_ms.append(float(st["last_cold_start_ms"]))
                    for _ in range(20):
                        t0 = time.perf_counter()
                        post()
                        warm.append(time.perf_counter() - t0)
                res["memory_limit"] = _stats(url)["memory_limit"]
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    res["cold_first_request_s"] = [round(x, 4) for x in cold]
    res["cold_p50_s"] = statistics.median(cold)
    res["cold_max_s"] = max(cold)
    res["server_cold_start_ms_p50"] = statistics.median(server_ms)
    res["warm_p50_ms"] = statistics.median(warm) * 1e3
    res["targets"] = {f"first request after scale-to-zero < {TARGET_COLD_S:g} s (max of {a.repeats})":
                      _common.verdict(res["cold_max_s"] < TARGET_COLD_S)}
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"\nserverless endpoint, {a.rounds} trees; {res['cpus']} cores; memory limit: {res['memory_limit']}\n")
    print(f"first request after scale-to-zero (client)  p50 {res['cold_p50_s'] * 1e3:7.1f} ms   "
          f"max {res['cold_max_s'] * 1e3:7.1f} ms   ({', '.join(f'{x * 1e3:.0f}' for x in cold)})")
    print(f"replica start to model ready (server)       p50 {res['server_cold_start_ms_p50']:7.1f} ms")
    print(f"warm request (client)                       p50 {res['warm_p50_ms']:7.2f} ms")
    print("\ntargets:")
    for k, v in res["targets"].items():
        print(f"  {k:52s} {v}")


if __name__ == "__main__":
    main()
