"""The scheduler: alarms, monitoring schedules, event triggers and schedule triggers, tick by tick.

Each tick (every ``poll_s`` seconds):

1. evaluates the alarms (:func:`loopml.metrics.evaluate_alarms`), so their
   state changes become ``alarm.state_changed`` events;
2. starts the monitoring schedules that are due (over the window ending now);
3. reads the events after its durable cursor and fires the event triggers
   they match; the cursor moves only after the firings are recorded;
4. fires the schedule triggers that are due (a trigger whose slots were
   missed while the scheduler was down fires once, for the latest slot).

Firings and monitoring runs are recorded under database unique keys before
they start, so several schedulers on one workspace (threads, processes or
machines on one PostgreSQL) fire each event and slot once. Pipelines and
monitors run on a bounded pool of worker threads, so a long pipeline never
delays a tick; failures are recorded and the scheduler goes on. On start the
scheduler takes over firings left Pending or Running by a scheduler that
died. SIGTERM or Ctrl-C stops it cleanly: no new work starts, and work in
flight gets ``grace_s`` seconds to finish.
"""

from __future__ import annotations

import fnmatch
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from loopml._util import as_utc, utcnow
from loopml.errors import InvalidInput
from loopml.store.events import Event
from loopml.store.models import Event as EventRow
from loopml.triggers import monitoring, rules
from loopml.triggers.models import TriggerCursorRow, TriggerFiringRow
from loopml.triggers.schedules import due_slot, parse_schedule, slot_key
from loopml.triggers.templates import matches

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the name of the scheduler's cursor in the event log
CURSOR = "scheduler"
#: events read per query
EVENT_BATCH = 500
#: how long a gap in event ids (a transaction not yet committed, on PostgreSQL) holds the cursor back
GAP_GRACE_S = 10.0
#: the most ticks ``once`` runs while work keeps producing more
ONCE_MAX_TICKS = 10
#: seconds between looks for work left by schedulers that died
RECOVER_EVERY_S = 60.0


@dataclass
class TickReport:
    """What one tick did."""

    at: datetime
    alarm_changes: list[str] = field(default_factory=list)
    monitor_runs: list[str] = field(default_factory=list)
    firings: list[str] = field(default_factory=list)
    events_read: int = 0
    cursor: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def started(self) -> int:
        """Monitoring runs plus firings started."""
        return len(self.monitor_runs) + len(self.firings)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"at": self.at.isoformat(), "alarm_changes": self.alarm_changes, "monitor_runs": self.monitor_runs,
                "firings": self.firings, "events_read": self.events_read, "cursor": self.cursor,
                "errors": self.errors}


@dataclass
class SchedulerStats:
    """Totals of a scheduler's life (what ``run_scheduler`` returns)."""

    ticks: int = 0
    alarm_changes: int = 0
    monitor_runs: int = 0
    firings: int = 0
    events_read: int = 0
    recovered: int = 0
    errors: int = 0
    stopped_by: str | None = None

    def add(self, r: TickReport) -> None:
        """Count one tick."""
        self.ticks += 1
        self.alarm_changes += len(r.alarm_changes)
        self.monitor_runs += len(r.monitor_runs)
        self.firings += len(r.firings)
        self.events_read += r.events_read
        self.errors += len(r.errors)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


# -- the worker pool -----------------------------------------------------------------------------------
class _Workers:
    """A bounded pool of daemon threads (a stuck pipeline cannot keep the process from exiting)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: deque[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._closed = False

    def submit(self, label: str, fn: Callable[[], Any], on_drop: Callable[[], Any] | None = None) -> None:
        """Queue ``fn``; ``on_drop`` runs instead if the pool closes before ``fn`` starts."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is stopping")
            self._queue.append((label, fn, on_drop))
            if len(self._threads) < self.size and self._busy + len(self._queue) > len(self._threads):
                t = threading.Thread(target=self._loop, name=f"loopml-scheduler-{len(self._threads) + 1}",
                                     daemon=True)
                self._threads.append(t)
                t.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                label, fn, _ = self._queue.popleft()
                self._busy += 1
            try:
                fn()
            except BaseException:  # recorded by the job itself; never let a thread die silently
                log.exception("scheduler job %s", label)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return self._busy + len(self._queue)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running; False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy or self._queue:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None) -> bool:
        """Refuse new jobs, drop the queued ones (running their ``on_drop``), wait up to ``timeout`` for the rest."""
        with self._cond:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for label, _, on_drop in dropped:
            if on_drop is not None:
                try:
                    on_drop()
                except Exception:
                    log.exception("releasing %s", label)
        return self.wait(timeout)


