from __future__ import annotations

import pytest

from loopml import InvalidInput, Workspace
from loopml.store import EntityRef


def test_walk_up_and_down_with_depth(any_ws: Workspace) -> None:
    lin = any_ws.lineage
    src, ds, run, model, ep = (EntityRef(k, i) for k, i in
                               [("source", "s3://x"), ("dataset_version", "d1"), ("run", "r1"),
                                ("model_version", "m1"), ("endpoint", "e1")])
    lin.add(src, ds, "ingested_from")
    lin.add(ds, run, "trained_on")
    lin.add(run, model, "produced")
    lin.add(model, ep, "deployed_to")
    lin.add(ds, run, "trained_on")  # idempotent
    down = lin.downstream(ds)
    assert [(e.dst, e.depth) for e in down] == [(run, 1), (model, 2), (ep, 3)]
    assert [e.src for e in lin.upstream(ep)] == [model, run, ds, src]
    assert [e.src for e in lin.upstream(ep, depth=2)] == [model, run]
    assert lin.upstream(src) == []


def test_cycles_terminate(ws: Workspace) -> None:
    a, b = EntityRef("x", "a"), EntityRef("x", "b")
    ws.lineage.add(a, b, "r")
    ws.lineage.add(b, a, "r")
    assert len(ws.lineage.downstream(a)) == 2


def test_entity_ref_parse() -> None:
    assert EntityRef.parse("run:abc") == EntityRef("run", "abc")
    assert str(EntityRef("run", "abc")) == "run:abc"
    with pytest.raises(InvalidInput):
        EntityRef.parse("nocolon")


def test_events_are_ordered_and_filterable(any_ws: Workspace) -> None:
    ev = any_ws.events
    ev.emit("a.happened", EntityRef("x", "1"), {"n": 1})
    ev.emit("b.happened", EntityRef("x", "2"))
    ev.emit("a.happened", EntityRef("x", "3"), {"n": 3})
    all_events = ev.list()
    assert [e.type for e in all_events] == ["a.happened", "b.happened", "a.happened"]
    only_a = ev.list(type="a.happened")
    assert [e.payload["n"] for e in only_a] == [1, 3]
    assert [e.entity.id for e in ev.list(after=all_events[0].id)] == ["2", "3"]
