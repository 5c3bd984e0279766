"""``loopml endpoints`` and ``loopml invoke``: deploy, list, describe, weights, keys, history, delete; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml import Workspace
from loopml.registry import APPROVED, register_model
from loopml.serve.app import create_app
from tests.cli._run import run
from tests.registry._packages import train_package
from tests.serve._fixtures import running
from tests.train._data import churn

RECORD = '{"x1": 0.5, "x2": -1.0, "city": "paris", "day": "2024-03-01"}'


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cli-endpoint-packages")
    df = churn(200)
    return (train_package(tmp, df, "xgboost", {"num_round": 5}, name="a"),
            train_package(tmp, df, "xgboost", {"num_round": 2, "max_depth": 2}, name="b"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            packages: tuple[Path, Path]) -> Path:
    """A workspace with churn:1 and churn:2 registered (Approved)."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", ".")[0] == 0
    with Workspace.open(tmp_path) as ws:
        for folder in packages:
            register_model(ws, folder, "churn", approval=APPROVED)
    return tmp_path


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return " ".join(err.split())


def test_endpoint_lifecycle(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "endpoints", "list")
    assert code == 0 and "No endpoints yet" in out
    code, out, err = run(capsys, "endpoints", "deploy", "churn", "--variant", "a=churn:1:0.8",
                         "--variant", "b=churn:2:0.2", "--capture", "10", "--reason", "A/B test")
    assert code == 0, err
    assert "Deployed endpoint churn" in out and "80.0%" in out and "capture 10%" in out
    code, out, _ = run(capsys, "endpoints", "update-weights", "churn", "a=1", "b=1", "--json")
    info = json.loads(out)
    assert code == 0 and info["version"] == 2 and [v["weight"] for v in info["config"]["variants"]] == [1, 1]
    code, out, _ = run(capsys, "endpoints", "update", "churn", "--micro-batching", "--max-rows", "100")
    assert code == 0 and "micro-batching" in out and "max 100 rows" in out
    code, out, _ = run(capsys, "endpoints", "list", "--json")
    assert code == 0 and [e["name"] for e in json.loads(out)] == ["churn"]
    code, out, _ = run(capsys, "endpoints", "list")
    assert code == 0 and "InService" in out
    # API keys: printed once, listed by id, revocable
    code, out, err = run(capsys, "endpoints", "api-key", "churn", "--description", "ci")
    key = out.strip()
    assert code == 0 and key.startswith("lmk.") and "shown once" in err
    key_id = key.split(".")[1]
    code, out, _ = run(capsys, "endpoints", "api-keys", "churn", "--json")
    assert code == 0 and [k["id"] for k in json.loads(out)] == [key_id] and key not in out
    code, out, _ = run(capsys, "endpoints", "describe", "churn")
    assert code == 0 and "update_weights" in out and key_id in out and "A/B test" in out
    code, out, _ = run(capsys, "endpoints", "describe", "churn", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["version"] == 4 and [h["action"] for h in doc["history"]] == [
        "create", "update_weights", "update", "api_key_created"]
    code, out, _ = run(capsys, "endpoints", "revoke-key", "churn", key_id)
    assert code == 0 and "Revoked" in out
    # multi-model, then delete; the history stays
    code, out, _ = run(capsys, "endpoints", "deploy", "mme", "--multi-model", "x=churn:1", "--multi-model",
                       "y=churn:2", "--max-loaded", "1")
    assert code == 0 and "multi-model" in out and "at most 1 loaded" in out
    code, out, _ = run(capsys, "endpoints", "delete", "mme", "--reason", "done")
    assert code == 0 and "Deleted endpoint mme" in out
    code, out, _ = run(capsys, "endpoints", "history", "mme", "--json")
    assert code == 0 and [(h["action"], h["reason"]) for h in json.loads(out)] == [("create", None),
                                                                                  ("delete", "done")]


def test_endpoint_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no model named 'nope'" in _one_line_error(capsys, "endpoints", "deploy", "ep", "--model", "nope:1")
    assert "NAME=MODEL:VERSION:WEIGHT" in _one_line_error(capsys, "endpoints", "deploy", "ep", "--variant", "a")
    assert "more than zero" in _one_line_error(capsys, "endpoints", "deploy", "ep", "--variant", "a=churn:1:0")
    assert "serves no model" in _one_line_error(capsys, "endpoints", "deploy", "ep")
    assert "no endpoint named 'ep'" in _one_line_error(capsys, "endpoints", "describe", "ep")
    assert "no endpoint named 'ep'" in _one_line_error(capsys, "endpoints", "delete", "ep")
    assert run(capsys, "endpoints", "deploy", "ep", "--model", "churn:1")[0] == 0
    assert "no variant 'zz'" in _one_line_error(capsys, "endpoints", "update-weights", "ep", "zz=1")
    assert "VARIANT=WEIGHT" in _one_line_error(capsys, "endpoints", "update-weights", "ep", "zz")
    assert "no variant 'zz'" in _one_line_error(capsys, "invoke", "ep", "--data", RECORD, "--variant", "zz")
    assert "--data JSON or --body FILE" in _one_line_error(capsys, "invoke", "ep")
    assert "not valid JSON" in _one_line_error(capsys, "invoke", "ep", "--data", "{")
    assert "cannot read --body" in _one_line_error(capsys, "invoke", "ep", "--body", "missing.json")
    assert "no endpoint named 'nope'" in _one_line_error(capsys, "serve", "--endpoint", "nope")


def test_invoke_in_process_and_over_http(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "endpoints", "deploy", "ep", "--variant", "a=churn:1:1", "--variant", "b=churn:2:1")[0] == 0
    code, out, err = run(capsys, "invoke", "ep", "--data", RECORD, "--variant", "b")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["classes"] == [0, 1] and len(doc["predictions"]) == 1 and "variant b" in err
    (project / "rows.csv").write_text("0.5,-1.0,paris,2024-03-01\n1.5,,lyon,2024-04-01\n")
    code, out, _ = run(capsys, "invoke", "ep", "--body", "rows.csv", "--accept", "text/csv", "--json")
    res = json.loads(out)
    assert code == 0 and res["content_type"] == "text/csv" and len(res["body"].strip().splitlines()) == 2
    assert res["variant"] in ("a", "b")
    # the same request over HTTP gives the same answer
    with Workspace.open(project) as ws:
        app = create_app(ws, metrics_flush_interval_s=0)
        with running(app) as url:
            code, http_out, err = run(capsys, "invoke", "ep", "--data", RECORD, "--variant", "b", "--url", url)
            assert code == 0, err
            assert json.loads(http_out) == doc
            assert "no variant 'zz'" in _one_line_error(capsys, "invoke", "ep", "--data", RECORD, "--variant", "zz",
                                                        "--url", url)
            assert run(capsys, "endpoints", "update", "ep", "--auth")[0] == 0
            key = run(capsys, "endpoints", "api-key", "ep")[1].strip()
            app.state.server.refresh()
            assert "requires an API key" in _one_line_error(capsys, "invoke", "ep", "--data", RECORD, "--url", url)
            code, out, err = run(capsys, "invoke", "ep", "--data", RECORD, "--url", url, "--api-key", key)
            assert code == 0, err
    assert "cannot reach" in _one_line_error(capsys, "invoke", "ep", "--data", RECORD, "--url", url)


def test_blue_green_update_rollback_and_describe(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "endpoints", "deploy", "ep", "--model", "churn:1")[0] == 0
    code, out, err = run(capsys, "endpoints", "update", "ep", "--model", "churn:2", "--strategy", "canary:50:0.3",
                         "--guardrail-period", "1", "--poll", "0.1", "--max-p99-ms", "5000", "--reason", "retrained")
    assert code == 0, err
    assert "Succeeded" in out and "churn:2" in out
    code, out, _ = run(capsys, "endpoints", "describe", "ep")
    assert code == 0 and "deployments" in out and "canary:50:0.3" in out and "Succeeded" in out
    assert "churn:1 -> churn:2" in out
    # an update that rolls back: exit 1, the reason printed, blue restored
    import threading

    with Workspace.open(project) as ws:
        from loopml.metrics import alarms

        alarms.put_alarm(ws, "drill", metric="Drill", threshold=0, comparison=">", period_s=60)
        timer = threading.Timer(0.5, lambda: ws.metrics.put("Drill", 1.0))  # breaches during the bake
        timer.start()
        code, out, _ = run(capsys, "endpoints", "update", "ep", "--model", "churn:1", "--strategy", "canary:10:5",
                           "--alarm", "drill", "--poll", "0.1", "--json")
        timer.join()
    d = json.loads(out)
    assert code == 1 and d["status"] == "RolledBack" and d["alarm"] == "drill"
    code, out, _ = run(capsys, "endpoints", "describe", "ep", "--json")
    doc = json.loads(out)
    assert [x["status"] for x in doc["deployments"]] == ["RolledBack", "Succeeded"]
    assert [v["model"] for v in doc["config"]["variants"]] == ["churn:2"]
    # settings and models in one command: settings first, then the guarded update
    code, out, err = run(capsys, "endpoints", "update", "ep", "--model", "churn:1", "--max-rows", "50",
                         "--poll", "0.1", "--guardrail-period", "1")
    assert code == 0, err
    with Workspace.open(project) as ws:
        from loopml.serve.endpoints import get_endpoint

        info = get_endpoint(ws, "ep")
        assert info.config.limits.max_rows == 50 and [v.model for v in info.config.variants] == ["churn:1"]


def test_update_in_the_background_and_rollback_by_hand(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "endpoints", "deploy", "ep", "--model", "churn:1")[0] == 0
    code, out, err = run(capsys, "endpoints", "update", "ep", "--model", "churn:2", "--strategy", "linear:50:60",
                         "--no-wait", "--poll", "0.1", "--guardrail-period", "1")
    assert code == 0 and "runs in the background" in out, err
    from tests.serve._fixtures import wait_for

    def describe() -> dict[str, object]:
        doc = json.loads(run(capsys, "endpoints", "describe", "ep", "--json")[1])
        return dict(doc["deployments"][0])

    wait_for(lambda: describe()["phase"] == "step 1/2", timeout=30, what="the background controller")
    assert describe()["status"] == "InProgress"
    assert "already has deployment" in _one_line_error(capsys, "endpoints", "update", "ep", "--model", "churn:1")
    assert "driven by controller pid" in _one_line_error(capsys, "endpoints", "resume", "ep")
    code, out, _ = run(capsys, "endpoints", "rollback", "ep", "--reason", "too slow")
    assert code == 0 and "RolledBack" in out and "too slow" in out
    assert describe()["status"] == "RolledBack"
    assert "no deployment in progress" in _one_line_error(capsys, "endpoints", "rollback", "ep")


def test_update_and_placement_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "endpoints", "deploy", "ep", "--model", "churn:1")[0] == 0
    assert "unknown strategy 'blue'" in _one_line_error(capsys, "endpoints", "update", "ep", "--model", "churn:2",
                                                        "--strategy", "blue")
    assert "no alarm named 'nope'" in _one_line_error(capsys, "endpoints", "update", "ep", "--model", "churn:2",
                                                      "--alarm", "nope")
    assert "has no deployment" in _one_line_error(capsys, "endpoints", "resume", "ep")
    assert "MIN:MAX" in _one_line_error(capsys, "endpoints", "deploy", "ep2", "--model", "churn:1", "--replicas", "x")
    assert "min replicas (3) is above max" in _one_line_error(capsys, "endpoints", "deploy", "ep2", "--model",
                                                              "churn:1", "--replicas", "3:1")
    assert "not both" in _one_line_error(capsys, "endpoints", "deploy", "ep2", "--model", "churn:1", "--replicas",
                                         "1:2", "--serverless")
    assert "--max-concurrency" in _one_line_error(capsys, "endpoints", "deploy", "ep2", "--model", "churn:1",
                                                  "--serverless", "--max-concurrency", "0")
    assert "unknown backend" in _one_line_error(capsys, "endpoints", "deploy", "ep2", "--model", "churn:1",
                                                "--backend", "k8s")
    assert "micro-batching" in _one_line_error(capsys, "endpoints", "deploy", "ep2", "--model", "churn:1",
                                               "--replicas", "1:2", "--micro-batching")
    code, out, _ = run(capsys, "endpoints", "deploy", "ep2", "--model", "churn:1", "--serverless", "--memory-mb",
                       "1024", "--max-concurrency", "4", "--idle-timeout", "5")
    assert code == 0 and "serverless (1024 MB, max concurrency 4, idle timeout 5 s)" in out
    code, out, _ = run(capsys, "endpoints", "deploy", "ep3", "--model", "churn:1", "--replicas", "1:3",
                       "--target-inflight", "4", "--json")
    assert code == 0 and json.loads(out)["config"]["scaling"]["max_replicas"] == 3


def test_deploy_with_a_strategy_updates_an_existing_endpoint(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a new endpoint: a plain deploy, nothing to shift from
    code, out, err = run(capsys, "endpoints", "deploy", "ep", "--model", "churn:1", "--strategy", "canary:10:1")
    assert code == 0 and "Deployed endpoint ep" in out, err
    code, out, err = run(capsys, "endpoints", "deploy", "ep", "--model", "churn:2", "--strategy", "all-at-once",
                         "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["status"] == "Succeeded" and [g["model"] for g in d["green"]] == ["churn:2"]
    assert "settings apply first" in _one_line_error(capsys, "endpoints", "deploy", "ep", "--model", "churn:1",
                                                     "--strategy", "all-at-once", "--capture", "5")
