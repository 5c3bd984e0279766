"""File sources: CSV/TSV, Parquet, JSON and JSONL; one file, a folder or a glob; any fsspec URL.

CSV, JSONL and Parquet are streamed block by block with bounded memory. A JSON
document (an array of records) has to be parsed whole; use JSONL for big data.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from loopml.errors import InvalidInput, NotFound, SourceError

FORMATS = ("csv", "tsv", "parquet", "json", "jsonl")
_EXT = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
#: bytes per CSV/JSONL block: also how much of the file type inference sees
BLOCK_SIZE = 16 << 20
#: bytes per CSV block after the first (small blocks parse faster, in less memory);
#: they are joined into batches of about BLOCK_SIZE of text
PARSE_BLOCK = 1 << 20
BATCH_ROWS = 65_536


def _split_ext(path: str) -> tuple[str | None, str | None]:
    """Return (format, compression) guessed from a file name such as ``x.csv.gz``."""
    lower = path.lower()
    compression = None
    for ext, codec in _COMPRESSION.items():
        if lower.endswith(ext):
            compression = codec
            lower = lower[: -len(ext)]
            break
    for ext, fmt in _EXT.items():
        if lower.endswith(ext):
            return fmt, compression
    return None, compression


def _strip_credentials(uri: str) -> str:
    if "://" in uri and "@" in uri.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


@dataclass
class FileSource:
    """Read one file, every file in a folder, or a glob, from any fsspec URL.

    Parameters
    ----------
    uri
        Path or URL: ``data.csv``, ``data/``, ``data/*.parquet``, ``s3://b/k/``.
    format
        One of ``csv``, ``tsv``, ``parquet``, ``json``, ``jsonl``; guessed from
        the extension when omitted.
    delimiter, header, encoding
        CSV options (``header=False`` names columns ``f0, f1, ...``).
    """

    uri: str
    format: str | None = None
    delimiter: str | None = None
    header: bool = True
    encoding: str = "utf8"
    storage_options: dict[str, Any] = field(default_factory=dict)
    #: CSV columns read as text whatever they look like (ingest sets the ones
    #: the expectations declare a type for, so validation does the conversion)
    text_columns: tuple[str, ...] = ()
    kind: str = "file"

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise InvalidInput(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise InvalidInput(f"delimiter must be one character, got {self.delimiter!r}")
        self._files: list[str] | None = None

    # -- resolving ----------------------------------------------------------------
    def files(self) -> list[str]:
        """The concrete files this source reads, in sorted order."""
        if self._files is not None:
            return self._files
        try:
            fs, path = fsspec.core.url_to_fs(self.uri, **self.storage_options)
        except (ValueError, ImportError) as e:
            raise InvalidInput(f"cannot open {self.uri!r}: {e}") from e
        self._fs = fs
        if any(ch in path for ch in "*?["):
            found = sorted(p for p in fs.glob(path) if fs.isfile(p))
            if not found:
                raise NotFound(f"no files match {self.uri!r}; check the pattern")
        elif fs.isdir(path):
            found = sorted(
                p for p in fs.find(path)
                if not p.rsplit("/", 1)[-1].startswith((".", "_"))
                and (self.format is not None or _split_ext(p)[0] is not None)
            )
            if not found:
                raise NotFound(f"folder {self.uri!r} has no data files ({', '.join(_EXT)})")
        elif fs.isfile(path):
            found = [path]
        else:
            raise NotFound(f"file not found: {self.uri!r}; check the path")
        self._files = found
        return found

    def _format_of(self, path: str) -> tuple[str, str | None]:
        fmt, compression = _split_ext(path)
        fmt = self.format or fmt
        if fmt is None:
            raise InvalidInput(
                f"cannot tell the format of {path!r} from its name; pass --format "
                f"({', '.join(FORMATS)})"
            )
        return fmt, compression

    def describe(self) -> dict[str, Any]:
        """JSON description (credentials in the URL are masked)."""
        files = self.files()
        d: dict[str, Any] = {
            "kind": self.kind,
            "uri": _strip_credentials(self.uri),
            "format": self._format_of(files[0])[0],
            "files": len(files),
        }
        if d["format"] in ("csv", "tsv"):
            d.update(delimiter=self._delimiter(d["format"]), header=self.header, encoding=self.encoding)
        return d

    def _delimiter(self, fmt: str) -> str:
        return self.delimiter or ("\t" if fmt == "tsv" else ",")

    # -- reading ------------------------------------------------------------------
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream every file's rows as record batches."""
        csv_types: dict[str, pa.DataType] | None = None
        for path in self.files():
            fmt, compression = self._format_of(path)
            try:
                with self._fs.open(path, "rb") as raw:
                    stream: Any = pa.PythonFile(raw, mode="r")
                    if compression:
                        stream = pa.CompressedInputStream(stream, compression)
                    if fmt in ("csv", "tsv"):
                        for batch in self._csv(stream, fmt, csv_types):
                            if csv_types is None:
                                _check_text(batch, path, self.encoding)
                                csv_types = {f.name: f.type for f in batch.schema}
                            yield batch
                    elif fmt == "parquet":
                        yield from pq.ParquetFile(stream).iter_batches(batch_size=BATCH_ROWS)
                    elif fmt == "jsonl":
                        reader = pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=BLOCK_SIZE))
                        yield from reader
                    else:
                        yield from _json_document(stream.read(), path)
            except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
                raise SourceError(f"cannot read {fmt.upper()} file {path!r}: {_arrow_message(e)}{_hint(fmt)}") from e
            except OSError as e:
                raise SourceError(f"cannot read {path!r}: {e}") from e

    def _csv(
        self, stream: Any, fmt: str, types: dict[str, pa.DataType] | None
    ) -> Iterator[pa.RecordBatch]:
        read = pacsv.ReadOptions(
            block_size=BLOCK_SIZE, encoding=self.encoding, autogenerate_column_names=not self.header
        )
        parse = pacsv.ParseOptions(delimiter=self._delimiter(fmt))
        column_types = {c: pa.string() for c in self.text_columns}
        column_types.update(types or {})
        convert = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
        # Column types are inferred from the first BLOCK_SIZE bytes taken as one
        # block, exactly as Arrow's streaming reader would; the rest is parsed
        # in PARSE_BLOCK pieces, because Arrow parses a 16 MiB block ~1.5x
        # slower than small ones and needs ~300 MiB of memory while at it.
        head = _read_full(stream, BLOCK_SIZE)
        per_batch = 0  # >0: join the small blocks into batches of at least this many rows
        ready: list[pa.RecordBatch] = []  # the first block's rows, yielded first
        cut = len(head) if len(head) < BLOCK_SIZE else max(head.rfind(b"\n"), head.rfind(b"\r")) + 1
        if cut and codecs.lookup(self.encoding).name == "utf-8":  # bytes are text: no transcoding
            block = min(PARSE_BLOCK, BLOCK_SIZE)
            small = pacsv.ReadOptions(  # one thread: the first bad value is the first one found
                block_size=block, encoding=self.encoding, autogenerate_column_names=not self.header,
                use_threads=False,
            )
            first = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(memoryview(head)[:cut])),
                read_options=small, parse_options=parse, convert_options=convert,
            )
            names = first.schema.names
            if len(set(names)) == len(names):
                # batches of about one BLOCK_SIZE of text each, as before
                per_batch = max(first.num_rows, 1)
                ready = list(_coalesce(first.to_batches(), per_batch))
                rest = memoryview(head)[cut:]
                if not rest:
                    rest = memoryview(_read_full(stream, 1 << 16))
                if not rest:
                    yield from ready
                    return
                # the rest of the file has no header: name the columns, fix their types
                read = pacsv.ReadOptions(block_size=block, encoding=self.encoding, column_names=names)
                convert = pacsv.ConvertOptions(
                    column_types={f.name: f.type for f in first.schema}, strings_can_be_null=True
                )
                head = bytes(rest)
                del first
        reader = pacsv.open_csv(
            pa.PythonFile(_Joined(head, stream), mode="r"),
            read_options=read, parse_options=parse, convert_options=convert,
        )
        del head
        # Read ahead: parse the next blocks on a thread (Arrow releases the GIL)
        # while the caller validates and writes this one. At most two batches
        # wait, so memory stays bounded; errors surface here, in order.
        done = object()
        ahead: queue.Queue[Any] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            item: Any = done
            try:
                for batch in _coalesce(reader, per_batch) if per_batch else reader:
                    if stop.is_set():
                        break
                    ahead.put(batch)
            except BaseException as e:  # handed to the reading thread below
                item = e
            ahead.put(item)

        thread = threading.Thread(target=produce, name="loopml-csv-read-ahead", daemon=True)
        thread.start()
        try:
            while ready:
                yield ready.pop(0)
            while (item := ahead.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a waiting put, then let the thread end
                with contextlib.suppress(queue.Empty):
                    ahead.get(timeout=0.05)
            thread.join()


def _check_text(batch: pa.RecordBatch, path: str, encoding: str) -> None:
    # Arrow reads text that is not valid in the encoding as binary: say so instead.
    binary = [f.name for f in batch.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if binary:
        raise SourceError(
            f"cannot read CSV file {path!r}: column(s) {binary} are not valid {encoding} text; "
            "pass --encoding with the file's encoding (e.g. latin-1)"
        )


def _arrow_message(e: Exception) -> str:
    return " ".join(str(e).split())[:300]


def _hint(fmt: str) -> str:
    if fmt in ("csv", "tsv"):
        return "; fix that line, or pass --delimiter/--encoding/--no-header if they are wrong"
    return ""


def _json_document(data: bytes, path: str) -> Iterator[pa.RecordBatch]:
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as e:
        raise SourceError(
            f"cannot read JSON file {path!r}: {e}; if it has one record per line use --format jsonl"
        ) from e
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise SourceError(
                f"JSON file {path!r} is an object; expected an array of records "
                "(or an object with exactly one array of records)"
            )
        doc = lists[0]
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise SourceError(f"JSON file {path!r} must hold an array of objects (records)")
    yield from records_to_batches(doc)


def records_to_batches(records: list[dict[str, Any]], size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Turn a list of JSON records into record batches (used by JSON files and HTTP APIs)."""
    for i in range(0, len(records), size):
        chunk = records[i : i + size]
        try:
            yield pa.RecordBatch.from_pylist(chunk)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise SourceError(f"records {i}..{i + len(chunk) - 1} have mixed value types: {_arrow_message(e)}") from e


def _read_full(stream: Any, n: int) -> bytes:
    """Read ``n`` bytes, or fewer only at the end of the stream."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(bytes(chunk))
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _Joined:
    """A readable file: ``head``, then the rest of ``stream``."""

    closed = False

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head = memoryview(head)
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                out = bytes(self.head) + bytes(self.stream.read())
                self.head = memoryview(b"")
                return out
            out = bytes(self.head[:n])
            self.head = self.head[n:]
            return out
        return bytes(self.stream.read(n))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _coalesce(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Join small record batches into ones of at least ``rows`` rows (the last may be smaller)."""
    pending: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        if b.num_rows == 0:
            continue
        pending.append(b)
        n += b.num_rows
        if n >= rows:
            yield _concat(pending)
            pending, n = [], 0
    if pending:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
