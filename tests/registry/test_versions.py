"""The registry on SQLite and PostgreSQL: register, approve/reject, aliases, resolve, events, lineage, bad input."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from loopml import Conflict, IntegrityError, InvalidInput, NotFound, Workspace
from loopml.data import Catalog
from loopml.registry import (
    APPROVED,
    PENDING,
    REJECTED,
    alias_history,
    approve,
    get_model_version,
    list_models,
    list_versions,
    load_model,
    parse_model_ref,
    register_model,
    reject,
    remove_alias,
    set_alias,
)
from loopml.store.lineage import EntityRef
from loopml.train import TrainingResult, load_model_package
from loopml.train.package import read_manifest
from tests.registry._packages import record_run, train_package
from tests.train._data import churn


@pytest.fixture(scope="module")
def pkgs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("registry-packages")
    df = churn(200)
    return {"xgb": train_package(tmp, df, "xgboost", {"num_round": 5}, name="xgb"),
            "linear": train_package(tmp, df, "linear", name="linear")}


def _events(ws: Workspace) -> list[tuple[str, dict[str, object]]]:
    return [(e.type, e.payload) for e in ws.events.list() if e.type.startswith("model.")]


def test_register_approve_alias_and_resolve(any_ws: Workspace, pkgs: dict[str, Path]) -> None:
    ws = any_ws
    data = Catalog(ws).write("churn", churn(50))
    r1 = record_run(ws, pkgs["xgb"], data=data)
    r2 = record_run(ws, pkgs["linear"], data=data)
    _, sha1 = read_manifest(pkgs["xgb"])

    v1 = register_model(ws, r1, "churn", description="boosted  trees\nfirst try", by="dana")
    assert (v1.ref, v1.approval_status, v1.run_id, v1.flavor, v1.problem_type) == (
        "churn:1", PENDING, r1, "xgboost", "binary")
    assert v1.package_sha256 == sha1 and v1.description == "boosted trees first try"
    assert v1.registered_by == "dana" and v1.approval_by is None and v1.aliases == []
    assert v1.hyperparameters["num_round"] == 5 and 0.5 < v1.metrics["train:auc"] <= 1.0
    assert [c["name"] for c in v1.signature["inputs"]] == ["x1", "x2", "city", "day"]
    assert [(d["name"], d["version"], d["role"]) for d in v1.datasets] == [("churn", 1, "train")]
    assert v1.recipe == {"file": "recipe.json", "auto": True}
    assert v1.details["target"] == "y" and v1.details["experiment"] == "registry"
    assert [(a.status, a.by, a.reason) for a in v1.approvals] == [(PENDING, "dana", "registered")]

    v2 = register_model(ws, r2.removeprefix("run-")[:10], "churn")  # a unique id prefix works too
    assert v2.version == 2 and v2.flavor == "linear"
    # nothing approved yet: NAME is the newest version
    assert get_model_version(ws, "churn").version == 2
    approve(ws, "churn:1", by="alice", reason="auc ok")
    # now NAME is the newest approved version
    assert get_model_version(ws, "churn").version == 1
    assert get_model_version(ws, "churn:latest").version == 2
    info = get_model_version(ws, "churn:1")
    assert (info.approval_status, info.approval_by, info.approval_reason) == (APPROVED, "alice", "auc ok")
    assert approve(ws, "churn:1", by="zed").approval_by == "alice"  # approving again changes nothing

    with pytest.raises(Conflict, match=r"churn:2 is PendingManualApproval; .*`loopml models approve churn:2`"):
        set_alias(ws, "churn:2", "production")
    set_alias(ws, "churn:2", "staging", by="bob")
    set_alias(ws, "churn:1", "production", by="alice")
    approve(ws, "churn@staging", by="alice")
    promoted = set_alias(ws, "churn@staging", "production", by="bob", reason="better auc")
    assert promoted.version == 2 and promoted.aliases == ["production", "staging"]
    assert get_model_version(ws, "churn@production").version == 2
    assert get_model_version(ws, "churn:1").aliases == []
    assert [(h.alias, h.version, h.previous_version, h.by) for h in alias_history(ws, "churn")] == [
        ("staging", 2, None, "bob"), ("production", 1, None, "alice"), ("production", 2, 1, "bob")]
    assert alias_history(ws, "churn")[-1].reason == "better auc"

    with pytest.raises(Conflict, match=r"churn:2 is in production; move production"):
        reject(ws, "churn:2", "too slow")
    with pytest.raises(Conflict, match="is in production; move production to another version before archiving"):
        set_alias(ws, "churn:2", "archived")
    set_alias(ws, "churn:1", "archived")

    # a staged version that is rejected leaves staging; a rejected version stays rejected
    v3 = register_model(ws, r1, "churn")
    set_alias(ws, v3.ref, "staging")
    rejected = reject(ws, "churn:3", "drifts on new data", by="carol")
    assert (rejected.approval_status, rejected.approval_by, rejected.aliases) == (REJECTED, "carol", [])
    with pytest.raises(Conflict, match=rf"churn:3 was rejected by carol on .* \(drifts on new data\); a rejected "
                                       rf"version stays rejected: register the model again .*register {r1} --name churn"):
        approve(ws, "churn:3")
    with pytest.raises(Conflict, match="cannot be staged"):
        set_alias(ws, "churn:3", "staging")
    assert [(a.status, a.previous_status) for a in get_model_version(ws, "churn:3").approvals] == [
        (PENDING, None), (REJECTED, PENDING)]

    (model,) = list_models(ws)
    assert (model.name, model.versions, model.latest_version, model.latest_approved) == ("churn", 3, 3, 2)
    assert model.aliases == {"archived": 1, "production": 2} and model.description == "boosted trees first try"
    assert [v.version for v in list_versions(ws, "churn")] == [1, 2, 3]
    assert [v.version for v in list_versions(ws, "churn", status=REJECTED)] == [3]
    remove_alias(ws, "churn", "archived", by="bob")
    assert list_models(ws)[0].aliases == {"production": 2}

    events = _events(ws)
    kinds = [t for t, _ in events]
    assert kinds.count("model.version_registered") == 3
    assert kinds.count("model.approval_changed") == 3  # approve 1, approve 2, reject 3
    assert kinds.count("model.alias_changed") == 7
    assert ("model.approval_changed", {"model": "churn", "version": 3, "from": PENDING, "to": REJECTED,
                                       "by": "carol", "reason": "drifts on new data"}) in events
    assert ("model.alias_changed", {"model": "churn", "alias": "staging", "version": None, "previous_version": 3,
                                    "by": "carol", "reason": "rejected: drifts on new data"}) in events
    registered = next(p for t, p in events if t == "model.version_registered")
    assert registered["package_sha256"] == sha1 and registered["run_id"] == r1

    down = ws.lineage.downstream(EntityRef("run", r1), depth=1)
    assert {(e.relation, e.dst) for e in down} >= {
        ("registered_as", EntityRef("model_version", v1.id)), ("registered_as", EntityRef("model_version", v3.id))}
    up = {(e.src, e.relation) for e in ws.lineage.upstream(v1.entity)}
    assert (EntityRef("run", r1), "registered_as") in up and (data.entity, "used_by") in up

    # the production model loads, verified, and predicts as the package it references
    loaded = load_model(ws, "churn@production")
    rows = churn(20, seed=5).drop(columns=["y"])
    np.testing.assert_array_equal(loaded.predict_proba(rows), load_model_package(pkgs["linear"]).predict_proba(rows))


def test_register_from_package_id_folder_and_training_result(ws: Workspace, pkgs: dict[str, Path]) -> None:
    run = record_run(ws, pkgs["xgb"])
    _, sha = read_manifest(pkgs["xgb"])
    by_id = register_model(ws, sha, "m")
    assert by_id.run_id == run and by_id.package_sha256 == sha  # the run found through lineage
    from_folder = register_model(ws, pkgs["linear"], "m", approval=APPROVED, by="eve")
    assert from_folder.run_id is None and from_folder.approval_status == APPROVED
    assert from_folder.approval_by == "eve" and from_folder.datasets == []
    assert load_model(ws, "m").flavor == "linear"  # the newest approved

    result = TrainingResult(run_id=run, metrics={}, model_sha256=sha, model_path=pkgs["xgb"], problem_type="binary")
    assert register_model(ws, result, "m").run_id == run
    kinds = [t for t, _ in _events(ws)]
    assert kinds == ["model.version_registered", "model.version_registered", "model.approval_changed",
                     "model.version_registered"]


def test_concurrent_registrations_get_distinct_versions(any_ws: Workspace, pkgs: dict[str, Path]) -> None:
    run = record_run(any_ws, pkgs["xgb"])
    got: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(2):
                got.append(register_model(any_ws, run, "race").version)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(got) == list(range(1, 9))


def test_unknown_references_list_what_exists(ws: Workspace, pkgs: dict[str, Path]) -> None:
    run = record_run(ws, pkgs["xgb"])
    register_model(ws, run, "churn")
    cases: list[tuple[str, type[Exception], str]] = [
        ("nope:1", NotFound, "no model named 'nope' (models: churn); register one with"),
        ("churn:9", NotFound, "model 'churn' has no version 9 (versions: 1); see `loopml models list churn`"),
        ("churn@production", NotFound, "model 'churn' has no 'production' alias (aliases set: none); set it with "
                                       "`loopml models alias churn:VERSION production`"),
        ("churn@prod", InvalidInput, "unknown alias 'prod'; the aliases are staging, production, archived"),
        ("churn:0", InvalidInput, "must be a positive number"),
        ("bad name!", InvalidInput, "model name 'bad name!' is not allowed"),
    ]
    for ref, cls, message in cases:
        with pytest.raises(cls) as exc:
            get_model_version(ws, ref)
        assert message in str(exc.value) and "\n" not in str(exc.value)
    set_alias(ws, "churn:1", "staging")
    with pytest.raises(NotFound, match=r"aliases set: staging -> 1\)"):
        get_model_version(ws, "churn@production")
    with pytest.raises(InvalidInput, match=r"say which version to approve: churn:VERSION or churn@ALIAS"):
        approve(ws, "churn")
    with pytest.raises(InvalidInput, match="needs a reason"):
        reject(ws, "churn:1", "  ")
    with pytest.raises(InvalidInput, match="approval 'Maybe' is not a status"):
        register_model(ws, run, "churn", approval="Maybe")
    assert parse_model_ref("churn:latest") == ("churn", 0, None)


def test_runs_without_a_package_are_refused(ws: Workspace) -> None:
    plain = record_run(ws, None)
    with pytest.raises(InvalidInput, match=rf"run {plain} \(.*\) has no model package: it has no artifact "
                                           r"model/manifest.json \(status FINISHED\); register a finished training run"):
        register_model(ws, plain, "churn")
    failed = record_run(ws, None, status="FAILED")
    with pytest.raises(InvalidInput, match="; it FAILED: the library raised: boom; register a finished"):
        register_model(ws, failed, "churn")
    with pytest.raises(NotFound, match="no run 'run-feedfacefeed'"):
        register_model(ws, "run-feedfacefeed", "churn")
    with pytest.raises(NotFound, match=r"no model package 0{64} in the artifact store"):
        register_model(ws, "0" * 64, "churn")
    assert list_models(ws) == []


def _tamper(ws: Workspace, sha: str) -> None:
    path = Path(ws.artifacts.local_path(sha, verify=False) or "")
    path.write_bytes(path.read_bytes() + b"evil")


def test_tampered_packages_are_refused(ws: Workspace, pkgs: dict[str, Path]) -> None:
    run = record_run(ws, pkgs["xgb"])
    manifest, sha = read_manifest(pkgs["xgb"])
    register_model(ws, run, "churn")
    load_model(ws, "churn:1")  # materialised into the model cache
    cache = ws.home / "cache" / "models" / sha

    # a changed cache copy is replaced by the verified stored one
    (cache / "model" / "model.ubj").write_bytes(b"junk")
    assert load_model(ws, "churn:1").sha256 == sha

    # a changed stored file: registering and (without a good cache) loading are refused
    _tamper(ws, manifest["files"]["model/model.ubj"])
    with pytest.raises(IntegrityError) as exc:
        register_model(ws, run, "churn")
    assert f"model/model.ubj of the model package of run {run} {sha[:12]} was modified or corrupted" in str(exc.value)
    assert "refusing it" in str(exc.value) and "\n" not in str(exc.value)
    import shutil

    shutil.rmtree(cache)
    with pytest.raises(IntegrityError, match=r"^churn:1 cannot be loaded: artifact .* was modified or corrupted"):
        load_model(ws, "churn:1")
    assert [v.version for v in list_versions(ws, "churn")] == [1]

    # a changed stored manifest
    other = record_run(ws, pkgs["linear"])
    _, lin_sha = read_manifest(pkgs["linear"])
    _tamper(ws, lin_sha)
    with pytest.raises(IntegrityError, match=r"the manifest of the model package of run .* was modified"):
        register_model(ws, other, "churn")
