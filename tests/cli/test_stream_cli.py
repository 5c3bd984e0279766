from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loopml.data.streams import shard_for_key
from tests.cli._run import run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "init", ".")
    assert code == 0
    return tmp_path


def test_create_put_get_describe_list_delete(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "stream", "create", "sensors", "--shards", "2", "--retention", "48h")
    assert code == 0 and "Created stream sensors: 2 shard(s), retention 2d" in out
    code, out, _ = run(capsys, "stream", "create", "other", "--json")
    assert json.loads(out)["shards"] == 1 and json.loads(out)["retention"] == "1d"

    code, out, _ = run(capsys, "stream", "put", "sensors", "--data", '{"id": "a", "t": 20.5}', "--partition-key", "a")
    assert code == 0 and out.strip() == f"shard {shard_for_key('a', 2)}, sequence 1"

    lines = "".join(json.dumps({"id": f"d{i % 3}", "t": i}) + "\n" for i in range(10))
    (project / "readings.jsonl").write_text(lines + "\n")
    code, out, _ = run(capsys, "stream", "put", "sensors", "--file", "readings.jsonl", "--key-field", "id", "--json")
    put = json.loads(out)
    assert code == 0 and put["count"] == 10
    assert [r["shard"] for r in put["records"]] == [shard_for_key(f"d{i % 3}", 2) for i in range(10)]
    code, out, _ = run(capsys, "stream", "put", "sensors", "--file", "readings.jsonl")
    assert code == 0 and "Put 10 records" in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"id": "z"}\n')))
    code, out, _ = run(capsys, "stream", "put", "other", "--file", "-", "--json")
    assert code == 0 and json.loads(out)["records"] == [{"shard": 0, "sequence": "1"}]

    shard = shard_for_key("d1", 2)
    code, out, _ = run(capsys, "stream", "get", "sensors", "--shard", str(shard), "--json", "--limit", "1000")
    got = json.loads(out)
    d1 = [r["data"]["t"] for r in got["records"] if r["partition_key"] == "d1"]
    assert d1 == [1, 4, 7] and isinstance(got["next_sequence"], str)
    seqs = [int(r["sequence"]) for r in got["records"]]
    code, out, _ = run(capsys, "stream", "get", "sensors", "--shard", str(shard), "--iterator", "after-sequence",
                       "--sequence", str(seqs[-3]), "--json")
    assert [int(r["sequence"]) for r in json.loads(out)["records"]] == seqs[-2:]
    code, out, _ = run(capsys, "stream", "get", "sensors", "--shard", str(shard), "--limit", "2")
    assert code == 0 and "next: loopml stream get sensors" in out and "--iterator at-sequence" in out
    code, out, _ = run(capsys, "stream", "get", "sensors", "--iterator", "at-timestamp",
                       "--timestamp", "2999-01-01T00:00:00Z", "--json")
    assert json.loads(out)["records"] == []
    code, out, _ = run(capsys, "stream", "get", "sensors", "--iterator", "latest")
    assert code == 0 and "No records" in out

    code, out, _ = run(capsys, "stream", "describe", "sensors", "--json")
    desc = json.loads(out)
    assert desc["records"] == 21 and len(desc["shard_info"]) == 2
    code, out, _ = run(capsys, "stream", "describe", "sensors")
    assert code == 0 and "retention  2d" in out and "records    21" in out
    code, out, _ = run(capsys, "stream", "list", "--json")
    assert [(s["name"], s["records"]) for s in json.loads(out)] == [("other", 1), ("sensors", 21)]
    code, out, _ = run(capsys, "stream", "list")
    assert "sensors" in out and "other" in out

    code, out, _ = run(capsys, "stream", "delete", "sensors")
    assert code == 0 and "Deleted stream sensors" in out
    code, out, _ = run(capsys, "stream", "delete", "other", "--json")
    assert json.loads(out) == {"deleted": "other"}
    code, out, _ = run(capsys, "stream", "list")
    assert "No streams yet" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stream", "put", "nope", "--data", "{}"], "no stream named 'nope'"),
        (["stream", "put", "s", "--data", "{x"], "--data is not valid JSON"),
        (["stream", "put", "s", "--data", "[1]"], "--data record 0 is a JSON int, not an object"),
        (["stream", "put", "s"], "exactly one of --data JSON and --file FILE"),
        (["stream", "put", "s", "--data", "{}", "--file", "bad.jsonl"], "exactly one of"),
        (["stream", "put", "s", "--file", "bad.jsonl"], "bad.jsonl line 2 is not valid JSON"),
        (["stream", "put", "s", "--file", "missing.jsonl"], "file not found: missing.jsonl"),
        (["stream", "put", "s", "--data", '{"a": 1}', "--key-field", "id"], "record 0 has no field 'id'"),
        (["stream", "put", "s", "--data", "{}", "--partition-key", "k", "--key-field", "id"], "not both"),
        (["stream", "get", "s", "--iterator", "oldest"], "unknown iterator type 'oldest'; use one of trim-horizon"),
        (["stream", "get", "s", "--iterator", "at-sequence"], "needs a sequence number"),
        (["stream", "get", "s", "--shard", "4"], "has no shard 4"),
        (["stream", "get", "s", "--iterator", "at-timestamp", "--timestamp", "soon"], "not an ISO 8601"),
        (["stream", "create", "s"], "stream 's' already exists"),
        (["stream", "create", "t", "--retention", "forever"], "retention 'forever' is not a duration"),
        (["stream", "create", "bad name"], "stream name 'bad name' is not allowed"),
        (["stream", "describe", "nope"], "create it with `loopml stream create nope`"),
        (["stream", "serve", "--api-key-env", "LOOPML_TEST_NO_SUCH_VAR"], "LOOPML_TEST_NO_SUCH_VAR is not set"),
        (["stream", "sink", "nope", "--dataset", "d"], "no stream named 'nope'"),
        (["stream", "sink", "s", "--dataset", "d", "--transform", "no_colon"], "not of the form module:function"),
        (["stream", "sink", "s", "--dataset", "d", "--transform", "loopml_no_such_mod:f"],
         "cannot import module 'loopml_no_such_mod'"),
        (["stream", "sink", "s", "--dataset", "d", "--expect", "missing.yaml"], "expectations file not found"),
        (["stream", "sink", "s", "--dataset", "d", "--max-records", "0"], "max_records must be a whole number"),
        (["stream", "sink", "s", "--dataset", "bad name"], "dataset name 'bad name' is not allowed"),
    ],
)
def test_user_errors_are_one_line_exit_1(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    run(capsys, "stream", "create", "s")
    (project / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in " ".join(err.split()), err
    code, out, _ = run(capsys, "stream", "describe", "s", "--json")
    assert json.loads(out)["records"] == 0  # a failed put wrote nothing


def test_bad_usage_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stream", "create", "s", "--shards", "many")
    assert code == 2 and "Invalid value for '--shards'" in err


def test_serve_command_runs_a_server(project: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INGEST_KEY": "k1", "LOOPML_HOME": str(project)}
    subprocess.run([sys.executable, "-m", "loopml", "stream", "create", "s"], env=env, check=True,
                   capture_output=True, timeout=60)
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopml", "stream", "serve", "--port", str(port), "--api-key-env", "INGEST_KEY"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/ping")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.1)
            r = client.post("/streams/s/records", json=[{"a": 1}, {"a": 2}], headers={"X-Api-Key": "k1"})
            assert r.status_code == 200 and [x["sequence"] for x in r.json()["records"]] == ["1", "2"]
            assert client.post("/streams/s/records", json={"a": 1}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


HOOKS = """
import pandas as pd

def add_f(df: pd.DataFrame) -> pd.DataFrame:
    if (df["t"] < -50).any():
        raise ValueError("implausible temperature")
    df["t_f"] = df["t"] * 9 / 5 + 32
    return df
"""


def test_sink_delivers_into_the_catalog(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml import Workspace
    from loopml.data import Catalog

    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds the current folder for --transform
    run(capsys, "stream", "create", "sensors", "--shards", "2")
    lines = [json.dumps({"id": i, "sensor": f"s{i % 3}", "t": 20 + i}) for i in range(10)]
    lines += [json.dumps({"id": 10, "sensor": "s1", "t": -100}), json.dumps({"id": 11, "sensor": "s1", "t": 500})]
    (project / "r.jsonl").write_text("\n".join(lines) + "\n")
    run(capsys, "stream", "put", "sensors", "--file", "r.jsonl", "--key-field", "sensor")
    (project / "exp.yaml").write_text("columns:\n  t: {type: float, max: 100}\n")
    (project / "sink_cli_hooks.py").write_text(HOOKS)

    code, out, err = run(capsys, "stream", "sink", "sensors", "--dataset", "readings", "--once",
                         "--max-records", "4", "--expect", "exp.yaml",
                         "--transform", "sink_cli_hooks:add_f", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["records"], report["rows"], report["quarantined"]) == (12, 10, 2)
    assert report["failures"] == {"transform: ValueError": 1, "t: max 100": 1}
    assert report["versions_created"] == 3 and report["last_version"] == "readings:3"
    assert "delivered 4 records -> readings:1" in err
    ws = Workspace.open(project)
    try:
        df = Catalog(ws).read_pandas("readings")
    finally:
        ws.close()
    assert sorted(df["id"]) == list(range(10)) and (df["t_f"] == df["t"] * 9 / 5 + 32).all()

    code, out, _ = run(capsys, "stream", "sink", "sensors", "--dataset", "readings", "--once")
    assert code == 0 and "No new records in stream sensors" in out
    run(capsys, "stream", "put", "sensors", "--data", '{"id": 12, "sensor": "s0", "t": 1}')
    code, out, _ = run(capsys, "stream", "sink", "sensors", "--dataset", "readings", "--once")
    assert code == 0 and "Delivered 1 records of sensors into readings:4: 1 rows, 0 quarantined" in out
    code, out, _ = run(capsys, "data", "show", "readings", "--json")
    assert json.loads(out)["row_count"] == 11


def test_sink_flushes_and_exits_on_sigterm(project: Path) -> None:
    env = {**os.environ, "LOOPML_HOME": str(project)}
    subprocess.run([sys.executable, "-m", "loopml", "stream", "create", "s"], env=env, check=True,
                   capture_output=True, timeout=60)
    subprocess.run([sys.executable, "-m", "loopml", "stream", "put", "s", "--data", '[{"a": 1}, {"a": 2}]'],
                   env=env, check=True, capture_output=True, timeout=60)
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopml", "stream", "sink", "s", "--dataset", "d", "--max-seconds", "600"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        assert "delivering stream s into dataset d" in proc.stderr.readline()
        time.sleep(1.0)  # it has polled the two records by now, and waits for more
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "delivered 2 records -> d:1: 2 rows (stop" in err
    assert "Delivered 2 records of s into d:1" in out
