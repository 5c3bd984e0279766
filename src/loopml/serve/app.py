"""The data plane: one ASGI app serving every endpoint of a workspace (``loopml serve``).

Routes (see :func:`create_app`):

- ``GET /ping``: 200 when the endpoints are loaded (the container contract);
- ``POST /invocations``: the container contract, on a single-endpoint server;
- ``POST /endpoints/{name}/invocations``: sagemaker-runtime's InvokeEndpoint, so
  boto3's ``sagemaker-runtime`` client works with ``endpoint_url``; headers
  ``X-Amzn-SageMaker-Target-Variant``, ``-Target-Model``, ``-Custom-Attributes``
  (echoed back), ``-Inference-Id``; the answer names its variant in
  ``X-Amzn-Invoked-Production-Variant``;
- ``GET /metrics``: Prometheus text; ``GET /endpoints``: what is served, for humans.

Errors are JSON ``{"message", "code"}`` with the code in ``x-amzn-ErrorType``;
bad input is always a 4xx, never a 500.

How a request is served: the endpoint's *live* state (its variants' backends,
weights, API keys, capture writer) is looked up in a dict; a variant is
picked by weight (or the header); its backend decodes, validates, predicts
and encodes (the :class:`~loopml.serve.runtime.Predictor`, through the
:class:`~loopml.serve.runtime.MicroBatcher` when micro-batching is on);
metrics are counted and the exchange is handed to data capture after the
answer. Nothing on that path touches the database: at most every
``reload_interval_s`` a worker thread compares the endpoints' config versions
and rebuilds only what changed, so ``loopml endpoints deploy/update/delete``
take effect without a restart. Models load once per package and are shared
by every variant and endpoint that serves them.

A variant's *backend* owns its loaded model. :func:`default_backend` picks it
from the endpoint's config: :class:`LocalBackend` runs it in this process;
``--replicas MIN:MAX`` and ``--serverless`` run it in an autoscaled pool of
worker processes (:mod:`loopml.serve.replicas`); ``--backend ray`` in a Ray
Serve deployment (:mod:`loopml.serve.ray_backend`). Another kind plugs in
through ``create_app(backend_factory=...)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path as _FsPath
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route

from loopml.errors import (
    InvalidInput,
    LoopmlError,
    ModelError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from loopml.serve import _auth, _codecs
from loopml.serve._metrics import PROMETHEUS_CONTENT_TYPE, ServeMetrics
from loopml.serve.endpoints import (
    EndpointConfig,
    EndpointInfo,
    ModelTarget,
    VariantPicker,
    active_keys,
    endpoint_versions,
    get_endpoint,
)
from loopml.serve.multimodel import MultiModelRouter
from loopml.serve.runtime import InvokeResult, MicroBatcher, Predictor

if TYPE_CHECKING:
    from loopml.serve.capture import CaptureWriter
    from loopml.train.package import Model
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

TARGET_MODEL = "x-amzn-sagemaker-target-model"
TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
INFERENCE_ID = "x-amzn-sagemaker-inference-id"
INVOKED_VARIANT = "X-Amzn-Invoked-Production-Variant"
#: bodies larger than this are predicted in a worker thread, so the event loop stays free
_THREAD_BODY_BYTES = 256 * 1024
_MAX_CUSTOM_ATTRIBUTES = 1024
_MAX_INFERENCE_ID = 64


class _EndpointNotFound(NotFound):
    """An unknown endpoint: 404 with SageMaker's ``ValidationError`` code (what boto3 users catch)."""

    code = "ValidationError"


class _InternalFailure(LoopmlError):
    http_status = 500
    code = "InternalFailure"


# -- backends: what serves one variant -------------------------------------------------------------------
class VariantBackend(Protocol):
    """Serves one variant (or one target of a multi-model endpoint); owns its loaded model."""

    #: the model's input columns, in signature order (for data capture)
    input_names: list[str]

    async def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> InvokeResult:
        """Answer one request (raises a LoopmlError for bad input or a model failure)."""
        ...

    def close(self) -> None:
        """Release the model (called once no request can reach this backend any more)."""
        ...


#: makes the backend of one model package under an endpoint's config
BackendFactory = Callable[["ModelCache", str, EndpointConfig], VariantBackend]


