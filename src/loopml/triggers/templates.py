"""Parameter templates built from what fired a trigger, and event filters. Pure functions.

A template is any JSON value whose strings may hold references ``${...}``
into the firing's context:

- ``${event.id}``, ``${event.type}``, ``${event.entity.kind}``, ``${event.entity.id}``,
  ``${event.created_at}`` and ``${event.payload.FIELD}`` (dotted for nested fields);
- ``${schedule.time}`` (the slot, ISO 8601 UTC), ``${schedule.date}`` (``YYYY-MM-DD``),
  ``${schedule.epoch}`` (seconds);
- ``${trigger.name}``, ``${firing.key}`` and ``${now}``.

A string that is exactly one reference takes the referenced value with its
type (a number stays a number); otherwise references are replaced by their
text. ``$${`` writes a literal ``${``.

Examples
--------
>>> ctx = {"event": {"id": 7, "payload": {"dataset": "churn", "version": 3}}}
>>> render({"data": "${event.payload.dataset}:${event.payload.version}", "v": "${event.payload.version}"}, ctx)
{'data': 'churn:3', 'v': 3}
>>> matches({"new_state": "ALARM", "alarm": ["a", "b"]}, {"alarm": "b", "new_state": "ALARM"})
True
>>> matches({"version": "3"}, {"version": 3}), matches({"dimensions.endpoint": "x"}, {"dimensions": {"endpoint": "y"}})
(True, False)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from loopml.errors import InvalidInput

_REF = re.compile(r"\$\{([^{}]*)\}")
_ESCAPED = "$${"
_PLACEHOLDER = "\x00LOOPML_DOLLAR_BRACE\x00"

#: the roots a template may refer to, by what fires the trigger
ROOTS_EVENT = ("event", "trigger", "firing", "now")
ROOTS_SCHEDULE = ("schedule", "trigger", "firing", "now")
ROOTS_MANUAL = ("trigger", "firing", "now")
_ROOT_HELP = {
    "event": "event.id, event.type, event.entity.id, event.payload.FIELD",
    "schedule": "schedule.time, schedule.date, schedule.epoch",
    "trigger": "trigger.name",
    "firing": "firing.key",
    "now": "now",
}


class _Missing(Exception):
    def __init__(self, ref: str, why: str) -> None:
        super().__init__(ref)
        self.ref, self.why = ref, why


def references(template: Any) -> list[str]:
    """Every ``${...}`` reference in a template (nested values included), in order."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            out.extend(m.group(1).strip() for m in _REF.finditer(v.replace(_ESCAPED, _PLACEHOLDER)))
        elif isinstance(v, Mapping):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(template)
    return out


def check_templates(params: Mapping[str, Any], roots: Iterable[str], what: str) -> None:
    """Refuse references the firing will not be able to fill (e.g. ``${event...}`` on a schedule).

    Raises
    ------
    InvalidInput
        A reference to an unknown root, or one not available for ``what`` fires the trigger.
    """
    allowed = tuple(roots)
    for name, value in params.items():
        for ref in references(value):
            root = ref.split(".", 1)[0]
            if not ref or root not in _ROOT_HELP:
                raise InvalidInput(f"param {name!r}: ${{{ref}}} refers to nothing; references start with "
                                   f"{', '.join(sorted(_ROOT_HELP))} (e.g. ${{event.payload.dataset}})")
            if root not in allowed:
                usable = "; ".join(_ROOT_HELP[r] for r in allowed)
                raise InvalidInput(f"param {name!r}: ${{{ref}}} is not available to {what}; use {usable}")
            if root == "now" and ref != "now":
                raise InvalidInput(f"param {name!r}: write ${{now}}, not ${{{ref}}}")


def _lookup(context: Mapping[str, Any], ref: str) -> Any:
    parts = [p for p in ref.split(".")]
    if not ref or any(not p for p in parts):
        raise _Missing(ref, "is not a dotted name")
    value: Any = context
    walked: list[str] = []
    for p in parts:
        if isinstance(value, Mapping) and p in value:
            value = value[p]
        elif isinstance(value, (list, tuple)) and p.isdigit() and int(p) < len(value):
            value = value[int(p)]
        else:
            where = ".".join(walked) or "the context"
            have = sorted(str(k) for k in value) if isinstance(value, Mapping) else []
            hint = f" (it has {', '.join(have[:12])})" if have else ""
            raise _Missing(ref, f"{where} has no {p!r}{hint}")
        walked.append(p)
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    if value is None:
        return ""
    return str(value)


def _render_str(text: str, context: Mapping[str, Any]) -> Any:
    protected = text.replace(_ESCAPED, _PLACEHOLDER)
    whole = _REF.fullmatch(protected)
    if whole is not None:
        return _lookup(context, whole.group(1).strip())
    out = _REF.sub(lambda m: _text(_lookup(context, m.group(1).strip())), protected)
    return out.replace(_PLACEHOLDER, "${")


def render(template: Any, context: Mapping[str, Any]) -> Any:
    """``template`` with its references filled from ``context``.

    Raises
    ------
    InvalidInput
        A reference that ``context`` cannot fill; the message says which part was missing.
    """
    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return _render_str(v, context)
        if isinstance(v, Mapping):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    try:
        return walk(template)
    except _Missing as e:
        raise InvalidInput(f"cannot fill ${{{e.ref}}}: {e.why}") from None


def render_params(params: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Render each parameter template; the error names the parameter."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        try:
            out[name] = render(value, context)
        except InvalidInput as e:
            raise InvalidInput(f"param {name!r}: {e}") from None
    return out


def _get_path(payload: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    if key in payload:
        return True, payload[key]
    value: Any = payload
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return False, None
    return True, value


def _same(expected: Any, actual: Any) -> bool:
    if expected is None:
        return actual is None
    if expected == actual and type(expected) is not bool and type(actual) is not bool:
        return True
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    return _text(expected) == _text(actual)


def matches(event_filter: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """Whether an event's payload passes a filter.

    Each filter key names a payload field (dotted for a nested one, e.g.
    ``dimensions.endpoint``); its value must equal the field's (compared as
    text, so ``"3"`` matches ``3``), or be a list of accepted values. A key
    whose value is None matches a missing or null field.
    """
    for key, expected in event_filter.items():
        found, actual = _get_path(payload, key)
        if not found:
            if expected is None:
                continue
            return False
        options = expected if isinstance(expected, list) else [expected]
        if not any(_same(o, actual) for o in options):
            return False
    return True


def check_filter(event_filter: Any) -> dict[str, Any]:
    """Validate an event filter (a mapping of payload field -> value or list of values)."""
    if event_filter is None:
        return {}
    if not isinstance(event_filter, Mapping):
        raise InvalidInput(f"the event filter must map payload fields to values, e.g. {{'new_state': 'ALARM'}}, "
                           f"got {event_filter!r}")
    out: dict[str, Any] = {}
    for k, v in event_filter.items():
        if not isinstance(k, str) or not k.strip():
            raise InvalidInput(f"event filter key {k!r} must be a payload field name")
        values = v if isinstance(v, list) else [v]
        for x in values:
            if x is not None and not isinstance(x, (str, int, float, bool)):
                raise InvalidInput(f"event filter {k!r}: {x!r} is not a plain value (text, number, true/false)")
        out[k.strip()] = v
    return out


__all__ = [
    "ROOTS_EVENT",
    "ROOTS_MANUAL",
    "ROOTS_SCHEDULE",
    "check_filter",
    "check_templates",
    "matches",
    "references",
    "render",
    "render_params",
]