# -- the scheduler ----------------------------------------------------------------------------------------
class Scheduler:
    """One scheduler over a workspace; :meth:`tick` does one round, :func:`run_scheduler` loops.

    Parameters
    ----------
    ws
        The workspace.
    max_workers
        Pipelines and monitors running at once (more wait their turn).
    evaluate_alarms
        Evaluate the alarms each tick (leave on unless another process does it).
    cursor
        The name of the durable event cursor (schedulers sharing a name share the position).
    """

    def __init__(self, ws: Workspace, *, max_workers: int = 2, evaluate_alarms: bool = True,
                 cursor: str = CURSOR) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidInput(f"max_workers must be a positive whole number, got {max_workers!r}")
        self.ws = ws
        self.owner = rules.new_owner()
        self.evaluate_alarms = evaluate_alarms
        self.cursor_name = cursor
        self.workers = _Workers(max_workers)
        self._gaps: dict[int, float] = {}
        self._tried: set[tuple[str, int]] = set()
        self._recovered_at: float | None = None

    # -- the event cursor ---------------------------------------------------------------------------------
    def cursor(self) -> int | None:
        """The durable position in the event log (None before the first tick)."""
        with self.ws.meta.session() as s:
            row = s.get(TriggerCursorRow, self.cursor_name)
            return None if row is None else int(row.position)

    def _save_cursor(self, position: int) -> None:
        """Move the cursor forward (never back: schedulers sharing it may be ahead)."""
        for _ in range(3):
            try:
                with self.ws.meta.session(write=True) as s:
                    row = s.get(TriggerCursorRow, self.cursor_name, with_for_update=True)
                    if row is None:
                        s.add(TriggerCursorRow(name=self.cursor_name, position=position, updated_at=utcnow()))
                    elif position > row.position:
                        row.position, row.updated_at = position, utcnow()
                return
            except sa_exc.IntegrityError:
                continue  # another scheduler created it first: update it instead

    def _start_position(self, triggers: list[rules.TriggerInfo]) -> int:
        """Where a scheduler with no cursor yet starts: before the oldest event a trigger may want."""
        with self.ws.meta.session() as s:
            latest = int(s.scalar(select(EventRow.id).order_by(EventRow.id.desc()).limit(1)) or 0)
        wanted = [t.since_event_id for t in triggers if t.event_type]
        return min([*wanted, latest])

    # -- recovery -------------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Take over work a dead scheduler left: Pending/Running firings, Running monitoring runs.

        Returns the number of firings resubmitted or brought up to date.
        """
        n = 0
        self._recovered_at = time.monotonic()
        with self.ws.meta.session() as s:
            rows = list(s.scalars(select(TriggerFiringRow).where(TriggerFiringRow.status.in_(rules.OPEN_STATUSES))))
        for r in rows:
            f = rules._firing(r)
            if f.owner == self.owner or rules.owner_alive(f.owner):
                continue
            f = rules.sync_firing(self.ws, f)
            if f.status == rules.PENDING:
                self._submit_firing(f)
            n += 1
        for run in monitoring.stale_runs(self.ws):
            with self.ws.meta.session(write=True) as s:
                from loopml.triggers.models import MonitorRunRow

                row = s.get_one(MonitorRunRow, run.id)
                row.status, row.ended_at = monitoring.FAILED, utcnow()
                row.error = "the scheduler running it stopped first; the next slot runs it again"
        return n

    # -- submitting work --------------------------------------------------------------------------------------
    def _submit_firing(self, f: rules.FiringInfo) -> None:
        ws, owner = self.ws, self.owner
        self.workers.submit(f"firing {f.id}", lambda: rules.run_firing(ws, f.id, owner),
                            lambda: rules.release_firing(ws, f.id, owner))

    def _submit_monitor(self, run: monitoring.MonitorRunInfo) -> None:
        ws = self.ws

        def job() -> None:
            done = monitoring.execute_monitor_run(ws, run.id)
            if self.evaluate_alarms:  # the run's figures may move an alarm: say so without waiting a tick
                # (its figures are stamped at the window's end; an alarm's periods end before their end time)
                at = max(utcnow(), done.until + timedelta(milliseconds=1))
                self._alarms(at, TickReport(at))

        self.workers.submit(f"monitor run {run.id}", job)

    # -- the four steps -----------------------------------------------------------------------------------------
    def _alarms(self, now: datetime | None, report: TickReport) -> None:
        from loopml.metrics import evaluate_alarms

        try:
            for c in evaluate_alarms(self.ws, now=now):
                report.alarm_changes.append(f"{c.alarm}: {c.old_state} -> {c.new_state}")
        except Exception as e:
            report.errors.append(f"evaluating alarms: {e}")
            log.exception("evaluating alarms")

    def _monitors(self, now: datetime, report: TickReport) -> None:
        try:
            schedules = monitoring.list_monitor_schedules(self.ws)
        except Exception as e:
            report.errors.append(f"reading monitoring schedules: {e}")
            return
        for sched in schedules:
            if not sched.enabled:
                continue
            try:
                slot = due_slot(parse_schedule(sched.schedule), now, after=sched.last_slot or sched.created_at)
                if slot is None:
                    continue
                run = monitoring.claim_monitor_run(self.ws, sched, slot, owner=self.owner, now=now)
                if run is not None:
                    self._submit_monitor(run)
                    report.monitor_runs.append(f"{sched.name}@{slot_key(slot)}")
            except Exception as e:
                report.errors.append(f"monitoring schedule {sched.name}: {e}")
                log.exception("monitoring schedule %s", sched.name)

    @staticmethod
    def _loops_back(t: rules.TriggerInfo, ev: Event) -> bool:
        """An event of the trigger's own pipeline: firing on it would fire forever."""
        return ev.type.startswith("pipeline.") and ev.payload.get("pipeline") == t.pipeline

    def _events(self, now: datetime, report: TickReport) -> None:
        triggers = [t for t in rules.list_triggers(self.ws, enabled=True) if t.event_type]
        cursor = self.cursor()
        if cursor is None:
            cursor = self._start_position(triggers)
            self._save_cursor(cursor)
        while True:
            events = self.ws.events.list(after=cursor, limit=EVENT_BATCH)
            if not events:
                break
            report.events_read += len(events)
            for ev in events:
                for t in triggers:
                    if (ev.id <= t.since_event_id or not fnmatch.fnmatchcase(ev.type, t.event_type or "")
                            or self._loops_back(t, ev) or (t.name, ev.id) in self._tried):
                        continue
                    if not matches(t.event_filter, ev.payload):
                        continue
                    f = rules.claim_firing(self.ws, t, str(ev.id), "event", owner=self.owner, event=ev, now=now)
                    self._tried.add((t.name, ev.id))
                    if f is None:
                        continue
                    report.firings.append(f"{t.name}#{ev.id}" + ("" if f.status == rules.PENDING
                                                                 else f" ({f.status}: {f.error})"))
                    if f.status == rules.PENDING:
                        self._submit_firing(f)
            # firings are recorded: the cursor may move past these events (held back at a fresh gap)
            new = self._advance(cursor, [e.id for e in events])
            self._save_cursor(new)
            if len(events) < EVENT_BATCH or new == cursor:
                cursor = new
                break
            cursor = new
        report.cursor = cursor
        if len(self._tried) > 100_000:
            self._tried = {k for k in self._tried if k[1] > cursor}

    def _advance(self, cursor: int, ids: list[int]) -> int:
        """The new cursor: the last id read, unless a younger gap below it may still fill in."""
        clock = time.monotonic()
        seen = set(ids)
        top = max(ids)
        if top - cursor - len(ids) > 0:  # some ids are missing
            for missing in range(cursor + 1, top):
                if missing not in seen and len(self._gaps) < 10_000:
                    self._gaps.setdefault(missing, clock)
        for g in [g for g in self._gaps if g in seen or g <= cursor or clock - self._gaps[g] > GAP_GRACE_S]:
            del self._gaps[g]
        fresh = [g for g in self._gaps if g <= top]
        return min(fresh) - 1 if fresh else top

    def _schedules(self, now: datetime, report: TickReport) -> None:
        for t in rules.list_triggers(self.ws, enabled=True):
            if not t.schedule:
                continue
            try:
                slot = due_slot(parse_schedule(t.schedule), now, after=t.last_slot or t.created_at)
                if slot is None:
                    continue
                f = rules.claim_firing(self.ws, t, slot_key(slot), "schedule", owner=self.owner, slot=slot, now=now)
                if f is None:
                    continue
                report.firings.append(f"{t.name}@{slot_key(slot)}" + ("" if f.status == rules.PENDING
                                                                      else f" ({f.status}: {f.error})"))
                if f.status == rules.PENDING:
                    self._submit_firing(f)
            except Exception as e:
                report.errors.append(f"trigger {t.name}: {e}")
                log.exception("schedule trigger %s", t.name)

    def tick(self, now: datetime | None = None) -> TickReport:
        """One round of the four steps at ``now`` (default: the current time; pass one to test schedules).

        Returns what it did; the work it started goes on in the worker threads.
        """
        at = as_utc(now) if now is not None else utcnow()
        report = TickReport(at)
        if self._recovered_at is None or time.monotonic() - self._recovered_at > RECOVER_EVERY_S:
            try:
                self.recover()
            except Exception as e:
                report.errors.append(f"taking over work of stopped schedulers: {e}")
                log.exception("recovering firings")
        if self.evaluate_alarms:
            self._alarms(now, report)
        self._monitors(at, report)
        try:
            self._events(at, report)
        except Exception as e:
            report.errors.append(f"reading events: {e}")
            log.exception("reading events")
        self._schedules(at, report)
        return report

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the work in flight; False on timeout."""
        return self.workers.wait(timeout)

    def close(self, grace_s: float | None = 30.0) -> bool:
        """Stop: firings not started yet are released, running work gets ``grace_s`` seconds to end.

        Returns False if some is still running; it stays recorded as Running and
        the next scheduler takes it over. Call :meth:`wait` first to finish everything.
        """
        return self.workers.close(grace_s)


def run_scheduler(
    ws: Workspace,
    *,
    once: bool = False,
    poll_s: float = 5.0,
    max_workers: int = 2,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    grace_s: float = 30.0,
    evaluate_alarms: bool = True,
    on_tick: Callable[[TickReport], None] | None = None,
) -> SchedulerStats:
    """Run the scheduler until stopped (SIGTERM, Ctrl-C or ``stop``), or once.

    Parameters
    ----------
    ws
        The workspace.
    once
        Run ticks until nothing more is due — each tick's work (pipelines,
        monitors) is awaited before the next, so a monitoring run's alarm and
        the trigger it fires all happen — then return (at most
        ``ONCE_MAX_TICKS`` ticks).
    poll_s
        Seconds between ticks.
    max_workers
        Pipelines and monitors running at once.
    now
        The time the ticks see (tests of schedules); default: the clock.
    stop
        Set it to stop the scheduler from another thread.
    grace_s
        On stop, how long work in flight may take to finish before the scheduler returns.
    evaluate_alarms
        Evaluate alarms each tick.
    on_tick
        Called with each tick's report (the CLI prints it).

    Returns
    -------
    SchedulerStats

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.triggers import run_scheduler
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> run_scheduler(ws, once=True).ticks
    1
    >>> ws.close()
    """
    if isinstance(poll_s, bool) or not isinstance(poll_s, (int, float)) or poll_s <= 0:
        raise InvalidInput(f"the interval must be a positive number of seconds, got {poll_s!r}")
    sched = Scheduler(ws, max_workers=max_workers, evaluate_alarms=evaluate_alarms)
    stats = SchedulerStats()
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def handle(signum: int, _frame: FrameType | None) -> None:
        stats.stopped_by = signal.Signals(signum).name
        log.info("scheduler: %s received, stopping", stats.stopped_by)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handle)
    try:
        stats.recovered = sched.recover()
        if once:
            for _ in range(ONCE_MAX_TICKS):
                report = sched.tick(now)
                stats.add(report)
                if on_tick:
                    on_tick(report)
                busy = sched.workers.in_flight > 0 or report.started > 0 or bool(report.alarm_changes)
                while not sched.wait(0.2) and not stop.is_set():
                    pass
                if not busy or stop.is_set():
                    break
        else:
            while not stop.is_set():
                report = sched.tick(now)
                stats.add(report)
                if on_tick:
                    on_tick(report)
                stop.wait(poll_s)
    except KeyboardInterrupt:
        stats.stopped_by = stats.stopped_by or "SIGINT"
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        if not sched.close(grace_s):
            log.warning("scheduler: work still running after %gs; a later scheduler takes it over", grace_s)
    return stats


__all__ = ["CURSOR", "Scheduler", "SchedulerStats", "TickReport", "run_scheduler"]
