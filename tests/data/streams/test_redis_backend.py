"""What only the Redis backend does: key layout, prefixes, script reloads, connection errors."""

from __future__ import annotations

import pytest
import redis

from loopml import SourceError
from loopml.data.streams import Stream
from loopml.data.streams.redis_backend import RedisStreamBackend


def test_key_layout_and_clean_delete(redis_url: str) -> None:
    b = RedisStreamBackend(redis_url)
    r = redis.Redis.from_url(redis_url)
    try:
        b.create("clicks", 2, 3600)
        Stream(b, "clicks").put_many([{"i": i} for i in range(6)], [f"k{i}" for i in range(6)])
        b.checkpoint("g", "clicks", 0, 1)
        meta = {k.decode(): v.decode() for k, v in r.hgetall("loopml:stream:clicks").items()}
        assert meta["shards"] == "2" and meta["retention_s"] == "3600"
        inc = meta["inc"]
        assert r.smembers("loopml:streams") == {b"clicks"}
        assert r.type(f"loopml:stream:clicks:{inc}:0") == b"stream"
        assert r.xlen(f"loopml:stream:clicks:{inc}:0") + r.xlen(f"loopml:stream:clicks:{inc}:1") == 6
        assert r.hgetall(f"loopml:stream:clicks:{inc}:checkpoints") == {b"g:0": b"1"}
        b.delete("clicks")
        assert r.keys("loopml:*") == []
    finally:
        b.close()
        r.close()


def test_prefixes_keep_workspaces_apart(redis_url: str) -> None:
    a = RedisStreamBackend(redis_url + "?prefix=teamA:")
    b = RedisStreamBackend(redis_url + "?prefix=teamB:")
    try:
        a.create("s", 1, 60)
        b.create("s", 3, 60)
        a.put_records("s", [b"x"], [None])
        assert [d.shards for d in a.list_streams()] == [1]
        assert b.describe("s", stats=True).records == 0
        assert "prefix=teamA:" in a.url
    finally:
        a.close()
        b.close()


def test_scripts_come_back_after_a_flush(redis_url: str) -> None:
    b = RedisStreamBackend(redis_url)
    r = redis.Redis.from_url(redis_url)
    try:
        b.create("s", 1, 60)
        b.put_records("s", [b"1"], ["k"])
        r.script_flush()
        b.put_records("s", [b"2"], ["k"])
        r.script_flush()
        assert [x.data for x in b.get_records("s", 0, 0, 10)[0]] == [b"1", b"2"]
    finally:
        b.close()
        r.close()


def test_unreachable_redis_is_a_clear_error() -> None:
    b = RedisStreamBackend("redis://:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in b.url and ":***@" in b.url
    with pytest.raises(SourceError, match=r"cannot reach Redis at redis://:\*\*\*@127.0.0.1:1/0"):
        b.list_streams()
    b.close()