class ModelCache:
    """Loaded models by package id, shared by every variant and endpoint; reference-counted.

    A package loads once (concurrent loads of one package wait for the first)
    and is dropped when its last user releases it.
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._models: dict[str, Model] = {}
        self._sizes: dict[str, int] = {}
        self._predictors: dict[tuple[str, int, int], list[Any]] = {}
        #: packages loaded so far (a reload after a drop counts again)
        self.loads = 0

    @property
    def loaded(self) -> list[str]:
        """Package ids loaded now."""
        with self._lock:
            return sorted(self._models)

    def size_of(self, sha: str) -> int:
        """Bytes the package takes on disk (0 if not loaded)."""
        return self._sizes.get(sha, 0)

    def _model(self, sha: str) -> Model:
        with self._lock:
            model = self._models.get(sha)
            if model is not None:
                return model
            lock = self._load_locks.setdefault(sha, threading.Lock())
        with lock:
            with self._lock:
                model = self._models.get(sha)
            if model is not None:
                return model
            from loopml.train.package import load_model_package

            model = load_model_package(sha, ws=self.ws)
            size = sum(p.stat().st_size for p in _FsPath(model.path).rglob("*") if p.is_file())
            with self._lock:
                self._models[sha] = model
                self._sizes[sha] = size
                self.loads += 1
            return model

    def acquire(self, sha: str, *, max_rows: int, max_payload_bytes: int) -> Predictor:
        """A predictor of package ``sha`` with these limits (loaded if needed); pair with :meth:`release`."""
        key = (sha, int(max_rows), int(max_payload_bytes))
        with self._lock:
            entry = self._predictors.get(key)
            if entry is not None:
                entry[1] += 1
                return entry[0]
        model = self._model(sha)
        predictor = Predictor(model, max_rows=max_rows, max_payload_bytes=max_payload_bytes)
        with self._lock:
            entry = self._predictors.setdefault(key, [predictor, 0])
            entry[1] += 1
            self._models.setdefault(sha, model)
            return entry[0]

    def release(self, sha: str, *, max_rows: int, max_payload_bytes: int) -> None:
        """Give back a predictor; the model is dropped when nothing uses its package any more."""
        key = (sha, int(max_rows), int(max_payload_bytes))
        with self._lock:
            entry = self._predictors.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del self._predictors[key]
            if not any(k[0] == sha for k in self._predictors):
                self._models.pop(sha, None)
                self._sizes.pop(sha, None)


class LocalBackend:
    """A variant served in this process: a shared :class:`Predictor`, and a micro-batcher if enabled.

    Parameters
    ----------
    cache
        The server's model cache.
    sha
        The model package.
    config
        The endpoint's config (its limits and micro-batching settings apply).
    """

    def __init__(self, cache: ModelCache, sha: str, config: EndpointConfig) -> None:
        self._cache = cache
        self.sha = sha
        self._limits = {"max_rows": config.limits.max_rows, "max_payload_bytes": config.limits.max_payload_bytes}
        self.predictor = cache.acquire(sha, **self._limits)
        self.input_names = self.predictor.input_names
        self.size_bytes = cache.size_of(sha)
        mb = config.micro_batching
        self.batcher: MicroBatcher | None = (
            MicroBatcher(self.predictor, max_batch_rows=mb.max_batch_rows, max_wait_ms=mb.max_wait_ms)
            if mb.enabled else None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrivals = 0
        self._in_batcher = 0
        self._closed = False

    async def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> InvokeResult:
        """Decode, validate, predict and encode one request.

        With micro-batching, a single-row request joins the batcher only when
        other requests are about to (or already) wait for it: it first lets the
        event loop run the requests that arrived with it, and goes straight to
        the model if none did, so a lone request never waits for a batch.
        """
        p = self.predictor
        if self.batcher is None:
            if len(body) > _THREAD_BODY_BYTES:
                return await run_in_threadpool(p.invoke, body, content_type, accept)
            return p.invoke(body, content_type, accept)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        fmt = _codecs.response_format(accept, _codecs.request_format(content_type))  # 406/415 before any work
        if len(body) > _THREAD_BODY_BYTES:
            rows = await run_in_threadpool(p.decode, body, content_type)
        else:
            rows = p.decode(body, content_type)
        if len(rows) == 1:
            self._arrivals += 1
            seen = self._arrivals
            await asyncio.sleep(0)
            if self._in_batcher or self._arrivals != seen:
                self._in_batcher += 1
                try:
                    t0 = time.perf_counter()
                    outputs = await self.batcher.predict(rows)
                    model_ms = (time.perf_counter() - t0) * 1e3
                finally:
                    self._in_batcher -= 1
                return InvokeResult(_codecs.encode(outputs, fmt, p.classes), fmt, len(outputs), rows, outputs,
                                    model_ms)
        records = p.validate(rows)
        t0 = time.perf_counter()
        outputs = p.predict_valid(records)
        model_ms = (time.perf_counter() - t0) * 1e3
        return InvokeResult(_codecs.encode(outputs, fmt, p.classes), fmt, len(records), records, outputs, model_ms)

    def close(self) -> None:
        """Stop the batcher (on its event loop) and release the model."""
        if self._closed:
            return
        self._closed = True
        if self.batcher is not None:
            loop = self._loop
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is not None and loop.is_running() and running is not loop:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self.batcher.close)
            else:
                with contextlib.suppress(RuntimeError):
                    self.batcher.close()
        self._cache.release(self.sha, **self._limits)


def local_backend(cache: ModelCache, sha: str, config: EndpointConfig) -> VariantBackend:
    """A :data:`BackendFactory` that always serves in this process: a :class:`LocalBackend`."""
    return LocalBackend(cache, sha, config)


#: the config keys (in ``EndpointConfig.extra``) that choose where a variant runs
BACKEND_KEYS = ("backend", "scaling", "serverless")


def default_backend(cache: ModelCache, sha: str, config: EndpointConfig) -> VariantBackend:
    """The default :data:`BackendFactory`: the backend the endpoint's config asks for.

    ``backend: ray`` -> :class:`~loopml.serve.ray_backend.RayBackend`; ``scaling`` (``--replicas``) or
    ``serverless`` -> :class:`~loopml.serve.replicas.ReplicaBackend`; otherwise :class:`LocalBackend`.
    """
    if str(config.extra.get("backend") or "local") == "ray":
        from loopml.serve.ray_backend import RayBackend

        return RayBackend(cache, sha, config)
    if config.extra.get("serverless") or config.extra.get("scaling"):
        from loopml.serve.replicas import ReplicaBackend

        return ReplicaBackend(cache, sha, config)
    return LocalBackend(cache, sha, config)


def _backend_key(sha: str, config: EndpointConfig) -> tuple[Any, ...]:
    """Variants with equal keys share one backend (and its micro-batcher or replicas)."""
    where = orjson.dumps({k: config.extra.get(k) for k in BACKEND_KEYS}, option=orjson.OPT_SORT_KEYS)
    return (sha, config.limits.max_rows, config.limits.max_payload_bytes, config.micro_batching, where)


# -- the live state of one endpoint -------------------------------------------------------------------
@dataclass
class _Live:
    """What the request path needs of one endpoint, built off the request path."""

    name: str
    id: str
    version: int
    config: EndpointConfig
    picker: VariantPicker
    backends: dict[str, VariantBackend] = field(default_factory=dict)
    keys_of_variants: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    router: MultiModelRouter[VariantBackend] | None = None
    keys: _auth.KeySet | None = None
    capture: CaptureWriter | None = None
    error: str | None = None

    @property
    def max_payload(self) -> int:
        return self.config.limits.max_payload_bytes

    def describe(self) -> dict[str, Any]:
        c = self.config
        total = self.picker.total or 1.0
        out: dict[str, Any] = {
            "name": self.name, "version": self.version, "status": "Failed" if self.error else "InService",
            "auth_required": c.auth.required, "capture_percentage": c.capture.percentage,
            "micro_batching": c.micro_batching.enabled,
        }
        if self.error:
            out["error"] = self.error
        if c.multi_model is not None:
            out["multi_model"] = {"models": {k: t.model for k, t in sorted(c.multi_model.models.items())},
                                  "loaded": self.router.loaded if self.router is not None else [],
                                  "max_loaded": c.multi_model.max_loaded}
        else:
            out["variants"] = [{"name": v.name, "model": v.model, "weight": v.weight,
                                "traffic": round(v.weight / total, 6)} for v in c.variants]
            for doc in out["variants"]:
                backend = self.backends.get(doc["name"])
                stats = getattr(backend, "stats", None)
                if stats is not None:
                    doc["backend"] = stats()
        return out


@dataclass
class _Prepared:
    live: dict[str, _Live]
    created: dict[tuple[Any, ...], VariantBackend]
    failed: dict[str, tuple[str, int]]


# -- the server ---------------------------------------------------------------------------------------
class Server:
    """The state behind the app: live endpoints, the model cache, metrics, capture, reloading.

    Parameters
    ----------
    ws
        The workspace whose endpoints are served.
    endpoint
        Serve only this endpoint (and answer ``POST /invocations`` with it).
    reload_interval_s
        How often endpoint config versions are compared (changes apply within about this long).
    metrics_flush_interval_s
        How often aggregates are written to the workspace's metrics table.
    capture_flush_interval_s
        How long captured requests may wait before reaching their file.
    backend_factory
        Makes each variant's backend (default: :func:`default_backend`, as the config asks).
    seed
        Seed of the variant choice (None: unpredictable).
    retire_grace_s
        Replaced backends are closed this long after the switch, so requests in flight finish.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        endpoint: str | None = None,
        reload_interval_s: float = 0.5,
        metrics_flush_interval_s: float = 5.0,
        capture_flush_interval_s: float = 1.0,
        backend_factory: BackendFactory | None = None,
        seed: int | None = None,
        retire_grace_s: float = 2.0,
    ) -> None:
        self.ws = ws
        self.endpoint = endpoint
        self.reload_interval_s = float(reload_interval_s)
        self.capture_flush_interval_s = float(capture_flush_interval_s)
        self.retire_grace_s = float(retire_grace_s)
        self.cache = ModelCache(ws)
        self.live: dict[str, _Live] = {}
        self.metrics = ServeMetrics(ws, flush_interval_s=metrics_flush_interval_s, backends=self.backend_views)
        self._make_backend: BackendFactory = backend_factory or default_backend
        self._pool: dict[tuple[Any, ...], VariantBackend] = {}
        self._failed: dict[str, tuple[str, int]] = {}
        self._retired: list[tuple[float, Callable[[], None]]] = []
        self._rng = random.Random(seed)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-reload")
        self._retired_lock = threading.Lock()
        self._pending: concurrent.futures.Future[None] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._next_check = 0.0
        self._last_forced = 0.0
        self._sync_lock = threading.Lock()
        self._closed = False
        #: config versions applied so far (a test hook and a debugging aid)
        self.reloads = 0

    # -- loading --------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Compare endpoint versions now and apply what changed; True if anything changed.

        Safe from any thread: the database queries and model loads happen
        here, and the switch to the new state is one assignment.
        """
        with self._sync_lock:
            prepared = self._prepare()
            if prepared is not None:
                self._commit(prepared)
        self._run_retired()
        return prepared is not None

    async def refresh_async(self) -> None:
        """:meth:`refresh` in the server's worker thread, awaited (the event loop stays free)."""
        if self._closed:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.exception("reloading the endpoint configs failed; serving the previous ones")

    def _prepare(self) -> _Prepared | None:
        if self._closed:
            return None
        versions = endpoint_versions(self.ws)
        if self.endpoint is not None:
            versions = {k: v for k, v in versions.items() if k == self.endpoint}
        current = self.live
        if {n: (lv.id, lv.version) for n, lv in current.items()} == versions:
            return None
        new: dict[str, _Live] = {}
        created: dict[tuple[Any, ...], VariantBackend] = {}
        failed = dict(self._failed)
        for name, (eid, version) in versions.items():
            old = current.get(name)
            if old is not None and (old.id, old.version) == (eid, version):
                new[name] = old
                continue
            if failed.get(name) == (eid, version) and old is not None:
                new[name] = old  # this version failed to load already: keep serving the previous one
                continue
            try:
                info = get_endpoint(self.ws, name)
            except NotFound:  # deleted meanwhile
                continue
            try:
                new[name] = self._build(info, old if old is not None and old.id == info.id else None, created)
                failed.pop(name, None)
            except Exception as e:
                msg = f"endpoint {name!r} version {info.version} could not be loaded: {e}"
                log.error("%s", msg)
                failed[name] = (info.id, info.version)
                new[name] = old if old is not None else _Live(
                    name, info.id, info.version, info.config, VariantPicker(info.config), error=msg)
        return _Prepared(new, created, failed)

    def _build(self, info: EndpointInfo, old: _Live | None, created: dict[tuple[Any, ...], VariantBackend]) -> _Live:
        cfg = info.config
        live = _Live(info.name, info.id, info.version, cfg, VariantPicker(cfg))
        made: list[tuple[Any, ...]] = []
        try:
            if cfg.multi_model is None:
                for v in cfg.variants:
                    key = _backend_key(v.package_sha256, cfg)
                    backend = self._pool.get(key) or created.get(key)
                    if backend is None:
                        backend = created[key] = self._make_backend(self.cache, v.package_sha256, cfg)
                        made.append(key)
                    live.backends[v.name] = backend
                    live.keys_of_variants[v.name] = key
                    live.models[v.name] = v.model
            elif (old is not None and old.router is not None and old.config.multi_model == cfg.multi_model
                  and old.config.limits == cfg.limits and old.config.micro_batching == cfg.micro_batching):
                live.router = old.router
            else:
                live.router = MultiModelRouter(
                    info.name, cfg.multi_model.models, load=self._mm_loader(cfg), unload=self._retire_backend,
                    max_loaded=cfg.multi_model.max_loaded, max_memory_mb=cfg.multi_model.max_memory_mb)
            if cfg.auth.required:
                live.keys = active_keys(self.ws, info.id)
            pct = cfg.capture.percentage
            if old is not None and old.capture is not None and old.config.capture.percentage == pct:
                live.capture = old.capture
            elif pct > 0:
                from loopml.serve.capture import CaptureWriter

                live.capture = CaptureWriter(self.ws, info.name, sampling_percentage=pct,
                                             flush_interval_s=self.capture_flush_interval_s)
        except BaseException:
            for key in made:
                created.pop(key).close()
            raise
        return live

    def _mm_loader(self, cfg: EndpointConfig) -> Callable[[str, ModelTarget], tuple[VariantBackend, int]]:
        def load(_target: str, t: ModelTarget) -> tuple[VariantBackend, int]:
            backend = self._make_backend(self.cache, t.package_sha256, cfg)
            return backend, int(getattr(backend, "size_bytes", 0) or self.cache.size_of(t.package_sha256))
        return load

    def _commit(self, prepared: _Prepared) -> None:
        old = self.live
        new = prepared.live
        self._pool.update(prepared.created)
        self.live = new
        self._failed = prepared.failed
        self.reloads += 1
        used = {k for lv in new.values() for k in lv.keys_of_variants.values()}
        for key in [k for k in self._pool if k not in used]:
            self._retire_backend(self._pool.pop(key))
        routers = {id(lv.router) for lv in new.values() if lv.router is not None}
        captures = {id(lv.capture) for lv in new.values() if lv.capture is not None}
        for lv in old.values():
            if lv.router is not None and id(lv.router) not in routers:
                self._retire(lv.router.close)
                routers.add(id(lv.router))
            if lv.capture is not None and id(lv.capture) not in captures:
                self._retire(lv.capture.close)
                captures.add(id(lv.capture))

    def _retire_backend(self, backend: VariantBackend) -> None:
        self._retire(backend.close)

    def _retire(self, closer: Callable[[], None]) -> None:
        with self._retired_lock:
            self._retired.append((time.monotonic() + self.retire_grace_s, closer))
        if self.retire_grace_s <= 0:
            self._run_retired()

    def _run_retired(self, everything: bool = False) -> None:
        now = time.monotonic()
        while True:
            with self._retired_lock:
                if not self._retired or not (everything or self._retired[0][0] <= now):
                    return
                _, closer = self._retired.pop(0)
            try:
                closer()
            except Exception:
                log.exception("closing a replaced backend failed")

    # -- the request path ---------------------------------------------------------------------------
    def _kick(self, now: float) -> None:
        """Start a version check in the worker thread (the request does not wait for it)."""
        self._next_check = now + self.reload_interval_s
        if self._poll_task is not None or self._closed:
            return
        pending = self._pending
        if pending is None or pending.done():
            with contextlib.suppress(RuntimeError):  # shut down meanwhile
                self._pending = self._executor.submit(self._refresh_quietly)

    async def _find(self, name: str) -> _Live:
        live = self.live.get(name)
        if live is None and time.perf_counter() - self._last_forced > 0.05:
            self._last_forced = time.perf_counter()
            await self.refresh_async()
            live = self.live.get(name)
        if live is None:
            names = sorted(self.live)
            known = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
            if self.endpoint is not None:
                raise _EndpointNotFound(f"this server serves endpoint {self.endpoint!r} only, not {name[:200]!r}")
            raise _EndpointNotFound(f"no endpoint named {name[:200]!r} (endpoints: {known}); deploy one with "
                                    f"`loopml endpoints deploy NAME --model M:V`")
        return live

    async def _body(self, request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the request body has {int(declared):,} bytes; this endpoint takes at most "
                                  f"{limit:,} (send fewer rows per request)")
        body = await request.body()
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body has {len(body):,} bytes; this endpoint takes at most "
                                  f"{limit:,} (send fewer rows per request)")
        return body

    async def invoke(self, request: Request, name: str) -> Response:
        """Answer one invocation of endpoint ``name``."""
        t0 = time.perf_counter()
        if t0 >= self._next_check:
            self._kick(t0)
        live = self.live.get(name)
        variant = ""
        model_s = 0.0
        try:
            if live is None:
                live = await self._find(name)
            if live.error is not None:
                raise ServiceUnavailable(live.error)
            headers = request.headers
            if live.keys is not None:
                _auth.check(name, live.keys, headers.get("authorization"), headers.get(_auth.API_KEY_HEADER))
            custom = headers.get(CUSTOM_ATTRIBUTES)
            if custom is not None and len(custom) > _MAX_CUSTOM_ATTRIBUTES:
                raise InvalidInput(f"X-Amzn-SageMaker-Custom-Attributes has {len(custom)} characters; "
                                   f"at most {_MAX_CUSTOM_ATTRIBUTES}")
            inference_id = headers.get(INFERENCE_ID)
            if inference_id is not None and not 0 < len(inference_id) <= _MAX_INFERENCE_ID:
                raise InvalidInput(f"X-Amzn-SageMaker-Inference-Id must have 1 to {_MAX_INFERENCE_ID} characters, "
                                   f"got {len(inference_id)}")
            body = await self._body(request, live.max_payload)
            router = live.router
            if router is not None:
                variant = live.picker.pick(0.0, headers.get(TARGET_VARIANT))
                target, backend = await router.get(headers.get(TARGET_MODEL))
                model_ref = router.model_of(target).model
            else:
                if headers.get(TARGET_MODEL):
                    raise InvalidInput(f"endpoint {name!r} is not a multi-model endpoint; drop the "
                                       "X-Amzn-SageMaker-Target-Model header")
                variant = live.picker.pick(self._rng.random(), headers.get(TARGET_VARIANT))
                backend = live.backends[variant]
                model_ref = live.models[variant]
            content_type = headers.get("content-type")
            result = await backend.invoke(body, content_type, headers.get("accept"))
            model_s = result.model_ms / 1e3
            out_headers = {INVOKED_VARIANT: variant}
            if custom:
                out_headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
            total = time.perf_counter() - t0
            background = None
            if live.capture is not None:
                background = BackgroundTask(
                    _capture, live.capture, variant, model_ref, inference_id, body,
                    content_type or _codecs.JSON, result.body, result.content_type, total * 1e3, backend.input_names)
            response = Response(result.body, media_type=result.content_type, headers=out_headers,
                                background=background)
            self.metrics.observe(name, variant, 200, total, model_s)
            return response
        except LoopmlError as e:
            response = error_response(e)
        except Exception as e:
            log.exception("invocation of endpoint %s failed", name)
            response = error_response(_InternalFailure(f"the server failed: {type(e).__name__}: {e}"))
        if live is not None:
            self.metrics.observe(name, variant, response.status_code, time.perf_counter() - t0, model_s)
        if variant:
            response.headers[INVOKED_VARIANT] = variant
        return response

    def backend_views(self) -> list[tuple[str, str, VariantBackend]]:
        """``(endpoint, variant, backend)`` of every variant served now (for the metrics of replicas)."""
        return [(name, variant, backend) for name, lv in list(self.live.items())
                for variant, backend in list(lv.backends.items())]

    def describe(self) -> list[dict[str, Any]]:
        """What the server serves now, for humans (``GET /endpoints``)."""
        return [self.live[n].describe() for n in sorted(self.live)]

    @property
    def healthy(self) -> bool:
        """Every served endpoint is loaded (and, on a single-endpoint server, it exists)."""
        if self.endpoint is not None and self.endpoint not in self.live:
            return False
        return all(lv.error is None for lv in self.live.values())

    # -- lifetime -----------------------------------------------------------------------------------
    def start_polling(self) -> None:
        """Poll the config versions from the running event loop (instead of on requests)."""
        if self._poll_task is None:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.reload_interval_s)
            await self.refresh_async()

    async def aclose(self) -> None:
        """:meth:`close` from the event loop, after polling stops (at shutdown: it may block briefly)."""
        task, self._poll_task = self._poll_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.close()

    def close(self) -> None:
        """Close every backend, capture writer and the metrics flusher (a last flush included)."""
        if self._closed:
            return
        self._closed = True
        with self._sync_lock:
            live, self.live = self.live, {}
            for lv in live.values():
                if lv.router is not None:
                    self._retire(lv.router.close)
                if lv.capture is not None:
                    self._retire(lv.capture.close)
            for backend in self._pool.values():
                self._retire(backend.close)
            self._pool.clear()
        self._executor.shutdown(wait=True)
        self._run_retired(everything=True)
        self.metrics.close()


