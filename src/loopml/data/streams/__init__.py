"""Streams: sharded, retained, append-only logs of records (the Kinesis Data Streams role).

Producers :meth:`Stream.put` records (JSON dicts or bytes) with a partition
key that picks the shard; readers :meth:`Stream.get` a shard from an iterator
position, or run a :class:`Consumer` that resumes after its group's last
committed :class:`Checkpoint`. The backend is chosen by the workspace's
``stream_url`` setting: an embedded SQLite log (the default) or Redis Streams.
HTTP producers use :func:`loopml.data.streams.http.create_app`. A
:class:`StreamSink` delivers a stream, buffered and exactly once, into a
catalog dataset (the Kinesis Data Firehose role).

Examples
--------
>>> import tempfile, loopml
>>> from loopml.data.streams import create_stream
>>> ws = loopml.Workspace.init(tempfile.mkdtemp())
>>> s = create_stream(ws, "sensors", shards=2, retention="7d")
>>> s.put_many([{"id": "a", "t": 20.5}, {"id": "b", "t": 19.0}], key_field="id")[0].shard in (0, 1)
True
>>> s.close(); ws.close()
"""

from loopml.data.streams.base import (
    ITERATOR_TYPES,
    MAX_RECORD_BYTES,
    PutResult,
    Record,
    RecordTooLarge,
    ShardInfo,
    StreamBackend,
    StreamDescription,
    open_backend,
    parse_retention,
    shard_for_key,
)
from loopml.data.streams.consumer import Batch, Checkpoint, Consumer
from loopml.data.streams.sink import FlushResult, SinkReport, StreamSink, load_transform
from loopml.data.streams.stream import (
    GetRecordsResult,
    Stream,
    create_stream,
    delete_stream,
    list_streams,
    open_stream,
)

__all__ = [
    "ITERATOR_TYPES",
    "MAX_RECORD_BYTES",
    "Batch",
    "Checkpoint",
    "Consumer",
    "FlushResult",
    "GetRecordsResult",
    "PutResult",
    "Record",
    "RecordTooLarge",
    "ShardInfo",
    "SinkReport",
    "Stream",
    "StreamBackend",
    "StreamDescription",
    "StreamSink",
    "create_stream",
    "delete_stream",
    "list_streams",
    "load_transform",
    "open_backend",
    "open_stream",
    "parse_retention",
    "shard_for_key",
]
