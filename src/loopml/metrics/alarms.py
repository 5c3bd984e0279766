"""Metric alarms with CloudWatch semantics.

An alarm watches one statistic of a metric (``Average`` of ``ModelLatency`` for
``{"endpoint": "churn"}``, per 60 s period) against a threshold. Each evaluation
looks at the last ``evaluation_periods`` periods ending at ``now`` and counts the
breaching ones: ``datapoints_to_alarm`` of them ("N out of M") put the alarm in
``ALARM``; otherwise it is ``OK``. Periods without data are treated as
``treat_missing`` says:

``breaching`` / ``notBreaching``
    they count as breaching / not breaching.
``missing``
    they are left out; with no data at all the alarm goes to
    ``INSUFFICIENT_DATA``; when the missing periods alone decide the outcome
    (they could make N breaching), the alarm goes to ``ALARM`` if every present
    datapoint breaches, else ``OK``.
``ignore``
    as ``missing``, but where the data cannot decide, the state is kept.

Every state change is written with its reason and the datapoints that decided
it, emits the workspace event ``alarm.state_changed`` in the same transaction,
and then runs the alarm's actions (``webhook:URL`` POSTs JSON; a failure is
recorded in the history entry, never raised). A new alarm starts in
``INSUFFICIENT_DATA``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import sqlalchemy as sa

from loopml._util import as_utc, check_name, utcnow
from loopml.errors import InvalidInput, NotFound
from loopml.metrics.models import AlarmHistoryRow, AlarmRow
from loopml.metrics.table import _check_period, _dt, _epoch, check_dimensions, normalize_statistic
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the workspace event emitted on every alarm state change
ALARM_STATE_CHANGED = "alarm.state_changed"

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

#: comparison -> (short form, words for reasons)
COMPARISONS = {
    "GreaterThanThreshold": (">", "greater than"),
    "GreaterThanOrEqualToThreshold": (">=", "greater than or equal to"),
    "LessThanThreshold": ("<", "less than"),
    "LessThanOrEqualToThreshold": ("<=", "less than or equal to"),
}
_SHORT = {short: long for long, (short, _) in COMPARISONS.items()}
TREAT_MISSING = ("missing", "breaching", "notBreaching", "ignore")
ACTION_KINDS = ("webhook", "event")
#: seconds a webhook may take
WEBHOOK_TIMEOUT_S = 5.0


# -- data --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlarmInfo:
    """An alarm's configuration and its current state."""

    name: str
    metric: str
    dimensions: dict[str, str]
    statistic: str
    period_s: int
    threshold: float
    comparison: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing: str
    actions: tuple[str, ...]
    description: str
    state: str
    state_reason: str
    state_updated_at: datetime
    created_at: datetime
    updated_at: datetime

    @property
    def condition(self) -> str:
        """The rule in words, e.g. ``Average(ModelLatency) > 100 for 2 of 3 periods of 60s``."""
        return (f"{self.statistic}({self.metric}) {COMPARISONS[self.comparison][0]} {self.threshold:g} "
                f"for {self.datapoints_to_alarm} of {self.evaluation_periods} periods of {self.period_s}s")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "name": self.name, "metric": self.metric, "dimensions": dict(self.dimensions),
            "statistic": self.statistic, "period_s": self.period_s, "threshold": self.threshold,
            "comparison": self.comparison, "evaluation_periods": self.evaluation_periods,
            "datapoints_to_alarm": self.datapoints_to_alarm, "treat_missing": self.treat_missing,
            "actions": list(self.actions), "description": self.description, "state": self.state,
            "state_reason": self.state_reason, "state_updated_at": self.state_updated_at.isoformat(),
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class ActionResult:
    """What happened when an action ran: ``ok``, the HTTP status, or the error."""

    action: str
    ok: bool
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {"action": self.action, "ok": self.ok, "status": self.status, "error": self.error}


@dataclass(frozen=True)
class StateChange:
    """One state change of an alarm: from, to, why, and the datapoints that decided it.

    ``datapoints`` are ``(period start, value)`` of the periods that had data in
    the evaluated window (empty for a state set by hand); ``actions`` are the
    results of the actions that ran.
    """

    alarm: str
    old_state: str
    new_state: str
    reason: str
    timestamp: datetime
    datapoints: tuple[tuple[datetime, float], ...] = ()
    actions: tuple[ActionResult, ...] = ()
    id: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "alarm": self.alarm, "old_state": self.old_state, "new_state": self.new_state,
            "reason": self.reason, "timestamp": self.timestamp.isoformat(),
            "datapoints": [{"timestamp": t.isoformat(), "value": v} for t, v in self.datapoints],
            "actions": [a.to_dict() for a in self.actions],
        }


