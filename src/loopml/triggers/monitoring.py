"""Monitoring schedules: run a monitor on an endpoint's captured data every period, and record each run.

``loopml monitor schedule EP --every 1h`` registers one; the scheduler
(:mod:`loopml.triggers.scheduler`) runs it when due over the window ending
then (one period long unless ``window`` says otherwise). Each run is recorded
once per schedule slot (a unique key, so two schedulers run it once) with the
monitoring result it produced; the monitor writes its figures to the metrics
table, where alarms watch them.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from loopml._util import as_utc, check_name, new_id, utcnow
from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound
from loopml.store.lineage import EntityRef
from loopml.triggers.models import MonitorRunRow, MonitorScheduleRow
from loopml.triggers.rules import did_you_mean, new_owner, owner_alive
from loopml.triggers.schedules import format_duration, parse_duration, parse_schedule, slot_key

if TYPE_CHECKING:
    from loopml.monitor import MonitoringResult
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the monitors a schedule can run
KINDS = ("data_quality", "model_quality", "bias", "attribution")
_ALIASES = {"data-quality": "data_quality", "quality": "model_quality", "model-quality": "model_quality",
            "attribution_drift": "attribution", "attribution-drift": "attribution"}
#: kinds whose monitor compares with a stored baseline
_WITH_BASELINE = ("data_quality", "attribution")
#: arguments the schedule fills itself
_OWN_ARGS = {"ws", "endpoint", "target", "since", "until", "baseline", "dataset", "data", "out", "model"}
RUNNING, FAILED = "Running", "Failed"
SCHEDULE_KIND = "monitor_schedule"


def _monitor(kind: str) -> Callable[..., MonitoringResult]:
    from loopml import monitor

    fns: dict[str, Callable[..., MonitoringResult]] = {
        "data_quality": monitor.run_data_quality, "model_quality": monitor.run_model_quality,
        "bias": monitor.run_bias, "attribution": monitor.run_attribution_drift}
    return fns[kind]


def check_kind(kind: str) -> str:
    """The canonical monitor kind (``data-quality`` -> ``data_quality``), or InvalidInput."""
    k = _ALIASES.get(str(kind).strip().lower(), str(kind).strip().lower())
    if k not in KINDS:
        raise InvalidInput(f"monitor kind {kind!r} is not one of {', '.join(KINDS)}{did_you_mean(str(kind), KINDS)}")
    return k


def _check_options(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise InvalidInput(f"options must map the monitor's argument names to values, got {options!r}")
    params = inspect.signature(_monitor(kind)).parameters
    allowed = {n: p for n, p in params.items() if n not in _OWN_ARGS and p.kind is not p.VAR_KEYWORD}
    out: dict[str, Any] = {}
    for k, v in options.items():
        if k not in allowed:
            raise InvalidInput(f"the {kind} monitor has no option {k!r}{did_you_mean(str(k), list(allowed))}; "
                               f"its options: {', '.join(allowed) or 'none'}")
        out[k] = v
    missing = [n for n, p in allowed.items() if p.default is p.empty and n not in out]
    if missing:
        raise InvalidInput(f"the {kind} monitor needs option {missing[0]!r} (e.g. --option {missing[0]}=VALUE)")
    return out


# -- records -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitorScheduleInfo:
    """A monitoring schedule: the monitor ``kind`` on ``endpoint`` every ``schedule``.

    ``window_s`` is how much captured data a run looks at (None: one period, ending at the run).
    """

    name: str
    endpoint: str
    kind: str
    schedule: str
    baseline: str | None
    window_s: float | None
    options: dict[str, Any]
    enabled: bool
    last_slot: datetime | None
    created_at: datetime
    updated_at: datetime

    def spec(self) -> dict[str, Any]:
        """The declared configuration (what ``loopml apply`` compares)."""
        return {"endpoint": self.endpoint, "kind": self.kind, "schedule": self.schedule, "baseline": self.baseline,
                "window_s": self.window_s, "options": self.options, "enabled": self.enabled}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, **self.spec(), "last_slot": self.last_slot.isoformat() if self.last_slot else None,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


def _schedule(r: MonitorScheduleRow) -> MonitorScheduleInfo:
    return MonitorScheduleInfo(r.name, r.endpoint, r.kind, r.schedule, r.baseline, r.window_s, dict(r.options or {}),
                               bool(r.enabled), as_utc(r.last_slot) if r.last_slot else None, as_utc(r.created_at),
                               as_utc(r.updated_at))


@dataclass(frozen=True)
class MonitorRunInfo:
    """One run of a monitoring schedule.

    ``status`` is ``Running``, the monitor's status (``Completed``,
    ``CompletedWithViolations``, ``NoData``) or ``Failed`` (``error`` says why);
    ``result_id`` is the monitoring result with its outputs (``loopml monitor show``).
    """

    id: str
    schedule: str
    slot_key: str
    slot: datetime
    since: datetime
    until: datetime
    status: str
    result_id: str | None
    violation_count: int | None
    error: str | None
    owner: str
    created_at: datetime
    ended_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "schedule": self.schedule, "slot": self.slot.isoformat(),
                "since": self.since.isoformat(), "until": self.until.isoformat(), "status": self.status,
                "result_id": self.result_id, "violation_count": self.violation_count, "error": self.error,
                "created_at": self.created_at.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None}


def _run(r: MonitorRunRow) -> MonitorRunInfo:
    return MonitorRunInfo(r.id, r.schedule_name, r.slot_key, as_utc(r.slot), as_utc(r.since), as_utc(r.until),
                          r.status, r.result_id, r.violation_count, r.error, r.owner, as_utc(r.created_at),
                          as_utc(r.ended_at) if r.ended_at else None)


# -- CRUD ----------------------------------------------------------------------------------------------
def check_endpoint_ref(ws: Workspace, endpoint: str) -> None:
    """NotFound unless ``endpoint`` is deployed or has captured data."""
    from loopml.serve.capture import capture_files
    from loopml.serve.endpoints import check_endpoint_name, get_endpoint

    check_endpoint_name(endpoint)
    try:
        get_endpoint(ws, endpoint)
    except NotFound as e:
        if not capture_files(ws, endpoint):
            raise NotFound(f"{e}; deploy it first (a schedule monitors an endpoint's captured data)") from None


def build_monitor_schedule_spec(
    ws: Workspace,
    endpoint: str,
    *,
    schedule: str,
    kind: str = "data_quality",
    baseline: str | None = None,
    window: str | float | None = None,
    options: Mapping[str, Any] | None = None,
    enabled: bool = True,
    name: str | None = None,
    check_refs: bool = True,
) -> MonitorScheduleInfo:
    """Validate a monitoring schedule without writing it (``check_refs``: the endpoint and baseline exist)."""
    k = check_kind(kind)
    sched = parse_schedule(schedule)
    nm = check_name(name or f"{endpoint}-{k.replace('_', '-')}", "monitoring schedule")
    if check_refs:
        check_endpoint_ref(ws, endpoint)
    else:
        from loopml.serve.endpoints import check_endpoint_name

        check_endpoint_name(endpoint)
    if baseline is not None:
        if k not in _WITH_BASELINE:
            raise InvalidInput(f"a {k} monitor takes no baseline (baselines apply to {' and '.join(_WITH_BASELINE)})")
        if not isinstance(baseline, str) or not baseline.strip():
            raise InvalidInput("give a baseline name or id (see `loopml monitor baselines`)")
        if check_refs:
            from loopml.monitor import get_baseline

            get_baseline(ws, baseline, kind=k)
    win = None if window is None else parse_duration(window, "window")
    if win is not None and win <= 0:
        raise InvalidInput("the window must be longer than 0s, e.g. --window 1h")
    opts = _check_options(k, dict(options or {}))
    if not isinstance(enabled, bool):
        raise InvalidInput(f"enabled must be true or false, got {enabled!r}")
    now = utcnow()
    return MonitorScheduleInfo(nm, endpoint, k, sched.text, baseline, win, opts, enabled, None, now, now)


def add_monitor_schedule(
    ws: Workspace,
    endpoint: str,
    *,
    every: str | float | None = None,
    cron: str | None = None,
    kind: str = "data_quality",
    baseline: str | None = None,
    window: str | float | None = None,
    options: Mapping[str, Any] | None = None,
    name: str | None = None,
    enabled: bool = True,
    replace: bool = False,
) -> MonitorScheduleInfo:
    """Run a monitor on ``endpoint``'s captured data on a schedule.

    Parameters
    ----------
    ws
        The workspace.
    endpoint
        The endpoint (deployed, or with captured data).
    every, cron
        How often (exactly one): a period (``1h``, ``30m``) or a cron expression (UTC).
    kind
        ``data_quality`` (default), ``model_quality``, ``bias`` or ``attribution``.
    baseline
        The baseline (data quality and attribution; default: the newest of the model the endpoint serves).
    window
        How much captured data each run looks at, ending when it runs (default: one period).
    options
        Further arguments of the monitor, e.g. ``{"facet": "gender", "positive_label": 1}`` for bias.
    name
        The schedule's name (default ``ENDPOINT-KIND``).
    enabled
        A disabled schedule does not run.
    replace
        Update the schedule if it exists (its runs are kept).

    Returns
    -------
    MonitorScheduleInfo

    Raises
    ------
    InvalidInput
        Both or neither of ``every`` and ``cron``; a bad kind, period, window or option.
    NotFound
        An unknown endpoint or baseline.
    Conflict
        The schedule exists and ``replace`` is False.
    """
    if (every is None) == (cron is None):
        raise InvalidInput("give exactly one of --every (e.g. 1h) or --cron (e.g. '0 * * * *')")
    text = cron if cron is not None else f"every {every}"
    spec = build_monitor_schedule_spec(ws, endpoint, schedule=str(text), kind=kind, baseline=baseline, window=window,
                                       options=options, enabled=enabled, name=name)
    return put_monitor_schedule(ws, spec, replace=replace)


def put_monitor_schedule(ws: Workspace, spec: MonitorScheduleInfo, *, replace: bool = True) -> MonitorScheduleInfo:
    """Write a validated schedule (from :func:`build_monitor_schedule_spec`)."""
    now = utcnow()
    with ws.meta.session(write=True) as s:
        row = s.get(MonitorScheduleRow, spec.name, with_for_update=True)
        values = dict(endpoint=spec.endpoint, kind=spec.kind, schedule=spec.schedule, baseline=spec.baseline,
                      window_s=spec.window_s, options=spec.options, enabled=spec.enabled)
        if row is None:
            row = MonitorScheduleRow(name=spec.name, last_slot=None, created_at=now, updated_at=now, **values)
            s.add(row)
        elif not replace:
            raise Conflict(f"monitoring schedule {spec.name!r} exists; remove it first "
                           f"(`loopml monitor unschedule {spec.name}`) or give another --name")
        else:
            if row.schedule != spec.schedule or (spec.enabled and not row.enabled):
                row.last_slot = parse_schedule(spec.schedule).latest_slot(now)
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
        s.flush()
        return _schedule(row)


def get_monitor_schedule(ws: Workspace, name: str) -> MonitorScheduleInfo:
    """The monitoring schedule ``name``."""
    with ws.meta.session() as s:
        row = s.get(MonitorScheduleRow, name)
        if row is None:
            names = list(s.scalars(select(MonitorScheduleRow.name)))
            raise NotFound(f"no monitoring schedule {name!r}{did_you_mean(name, names)}; "
                           "see `loopml monitor schedules`")
        return _schedule(row)


def list_monitor_schedules(ws: Workspace, *, endpoint: str | None = None) -> list[MonitorScheduleInfo]:
    """Every monitoring schedule by name (of one endpoint if given)."""
    q = select(MonitorScheduleRow).order_by(MonitorScheduleRow.name)
    if endpoint is not None:
        q = q.where(MonitorScheduleRow.endpoint == endpoint)
    with ws.meta.session() as s:
        return [_schedule(r) for r in s.scalars(q)]


def remove_monitor_schedule(ws: Workspace, name: str) -> None:
    """Remove a monitoring schedule and its run records (the monitoring results stay)."""
    get_monitor_schedule(ws, name)
    with ws.meta.session(write=True) as s:
        for r in s.scalars(select(MonitorRunRow).where(MonitorRunRow.schedule_name == name)):
            s.delete(r)
        row = s.get(MonitorScheduleRow, name)
        if row is not None:
            s.delete(row)


def list_monitor_runs(ws: Workspace, *, schedule: str | None = None, limit: int = 50) -> list[MonitorRunInfo]:
    """Runs of monitoring schedules, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive whole number, got {limit!r}")
    q = select(MonitorRunRow).order_by(MonitorRunRow.created_at.desc(), MonitorRunRow.id.desc()).limit(limit)
    if schedule is not None:
        q = q.where(MonitorRunRow.schedule_name == schedule)
    with ws.meta.session() as s:
        return [_run(r) for r in s.scalars(q)]


