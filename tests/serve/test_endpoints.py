"""The endpoint control plane on SQLite and PostgreSQL: deploy, weights, settings, keys, history, refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from loopml import Conflict, InvalidInput, NotFound, Workspace
from loopml.registry import PENDING, register_model, reject, set_alias
from loopml.serve import _auth
from loopml.serve import endpoints as eps
from loopml.serve.endpoints import VariantSpec
from loopml.serve.models import EndpointApiKey
from loopml.store.lineage import EntityRef
from loopml.train.package import Model
from tests.serve._fixtures import register_all


def _events(ws: Workspace) -> list[dict[str, object]]:
    return [e.payload for e in ws.events.list(type=eps.ENDPOINT_UPDATED)]


def test_deploy_resolves_models_and_records_everything(any_ws: Workspace, trained: Callable[..., Model]) -> None:
    ws = any_ws
    register_all(ws, trained)
    set_alias(ws, "churn:2", "production")
    info = eps.deploy(ws, "churn-ep", model="churn@production", by="dana", reason="first release")
    assert (info.name, info.version, info.status, info.created_by) == ("churn-ep", 1, "InService", "dana")
    (v,) = info.config.variants
    mv = ws_version(ws, "churn:2")
    assert (v.name, v.model, v.weight, v.model_version_id) == ("AllTraffic", "churn:2", 1.0, mv.id)
    assert v.package_sha256 == mv.package_sha256
    assert info.config.multi_model is None and info.config.limits.max_rows == 10_000
    assert eps.get_endpoint(ws, "churn-ep") == info
    assert [e.name for e in eps.list_endpoints(ws)] == ["churn-ep"]
    assert eps.endpoint_versions(ws) == {"churn-ep": (info.id, 1)}
    # lineage model version -> endpoint, the event, the history
    assert ws.lineage.targets(mv.entity, eps.DEPLOYED_TO, eps.ENDPOINT_KIND) == [EntityRef("endpoint", info.id)]
    (ev,) = _events(ws)
    assert ev["endpoint"] == "churn-ep" and ev["action"] == "create" and ev["version"] == 1
    assert ev["models"] == ["churn:2"] and ev["by"] == "dana"
    (h,) = eps.endpoint_history(ws, "churn-ep")
    assert (h.action, h.version, h.by, h.reason, h.old_config) == ("create", 1, "dana", "first release", None)
    assert h.new_config == info.config.to_dict()


def ws_version(ws: Workspace, ref: str):  # type: ignore[no-untyped-def]
    from loopml.registry import get_model_version

    return get_model_version(ws, ref)


def test_variants_weights_and_history(any_ws: Workspace, trained: Callable[..., Model]) -> None:
    ws = any_ws
    register_all(ws, trained)
    info = eps.deploy(ws, "ab", variants=[VariantSpec("a", "churn:1", 0.8), VariantSpec("b", "churn:2", 0.2)],
                      capture_percentage=10, micro_batching=True, max_wait_ms=1.5, api_key_required=True)
    c = info.config
    assert [(v.name, v.model, v.weight) for v in c.variants] == [("a", "churn:1", 0.8), ("b", "churn:2", 0.2)]
    assert c.capture.percentage == 10 and c.micro_batching.enabled and c.micro_batching.max_wait_ms == 1.5
    assert c.auth.required and c.variant_names == ["a", "b"]

    w = eps.update_weights(ws, "ab", {"b": 0.0}, reason="pause b")
    assert w.version == 2 and [v.weight for v in w.config.variants] == [0.8, 0.0]
    w = eps.update_weights(ws, "ab", {"a": 1, "b": 3})
    assert w.version == 3 and [v.weight for v in w.config.variants] == [1.0, 3.0]
    for bad, match in (({"c": 1.0}, "no variant 'c'; its variants are a, b"), ({"a": -1}, "zero or more"),
                       ({"a": 0, "b": 0}, "every variant would have weight 0"), ({}, "at least one"),
                       ({"a": float("nan")}, "finite")):
        with pytest.raises(InvalidInput, match=match):
            eps.update_weights(ws, "ab", bad)
    hist = eps.endpoint_history(ws, "ab")
    assert [(h.version, h.action) for h in hist] == [(1, "create"), (2, "update_weights"), (3, "update_weights")]
    assert hist[1].reason == "pause b" and hist[1].details == {"weights": {"a": 0.8, "b": 0.0}}
    assert hist[1].old_config is not None and hist[1].old_config["variants"][1]["weight"] == 0.2
    assert hist[1].new_config is not None and hist[1].new_config["variants"][1]["weight"] == 0.0
    assert [e["action"] for e in _events(ws)] == ["create", "update_weights", "update_weights"]

    # settings change; models and weights stay
    u = eps.update_endpoint(ws, "ab", capture_percentage=0, micro_batching=False, max_rows=5)
    assert u.version == 4 and u.config.capture.percentage == 0 and not u.config.micro_batching.enabled
    assert u.config.limits.max_rows == 5 and u.config.variants == w.config.variants
    assert eps.update_endpoint(ws, "ab", max_rows=5).version == 4  # no change, no new version
    with pytest.raises(InvalidInput, match="not a multi-model endpoint"):
        eps.update_endpoint(ws, "ab", max_loaded=3)
    # a stale writer is refused
    with pytest.raises(Conflict, match="at version 4, not 2"):
        eps.apply_config(ws, "ab", u.config, expected_version=2)

    # redeploy replaces the config
    r = eps.deploy(ws, "ab", model="churn:1")
    assert r.version == 5 and r.id == info.id and r.config.variant_names == ["AllTraffic"]


def test_deploy_refusals(any_ws: Workspace, trained: Callable[..., Model]) -> None:
    ws = any_ws
    models = register_all(ws, trained)
    register_model(ws, models["churn:1"].path, "pending")  # PendingManualApproval
    v = register_model(ws, models["churn:1"].path, "bad")
    reject(ws, v.ref, "leaks the target")
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"model": "nope:1"}, NotFound, "no model named 'nope'"),
        ({"model": "churn:9"}, NotFound, "has no version 9"),
        ({"model": "bad:1"}, InvalidInput, "bad:1 is Rejected \\(leaks the target\\)"),
        ({"model": "pending:1", "require_approved": True}, InvalidInput, "only Approved versions"),
        ({"variants": [VariantSpec("a", "churn:1", 0)]}, InvalidInput, "more than zero"),
        ({"variants": [VariantSpec("a", "churn:1", -2)]}, InvalidInput, "more than zero"),
        ({"variants": [VariantSpec("a", "churn:1", float("inf"))]}, InvalidInput, "finite"),
        ({"variants": [VariantSpec("a", "churn:1", 1), VariantSpec("a", "churn:2", 1)]}, InvalidInput,
         "two variants are named 'a'"),
        ({"variants": [VariantSpec("a b", "churn:1", 1)]}, InvalidInput, "variant name 'a b'"),
        ({"model": "churn:1", "multi_model": {"x": "churn:2"}}, InvalidInput, "not both"),
        ({}, InvalidInput, "serves no model"),
        ({"model": "churn:1", "capture_percentage": 150}, InvalidInput, "capture percentage must be"),
        ({"model": "churn:1", "max_rows": 0}, InvalidInput, "max_rows must be"),
        ({"model": "churn:1", "max_wait_ms": -1}, InvalidInput, "max_wait_ms"),
        ({"multi_model": {"x/y": "churn:1"}}, InvalidInput, "target model name 'x/y'"),
        ({"multi_model": {"x": "churn:1"}, "max_loaded": 0}, InvalidInput, "max_loaded"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            eps.deploy(ws, "ep", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="endpoint name 'no/slash'"):
        eps.deploy(ws, "no/slash", model="churn:1")
    assert eps.list_endpoints(ws) == [] and _events(ws) == []
    # a pending version is fine without --require-approved; an approved one with it
    assert eps.deploy(ws, "ep", model="pending:1").config.variants[0].model == "pending:1"
    assert eps.deploy(ws, "ep", model="churn:1", require_approved=True).version == 2
    assert ws_version(ws, "pending:1").approval_status == PENDING


def test_delete_keeps_history_and_versions_continue(any_ws: Workspace, trained: Callable[..., Model]) -> None:
    ws = any_ws
    register_all(ws, trained)
    first = eps.deploy(ws, "ep", model="churn:1")
    eps.create_api_key(ws, "ep")
    eps.delete_endpoint(ws, "ep", reason="retired")
    with pytest.raises(NotFound, match="no endpoint named 'ep' \\(endpoints: none yet\\)"):
        eps.get_endpoint(ws, "ep")
    with pytest.raises(NotFound):
        eps.delete_endpoint(ws, "ep")
    with ws.meta.session() as s:
        assert s.scalars(select(EndpointApiKey)).all() == []
    again = eps.deploy(ws, "ep", model="churn:2")
    assert again.id != first.id and again.version == 4  # create, key, delete were 1-3
    hist = eps.endpoint_history(ws, "ep")
    assert [(h.version, h.action) for h in hist] == [(1, "create"), (2, "api_key_created"), (3, "delete"),
                                                      (4, "create")]
    assert hist[2].reason == "retired" and hist[2].new_config is None
    with pytest.raises(NotFound, match="no endpoint named 'other'"):
        eps.endpoint_history(ws, "other")


def test_api_keys_are_stored_hashed(any_ws: Workspace, trained: Callable[..., Model]) -> None:
    ws = any_ws
    register_all(ws, trained, ["churn:1"])
    eps.deploy(ws, "ep", model="churn:1", api_key_required=True)
    k1 = eps.create_api_key(ws, "ep", description="batch job", by="ops")
    k2 = eps.create_api_key(ws, "ep")
    assert k1.key.startswith(f"lmk.{k1.id}.") and k1.key != k2.key
    info = eps.get_endpoint(ws, "ep")
    assert info.version == 3 and sorted(info.api_keys) == sorted([k1.id, k2.id])
    with ws.meta.session() as s:
        rows = s.scalars(select(EndpointApiKey)).all()
        stored = " ".join(f"{r.id} {r.salt} {r.key_hash} {r.description}" for r in rows)
    assert k1.key.split(".")[2] not in stored and k2.key.split(".")[2] not in stored
    keys = eps.active_keys(ws, info.id)
    assert keys.verify(k1.key) and keys.verify(k2.key)
    assert not keys.verify(k1.key[:-1] + ("A" if k1.key[-1] != "A" else "B"))
    assert not keys.verify("lmk.nope.secret") and not keys.verify("garbage")
    listed = {k.id: k for k in eps.list_api_keys(ws, "ep")}
    assert set(listed) == {k1.id, k2.id} and listed[k1.id].description == "batch job"
    assert listed[k1.id].created_by == "ops" and listed[k1.id].revoked_at is None
    eps.revoke_api_key(ws, "ep", k1.id)
    assert not eps.active_keys(ws, info.id).verify(k1.key) and eps.active_keys(ws, info.id).verify(k2.key)
    assert eps.get_endpoint(ws, "ep").version == 4
    with pytest.raises(NotFound, match="has no API key 'nope'"):
        eps.revoke_api_key(ws, "ep", "nope")
    with pytest.raises(NotFound):
        eps.create_api_key(ws, "missing")


def test_auth_check() -> None:
    key_id, key, salt, digest = _auth.new_key()
    keys = _auth.KeySet({key_id: (salt, digest)})
    _auth.check("ep", keys, f"Bearer {key}", None)
    _auth.check("ep", keys, "AWS4-HMAC-SHA256 Credential=x", key)  # boto3: SigV4 + the key header
    with pytest.raises(Exception, match="requires an API key") as e:
        _auth.check("ep", keys, "AWS4-HMAC-SHA256 Credential=x", None)
    assert e.value.http_status == 401  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="not valid") as e:
        _auth.check("ep", keys, "Bearer lmk.x.y", None)
    assert e.value.http_status == 403  # type: ignore[attr-defined]


def test_config_round_trip_and_parsing() -> None:
    cfg = eps.EndpointConfig(
        variants=(eps.Variant("a", "m:1", "a" * 64, 2.0, "mv-1"),),
        capture=eps.CaptureConfig(5.0), limits=eps.LimitsConfig(7, 1000), extra={"strategy": {"kind": "canary"}})
    d = cfg.to_dict()
    assert d["strategy"] == {"kind": "canary"} and eps.EndpointConfig.from_dict(d) == cfg
    mm = eps.EndpointConfig(multi_model=eps.MultiModelConfig({"x": eps.ModelTarget("m:1", "b" * 64)}, 3, 1.5))
    assert eps.EndpointConfig.from_dict(mm.to_dict()) == mm and mm.variant_names == ["AllTraffic"]
    assert mm.model_refs() == ["m:1"] and cfg.model_refs() == ["m:1"]
    with pytest.raises(InvalidInput, match="no variant 'z'; the variants are a"):
        cfg.variant("z")
    assert eps.parse_variant("b=churn@production:0.25") == VariantSpec("b", "churn@production", 0.25)
    assert eps.parse_variant("c=churn:2.5") == VariantSpec("c", "churn", 2.5)
    for bad in ("a", "a=churn", "=churn:1:1", "a=churn:1:x"):
        with pytest.raises(InvalidInput, match="NAME=MODEL:VERSION:WEIGHT"):
            eps.parse_variant(bad)
    assert eps.parse_weights(["a=1", "b=0.5"]) == {"a": 1.0, "b": 0.5}
    with pytest.raises(InvalidInput, match="VARIANT=WEIGHT"):
        eps.parse_weights(["a"])
    picker = eps.VariantPicker(eps.EndpointConfig(variants=(
        eps.Variant("a", "m:1", "0" * 64, 1.0), eps.Variant("z", "m:1", "0" * 64, 0.0),
        eps.Variant("b", "m:1", "0" * 64, 1.0))))
    assert [picker.pick(r) for r in (0.0, 0.49, 0.5, 0.99)] == ["a", "a", "b", "b"]
    assert picker.pick(0.1, "z") == "z"
    with pytest.raises(InvalidInput, match="its variants are a, z, b"):
        picker.pick(0.1, "q")