async def _capture(writer: CaptureWriter, variant: str, model: str, inference_id: str | None, body: bytes,
                   content_type: str, out: bytes, out_type: str, latency_ms: float, columns: list[str]) -> None:
    writer.record(variant=variant, model=model, inference_id=inference_id, request_body=body,
                  request_content_type=content_type, response_body=out, response_content_type=out_type,
                  latency_ms=latency_ms, input_columns=columns)


# -- errors -------------------------------------------------------------------------------------------
def error_response(e: LoopmlError) -> Response:
    """The JSON error of a LoopmlError: ``{"message", "code"}``, code also in ``x-amzn-ErrorType``."""
    doc: dict[str, Any] = {"message": str(e), "code": e.code}
    if isinstance(e, ModelError):
        doc.update(OriginalStatusCode=500, OriginalMessage=str(e), LogStreamArn="")
    return Response(orjson.dumps(doc), status_code=e.http_status, media_type="application/json",
                    headers={"x-amzn-ErrorType": e.code})


def _plain_error(status: int, message: str, code: str) -> Response:
    return Response(orjson.dumps({"message": message, "code": code}), status_code=status,
                    media_type="application/json", headers={"x-amzn-ErrorType": code})


def _install_error_handlers(app: FastAPI) -> None:
    async def loopml_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoopmlError)
        return error_response(exc)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
                             for err in exc.errors())
        return _plain_error(400, f"bad request: {problems}", "ValidationError")

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "ValidationError")
        if exc.status_code >= 500:
            code = "InternalFailure"
        return _plain_error(exc.status_code, str(exc.detail), code)

    app.add_exception_handler(LoopmlError, loopml_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


# -- the OpenAPI description of the invocation routes ----------------------------------------------------
def _header(name: str, description: str, max_length: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if max_length is not None:
        schema["maxLength"] = max_length
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


_RECORD: dict[str, Any] = {"type": "object", "description": "One record: input column -> value.",
                           "additionalProperties": True}
_ERROR: dict[str, Any] = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"message": {"type": "string"}, "code": {"type": "string"}},
    "required": ["message", "code"]}}}}
