"""The delivery sink: buffered, validated, exactly once into the catalog, on both backends."""

from __future__ import annotations

import doctest
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.data.streams import (
    Checkpoint,
    Consumer,
    FlushResult,
    StreamSink,
    create_stream,
    delete_stream,
    load_transform,
    open_stream,
)
from loopml.data.streams import sink as sink_module
from loopml.data.validation import Expectations
from loopml.errors import InvalidInput, NotFound, ValidationFailed
from loopml.store.events import DATASET_VERSION_CREATED


def _put(ws: Workspace, n: int, *, start: int = 0, shards: int = 2, create: bool = True) -> None:
    records = [{"id": start + i, "sensor": f"s{(start + i) % 5}", "temp": 20.0 + i / 10}
               for i in range(n)]
    if create:
        with create_stream(ws, "events", shards=shards) as s:
            s.put_many(records, key_field="sensor")
    else:
        with open_stream(ws, "events") as s:
            s.put_many(records, key_field="sensor")


def _quarantine(ws: Workspace, dataset: str) -> pd.DataFrame:
    cat = Catalog(ws)
    tables = [cat.quarantine(v) for v in cat.versions(dataset) if v.quarantine_count]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables else pd.DataFrame()


def test_doctests() -> None:
    result = doctest.testmod(sink_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed


def test_delivers_every_record_once_in_versions_partitioned_by_arrival(stream_ws: Workspace) -> None:
    _put(stream_ws, 250)
    flushes: list[FlushResult] = []
    with StreamSink(stream_ws, "events", "events_raw", max_records=100, on_flush=flushes.append) as sink:
        report = sink.run(until_idle=True)
    assert [f.records for f in flushes] == [100, 100, 50]
    assert [f.reason for f in flushes] == ["records", "records", "idle"]
    assert (report.records, report.rows, report.quarantined, report.versions_created) == (250, 250, 0, 3)

    cat = Catalog(stream_ws)
    versions = cat.versions("events_raw")
    assert [v.row_count for v in versions] == [100, 200, 250]  # each version = previous + new
    df = cat.read_pandas("events_raw")
    assert sorted(df["id"]) == list(range(250))
    assert df.columns.tolist() == ["id", "sensor", "temp", "_arrival", "_shard", "_sequence",
                                   "_partition_key", "dt", "hour"]
    assert str(df["_arrival"].dtype) == "datetime64[ms, UTC]"
    assert (df["dt"] == df["_arrival"].dt.strftime("%Y-%m-%d")).all()
    assert (df["hour"] == df["_arrival"].dt.strftime("%H")).all()
    assert (df["_partition_key"] == df["sensor"]).all()
    latest = versions[-1]
    assert all(set(p.partition) == {"dt", "hour"} for p in latest.parts)
    assert latest.source["kind"] == "stream" and latest.source["stream"] == "events"
    assert latest.validation["rows_read"] == 50 and latest.validation["rows_ingested"] == 50

    # the checkpoint lives with the data, and the group's checkpoint moved after it
    stored = Checkpoint.from_dict(cat.state("events_raw")["stream_checkpoint:events:sink-events_raw"])
    with Consumer(stream_ws, "events", "sink-events_raw") as c:
        assert c.committed == stored
        assert c.poll().records == []
    assert len(stream_ws.events.list(type=DATASET_VERSION_CREATED)) == 3

    # nothing new: a second run delivers nothing and creates no version
    with StreamSink(stream_ws, "events", "events_raw") as sink:
        assert sink.run(until_idle=True).records == 0
    _put(stream_ws, 10, start=250, create=False)
    with StreamSink(stream_ws, "events", "events_raw") as sink:
        assert sink.run(until_idle=True).rows == 10
    assert sorted(cat.read_pandas("events_raw")["id"]) == list(range(260))


def test_buffer_hints_bytes_and_seconds(stream_ws: Workspace) -> None:
    _put(stream_ws, 300)
    flushes: list[FlushResult] = []
    # ~50 bytes a record: 1 KiB holds about 20 (polls are sized by the average record)
    with StreamSink(stream_ws, "events", "by_bytes", max_mb=1 / 1024, on_flush=flushes.append) as sink:
        sink.run(until_idle=True)
    assert [f.reason for f in flushes[:-1]] == ["bytes"] * (len(flushes) - 1)
    assert len(flushes) > 5 and all(f.records <= 100 for f in flushes)
    assert sum(f.records for f in flushes) == 300

    flushes.clear()
    with StreamSink(stream_ws, "events", "by_time", max_seconds=0.3, on_flush=flushes.append) as sink:
        t = time.monotonic()
        sink.run(stop_after=1.2)
        assert time.monotonic() - t < 3
    assert [(f.reason, f.records) for f in flushes] == [("seconds", 300)]


def test_until_idle_stops_at_the_end_the_stream_had_when_the_run_began(ws: Workspace) -> None:
    _put(ws, 100)
    stop = threading.Event()

    def produce() -> None:  # faster than a sink flushing every 10 records
        with open_stream(ws, "events") as s:
            i = 1000
            while not stop.is_set():
                s.put_many([{"id": i + j, "sensor": "s1", "temp": 1.0} for j in range(50)])
                i += 50
                time.sleep(0.002)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        with StreamSink(ws, "events", "d", max_records=10) as sink:
            t = time.monotonic()
            report = sink.run(until_idle=True, stop_after=30)
            elapsed = time.monotonic() - t
    finally:
        stop.set()
        producer.join()
    assert elapsed < 15 and report.flushes >= 10
    assert set(range(100)) <= set(Catalog(ws).read_pandas("d")["id"])


def test_bad_records_go_to_quarantine_with_the_reason(stream_ws: Workspace, tmp_path: Path) -> None:
    with create_stream(stream_ws, "events", shards=1) as s:
        s.put_many([{"id": 1, "temp": 20.5, "status": "ok"}, {"id": 2, "temp": 21.0, "status": "ok"}])
        s.put_many([
            b"\xff\xfe not json",              # decode: not JSON (and not UTF-8)
            b"[1, 2]",                         # decode: not a JSON object
            {"id": 3, "_shard": 9},            # a reserved field
            {"id": 4, "temp": 999.0, "status": "ok"},   # breaks the expectation
            {"id": 5, "temp": 22.0, "status": "ok", "dt": "x"},  # clashes with a partition column
            {"id": 6, "temp": 23.5, "status": "bad"},   # breaks allowed
            {"id": 7, "temp": 24.0, "status": "ok"},
        ])
        seqs = [r.sequence for r in s.get(0, limit=100)]
    (tmp_path / "exp.yaml").write_text(
        "columns:\n  temp: {type: float, max: 100}\n  status: {allowed: [ok, warn]}\n"
    )
    with StreamSink(stream_ws, "events", "q", expectations=tmp_path / "exp.yaml") as sink:
        report = sink.run(until_idle=True)
    assert (report.records, report.rows, report.quarantined) == (9, 3, 6)
    assert sorted(Catalog(stream_ws).read_pandas("q")["id"]) == [1, 2, 7]
    q = _quarantine(stream_ws, "q").sort_values("_row")
    assert q["_row"].tolist() == seqs[2:8]  # the sequence numbers: nothing lost
    rules = q["_rule"].tolist()
    assert rules[0].startswith("decode: not JSON")
    assert rules[1] == "decode: not a JSON object (a JSON array)"
    assert rules[2] == "decode: field '_shard' is reserved for the sink's own column"
    assert rules[3] == "temp: max 100"
    assert rules[4].startswith("schema: field 'dt' clashes with the sink's partition column")
    assert rules[5] == "status: allowed"
    assert q["_raw"].tolist()[0].startswith("base64:")
    assert q["_raw"].tolist()[1] == "[1, 2]"
    version = Catalog(stream_ws).get("q")
    assert version.validation["failures"]["temp: max 100"] == 1
    assert version.validation["expectations"]["columns"]["temp"]["type"] == "float"


def test_columns_are_fixed_by_the_first_version(stream_ws: Workspace) -> None:
    with create_stream(stream_ws, "events", shards=1) as s:
        s.put_many([{"id": 1, "n": 1, "note": None}])
    with StreamSink(stream_ws, "events", "evolve") as sink:
        sink.run(until_idle=True)
        with open_stream(stream_ws, "events") as s:
            s.put_many([
                {"id": 2, "n": 2.5, "note": "now text"},  # int widens to float; null gets a type
                {"id": 3},                                 # missing fields: nulls
                {"id": "four"},                            # not an int
                {"id": 5, "new": True},                    # a new field
            ])
        report = sink.run(until_idle=True)
    assert (report.rows, report.quarantined) == (3, 2)
    df = Catalog(stream_ws).read_pandas("evolve").sort_values("id")
    assert df["id"].tolist() == [1, 2, 3]
    assert df["n"].tolist()[:2] == [1.0, 2.5] and pd.isna(df["n"].tolist()[2])
    assert df["note"].tolist()[1] == "now text"
    rules = sorted(_quarantine(stream_ws, "evolve")["_rule"])
    assert rules == ["id: type int64", "schema: new field 'new' (the columns of 'evolve' were fixed by its first version)"]


def _fahrenheit(df: pd.DataFrame) -> pd.DataFrame:
    if (df["temp"] < 0).any():
        raise ValueError("negative temperature")
    df["temp_f"] = df["temp"] * 9 / 5 + 32
    return df[df["sensor"] != "s0"]  # drop one sensor's heartbeats


def _records_hook(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "tag": r["sensor"].upper()} for r in rows]


