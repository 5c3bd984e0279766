"""Helpers of the endpoint tests: registered models, ASGI requests, a real uvicorn server in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pandas as pd
import uvicorn
from fastapi import FastAPI

from loopml import Workspace
from loopml.registry import APPROVED, register_model
from loopml.train.package import Model
from tests.serve.conftest import inputs_of, json_records, serve_frame

#: what each registered model is: (algorithm, problem, recipe) of the ``trained`` fixture
MODELS = {
    "churn:1": ("xgboost", "binary", "auto"),
    "churn:2": ("lightgbm", "binary", "auto"),
    "reg:1": ("xgboost", "regression", "none"),
}


def register_all(ws: Workspace, trained: Callable[..., Model], refs: Sequence[str] = ("churn:1", "churn:2")
                 ) -> dict[str, Model]:
    """Register the packages of ``refs`` (in order, so version numbers match); return the loaded models."""
    out: dict[str, Model] = {}
    for ref in refs:
        name = ref.partition(":")[0]
        model = trained(*MODELS[ref])
        info = register_model(ws, model.path, name, approval=APPROVED)
        assert info.ref == ref, (info.ref, ref)
        out[ref] = model
    return out


def frame(n: int = 20, seed: int = 7, recipe: str = "auto") -> pd.DataFrame:
    """Input rows the served models take."""
    return inputs_of(serve_frame(n, seed), recipe)


def body(n: int = 3, seed: int = 7, recipe: str = "auto") -> bytes:
    """A JSON request body of ``n`` records."""
    return orjson.dumps(json_records(frame(n, seed, recipe)))


@dataclass
class Req:
    """One request for :func:`asgi_requests`."""

    path: str
    content: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    method: str = "POST"


def asgi_requests(app: FastAPI, reqs: Sequence[Req], *, concurrent: bool = False) -> list[httpx.Response]:
    """Send ``reqs`` to ``app`` in this process (httpx's ASGI transport), in order or all at once."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            def one(r: Req) -> Any:
                return c.request(r.method, r.path, content=r.content if r.method == "POST" else None,
                                 headers=r.headers)
            if concurrent:
                return list(await asyncio.gather(*(one(r) for r in reqs)))
            return [await one(r) for r in reqs]

    return asyncio.run(go())


def asgi(app: FastAPI, path: str, content: bytes = b"[]", headers: dict[str, str] | None = None,
         method: str = "POST") -> httpx.Response:
    """One request to ``app`` in this process."""
    h = {"content-type": "application/json"} if headers is None else headers
    return asgi_requests(app, [Req(path, content, h, method)])[0]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (lifespan on) in a thread; yield its base URL; stop it after."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", access_log=False,
                            loop="asyncio", http="httptools", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(20)


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll ``check`` until it is true (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def asgi_many(app: FastAPI, path: str, content: bytes, n: int,
              headers: dict[str, str] | None = None) -> list[tuple[int, dict[str, str], bytes]]:
    """``n`` concurrent POSTs straight through the ASGI interface (no HTTP client: fast enough for
    thousands); each answer as (status, headers, body)."""
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in
                   ({"content-type": "application/json"} if headers is None else headers).items()]
    raw_headers.append((b"content-length", str(len(content)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": raw_headers, "client": ("127.0.0.1", 1), "server": ("test", 80)}

    async def one() -> tuple[int, dict[str, str], bytes]:
        sent = False
        out: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": content, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
                out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        await app(dict(scope), receive, send)
        return out["status"], out["headers"], out["body"]

    async def go() -> list[tuple[int, dict[str, str], bytes]]:
        return list(await asyncio.gather(*(one() for _ in range(n))))

    return asyncio.run(go())