_INVOKE_OPENAPI: dict[str, Any] = {
    "parameters": [
        _header("Accept", "application/json (default), application/jsonlines or text/csv."),
        _header("X-Amzn-SageMaker-Target-Variant", "Send the request to this production variant."),
        _header("X-Amzn-SageMaker-Target-Model", "The model of a multi-model endpoint."),
        _header("X-Amzn-SageMaker-Custom-Attributes", "Opaque; echoed back.", _MAX_CUSTOM_ATTRIBUTES),
        _header("X-Amzn-SageMaker-Inference-Id", "The caller's id of this request, kept with captured data.",
                _MAX_INFERENCE_ID),
        _header("X-Loopml-Api-Key", "The API key, for endpoints that require one (or Authorization: Bearer)."),
    ],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [
            {"type": "array", "items": _RECORD},
            {"type": "object", "properties": {"instances": {"type": "array"}}, "required": ["instances"]},
            _RECORD,
        ]}},
        "application/jsonlines": {"schema": {"type": "string", "description": "One JSON record per line."}},
        "text/csv": {"schema": {"type": "string", "description": "No header; columns in signature order."}},
    }},
    "responses": {
        "200": {"description": "Predictions.", "headers": {
            INVOKED_VARIANT: {"schema": {"type": "string"}, "description": "The variant that answered."}},
            "content": {"application/json": {"schema": {"type": "object", "properties": {
                "predictions": {"type": "array", "items": {"type": "object"}},
                "classes": {"type": "array"}}}},
                "application/jsonlines": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}}},
        **{str(code): {"description": text, **_ERROR} for code, text in (
            (400, "Bad input (the message names the problem)."), (401, "No API key."), (403, "A wrong API key."),
            (404, "No such endpoint."), (406, "An Accept the server cannot write."),
            (413, "Too many rows or bytes."), (415, "An unsupported Content-Type."),
            (424, "The model failed (ModelError)."), (503, "The endpoint could not be loaded."))},
    },
}