def test_transform_hook_pandas_and_records(stream_ws: Workspace) -> None:
    _put(stream_ws, 40)
    with open_stream(stream_ws, "events") as s:
        s.put({"id": 40, "sensor": "s1", "temp": -5.0}, partition_key="s1")
    with StreamSink(stream_ws, "events", "hooked", transform=_fahrenheit) as sink:
        report = sink.run(until_idle=True)
    df = Catalog(stream_ws).read_pandas("hooked")
    assert sorted(df["id"]) == [i for i in range(40) if i % 5 != 0]
    assert (df["temp_f"] == df["temp"] * 9 / 5 + 32).all()
    assert report.dropped == 8 and report.quarantined == 1
    q = _quarantine(stream_ws, "hooked")
    assert q["_rule"].tolist() == ["transform: ValueError: negative temperature"]
    assert '"id":40' in q["_raw"][0]

    with StreamSink(stream_ws, "events", "hooked2", transform="tests.data.streams.test_sink:_records_hook") as sink:
        assert sink.transform_input == "records"
        sink.run(until_idle=True)
    df = Catalog(stream_ws).read_pandas("hooked2")
    assert (df["tag"] == df["sensor"].str.upper()).all() and len(df) == 41


def test_a_hook_that_always_fails_quarantines_everything_in_few_calls(ws: Workspace) -> None:
    _put(ws, 1000)
    calls = []

    def broken(df: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(df))
        raise KeyError("no_such_column")

    with StreamSink(ws, "events", "d", transform=broken) as sink:
        report = sink.run(until_idle=True)
    assert (report.rows, report.quarantined) == (0, 1000)
    assert report.failures == {"transform: KeyError": 1000}
    assert len(calls) < 200  # not one call per record, let alone two
    assert sum(1 for n in calls if n == 1) == 32  # the first 32 failures are singled out
    assert set(_quarantine(ws, "d")["_rule"]) == {"transform: KeyError: 'no_such_column'"}

    # a version without rows does not fix the columns; a flush the hook empties stores only
    # its checkpoint (no new version), so the records are not read again
    _put(ws, 5, start=1000, create=False)
    with StreamSink(ws, "events", "d") as sink:
        assert sink.run(until_idle=True).rows == 5
    _put(ws, 5, start=2000, create=False)
    with StreamSink(ws, "events", "d", transform=lambda df: df.iloc[:0]) as sink:
        report = sink.run(until_idle=True)
    assert (report.records, report.rows, report.dropped, report.versions_created) == (5, 0, 5, 0)
    with StreamSink(ws, "events", "d") as sink:
        assert sink.run(until_idle=True).records == 0
    assert [v.row_count for v in Catalog(ws).versions("d")] == [0, 5]


