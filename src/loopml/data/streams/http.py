"""HTTP ingestion: ``POST /streams/{name}/records`` for producers that speak HTTP.

The body is one of:

- ``application/json``: a record (a JSON object), a list of records, or an
  envelope ``{"records": [...], "partition_key": "k"}`` (or
  ``"partition_keys": [...]``, one per record, or ``"key_field": "id"``);
- ``application/x-ndjson`` (also ``application/jsonlines``,
  ``application/jsonl``): one JSON object per line; blank lines are skipped.

``?partition_key=K`` or ``?key_field=F`` in the query apply to any body. A
request is all or nothing: a malformed line, an oversize record or a missing
stream writes none of its records. Errors are JSON ``{"message": ...}`` (with
``"line"`` for a malformed line) and a 4xx status: 400 bad input, 401 wrong or
missing ``X-Api-Key`` (when a key is configured), 404 no such stream, 413 a
record (or the body) over the limit, 415 another content type.

:class:`StreamIngestion` holds the routes as an ``APIRouter`` that any FastAPI
app can include (``loopml serve`` does); :func:`create_app` wraps it in a
standalone app with ``GET /ping`` (``loopml stream serve``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopml.data.streams.base import MAX_RECORD_BYTES, StreamBackend, open_backend
from loopml.data.streams.stream import Stream
from loopml.errors import InvalidInput, LoopmlError

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the largest request body accepted, in bytes
MAX_BODY_BYTES = 64 << 20
API_KEY_HEADER = "X-Api-Key"

_JSON_TYPES = {"application/json", "text/json", ""}
_LINES_TYPES = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonlines",
    "application/jsonl",
    "application/x-jsonlines",
}
_ENVELOPE_KEYS = {"records", "partition_key", "partition_keys", "key_field"}


class _HTTPError(Exception):
    """An error response with a JSON body (for errors outside the LoopmlError tree)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, **extra}


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(e: LoopmlError) -> Response:
    return _json(e.http_status, {"message": str(e), "code": e.code})


