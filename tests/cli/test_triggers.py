"""``loopml triggers`` and ``loopml monitor schedule``: add, list, show, fire, enable/disable, remove; errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.monitor import baseline
from tests.cli._run import run
from tests.triggers._helpers import write_yaml_pipeline
from tests.triggers.test_monitoring import _capture


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A workspace with a pipeline file ``retrain.yaml``."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    write_yaml_pipeline(tmp_path)
    return tmp_path


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_add_list_show_fire_disable_remove(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "triggers", "add", "on-data", "--pipeline", "retrain.yaml",
                         "--on", "dataset.version_created", "--where", "dataset=churn",
                         "--param", "dataset=${event.payload.dataset}:${event.payload.version}", "-e", "thread")
    assert code == 0, err
    assert "trigger on-data: on dataset.version_created where dataset=churn → pipeline retrain" in out
    code, out, _ = run(capsys, "triggers", "add", "nightly", "-f", "retrain.yaml", "--cron", "0 3 * * *",
                       "-p", "slot=${schedule.time}", "-e", "thread", "--json")
    assert code == 0 and json.loads(out)["schedule"] == "0 3 * * *"
    code, out, _ = run(capsys, "triggers", "list")
    assert code == 0 and "on-data" in out and "0 3 * * *" in out and "never" in out
    # fire by hand, replacing the template
    code, out, _ = run(capsys, "triggers", "fire", "on-data", "--param", "dataset=manual:1", "--key", "k")
    assert code == 0 and "Succeeded" in out and "execution pex-" in out and "'manual:1'" in out
    code, out, _ = run(capsys, "triggers", "fire", "on-data", "--key", "k", "--json")
    assert code == 0 and json.loads(out)["params"] == {"dataset": "manual:1"}     # the same firing
    # without a value for the template: the firing is recorded as Failed, exit 1
    code, out, _ = run(capsys, "triggers", "fire", "on-data")
    assert code == 1 and "Failed" in out and "give the value with --param" in " ".join(out.split())
    code, out, _ = run(capsys, "triggers", "show", "on-data", "--json")
    shown = json.loads(out)
    assert code == 0 and [f["status"] for f in shown["firings"]] == ["Failed", "Succeeded"]
    code, out, _ = run(capsys, "triggers", "show", "on-data")
    assert code == 0 and "manual-k" in out and "rule" in out
    assert run(capsys, "triggers", "disable", "on-data")[0] == 0
    code, out, _ = run(capsys, "triggers", "list", "--json")
    assert {t["name"]: t["enabled"] for t in json.loads(out)} == {"nightly": True, "on-data": False}
    assert run(capsys, "triggers", "enable", "on-data")[0] == 0
    assert run(capsys, "triggers", "remove", "nightly")[0] == 0
    code, out, _ = run(capsys, "triggers", "list", "--json")
    assert [t["name"] for t in json.loads(out)] == ["on-data"]


def test_a_dataset_version_fires_the_trigger_through_the_scheduler(project: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "triggers", "add", "t", "-f", "retrain.yaml", "--on", "dataset.version_created",
               "-p", "dataset=${event.payload.dataset}:${event.payload.version}", "-e", "thread")[0] == 0
    with Workspace.open(project) as ws:
        Catalog(ws).write("churn", pd.DataFrame({"a": [1, 2, 3]}))
    code, out, err = run(capsys, "scheduler", "--once")
    assert code == 0, err
    assert "fired t#" in out and "1 firing(s)" in out
    code, out, _ = run(capsys, "triggers", "show", "t", "--json")
    [f] = json.loads(out)["firings"]
    assert f["status"] == "Succeeded" and f["params"] == {"dataset": "churn:1"}


@pytest.mark.parametrize("argv, message", [
    (("triggers", "add", "t", "-f", "retrain.yaml"), "give exactly one of --cron EXPR, --every PERIOD or --on"),
    (("triggers", "add", "t", "-f", "retrain.yaml", "--every", "1h", "--cron", "0 * * * *"), "exactly one of"),
    (("triggers", "add", "t", "-f", "retrain.yaml", "--every", "soon"), "not a duration"),
    (("triggers", "add", "t", "-f", "nope.yaml", "--every", "1h"), "pipeline file not found"),
    (("triggers", "add", "t", "-f", "retrain.yaml", "--every", "1h", "-p", "datset=x"), "did you mean 'dataset'"),
    (("triggers", "add", "t", "-f", "retrain.yaml", "--every", "1h", "-p", "novalue"), "must look like NAME=VALUE"),
    (("triggers", "add", "t", "-f", "retrain.yaml", "--every", "1h", "--where", "a=b"), "applies to event triggers"),
    (("triggers", "show", "ghost"), "no trigger 'ghost'"),
    (("triggers", "fire", "ghost"), "no trigger 'ghost'"),
    (("triggers", "remove", "ghost"), "no trigger 'ghost'"),
    (("scheduler", "--once", "--interval", "0"), "interval must be a positive"),
    (("monitor", "schedule", "ghost-ep", "--every", "1h"), "no endpoint named 'ghost-ep'"),
    (("monitor", "schedule", "ep", "--every", "1h", "--cron", "0 * * * *"), "exactly one of --every"),
    (("monitor", "schedules", "ghost"), "no monitoring schedule 'ghost'"),
    (("monitor", "unschedule", "ghost"), "no monitoring schedule 'ghost'"),
])
def test_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                             message: str) -> None:
    assert message in _one_line_error(capsys, *argv)


def test_monitor_schedule_commands(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = np.random.default_rng(0)
    with Workspace.open(project) as ws:
        Catalog(ws).write("ref", pd.DataFrame({"x": r.normal(0, 1, 200), "c": r.choice(["a", "b"], 200)}))
        baseline(ws, "ref")
        _capture(ws, "ep", pd.DataFrame({"x": r.normal(3, 1, 100), "c": r.choice(["a", "b"], 100)}))
    code, out, err = run(capsys, "monitor", "schedule", "ep", "--every", "1h", "--baseline", "ref-1",
                         "--window", "2h")
    assert code == 0, err
    assert "monitoring schedule ep-data-quality: data_quality on ep every 1h, window 2h, baseline ref-1" in out
    code, out, _ = run(capsys, "monitor", "schedule", "ep", "--cron", "0 0 * * *", "--kind", "bias",
                       "-o", "facet=c", "-o", "positive_label=1", "-o", "label=y", "--json")
    assert code == 0 and json.loads(out)["options"] == {"facet": "c", "positive_label": 1, "label": "y"}
    code, out, _ = run(capsys, "monitor", "schedules")
    assert code == 0 and "ep-data-quality" in out and "ep-bias" in out and "never" in out
    with Workspace.open(project) as ws:
        from loopml.triggers import run_monitor_schedule

        run_monitor_schedule(ws, "ep-data-quality")
    code, out, _ = run(capsys, "monitor", "schedules", "ep-data-quality")
    assert code == 0 and "CompletedWithViolations" in out and "mon-" in out
    code, out, _ = run(capsys, "monitor", "schedules", "--json")
    last = {s["name"]: s["last_run"] for s in json.loads(out)}
    assert last["ep-bias"] is None and last["ep-data-quality"]["status"] == "CompletedWithViolations"
    assert run(capsys, "monitor", "unschedule", "ep-bias")[0] == 0
    code, out, _ = run(capsys, "monitor", "schedules", "--json")
    assert [s["name"] for s in json.loads(out)] == ["ep-data-quality"]
