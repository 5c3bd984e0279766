"""``loopml serve`` as users run it: a real process on 127.0.0.1 that picks up deploys without a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from loopml import Workspace
from loopml.registry import APPROVED, register_model
from loopml.serve import endpoints as eps
from tests.registry._packages import train_package
from tests.serve._fixtures import free_port, wait_for
from tests.train._data import churn

RECORD = b'[{"x1": 0.5, "x2": -1.0, "city": "paris", "day": "2024-03-01"}]'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ws = Workspace.init(tmp_path)
    folder = train_package(tmp_path, churn(150), "xgboost", {"num_round": 3}, name="m")
    register_model(ws, folder, "churn", approval=APPROVED)
    eps.deploy(ws, "churn", model="churn:1", micro_batching=True)
    ws.close()
    return tmp_path


def _serve(project: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    proc = subprocess.Popen([sys.executable, "-m", "loopml", "serve", "--port", str(port), "--reload-interval",
                             "0.1", *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"loopml serve exited: {proc.communicate()}")
        try:
            return httpx.get(f"{url}/ping", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=60, what="loopml serve to answer /ping")
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_serve_answers_and_follows_deploys(project: Path) -> None:
    proc, url = _serve(project)
    try:
        r = httpx.post(f"{url}/endpoints/churn/invocations", content=RECORD,
                       headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
        assert len(r.json()["predictions"]) == 1
        with Workspace.open(project) as ws:
            eps.deploy(ws, "second", model="churn:1")
            eps.update_endpoint(ws, "churn", api_key_required=True)
        r = httpx.post(f"{url}/endpoints/second/invocations", content=RECORD,
                       headers={"content-type": "application/json"})
        assert r.status_code == 200
        wait_for(lambda: httpx.post(f"{url}/endpoints/churn/invocations", content=RECORD).status_code == 401,
                 what="the auth change to apply")
        assert "loopml_invocations_total" in httpx.get(f"{url}/metrics").text
        assert httpx.post(f"{url}/streams/nope/records", content=b'{"a": 1}').status_code == 404  # mounted
    finally:
        code, out, err = _stop(proc)
    assert code == 0 and f"on {url}" in " ".join(out.split()) and "Traceback" not in err, (out, err)


@pytest.mark.slow
def test_single_endpoint_server_with_two_workers(project: Path) -> None:
    proc, url = _serve(project, "--endpoint", "churn", "--workers", "2", "--no-streams")
    try:
        for _ in range(10):
            r = httpx.post(f"{url}/invocations", content=RECORD, headers={"content-type": "application/json"})
            assert r.status_code == 200 and len(r.json()["predictions"]) == 1
        r = httpx.post(f"{url}/streams/nope/records", content=b'{"a": 1}')
        assert r.status_code == 404 and r.json()["code"] == "NotFound"  # not mounted: no such route
    finally:
        code, out, err = _stop(proc)
    assert code == 0 and "endpoint churn" in out and "Traceback" not in err, (out, err)
