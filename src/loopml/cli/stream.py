"""``loopml stream``: create streams, put and get records, serve HTTP ingestion, sink to the catalog."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json
from loopml.errors import InvalidInput

stream_app = typer.Typer(
    help="Streams: sharded, retained logs of records (put, get, consumers, HTTP ingestion).",
    no_args_is_help=True,
)
app.add_typer(stream_app, name="stream")

#: records per put while reading a file
_FILE_BATCH = 10_000


def _short(v: Any, n: int = 60) -> str:
    s = "" if v is None else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


@stream_app.command("create")
def create_cmd(
    name: str = typer.Argument(..., help="Stream name."),
    shards: int = typer.Option(1, "--shards", help="Number of shards (order is kept within one)."),
    retention: str = typer.Option("24h", "--retention", help="How long records are kept: 24h, 7d, 90m, seconds."),
    as_json: bool = JsonOpt,
) -> None:
    """Create stream NAME."""
    from loopml.data.streams import create_stream

    with open_workspace() as ws, create_stream(ws, name, shards, retention) as s:
        desc = s.describe(stats=False)
    if as_json:
        print_json(desc.to_dict())
        return
    console.print(
        f"[green]Created stream {desc.name}[/]: {desc.shards} shard(s), "
        f"retention {desc.to_dict()['retention']}, in {desc.backend}"
    )


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of the non-blank lines of a file, or of stdin for ``-``."""
    if str(path) == "-":
        data = sys.stdin.buffer.read()
        for n, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                yield n, line
        return
    if not path.is_file():
        raise InvalidInput(f"file not found: {path}")
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, line


def _parse_line(n: int, line: bytes, path: Path) -> dict[str, Any]:
    import orjson

    try:
        rec = orjson.loads(line.strip())
    except orjson.JSONDecodeError as e:
        raise InvalidInput(
            f"{path} line {n} is not valid JSON ({e.msg} at column {e.colno}); nothing was written"
        ) from e
    if not isinstance(rec, dict):
        raise InvalidInput(
            f"{path} line {n} is a JSON {type(rec).__name__}, not an object; nothing was written"
        )
    return rec


@stream_app.command("put")
def put_cmd(
    name: str = typer.Argument(..., help="Stream name."),
    data: str = typer.Option(None, "--data", "-d", help="A record as JSON (an object, or a list of objects)."),
    file: Path = typer.Option(None, "--file", "-f", help="A JSON-lines file, one record per line ('-' for stdin)."),
    partition_key: str = typer.Option(None, "--partition-key", "-k", help="Partition key of every record (picks the shard)."),
    key_field: str = typer.Option(None, "--key-field", help="Take each record's partition key from this field."),
    as_json: bool = JsonOpt,
) -> None:
    """Put records into stream NAME; prints the shard and sequence number of each."""
    import orjson

    from loopml.data.streams import PutResult, open_stream

    if (data is None) == (file is None):
        raise InvalidInput("give the records with exactly one of --data JSON and --file FILE")
    if partition_key is not None and key_field is not None:
        raise InvalidInput("give --partition-key or --key-field, not both")
    batches: list[list[dict[str, Any]]] | Iterator[list[dict[str, Any]]]
    if data is not None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise InvalidInput(f"--data is not valid JSON: {e}") from e
        records = doc if isinstance(doc, list) else [doc]
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InvalidInput(f"--data record {i} is a JSON {type(rec).__name__}, not an object")
        batches = [records]
    else:
        assert file is not None
        if str(file) == "-":
            batches = [[_parse_line(n, line, file) for n, line in _lines(file)]]
        else:
            # Check the whole file first, so a bad line writes nothing.
            for n, line in _lines(file):
                _parse_line(n, line, file)
            batches = _file_batches(file)
    results: list[PutResult] = []
    with open_workspace() as ws, open_stream(ws, name) as s:
        for batch in batches:
            if batch:
                results += s.put_many(batch, partition_key=partition_key, key_field=key_field)
    if not results:
        raise InvalidInput(f"no records in {file or '--data'}")
    if as_json:
        print_json({"stream": name, "count": len(results), "records": [r.to_dict() for r in results]})
        return
    if len(results) == 1:
        console.print(f"shard {results[0].shard}, sequence {results[0].sequence}")
        return
    by_shard: dict[int, list[int]] = {}
    for r in results:
        by_shard.setdefault(r.shard, []).append(r.sequence)
    console.print(f"[green]Put {len(results):,} records[/] into {name}")
    for shard, seqs in sorted(by_shard.items()):
        console.print(f"  shard {shard}: {len(seqs):,} record(s), sequences {seqs[0]}..{seqs[-1]}")


