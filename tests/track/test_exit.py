"""Nothing buffered is lost when the process exits right after logging."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from loopml import Workspace
from loopml.track import Tracker

SCRIPT = """
import sys
import loopml
from loopml.track import Tracker

ws = loopml.Workspace.open(sys.argv[1])
# A long interval: only the exit hook can write these points.
tracker = Tracker(ws, flush_interval=60, capture_code_version=False)
run = tracker.start_run(experiment="exit", name=sys.argv[2])
run.log_params({"depth": 6, "eta": 0.1})
run.set_tag("phase", "train")
for i in range(5000):
    run.log_metric("loss", 1.0 / (i + 1), step=i)
run.log_metrics({"auc": 0.9, "f1": 0.8})
print(run.id)
if sys.argv[2] == "crash":
    raise RuntimeError("out of cheese")
# no run.end(), no tracker.close(): the interpreter just exits
"""


def _run_script(ws: Workspace, tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    return subprocess.run([sys.executable, str(script), str(ws.root), mode],
                          capture_output=True, text=True, timeout=120, check=False)


def test_buffers_are_flushed_at_interpreter_exit(ws: Workspace, tmp_path: Path) -> None:
    proc = _run_script(ws, tmp_path, "normal")
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]
    with Tracker(ws) as t:
        info = t.get_run(run_id)
        assert info.status == "FINISHED"
        assert info.params == {"depth": "6", "eta": "0.1"} and info.tags == {"phase": "train"}
        assert info.metrics == {"loss": 1.0 / 5000, "auc": 0.9, "f1": 0.8}
        history = t.metric_history(run_id, "loss")
        assert len(history) == 5000 and [p.step for p in history] == list(range(5000))
    assert [e.type for e in ws.events.list()] == ["run.finished"]


def test_an_uncaught_exception_marks_open_runs_failed(ws: Workspace, tmp_path: Path) -> None:
    proc = _run_script(ws, tmp_path, "crash")
    assert proc.returncode == 1 and "out of cheese" in proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]
    with Tracker(ws) as t:
        info = t.get_run(run_id)
        assert info.status == "FAILED" and info.message == "RuntimeError: out of cheese"
        assert len(t.metric_history(run_id, "loss")) == 5000
        assert "out of cheese" in t.read_artifact(run_id, "error/traceback.txt").decode()
    assert [e.type for e in ws.events.list()] == ["run.failed"]
