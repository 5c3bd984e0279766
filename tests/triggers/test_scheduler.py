"""The scheduler: schedule triggers on a fake clock, races, the durable cursor, recovery, workers, stopping."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import timedelta

import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.errors import InvalidInput
from loopml.pipelines import list_executions
from loopml.triggers import (
    Scheduler,
    add_trigger,
    disable_trigger,
    fire_trigger,
    get_trigger,
    list_firings,
    run_scheduler,
)
from loopml.triggers.rules import claim_firing, owner_alive
from loopml.triggers.schedules import parse_schedule, slot_key
from tests.triggers._helpers import record_pipeline, slow_pipeline, wait_for

NEW_DATA = "dataset.version_created"


def _write(ws: Workspace, n: int) -> int:
    Catalog(ws).write("churn", pd.DataFrame({"a": list(range(n))}))
    return ws.events.list(type=NEW_DATA)[-1].id


def test_schedule_trigger_on_a_fake_clock(ws: Workspace) -> None:
    t = add_trigger(ws, "hourly", pipeline=record_pipeline(), schedule="0 * * * *", executor="thread",
                    params={"slot": "${schedule.time}", "reason": "${trigger.name} ${schedule.date}"})
    hourly = parse_schedule("0 * * * *")
    s = Scheduler(ws)
    assert s.tick(t.created_at - timedelta(hours=2)).firings == []   # before it existed
    assert s.tick(hourly.next_slot(t.created_at) - timedelta(seconds=1)).firings == []  # its first slot is ahead
    # the scheduler was "down" for hours: one firing, for the latest slot
    slot = hourly.latest_slot(t.created_at + timedelta(hours=5))
    r = s.tick(slot + timedelta(minutes=1))
    assert r.firings == [f"hourly@{slot_key(slot)}"]
    assert s.tick(slot + timedelta(minutes=1)).firings == []
    assert s.tick(slot + timedelta(minutes=59)).firings == []
    assert s.wait(10)
    f = list_firings(ws, trigger="hourly")[0]
    assert f.status == "Succeeded" and f.slot == slot and f.source == "schedule"
    assert f.params == {"slot": slot_key(slot), "reason": f"hourly {slot:%Y-%m-%d}"}
    assert get_trigger(ws, "hourly").last_slot == slot
    # the next hour fires again; a disabled trigger does not
    assert s.tick(slot + timedelta(hours=1)).firings == [f"hourly@{slot_key(slot + timedelta(hours=1))}"]
    disable_trigger(ws, "hourly")
    assert s.tick(slot + timedelta(hours=3)).firings == []
    assert s.wait(10)
    s.close()
    assert [x.status for x in list_firings(ws)] == ["Succeeded", "Succeeded"]


def test_every_trigger_and_a_new_scheduler_agree_on_slots(ws: Workspace) -> None:
    t = add_trigger(ws, "often", pipeline=record_pipeline(), schedule="every 10m", executor="thread")
    now = t.created_at + timedelta(minutes=25)
    assert len(Scheduler(ws).tick(now).firings) == 1
    # another scheduler (or a restart) at the same time: the slot is taken
    other = Scheduler(ws)
    assert other.tick(now).firings == []
    other.close()


def _race(home: str, barrier: threading.Barrier, out: list[int]) -> None:
    w = Workspace.open(home)
    try:
        s = Scheduler(w)
        barrier.wait()
        out.append(len(s.tick().firings))
        s.wait(20)
        s.close()
    finally:
        w.close()


def test_two_schedulers_racing_on_one_event_start_one_execution(any_ws: Workspace) -> None:
    add_trigger(any_ws, "t", pipeline=slow_pipeline(0.2), event_type=NEW_DATA, executor="thread")
    ev = _write(any_ws, 3)
    barrier = threading.Barrier(3)
    counts: list[int] = []
    threads = [threading.Thread(target=_race, args=(str(any_ws.home), barrier, counts)) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(counts) == [0, 0, 1]
    [f] = list_firings(any_ws)
    assert f.status == "Succeeded" and f.fire_key == str(ev)
    assert len(list_executions(any_ws, pipeline="slow")) == 1


def test_manual_firings_racing_for_one_event_share_one_execution(ws: Workspace) -> None:
    add_trigger(ws, "t", pipeline=slow_pipeline(0.3), event_type=NEW_DATA, executor="thread")
    ev = _write(ws, 3)
    results: list[str] = []

    def fire() -> None:
        w = Workspace.open(ws.home)
        try:
            results.append(fire_trigger(w, "t", event_id=ev).id)
        finally:
            w.close()

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(results) == 4 and len(set(results)) == 1
    assert len(list_executions(ws, pipeline="slow")) == 1


def test_the_cursor_survives_restarts(ws: Workspace) -> None:
    add_trigger(ws, "t", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread",
                params={"dataset": "${event.payload.dataset}:${event.payload.version}"})
    first = _write(ws, 1)
    s1 = Scheduler(ws)
    assert s1.tick().firings == [f"t#{first}"] and s1.cursor() == first
    assert s1.wait(10)
    s1.close()
    second, third = _write(ws, 2), _write(ws, 3)
    # a restarted scheduler (new process: new workspace object) starts at the stored cursor
    w2 = Workspace.open(ws.home)
    try:
        s2 = Scheduler(w2)
        assert s2.cursor() == first
        assert s2.tick().firings == [f"t#{second}", f"t#{third}"]
        assert s2.wait(10)
        s2.close()
        assert s2.cursor() == third
    finally:
        w2.close()
    assert sorted(f.params["dataset"] for f in list_firings(ws)) == ["churn:1", "churn:2", "churn:3"]
    assert len(list_executions(ws, pipeline="rec")) == 3


def test_a_crash_between_recording_and_running_is_recovered(ws: Workspace) -> None:
    t = add_trigger(ws, "t", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread")
    ev = _write(ws, 1)
    # a scheduler recorded the firing, then died before starting it and before moving its cursor
    dead = subprocess.run(["true"], check=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    owner = f"{__import__('socket').gethostname()}:{gone.pid}:crashed"
    assert dead.returncode == 0 and not owner_alive(owner)
    f = claim_firing(ws, t, str(ev), "event", owner=owner, event=ws.events.list(type=NEW_DATA)[-1])
    assert f is not None and f.status == "Pending"
    s = Scheduler(ws)
    assert s.recover() == 1
    r = s.tick()  # reads the event again: already recorded, so no second firing
    assert r.firings == [] and r.errors == []
    assert s.wait(10)
    s.close()
    [done] = list_firings(ws)
    assert done.id == f.id and done.status == "Succeeded" and done.owner == s.owner
    assert len(list_executions(ws, pipeline="rec")) == 1


def test_a_long_pipeline_does_not_block_the_tick(ws: Workspace) -> None:
    add_trigger(ws, "slow", pipeline=slow_pipeline(0.8), event_type=NEW_DATA, executor="thread")
    ev = _write(ws, 1)
    s = Scheduler(ws, max_workers=1)
    start = time.monotonic()
    assert s.tick().firings == [f"slow#{ev}"]
    assert time.monotonic() - start < 0.5
    running = wait_for(lambda: [f for f in list_firings(ws) if f.status == "Running" and f.execution_id])
    assert running[0].execution_id  # found by its idempotency key while it runs
    ev2 = _write(ws, 2)  # a second one waits for the one worker; the tick does not
    start = time.monotonic()
    assert s.tick().firings == [f"slow#{ev2}"] and time.monotonic() - start < 0.5
    assert s.workers.in_flight == 2
    # stopping now: the running one gets its grace period, the queued one is given back, not lost
    assert s.close(grace_s=10)
    by_event = {f.event_id: f for f in list_firings(ws)}
    assert by_event[ev].status == "Succeeded" and by_event[ev2].status == "Pending"
    nxt = Scheduler(ws)
    assert nxt.recover() == 1 and nxt.wait(10)
    assert list_firings(ws)[0].status == "Succeeded" and len(list_executions(ws, pipeline="slow")) == 2
    nxt.close()


def test_run_scheduler_loops_until_stopped(ws: Workspace) -> None:
    add_trigger(ws, "t", pipeline=record_pipeline(), event_type=NEW_DATA, executor="thread")
    stop = threading.Event()
    result: list[object] = []
    th = threading.Thread(target=lambda: result.append(run_scheduler(ws, poll_s=0.05, stop=stop)))
    th.start()
    _write(ws, 1)
    wait_for(lambda: [f for f in list_firings(ws) if f.status == "Succeeded"])
    stop.set()
    th.join(5)
    assert not th.is_alive()
    stats = result[0]
    assert stats.firings == 1 and stats.ticks >= 1 and stats.errors == 0  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="interval must be a positive"):
        run_scheduler(ws, poll_s=0)
    with pytest.raises(InvalidInput, match="max_workers"):
        Scheduler(ws, max_workers=0)


def test_a_fresh_gap_in_event_ids_holds_the_cursor_back(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # on PostgreSQL an id can commit after a higher one: the cursor waits a little for it
    s = Scheduler(ws)
    assert s._advance(0, [1, 2, 3]) == 3
    assert s._advance(3, [4, 6, 7]) == 4          # 5 may still commit
    assert s._advance(4, [5, 6, 7]) == 7          # it did
    assert s._advance(7, [8, 10]) == 8
    monkeypatch.setattr("loopml.triggers.scheduler.GAP_GRACE_S", 0.0)
    time.sleep(0.01)
    assert s._advance(8, [10]) == 10              # 9 never came (a rolled back transaction)
    s.close()
