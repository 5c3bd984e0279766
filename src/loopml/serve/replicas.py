"""Replicas: an endpoint variant served by a bounded, autoscaled pool of worker processes.

``loopml endpoints deploy EP --model M:V --replicas MIN:MAX [--target-inflight N]``
serves each variant of EP from between MIN and MAX worker processes behind
the one ``loopml serve`` process; ``--serverless`` is the same pool with a
minimum of zero (see :mod:`loopml.serve.serverless`).

How a request reaches a replica, and why this way:

- each replica is a process holding one loaded :class:`~loopml.serve.runtime.Predictor`
  and one end of a Unix socket pair. The server writes the request (content
  type, accept, body) as one length-prefixed frame and reads the answer frame
  back with the event loop's own non-blocking socket calls: no pickling, no
  executor thread, no result queue. One frame each way is the least a
  process hop can cost (about 50-100 us on loopback, measured against a
  ``concurrent.futures.ProcessPoolExecutor`` round trip of 300+ us, which also
  cannot stop one chosen worker when load drops);
- a replica serves one request at a time (the model holds the GIL anyway);
  requests beyond the free replicas wait in a FIFO queue, and the newest idle
  replica is reused first, so extra replicas go idle and can be stopped;
- replicas are forked from a *zygote*: a process that imported numpy, pandas,
  pyarrow and the model libraries once (:class:`Zygote`), so starting one
  costs a fork plus the model load, not the imports. (multiprocessing's
  forkserver would also re-import the server's ``__main__`` module in every
  child; the zygote does not);
- a manager thread per pool ticks every 0.1 s: it records the number of
  requests in flight, asks the :class:`~loopml.serve.autoscale.Autoscaler`
  what to do, starts replicas or stops idle ones (never a busy one), replaces
  dead ones and records every start's time as a cold start.

The pool exports ``Replicas`` and ``ColdStartLatency`` (see
:meth:`ReplicaPool.stats`), which the server writes to ``/metrics`` and the
metrics table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from loopml import errors as _errors
from loopml.errors import LoopmlError, ModelError, ServiceUnavailable, Throttled
from loopml.serve.autoscale import Autoscaler, ScalingConfig
from loopml.serve.runtime import InvokeResult

if TYPE_CHECKING:
    from loopml.serve.app import ModelCache
    from loopml.serve.endpoints import EndpointConfig

log = logging.getLogger(__name__)

#: imported once by the zygote, so that replicas forked from it start without paying for them
PRELOAD = (
    "numpy", "pandas", "pyarrow", "orjson", "xgboost", "lightgbm", "sklearn", "scipy.special",
    "loopml.train.package", "loopml.train.algorithms._boosting", "loopml.train.algorithms._sklearn",
    "loopml.serve.runtime", "loopml.serve.replicas",
)
_HEADER = struct.Struct("<I")
_REQ = struct.Struct("<HH")
_OK = struct.Struct("<IdH")
_NONE = 0xFFFF
#: seconds a replica may take to load its model
START_TIMEOUT_S = 120.0
#: seconds a request may wait for a free replica before a 503
QUEUE_TIMEOUT_S = 60.0
TICK_S = 0.1



class Zygote:
    """A process that imported :data:`PRELOAD` once and forks replicas when asked.

    The server passes it one end of each replica's socket (``SCM_RIGHTS`` over a
    ``SOCK_SEQPACKET`` pair) with the :class:`WorkerSpec`; the zygote forks, the
    child becomes the replica and the zygote answers with its pid. Replicas are
    reaped by the zygote; the server watches them through their sockets and pids.
    It exits when the server's end of its control socket closes.
    """

    def __init__(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        import subprocess
        import sys

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = ("import sys; from loopml.serve.replicas import zygote_main; "
                "zygote_main(int(sys.argv[1]), sys.argv[2:])")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno()), *[p for p in sys.path if p]],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        ours.settimeout(timeout_s)
        try:
            hello = ours.recv(4096)
        except (OSError, TimeoutError) as e:
            self.close()
            raise ServiceUnavailable(f"the replica zygote did not start within {timeout_s:g} s: {e}") from None
        if not hello:
            self.close()
            raise ServiceUnavailable(f"the replica zygote exited at start (code {self.process.poll()})")

    def alive(self) -> bool:
        """Whether the zygote still runs."""
        return self.process.poll() is None

    def spawn(self, sock: socket.socket, spec: WorkerSpec) -> int:
        """Fork a replica serving on ``sock`` (its end of the pair); return its pid."""
        payload = orjson.dumps(spec.__dict__)
        with self._lock:
            socket.send_fds(self._sock, [payload], [sock.fileno()])
            answer = self._sock.recv(4096)
        if not answer:
            raise ServiceUnavailable("the replica zygote exited; it restarts on the next replica start")
        doc = orjson.loads(answer)
        if "pid" not in doc:
            raise ServiceUnavailable(f"the replica zygote could not fork: {doc.get('error')}")
        return int(doc["pid"])

    def close(self) -> None:
        """Stop the zygote (running replicas keep serving until their sockets close)."""
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(Exception):
            self.process.wait(5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


_zygote: Zygote | None = None
_zygote_lock = threading.Lock()


def zygote() -> Zygote:
    """This process's zygote, started (and imports done) on first use, restarted if it died."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive():
            _zygote = Zygote()
        return _zygote