def _file_batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for n, line in _lines(path):
        batch.append(_parse_line(n, line, path))
        if len(batch) >= _FILE_BATCH:
            yield batch
            batch = []
    yield batch


@stream_app.command("get")
def get_cmd(
    name: str = typer.Argument(..., help="Stream name."),
    shard: int = typer.Option(0, "--shard", help="Shard to read."),
    iterator: str = typer.Option(
        "trim-horizon", "--iterator",
        help="trim-horizon, latest, at-sequence, after-sequence or at-timestamp.",
    ),
    sequence: str = typer.Option(None, "--sequence", help="For at-sequence and after-sequence."),
    timestamp: str = typer.Option(None, "--timestamp", help="For at-timestamp: ISO 8601, e.g. 2026-05-01T12:00:00Z."),
    limit: int = typer.Option(100, "--limit", help="Most records to print."),
    as_json: bool = JsonOpt,
) -> None:
    """Print records of one shard of stream NAME, from an iterator position."""
    from loopml.data.streams import open_stream

    with open_workspace() as ws, open_stream(ws, name) as s:
        result = s.get(shard, iterator, sequence=sequence, timestamp=timestamp, limit=limit)
    if as_json:
        print_json({"stream": name, "shard": shard, **result.to_dict()})
        return
    if not result.records:
        console.print(f"No records in shard {shard} of {name} at that position.")
    else:
        t = Table("sequence", "arrival (UTC)", "partition key", "data")
        for r in result.records:
            d = r.to_dict()
            shown = d.get("data", d.get("data_base64"))
            t.add_row(
                str(r.sequence),
                r.arrival.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                r.partition_key or "",
                _short(shown if isinstance(shown, str) else _compact(shown)),
            )
        console.print(t)
    console.print(
        f"next: loopml stream get {name} --shard {shard} --iterator at-sequence "
        f"--sequence {result.next_sequence}"
    )


