"""The embedded log survives a producer killed with SIGKILL mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loopml import Workspace
from loopml.data.streams import create_stream, open_stream

BATCH = 50

# Puts batches of records numbered 0, 1, 2, ... and prints "ack FIRST LAST" once
# each put has returned (the acknowledgement a producer would act on).
PRODUCER = f"""
import sys
from loopml import Workspace
from loopml.data.streams import open_stream

ws = Workspace.open(sys.argv[1])
s = open_stream(ws, "events")
n = int(sys.argv[2])
while True:
    batch = [{{"id": n + j, "pad": "x" * 40}} for j in range({BATCH})]
    s.put_many(batch, [f"key-{{(n + j) % 5}}" for j in range({BATCH})])
    sys.stdout.write(f"ack {{n}} {{n + {BATCH} - 1}}\\n")
    sys.stdout.flush()
    n += {BATCH}
"""


def _kill_after(ws: Workspace, start: int, acks_wanted: int) -> int:
    """Run a producer from id ``start``, SIGKILL it after some acks; return the last acked id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(ws.root), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = -1
    acks = 0
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while acks < acks_wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line.split()[2])
            acks += 1
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is putting the next batch now
    finally:
        proc.wait(10)
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert acks == acks_wanted, f"producer stopped early: {stderr}"
    return last


def _read_ids(ws: Workspace) -> tuple[list[int], dict[int, list[int]]]:
    ids: list[int] = []
    seqs: dict[int, list[int]] = {}
    with open_stream(ws, "events") as s:
        for shard in range(s.shards):
            got = s.get(shard, limit=100_000).records
            seqs[shard] = [r.sequence for r in got]
            ids += [r.json()["id"] for r in got]
    return ids, seqs


def test_every_acknowledged_record_survives_sigkill(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    create_stream(ws, "events", shards=3).close()
    acked_through = -1
    for _ in range(2):  # the second producer starts on the file the first was killed over
        ids, _ = _read_ids(ws)
        start = max(ids) + 1 if ids else 0
        acked_through = _kill_after(ws, start, acks_wanted=25)

    # a fresh process view of the file, after the kills (WAL recovery included)
    ws.close()
    ws = Workspace.open(tmp_path / "ws")
    ids, seqs = _read_ids(ws)
    assert len(ids) == len(set(ids)), "no record is stored twice"
    assert set(range(acked_through + 1)) <= set(ids), "every acknowledged record is readable"
    # a batch is all or nothing: what is stored is exactly whole batches from 0
    assert sorted(ids) == list(range(len(ids))) and len(ids) % BATCH == 0
    for shard, s in seqs.items():
        assert s == list(range(1, len(s) + 1)), f"shard {shard}: sequences 1..n, no gaps or reuse"
    ws.close()
