"""Consumers: named checkpoints, commit only when told, resume after a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from loopml import Conflict, InvalidInput, NotFound, Workspace
from loopml.data.streams import Checkpoint, Consumer, create_stream, open_stream


def _ids(batch: object) -> list[int]:
    return [r.json()["i"] for r in batch]  # type: ignore[attr-defined]


def _reopen(ws: Workspace) -> Workspace:
    ws.close()
    return Workspace.open(ws.root)


def test_restarted_consumer_resumes_after_its_checkpoint(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(10)])
    with Consumer(stream_ws, "s", "app") as c:
        first = c.poll(limit=4)
        assert _ids(first) == [0, 1, 2, 3]
        c.commit()
    ws = _reopen(stream_ws)
    with Consumer(ws, "s", "app") as c:
        assert _ids(c.poll(limit=100)) == [4, 5, 6, 7, 8, 9]
        assert c.poll(limit=100).records == []
    ws.close()


def test_nothing_moves_without_a_commit(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(6)])
        with Consumer(None, s, "sink") as c:
            assert _ids(c.poll(limit=3)) == [0, 1, 2]
            assert _ids(c.poll(limit=3)) == [3, 4, 5]  # the in-memory position moves on
        with s.consumer("sink") as again:  # ... but a crash before commit re-delivers
            assert _ids(again.poll(limit=100)) == [0, 1, 2, 3, 4, 5]
            assert again.committed.positions == {}


def test_commit_an_earlier_batch_after_its_write(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(9)])
        with s.consumer("sink") as c:
            a = c.poll(limit=3)
            b = c.poll(limit=3)
            assert a.checkpoint != b.checkpoint
            c.commit(a.checkpoint)  # only a's output is durable yet
        with s.consumer("sink") as c:
            assert _ids(c.poll(limit=100)) == [3, 4, 5, 6, 7, 8]


def test_order_within_shards_and_each_record_once(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=3) as s:
        s.put_many([{"i": i, "k": f"k{i % 8}"} for i in range(240)], key_field="k")
        seen: dict[str, list[int]] = defaultdict(list)
        with s.consumer("g") as c:
            while batch := c.poll(limit=17):
                shards_in_batch = [r.shard for r in batch]
                # records come shard by shard, each shard's in sequence order
                for shard in set(shards_in_batch):
                    seqs = [r.sequence for r in batch if r.shard == shard]
                    assert seqs == sorted(seqs)
                for r in batch:
                    seen[r.json()["k"]].append(r.json()["i"])
                c.commit(batch.checkpoint)
        assert sum(map(len, seen.values())) == 240
        for k, ids in seen.items():
            assert ids == sorted(ids) and len(ids) == 30, k


def test_groups_are_independent(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=2) as s:
        s.put_many([{"i": i} for i in range(10)])
        with s.consumer("a") as a:
            assert len(a.poll(limit=100)) == 10
            a.commit()
        with s.consumer("b") as b:
            assert len(b.poll(limit=100)) == 10
        with s.consumer("a") as a:
            assert len(a.poll(limit=100)) == 0


def test_checkpoints_round_trip_and_never_go_back(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(10)])
        with s.consumer("sink") as c:
            early = c.poll(limit=2).checkpoint
            late = c.poll(limit=5).checkpoint
            # what a sink stores with its output: plain JSON
            stored = json.loads(json.dumps(late.to_dict()))
            assert Checkpoint.from_dict(stored) == late
            assert all(isinstance(v, str) for v in stored["positions"].values())
            c.commit(late)
            assert c.commit(early) == late  # an older checkpoint leaves the newer one
        # a restarted sink whose stream checkpoint lagged its output catches up in one call
        with s.consumer("sink2") as c:
            c.commit(Checkpoint.from_dict(stored))
            assert _ids(c.poll(limit=100)) == [7, 8, 9]
        with s.consumer("sink2") as c:
            assert _ids(c.poll(limit=100)) == [7, 8, 9]
            with pytest.raises(InvalidInput, match="checkpoint is of stream 'other'"):
                c.commit(Checkpoint("other", {0: 1}))
            c.commit(Checkpoint("s", {0: 1}))  # no creation time: no check, and 1 < 7: no-op
            with pytest.raises(InvalidInput, match="names shard 3"):
                c.commit(Checkpoint("s", {3: 1}))
        with pytest.raises(InvalidInput, match="not a stream checkpoint"):
            Checkpoint.from_dict({"positions": {}})


def test_a_checkpoint_of_a_re_created_stream_is_refused(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(3)])
        with s.consumer("sink") as c:
            stored = c.poll().checkpoint.to_dict()
        assert stored["created_ms"] == s.describe().created_ms
        s.delete()
        time.sleep(0.01)
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(5)])
        with s.consumer("sink") as c:
            with pytest.raises(Conflict, match="deleted and re-created"):
                c.commit(Checkpoint.from_dict(stored))
            assert len(c.poll()) == 5


def test_rewind_and_reset(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(5)])
        with s.consumer("g") as c:
            c.poll(limit=2)
            c.commit()
            assert _ids(c.poll(limit=100)) == [2, 3, 4]
            c.rewind()
            assert _ids(c.poll(limit=100)) == [2, 3, 4]
            c.reset()
            assert c.committed.positions == {}
            assert _ids(c.poll(limit=100)) == [0, 1, 2, 3, 4]


def test_start_latest_skips_what_is_there(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=2) as s:
        s.put_many([{"i": i} for i in range(4)])
        with s.consumer("tail", start="latest") as c:
            assert c.poll().records == []
            s.put_many([{"i": 10}, {"i": 11}], partition_key="k")
            assert _ids(c.poll()) == [10, 11]
            c.rewind()  # back to where it started, not to a new "latest"
            assert _ids(c.poll()) == [10, 11]
        with pytest.raises(InvalidInput, match="start must be 'trim-horizon' or 'latest'"):
            s.consumer("x", start="at-sequence")


def test_poll_waits_for_records(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s, s.consumer("g") as c:
        t0 = time.monotonic()
        assert c.poll(wait=0.2).records == []
        assert 0.2 <= time.monotonic() - t0 < 2
        def put_later() -> None:
            with open_stream(stream_ws, "s") as producer:
                producer.put({"i": 1})

        timer = threading.Timer(0.2, put_later)
        timer.start()
        t0 = time.monotonic()
        assert _ids(c.poll(wait=10)) == [1]
        assert time.monotonic() - t0 < 5
        timer.join()


def test_shard_subset_and_arrow(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=2) as s:
        res = s.put_many([{"i": i} for i in range(20)], [f"k{i}" for i in range(20)])
        on_1 = [i for i, r in enumerate(res) if r.shard == 1]
        with s.consumer("w1") as all_, Consumer(None, s, "w1", shards=[1]) as c:
            assert all_.shards == [0, 1]
            batch = c.poll(limit=100)
            assert _ids(batch) == on_1
            table = batch.to_arrow()
            assert table.column_names == ["shard", "sequence", "arrival", "partition_key", "data"]
            assert table.schema.field("arrival").type == pa.timestamp("ms", tz="UTC")
            assert table.num_rows == len(on_1) and set(table["shard"].to_pylist()) == {1}
            assert table["sequence"].to_pylist() == [r.sequence for r in batch]
        with pytest.raises(InvalidInput, match="has no shard 2"):
            Consumer(None, s, "w", shards=[2])


def test_consumer_of_missing_or_deleted_stream(stream_ws: Workspace) -> None:
    with pytest.raises(NotFound, match="loopml stream create nope"):
        Consumer(stream_ws, "nope", "g")
    s = create_stream(stream_ws, "s")
    c = s.consumer("g")
    s.delete()
    with pytest.raises(NotFound):
        c.poll()
    c.close()
    s.close()


CONSUMER = """
import sys
from loopml import Workspace
from loopml.data.streams import Consumer

