"""HTTP ingestion: POST /streams/{name}/records, JSON and JSON lines, every bad input a clear 4xx."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from loopml import Workspace
from loopml.data.streams import MAX_RECORD_BYTES, Stream, create_stream, open_stream, shard_for_key
from loopml.data.streams.http import StreamIngestion, create_app

KEY = {"X-Api-Key": "s3cret"}
NDJSON = {**KEY, "Content-Type": "application/x-ndjson"}


def call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request through httpx's ASGI transport (no server, no sockets)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def stream(stream_ws: Workspace) -> Iterator[Stream]:
    with create_stream(stream_ws, "s", shards=2) as s:
        yield s


@pytest.fixture
def app(stream_ws: Workspace, stream: Stream) -> Iterator[FastAPI]:
    application = create_app(stream_ws, api_key="s3cret", max_body_bytes=4 * MAX_RECORD_BYTES)
    yield application
    application.state.ingestion.close()


def _all(s: Stream) -> list[Any]:
    return [r.json() for shard in range(2) for r in s.get(shard, limit=1000)]


def test_ping_needs_no_key(app: FastAPI) -> None:
    r = call(app, "GET", "/ping")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_api_key_is_checked(app: FastAPI, stream: Stream) -> None:
    for headers in ({}, {"X-Api-Key": "wrong"}):
        r = call(app, "POST", "/streams/s/records", json={"a": 1}, headers=headers)
        assert r.status_code == 401
        assert r.json()["message"] == "missing or wrong X-Api-Key header"
    assert _all(stream) == []
    assert call(app, "POST", "/streams/s/records", json={"a": 1}, headers=KEY).status_code == 200


def test_json_bodies(app: FastAPI, stream: Stream) -> None:
    r = call(app, "POST", "/streams/s/records", json={"a": 1}, headers=KEY)
    assert r.status_code == 200
    body = r.json()
    assert body["stream"] == "s" and body["count"] == 1
    assert isinstance(body["records"][0]["sequence"], str) and body["records"][0]["shard"] in (0, 1)

    r = call(app, "POST", "/streams/s/records?partition_key=dev-1", json=[{"a": 2}, {"a": 3}], headers=KEY)
    assert [x["shard"] for x in r.json()["records"]] == [shard_for_key("dev-1", 2)] * 2
    seqs = [int(x["sequence"]) for x in r.json()["records"]]
    assert seqs[1] > seqs[0]

    envelope = {"records": [{"id": "x", "a": 4}, {"id": "y", "a": 5}], "key_field": "id"}
    r = call(app, "POST", "/streams/s/records", json=envelope, headers=KEY)
    assert [x["shard"] for x in r.json()["records"]] == [shard_for_key("x", 2), shard_for_key("y", 2)]

    envelope = {"records": [{"a": 6}, {"a": 7}], "partition_keys": ["p", "q"]}
    r = call(app, "POST", "/streams/s/records", json=envelope, headers=KEY)
    assert [x["shard"] for x in r.json()["records"]] == [shard_for_key("p", 2), shard_for_key("q", 2)]
    assert sorted(x["a"] for x in _all(stream)) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonlines; charset=utf-8"])
def test_json_lines(app: FastAPI, stream: Stream, content_type: str) -> None:
    body = b'{"a": 1}\r\n\n{"a": 2}\n{"a": 3}'
    r = call(app, "POST", "/streams/s/records?partition_key=k", content=body,
             headers={**KEY, "Content-Type": content_type})
    assert r.status_code == 200 and r.json()["count"] == 3
    assert [x["a"] for x in _all(stream)] == [1, 2, 3]


def test_a_malformed_line_writes_nothing(app: FastAPI, stream: Stream) -> None:
    body = b'{"a": 1}\n\n{"a": \n{"a": 3}\n'
    r = call(app, "POST", "/streams/s/records", content=body, headers=NDJSON)
    assert r.status_code == 400
    assert r.json()["line"] == 3 and r.json()["message"].startswith("line 3 is not valid JSON")
    r = call(app, "POST", "/streams/s/records", content=b'{"a": 1}\n[1, 2]\n', headers=NDJSON)
    assert r.status_code == 400 and r.json() == {
        "message": "line 2 is a JSON list, not an object; nothing was written", "line": 2,
    }
    assert _all(stream) == []


BAD: list[tuple[str, dict[str, Any], int, str]] = [
    ("/streams/s/records", {"content": b"{nope", "headers": KEY}, 400, "the body is not valid JSON"),
    ("/streams/s/records", {"json": 42, "headers": KEY}, 400, "the body is a JSON int"),
    ("/streams/s/records", {"json": [{"a": 1}, "x"], "headers": KEY}, 400, "record 1 is a JSON str, not an object"),
    ("/streams/s/records", {"json": [], "headers": KEY}, 400, "the request holds no records"),
    ("/streams/s/records", {"content": b"\n\n", "headers": NDJSON}, 400, "the request holds no records"),
    ("/streams/s/records", {"content": b"a=1", "headers": {**KEY, "Content-Type": "application/x-www-form-urlencoded"}},
     415, "content type 'application/x-www-form-urlencoded' is not accepted"),
    ("/streams/nope/records", {"json": {"a": 1}, "headers": KEY}, 404, "no stream named 'nope'"),
    ("/streams/bad name!/records", {"json": {"a": 1}, "headers": KEY}, 400, "stream name 'bad name!' is not allowed"),
    ("/streams/s/records", {"json": {"records": [{"a": 1}], "partition_key": 5}, "headers": KEY}, 400,
     "the partition key must be a string, not int"),
    ("/streams/s/records", {"json": {"records": [{"a": 1}], "partition_keys": "k"}, "headers": KEY}, 400,
     "partition_keys must be a list"),
    ("/streams/s/records?key_field=id", {"json": [{"id": 1}, {"x": 1}], "headers": KEY}, 400,
     "record 1 has no field 'id'"),
    ("/streams/s/records?partition_key=k", {"json": {"records": [{"a": 1}], "key_field": "a"}, "headers": KEY}, 400,
     "not both"),
    ("/streams/s/records", {"json": [{"a": 1}, {"big": "x" * MAX_RECORD_BYTES}], "headers": KEY}, 413,
     "record 1 is 1,048,586 bytes, over the limit"),
    ("/streams/s/records", {"content": b"x" * (4 * MAX_RECORD_BYTES + 1), "headers": KEY}, 413,
     "the request body is over 4,194,304 bytes"),
]


def test_every_bad_input_is_a_clear_4xx(app: FastAPI, stream: Stream) -> None:
    for url, kwargs, status, message in BAD:
        r = call(app, "POST", url, **kwargs)
        assert r.status_code == status, (url, r.text)
        assert r.headers["content-type"] == "application/json"
        assert message in r.json()["message"], (message, r.json())
    assert _all(stream) == []
    r = call(app, "GET", "/no/such/route")
    assert r.status_code == 404 and r.json() == {"message": "Not Found"}
    r = call(app, "GET", "/streams/s/records", headers=KEY)
    assert r.status_code == 405 and "message" in r.json()


def test_the_router_mounts_into_another_app(stream_ws: Workspace, stream: Stream) -> None:
    ingestion = StreamIngestion(stream_ws)  # no key
    host = FastAPI()  # no loopml error handlers: the routes answer errors themselves
    host.include_router(ingestion.router, prefix="/data")
    try:
        ok = call(host, "POST", "/data/streams/s/records", json={"a": 1})
        assert ok.status_code == 200 and ok.json()["count"] == 1
        missing = call(host, "POST", "/data/streams/x/records", json={"a": 1})
        assert missing.status_code == 404 and "loopml stream create x" in missing.json()["message"]
        bad = call(host, "POST", "/data/streams/s/records", content=b"{",
                   headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
    finally:
        ingestion.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_on_loopback(stream_ws: Workspace, stream: Stream) -> None:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(stream_ws, api_key="s3cret"), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/ping").json() == {"status": "ok"}
            lines = b"".join(orjson.dumps({"n": i}) + b"\n" for i in range(500))
            r = client.post("/streams/s/records?partition_key=dev", content=lines, headers=NDJSON)
            assert r.status_code == 200 and r.json()["count"] == 500
            assert client.post("/streams/s/records", json={"n": 1}).status_code == 401
            bad = client.post("/streams/s/records", content=b'{"n": 1}\n{', headers=NDJSON)
            assert bad.status_code == 400 and bad.json()["line"] == 2
    finally:
        server.should_exit = True
        thread.join(10)
    with open_stream(stream_ws, "s") as s:
        got = s.get(shard_for_key("dev", 2), limit=1000)
        assert [r.json()["n"] for r in got] == list(range(500))