def test_a_hook_returning_the_wrong_thing_stops_the_sink(ws: Workspace) -> None:
    _put(ws, 5)
    with StreamSink(ws, "events", "d", transform=lambda df: None) as sink, \
            pytest.raises(InvalidInput, match="returned a NoneType"):
        sink.run(until_idle=True)
    with StreamSink(ws, "events", "d", transform=lambda df: df.iloc[:1].drop(columns="_arrival")) as sink, \
            pytest.raises(InvalidInput, match="without the '_arrival' column"):
        sink.run(until_idle=True)
    with Consumer(ws, "events", "sink-d") as c:
        assert c.committed.positions == {}  # nothing delivered, nothing committed


def test_crash_between_catalog_and_stream_commit_does_not_duplicate(stream_ws: Workspace) -> None:
    _put(stream_ws, 60)

    def crash(result: FlushResult) -> None:
        raise RuntimeError("killed after the catalog commit")

    with StreamSink(stream_ws, "events", "d", max_records=25, on_flush=crash) as sink, \
            pytest.raises(RuntimeError):
        sink.run(until_idle=True)
    assert Catalog(stream_ws).get("d").row_count == 25
    with Consumer(stream_ws, "events", "sink-d") as c:
        assert c.committed.positions == {}  # the stream's checkpoint did not move
    with StreamSink(stream_ws, "events", "d", max_records=25) as sink:
        sink.run(until_idle=True)
    assert sorted(Catalog(stream_ws).read_pandas("d")["id"]) == list(range(60))


