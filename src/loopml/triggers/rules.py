"""Triggers: rules that start a pipeline execution on a schedule or on a workspace event.

A trigger names a pipeline, parameter templates built from what fired it
(see :mod:`loopml.triggers.templates`), and either a ``schedule`` (``every
1h`` or cron, UTC) or an ``event_type`` with a payload filter. Each firing is
recorded once per *fire key* — the event id, the schedule slot, or a manual
key — under a database unique constraint, and starts the pipeline with the
idempotency key ``trigger:NAME:KEY``: a trigger firing twice for the same
event, from one scheduler or two racing ones, starts one execution.

The scheduler (:mod:`loopml.triggers.scheduler`) decides when triggers fire;
:func:`fire_trigger` fires one by hand.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from loopml._util import as_utc, check_name, new_id, utcnow
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.pipelines import EXECUTORS, Pipeline, run_pipeline
from loopml.pipelines.models import PipelineExecutionRow
from loopml.store.events import Event
from loopml.store.lineage import EntityRef
from loopml.store.models import Event as EventRow
from loopml.triggers import templates
from loopml.triggers.definitions import check_rebuildable, load_for_run, resolve_pipeline
from loopml.triggers.models import TriggerFiringRow, TriggerRow
from loopml.triggers.schedules import format_duration, parse_duration, parse_schedule, slot_key

if TYPE_CHECKING:
    from loopml.pipelines import ExecutionInfo
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

# firing statuses
PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED, SKIPPED = (
    "Pending", "Running", "Succeeded", "Failed", "Stopped", "Skipped")
FIRING_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED, SKIPPED)
#: statuses of a firing that may still start or be running
OPEN_STATUSES = (PENDING, RUNNING)
TRIGGER_KIND = "trigger"
FIRING_KIND = "trigger_firing"
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.*\-]{1,200}$")
_EXECUTION_TO_FIRING = {"Succeeded": SUCCEEDED, "Failed": FAILED, "Stopped": STOPPED, "Executing": RUNNING}


# -- records -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TriggerInfo:
    """A trigger as stored.

    Attributes
    ----------
    pipeline
        The pipeline's name; ``pipeline_source`` is what it is loaded from when
        it fires (a file, ``module:attr`` or a registered name; None: the kept
        ``pipeline_definition``), ``pipeline_version`` its content hash when the
        trigger was added or last updated.
    params
        Parameter templates.
    schedule, event_type, event_filter
        What fires it: a schedule, or events of a type whose payload passes the filter.
    cooldown_s
        After a firing, events and slots within this many seconds are skipped (recorded as Skipped).
    """

    name: str
    description: str
    pipeline: str
    pipeline_source: str | None
    pipeline_version: str
    pipeline_definition: dict[str, Any]
    params: dict[str, Any]
    schedule: str | None
    event_type: str | None
    event_filter: dict[str, Any]
    enabled: bool
    cooldown_s: float
    executor: str
    since_event_id: int
    last_slot: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def kind(self) -> str:
        """``schedule`` or ``event``."""
        return "schedule" if self.schedule else "event"

    @property
    def rule(self) -> str:
        """What fires it, in words: ``every 1h`` or ``on alarm.state_changed where new_state=ALARM``."""
        if self.schedule:
            return self.schedule
        where = " and ".join(f"{k}={v}" for k, v in self.event_filter.items())
        return f"on {self.event_type}" + (f" where {where}" if where else "")

    def spec(self) -> dict[str, Any]:
        """The declared configuration (what ``loopml apply`` compares)."""
        return {"pipeline": self.pipeline_source, "pipeline_version": self.pipeline_version,
                "params": self.params, "schedule": self.schedule, "event_type": self.event_type,
                "event_filter": self.event_filter, "enabled": self.enabled, "cooldown_s": self.cooldown_s,
                "executor": self.executor, "description": self.description}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "kind": self.kind, "rule": self.rule, "pipeline": self.pipeline,
                **self.spec(), "since_event_id": self.since_event_id,
                "last_slot": self.last_slot.isoformat() if self.last_slot else None,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


def _trigger(r: TriggerRow) -> TriggerInfo:
    return TriggerInfo(
        name=r.name, description=r.description, pipeline=r.pipeline_name, pipeline_source=r.pipeline_source,
        pipeline_version=r.pipeline_version, pipeline_definition=dict(r.pipeline_definition),
        params=dict(r.params or {}), schedule=r.schedule, event_type=r.event_type,
        event_filter=dict(r.event_filter or {}), enabled=bool(r.enabled), cooldown_s=float(r.cooldown_s),
        executor=r.executor, since_event_id=int(r.since_event_id),
        last_slot=as_utc(r.last_slot) if r.last_slot else None, created_at=as_utc(r.created_at),
        updated_at=as_utc(r.updated_at),
    )


@dataclass(frozen=True)
class FiringInfo:
    """One firing of a trigger.

    Attributes
    ----------
    fire_key
        What it fired for: the event id, the schedule slot (``2026-01-02T03:00:00Z``) or ``manual-...``.
    source
        ``event``, ``schedule`` or ``manual``.
    status
        ``Pending`` (recorded, not started), ``Running``, ``Succeeded``, ``Failed``, ``Stopped``
        (the execution's outcome), or ``Skipped`` (cooldown; ``error`` says why).
    execution_id
        The pipeline execution it started (None until it starts, or if it could not).
    """

    id: str
    trigger: str
    fire_key: str
    source: str
    event_id: int | None
    slot: datetime | None
    params: dict[str, Any]
    idempotency_key: str
    execution_id: str | None
    status: str
    error: str | None
    owner: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {"id": self.id, "trigger": self.trigger, "fire_key": self.fire_key, "source": self.source,
                "event_id": self.event_id, "slot": iso(self.slot), "params": self.params,
                "idempotency_key": self.idempotency_key, "execution_id": self.execution_id,
                "status": self.status, "error": self.error, "owner": self.owner,
                "created_at": iso(self.created_at), "started_at": iso(self.started_at),
                "ended_at": iso(self.ended_at)}


def _firing(r: TriggerFiringRow) -> FiringInfo:
    return FiringInfo(
        id=r.id, trigger=r.trigger_name, fire_key=r.fire_key, source=r.source, event_id=r.event_id,
        slot=as_utc(r.slot) if r.slot else None, params=dict(r.params or {}), idempotency_key=r.idempotency_key,
        execution_id=r.execution_id, status=r.status, error=r.error, owner=r.owner,
        created_at=as_utc(r.created_at), started_at=as_utc(r.started_at) if r.started_at else None,
        ended_at=as_utc(r.ended_at) if r.ended_at else None,
    )


# -- owners (which process runs a firing) -------------------------------------------------------------
def new_owner(label: str | None = None) -> str:
    """An owner token for this process: ``host:pid:label``."""
    return f"{socket.gethostname()}:{os.getpid()}:{label or uuid.uuid4().hex[:12]}"


#: the owner of a firing a stopping scheduler gave back without starting it
RELEASED = "released:0:-"


def owner_alive(owner: str) -> bool:
    """Whether the process an owner token names may still be running (another host: assume yes)."""
    if owner == RELEASED:
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    if parts[0] != socket.gethostname():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# -- validation ----------------------------------------------------------------------------------------
def did_you_mean(word: str, options: list[str] | tuple[str, ...] | set[str]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` is close to one of ``options``, else ``''``."""
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_event_type(event_type: Any) -> str:
    """A valid event type (or glob such as ``monitor.*``)."""
    if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type.strip()):
        raise InvalidInput(f"event type {event_type!r} must be a name such as dataset.version_created, "
                           "alarm.state_changed or monitor.* (letters, digits, '.', '_', '-', '*')")
    return event_type.strip()