def _compact(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


@stream_app.command("describe")
def describe_cmd(name: str = typer.Argument(..., help="Stream name."), as_json: bool = JsonOpt) -> None:
    """Show stream NAME: shards, retention, records per shard."""
    from loopml.data.streams import open_stream

    with open_workspace() as ws, open_stream(ws, name) as s:
        desc = s.describe(stats=True)
    info = desc.to_dict()
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{desc.name}[/]  ({desc.backend})")
    console.print(f"  shards     {desc.shards}")
    console.print(f"  retention  {info['retention']}")
    console.print(f"  created    {desc.created_at:%Y-%m-%d %H:%M:%S} UTC")
    console.print(f"  records    {desc.records:,}")
    t = Table("shard", "records", "first sequence", "last sequence")
    for sh in desc.shard_info or []:
        t.add_row(str(sh.shard), f"{sh.records:,}", str(sh.first_sequence or ""), str(sh.last_sequence or ""))
    console.print(t)


@stream_app.command("delete")
def delete_cmd(name: str = typer.Argument(..., help="Stream name."), as_json: bool = JsonOpt) -> None:
    """Delete stream NAME with its records and consumer checkpoints."""
    from loopml.data.streams import delete_stream

    with open_workspace() as ws:
        delete_stream(ws, name)
    if as_json:
        print_json({"deleted": name})
        return
    console.print(f"Deleted stream {name}")


@stream_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List the workspace's streams."""
    from loopml.data.streams import list_streams

    with open_workspace() as ws:
        found = list_streams(ws, stats=True)
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    if not found:
        console.print("No streams yet. Create one with `loopml stream create NAME`.")
        return
    t = Table("name", "shards", "retention", "records", "created")
    for d in found:
        t.add_row(d.name, str(d.shards), d.to_dict()["retention"], f"{d.records or 0:,}",
                  d.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


@stream_app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8081, "--port", help="Port to listen on."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Environment variable holding the API key that requests must send in X-Api-Key."),
) -> None:
    """Serve HTTP ingestion: POST /streams/NAME/records (JSON or JSON lines), GET /ping."""
    import os

    import uvicorn

    from loopml.data.streams.http import create_app

    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise InvalidInput(
                f"environment variable {api_key_env} is not set or empty; export the API key "
                "in it, or leave out --api-key-env"
            )
    with open_workspace() as ws:
        application = create_app(ws, api_key=api_key)
        console.print(
            f"Serving stream ingestion on http://{host}:{port}/streams/NAME/records"
            + (" (X-Api-Key required)" if api_key else "")
        )
        uvicorn.run(application, host=host, port=port, log_level="warning")


@stream_app.command("sink")
def sink_cmd(
    name: str = typer.Argument(..., help="Stream name."),
    dataset: str = typer.Option(..., "--dataset", help="Dataset to deliver into (each flush adds a version)."),
    max_records: int = typer.Option(100_000, "--max-records", help="Flush once this many records are buffered."),
    max_seconds: float = typer.Option(60.0, "--max-seconds", help="Flush this many seconds after the first buffered record."),
    max_mb: float = typer.Option(64.0, "--max-mb", help="Flush once this many MiB of record data are buffered."),
    expect: Path = typer.Option(None, "--expect", help="Expectations YAML file: invalid rows go to quarantine."),
    fail_on_invalid: bool = typer.Option(False, "--fail-on-invalid", help="Stop (delivering nothing of that flush) if any record is rejected."),
    transform: str = typer.Option(None, "--transform", help="Hook run on each flush: module:function (a DataFrame in, a DataFrame out)."),
    transform_input: str = typer.Option(None, "--transform-input", help="What the hook takes: pandas or records (a list of dicts); default from its annotation."),
    group: str = typer.Option(None, "--group", help="Consumer group (default sink-DATASET)."),
    once: bool = typer.Option(False, "--once", help="Deliver what the stream holds now, then exit."),
    as_json: bool = JsonOpt,
) -> None:
    """Deliver stream NAME into dataset --dataset: buffered, validated, exactly once.

    Runs until SIGINT/SIGTERM (or, with --once, until the stream is drained),
    flushing what it holds before it exits.
    """
    import os
    import signal

    from loopml.data.streams import FlushResult, StreamSink

    if transform is not None and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `--transform my_hooks:clean` from the current folder

    def show(r: FlushResult) -> None:
        note = f", {r.quarantined:,} quarantined" if r.quarantined else ""
        target = r.version.ref if r.version.created else f"{r.version.ref} (unchanged)"
        err_console.print(
            f"delivered {r.records:,} records -> {target}: {r.rows:,} rows{note} "
            f"({r.reason}, {r.seconds:.2f} s)"
        )

    with open_workspace() as ws, StreamSink(
        ws, name, dataset, group=group, max_records=max_records, max_seconds=max_seconds,
        max_mb=max_mb, expectations=expect, transform=transform, transform_input=transform_input,
        fail_on_invalid=fail_on_invalid, on_flush=show,
    ) as sink:

        def on_signal(signum: int, frame: Any) -> None:
            if sink.stopping:  # a second signal: stop now (safe, at worst re-read on restart)
                raise KeyboardInterrupt
            sink.stop()

        previous: dict[int, Any] = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread: no signal handling
            pass
        try:
            if not once:
                err_console.print(
                    f"delivering stream {name} into dataset {dataset} (Ctrl-C to stop)"
                )
            report = sink.run(until_idle=once)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if as_json:
        print_json(report.to_dict())
        return
    if not report.records:
        console.print(f"No new records in stream {name}; dataset {dataset} unchanged.")
        return
    console.print(
        f"[green]Delivered {report.records:,} records[/] of {name} into {report.last_version}: "
        f"{report.rows:,} rows, {report.quarantined:,} quarantined, "
        f"{report.versions_created} new version(s)"
    )
    for rule, count in report.failures.items():
        console.print(f"  [red]{count:,}[/] × {escape(rule)}")