# -- the app ------------------------------------------------------------------------------------------
def create_app(
    ws: Workspace,
    *,
    endpoint: str | None = None,
    reload_interval_s: float = 0.5,
    metrics_flush_interval_s: float = 5.0,
    capture_flush_interval_s: float = 1.0,
    streams: bool = False,
    backend_factory: BackendFactory | None = None,
    seed: int | None = None,
    retire_grace_s: float = 2.0,
) -> FastAPI:
    """The ASGI app serving the workspace's endpoints (``loopml serve`` runs it on uvicorn).

    Parameters
    ----------
    ws
        The workspace.
    endpoint
        Serve this endpoint only; ``POST /invocations`` answers with it (the container contract).
    reload_interval_s
        Config changes apply within about this many seconds.
    metrics_flush_interval_s
        Seconds between writes of the aggregated metrics to ``ws.metrics``.
    capture_flush_interval_s
        Most seconds a captured request waits before reaching its file.
    streams
        Also mount stream ingestion (``POST /streams/{name}/records``).
    backend_factory
        Makes the backend of each variant (default: as the endpoint's config asks; see
        :func:`default_backend`).
    seed
        Seed of the weighted variant choice.
    retire_grace_s
        Seconds a replaced backend keeps running for requests in flight.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.server`` is the :class:`Server`; close it (or run the app's
        lifespan) to stop its threads.

    Raises
    ------
    NotFound
        ``endpoint`` does not exist.
    """
    from loopml import __version__

    if endpoint is not None:
        get_endpoint(ws, endpoint)  # NotFound now, not on the first request
    server = Server(ws, endpoint=endpoint, reload_interval_s=reload_interval_s,
                    metrics_flush_interval_s=metrics_flush_interval_s,
                    capture_flush_interval_s=capture_flush_interval_s, backend_factory=backend_factory,
                    seed=seed, retire_grace_s=retire_grace_s)
    ingestion = None
    try:
        server.refresh()
        if streams:
            from loopml.data.streams.http import StreamIngestion

            ingestion = StreamIngestion(ws)
    except BaseException:
        server.close()
        raise

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        server.start_polling()
        try:
            yield
        finally:
            await server.aclose()
            if ingestion is not None:
                ingestion.close()

    kwargs: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI).parameters:
        # no per-request check for OpenTelemetry providers on the hot path
        kwargs["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="loopml serve", version=__version__, lifespan=lifespan, redoc_url=None,
                  description="Real-time inference: the SageMaker container contract and InvokeEndpoint.", **kwargs)
    _install_error_handlers(app)
    app.state.server = server

    async def ping(_request: Request) -> Response:
        """Health check: 200 when the endpoints are loaded."""
        if not server.healthy:
            return _plain_error(503, "not every endpoint is loaded; see GET /endpoints", "ServiceUnavailable")
        return Response(b'{"status":"Healthy"}', media_type="application/json")

    async def invocations(request: Request) -> Response:
        """The container contract: invoke the endpoint this server was started for."""
        if endpoint is None:
            names = ", ".join(sorted(server.live)) or "none"
            return error_response(InvalidInput(
                f"this server hosts every endpoint of the workspace (endpoints: {names}); POST to "
                "/endpoints/{name}/invocations, or start it with `loopml serve --endpoint NAME`"))
        return await server.invoke(request, endpoint)

    async def invoke_endpoint(request: Request) -> Response:
        """InvokeEndpoint: predictions of endpoint ``name``."""
        return await server.invoke(request, request.path_params["name"])

    async def metrics(_request: Request) -> Response:
        """Prometheus metrics of this server."""
        return Response(server.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    async def endpoints(_request: Request) -> Response:
        """The endpoints served now: variants, weights, models, loaded targets."""
        return Response(orjson.dumps({"endpoints": server.describe(), "pid": os.getpid()}),
                        media_type="application/json")

    # Plain Starlette routes: no dependency solving per request. Their OpenAPI
    # description comes from the documentation-only routes below.
    routes = [("/ping", ping, "GET"), ("/invocations", invocations, "POST"),
              ("/endpoints/{name}/invocations", invoke_endpoint, "POST"), ("/metrics", metrics, "GET"),
              ("/endpoints", endpoints, "GET")]
    for path, handler, method in routes:
        app.router.routes.append(Route(path, handler, methods=[method]))

    async def _doc(name: str = Path(..., description="The endpoint.")) -> Response:  # pragma: no cover
        raise AssertionError("documentation only")

    async def _doc_plain() -> Response:  # pragma: no cover
        raise AssertionError("documentation only")

    docs = [
        APIRoute("/ping", _doc_plain, methods=["GET"], response_class=Response, summary="Health check",
                 description="200 when every endpoint is loaded (the container contract).",
                 responses={200: {"description": "Healthy."}, 503: {"description": "Not loaded.", **_ERROR}}),
        APIRoute("/invocations", _doc_plain, methods=["POST"], response_class=Response,
                 summary="Invoke (single-endpoint server)", openapi_extra=_INVOKE_OPENAPI),
        APIRoute("/endpoints/{name}/invocations", _doc, methods=["POST"], response_class=Response,
                 summary="InvokeEndpoint", openapi_extra=_INVOKE_OPENAPI),
        APIRoute("/metrics", _doc_plain, methods=["GET"], response_class=Response, summary="Prometheus metrics",
                 responses={200: {"description": "Prometheus text.", "content": {"text/plain": {}}}}),
        APIRoute("/endpoints", _doc_plain, methods=["GET"], response_class=Response, summary="The endpoints served",
                 responses={200: {"description": "The endpoints.", "content": {"application/json": {}}}}),
    ]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                             routes=[*docs, *app.routes])
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if ingestion is not None:
        app.include_router(ingestion.router)
        app.state.ingestion = ingestion
    return app


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` (several workers): workspace ``$LOOPML_HOME``, endpoint
    ``$LOOPML_SERVE_ENDPOINT`` (optional), ``$LOOPML_SERVE_STREAMS``, ``$LOOPML_SERVE_RELOAD_INTERVAL``,
    ``$LOOPML_SERVE_METRICS_INTERVAL``."""
    from loopml.workspace import Workspace

    env = os.environ
    ws = Workspace.open()
    return create_app(ws, endpoint=env.get("LOOPML_SERVE_ENDPOINT") or None,
                      streams=env.get("LOOPML_SERVE_STREAMS") == "1",
                      reload_interval_s=float(env.get("LOOPML_SERVE_RELOAD_INTERVAL") or 0.5),
                      metrics_flush_interval_s=float(env.get("LOOPML_SERVE_METRICS_INTERVAL") or 5.0))


__all__ = [
    "BackendFactory",
    "LocalBackend",
    "ModelCache",
    "Server",
    "VariantBackend",
    "app_from_env",
    "create_app",
    "default_backend",
    "error_response",
    "local_backend",
]