def _check_params(p: Pipeline, params: Mapping[str, Any], roots: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise InvalidInput(f"params must map the pipeline's parameter names to values or templates, got {params!r}")
    out = {}
    for k, v in params.items():
        if not isinstance(k, str) or k not in p.params:
            raise InvalidInput(f"pipeline {p.name!r} has no parameter {k!r}{did_you_mean(str(k), list(p.params))}; "
                               f"its parameters: {', '.join(p.params) or 'none'}")
        out[k] = v
    templates.check_templates(out, roots, what)
    for k, v in out.items():
        if not templates.references(v):
            p.params[k].convert(v, k)
    missing = [n for n, prm in p.params.items() if prm.required and n not in out]
    if missing:
        raise InvalidInput(f"pipeline {p.name!r} needs parameter {missing[0]!r}; give it in params (a value or a "
                           "template such as ${event.payload.dataset})")
    return out


def _max_event_id(ws: Workspace) -> int:
    with ws.meta.session() as s:
        return int(s.scalar(select(func.max(EventRow.id))) or 0)


@dataclass(frozen=True)
class TriggerSpec:
    """A validated trigger configuration, before it is written (``loopml apply`` plans with it)."""

    name: str
    pipeline_source: str | None
    pipeline_name: str
    pipeline_version: str
    pipeline_definition: dict[str, Any]
    params: dict[str, Any]
    schedule: str | None
    event_type: str | None
    event_filter: dict[str, Any]
    enabled: bool
    cooldown_s: float
    executor: str
    description: str

    def spec(self) -> dict[str, Any]:
        """The same form as :meth:`TriggerInfo.spec`."""
        return {"pipeline": self.pipeline_source, "pipeline_version": self.pipeline_version,
                "params": self.params, "schedule": self.schedule, "event_type": self.event_type,
                "event_filter": self.event_filter, "enabled": self.enabled, "cooldown_s": self.cooldown_s,
                "executor": self.executor, "description": self.description}


def build_trigger_spec(
    ws: Workspace,
    name: str,
    *,
    pipeline: Pipeline | str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    schedule: str | None = None,
    event_type: str | None = None,
    event_filter: Mapping[str, Any] | None = None,
    enabled: bool = True,
    cooldown_s: float | str = 0,
    executor: str = "local",
    description: str = "",
    base: str | os.PathLike[str] | None = None,
) -> TriggerSpec:
    """Validate a trigger's configuration (see :func:`add_trigger`) without writing anything."""
    check_name(name, "trigger")
    if (schedule is None) == (event_type is None):
        raise InvalidInput(f"trigger {name!r} needs exactly one of a schedule (--cron/--every) or an event type (--on)")
    sched = parse_schedule(schedule).text if schedule is not None else None
    etype = check_event_type(event_type) if event_type is not None else None
    if event_filter and etype is None:
        raise InvalidInput("an event filter (--where) applies to event triggers (--on EVENT_TYPE) only")
    flt = templates.check_filter(event_filter)
    source, p = resolve_pipeline(ws, pipeline, base=base)
    definition = check_rebuildable(p) if source is None else p.to_dict()
    roots = templates.ROOTS_SCHEDULE if sched else templates.ROOTS_EVENT
    what = "a schedule trigger" if sched else "an event trigger"
    values = _check_params(p, dict(params or {}), roots, what)
    cooldown = parse_duration(cooldown_s, "cooldown")
    ex = str(executor).strip().lower()
    if ex not in EXECUTORS:
        raise InvalidInput(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if not isinstance(enabled, bool):
        raise InvalidInput(f"enabled must be true or false, got {enabled!r}")
    if not isinstance(description, str) or len(description) > 2000:
        raise InvalidInput("description must be text of at most 2000 characters")
    return TriggerSpec(name, source, p.name, p.version, definition, values, sched, etype, flt, enabled,
                       cooldown, ex, description)


# -- CRUD ----------------------------------------------------------------------------------------------
def add_trigger(
    ws: Workspace,
    name: str,
    *,
    pipeline: Pipeline | str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    schedule: str | None = None,
    event_type: str | None = None,
    event_filter: Mapping[str, Any] | None = None,
    enabled: bool = True,
    cooldown_s: float | str = 0,
    executor: str = "local",
    description: str = "",
    replace: bool = False,
    base: str | os.PathLike[str] | None = None,
) -> TriggerInfo:
    """Add a trigger that starts ``pipeline`` on a schedule or on events.

    Parameters
    ----------
    ws
        The workspace.
    name
        The trigger's name.
    pipeline
        A YAML/Python pipeline file, ``module:attr``, a registered pipeline name,
        or a :class:`~loopml.pipelines.Pipeline` (its definition is kept). The
        resolved definition and its content hash are stored; a file is loaded
        again each time the trigger fires, so edits take effect.
    params
        Parameter templates, e.g. ``{"dataset": "${event.payload.dataset}:${event.payload.version}"}``
        or ``{"as_of": "${schedule.time}"}`` (see :mod:`loopml.triggers.templates`).
        Checked against the pipeline's parameters now.
    schedule
        ``every 1h`` (``every 30m``, ...) or a 5-field cron expression (UTC).
    event_type
        Fire on events of this type (``dataset.version_created``, ``alarm.state_changed``,
        ``monitor.completed``, ...; ``*`` globs). Only events after the trigger is added count.
    event_filter
        Payload fields the event must have, e.g. ``{"new_state": "ALARM", "alarm": "churn-drift"}``.
    enabled
        A disabled trigger does not fire.
    cooldown_s
        Seconds (or ``10m``, ``1h``) after a firing during which further events or slots are skipped.
    executor
        The pipeline executor (``local``, ``thread``, ``inline``, ``ray``).
    description
        Free text.
    replace
        Update the trigger if it exists (its firings, event position and last slot are kept).
    base
        The folder relative pipeline paths are read against (default: the current one).

    Returns
    -------
    TriggerInfo

    Raises
    ------
    InvalidInput
        Both or neither of ``schedule`` and ``event_type``; a bad schedule, filter, pipeline,
        parameter or template.
    Conflict
        The trigger exists and ``replace`` is False.

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.pipelines import Pipeline
    >>> from loopml.triggers import add_trigger
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> p = Pipeline("noop", params={"dataset": str})
    >>> _ = p.add("loopml.pipelines.dsl:_echo", name="echo", value=p.param("dataset"))
    >>> t = add_trigger(ws, "on-new-data", pipeline=p, event_type="dataset.version_created",
    ...                 params={"dataset": "${event.payload.dataset}:${event.payload.version}"})
    >>> t.kind, t.rule
    ('event', 'on dataset.version_created')
    >>> ws.close()
    """
    spec = build_trigger_spec(ws, name, pipeline=pipeline, params=params, schedule=schedule, event_type=event_type,
                              event_filter=event_filter, enabled=enabled, cooldown_s=cooldown_s, executor=executor,
                              description=description, base=base)
    return put_trigger(ws, spec, replace=replace)


def put_trigger(ws: Workspace, spec: TriggerSpec, *, replace: bool = True) -> TriggerInfo:
    """Write a validated trigger (from :func:`build_trigger_spec`): create it, or update it if ``replace``.

    An update keeps the trigger's firings; a changed schedule starts from now
    (no catch-up for the old rule's slots) and a changed event type from the
    current end of the event log.
    """
    from loopml.errors import Conflict

    name = spec.name
    now = utcnow()
    since = _max_event_id(ws)
    with ws.meta.session(write=True) as s:
        row = s.get(TriggerRow, name, with_for_update=True)
        if row is not None and not replace:
            raise Conflict(f"trigger {name!r} exists; remove it first (`loopml triggers remove {name}`) "
                           "or update it (replace=True)")
        values = dict(pipeline_source=spec.pipeline_source, pipeline_name=spec.pipeline_name,
                      pipeline_version=spec.pipeline_version, pipeline_definition=spec.pipeline_definition,
                      params=spec.params, schedule=spec.schedule, event_type=spec.event_type,
                      event_filter=spec.event_filter, enabled=spec.enabled, cooldown_s=spec.cooldown_s,
                      executor=spec.executor, description=spec.description)
        if row is None:
            row = TriggerRow(name=name, since_event_id=since, last_slot=None, created_at=now, updated_at=now,
                             **values)
            s.add(row)
        else:
            if row.schedule != spec.schedule or (spec.enabled and not row.enabled):
                # a new rule (or a re-enabled one) starts from now: no catch-up firing for earlier slots
                row.last_slot = parse_schedule(spec.schedule).latest_slot(now) if spec.schedule else None
            if row.event_type != spec.event_type or (spec.enabled and not row.enabled):
                row.since_event_id = max(int(row.since_event_id), since)
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
        s.flush()
        return _trigger(row)


def get_trigger(ws: Workspace, name: str) -> TriggerInfo:
    """The trigger ``name``; NotFound (naming the close ones) if there is none."""
    with ws.meta.session() as s:
        row = s.get(TriggerRow, name)
        if row is None:
            names = list(s.scalars(select(TriggerRow.name)))
            raise NotFound(f"no trigger {name!r}{did_you_mean(name, names)}; see `loopml triggers list`")
        return _trigger(row)


def list_triggers(ws: Workspace, *, enabled: bool | None = None) -> list[TriggerInfo]:
    """Every trigger by name (only enabled or disabled ones if ``enabled`` is given)."""
    q = select(TriggerRow).order_by(TriggerRow.name)
    if enabled is not None:
        q = q.where(TriggerRow.enabled == enabled)
    with ws.meta.session() as s:
        return [_trigger(r) for r in s.scalars(q)]


def remove_trigger(ws: Workspace, name: str) -> None:
    """Remove a trigger and its firing records (the executions it started stay)."""
    get_trigger(ws, name)
    with ws.meta.session(write=True) as s:
        for f in s.scalars(select(TriggerFiringRow).where(TriggerFiringRow.trigger_name == name)):
            s.delete(f)
        row = s.get(TriggerRow, name)
        if row is not None:
            s.delete(row)


def _set_enabled(ws: Workspace, name: str, enabled: bool) -> TriggerInfo:
    get_trigger(ws, name)
    now = utcnow()
    with ws.meta.session(write=True) as s:
        row = s.get_one(TriggerRow, name, with_for_update=True)
        if bool(row.enabled) != enabled:
            row.enabled = enabled
            row.updated_at = now
            if enabled and row.schedule:
                # slots missed while disabled are not caught up
                row.last_slot = parse_schedule(row.schedule).latest_slot(now)
            if enabled and row.event_type:
                row.since_event_id = max(int(row.since_event_id), _max_event_id(ws))
        s.flush()
        return _trigger(row)


def enable_trigger(ws: Workspace, name: str) -> TriggerInfo:
    """Enable a trigger; events and slots from while it was disabled do not fire it."""
    return _set_enabled(ws, name, True)


def disable_trigger(ws: Workspace, name: str) -> TriggerInfo:
    """Disable a trigger (its firings in progress finish)."""
    return _set_enabled(ws, name, False)


def list_firings(
    ws: Workspace, *, trigger: str | None = None, status: str | None = None, limit: int = 50,
) -> list[FiringInfo]:
    """Firings, newest first (of one trigger and/or status if given)."""
    if status is not None and status not in FIRING_STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(FIRING_STATUSES)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive whole number, got {limit!r}")
    q = select(TriggerFiringRow).order_by(TriggerFiringRow.created_at.desc(), TriggerFiringRow.id.desc()).limit(limit)
    if trigger is not None:
        q = q.where(TriggerFiringRow.trigger_name == trigger)
    if status is not None:
        q = q.where(TriggerFiringRow.status == status)
    with ws.meta.session() as s:
        return _with_executions(s, list(s.scalars(q)))


def _with_executions(s: Any, rows: list[TriggerFiringRow]) -> list[FiringInfo]:
    """Firings, with the execution of running ones looked up by idempotency key (recorded at the end)."""
    keys = [r.idempotency_key for r in rows if r.execution_id is None and r.status == RUNNING]
    found: dict[str, str] = {}
    if keys:
        found = {k: i for k, i in s.execute(select(PipelineExecutionRow.idempotency_key, PipelineExecutionRow.id)
                                            .where(PipelineExecutionRow.idempotency_key.in_(keys)))}
    out = []
    for r in rows:
        f = _firing(r)
        if f.execution_id is None and r.idempotency_key in found:
            f = FiringInfo(**{**f.__dict__, "execution_id": found[r.idempotency_key]})
        out.append(f)
    return out


def get_firing(ws: Workspace, firing_id: str) -> FiringInfo:
    """The firing ``firing_id``."""
    with ws.meta.session() as s:
        row = s.get(TriggerFiringRow, firing_id)
        if row is None:
            raise NotFound(f"no trigger firing {firing_id!r}; see `loopml triggers show TRIGGER`")
        return _with_executions(s, [row])[0]


# -- firing --------------------------------------------------------------------------------------------
def event_context(ev: Event) -> dict[str, Any]:
    """The ``event`` part of a template context."""
    return {"id": ev.id, "type": ev.type, "entity": {"kind": ev.entity.kind, "id": ev.entity.id},
            "payload": dict(ev.payload), "created_at": ev.created_at.isoformat()}


def schedule_context(slot: datetime) -> dict[str, Any]:
    """The ``schedule`` part of a template context."""
    slot = as_utc(slot)
    return {"time": slot_key(slot), "date": slot.strftime("%Y-%m-%d"), "epoch": int(slot.timestamp())}


def idempotency_key(trigger: str, fire_key: str) -> str:
    """The pipeline idempotency key of a firing: ``trigger:NAME:KEY``."""
    return f"trigger:{trigger}:{fire_key}"


def claim_firing(
    ws: Workspace,
    t: TriggerInfo,
    fire_key: str,
    source: str,
    *,
    owner: str,
    event: Event | None = None,
    slot: datetime | None = None,
    override: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    check_cooldown: bool = True,
    advance_slot: bool = True,
) -> FiringInfo | None:
    """Record a firing of ``t`` for ``fire_key``; None if one is already recorded (by anyone).

    The parameters are rendered now; a firing whose templates cannot be filled
    is recorded as Failed, one inside the cooldown as Skipped — either way it
    is recorded, so it is not tried again. A schedule firing also moves the
    trigger's last slot in the same transaction (unless ``advance_slot`` is False).
    """
    created = utcnow()
    context: dict[str, Any] = {"trigger": {"name": t.name}, "firing": {"key": fire_key},
                               "now": (now or created).isoformat()}
    if event is not None:
        context["event"] = event_context(event)
    if slot is not None:
        context["schedule"] = schedule_context(slot)
    status, error = PENDING, None
    params: dict[str, Any] = {}
    given = dict(override or {})
    try:
        params = templates.render_params({k: v for k, v in t.params.items() if k not in given}, context)
        params.update(given)
    except InvalidInput as e:
        status, error = FAILED, f"{e}" + (" (give the value with --param)" if source == "manual" else "")
    row = TriggerFiringRow(
        id=new_id("tfr"), trigger_name=t.name, fire_key=fire_key, source=source,
        event_id=event.id if event is not None else None, slot=slot, params=params,
        idempotency_key=idempotency_key(t.name, fire_key), status=status, error=error, owner=owner,
        created_at=created, ended_at=created if status == FAILED else None,
    )
    try:
        with ws.meta.session(write=True) as s:
            if s.scalar(select(TriggerFiringRow.id).where(TriggerFiringRow.trigger_name == t.name,
                                                          TriggerFiringRow.fire_key == fire_key)):
                return None
            if status == PENDING and check_cooldown and t.cooldown_s > 0:
                last = s.scalar(select(func.max(TriggerFiringRow.created_at)).where(
                    TriggerFiringRow.trigger_name == t.name, TriggerFiringRow.status != SKIPPED))
                if last is not None and as_utc(last) > created - timedelta(seconds=t.cooldown_s):
                    row.status, row.ended_at = SKIPPED, created
                    row.error = (f"cooldown: the trigger fired at {as_utc(last):%Y-%m-%d %H:%M:%S} UTC, within "
                                 f"{format_duration(t.cooldown_s)}")
            s.add(row)
            if slot is not None and advance_slot:
                trow = s.get(TriggerRow, t.name)
                if trow is not None and (trow.last_slot is None or as_utc(trow.last_slot) < slot):
                    trow.last_slot = slot
            s.flush()
            return _firing(row)
    except sa_exc.IntegrityError:
        return None  # a concurrent scheduler recorded it first


def _update(ws: Workspace, firing_id: str, **values: Any) -> None:
    with ws.meta.session(write=True) as s:
        row = s.get(TriggerFiringRow, firing_id)
        if row is None:  # its trigger was removed meanwhile (with its firings)
            return
        for k, v in values.items():
            setattr(row, k, v)


def _claim_for_run(ws: Workspace, firing_id: str, owner: str) -> TriggerFiringRow | None:
    """Mark a Pending firing Running for ``owner``; None if someone else has it."""
    with ws.meta.session(write=True) as s:
        row = s.get(TriggerFiringRow, firing_id, with_for_update=True)
        if row is None or row.status not in OPEN_STATUSES:
            return None
        if row.owner != owner and owner_alive(row.owner):
            return None
        row.owner, row.status, row.started_at = owner, RUNNING, row.started_at or utcnow()
        s.flush()
        s.expunge(row)
        return row


def release_firing(ws: Workspace, firing_id: str, owner: str) -> None:
    """Give back a Pending firing ``owner`` will not start (it is stopping): the next scheduler runs it."""
    with ws.meta.session(write=True) as s:
        row = s.get(TriggerFiringRow, firing_id, with_for_update=True)
        if row is not None and row.status == PENDING and row.owner == owner:
            row.owner = RELEASED


def run_firing(ws: Workspace, firing_id: str, owner: str) -> FiringInfo:
    """Start (and wait for) the pipeline execution of a recorded firing, and record how it ended.

    Safe to call twice, from two processes: the firing is claimed first, and the
    execution's idempotency key makes a second start return the first one.
    Failures are recorded, not raised.
    """
    row = _claim_for_run(ws, firing_id, owner)
    if row is None:
        return get_firing(ws, firing_id)
    try:
        with ws.meta.session() as s:
            trow = s.get(TriggerRow, row.trigger_name)
            if trow is None:
                raise NotFound(f"trigger {row.trigger_name!r} was removed")
            t = _trigger(trow)
        p = load_for_run(ws, t.pipeline_source, t.pipeline_definition)
        # (the execution's id is found by its idempotency key while it runs; see _with_executions)
        ex = run_pipeline(ws, p, row.params, executor=t.executor, idempotency_key=row.idempotency_key)
    except Exception as e:
        message = str(e) if isinstance(e, LoopmlError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        if not isinstance(e, LoopmlError):
            log.exception("firing %s of trigger %s", firing_id, row.trigger_name)
        existing = _execution_for(ws, row.idempotency_key)
        _update(ws, firing_id, status=FAILED, error=f"could not start the pipeline: {message}",
                ended_at=utcnow(), execution_id=existing)
        try:
            return get_firing(ws, firing_id)
        except NotFound:
            return FiringInfo(**{**_firing(row).__dict__, "status": FAILED, "error": message})
    _finish(ws, firing_id, ex, row)
    try:
        return get_firing(ws, firing_id)
    except NotFound:  # removed with its trigger while it ran: say how it ended all the same
        return FiringInfo(**{**_firing(row).__dict__, "execution_id": ex.id,
                             "status": _EXECUTION_TO_FIRING.get(ex.status, FAILED), "error": ex.error})


def _execution_for(ws: Workspace, key: str) -> str | None:
    with ws.meta.session() as s:
        return s.scalar(select(PipelineExecutionRow.id).where(PipelineExecutionRow.idempotency_key == key))


def _finish(ws: Workspace, firing_id: str, ex: ExecutionInfo, row: TriggerFiringRow) -> None:
    status = _EXECUTION_TO_FIRING.get(ex.status, FAILED)
    with ws.meta.session(write=True) as s:
        r = s.get(TriggerFiringRow, firing_id)
        if r is None:  # its trigger was removed meanwhile (with its firings)
            return
        r.execution_id, r.status, r.error = ex.id, status, ex.error
        r.ended_at = None if status == RUNNING else utcnow()
        exec_ref = EntityRef("pipeline_execution", ex.id)
        ws.lineage.add(EntityRef(TRIGGER_KIND, row.trigger_name), exec_ref, "fired", session=s)
        if row.event_id is not None:
            ev = s.get(EventRow, row.event_id)
            if ev is not None:
                ws.lineage.add(EntityRef(ev.entity_kind, ev.entity_id), exec_ref, "triggered", session=s)


def sync_firing(ws: Workspace, f: FiringInfo) -> FiringInfo:
    """Bring a Running firing whose owner is gone up to date with its execution.

    An execution that ended is copied; one still Executing whose coordinator is
    gone too is recorded as Failed with how to resume it; a firing that never
    started is left Pending for a scheduler to run.
    """
    if f.status not in OPEN_STATUSES or owner_alive(f.owner):
        return f
    ex_id = f.execution_id or _execution_for(ws, f.idempotency_key)
    if ex_id is None:
        if f.status == RUNNING:
            _update(ws, f.id, status=PENDING)
        return get_firing(ws, f.id)
    from loopml.pipelines import get_execution

    ex = get_execution(ws, ex_id)
    if ex.status != "Executing":
        _update(ws, f.id, execution_id=ex.id, status=_EXECUTION_TO_FIRING.get(ex.status, FAILED), error=ex.error,
                ended_at=ex.end_time or utcnow())
    else:
        with ws.meta.session() as s:
            coord = dict(s.get_one(PipelineExecutionRow, ex.id).coordinator or {})
        host, pid = coord.get("host"), coord.get("pid")
        if not owner_alive(f"{host}:{pid}:x"):
            _update(ws, f.id, execution_id=ex.id, status=FAILED, ended_at=utcnow(),
                    error=f"the scheduler running execution {ex.id} stopped before it ended; resume it with "
                          f"`loopml pipelines resume {ex.id}`")
    return get_firing(ws, f.id)


def fire_trigger(
    ws: Workspace,
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    event_id: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> FiringInfo:
    """Fire trigger ``name`` by hand and wait for the execution it starts.

    Parameters
    ----------
    params
        Values that replace the trigger's templates (the rest are rendered;
        a template that needs an event needs ``event_id`` or a value here).
    event_id
        Fire as the scheduler would for this event (same fire key, so the
        scheduler will not fire again for it, and vice versa).
    key
        An idempotency key for this manual firing (a second call with it returns the first firing).
    now
        The time a schedule trigger's ``${schedule...}`` templates see (default: now).

    Returns
    -------
    FiringInfo
        With the execution's outcome (failures are recorded, not raised).

    Raises
    ------
    NotFound
        No such trigger or event.
    InvalidInput
        A bad key, or an event of another type than the trigger's.
    """
    t = get_trigger(ws, name)
    owner = new_owner("manual")
    event: Event | None = None
    slot: datetime | None = None
    if event_id is not None:
        if isinstance(event_id, bool) or not isinstance(event_id, int) or event_id < 1:
            raise InvalidInput(f"event id must be a positive whole number, got {event_id!r}")
        found = ws.events.list(after=event_id - 1, limit=1)
        if not found or found[0].id != event_id:
            raise NotFound(f"no event {event_id} in the workspace's event log")
        event = found[0]
        if t.event_type is None:
            raise InvalidInput(f"trigger {name!r} runs on a schedule; fire it without an event")
        import fnmatch

        if not fnmatch.fnmatchcase(event.type, t.event_type):
            raise InvalidInput(f"event {event_id} is a {event.type!r} event; trigger {name!r} listens to "
                               f"{t.event_type!r}")
        fire_key, source = str(event_id), "event"
    else:
        if key is not None and (not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,200}", key)):
            raise InvalidInput(f"key {key!r} must be 1 to 200 letters, digits, '_', '.', ':' or '-'")
        fire_key, source = f"manual-{key or uuid.uuid4().hex[:16]}", "manual"
        if t.schedule:
            slot = as_utc(now or utcnow())
    # a manual firing of a schedule trigger fills ${schedule...} with now, without moving its last slot
    f = claim_firing(ws, t, fire_key, source, owner=owner, event=event, slot=slot, override=params, now=now,
                     check_cooldown=False, advance_slot=False)
    if f is None:
        with ws.meta.session() as s:
            fid = s.scalar(select(TriggerFiringRow.id).where(TriggerFiringRow.trigger_name == name,
                                                             TriggerFiringRow.fire_key == fire_key))
        existing = get_firing(ws, str(fid))
        if existing.status in OPEN_STATUSES and not owner_alive(existing.owner):
            return run_firing(ws, existing.id, owner)
        return existing
    if f.status != PENDING:
        return f
    return run_firing(ws, f.id, owner)


__all__ = [
    "FAILED",
    "FIRING_STATUSES",
    "PENDING",
    "RUNNING",
    "SKIPPED",
    "STOPPED",
    "SUCCEEDED",
    "FiringInfo",
    "TriggerInfo",
    "TriggerSpec",
    "add_trigger",
    "build_trigger_spec",
    "claim_firing",
    "disable_trigger",
    "enable_trigger",
    "fire_trigger",
    "get_firing",
    "get_trigger",
    "list_firings",
    "list_triggers",
    "new_owner",
    "owner_alive",
    "put_trigger",
    "release_firing",
    "remove_trigger",
    "run_firing",
    "sync_firing",
]