# -- validation --------------------------------------------------------------------------
def normalize_comparison(comparison: str) -> str:
    """The long CloudWatch name of ``comparison`` (``>`` -> ``GreaterThanThreshold``), or raise."""
    if isinstance(comparison, str):
        c = comparison.strip()
        if c in _SHORT:
            return _SHORT[c]
        for name in COMPARISONS:
            if c.lower() == name.lower():
                return name
    raise InvalidInput(
        f"unknown comparison {comparison!r}; use one of {', '.join(COMPARISONS)} "
        "or the short forms > >= < <="
    )


def _normalize_treat_missing(value: str) -> str:
    if isinstance(value, str):
        for t in TREAT_MISSING:
            if value.strip().lower() == t.lower():
                return t
    raise InvalidInput(f"unknown treat_missing {value!r}; use one of {', '.join(TREAT_MISSING)}")


def _normalize_state(state: str) -> str:
    if isinstance(state, str) and state.strip().upper() in STATES:
        return state.strip().upper()
    raise InvalidInput(f"unknown alarm state {state!r}; use one of {', '.join(STATES)}")


def _check_actions(actions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(actions, str):
        actions = [actions]
    out: list[str] = []
    for a in actions:
        if not isinstance(a, str):
            raise InvalidInput(f"alarm action {a!r} must be a string such as 'webhook:https://host/path'")
        kind, sep, target = a.strip().partition(":")
        if kind == "event" and not sep:
            out.append("event")
        elif kind == "webhook":
            url = urlparse(target)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise InvalidInput(
                    f"alarm action {a!r} needs an http(s) URL, e.g. webhook:https://hooks.example.com/alarm"
                )
            out.append(f"webhook:{target}")
        else:
            raise InvalidInput(
                f"unknown alarm action {a!r}; use 'webhook:URL' (POSTs JSON on every state change) "
                "or 'event' (the alarm.state_changed event, always emitted)"
            )
    return tuple(dict.fromkeys(out))


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise InvalidInput(f"{what} must be a positive whole number, got {value!r}")
    return int(value)


# -- CRUD --------------------------------------------------------------------------------
def _info(row: AlarmRow) -> AlarmInfo:
    return AlarmInfo(
        name=row.name, metric=row.metric, dimensions=dict(row.dimensions or {}),
        statistic=row.statistic, period_s=int(row.period_s), threshold=float(row.threshold),
        comparison=row.comparison, evaluation_periods=int(row.evaluation_periods),
        datapoints_to_alarm=int(row.datapoints_to_alarm), treat_missing=row.treat_missing,
        actions=tuple(row.actions or ()), description=row.description, state=row.state,
        state_reason=row.state_reason, state_updated_at=as_utc(row.state_updated_at),
        created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at),
    )


def _not_found(name: str) -> NotFound:
    return NotFound(f"no alarm named {name!r}; see `loopml alarms list`")


