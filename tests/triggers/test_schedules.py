"""Schedules, due slots and parameter templates: the pure parts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loopml.errors import InvalidInput
from loopml.triggers.schedules import (
    due_slot,
    format_duration,
    parse_duration,
    parse_schedule,
    slot_key,
)
from loopml.triggers.templates import (
    check_filter,
    check_templates,
    matches,
    references,
    render,
    render_params,
)

UTC = timezone.utc


def at(h: int, m: int = 0, s: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 1, day, h, m, s, tzinfo=UTC)


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("1h30m") == 5400 and parse_duration("2d") == 172800
    assert parse_duration("1w") == 604800 and parse_duration(" 5 m ") == 300 and parse_duration("2.5") == 2.5
    for bad in ("soon", "5 parsecs", "-3", "1h-2m", "", True):
        with pytest.raises(InvalidInput, match="duration"):
            parse_duration(bad)  # type: ignore[arg-type]
    assert [format_duration(x) for x in (60, 3600, 86400, 45, 604800)] == ["1m", "1h", "1d", "45s", "1w"]


def test_every_slots_are_aligned_to_the_epoch() -> None:
    s = parse_schedule("every 1h")
    assert (s.kind, s.text, s.period_s) == ("every", "every 1h", 3600)
    assert s.latest_slot(at(3, 59, 59)) == at(3) and s.latest_slot(at(3)) == at(3)
    assert s.next_slot(at(3, 10)) == at(4) and s.period_at(at(3)) == 3600
    assert parse_schedule("@every 90m").text == "every 90m"


def test_cron_slots() -> None:
    s = parse_schedule("*/15 * * * *")
    assert s.latest_slot(at(3, 44, 59)) == at(3, 30) and s.latest_slot(at(3, 45)) == at(3, 45)
    assert s.next_slot(at(3, 45)) == at(4) and s.period_at(at(4)) == 900
    assert parse_schedule("@daily").latest_slot(at(3)) == at(0)
    assert parse_schedule("0 9 * * 1-5").latest_slot(datetime(2026, 1, 4, 12, tzinfo=UTC)) == at(9, day=2)  # Sunday


@pytest.mark.parametrize("bad, msg", [
    ("", "give a schedule"),
    ("0 * * *", "5 fields"),
    ("61 * * * *", "not valid"),
    ("every 0s", "at least 1s"),
    ("every fortnight", "not a duration"),
    ("* * * * * *", "5 fields"),
])
def test_bad_schedules(bad: str, msg: str) -> None:
    with pytest.raises(InvalidInput, match=msg):
        parse_schedule(bad)


def test_missed_slots_fire_once_for_the_latest() -> None:
    hourly = parse_schedule("0 * * * *")
    # down from 01:00 to 05:30: one firing, for 05:00 — not four
    assert due_slot(hourly, at(5, 30), after=at(1)) == at(5)
    assert due_slot(hourly, at(5, 59), after=at(5)) is None          # 05:00 already ran
    assert due_slot(hourly, at(6), after=at(5)) == at(6)             # a slot at exactly now is due
    assert due_slot(hourly, at(0, 30), after=at(0, 20)) is None      # created after the last slot
    assert due_slot(hourly, at(0, 30), after=None) == at(0)
    assert slot_key(at(5)) == "2026-01-02T05:00:00Z"
    assert slot_key(at(5) + timedelta(microseconds=5)) == "2026-01-02T05:00:00.000005Z"


def test_templates_render_from_the_context() -> None:
    ctx = {"event": {"id": 7, "type": "dataset.version_created",
                     "payload": {"dataset": "churn", "version": 3, "tags": {"team": "ml"}, "rows": [1, 2]}},
           "trigger": {"name": "t"}, "now": "2026-01-02T00:00:00+00:00"}
    out = render_params({
        "data": "${event.payload.dataset}:${event.payload.version}",
        "version": "${event.payload.version}",             # one reference keeps the type
        "team": "${event.payload.tags.team}",
        "first": "${event.payload.rows.0}",
        "nested": {"list": ["${trigger.name}", 1]},
        "literal": "$${not.a.ref} and ${event.id}",
        "plain": 0.5,
    }, ctx)
    assert out == {"data": "churn:3", "version": 3, "team": "ml", "first": 1, "nested": {"list": ["t", 1]},
                   "literal": "${not.a.ref} and 7", "plain": 0.5}
    assert references({"a": ["x ${event.id}", {"b": "${now}"}], "c": "$${x}"}) == ["event.id", "now"]
    with pytest.raises(InvalidInput, match=r"param 'd': cannot fill \$\{event.payload.missing\}: "
                                           r"event.payload has no 'missing' \(it has dataset, rows, tags, version\)"):
        render_params({"d": "${event.payload.missing}"}, ctx)
    with pytest.raises(InvalidInput, match="cannot fill"):
        render("${schedule.time}", ctx)


def test_template_roots_are_checked_against_what_fires() -> None:
    check_templates({"a": "${event.payload.x}", "b": "${now}"}, ("event", "trigger", "firing", "now"), "x")
    with pytest.raises(InvalidInput, match=r"\$\{schedule.time\} is not available to an event trigger"):
        check_templates({"a": "${schedule.time}"}, ("event", "trigger", "firing", "now"), "an event trigger")
    with pytest.raises(InvalidInput, match=r"refers to nothing"):
        check_templates({"a": "${evnt.id}"}, ("event",), "x")
    with pytest.raises(InvalidInput, match=r"write \$\{now\}"):
        check_templates({"a": "${now.date}"}, ("now",), "x")


def test_event_filters() -> None:
    payload = {"alarm": "drift", "new_state": "ALARM", "version": 3, "ok": True,
               "dimensions": {"endpoint": "ep"}}
    assert matches({}, payload)
    assert matches({"alarm": "drift", "new_state": "ALARM"}, payload)
    assert not matches({"alarm": "drift", "new_state": "OK"}, payload)
    assert matches({"new_state": ["ALARM", "OK"]}, payload) and matches({"version": "3"}, payload)
    assert matches({"dimensions.endpoint": "ep"}, payload) and not matches({"dimensions.endpoint": "x"}, payload)
    assert matches({"ok": "true"}, payload) and not matches({"version": True}, {"version": 1})
    assert matches({"missing": None}, payload) and not matches({"missing": "x"}, payload)
    assert check_filter({"a": ["x", 1]}) == {"a": ["x", 1]} and check_filter(None) == {}
    with pytest.raises(InvalidInput, match="must map payload fields"):
        check_filter(["a"])
    with pytest.raises(InvalidInput, match="not a plain value"):
        check_filter({"a": {"b": 1}})
