"""The tracker's write buffer: metrics, params, tags and run ends, written in batches.

Logging appends to in-memory lists under a lock (about a microsecond a call);
a background thread writes everything pending every ``flush_interval``
seconds, or sooner when ``batch_size`` rows wait, in one transaction of
``executemany`` statements. A new run's row and its end are queued like the
rest: a short run costs one transaction, and a run's status, its last points
and its ``run.finished``/``run.failed`` event commit together. A synchronous :meth:`_Writer.flush` (run exit, tracker close,
interpreter exit, any read through the tracker) writes whatever is pending.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml._util import utcnow
from loopml.store.models import Event as EventRow
from loopml.track.models import RunRow

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: (run_id, key, step, value or None for NaN, timestamp in seconds)
MetricRow = tuple[str, str, int, "float | None", float]


#: writers whose tracker was collected while their own thread ran: flushed at interpreter exit
_ORPHANS: set[_Writer] = set()


@atexit.register
def _flush_orphans() -> None:
    for writer in list(_ORPHANS):
        try:
            writer.close()
        except Exception as e:  # pragma: no cover - the database went away at exit
            log.error("tracking: could not write buffered data at exit: %s", e)
    _ORPHANS.clear()


@dataclass
class RunEnd:
    """A queued end of a run: its final status and the event to emit with it."""

    run_id: str
    status: str
    message: str | None
    end_time: datetime
    event: str
    payload: dict[str, Any]


@dataclass
class _Batch:
    #: new runs, inserted before anything that refers to them
    runs: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    #: (run_id, key) -> (step, value, timestamp) of the newest point in the batch
    latest: dict[tuple[str, str], tuple[int, float | None, float]] = field(default_factory=dict)
    params: list[tuple[str, str, str, float | None]] = field(default_factory=list)
    tags: dict[tuple[str, str], tuple[str, float | None]] = field(default_factory=dict)
    ends: list[RunEnd] = field(default_factory=list)

    def __len__(self) -> int:
        return (len(self.runs) + len(self.metrics) + len(self.params) + len(self.tags)
                + len(self.ends))


def _newer(new: tuple[int, float | None, float], old: tuple[int, float | None, float] | None) -> bool:
    return old is None or new[0] > old[0] or (new[0] == old[0] and new[2] >= old[2])


class _Writer:
    """Buffers tracking writes and flushes them in batches (one per tracker)."""

    def __init__(self, ws: Workspace, flush_interval: float, batch_size: int) -> None:
        self.ws = ws
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        #: past this many pending rows, a logging call writes them itself (bounds memory)
        self.max_pending = batch_size * 20
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending = _Batch()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._statements: dict[str, Any] | None = None

    # -- adding -----------------------------------------------------------------
    def add_run(self, row: dict[str, Any]) -> None:
        """Queue a new run row (written first in the next flush)."""
        self._ensure_thread()
        with self._lock:
            self._pending.runs.append(row)
            n = len(self._pending.runs)
        self._after_add(n)

    def add_metrics(self, rows: list[MetricRow]) -> None:
        """Queue metric points."""
        self._ensure_thread()
        with self._lock:
            p = self._pending
            p.metrics.extend(rows)
            latest = p.latest
            for run_id, key, step, value, ts in rows:
                point = (step, value, ts)
                k = (run_id, key)
                if _newer(point, latest.get(k)):
                    latest[k] = point
            n = len(p.metrics)
        self._after_add(n)

    def add_metric(self, run_id: str, key: str, step: int, value: float | None, ts: float) -> None:
        """Queue one metric point (the hot path of ``log_metric``)."""
        if self._thread is None or self._pid != os.getpid():
            self._ensure_thread()
        with self._lock:
            p = self._pending
            p.metrics.append((run_id, key, step, value, ts))
            k = (run_id, key)
            old = p.latest.get(k)
            if old is None or step > old[0] or (step == old[0] and ts >= old[2]):
                p.latest[k] = (step, value, ts)
            n = len(p.metrics)
        if n >= self.batch_size:
            self._after_add(n)

    def add_params(self, rows: list[tuple[str, str, str, float | None]]) -> None:
        """Queue params: (run_id, key, value, value as a number or None)."""
        self._ensure_thread()
        with self._lock:
            self._pending.params.extend(rows)
            n = len(self._pending.params)
        self._after_add(n)

    def add_tags(self, rows: list[tuple[str, str, str, float | None]]) -> None:
        """Queue tags (a later value of the same key replaces an earlier one)."""
        self._ensure_thread()
        with self._lock:
            for run_id, key, value, num in rows:
                self._pending.tags[(run_id, key)] = (value, num)
            n = len(self._pending.tags)
        self._after_add(n)

    def add_end(self, end: RunEnd) -> None:
        """Queue the end of a run (written after every point queued before it)."""
        with self._lock:
            self._pending.ends.append(end)

    def _after_add(self, n: int) -> None:
        if n >= self.max_pending:
            self.flush()  # back-pressure: the logger waits rather than memory growing
        elif n >= self.batch_size:
            self._wake.set()

    def pending(self) -> int:
        """Rows waiting to be written."""
        with self._lock:
            return len(self._pending)

    # -- the background thread --------------------------------------------------
    def _after_fork(self) -> None:
        """In a forked child: the parent writes what it had buffered; start afresh."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending = _Batch()
        self._wake = threading.Event()
        self._thread = None
        self.ws.meta.engine.dispose(close=False)

    def _ensure_thread(self) -> None:
        self._after_fork()
        if self._thread is None and not self._closed and self.flush_interval > 0:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="loopml-track-flusher", daemon=True
                    )
                    self._thread.start()

    def _loop(self) -> None:
        failures = 0
        while True:
            self._wake.wait(self.flush_interval if failures == 0 else min(30.0, 2.0**failures))
            self._wake.clear()
            if self._closed:
                if self in _ORPHANS:  # closed from a finalizer in this thread: write the rest
                    try:
                        self.flush()
                    except Exception as e:
                        log.error("tracking: %d buffered row(s) could not be written: %s",
                                  self.pending(), e)
                    _ORPHANS.discard(self)
                return
            try:
                self.flush()
                failures = 0
            except Exception as e:  # keep the data; the next flush retries
                failures += 1
                log.warning("tracking: writing %d buffered row(s) failed (%s); retrying",
                            self.pending(), e)

    # -- writing ----------------------------------------------------------------
    def flush(self) -> None:
        """Write everything pending in one transaction; on failure keep it queued and raise."""
        self._after_fork()
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, _Batch()
            if not len(batch):
                return
            try:
                self._write(batch)
            except BaseException:
                with self._lock:
                    self._restore(batch)
                raise

    def _restore(self, batch: _Batch) -> None:
        p = self._pending
        p.runs[:0] = batch.runs
        p.metrics[:0] = batch.metrics
        for k, point in batch.latest.items():
            if _newer(point, p.latest.get(k)):
                p.latest[k] = point
        p.params[:0] = batch.params
        for k, v in batch.tags.items():
            p.tags.setdefault(k, v)
        p.ends[:0] = batch.ends

    def _sql(self) -> dict[str, Any]:
        """The batch statements, compiled once: plain SQL for the driver's ``executemany``."""
        if self._statements is not None:
            return self._statements
        ph = "?" if self.ws.meta.dialect == "sqlite" else "%s"
        p5 = ", ".join([ph] * 5)
        p4 = ", ".join([ph] * 4)
        # ON CONFLICT ... DO UPDATE/NOTHING reads the same on SQLite (>= 3.24) and PostgreSQL.
        self._statements = {
            "metrics": 'INSERT INTO run_metrics (run_id, "key", step, "value", "timestamp") '
                       f"VALUES ({p5})",
            "metrics_copy": 'COPY run_metrics (run_id, "key", step, "value", "timestamp") '
                            "FROM STDIN",
            "latest": 'INSERT INTO run_latest_metrics AS l (run_id, "key", step, "value", '
                      f'"timestamp") VALUES ({p5}) ON CONFLICT (run_id, "key") DO UPDATE SET '
                      'step = excluded.step, "value" = excluded."value", '
                      '"timestamp" = excluded."timestamp" WHERE excluded.step > l.step OR '
                      '(excluded.step = l.step AND excluded."timestamp" >= l."timestamp")',
            "params": f'INSERT INTO run_params (run_id, "key", "value", value_num) VALUES ({p4}) '
                      'ON CONFLICT (run_id, "key") DO NOTHING',
            "tags": f'INSERT INTO run_tags (run_id, "key", "value", value_num) VALUES ({p4}) '
                    'ON CONFLICT (run_id, "key") DO UPDATE SET "value" = excluded."value", '
                    "value_num = excluded.value_num",
            "end": sa.update(RunRow).where(RunRow.id == sa.bindparam("p_run_id")).values(
                status=sa.bindparam("p_status"), message=sa.bindparam("p_message"),
                end_time=sa.bindparam("p_end_time"),
            ),
            "events": sa.insert(EventRow),
            "runs": sa.insert(RunRow),
        }
        return self._statements

    def _write(self, b: _Batch) -> None:
        sql = self._sql()
        t0 = time.perf_counter()
        with self.ws.meta.session(write=True) as s:
            conn = s.connection()
            if b.runs:
                conn.execute(sql["runs"], b.runs)
            # The rows are already tuples in column order: hand them to the driver as they are
            # (SQLAlchemy's per-row parameter processing cost more than the database's insert).
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if b.params:
                    cur.executemany(sql["params"], b.params)
                if b.tags:
                    cur.executemany(sql["tags"], [(r, k, v, n) for (r, k), (v, n) in b.tags.items()])
                if len(b.metrics) >= 200 and self.ws.meta.dialect == "postgresql":
                    # COPY: several times faster than executemany for thousands of points
                    with cur.copy(sql["metrics_copy"]) as copy:
                        for row in b.metrics:
                            copy.write_row(row)
                elif b.metrics:
                    cur.executemany(sql["metrics"], b.metrics)
                if b.metrics:
                    cur.executemany(sql["latest"], [
                        (r, k, st_, v, ts) for (r, k), (st_, v, ts) in b.latest.items()
                    ])
            finally:
                cur.close()
            if b.ends:
                conn.execute(sql["end"], [
                    {"p_run_id": e.run_id, "p_status": e.status, "p_message": e.message,
                     "p_end_time": e.end_time} for e in b.ends
                ])
                # Core rows of the event log (what EventLog.emit adds), one executemany.
                now = utcnow()
                conn.execute(sql["events"], [
                    {"type": e.event, "entity_kind": "run", "entity_id": e.run_id,
                     "payload": e.payload, "created_at": now} for e in b.ends
                ])
        log.debug("tracking: wrote %d row(s) in %.1f ms", len(b), (time.perf_counter() - t0) * 1e3)

    def close_from_finalizer(self) -> None:
        """Close when the tracker is garbage-collected, which may happen in any thread.

        In the flusher thread itself (perhaps in the middle of a flush, holding its
        lock) closing synchronously would deadlock: the thread writes the rest
        once it is back in its loop, and interpreter exit covers it until then.
        """
        if self._thread is not None and threading.current_thread() is self._thread:
            _ORPHANS.add(self)
            self._closed = True
            self._wake.set()
        else:
            self.close()

    def close(self) -> None:
        """Stop the background thread and write what is pending."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout=60)
        self._thread = None
        if self._pid == os.getpid():
            self.flush()