# -- running -------------------------------------------------------------------------------------------
def claim_monitor_run(
    ws: Workspace, sched: MonitorScheduleInfo, slot: datetime, *, owner: str, now: datetime | None = None,
    key: str | None = None, advance_slot: bool = True,
) -> MonitorRunInfo | None:
    """Record a run of ``sched`` for ``slot`` (window ending ``now``); None if one is recorded already."""
    end = as_utc(now or utcnow())
    schedule = parse_schedule(sched.schedule)
    window = sched.window_s or schedule.period_at(schedule.latest_slot(slot))
    created = utcnow()
    row = MonitorRunRow(id=new_id("tmr"), schedule_name=sched.name, slot_key=key or slot_key(slot), slot=slot,
                        since=end - timedelta(seconds=window), until=end, status=RUNNING, owner=owner,
                        created_at=created)
    try:
        with ws.meta.session(write=True) as s:
            if s.scalar(select(MonitorRunRow.id).where(MonitorRunRow.schedule_name == sched.name,
                                                       MonitorRunRow.slot_key == row.slot_key)):
                return None
            s.add(row)
            if advance_slot:
                srow = s.get(MonitorScheduleRow, sched.name)
                if srow is not None and (srow.last_slot is None or as_utc(srow.last_slot) < slot):
                    srow.last_slot = slot
            s.flush()
            return _run(row)
    except sa_exc.IntegrityError:
        return None


