"""``loopml scheduler``: --once runs what is due and waits for it; SIGTERM stops a running one cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from tests.cli._run import run
from tests.triggers._helpers import write_yaml_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    write_yaml_pipeline(tmp_path)
    assert run(capsys, "triggers", "add", "t", "-f", "retrain.yaml", "--on", "dataset.version_created",
               "-p", "dataset=${event.payload.dataset}", "-e", "thread")[0] == 0
    return tmp_path


def test_once_fires_waits_and_reports(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scheduler", "--once", "--json")
    assert code == 0 and json.loads(out)["firings"] == 0
    with Workspace.open(project) as ws:
        Catalog(ws).write("sales", pd.DataFrame({"a": [1]}))
    code, out, _ = run(capsys, "scheduler", "--once", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["firings"] == 1 and stats["errors"] == 0 and stats["ticks"] >= 1
    code, out, _ = run(capsys, "triggers", "show", "t", "--json")
    assert json.loads(out)["firings"][0]["status"] == "Succeeded"   # --once waited for the pipeline
    code, out, _ = run(capsys, "scheduler", "--once")
    assert code == 0 and "scheduler stopped: 1 tick(s), 0 firing(s)" in " ".join(out.split())


def test_sigterm_stops_a_running_scheduler(project: Path) -> None:
    env = {**os.environ, "LOOPML_HOME": str(project), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from loopml.cli import main; main()", "scheduler",
                             "--interval", "0.1"], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "scheduler on" in first and "Ctrl-C to stop" in first
        with Workspace.open(project) as ws:
            Catalog(ws).write("sales", pd.DataFrame({"a": [1]}))
            end = time.monotonic() + 20
            from loopml.triggers import list_firings

            while not [f for f in list_firings(ws) if f.status == "Succeeded"] and time.monotonic() < end:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "fired t#" in out and "scheduler stopped (SIGTERM): " in " ".join(out.split())