def parse_body(body: bytes, content_type: str) -> tuple[list[Any], dict[str, Any]]:
    """The records of a request body, and the envelope's partition options.

    Raises an error (an ``InvalidInput``, or a 400/415 with ``line`` for a
    malformed line) when the body is not a record, a list of records, an
    envelope or JSON lines.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in _LINES_TYPES:
        return _parse_lines(body), {}
    if kind not in _JSON_TYPES:
        raise _HTTPError(
            415,
            f"content type {kind!r} is not accepted; send application/json (a record, a list "
            "or {\"records\": [...]}) or application/x-ndjson (one record per line)",
        )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}") from e
    options: dict[str, Any] = {}
    if isinstance(doc, dict) and isinstance(doc.get("records"), list) and set(doc) <= _ENVELOPE_KEYS:
        options = {k: doc[k] for k in ("partition_key", "partition_keys", "key_field") if k in doc}
        records = doc["records"]
    elif isinstance(doc, dict):
        records = [doc]
    elif isinstance(doc, list):
        records = doc
    else:
        raise InvalidInput(
            f"the body is a JSON {type(doc).__name__}; send a record (a JSON object), a list of "
            "records, or {\"records\": [...]}"
        )
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInput(f"record {i} is a JSON {type(rec).__name__}, not an object")
    return records, options


def _parse_lines(body: bytes) -> list[Any]:
    records = []
    loads = orjson.loads
    for n, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = loads(line.strip())
        except orjson.JSONDecodeError as e:
            raise _HTTPError(
                400, f"line {n} is not valid JSON ({e.msg} at column {e.colno}); nothing was written",
                line=n,
            ) from e
        if not isinstance(rec, dict):
            raise _HTTPError(
                400,
                f"line {n} is a JSON {type(rec).__name__}, not an object; nothing was written",
                line=n,
            )
        records.append(rec)
    return records


class StreamIngestion:
    """The ingestion routes, bound to one stream backend.

    Parameters
    ----------
    ws
        The workspace whose ``stream_url`` names the backend (or pass ``backend``).
    backend
        A backend to use instead (not closed by :meth:`close`).
    api_key
        When set, every request must carry it in the ``X-Api-Key`` header.
    max_record_bytes
        Size limit of one record (413 above it).
    max_body_bytes
        Size limit of one request body (413 above it).

    Examples
    --------
    >>> import tempfile, loopml
    >>> from fastapi import FastAPI
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> ingestion = StreamIngestion(ws, api_key="s3cret")
    >>> app = FastAPI()
    >>> app.include_router(ingestion.router)
    >>> ingestion.close(); ws.close()
    """

    def __init__(
        self,
        ws: Workspace | None = None,
        *,
        backend: StreamBackend | None = None,
        api_key: str | None = None,
        max_record_bytes: int = MAX_RECORD_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if backend is None:
            if ws is None:
                raise InvalidInput("give a workspace or a stream backend")
            backend = open_backend(ws.settings.stream_url)
            self._owns_backend = True
        else:
            self._owns_backend = False
        if api_key is not None and not api_key:
            raise InvalidInput("the API key is empty; give a non-empty key or none")
        self.backend = backend
        self.api_key = api_key
        self.max_record_bytes = max_record_bytes
        self.max_body_bytes = max_body_bytes
        self.router = APIRouter()
        self.router.add_api_route(
            "/streams/{name}/records",
            self._put_records,
            methods=["POST"],
            summary="Put records into a stream",
            response_class=Response,
        )

    def _authorised(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        given = request.headers.get(API_KEY_HEADER, "")
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _HTTPError(413, self._body_limit_message())
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _HTTPError(413, self._body_limit_message())
            chunks.append(chunk)
        return b"".join(chunks)

    def _body_limit_message(self) -> str:
        return f"the request body is over {self.max_body_bytes:,} bytes; send smaller batches"

    async def _put_records(
        self,
        name: str,
        request: Request,
        partition_key: str | None = Query(None, description="One partition key for every record."),
        key_field: str | None = Query(None, description="Take each record's key from this field."),
    ) -> Response:
        """Put one or more records; returns the shard and sequence number of each."""
        try:
            if not self._authorised(request):
                raise _HTTPError(401, f"missing or wrong {API_KEY_HEADER} header")
            body = await self._read_body(request)
            records, options = parse_body(body, request.headers.get("content-type", ""))
            if not records:
                raise InvalidInput("the request holds no records")
            for key, value in (("partition_key", partition_key), ("key_field", key_field)):
                if value is not None:
                    if options:
                        raise InvalidInput(
                            f"give {key} in the query or partition options in the body, not both"
                        )
                    options[key] = value
            stream = Stream(self.backend, name, max_record_bytes=self.max_record_bytes)
            results = await run_in_threadpool(self._put, stream, records, options)
        except _HTTPError as e:
            return _json(e.status, e.body)
        except LoopmlError as e:
            return _error(e)
        return _json(
            200,
            {"stream": name, "count": len(results), "records": [r.to_dict() for r in results]},
        )

    @staticmethod
    def _put(stream: Stream, records: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        keys = options.get("partition_keys")
        if keys is not None and not isinstance(keys, list):
            raise InvalidInput("partition_keys must be a list with one key per record")
        return stream.put_many(
            records,
            keys,
            partition_key=options.get("partition_key"),
            key_field=options.get("key_field"),
        )

    def close(self) -> None:
        """Close the backend if this object opened it."""
        if self._owns_backend:
            self.backend.close()


def install_error_handlers(app: FastAPI) -> None:
    """Make ``app`` answer every error with a JSON ``{"message": ...}`` body and a 4xx status."""

    async def loopml_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoopmlError)
        return _error(exc)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors()
        )
        return _json(400, {"message": f"bad request: {problems}"})

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _json(exc.status_code, {"message": str(exc.detail)})

    app.add_exception_handler(LoopmlError, loopml_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def create_app(
    ws: Workspace,
    api_key: str | None = None,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """A standalone ASGI app: ``POST /streams/{name}/records`` and ``GET /ping``.

    Parameters
    ----------
    ws
        The workspace (its ``stream_url`` names the backend).
    api_key
        When set, ``POST`` requests must carry it in ``X-Api-Key`` (401 otherwise).
    max_record_bytes, max_body_bytes
        Size limits (413 above them).

    Returns
    -------
    fastapi.FastAPI
        Serve it with uvicorn (``loopml stream serve`` does).
    """
    ingestion = StreamIngestion(
        ws, api_key=api_key, max_record_bytes=max_record_bytes, max_body_bytes=max_body_bytes
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            ingestion.close()

    app = FastAPI(title="loopml stream ingestion", lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        """Health check."""
        return {"status": "ok"}

    app.include_router(ingestion.router)
    app.state.ingestion = ingestion
    return app


__all__ = ["API_KEY_HEADER", "MAX_BODY_BYTES", "StreamIngestion", "create_app", "parse_body"]
