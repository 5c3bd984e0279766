"""One suite, every backend: the SQLite log and Redis Streams behave the same."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from loopml import Conflict, InvalidInput, NotFound, Workspace
from loopml.data.streams import (
    ITERATOR_TYPES,
    MAX_RECORD_BYTES,
    RecordTooLarge,
    Stream,
    StreamBackend,
    create_stream,
    delete_stream,
    list_streams,
    open_stream,
    parse_retention,
    shard_for_key,
)
from loopml.data.streams.base import format_retention


def _all(s: Stream) -> list:
    out = []
    for shard in range(s.shards):
        out += s.get(shard, limit=100_000).records
    return out


def test_create_describe_list_delete(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "clicks", shards=3, retention="7d") as s:
        d = s.describe()
        assert (d.name, d.shards, d.retention_s, d.records) == ("clicks", 3, 7 * 86400, 0)
        assert [i.records for i in d.shard_info or []] == [0, 0, 0]
        assert abs(d.created_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    create_stream(stream_ws, "alerts").close()
    assert [x.name for x in list_streams(stream_ws)] == ["alerts", "clicks"]
    assert list_streams(stream_ws, stats=True)[1].records == 0
    delete_stream(stream_ws, "clicks")
    assert [x.name for x in list_streams(stream_ws)] == ["alerts"]
    with pytest.raises(NotFound, match="loopml stream create clicks"):
        open_stream(stream_ws, "clicks")
    with pytest.raises(NotFound, match="no stream named 'clicks'"):
        delete_stream(stream_ws, "clicks")
    events = [e.type for e in stream_ws.events.list()]
    assert events == ["stream.created", "stream.created", "stream.deleted"]


def test_bad_definitions_are_refused(stream_ws: Workspace) -> None:
    create_stream(stream_ws, "s").close()
    with pytest.raises(Conflict, match="already exists"):
        create_stream(stream_ws, "s", shards=2)
    with pytest.raises(InvalidInput, match="stream name 'a b' is not allowed"):
        create_stream(stream_ws, "a b")
    with pytest.raises(InvalidInput, match="shards must be a whole number from 1 to 1024, not 0"):
        create_stream(stream_ws, "t", shards=0)
    with pytest.raises(InvalidInput, match="retention 'soon' is not a duration"):
        create_stream(stream_ws, "t", retention="soon")
    assert [x.name for x in list_streams(stream_ws)] == ["s"]


def test_retention_parsing() -> None:
    assert parse_retention("24h") == parse_retention("1d") == parse_retention(86400) == 86400
    assert parse_retention("1d 12h") == parse_retention(timedelta(hours=36)) == 129600
    assert parse_retention("90m") == 5400 and parse_retention("45") == 45
    for bad in ("", "0", "h", "1x", "-1h", "1h-", True):
        with pytest.raises(InvalidInput):
            parse_retention(bad)  # type: ignore[arg-type]
    assert [format_retention(x) for x in (86400, 5400, 45, 1209600)] == ["1d", "90m", "45s", "2w"]


def test_shard_is_a_stable_hash_of_the_key() -> None:
    # md5(b"a") starts 0cc175b9c0f1b6a8: the same on every machine and Python
    assert shard_for_key("a", 1000) == 0x0CC175B9C0F1B6A8 % 1000 == 800
    digest = hashlib.md5(b"sensor-7").digest()[:8]
    assert shard_for_key("sensor-7", 16) == int.from_bytes(digest, "big") % 16
    # sequential keys spread over the shards
    counts = Counter(shard_for_key(f"s-{i}", 4) for i in range(400))
    assert sorted(counts) == [0, 1, 2, 3] and min(counts.values()) > 70


def test_put_get_keep_order_per_shard(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=3) as s:
        keys = [f"k{i % 7}" for i in range(300)]
        res = s.put_many([{"i": i, "k": k} for i, k in enumerate(keys)], keys)
        assert [r.shard for r in res] == [shard_for_key(k, 3) for k in keys]
        one = s.put({"i": 300}, partition_key="k0")
        assert one.shard == shard_for_key("k0", 3)
        seen: dict[str, list[int]] = defaultdict(list)
        for shard in range(3):
            got = s.get(shard, limit=1000).records
            seqs = [r.sequence for r in got]
            assert seqs == sorted(set(seqs)), "sequences strictly increase within a shard"
            arrivals = [r.arrival_ms for r in got]
            assert arrivals == sorted(arrivals)
            for r in got:
                assert r.shard == shard == shard_for_key(r.partition_key or "", 3)
                seen[r.partition_key or ""].append(r.json()["i"])
        assert sum(map(len, seen.values())) == 301
        for ids in seen.values():
            assert ids == sorted(ids), "records of one key keep their put order"
        by_seq = {(r.shard, r.sequence) for r in [*res, one]}
        assert len(by_seq) == 301
        d = s.describe()
        assert d.records == 301 and sum(i.records for i in d.shard_info or []) == 301


def test_records_without_a_key_spread_over_shards(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=4) as s:
        res = s.put_many([{"i": i} for i in range(200)])
        assert {r.shard for r in res} == {0, 1, 2, 3}
        assert all(r.partition_key is None for r in _all(s))


def test_raw_bytes_and_json_round_trip(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put(b"\x00\xffraw", partition_key="bin")
        s.put({"when": datetime(2026, 1, 2, tzinfo=timezone.utc), "x": [1, 2.5, None]})
        a, b = s.get(0).records
        assert a.data == b"\x00\xffraw" and a.partition_key == "bin"
        assert a.to_dict()["data_base64"] == "AP9yYXc="
        with pytest.raises(InvalidInput, match="is not JSON"):
            a.json()
        assert b.json() == {"when": "2026-01-02T00:00:00+00:00", "x": [1, 2.5, None]}
        assert b.to_dict()["data"]["x"] == [1, 2.5, None]
        assert isinstance(b.to_dict()["sequence"], str)
        assert abs(b.arrival - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_iterator_types(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        assert s.get(0, "latest").records == []
        first = s.put_many([{"i": i} for i in range(5)])
        seqs = [r.sequence for r in first]
        assert [r.json()["i"] for r in s.get(0, "trim-horizon")] == [0, 1, 2, 3, 4]
        assert [r.json()["i"] for r in s.get(0, "TRIM_HORIZON", limit=2)] == [0, 1]
        assert [r.sequence for r in s.get(0, "at-sequence", sequence=seqs[2])] == seqs[2:]
        assert [r.sequence for r in s.get(0, "after-sequence", sequence=str(seqs[2]))] == seqs[3:]
        latest = s.position(0, "latest")
        assert s.get(0, "latest").records == []
        time.sleep(0.02)
        mark = datetime.now(timezone.utc)
        time.sleep(0.02)
        later = s.put_many([{"i": 5}, {"i": 6}])
        assert [r.json()["i"] for r in s.get(0, "at-sequence", sequence=latest)] == [5, 6]
        assert [r.json()["i"] for r in s.get(0, "at-timestamp", timestamp=mark)] == [5, 6]
        assert [r.json()["i"] for r in s.get(0, "at-timestamp", timestamp=mark.isoformat())] == [5, 6]
        naive = mark.replace(tzinfo=None)
        assert [r.json()["i"] for r in s.get(0, "at-timestamp", timestamp=naive)] == [5, 6]
        assert len(s.get(0, "at-timestamp", timestamp=0.0)) == 7
        assert s.get(0, "at-timestamp", timestamp=time.time() + 3600).records == []
        assert later[0].sequence > seqs[-1]


def test_paging_with_next_sequence(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        s.put_many([{"i": i} for i in range(25)])
        got, page = [], s.get(0, limit=10)
        while page.records:
            got += [r.json()["i"] for r in page]
            page = s.get(0, "at-sequence", sequence=page.next_sequence, limit=10)
        assert got == list(range(25))
        assert s.get(0, "at-sequence", sequence=page.next_sequence).records == []


BAD_READS: list[tuple[dict, str]] = [
    ({"iterator_type": "oldest"}, "unknown iterator type 'oldest'; use one of " + ", ".join(ITERATOR_TYPES)),
    ({"iterator_type": "at-sequence"}, "needs a sequence number"),
    ({"iterator_type": "after-sequence", "sequence": "x1"}, "is not a whole number"),
    ({"iterator_type": "at-sequence", "sequence": -1}, "must not be negative"),
    ({"iterator_type": "at-timestamp"}, "needs a timestamp"),
    ({"iterator_type": "at-timestamp", "timestamp": "yesterday"}, "not an ISO 8601"),
    ({"iterator_type": "latest", "sequence": 3}, "goes with at-sequence or after-sequence"),
    ({"iterator_type": "trim-horizon", "timestamp": 3.0}, "goes with at-timestamp"),
    ({"shard": 2}, "has no shard 2; its shards are 0 to 1"),
    ({"shard": -1}, "has no shard -1"),
    ({"iterator_type": "latest", "shard": 2}, "has no shard 2"),
    ({"iterator_type": "at-timestamp", "timestamp": 1.0, "shard": 2}, "has no shard 2"),
    ({"limit": 0}, "limit must be a whole number from 1 to 100000"),
]


def test_bad_reads_say_what_is_valid(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=2) as s:
        s.put({"a": 1})
        for kwargs, message in BAD_READS:
            with pytest.raises(InvalidInput) as exc:
                s.get(**kwargs)
            assert message in str(exc.value), kwargs


def test_oversize_record_names_its_index_and_writes_nothing(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        limit = MAX_RECORD_BYTES
        with pytest.raises(RecordTooLarge, match=r"record 2 is 1,048,577 bytes, over the limit of 1,048,576"):
            s.put_many([{"a": 1}, b"ok", b"x" * (limit + 1)])
        assert RecordTooLarge.http_status == 413 and issubclass(RecordTooLarge, InvalidInput)
        assert s.describe().records == 0
        s.put(b"y" * limit)  # exactly at the limit is fine
        assert len(s.get(0).records[0].data) == limit
        small = Stream(s.backend, "s", max_record_bytes=10)
        with pytest.raises(RecordTooLarge, match="record 0 is 13 bytes"):
            small.put({"ab": "cdef"})


BAD_PUTS: list[tuple[list, dict, str]] = [
    ([{"a": 1}, {"b": object()}], {}, "record 1 is not JSON-serialisable"),
    ([{"a": 1}, "text"], {}, "record 1 is a str; a record must be a dict"),
    ([{"a": 1}, {"a": 2}], {"partition_keys": ["x", 3]}, "partition key of record 1 must be a string"),
    ([{"a": 1}, {"a": 2}], {"partition_keys": ["x"]}, "got 2 records but 1 partition keys"),
    ([{"a": 1}, {"a": 2}], {"partition_keys": "xy"}, "partition_keys must be a list"),
    ([{"a": 1}, {"a": 2}], {"partition_key": ""}, "must have 1 to 256 characters"),
    ([{"a": 1}], {"partition_key": "k" * 257}, "must have 1 to 256 characters, not 257"),
    ([{"id": 1}, {"x": 2}], {"key_field": "id"}, "record 1 has no field 'id'"),
    ([{"a": 1}], {"partition_key": "k", "key_field": "a"}, "give only one of"),
]


def test_bad_records_write_nothing(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s") as s:
        for records, kwargs, message in BAD_PUTS:
            with pytest.raises(InvalidInput) as exc:
                s.put_many(records, **kwargs)
            assert message in str(exc.value), kwargs
        with pytest.raises(InvalidInput, match="takes a list of records"):
            s.put_many({"a": 1})  # type: ignore[arg-type]
        assert s.describe().records == 0


def test_put_to_a_missing_stream_says_how_to_create_it(
    stream_ws: Workspace, backend: StreamBackend
) -> None:
    with pytest.raises(NotFound, match=r"no stream named 'nope'.*`loopml stream create nope`"):
        Stream(backend, "nope").put({"a": 1})
    with pytest.raises(NotFound, match="no stream named 'nope'"):
        Stream(backend, "nope").get(0)


def test_deleted_stream_disappears_for_open_handles(stream_ws: Workspace) -> None:
    s = create_stream(stream_ws, "s")
    s.put({"a": 1})
    other = open_stream(stream_ws, "s")
    assert len(other.get(0)) == 1
    s.delete()
    with pytest.raises(NotFound):
        other.put({"a": 2})
    with pytest.raises(NotFound):
        other.get(0)
    create_stream(stream_ws, "s", shards=2).close()
    assert other.get(0).records == [] and other.describe().shards == 2
    res = other.put({"a": 3}, partition_key="k")
    assert res.shard == shard_for_key("k", 2)
    s.close()
    other.close()


def test_retention_trims_old_records_and_sequences_go_on(
    stream_ws: Workspace, backend: StreamBackend
) -> None:
    with create_stream(stream_ws, "s", shards=2, retention="1h") as s:
        old = s.put_many([{"i": i} for i in range(10)], [f"k{i}" for i in range(10)])
        now_ms = int(time.time() * 1000)
        assert backend.trim("s", now_ms=now_ms) == 0
        assert backend.trim("s", now_ms=now_ms + 2 * 3600 * 1000) == 10
        assert s.describe().records == 0
        assert s.get(0).records == [] and s.get(1).records == []
        new = s.put_many([{"i": i} for i in range(10)], [f"k{i}" for i in range(10)])
        last = {r.shard: r.sequence for r in old}
        for r in new:
            assert r.sequence > last[r.shard], "a trimmed shard never reuses sequence numbers"
        assert len(_all(s)) == 10


def test_checkpoints_never_move_back(stream_ws: Workspace, backend: StreamBackend) -> None:
    with create_stream(stream_ws, "s", shards=2) as s:
        res = s.put_many([{"i": i} for i in range(4)], partition_key="k")
        shard = res[0].shard
        assert backend.get_checkpoint("g", "s", shard) is None
        backend.checkpoint("g", "s", shard, res[2].sequence)
        backend.checkpoint("g", "s", shard, res[1].sequence)
        assert backend.get_checkpoint("g", "s", shard) == res[2].sequence
        assert backend.get_checkpoint("other", "s", shard) is None
        backend.delete_checkpoints("g", "s")
        assert backend.get_checkpoint("g", "s", shard) is None
        with pytest.raises(InvalidInput, match="consumer group 'a:b' is not allowed"):
            backend.checkpoint("a:b", "s", shard, 1)
        with pytest.raises(InvalidInput, match="has no shard 5"):
            backend.checkpoint("g", "s", 5, 1)
        backend.checkpoint("g", "s", shard, res[3].sequence)
        s.delete()
        create_stream(stream_ws, "s", shards=2).close()
        assert backend.get_checkpoint("g", "s", shard) is None, "a new stream has no old checkpoints"


def test_concurrent_producers_get_distinct_sequences(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "s", shards=2) as s:
        results: list = []
        lock = threading.Lock()

        def produce(t: int) -> None:
            with open_stream(stream_ws, "s") as mine:
                for b in range(20):
                    res = mine.put_many([{"t": t, "b": b, "j": j} for j in range(10)], partition_key=f"p{t}")
                    with lock:
                        results.extend(res)

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 800 == len({(r.shard, r.sequence) for r in results})
        got = _all(s)
        assert len(got) == 800
        per_key: dict[str | None, list[tuple[int, int]]] = defaultdict(list)
        for r in got:
            d = r.json()
            per_key[r.partition_key].append((d["b"], d["j"]))
        assert all(v == sorted(v) for v in per_key.values())
