"""HttpSource against a real API served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from loopml import Workspace
from loopml.data.catalog import Catalog
from loopml.data.ingest import ingest
from loopml.data.sources import open_source
from loopml.data.sources.http import HttpSource
from loopml.errors import InvalidInput, SourceError

N = 250
TOKEN = "s3cr3t-t0ken"


def _records() -> list[dict[str, Any]]:
    rng = random.Random(42)
    return [{"id": i, "name": f"item-{i:03d}", "score": round(rng.random(), 4), "active": i % 3 == 0}
            for i in range(N)]


def _app() -> FastAPI:
    app = FastAPI()
    rows = _records()
    app.state.calls = {}

    @app.get("/items/next")
    def next_link(request: Request, cursor: int = 0, limit: int = 40, absolute: bool = False) -> Any:
        nxt = None
        if cursor + limit < N:
            nxt = (str(request.url.include_query_params(cursor=cursor + limit)) if absolute
                   else f"next?cursor={cursor + limit}&limit={limit}")  # relative to the current URL
        return {"items": rows[cursor : cursor + limit], "next": nxt, "total": N}

    @app.get("/items/link")
    def link_header(request: Request, page: int = 1, per_page: int = 60) -> Any:
        start = (page - 1) * per_page
        headers = {}
        if start + per_page < N:
            nxt = request.url.include_query_params(page=page + 1)
            headers["Link"] = f'<{nxt}>; rel="next", <{request.url}>; rel="self"'
        return JSONResponse(rows[start : start + per_page], headers=headers)

    @app.get("/items/page")
    def page_param(page: int = 1, per_page: int = 30) -> Any:
        return {"results": rows[(page - 1) * per_page : page * per_page], "page": page}

    @app.get("/items/offset")
    def offset_param(offset: int = 0, limit: int = 25) -> Any:
        return {"data": {"items": rows[offset : offset + limit]}, "meta": {"offset": offset}}

    @app.get("/flaky/{key}")
    def flaky(key: str) -> Any:
        n = app.state.calls[key] = app.state.calls.get(key, 0) + 1
        if n == 1:
            return Response(status_code=503)
        if n == 2:
            return Response(status_code=429, headers={"Retry-After": "0"})
        return rows[:10]

    @app.get("/rate-limited/{key}")
    def rate_limited(key: str) -> Any:
        n = app.state.calls[key] = app.state.calls.get(key, 0) + 1
        return Response(status_code=429, headers={"Retry-After": "0"}) if n <= 2 else rows[:5]

    @app.get("/auth")
    def auth(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            raise HTTPException(401, "invalid or missing token")
        return rows

    @app.get("/auth-key")
    def auth_key(request: Request) -> Any:
        if request.headers.get("x-api-key") != TOKEN:
            raise HTTPException(403, "forbidden")
        return rows[:3]

    @app.get("/echo-401")
    def echo(request: Request) -> Any:
        raise HTTPException(401, f"rejected {request.headers.get('authorization')}")

    @app.get("/always-500")
    def always_500() -> Any:
        raise HTTPException(500, "boom")

    @app.get("/missing")
    def missing() -> Any:
        raise HTTPException(404, "no such collection")

    @app.get("/html")
    def html() -> Any:
        return HTMLResponse("<html><body><h1>Welcome to our docs</h1></body></html>")

    @app.get("/bad-json")
    def bad_json() -> Any:
        return Response('{"items": [1, 2', media_type="application/json")

    @app.get("/scalars")
    def scalars() -> Any:
        return [1, 2, 3]

    @app.get("/loop")
    def loop() -> Any:
        return {"items": rows[:2], "next": "/loop"}

    @app.get("/two-lists")
    def two_lists() -> Any:
        return {"items": rows[:2], "links": [{"rel": "self"}]}

    @app.get("/stuck")
    def stuck() -> Any:
        return rows[:10]  # ignores the page parameter

    return app


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, FastAPI]]:
    """Base URL of the test API, served by uvicorn in a background thread."""
    app = _app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test API did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def base(api: tuple[str, FastAPI]) -> str:
    return api[0]


def _read(src: HttpSource) -> pa.Table:
    return pa.Table.from_batches(list(src.batches()))


@pytest.mark.parametrize(
    ("path", "options"),
    [
        ("/items/next", {"next_key": "next"}),
        ("/items/next?absolute=true", {"next_key": "next", "records_key": "items"}),
        ("/items/link", {}),
        ("/items/page", {"page_param": "page", "limit_param": "per_page", "page_size": 30}),
        ("/items/offset", {"offset_param": "offset", "limit_param": "limit", "page_size": 25,
                           "records_key": "data.items"}),
        ("/items/offset", {"offset_param": "offset", "limit_param": "limit", "page_size": 100,
                           "records_key": "data.items"}),
    ],
)
def test_every_pagination_style_reads_all_rows_in_order(base: str, path: str, options: dict[str, Any]) -> None:
    table = _read(HttpSource(base + path, **options))
    assert table.to_pylist() == _records()


def test_retries_until_the_flaky_endpoint_answers(base: str, api: tuple[str, FastAPI],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    key = uuid.uuid4().hex
    with caplog.at_level(logging.WARNING, logger="loopml.data.sources.http"):
        table = _read(HttpSource(f"{base}/flaky/{key}", backoff=0.01))
    assert table.column("id").to_pylist() == list(range(10))
    assert api[1].state.calls[key] == 3
    assert "503" in caplog.text and "429" in caplog.text


def test_retry_after_header_overrides_backoff(base: str) -> None:
    start = time.monotonic()
    table = _read(HttpSource(f"{base}/rate-limited/{uuid.uuid4().hex}", backoff=20))
    assert table.num_rows == 5
    assert time.monotonic() - start < 5  # Retry-After: 0 was honoured, not 20 s / 40 s of backoff


def test_persistent_500_fails_after_the_retries(base: str) -> None:
    with pytest.raises(SourceError, match=r"always-500 .*500.*retried 2 times"):
        _read(HttpSource(f"{base}/always-500", max_retries=2, backoff=0.01))


def test_connection_refused_is_retried_then_fails() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match=r"ConnectError.*retried 1 times"):
        _read(HttpSource(f"http://127.0.0.1:{port}/x", max_retries=1, backoff=0.01))


def test_auth_token_from_environment(base: str, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    src = HttpSource(f"{base}/auth", auth_env="API_TOKEN")
    assert _read(src).num_rows == N
    key_src = HttpSource(f"{base}/auth-key", auth_env="API_TOKEN", auth_header="X-API-Key", auth_scheme="")
    assert _read(key_src).num_rows == 3
    assert TOKEN not in repr(src) and TOKEN not in json.dumps(src.describe())
    assert src.describe()["auth_env"] == "API_TOKEN"


def test_wrong_or_missing_token(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    src = HttpSource(f"{base}/auth", auth_env="API_TOKEN")
    monkeypatch.delenv("API_TOKEN", raising=False)
    with pytest.raises(InvalidInput, match=r"\$API_TOKEN"):
        _read(src)
    monkeypatch.setenv("API_TOKEN", "wrong-token-123")
    with pytest.raises(SourceError, match=r"401.*invalid or missing token.*check the token in \$API_TOKEN") as e:
        _read(src)
    assert "wrong-token-123" not in str(e.value)
    with pytest.raises(SourceError, match="401") as e:  # an API that echoes the header back
        _read(HttpSource(f"{base}/echo-401", auth_env="API_TOKEN"))
    assert "wrong-token-123" not in str(e.value) and "***" in str(e.value)


def test_no_token_against_protected_api_suggests_auth_env(base: str) -> None:
    with pytest.raises(SourceError, match="auth-env"):
        _read(HttpSource(f"{base}/auth"))


def test_client_error_fails_at_once(base: str) -> None:
    with pytest.raises(SourceError, match=r"/missing returned 404 Not Found: no such collection; check the URL"):
        _read(HttpSource(f"{base}/missing", backoff=10))  # no retry, else this would take 10 s+


@pytest.mark.parametrize(("path", "pattern"), [
    ("/html", r"expected JSON from .*/html, got text/html; check the URL points at the API"),
    ("/bad-json", r"expected JSON from .*got invalid JSON"),
    ("/scalars", r"record 0 .* is a JSON number; records must be JSON objects"),
    ("/two-lists", r"2 arrays of records .*records_key"),
    ("/loop", r"already read; the API's pagination loops"),
])
def test_bad_responses(base: str, path: str, pattern: str) -> None:
    with pytest.raises(SourceError, match=pattern):
        _read(HttpSource(base + path, next_key="next" if path == "/loop" else None))


def test_missing_records_key_names_the_keys(base: str) -> None:
    with pytest.raises(SourceError, match=r"no 'data.rows' \(records_key\); its keys are \['data', 'meta'\]"):
        _read(HttpSource(f"{base}/items/offset", records_key="data.rows"))


def test_page_guards(base: str) -> None:
    with pytest.raises(SourceError, match="max_pages=2"):
        _read(HttpSource(f"{base}/items/next", next_key="next", max_pages=2))
    with pytest.raises(SourceError, match=r"same records .*'page'"):
        _read(HttpSource(f"{base}/stuck", page_param="page"))


def test_describe_hides_secrets() -> None:
    src = HttpSource("https://bob:pw@api.example.com/v1/x?api_key=abc123&q=red", params={"token": "zzz", "n": 1},
                     page_param="page", auth_env="API_TOKEN")
    d = src.describe()
    assert d["uri"] == "https://***@api.example.com/v1/x?api_key=***&q=red"
    assert d["params"] == {"token": "***", "n": 1}
    assert d["pagination"] == {"style": "page", "page_param": "page", "start_page": 1}
    assert not any(secret in json.dumps(d) for secret in (":pw", "abc123", "zzz"))


@pytest.mark.parametrize("options", [
    {"next_key": "next", "page_param": "page"}, {"page_size": 0}, {"max_retries": -1}, {"timeout": 0},
])
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        HttpSource("https://api.example.com/x", **options)
    with pytest.raises(InvalidInput, match="http:// or https://"):
        HttpSource("ftp://example.com/x")


def test_ingest_end_to_end(ws: Workspace, base: str) -> None:
    src = open_source(f"{base}/items/next", format="api", next_key="next")
    assert isinstance(src, HttpSource)
    info = ingest(ws, src, "api_data")
    assert info.row_count == N
    df = Catalog(ws).read_pandas("api_data")
    assert len(df) == N and sorted(df["id"]) == list(range(N))
    assert df.sort_values("id")["name"].tolist() == [r["name"] for r in _records()]


def test_failing_source_leaves_no_version(ws: Workspace, base: str) -> None:
    with pytest.raises(SourceError):
        ingest(ws, HttpSource(f"{base}/always-500", max_retries=1, backoff=0.01), "api_data")
    with pytest.raises(SourceError):
        ingest(ws, HttpSource(f"{base}/items/next", next_key="next", max_pages=3), "api_data")
    assert Catalog(ws).list() == []


def test_pages_are_gathered_into_bounded_batches(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loopml.data.sources.http.BATCH_ROWS", 100)
    batches = list(HttpSource(f"{base}/items/page", page_param="page").batches())  # 30-row pages
    assert [b.num_rows for b in batches] == [100, 100, 50]
    assert pa.Table.from_batches(batches).to_pylist() == _records()
