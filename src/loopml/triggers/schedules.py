"""Schedules (``every 1h`` or a cron expression) and when they are due; durations. Pure functions.

A schedule divides time into *slots*: for ``every 1h``, the whole hours since
the epoch (UTC); for a cron expression, the times it matches (UTC). A job is
due when the latest slot at or before *now* is later than the slot it last
ran for — so a scheduler that was down for five slots runs the job once, for
the latest one, not five times.

Examples
--------
>>> from datetime import datetime, timezone
>>> s = parse_schedule("every 15m")
>>> s.text, s.period_s
('every 15m', 900.0)
>>> now = datetime(2026, 1, 2, 3, 40, tzinfo=timezone.utc)
>>> s.latest_slot(now).isoformat()
'2026-01-02T03:30:00+00:00'
>>> parse_schedule("0 */6 * * *").latest_slot(now).isoformat()
'2026-01-02T00:00:00+00:00'
>>> due_slot(parse_schedule("0 * * * *"), now, after=datetime(2026, 1, 2, 1, 0, tzinfo=timezone.utc))
datetime.datetime(2026, 1, 2, 3, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from loopml._util import as_utc
from loopml.errors import InvalidInput

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|min|m|sec|s)", re.I)
_CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: the shortest period a schedule may have (the scheduler polls every few seconds)
MIN_PERIOD_S = 1.0
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """Seconds in ``text``: ``90s``, ``5m``, ``1h30m``, ``2d``, ``1w`` (or a plain number of seconds).

    Examples
    --------
    >>> parse_duration("1h30m"), parse_duration("45s"), parse_duration(12)
    (5400.0, 45.0, 12.0)
    """
    if isinstance(text, bool):
        raise InvalidInput(f"{what} must be a duration such as 30s, 5m, 1h or 1d, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        raw = str(text).strip().lower()
        try:
            value = float(raw)
        except ValueError:
            pos, total = 0, 0.0
            compact = raw.replace(" ", "")
            for m in _PART.finditer(compact):
                if m.start() != pos:
                    break
                total += float(m.group(1)) * _UNITS[m.group(2).lower()]
                pos = m.end()
            if pos != len(compact) or not compact:
                raise InvalidInput(f"{what} {text!r} is not a duration; write e.g. 30s, 5m, 1h, 1h30m or 1d") from None
            value = total
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{what} must be a non-negative duration, got {text!r}")
    return value


def format_duration(seconds: float) -> str:
    """The shortest text for ``seconds`` in one unit where it divides evenly (``3600`` -> ``1h``).

    Examples
    --------
    >>> format_duration(3600), format_duration(90), format_duration(5400), format_duration(1.5)
    ('1h', '90s', '90m', '1.5s')
    """
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _clean(d: datetime) -> datetime:
    """A plain UTC datetime (croniter may hand back ``fold=1`` or another UTC object)."""
    return as_utc(d).astimezone(timezone.utc).replace(fold=0)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``kind`` is ``every`` (a fixed period) or ``cron`` (UTC)."""

    kind: str
    text: str
    period_s: float | None = None
    cron: str | None = None

    def latest_slot(self, now: datetime) -> datetime:
        """The latest slot at or before ``now`` (UTC)."""
        now = as_utc(now)
        if self.kind == "every":
            assert self.period_s is not None
            n = math.floor((now - _EPOCH).total_seconds() / self.period_s)
            return _EPOCH + timedelta(seconds=n * self.period_s)
        from croniter import croniter

        # croniter's get_prev is exclusive of its start; nudge past now so a slot at now counts
        start = now.replace(microsecond=0) + timedelta(seconds=1)
        return _clean(croniter(self.cron, start).get_prev(datetime))

    def next_slot(self, now: datetime) -> datetime:
        """The first slot after ``now``."""
        now = as_utc(now)
        if self.kind == "every":
            assert self.period_s is not None
            return self.latest_slot(now) + timedelta(seconds=self.period_s)
        from croniter import croniter

        return _clean(croniter(self.cron, now).get_next(datetime))

    def period_at(self, slot: datetime) -> float:
        """Seconds from the slot before ``slot`` to ``slot`` (the natural window of a run)."""
        if self.kind == "every":
            assert self.period_s is not None
            return self.period_s
        from croniter import croniter

        prev = _clean(croniter(self.cron, as_utc(slot)).get_prev(datetime))
        return (as_utc(slot) - prev).total_seconds()

    def __str__(self) -> str:
        return self.text


def parse_schedule(text: str) -> Schedule:
    """Read ``every DURATION`` (``every 1h``, ``every 30m``) or a 5-field cron expression (UTC).

    Cron aliases (``@hourly``, ``@daily``, ...) are accepted too.

    Raises
    ------
    InvalidInput
        Neither form, a bad cron field, or a period under one second.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("give a schedule: 'every 1h' (or --every 1h) or a cron expression such as '0 * * * *'")
    raw = " ".join(text.split())
    low = raw.lower()
    if low.startswith("every ") or low.startswith("@every "):
        period = parse_duration(raw.split(" ", 1)[1], "the schedule's period")
        if period < MIN_PERIOD_S:
            raise InvalidInput(f"schedule {text!r}: the period must be at least {MIN_PERIOD_S:g}s")
        return Schedule("every", f"every {format_duration(period)}", period_s=period)
    from croniter import croniter

    if low in _CRON_ALIASES:
        return Schedule("cron", low, cron=low)
    fields = raw.split(" ")
    if len(fields) != 5:
        raise InvalidInput(f"schedule {text!r} is not a cron expression of 5 fields (minute hour day month weekday, "
                           "e.g. '0 * * * *') nor 'every 1h'")
    try:
        croniter(raw, _EPOCH)
    except (ValueError, KeyError) as e:
        raise InvalidInput(f"cron expression {text!r} is not valid: {' '.join(str(e).split())}") from None
    return Schedule("cron", raw, cron=raw)


def due_slot(schedule: Schedule, now: datetime, *, after: datetime | None) -> datetime | None:
    """The slot to run at ``now`` if one is due: the latest slot at or before ``now`` if later than ``after``.

    ``after`` is the last slot already run (or the time the job was created);
    however many slots were missed, at most one is returned.
    """
    slot = schedule.latest_slot(now)
    if after is not None and slot <= as_utc(after):
        return None
    return slot


def slot_key(slot: datetime) -> str:
    """The text form of a slot used in keys: ISO 8601 UTC with a ``Z``.

    Examples
    --------
    >>> slot_key(datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc))
    '2026-01-02T03:00:00Z'
    """
    s = as_utc(slot).astimezone(timezone.utc)
    text = s.strftime("%Y-%m-%dT%H:%M:%S")
    if s.microsecond:
        text += f".{s.microsecond:06d}"
    return text + "Z"


__all__ = [
    "MIN_PERIOD_S",
    "Schedule",
    "due_slot",
    "format_duration",
    "parse_duration",
    "parse_schedule",
    "slot_key",
]