def warm_zygote() -> None:
    """Start the zygote now and wait until it has imported :data:`PRELOAD`."""
    zygote()


def zygote_main(fd: int, paths: list[str]) -> None:
    """The zygote process: import :data:`PRELOAD`, then fork a replica per request on control socket ``fd``."""
    import importlib
    import sys

    sys.path[:] = list(dict.fromkeys([*paths, *sys.path]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # replicas are reaped as they exit
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    ctl = socket.socket(fileno=fd)
    ctl.send(b'{"ready":true}')
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 16, 1)
        except OSError:
            return
        if not msg:
            return
        if not fds:
            ctl.send(orjson.dumps({"error": "no socket came with the request"}))
            continue
        try:
            spec = WorkerSpec(**orjson.loads(msg))
            pid = os.fork()
        except Exception as e:
            os.close(fds[0])
            ctl.send(orjson.dumps({"error": f"{type(e).__name__}: {e}"}))
            continue
        if pid == 0:  # the replica
            try:
                ctl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                worker_main(socket.socket(fileno=fds[0]), spec)
            finally:
                os._exit(0)
        os.close(fds[0])
        ctl.send(orjson.dumps({"pid": pid}))


# -- frames ------------------------------------------------------------------------------------------
def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return bytes(buf)


def _recv(sock: socket.socket) -> bytes | None:
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    (n,) = _HEADER.unpack(head)
    return _recv_exact(sock, n) if n else b""


def _text(value: str | None) -> bytes:
    return b"" if value is None else value.encode("utf-8", "replace")[:4000]


def request_frame(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    """The frame of one request: ``R``, the two header lengths, the headers, the body."""
    ct, acc = _text(content_type), _text(accept)
    payload = b"R" + _REQ.pack(_NONE if content_type is None else len(ct), _NONE if accept is None else len(acc))
    return _HEADER.pack(len(payload) + len(ct) + len(acc) + len(body)) + payload + ct + acc + body


def _parse_request(msg: bytes) -> tuple[str | None, str | None, bytes]:
    a, b = _REQ.unpack_from(msg, 1)
    pos = 1 + _REQ.size
    ct = None if a == _NONE else msg[pos:pos + a].decode("utf-8", "replace")
    pos += 0 if a == _NONE else a
    acc = None if b == _NONE else msg[pos:pos + b].decode("utf-8", "replace")
    pos += 0 if b == _NONE else b
    return ct, acc, msg[pos:]


class _RemoteError(LoopmlError):
    """A LoopmlError raised in a replica whose class this process does not know by name."""


def _error_payload(e: BaseException) -> bytes:
    if isinstance(e, LoopmlError):
        doc = {"error": type(e).__name__, "status": e.http_status, "code": e.code, "message": str(e)}
    elif isinstance(e, MemoryError):
        doc = {"error": "ModelError", "status": 424, "code": "ModelError",
               "message": "the model ran out of memory in its replica (see --memory-mb)"}
    else:
        doc = {"error": "ModelError", "status": 424, "code": "ModelError",
               "message": f"the model failed: {type(e).__name__}: {e}"}
    return b"E" + orjson.dumps(doc)


def _raise_error(payload: bytes) -> None:
    doc = orjson.loads(payload[1:])
    cls = getattr(_errors, str(doc.get("error")), None)
    message = str(doc.get("message"))
    if isinstance(cls, type) and issubclass(cls, LoopmlError) and cls.http_status == doc.get("status"):
        raise cls(message)
    e = _RemoteError(message)
    e.http_status = int(doc.get("status") or 500)
    e.code = str(doc.get("code") or "InternalFailure")
    raise e


def parse_response(payload: bytes) -> InvokeResult:
    """The :class:`InvokeResult` of a replica's answer frame (raises the replica's error)."""
    kind = payload[:1]
    if kind == b"O":
        n_rows, model_ms, ct_len = _OK.unpack_from(payload, 1)
        pos = 1 + _OK.size
        ct = payload[pos:pos + ct_len].decode()
        return InvokeResult(payload[pos + ct_len:], ct, int(n_rows), [], [], float(model_ms))
    if kind == b"E":
        _raise_error(payload)
    raise ModelError(f"the replica answered with an unknown frame {kind!r}")


# -- the worker process --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerSpec:
    """What a replica loads: a verified package folder, its id, the request limits, a memory limit."""

    folder: str
    sha256: str
    max_rows: int
    max_payload_bytes: int
    memory_mb: int | None = None


def worker_main(sock: socket.socket, spec: WorkerSpec) -> None:
    """A replica's life: limit memory, load the model, say ready, answer frames until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C stops the server, which then closes us
    sock.setblocking(True)
    t0 = time.perf_counter()
    try:
        from loopml.serve.serverless import apply_memory_limit

        memory = apply_memory_limit(spec.memory_mb)
        from loopml.serve.runtime import Predictor
        from loopml.train.package import load_model_package

        predictor = Predictor(load_model_package(spec.folder, sha256=spec.sha256), max_rows=spec.max_rows,
                              max_payload_bytes=spec.max_payload_bytes)
    except BaseException as e:  # tell the pool why, then stop
        with contextlib.suppress(OSError):
            _send(sock, b"F" + orjson.dumps({"message": f"{type(e).__name__}: {e}"}))
        return
    _send(sock, b"Y" + orjson.dumps({"pid": os.getpid(), "load_ms": (time.perf_counter() - t0) * 1e3,
                                     "memory": memory, "input_names": predictor.input_names}))
    while True:
        try:
            msg = _recv(sock)
        except OSError:
            return
        if msg is None:
            return
        try:
            ct, accept, body = _parse_request(msg)
            r = predictor.invoke(body, ct, accept)
            ctb = r.content_type.encode()
            out = b"O" + _OK.pack(r.n_rows, r.model_ms, len(ctb)) + ctb + r.body
        except BaseException as e:  # every failure is an answer, never a dead replica
            out = _error_payload(e)
        try:
            _send(sock, out)
        except OSError:
            return


# -- one replica, seen from the server ----------------------------------------------------------------------
class Replica:
    """One worker process (a child of the zygote) and the server's end of its socket."""

    def __init__(self, pid: int, sock: socket.socket, started: float) -> None:
        self.pid = pid
        self.sock = sock
        self.started = started
        self.ready_ms = 0.0
        self.info: dict[str, Any] = {}
        self.last_used = time.monotonic()
        self.busy = False
        self.stopped = False
        self._buf = bytearray(65536)

    def alive(self) -> bool:
        """Whether the process still exists."""
        if self.stopped:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - another user's process took the pid
            return True
        return True

    async def call(self, frame: bytes) -> bytes:
        """Send one request frame and return the answer's payload (raise ModelError if the replica died)."""
        loop = asyncio.get_running_loop()
        sock = self.sock
        try:
            await loop.sock_sendall(sock, frame)
        except OSError:
            raise self._died() from None
        buf = self._buf
        view = memoryview(buf)
        got = 0
        need = 4
        while got < need:
            try:
                k = await loop.sock_recv_into(sock, view[got:])
            except OSError:
                k = 0
            if k == 0:
                raise self._died()
            got += k
            if need == 4 and got >= 4:
                need = 4 + _HEADER.unpack_from(buf)[0]
                if need > len(buf):
                    bigger = bytearray(need)
                    bigger[:got] = buf[:got]
                    buf, view = bigger, memoryview(bigger)
        return bytes(buf[4:need])

    def _died(self) -> ModelError:
        return ModelError(f"the replica process serving this request (pid {self.pid}) died, maybe out of "
                          "memory; it is being replaced")

    def stop(self, wait_s: float = 5.0) -> None:
        """Close the socket (the worker exits on EOF); kill it if it still runs after ``wait_s``."""
        if self.stopped:
            return
        with contextlib.suppress(OSError):
            self.sock.close()
        deadline = time.monotonic() + wait_s
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.stopped = True


def start_replica(spec: WorkerSpec, *, timeout_s: float = START_TIMEOUT_S) -> Replica:
    """Fork a replica from the zygote and wait until its model is loaded.

    Raises
    ------
    ServiceUnavailable
        The replica could not load its model (the message says why) or did not start in time.
    """
    z = zygote()
    t0 = time.perf_counter()
    parent, child = socket.socketpair()
    try:
        pid = z.spawn(child, spec)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    replica = Replica(pid, parent, t0)
    try:
        parent.settimeout(timeout_s)
        msg = _recv(parent)
    except (OSError, TimeoutError) as e:
        replica.stop(0)
        raise ServiceUnavailable(f"a replica did not start within {timeout_s:g} s: {e}") from None
    if msg is None or msg[:1] != b"Y":
        replica.stop(1)
        why = orjson.loads(msg[1:])["message"] if msg and msg[:1] == b"F" else "it exited while loading"
        raise ServiceUnavailable(f"a replica could not load model package {spec.sha256[:12]}: {why}")
    parent.setblocking(False)
    replica.info = dict(orjson.loads(msg[1:]))
    replica.ready_ms = (time.perf_counter() - t0) * 1e3
    return replica


# -- the pool -------------------------------------------------------------------------------------------------
@dataclass
class _Stats:
    starts: int = 0
    stops: int = 0
    failures: int = 0
    cold_starts: int = 0
    cold_start_ms_sum: float = 0.0
    last_cold_start_ms: float | None = None
    pending_cold_starts: list[float] = field(default_factory=list)
    throttled: int = 0


class ReplicaPool:
    """Between ``min_replicas`` and ``max_replicas`` worker processes for one model package, autoscaled.

    Parameters
    ----------
    spec
        What each replica loads.
    scaling
        The replica bounds and the autoscaling policy.
    tick_s
        Seconds between two autoscaling decisions.
    queue_timeout_s
        Longest wait of a request for a free replica (then 503).
    start_timeout_s
        Longest time a replica may take to load its model.
    """

    def __init__(self, spec: WorkerSpec, scaling: ScalingConfig, *, tick_s: float = TICK_S,
                 queue_timeout_s: float = QUEUE_TIMEOUT_S, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.spec = spec
        self.scaling = scaling
        self.tick_s = float(tick_s)
        self.queue_timeout_s = float(queue_timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self.autoscaler = Autoscaler(scaling)
        #: requests in flight: running on a replica or waiting for one
        self.inflight = 0
        self._lock = threading.Lock()
        self._idle: deque[Replica] = deque()
        self._all: list[Replica] = []
        self._starting = 0
        self._waiters: deque[asyncio.Future[Replica]] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._stats = _Stats()
        self._memory = ""
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="loopml-replicas", daemon=True)
        self._thread.start()

    # -- the request side (event loop) ----------------------------------------------------------------
    async def acquire(self) -> Replica:
        """A free replica (waiting for one, FIFO, at most ``queue_timeout_s``); pair with :meth:`release`."""
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("this variant is being replaced; retry the request")
            while self._idle:
                r = self._idle.pop()
                if not r.alive():  # died while idle: its request never started, so try another
                    self._all.remove(r)
                    with contextlib.suppress(OSError):
                        r.sock.close()
                    r.stopped = True
                    continue
                r.busy = True
                return r
            fut: asyncio.Future[Replica] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            cold = not self._all
        if cold:
            self._wake.set()
        try:
            return await asyncio.wait_for(fut, self.queue_timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            raise ServiceUnavailable(self._no_replica_message()) from None
        except asyncio.CancelledError:
            # cancelled (the client went away) just as a replica was handed over: give it back
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release(fut.result())
            raise

    def _no_replica_message(self) -> str:
        why = f" (last start failure: {self.last_error})" if self.last_error else ""
        return (f"no replica became free within {self.queue_timeout_s:g} s ({len(self._all)} running, at most "
                f"{self.scaling.max_replicas}){why}; retry later or raise the maximum with --replicas MIN:MAX")

    def release(self, replica: Replica, *, healthy: bool = True) -> None:
        """Give a replica back after a request; an unhealthy one is stopped and replaced."""
        with self._lock:
            replica.busy = False
            replica.last_used = time.monotonic()
            if not healthy or self._closed or not replica.alive():
                if replica in self._all:
                    self._all.remove(replica)
                drop = True
            else:
                drop = False
                self._hand(replica)
        if drop:
            threading.Thread(target=replica.stop, args=(1.0,), daemon=True).start()
            self._wake.set()

    def _hand(self, replica: Replica) -> None:
        """Give ``replica`` to the oldest waiting request, or make it idle (under the lock)."""
        while self._waiters:
            fut = self._waiters.popleft()
            if fut.done():
                continue
            replica.busy = True
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                fut.get_loop().call_soon_threadsafe(self._resolve, fut, replica)
                return
            replica.busy = False
        self._idle.append(replica)

    def _resolve(self, fut: asyncio.Future[Replica], replica: Replica) -> None:
        if fut.done():
            self.release(replica)
        else:
            fut.set_result(replica)

    async def invoke(self, frame: bytes) -> bytes:
        """Send one request frame to a free replica; return the answer payload."""
        self.inflight += 1
        try:
            replica = await self.acquire()
            ok = False
            try:
                payload = await replica.call(frame)
                ok = True
                return payload
            finally:
                self.release(replica, healthy=ok)
        finally:
            self.inflight -= 1

    # -- the manager thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        with contextlib.suppress(Exception):
            warm_zygote()
        while not self._closed:
            self._wake.wait(self.tick_s)
            self._wake.clear()
            if self._closed:
                break
            try:
                self._tick()
            except Exception:  # the pool must outlive any one failure
                log.exception("replica pool: the autoscaling tick failed")
        self._shutdown()

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            dead = [r for r in self._all if not r.busy and not r.alive()]
            for r in dead:
                self._all.remove(r)
                with contextlib.suppress(ValueError):
                    self._idle.remove(r)
        for r in dead:
            log.warning("replica %s exited; replacing it", r.pid)
            r.stop(0)
        self.autoscaler.observe(now, self.inflight)
        with self._lock:
            n = len(self._all)
            idle_for = [now - r.last_used for r in self._idle]
        delta = self.autoscaler.decide(now, n, idle_for)
        if delta > 0 and now >= self._retry_at:
            self._start(delta)
        elif delta < 0:
            self._stop_idle(-delta)

    def _start(self, n: int) -> None:
        n = min(n, self.scaling.max_replicas - len(self._all))
        for _ in range(max(n, 0)):
            if self._closed:
                return
            try:
                replica = start_replica(self.spec, timeout_s=self.start_timeout_s)
            except Exception as e:
                self._failed_start(e)
                return
            self._failures = 0
            self.last_error = None
            self._memory = str(replica.info.get("memory") or "")
            st = self._stats
            st.starts += 1
            st.cold_starts += 1
            st.cold_start_ms_sum += replica.ready_ms
            st.last_cold_start_ms = replica.ready_ms
            st.pending_cold_starts.append(replica.ready_ms)
            log.info("replica %s ready in %.0f ms", replica.pid, replica.ready_ms)
            with self._lock:
                if self._closed:
                    closed = True
                else:
                    closed = False
                    self._all.append(replica)
                    self._hand(replica)
            if closed:
                replica.stop(1)
                return

    def _failed_start(self, e: Exception) -> None:
        self._failures += 1
        self._stats.failures += 1
        self.last_error = str(e)
        self._retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** (self._failures - 1))
        log.error("replica pool: %s", e)
        with self._lock:
            if self._all:
                return
            waiters, self._waiters = list(self._waiters), deque()
        for fut in waiters:  # nothing can serve them: answer now instead of after the queue timeout
            with contextlib.suppress(RuntimeError):
                fut.get_loop().call_soon_threadsafe(_fail, fut, ServiceUnavailable(str(e)))

    def _stop_idle(self, n: int) -> None:
        with self._lock:
            victims: list[Replica] = []
            while self._idle and len(victims) < n and len(self._all) > self.scaling.min_replicas:
                r = self._idle.popleft()  # the one idle longest
                self._all.remove(r)
                self._stats.stops += 1
                victims.append(r)
        for r in victims:
            r.stop()
            log.info("replica %s stopped (scale-in)", r.pid)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            with self._lock:
                busy = [r for r in self._all if r.busy]
            if not busy:
                break
            time.sleep(0.05)
        with self._lock:
            everyone, self._all = list(self._all), []
            self._idle.clear()
            waiters, self._waiters = list(self._waiters), deque()
        for fut in waiters:
            with contextlib.suppress(RuntimeError):
                fut.get_loop().call_soon_threadsafe(
                    _fail, fut, ServiceUnavailable("this variant was replaced while the request waited; retry"))
        for r in everyone:
            r.stop(2.0)

    def wait_ready(self, n: int, timeout_s: float) -> None:
        """Block until ``n`` replicas run; ServiceUnavailable if a start fails first or time runs out."""
        deadline = time.monotonic() + timeout_s
        failures = self._stats.failures
        while len(self._all) < n:
            if self._stats.failures > failures:
                raise ServiceUnavailable(self.last_error or "a replica could not start")
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"{n} replica(s) did not start within {timeout_s:g} s")
            time.sleep(0.01)

    def close(self, wait: bool = False) -> None:
        """Stop scaling and stop every replica (busy ones once their request is answered)."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if wait:
            self._thread.join(40)

    # -- what the server exports ---------------------------------------------------------------------
    @property
    def replicas(self) -> int:
        """Replicas running now (busy or idle)."""
        return len(self._all)

    def stats(self) -> dict[str, Any]:
        """Counts for ``/metrics`` and ``GET /endpoints``."""
        st = self._stats
        return {"replicas": len(self._all), "busy": sum(1 for r in list(self._all) if r.busy),
                "inflight": self.inflight, "min_replicas": self.scaling.min_replicas,
                "max_replicas": self.scaling.max_replicas, "target_inflight": self.scaling.target_inflight,
                "starts": st.starts, "stops": st.stops, "start_failures": st.failures,
                "cold_starts": st.cold_starts, "cold_start_ms_sum": st.cold_start_ms_sum,
                "last_cold_start_ms": st.last_cold_start_ms, "throttled": st.throttled,
                "memory_limit": self._memory or ("none" if self.spec.memory_mb is None else "not started yet"),
                "last_error": self.last_error, "pids": [r.pid for r in list(self._all)]}

    def take_cold_starts(self) -> list[float]:
        """Cold-start times (ms) since the last call, for the metrics table."""
        st = self._stats
        out, st.pending_cold_starts = st.pending_cold_starts, []
        return out

    def count_throttled(self) -> None:
        """Count one request refused for concurrency."""
        self._stats.throttled += 1


def _fail(fut: asyncio.Future[Any], e: BaseException) -> None:
    if not fut.done():
        fut.set_exception(e)


# -- the variant backend ----------------------------------------------------------------------------------
class ReplicaBackend:
    """A variant served by a :class:`ReplicaPool` (the server's backend for ``--replicas`` and ``--serverless``).

    Parameters
    ----------
    cache
        The server's model cache (only its workspace is used: the model loads in the replicas).
    sha
        The model package.
    config
        The endpoint's config: its ``scaling`` or ``serverless`` settings and request limits.
    """

    def __init__(self, cache: ModelCache, sha: str, config: EndpointConfig, *, tick_s: float = TICK_S) -> None:
        from loopml.serve.serverless import ServerlessConfig
        from loopml.train.package import materialize_package, read_manifest

        folder = materialize_package(cache.ws, sha)
        manifest, _ = read_manifest(folder, sha256=sha)
        self.sha = sha
        self.input_names: list[str] = [str(c["name"]) for c in manifest["signature"]["inputs"]]
        self.size_bytes = 0
        serverless = config.extra.get("serverless")
        self.serverless = None if not serverless else ServerlessConfig.from_dict(serverless)
        if self.serverless is not None:
            scaling = self.serverless.scaling()
            memory: int | None = self.serverless.memory_mb
            self.max_concurrency: int | None = self.serverless.max_concurrency
        else:
            scaling = ScalingConfig.from_dict(config.extra.get("scaling") or {})
            memory = None
            self.max_concurrency = None
        spec = WorkerSpec(str(folder), sha, config.limits.max_rows, config.limits.max_payload_bytes, memory)
        self.pool = ReplicaPool(spec, scaling, tick_s=tick_s)
        if scaling.min_replicas:
            # off the request path (the server's reload thread): traffic moves here once the minimum runs
            try:
                self.pool.wait_ready(scaling.min_replicas, START_TIMEOUT_S + 30)
            except BaseException:
                self.pool.close()
                raise

    async def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> InvokeResult:
        """Answer one request on a replica (429 past the serverless max concurrency)."""
        pool = self.pool
        if self.max_concurrency is not None and pool.inflight >= self.max_concurrency:
            pool.count_throttled()
            raise Throttled(f"this serverless endpoint already has {pool.inflight} requests in flight, its "
                            f"max concurrency ({self.max_concurrency}); retry with backoff, or raise it with "
                            "`loopml endpoints deploy EP --serverless --max-concurrency N`")
        return parse_response(await pool.invoke(request_frame(body, content_type, accept)))

    def stats(self) -> dict[str, Any]:
        """The pool's counts, and whether the endpoint is serverless."""
        out = self.pool.stats()
        out["serverless"] = self.serverless is not None
        if self.max_concurrency is not None:
            out["max_concurrency"] = self.max_concurrency
        return out

    def take_cold_starts(self) -> list[float]:
        """Cold starts (ms) since the last call."""
        return self.pool.take_cold_starts()

    def close(self) -> None:
        """Stop the pool (requests in flight finish first)."""
        self.pool.close()


__all__ = [
    "PRELOAD",
    "Replica",
    "ReplicaBackend",
    "ReplicaPool",
    "WorkerSpec",
    "Zygote",
    "parse_response",
    "request_frame",
    "start_replica",
    "warm_zygote",
    "worker_main",
    "zygote",
    "zygote_main",
]
