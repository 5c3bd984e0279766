"""The production-readiness checklist: each item passes on real records and fails, with evidence, without them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml import Workspace
from loopml._demo.data import FEATURES, TARGET, make_churn
from loopml.errors import NotFound
from loopml.monitor.readiness import ITEMS, readiness
from tests.cli._run import run

HP = {"num_round": 8, "max_depth": 3}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with churn:1 (Approved) and churn:2 (pending, from another run), nothing else.

    Tests copy it, so each starts from the same state.
    """
    from loopml.data import Catalog
    from loopml.registry import APPROVED, register_model
    from loopml.train import Estimator

    root = tmp_path_factory.mktemp("readiness") / "ws"
    ws = Workspace.init(root)
    df = make_churn(400, seed=3)[[*FEATURES, TARGET]]
    cat = Catalog(ws)
    cat.write("train", df[:300])
    cat.write("holdout", df[300:])
    with Estimator("xgboost", HP, target=TARGET, ws=ws, reuse_process=True) as est:
        register_model(ws, est.fit("train"), "churn", approval=APPROVED)
        register_model(ws, est.clone(hyperparameters={"num_round": 12}).fit("train"), "churn")
    ws.close()
    return root


@pytest.fixture
def ws(base: Path, tmp_path: Path) -> Iterator[Workspace]:
    copy = tmp_path / "ws"
    shutil.copytree(base, copy)
    w = Workspace.open(copy)
    yield w
    w.close()


def _ready(ws: Workspace, endpoint: str = "churn-ep") -> None:
    """Everything a production version needs, for churn:2 on ``endpoint``."""
    from loopml.evaluate import evaluate_model
    from loopml.metrics import alarms
    from loopml.monitor import baseline
    from loopml.registry import approve
    from loopml.serve import endpoints as eps
    from loopml.triggers import add_monitor_schedule

    approve(ws, "churn:2", by="alice", reason="looks good")
    evaluate_model(ws, "churn:2", "holdout", latency_rows=20)
    baseline(ws, model="churn:2")
    eps.deploy(ws, endpoint, model="churn:2", api_key_required=True, capture_percentage=100)
    eps.create_api_key(ws, endpoint)
    add_monitor_schedule(ws, endpoint, every="1h")
    alarms.put_alarm(ws, "ep-5xx", metric="Invocation5XXErrors", threshold=0, comparison=">",
                     dimensions={"endpoint": endpoint}, statistic="Sum")


def test_a_fresh_version_fails_every_item_but_the_hash_check(ws: Workspace) -> None:
    r = readiness(ws, "churn:2")
    assert r.model == "churn:2" and r.endpoint is None and not r.passed
    assert [i.key for i in r.items] == [k for k, _ in ITEMS]
    passed = {i.key for i in r.items if i.passed}
    assert passed == {"rollback", "artifacts_verified"}   # churn:1 is Approved; the files are intact
    ev = {i.key: i.evidence for i in r.items}
    assert ev["approved"] == "churn:2 is PendingManualApproval"
    assert "no evaluation" in ev["holdout_evaluation"] and "trained on train:1" in ev["holdout_evaluation"]
    assert "loopml evaluate churn:2 --data HOLDOUT" in ev["performance_benchmark"]
    assert "loopml monitor baseline --model churn:2" in ev["monitor_baseline"]
    for key in ("monitoring", "alarms", "endpoint_auth"):
        assert "no endpoint serves the version" in ev[key]
    assert "churn:1 is Approved" in ev["rollback"]
    assert "match their sha256 now" in ev["artifacts_verified"]
    # the first version has nothing to roll back to
    assert "nothing to roll back to" in readiness(ws, "churn:1").item("rollback").evidence