def put_alarm(
    ws: Workspace,
    name: str,
    *,
    metric: str,
    threshold: float,
    comparison: str,
    dimensions: Mapping[str, str] | None = None,
    statistic: str = "Average",
    period_s: int = 60,
    evaluation_periods: int = 1,
    datapoints_to_alarm: int | None = None,
    treat_missing: str = "missing",
    actions: Sequence[str] = (),
    description: str = "",
) -> AlarmInfo:
    """Create an alarm, or replace the configuration of an existing one (its state is kept).

    Parameters
    ----------
    ws
        The workspace.
    name
        The alarm's name.
    metric, dimensions
        What it watches: a metric name, and the dimensions its points must have
        (a subset match; points of every matching series are pooled).
    threshold, comparison
        The rule: ``GreaterThanThreshold``, ``GreaterThanOrEqualToThreshold``,
        ``LessThanThreshold``, ``LessThanOrEqualToThreshold`` (or ``>``, ``>=``, ``<``, ``<=``).
    statistic, period_s
        The statistic per period (``Average``, ``Sum``, ``Minimum``, ``Maximum``,
        ``SampleCount``, ``pNN``) and the period in whole seconds.
    evaluation_periods, datapoints_to_alarm
        "N out of M": ``datapoints_to_alarm`` (default: all) of the last
        ``evaluation_periods`` periods must breach.
    treat_missing
        ``missing`` (default), ``breaching``, ``notBreaching`` or ``ignore``.
    actions
        Run on every state change: ``webhook:URL`` POSTs the change as JSON.
        ``event`` (the ``alarm.state_changed`` event) is always emitted.
    description
        Free text.

    Returns
    -------
    AlarmInfo
        The stored alarm.

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.metrics import alarms
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> a = alarms.put_alarm(ws, "churn-latency", metric="ModelLatency", threshold=100,
    ...                      comparison=">", dimensions={"endpoint": "churn"}, evaluation_periods=3,
    ...                      datapoints_to_alarm=2)
    >>> a.state, a.condition
    ('INSUFFICIENT_DATA', 'Average(ModelLatency) > 100 for 2 of 3 periods of 60s')
    >>> ws.close()
    """
    check_name(name, "alarm")
    check_name(metric, "metric")
    dims = check_dimensions(dimensions, "alarm dimensions")
    stat = normalize_statistic(statistic)
    _check_period(period_s)
    period = _positive_int(period_s, "period_s")
    cmp = normalize_comparison(comparison)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise InvalidInput(f"threshold must be a finite number, got {threshold!r}")
    m = _positive_int(evaluation_periods, "evaluation_periods")
    n = m if datapoints_to_alarm is None else _positive_int(datapoints_to_alarm, "datapoints_to_alarm")
    if n > m:
        raise InvalidInput(
            f"datapoints_to_alarm ({n}) cannot exceed evaluation_periods ({m}); "
            f"the alarm needs N out of the last M periods with N <= M"
        )
    treat = _normalize_treat_missing(treat_missing)
    acts = _check_actions(actions)
    if not isinstance(description, str) or len(description) > 2000:
        raise InvalidInput("description must be a string of at most 2000 characters")
    now = utcnow()
    config = dict(metric=metric, dimensions=dims, statistic=stat, period_s=period, threshold=float(threshold),
                  comparison=cmp, evaluation_periods=m, datapoints_to_alarm=n, treat_missing=treat,
                  actions=list(acts), description=description)
    with ws.meta.session(write=True) as s:
        row = s.get(AlarmRow, name, with_for_update=True)
        if row is None:
            row = AlarmRow(name=name, state=INSUFFICIENT_DATA, state_reason="Unchecked: initial alarm creation",
                           state_updated_at=now, created_at=now, updated_at=now, **config)
            s.add(row)
        else:
            for k, v in config.items():
                setattr(row, k, v)
            row.updated_at = now
        s.flush()
        return _info(row)


def get_alarm(ws: Workspace, name: str) -> AlarmInfo:
    """The alarm ``name``; :class:`~loopml.errors.NotFound` if there is none."""
    with ws.meta.session() as s:
        row = s.get(AlarmRow, name)
        if row is None:
            raise _not_found(name)
        return _info(row)


def list_alarms(ws: Workspace, *, state: str | None = None) -> list[AlarmInfo]:
    """Every alarm (or those in ``state``), by name."""
    q = sa.select(AlarmRow).order_by(AlarmRow.name)
    if state is not None:
        q = q.where(AlarmRow.state == _normalize_state(state))
    with ws.meta.session() as s:
        return [_info(r) for r in s.scalars(q)]


def delete_alarm(ws: Workspace, name: str) -> None:
    """Delete the alarm ``name`` and its history."""
    with ws.meta.session(write=True) as s:
        row = s.get(AlarmRow, name)
        if row is None:
            raise _not_found(name)
        s.execute(sa.delete(AlarmHistoryRow).where(AlarmHistoryRow.alarm_name == name))
        s.delete(row)


def alarm_history(ws: Workspace, name: str, *, limit: int = 100) -> list[StateChange]:
    """The alarm's state changes, newest first (at most ``limit``)."""
    q = (sa.select(AlarmHistoryRow).where(AlarmHistoryRow.alarm_name == name)
         .order_by(AlarmHistoryRow.id.desc()).limit(limit))
    with ws.meta.session() as s:
        if s.get(AlarmRow, name) is None:
            raise _not_found(name)
        return [_change(r) for r in s.scalars(q)]