with Workspace.open(sys.argv[1]) as ws, Consumer(ws, "s", "app") as c:
    batch = c.poll(limit=int(sys.argv[2]))
    c.commit(batch.checkpoint)
    print(",".join(str(r.json()["i"]) for r in batch))
"""


def test_consumers_resume_across_processes(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=2) as s:
        s.put_many([{"i": i} for i in range(8)], partition_key="one-key")
    env = {**os.environ, "LOOPML_STREAM_URL": stream_ws.settings.stream_url}
    out = subprocess.run(
        [sys.executable, "-c", CONSUMER, str(stream_ws.root), "5"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout
    assert out.strip() == "0,1,2,3,4"
    ws = _reopen(stream_ws)
    with Consumer(ws, "s", "app") as c:
        assert _ids(c.poll(limit=100)) == [5, 6, 7]
    ws.close()


def test_checkpoints_live_in_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # two workspaces on one stream log share streams and checkpoints
    ws = Workspace.init(tmp_path / "a")
    url = ws.settings.stream_url
    with create_stream(ws, "s") as s:
        s.put_many([{"i": i} for i in range(3)])
        with s.consumer("g") as c:
            c.poll(limit=2)
            c.commit()
    ws.close()
    monkeypatch.setenv("LOOPML_STREAM_URL", url)
    other = Workspace.init(tmp_path / "b")
    assert other.settings.stream_url == url
    with Consumer(other, "s", "g") as c:
        assert _ids(c.poll()) == [2]
    other.close()
