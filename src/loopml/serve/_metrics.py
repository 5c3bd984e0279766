"""Serving metrics: Prometheus exposition and the workspace metrics table.

Every invocation is counted twice, cheaply, on the request path:

- in Prometheus objects of the app's own registry (``GET /metrics``):
  invocations, 4xx and 5xx errors, the latency histogram, and model latency
  against overhead, labelled by endpoint and variant;
- in a small per-(endpoint, variant) aggregate that a background thread turns,
  every flush interval, into points of the workspace's metrics table
  (``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors``,
  ``Invocation5XXErrorRate``, ``ModelLatency``, ``OverheadLatency``,
  ``LatencyP99``; milliseconds) in one batched write, for alarms and
  deployment guardrails.

As in SageMaker, a model failure (424 ``ModelError``: the model's own 500)
counts as a 5XX error, so a broken model raises the error rate.

Variants served by replicas (:mod:`loopml.serve.replicas`) also report their
replica count (``Replicas``, ``loopml_replicas``) and each replica start
(``ColdStartLatency`` in ms, ``loopml_cold_start_seconds``), read from the
backends at each flush and each scrape.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from loopml._util import utcnow

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: ``(endpoint, variant, backend)`` of the variants served now; backends with ``stats()`` report replicas
BackendViews = Callable[[], Sequence[tuple[str, str, Any]]]

#: the metric names written to the metrics table (dimensions: endpoint, variant)
INVOCATIONS = "Invocations"
ERRORS_4XX = "Invocation4XXErrors"
ERRORS_5XX = "Invocation5XXErrors"
#: 5XX errors / invocations of one flush interval (0 to 1): what deployment guardrails watch
ERROR_RATE_5XX = "Invocation5XXErrorRate"
#: replicas running at flush time (variants served by replicas)
REPLICAS = "Replicas"
#: milliseconds from a replica's start to its model being ready, one point per start
COLD_START_LATENCY = "ColdStartLatency"
MODEL_LATENCY = "ModelLatency"
OVERHEAD_LATENCY = "OverheadLatency"
LATENCY_P99 = "LatencyP99"
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: latency samples kept per key and interval for the p99 (a uniform reservoir beyond it)
_MAX_SAMPLES = 20_000


@dataclass
class _Agg:
    invocations: int = 0
    e4xx: int = 0
    e5xx: int = 0
    ok: int = 0
    model_ms: float = 0.0
    overhead_ms: float = 0.0
    latencies: list[float] = field(default_factory=list)
    seen: int = 0


class _Children:
    """The labelled Prometheus children of one (endpoint, variant), looked up once."""

    __slots__ = ("e4xx", "e5xx", "invocations", "latency", "model", "overhead")

    def __init__(self, m: ServeMetrics, endpoint: str, variant: str) -> None:
        self.invocations = m.invocations.labels(endpoint, variant)
        self.e4xx = m.errors_4xx.labels(endpoint, variant)
        self.e5xx = m.errors_5xx.labels(endpoint, variant)
        self.latency = m.latency.labels(endpoint, variant)
        self.model = m.model_latency.labels(endpoint, variant)
        self.overhead = m.overhead_latency.labels(endpoint, variant)


class ServeMetrics:
    """The metrics of one server: a Prometheus registry plus a flusher to ``ws.metrics``.

    Parameters
    ----------
    ws
        The workspace whose metrics table receives the aggregates (None: Prometheus only).
    flush_interval_s
        Seconds between two writes to the metrics table (0 or less: only on :meth:`flush`).
    backends
        Lists the variants served now with their backends (for replica counts and cold starts).
    """

    def __init__(self, ws: Workspace | None, *, flush_interval_s: float = 5.0,
                 backends: BackendViews | None = None) -> None:
        self.ws = ws
        self.flush_interval_s = float(flush_interval_s)
        self._backends = backends
        self.registry = CollectorRegistry(auto_describe=False)
        labels = ("endpoint", "variant")
        r = self.registry
        self.invocations = Counter("loopml_invocations", "Invocations of an endpoint variant.", labels, registry=r)
        self.errors_4xx = Counter("loopml_invocation_4xx_errors", "Invocations answered with a 4xx status.",
                                  labels, registry=r)
        self.errors_5xx = Counter("loopml_invocation_5xx_errors", "Invocations answered with a 5xx status.",
                                  labels, registry=r)
        self.latency = Histogram("loopml_invocation_latency_seconds", "Time to answer an invocation.",
                                 labels, buckets=_BUCKETS, registry=r)
        self.model_latency = Histogram("loopml_model_latency_seconds", "Time spent in the recipe and the model.",
                                       labels, buckets=_BUCKETS, registry=r)
        self.overhead_latency = Histogram("loopml_overhead_latency_seconds",
                                          "Time spent outside the model (decode, validate, encode, routing).",
                                          labels, buckets=_BUCKETS, registry=r)
        if backends is not None:
            self.registry.register(_ReplicaCollector(backends))
        self._children: dict[tuple[str, str], _Children] = {}
        self._agg: dict[tuple[str, str], _Agg] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._warned = False
        self.points_written = 0
        self._thread: threading.Thread | None = None
        if ws is not None and self.flush_interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="loopml-serve-metrics", daemon=True)
            self._thread.start()

    # -- the request path ------------------------------------------------------------------------
    def observe(self, endpoint: str, variant: str, status: int, total_s: float, model_s: float) -> None:
        """Count one invocation (``variant`` may be ``""`` when it failed before one was chosen)."""
        key = (endpoint, variant)
        ch = self._children.get(key)
        if ch is None:
            ch = self._children[key] = _Children(self, endpoint, variant)
        ch.invocations.inc()
        ch.latency.observe(total_s)
        ok = status < 400
        if status == 424:  # ModelError: the model's own failure, a 5XX as SageMaker counts it
            status = 500
        if ok:
            ch.model.observe(model_s)
            ch.overhead.observe(max(total_s - model_s, 0.0))
        elif status < 500:
            ch.e4xx.inc()
        else:
            ch.e5xx.inc()
        if self.ws is None:
            return
        total_ms = total_s * 1e3
        with self._lock:
            a = self._agg.get(key)
            if a is None:
                a = self._agg[key] = _Agg()
            a.invocations += 1
            if ok:
                a.ok += 1
                a.model_ms += model_s * 1e3
                a.overhead_ms += max(total_s - model_s, 0.0) * 1e3
            elif status < 500:
                a.e4xx += 1
            else:
                a.e5xx += 1
            a.seen += 1
            if len(a.latencies) < _MAX_SAMPLES:
                a.latencies.append(total_ms)
            else:
                j = random.randrange(a.seen)
                if j < _MAX_SAMPLES:
                    a.latencies[j] = total_ms

    # -- exposition ------------------------------------------------------------------------------
    def render(self) -> bytes:
        """The Prometheus text exposition of this server's metrics."""
        return generate_latest(self.registry)

    # -- the metrics table ----------------------------------------------------------------------------
    def flush(self) -> int:
        """Write the aggregates gathered since the last flush to ``ws.metrics``; return the points written."""
        if self.ws is None:
            return 0
        with self._lock:
            agg, self._agg = self._agg, {}
        extra = self._backend_points()
        if not agg and not extra:
            return 0
        try:
            from loopml.metrics import MetricPoint
        except ImportError:  # pragma: no cover - the metrics stage is part of loopml
            return 0
        import numpy as np

        now = utcnow()
        points = [MetricPoint(name, value, dims, now) for name, value, dims in extra]
        for (endpoint, variant), a in agg.items():
            dims = {"endpoint": endpoint, "variant": variant} if variant else {"endpoint": endpoint}
            points += [MetricPoint(INVOCATIONS, float(a.invocations), dims, now),
                       MetricPoint(ERRORS_4XX, float(a.e4xx), dims, now),
                       MetricPoint(ERRORS_5XX, float(a.e5xx), dims, now)]
            if a.invocations:
                points.append(MetricPoint(ERROR_RATE_5XX, a.e5xx / a.invocations, dims, now))
            if a.ok:
                points += [MetricPoint(MODEL_LATENCY, a.model_ms / a.ok, dims, now),
                           MetricPoint(OVERHEAD_LATENCY, a.overhead_ms / a.ok, dims, now)]
            if a.latencies:
                p99 = float(np.percentile(np.asarray(a.latencies), 99))
                points.append(MetricPoint(LATENCY_P99, p99, dims, now))
        try:
            n = int(self.ws.metrics.put_many(points))
        except Exception as e:  # metrics must never take the server down
            if not self._warned:
                log.warning("could not write serving metrics to the metrics table: %s", e)
                self._warned = True
            return 0
        self.points_written += n
        return n

    def _backend_points(self) -> list[tuple[str, float, dict[str, str]]]:
        """``Replicas`` of every variant served by replicas, and the cold starts since the last flush."""
        if self._backends is None:
            return []
        out: list[tuple[str, float, dict[str, str]]] = []
        seen: set[int] = set()
        try:
            views = list(self._backends())
        except Exception:  # metrics must never take the server down
            return []
        for endpoint, variant, backend in views:
            stats = getattr(backend, "stats", None)
            if stats is None:
                continue
            dims = {"endpoint": endpoint, "variant": variant}
            try:
                out.append((REPLICAS, float(stats()["replicas"]), dims))
                if id(backend) not in seen:  # a backend shared by variants reports its starts once
                    seen.add(id(backend))
                    out += [(COLD_START_LATENCY, float(ms), dims) for ms in backend.take_cold_starts()]
            except Exception as e:
                log.debug("replica stats of %s/%s failed: %s", endpoint, variant, e)
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def close(self) -> None:
        """Stop the flusher after a last flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush()


class _ReplicaCollector:
    """Prometheus view of the replica pools: count, busy, starts, cold-start time, throttled requests."""

    def __init__(self, backends: BackendViews) -> None:
        self._backends = backends

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        labels = ["endpoint", "variant"]
        replicas = GaugeMetricFamily("loopml_replicas", "Replica processes of a variant.", labels=labels)
        busy = GaugeMetricFamily("loopml_replicas_busy", "Replicas answering a request now.", labels=labels)
        inflight = GaugeMetricFamily("loopml_inflight_requests", "Requests running on or waiting for a replica.",
                                     labels=labels)
        starts = CounterMetricFamily("loopml_cold_starts", "Replica starts (each one a cold start).", labels=labels)
        seconds = CounterMetricFamily("loopml_cold_start_seconds", "Time from replica starts to ready models.",
                                      labels=labels)
        last = GaugeMetricFamily("loopml_cold_start_latency_seconds", "The last replica start, to a ready model.",
                                 labels=labels)
        throttled = CounterMetricFamily("loopml_throttled_requests", "Requests refused past max concurrency (429).",
                                        labels=labels)
        try:
            views = list(self._backends())
        except Exception:
            views = []
        for endpoint, variant, backend in views:
            get = getattr(backend, "stats", None)
            if get is None:
                continue
            try:
                st = get()
            except Exception:
                continue
            v = [endpoint, variant]
            replicas.add_metric(v, float(st.get("replicas", 0)))
            busy.add_metric(v, float(st.get("busy", 0)))
            inflight.add_metric(v, float(st.get("inflight", 0)))
            starts.add_metric(v, float(st.get("cold_starts", 0)))
            seconds.add_metric(v, float(st.get("cold_start_ms_sum", 0.0)) / 1e3)
            if st.get("last_cold_start_ms") is not None:
                last.add_metric(v, float(st["last_cold_start_ms"]) / 1e3)
            throttled.add_metric(v, float(st.get("throttled", 0)))
        yield from (replicas, busy, inflight, starts, seconds, last, throttled)


__all__ = [
    "COLD_START_LATENCY",
    "ERRORS_4XX",
    "ERRORS_5XX",
    "ERROR_RATE_5XX",
    "INVOCATIONS",
    "LATENCY_P99",
    "MODEL_LATENCY",
    "OVERHEAD_LATENCY",
    "PROMETHEUS_CONTENT_TYPE",
    "REPLICAS",
    "ServeMetrics",
]