def _change(r: AlarmHistoryRow) -> StateChange:
    return StateChange(
        alarm=r.alarm_name, old_state=r.old_state, new_state=r.new_state, reason=r.reason,
        timestamp=as_utc(r.created_at),
        datapoints=tuple((_dt(float(t)), float(v)) for t, v in (r.datapoints or [])),
        actions=tuple(ActionResult(**a) for a in (r.action_results or [])),
        id=int(r.id),
    )


# -- evaluation --------------------------------------------------------------------------
def _breaches(value: float, comparison: str, threshold: float) -> bool:
    if comparison == "GreaterThanThreshold":
        return value > threshold
    if comparison == "GreaterThanOrEqualToThreshold":
        return value >= threshold
    if comparison == "LessThanThreshold":
        return value < threshold
    return value <= threshold


def decide(
    alarm: AlarmInfo, window: Sequence[tuple[datetime, float | None]]
) -> tuple[str | None, str]:
    """The state ``alarm`` should be in given the statistic of its last periods.

    ``window`` is ``[(period start, value or None if missing), ...]`` of the last
    ``evaluation_periods`` periods (as :meth:`~loopml.metrics.MetricsTable.recent`
    returns). Returns ``(state, reason)``; ``state`` is ``None`` where the
    alarm keeps its current state (``treat_missing="ignore"``).
    """
    m, n, tm = alarm.evaluation_periods, alarm.datapoints_to_alarm, alarm.treat_missing
    words = COMPARISONS[alarm.comparison][1]
    flags: list[bool | None] = [
        None if v is None else _breaches(v, alarm.comparison, alarm.threshold) for _, v in window
    ]
    present = sum(f is not None for f in flags)
    missing = m - present
    if tm in ("breaching", "notBreaching"):
        flags = [(tm == "breaching") if f is None else f for f in flags]
    breaching = sum(f is True for f in flags)
    shown = ", ".join(f"{v:g} ({t.isoformat()})" for t, v in window if v is not None)
    filled = f"; {missing} missing treated as {tm}" if missing and tm in ("breaching", "notBreaching") else ""
    what = f"{alarm.statistic} of {alarm.metric} per {alarm.period_s}s"
    if present == 0 and tm in ("missing", "ignore"):
        reason = f"Insufficient Data: no datapoints in the last {m} period(s) of {what}"
        return (INSUFFICIENT_DATA if tm == "missing" else None), reason
    head = f"Threshold Crossed: {breaching} of the last {m} datapoint(s) [{shown}]{filled}"
    if breaching >= n:
        return ALARM, (f"{head} were {words} the threshold ({alarm.threshold:g}) "
                       f"(minimum {n} datapoint(s) for ALARM)")
    if breaching + (missing if tm in ("missing", "ignore") else 0) < n:
        return OK, (f"{head} were {words} the threshold ({alarm.threshold:g}) "
                    f"(fewer than the {n} needed for ALARM)")
    # The missing periods alone decide: ignore keeps the state, missing judges the present points.
    if tm == "ignore":
        return None, f"{head}; {missing} missing period(s) ignored, state kept"
    if breaching == present:
        return ALARM, (f"{head} were {words} the threshold ({alarm.threshold:g}); every present "
                       f"datapoint breaches and {missing} period(s) are missing")
    return OK, (f"{head} were {words} the threshold ({alarm.threshold:g}); not every present "
                f"datapoint breaches and {missing} period(s) are missing")


def evaluate_alarms(
    ws: Workspace, *, names: Iterable[str] | None = None, now: datetime | None = None
) -> list[StateChange]:
    """Evaluate alarms (all, or ``names``) at ``now`` (default: the current time).

    Each alarm looks at its last ``evaluation_periods`` periods ending at
    ``now``. Returns the state changes made (and their action results);
    an alarm that keeps its state adds nothing.
    """
    end = _epoch(now, "now")
    if names is None:
        infos = list_alarms(ws)
    else:
        infos = [get_alarm(ws, n) for n in ([names] if isinstance(names, str) else names)]
    changes: list[StateChange] = []
    for a in infos:
        window = ws.metrics.recent(a.metric, a.statistic, period_s=a.period_s, periods=a.evaluation_periods,
                                   dimensions=a.dimensions, until=_dt(end))
        state, reason = decide(a, window)
        if state is None or state == a.state:
            continue
        points = tuple((t, v) for t, v in window if v is not None)
        change = _transition(ws, a.name, state, reason, points)
        if change is not None:
            changes.append(change)
    return changes