def execute_monitor_run(ws: Workspace, run_id: str) -> MonitorRunInfo:
    """Run the monitor of a recorded run over its window and record the outcome (failures too)."""
    with ws.meta.session() as s:
        r = s.get(MonitorRunRow, run_id)
        if r is None:
            raise NotFound(f"no monitoring run {run_id!r}")
        run = _run(r)
    status, result_id, violations, error = FAILED, None, None, None
    try:
        sched = get_monitor_schedule(ws, run.schedule)
        fn = _monitor(sched.kind)
        kwargs: dict[str, Any] = dict(sched.options)
        if sched.kind == "data_quality":
            result = fn(ws, endpoint=sched.endpoint, baseline=sched.baseline, since=run.since, until=run.until,
                        **kwargs)
        elif sched.kind == "attribution":
            result = fn(ws, sched.endpoint, sched.baseline, since=run.since, until=run.until, **kwargs)
        elif sched.kind == "model_quality":
            result = fn(ws, sched.endpoint, since=run.since, until=run.until, **kwargs)
        else:
            result = fn(ws, endpoint=sched.endpoint, since=run.since, until=run.until, **kwargs)
        status, result_id, violations = result.status, result.id, int(result.violation_count)
    except Exception as e:
        error = str(e) if isinstance(e, LoopmlError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        if not isinstance(e, LoopmlError):
            log.exception("monitoring schedule %s run %s", run.schedule, run_id)
    from loopml.monitor.results import RESULT_KIND

    with ws.meta.session(write=True) as s:
        row = s.get_one(MonitorRunRow, run_id)
        row.status, row.result_id, row.violation_count, row.error = status, result_id, violations, error
        row.ended_at = utcnow()
        if result_id is not None:
            ws.lineage.add(EntityRef(SCHEDULE_KIND, run.schedule), EntityRef(RESULT_KIND, result_id), "ran",
                           session=s)
        s.flush()
        return _run(row)


def run_monitor_schedule(ws: Workspace, name: str, *, now: datetime | None = None) -> MonitorRunInfo:
    """Run a monitoring schedule now (outside its slots) over the window ending ``now``, and record it."""
    sched = get_monitor_schedule(ws, name)
    at = as_utc(now or utcnow())
    run = claim_monitor_run(ws, sched, at, owner=new_owner("manual"), now=at,
                            key=f"manual-{uuid.uuid4().hex[:16]}", advance_slot=False)
    assert run is not None
    return execute_monitor_run(ws, run.id)


def stale_runs(ws: Workspace) -> list[MonitorRunInfo]:
    """Runs still marked Running whose scheduler is gone."""
    with ws.meta.session() as s:
        rows = [_run(r) for r in s.scalars(select(MonitorRunRow).where(MonitorRunRow.status == RUNNING))]
    return [r for r in rows if not owner_alive(r.owner)]


def describe_window(sched: MonitorScheduleInfo) -> str:
    """``1h`` or ``one period`` (for listings)."""
    return format_duration(sched.window_s) if sched.window_s else "one period"


__all__ = [
    "KINDS",
    "MonitorRunInfo",
    "MonitorScheduleInfo",
    "add_monitor_schedule",
    "build_monitor_schedule_spec",
    "check_kind",
    "claim_monitor_run",
    "execute_monitor_run",
    "get_monitor_schedule",
    "list_monitor_runs",
    "list_monitor_schedules",
    "put_monitor_schedule",
    "remove_monitor_schedule",
    "run_monitor_schedule",
]