def test_fail_on_invalid_delivers_nothing(ws: Workspace) -> None:
    with create_stream(ws, "events") as s:
        s.put_many([{"id": 1}, b"junk"])
    with StreamSink(ws, "events", "d", fail_on_invalid=True) as sink, \
            pytest.raises(ValidationFailed, match="1 of 2 records of stream 'events' were rejected"):
        sink.run(until_idle=True)
    with pytest.raises(NotFound):
        Catalog(ws).get("d")
    with StreamSink(ws, "events", "d") as sink:  # without it, the junk is quarantined
        assert sink.run(until_idle=True).quarantined == 1


def test_a_re_created_stream_is_read_from_the_start(ws: Workspace) -> None:
    _put(ws, 10)
    with StreamSink(ws, "events", "d") as sink:
        sink.run(until_idle=True)
    delete_stream(ws, "events")
    _put(ws, 5, start=100)
    with StreamSink(ws, "events", "d") as sink:  # the stored checkpoint is of the old stream
        assert sink.run(until_idle=True).rows == 5
    assert sorted(Catalog(ws).read_pandas("d")["id"]) == [*range(10), *range(100, 105)]


def test_bad_input(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"no stream named 'nope'.*loopml stream create nope"):
        StreamSink(ws, "nope", "d").open()
    for spec, message in [
        ("no_colon", "not of the form module:function"),
        ("loopml_no_such_module:f", "cannot import module 'loopml_no_such_module'"),
        ("json:no_such_function", "module 'json' has no 'no_such_function'"),
        ("json:__doc__", "is a str, not a function"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            load_transform(spec)
    with pytest.raises(InvalidInput, match="expectations file not found"):
        StreamSink(ws, "events", "d", expectations=tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("columns:\n  x: {type: decimal}\n")
    with pytest.raises(InvalidInput, match="unknown type 'decimal'"):
        StreamSink(ws, "events", "d", expectations=tmp_path / "bad.yaml")
    with pytest.raises(InvalidInput, match=r"row_count.*remove row_count"):
        StreamSink(ws, "events", "d", expectations=Expectations.from_dict({"row_count": {"min": 1}}))
    with pytest.raises(InvalidInput, match="max_records must be a whole number >= 1"):
        StreamSink(ws, "events", "d", max_records=0)
    with pytest.raises(InvalidInput, match="max_seconds must be a number > 0"):
        StreamSink(ws, "events", "d", max_seconds=-1)
    with pytest.raises(InvalidInput, match="dataset name"):
        StreamSink(ws, "events", "bad name")
    Catalog(ws).write("plain", pd.DataFrame({"a": [1]}))
    _put(ws, 1)
    with pytest.raises(InvalidInput, match="plain:1 was not written by a stream sink"):
        StreamSink(ws, "events", "plain").open()


# -- a real sink process, killed with SIGKILL at the worst moments ------------------------------

SINK = """
import os, sys, time
from loopml import Workspace
from loopml.data.streams import StreamSink

root, mode, marker = sys.argv[1:4]

def note(text):
    with open(marker, "a") as f:
        f.write(text + "\\n")

def hook(df):
    note("transform")
    time.sleep({"transform": 1.0, "random": 0.05}.get(mode, 0.01))
    return df

def committed(result):
    note(f"committed {result.version.version}")
    time.sleep(1.0 if mode == "commit" else 0.0)

ws = Workspace.open(root)
with StreamSink(ws, "events", "events", max_records=30, transform=hook, on_flush=committed) as sink:
    sink.run(until_idle=True)
note("done")
"""


def _kill_sink(ws: Workspace, marker: Path, mode: str) -> None:
    """Start a sink process; SIGKILL it inside the transform, after the catalog commit, or at random."""
    marker.write_text("")
    proc = subprocess.Popen([sys.executable, "-c", SINK, str(ws.root), mode, str(marker)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    want = {"transform": "transform", "commit": "committed", "random": "transform"}[mode]
    deadline = time.monotonic() + 60
    try:
        while want not in marker.read_text():
            assert proc.poll() is None, f"the sink exited early: {proc.stderr.read() if proc.stderr else ''}"
            assert time.monotonic() < deadline, "the sink did not start"
            time.sleep(0.01)
        if mode == "random":
            time.sleep(random.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    assert "done" not in marker.read_text()


def test_a_sink_killed_mid_flush_delivers_every_record_exactly_once(
    stream_ws: Workspace, tmp_path: Path
) -> None:
    n = 400
    _put(stream_ws, n, shards=2)
    with open_stream(stream_ws, "events") as s:
        s.put_many([b"not json %d" % i for i in range(5)], partition_key="junk")
    marker = tmp_path / "marker"
    cat = Catalog(stream_ws)
    for mode in ("transform", "commit", "random", "commit", "transform"):
        _kill_sink(stream_ws, marker, mode)
        if mode == "commit":
            # killed between the two commits: the dataset is ahead of the stream's checkpoint
            stored = Checkpoint.from_dict(cat.state("events")["stream_checkpoint:events:sink-events"])
            with Consumer(stream_ws, "events", "sink-events") as c:
                assert any(q > c.committed.positions.get(s, 0) for s, q in stored.positions.items())
        if cat.list():
            ids = cat.read_pandas("events")["id"].tolist()
            assert len(ids) == len(set(ids))  # never a duplicate, even mid-way
    with StreamSink(stream_ws, "events", "events", max_records=30) as sink:
        sink.run(until_idle=True)
    ids = cat.read_pandas("events")["id"].tolist()
    assert sorted(ids) == list(range(n))
    junk = _quarantine(stream_ws, "events")["_raw"].tolist()
    assert sorted(junk) == sorted(f"not json {i}" for i in range(5))