def set_alarm_state(ws: Workspace, name: str, state: str, reason: str) -> StateChange | None:
    """Put alarm ``name`` in ``state`` by hand (for tests and drills); its next evaluation may
    change it back. Actions run as for any change. Returns ``None`` if it already was in ``state``.
    """
    st = _normalize_state(state)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("give a reason for setting the alarm state, e.g. --reason 'testing the rollback'")
    get_alarm(ws, name)
    return _transition(ws, name, st, reason.strip(), ())


def _transition(ws: Workspace, name: str, state: str, reason: str,
                points: tuple[tuple[datetime, float], ...]) -> StateChange | None:
    """Write a state change, its history entry and its event in one transaction; then run actions.

    The current state is re-read under the write lock, so concurrent evaluators
    record (and announce) one change, not one each.
    """
    now = utcnow()
    with ws.meta.session(write=True) as s:
        row = s.get(AlarmRow, name, with_for_update=True)
        if row is None or row.state == state:
            return None
        old = row.state
        row.state, row.state_reason, row.state_updated_at = state, reason, now
        hist = AlarmHistoryRow(alarm_name=name, old_state=old, new_state=state, reason=reason,
                               datapoints=[[t.timestamp(), v] for t, v in points],
                               action_results=[], created_at=now)
        s.add(hist)
        ws.events.emit(ALARM_STATE_CHANGED, EntityRef("alarm", name), {
            "alarm": name, "old_state": old, "new_state": state, "reason": reason,
            "metric": row.metric, "dimensions": dict(row.dimensions or {}),
        }, session=s)
        s.flush()
        info = _info(row)
        hist_id = int(hist.id)
    change = StateChange(name, old, state, reason, now, points, (), hist_id)
    results = _run_actions(info, change)
    if results:
        try:
            with ws.meta.session(write=True) as s:
                s.execute(sa.update(AlarmHistoryRow).where(AlarmHistoryRow.id == hist_id)
                          .values(action_results=[r.to_dict() for r in results]))
        except Exception as e:  # the change itself is recorded; keep going
            log.error("alarm %s: could not record action results: %s", name, e)
        change = StateChange(name, old, state, reason, now, points, tuple(results), hist_id)
    return change


# -- actions -----------------------------------------------------------------------------
def _run_actions(alarm: AlarmInfo, change: StateChange) -> list[ActionResult]:
    results = []
    for action in alarm.actions:
        kind, _, target = action.partition(":")
        if kind == "webhook":
            results.append(_post_webhook(action, target, alarm, change))
        # "event": emitted with the change itself
    return results


def webhook_body(alarm: AlarmInfo, change: StateChange) -> dict[str, Any]:
    """The JSON a ``webhook:URL`` action POSTs: the change plus the alarm's rule."""
    return {
        **change.to_dict(),
        "metric": alarm.metric, "dimensions": dict(alarm.dimensions), "statistic": alarm.statistic,
        "period_s": alarm.period_s, "threshold": alarm.threshold, "comparison": alarm.comparison,
        "evaluation_periods": alarm.evaluation_periods, "datapoints_to_alarm": alarm.datapoints_to_alarm,
        "treat_missing": alarm.treat_missing, "description": alarm.description,
    }


def _post_webhook(action: str, url: str, alarm: AlarmInfo, change: StateChange) -> ActionResult:
    import httpx

    try:
        resp = httpx.post(url, json=webhook_body(alarm, change), timeout=WEBHOOK_TIMEOUT_S,
                          headers={"User-Agent": "loopml-alarms"})
    except Exception as e:  # a dead hook must never break the evaluation
        log.warning("alarm %s: webhook %s failed: %s", alarm.name, url, e)
        return ActionResult(action, False, None, f"{type(e).__name__}: {' '.join(str(e).split())}"[:500])
    if 200 <= resp.status_code < 300:
        return ActionResult(action, True, resp.status_code, None)
    log.warning("alarm %s: webhook %s answered HTTP %d", alarm.name, url, resp.status_code)
    return ActionResult(action, False, resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}")


__all__ = [
    "ALARM",
    "ALARM_STATE_CHANGED",
    "COMPARISONS",
    "INSUFFICIENT_DATA",
    "OK",
    "STATES",
    "TREAT_MISSING",
    "ActionResult",
    "AlarmInfo",
    "StateChange",
    "alarm_history",
    "decide",
    "delete_alarm",
    "evaluate_alarms",
    "get_alarm",
    "list_alarms",
    "normalize_comparison",
    "put_alarm",
    "set_alarm_state",
    "webhook_body",
]