def test_everything_in_place_passes_with_evidence(ws: Workspace) -> None:
    _ready(ws)
    r = readiness(ws, "churn:2")
    assert r.passed, [(i.key, i.evidence) for i in r.failed]
    assert r.endpoint == "churn-ep"   # found: the endpoint serving churn:2
    ev = {i.key: i.evidence for i in r.items}
    assert ev["approved"] == "churn:2 is Approved by alice"
    assert "on holdout:1: roc_auc" in ev["holdout_evaluation"]
    assert "over 20 requests (measured" in ev["performance_benchmark"]
    assert "baseline train-1" in ev["monitor_baseline"]
    assert "churn-ep-data-quality (data_quality, every 1h)" in ev["monitoring"]
    assert ev["alarms"].startswith("ep-5xx: Sum(Invocation5XXErrors) > 0")
    assert ev["endpoint_auth"] == "endpoint churn-ep requires an API key (1 active key(s))"
    d = r.to_dict()
    assert d["passed"] is True and d["passed_count"] == d["total"] == len(ITEMS)
    json.dumps(d)


def test_an_evaluation_on_the_training_data_is_not_a_holdout(ws: Workspace) -> None:
    from loopml.data import Catalog
    from loopml.evaluate import evaluate_model

    evaluate_model(ws, "churn:2", "train", latency_rows=5)
    # the same rows under another name are still the training data (compared by content)
    Catalog(ws).write("train_copy", Catalog(ws).read_pandas("train"))
    evaluate_model(ws, "churn:2", "train_copy", latency_rows=0)
    r = readiness(ws, "churn:2")
    item = r.item("holdout_evaluation")
    assert not item.passed
    assert "its 2 evaluation(s) used only its training data (train:1, train_copy:1)" in item.evidence
    assert r.item("performance_benchmark").passed   # latency was measured all the same
    evaluate_model(ws, "churn:2", "holdout", latency_rows=0)
    assert readiness(ws, "churn:2").item("holdout_evaluation").passed


def test_a_modified_package_file_fails_the_hash_check(ws: Workspace) -> None:
    from loopml.registry import get_model_version
    from loopml.registry.versions import verify_stored_package

    v = get_model_version(ws, "churn:2")
    manifest = verify_stored_package(ws, v.package_sha256)
    sha = next(iter(sorted(manifest["files"].values())))
    path = Path(str(ws.artifacts.local_path(sha, verify=False)))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    item = readiness(ws, "churn:2").item("artifacts_verified")
    assert not item.passed and "modified or corrupted" in item.evidence


def test_endpoint_items_follow_the_named_endpoint(ws: Workspace) -> None:
    from loopml.metrics import alarms
    from loopml.serve import endpoints as eps
    from loopml.triggers import add_monitor_schedule

    _ready(ws)
    eps.deploy(ws, "open-ep", model="churn:1")          # no auth, no alarms, no schedule
    add_monitor_schedule(ws, "open-ep", every="1h", enabled=False)   # a disabled schedule does not count
    alarms.put_alarm(ws, "other", metric="ModelLatency", threshold=100, comparison=">",
                     dimensions={"endpoint": "churn-ep"})
    r = readiness(ws, "churn:2", endpoint="open-ep")
    failed = {i.key for i in r.failed}
    assert failed == {"monitoring", "alarms", "endpoint_auth"}
    assert "endpoint open-ep does not serve churn:2 (it serves churn:1)" in r.item("endpoint_auth").evidence
    assert "no alarm watches endpoint open-ep" in r.item("alarms").evidence
    with pytest.raises(NotFound):
        readiness(ws, "churn:2", endpoint="nope")
    with pytest.raises(NotFound):
        readiness(ws, "churn:9")


def test_cli_prints_the_checklist_and_strict_sets_the_exit_code(
    ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(ws.home))
    code, out, _ = run(capsys, "models", "readiness", "churn:2")
    assert code == 0 and "production readiness of churn:2" in out and "not ready: 2/9 items pass" in out
    code, out, _ = run(capsys, "models", "readiness", "churn:2", "--strict")
    assert code == 1
    code, out, _ = run(capsys, "models", "readiness", "churn:2", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["model"] == "churn:2" and doc["passed"] is False
    assert {i["key"] for i in doc["items"] if i["passed"]} == {"rollback", "artifacts_verified"}
    _ready(ws)
    code, out, _ = run(capsys, "models", "readiness", "churn:2", "--strict", "--endpoint", "churn-ep")
    assert code == 0 and "ready: 9/9 items pass" in out
    code, _, err = run(capsys, "models", "readiness", "churn:2", "--endpoint", "nope")
    assert code == 1 and err.count("\n") == 1 and "nope" in err
