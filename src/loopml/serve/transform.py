"""Batch transform: a model package over files or a dataset, in parallel, resumable, exactly once.

SageMaker's Batch Transform, on a laptop or a Ray cluster::

    transform(ws, "churn:3", "data/*.csv", "out/", workers=2, join_input=True)

- **Input**: a file, a folder or a glob of CSV / JSON Lines / Parquet on any
  fsspec URL, or a catalog dataset version ``dataset:NAME[:VER]``. Each input
  object is read as a stream and cut into chunks of ``batch_rows`` records
  (and at most ``max_payload_mb`` each): memory is bounded by the chunk size.
- **Workers** (local processes or Ray tasks, :mod:`loopml.compute`) load the
  model once each, apply its fitted recipe and the model, and write one part
  file per chunk.
- **Output**: one ``<input name>.out`` per input object under ``output``,
  records in input order: ``prediction`` (and ``proba_<label>`` per class for
  classifiers), after the input columns with ``join_input``; filtered by
  ``input_filter`` (what the model sees) and ``output_filter`` (what is kept).
- **Exactly once**: ``output/_manifest.json`` names the job (a hash of the
  model, the inputs and the options); every finished chunk is recorded next to
  its part under ``output/_parts/<job>/``. Rerunning the same job after a crash
  skips the finished chunks; the outputs are assembled from the parts in chunk
  order and renamed into place at the end, so an interrupted and an
  uninterrupted run give byte-identical files.
- **Bad records** (values that do not convert to the model's input types,
  records the recipe or model fails on) are isolated by bisection, left
  without a prediction, and listed in ``<input name>.errors.jsonl``; the job
  fails (no ``.out`` written) only when they are more than
  ``max_error_ratio`` of the records.

See ``docs/transform.md``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.serve._transform_worker import (
    ChunkResult,
    ChunkTask,
    ModelSource,
    run_chunk,
    write_atomic,
)
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    import fsspec

    from loopml.compute import Executor
    from loopml.data.catalog import DatasetVersionInfo
    from loopml.registry.versions import ModelVersionInfo
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: output formats, by family
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
#: the event emitted when a job has written its outputs
TRANSFORM_COMPLETED = "transform.completed"
#: the event emitted when a job fails (too many bad records, crashed chunks)
TRANSFORM_FAILED = "transform.failed"
#: the tracking experiment transform jobs are recorded in
EXPERIMENT = "transform"
#: records per chunk by default
BATCH_ROWS = 50_000
MANIFEST = "_manifest.json"
PARTS = "_parts"
OUT_SUFFIX = ".out"
ERRORS_SUFFIX = ".errors.jsonl"
DATASET_PREFIX = "dataset:"
_MANIFEST_FORMAT = "loopml.transform"
_KEY_VERSION = 1
_ACCEPT = {
    "csv": "csv", "text/csv": "csv",
    "jsonl": "jsonl", "jsonlines": "jsonl", "application/jsonlines": "jsonl", "application/x-jsonlines": "jsonl",
    "application/json-lines": "jsonl",
    "parquet": "parquet", "application/x-parquet": "parquet", "application/vnd.apache.parquet": "parquet",
}
_FAMILY = {"csv": "csv", "tsv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


class TransformFailed(LoopmlError):
    """A batch transform job failed: too many bad records, or a chunk kept crashing its worker.

    Finished chunks are kept: rerunning the same job (same model, input,
    output and options) resumes from them.
    """

    http_status = 424
    code = "TransformFailed"

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


# -- results ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransformProgress:
    """Progress of a running job, passed to ``on_progress`` after each chunk.

    Attributes
    ----------
    rows_done
        Records predicted so far (including chunks finished by an earlier attempt).
    rows_total
        All records, when the inputs say so up front (Parquet, datasets), else None.
    chunks_done
        Chunks finished.
    errors
        Bad records so far.
    """

    rows_done: int
    rows_total: int | None
    chunks_done: int
    errors: int


@dataclass(frozen=True)
class TransformResult:
    """What a finished batch transform job did.

    Attributes
    ----------
    job_id
        The job: the same for every rerun of the same model, inputs, output and options.
    model
        The model reference (``churn:3``) or package folder.
    output
        The output folder (URL).
    files
        The output files (``<input name>.out``), in input order.
    error_files
        The ``<input name>.errors.jsonl`` files, for inputs with bad records.
    rows_in, rows_out
        Records read and written (equal: bad records are written without a prediction).
    errors
        Bad records.
    chunks
        Chunks of the job; ``chunks_skipped`` of them were finished by an earlier attempt.
    retries
        Chunks run again because their worker died.
    seconds, rows_per_s
        Wall time of this call, and records per second over it.
    run_id
        The tracking run of this call (experiment ``transform``).
    """

    job_id: str
    model: str
    output: str
    files: list[str]
    error_files: list[str]
    rows_in: int
    rows_out: int
    errors: int
    chunks: int
    chunks_skipped: int
    retries: int
    seconds: float
    rows_per_s: float
    run_id: str | None = None
    format: str = ""
    executor: str = ""
    workers: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# -- filters -----------------------------------------------------------------------------------------------
_ITEM = re.compile(r"^\s*(?:(-?\d+)|(-?\d*)\s*:\s*(-?\d*)|'([^']*)'|\"([^\"]*)\")\s*$")


@dataclass(frozen=True)
class ColumnFilter:
    """Which columns of a record to keep: names, or JSONPath-like positions.

    Written as a list of names (``["id", "prediction"]`` or ``"id,prediction"``),
    or as ``$[...]`` over column positions, as SageMaker's ``InputFilter`` /
    ``OutputFilter``: ``$[1:]`` (all but the first), ``$[0,-1]`` (first and
    last), ``$[2:5]``, ``$['id','prediction']``. ``$`` keeps everything.

    Examples
    --------
    >>> ColumnFilter.parse("$[1:]").apply(["id", "a", "b"])
    ['a', 'b']
    >>> ColumnFilter.parse("$[0,-1]").apply(["id", "a", "prediction"])
    ['id', 'prediction']
    >>> ColumnFilter.parse("b, id").apply(["id", "a", "b"])
    ['b', 'id']
    """

    items: tuple[int | str | tuple[int | None, int | None], ...]
    text: str

    @classmethod
    def parse(cls, spec: str | Sequence[str], what: str = "filter") -> ColumnFilter:
        """Read a filter from its text (``$[1:]``, ``a,b``) or a list of column names."""
        if not isinstance(spec, str):
            names = [str(s) for s in spec]
            if not names or any(not n for n in names):
                raise InvalidInput(f"{what} {list(spec)!r} must list at least one column name")
            return cls(tuple(names), ",".join(names))
        text = spec.strip()
        if text == "$":
            return cls((), text)
        if text.startswith("$."):
            name = text[2:].strip()
            if not name:
                raise InvalidInput(f"{what} {spec!r} names no column; write $.NAME")
            return cls((name,), text)
        if text.startswith("$"):
            m = re.match(r"^\$\s*\[(.*)\]\s*$", text)
            if not m or not m.group(1).strip():
                raise InvalidInput(
                    f"{what} {spec!r} is not understood; write column names (a,b), positions $[1:], $[0,-1], "
                    "$[2:5] or names $['a','b']"
                )
            items: list[int | str | tuple[int | None, int | None]] = []
            for part in _split_items(m.group(1)):
                im = _ITEM.match(part)
                if not im:
                    raise InvalidInput(f"{what} {spec!r}: {part.strip()!r} is not a position, a slice a:b or a 'name'")
                idx, lo, hi, q1, q2 = im.groups()
                if idx is not None:
                    items.append(int(idx))
                elif q1 is not None or q2 is not None:
                    items.append(q1 if q1 is not None else q2)
                else:
                    items.append((int(lo) if lo else None, int(hi) if hi else None))
            return cls(tuple(items), text)
        names = [n.strip() for n in text.split(",")]
        if not text or any(not n for n in names):
            raise InvalidInput(f"{what} {spec!r} must name columns, e.g. a,b or $[1:]")
        return cls(tuple(names), text)

    def apply(self, columns: Sequence[str], what: str = "filter", where: str = "the record") -> list[str]:
        """The columns kept, in the filter's order (each once)."""
        if not self.items:
            return list(columns)
        out: list[str] = []
        n = len(columns)
        for item in self.items:
            if isinstance(item, str):
                if item not in columns:
                    raise InvalidInput(
                        f"{what} {self.text!r} names column {item!r}, which {where} does not have; "
                        f"its columns: {', '.join(columns[:20])}{' ...' if n > 20 else ''}"
                    )
                picked = [item]
            elif isinstance(item, int):
                if not -n <= item < n:
                    raise InvalidInput(
                        f"{what} {self.text!r}: position {item} is out of range; {where} has {n} columns"
                    )
                picked = [columns[item]]
            else:
                picked = list(columns[slice(item[0], item[1])])
            out += [c for c in picked if c not in out]
        if not out:
            raise InvalidInput(f"{what} {self.text!r} keeps no column of {where} ({n} columns)")
        return out


def _split_items(text: str) -> list[str]:
    """Split on commas outside quotes."""
    parts: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _filter(spec: str | Sequence[str] | ColumnFilter | None, what: str) -> ColumnFilter | None:
    if spec is None or isinstance(spec, ColumnFilter):
        return spec
    return ColumnFilter.parse(spec, what)


# -- the model and the inputs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ModelInfo:
    source: ModelSource
    label: str
    version: ModelVersionInfo | None
    inputs: list[str]
    types: dict[str, str]
    classes: list[Any] | None
    prediction_type: str | None


def _resolve_model(ws: Workspace, model: str | os.PathLike[str]) -> _ModelInfo:
    from loopml.train.algorithms._base import CLASSIFICATION
    from loopml.train.package import Signature, materialize_package, read_manifest, verify_package

    text = os.fspath(model)
    version = None
    if os.path.isdir(text) or "/" in text or os.sep in text:
        if not os.path.isdir(text):
            raise NotFound(f"no model package folder at {text}; give a registry reference such as churn:3 "
                           "or churn@production, or a package folder")
        manifest = verify_package(text)
        _, sha = read_manifest(text)
        folder = os.path.abspath(text)
        label = folder
    else:
        from loopml.registry.versions import get_model_version

        version = get_model_version(ws, text)
        folder = str(materialize_package(ws, version.package_sha256))
        manifest, sha = read_manifest(folder, sha256=version.package_sha256)
        label = version.ref
    sig = Signature.from_dict(manifest.get("signature") or {})
    classifier = manifest.get("problem_type") in CLASSIFICATION
    pred_type = next((o.get("type") for o in sig.outputs if o.get("name") == "prediction"), None)
    return _ModelInfo(
        source=ModelSource(sha, folder, ws.artifacts.url),
        label=label, version=version, inputs=sig.input_names,
        types={c["name"]: str(c.get("type")) for c in sig.inputs if c.get("type")},
        classes=list(sig.classes or []) if classifier else None,
        prediction_type=str(pred_type) if pred_type else None,
    )


@dataclass
class _Input:
    index: int
    name: str          # output naming: <name>.out (a path relative to the input folder)
    uri: str           # for messages
    path: str          # on ``fs``
    fmt: str           # csv | tsv | jsonl | parquet | dataset
    compression: str | None
    identity: str
    rows: int | None = None
    dataset: DatasetVersionInfo | None = None

    @property
    def family(self) -> str:
        return "parquet" if self.fmt == "dataset" else _FAMILY[self.fmt]


def _resolve_inputs(
    ws: Workspace, source: str, storage_options: dict[str, Any]
) -> tuple[list[_Input], fsspec.AbstractFileSystem | None, str | None]:
    """The input objects (sorted), their filesystem, and the input folder (for the output-inside check)."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidInput("input is empty; give a file, a folder, a glob or dataset:NAME[:VER]")
    if source.startswith(DATASET_PREFIX):
        from loopml.data.catalog import Catalog

        info = Catalog(ws).get(source[len(DATASET_PREFIX):])
        return [_Input(0, f"{info.name}-v{info.version}", f"{DATASET_PREFIX}{info.ref}", "", "dataset", None,
                       f"{info.id}:{info.content_hash}", info.row_count, info)], None, None
    import fsspec

    from loopml.data.sources.files import FileSource, _split_ext

    src = FileSource(source, storage_options=dict(storage_options))
    files = src.files()
    fs, path = fsspec.core.url_to_fs(source, **storage_options)
    if any(ch in path for ch in "*?["):
        base = path[: min(path.index(ch) for ch in "*?[" if ch in path)].rsplit("/", 1)[0]
        folder: str | None = base
    elif fs.isdir(path):
        base = folder = path.rstrip("/")
    else:
        base, folder = path.rsplit("/", 1)[0] if "/" in path else "", None
    out: list[_Input] = []
    for i, p in enumerate(files):
        fmt, compression = _split_ext(p)
        if fmt == "json":
            raise InvalidInput(f"{p} is a JSON document; batch transform reads JSON Lines (one record per line, "
                               ".jsonl), CSV or Parquet")
        if fmt not in _FAMILY:
            raise InvalidInput(f"cannot tell the format of {p!r} from its name; name it .csv, .tsv, .jsonl or "
                               ".parquet (optionally .gz)")
        rel = p[len(base) + 1:] if base and p.startswith(base + "/") else p.rsplit("/", 1)[-1]
        info = fs.info(p)
        ident = f"{info.get('size')}:{info.get('mtime') or info.get('LastModified') or ''}:" \
                f"{info.get('ETag') or info.get('md5Hash') or info.get('etag') or ''}"
        rows = None
        if fmt == "parquet" and not compression:
            import pyarrow.parquet as pq

            with fs.open(p, "rb") as f:
                rows = pq.ParquetFile(f).metadata.num_rows
        out.append(_Input(i, rel, fs.unstrip_protocol(p), p, fmt, compression, ident, rows))
    return out, fs, folder


def _out_format(accept: str | None, family: str) -> str:
    if accept is None:
        return family
    key = accept.strip().lower().split(";")[0].strip()
    if key not in _ACCEPT:
        raise InvalidInput(f"output format {accept!r} is not one of csv, jsonl, parquet "
                           "(or text/csv, application/jsonlines, application/x-parquet)")
    return _ACCEPT[key]


# -- reading chunks ------------------------------------------------------------------------------------------
@dataclass
class _Chunk:
    inp: _Input
    index: int
    row_offset: int
    rows: int
    table: pa.Table | None = None
    lines: list[bytes] | None = None


def _row_bytes(table: pa.Table) -> np.ndarray:
    """The size of each record in bytes (fixed-width values, text lengths + offsets, others averaged)."""
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    for col in table.columns:
        t = col.type
        if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) \
                or pa.types.is_large_binary(t):
            lengths = pc.fill_null(pc.binary_length(col), 0)
            sizes += np.asarray(lengths.to_numpy(), dtype=np.int64) + 4
        elif pa.types.is_primitive(t):
            sizes += max(t.bit_width // 8, 1)
        else:
            sizes += int(col.nbytes // max(len(col), 1))
    return sizes


def _rechunk(batches: Iterator[pa.RecordBatch], rows: int, max_bytes: int | None,
             schema: pa.Schema | None) -> Iterator[pa.Table]:
    """Cut a stream of record batches into tables of ``rows`` records (and at most ``max_bytes``).

    The cuts depend only on the records, not on how the stream was batched.
    An empty stream gives one empty table (of ``schema``), so an empty input
    still gets its (empty) output.
    """
    pending: pa.Table | None = None
    sizes = np.zeros(0, dtype=np.int64)
    emitted = False
    for b in batches:
        if b.num_rows == 0:
            schema = schema or b.schema
            continue
        t = pa.Table.from_batches([b])
        pending = t if pending is None or not pending.num_rows else pa.concat_tables([pending, t])
        if max_bytes is not None:
            sizes = np.concatenate([sizes, _row_bytes(t)])
        while pending.num_rows:
            cut = rows if pending.num_rows >= rows else None
            if max_bytes is not None:
                over = np.flatnonzero(np.cumsum(sizes[:rows]) > max_bytes)
                if over.size:
                    cut = max(int(over[0]), 1)
            if cut is None:
                break
            yield pending.slice(0, cut)
            emitted = True
            pending = pending.slice(cut)
            sizes = sizes[cut:]
    if pending is not None and pending.num_rows:
        yield pending
    elif not emitted:
        yield (schema if schema is not None else pa.schema([])).empty_table()


def _csv_columns(inp: _Input, fs: Any, header: bool, delimiter: str) -> list[str]:
    import pyarrow.csv as pacsv

    with fs.open(inp.path, "rb") as raw:
        stream: Any = pa.PythonFile(raw, mode="r")
        if inp.compression:
            stream = pa.CompressedInputStream(stream, inp.compression)
        try:
            reader = pacsv.open_csv(
                stream, read_options=pacsv.ReadOptions(block_size=1 << 20, autogenerate_column_names=not header),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
            )
        except pa.ArrowInvalid as e:
            if "Empty CSV file" in str(e):
                return []
            from loopml.errors import SourceError

            raise SourceError(f"cannot read CSV file {inp.uri!r}: {' '.join(str(e).split())[:300]}") from e
        names = list(reader.schema.names)
    return names


class _Reader:
    """Reads one input object as chunks (Arrow tables, or JSON lines)."""

    def __init__(self, ws: Workspace, inp: _Input, fs: Any, *, header: bool, batch_rows: int,
                 max_bytes: int | None, storage_options: dict[str, Any]) -> None:
        self.ws, self.inp, self.fs = ws, inp, fs
        self.header, self.batch_rows, self.max_bytes = header, batch_rows, max_bytes
        self.storage_options = storage_options
        self.delimiter = "\t" if inp.fmt == "tsv" else ","

    def columns(self) -> list[str] | None:
        """The input columns in order, known before reading (None for JSON lines)."""
        inp = self.inp
        if inp.fmt == "dataset":
            assert inp.dataset is not None
            return list(inp.dataset.columns)
        if inp.fmt == "parquet":
            import pyarrow.parquet as pq

            with self.fs.open(inp.path, "rb") as f:
                return list(pq.ParquetFile(f).schema_arrow.names)
        if inp.fmt in ("csv", "tsv"):
            return _csv_columns(inp, self.fs, self.header, self.delimiter)
        return None

    def chunks(self, columns: list[str] | None) -> Iterator[_Chunk]:
        """The chunks in order; ``columns`` limits what is read (Parquet, datasets) when given."""
        if self.inp.fmt == "jsonl":
            yield from self._jsonl_chunks()
            return
        offset = 0
        for i, table in enumerate(_rechunk(self._batches(columns), self.batch_rows, self.max_bytes,
                                           self._schema())):
            if columns is not None and table.num_columns:
                table = table.select(columns)
            yield _Chunk(self.inp, i, offset, table.num_rows, table=table)
            offset += table.num_rows

    def _schema(self) -> pa.Schema:
        """The schema of an empty input."""
        inp = self.inp
        if inp.fmt == "dataset":
            assert inp.dataset is not None
            from loopml.data.catalog import _arrow_type

            return pa.schema([pa.field(c["name"], _arrow_type(c["type"])) for c in inp.dataset.schema])
        if inp.fmt == "parquet":
            import pyarrow.parquet as pq

            with self.fs.open(inp.path, "rb") as f:
                return pq.ParquetFile(f).schema_arrow
        return pa.schema([pa.field(c, pa.string()) for c in self.columns() or []])

    def _batches(self, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        inp = self.inp
        if inp.fmt == "dataset":
            from loopml.data.catalog import Catalog

            assert inp.dataset is not None
            yield from Catalog(self.ws).iter_batches(inp.dataset, batch_size=65_536, columns=columns)
            return
        if inp.fmt == "parquet":
            import pyarrow.parquet as pq

            with self.fs.open(inp.path, "rb") as raw:
                stream: Any = pa.PythonFile(raw, mode="r")
                if inp.compression:
                    stream = pa.CompressedInputStream(stream, inp.compression)
                    stream = pa.BufferReader(stream.read())
                # no pre-buffering of whole row groups: a file written as one big row group still
                # streams page by page, in bounded memory
                yield from pq.ParquetFile(stream, pre_buffer=False, buffer_size=1 << 20).iter_batches(
                    batch_size=65_536, columns=columns)
            return
        from loopml.data.sources.files import FileSource

        names = _csv_columns(inp, self.fs, self.header, self.delimiter)
        if not names:
            return
        # every column as text: the worker converts the model's columns to its types record by
        # record (a bad value is a bad record, not a failed file) and the others stay as written
        yield from FileSource(inp.uri, format=inp.fmt, header=self.header, text_columns=tuple(names),
                              storage_options=dict(self.storage_options)).batches()

    def _jsonl_chunks(self) -> Iterator[_Chunk]:
        inp = self.inp
        limit = self.max_bytes
        with self.fs.open(inp.path, "rb", compression=inp.compression) as f:
            lines: list[bytes] = []
            size = 0
            index = offset = 0
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                if lines and (len(lines) >= self.batch_rows or (limit is not None and size + len(line) > limit)):
                    yield _Chunk(inp, index, offset, len(lines), lines=lines)
                    index, offset = index + 1, offset + len(lines)
                    lines, size = [], 0
                lines.append(line)
                size += len(line) + 1
            if lines or index == 0:
                yield _Chunk(inp, index, offset, len(lines), lines=lines)


def _jsonl_columns(lines: Sequence[bytes]) -> list[str]:
    """The fields of the first records, in the order they first appear."""
    import orjson

    seen: dict[str, None] = {}
    for line in lines:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            for k in rec:
                seen.setdefault(str(k), None)
    return list(seen)


# -- the plan of one input -------------------------------------------------------------------------------------
@dataclass
class _Plan:
    columns: tuple[str, ...]
    read: list[str] | None
    model_columns: tuple[str, ...]
    rename: tuple[tuple[str, str], ...]
    output_columns: tuple[str, ...] | None


def _plan(inp: _Input, columns: list[str], model: _ModelInfo, input_filter: ColumnFilter | None,
          output_filter: ColumnFilter | None, join_input: bool) -> _Plan:
    """Which columns the model gets (by name, or by position after the input filter) and which are written."""
    where = f"input {inp.uri}"
    outputs = ["prediction"] + [f"proba_{c}" for c in (model.classes or [])]
    if not columns:  # an empty file: no records, an empty output
        return _Plan((), [], (), (), None)
    selected = input_filter.apply(columns, "input filter", where) if input_filter else list(columns)
    wanted = model.inputs
    rename: tuple[tuple[str, str], ...] = ()
    if not wanted:
        model_columns = tuple(selected)
    elif set(wanted) <= set(selected):
        model_columns = tuple(wanted)
    elif not set(wanted) & set(selected) and len(selected) == len(wanted):
        # no names in common (a CSV without a header, f0, f1, ...): by position, as SageMaker does
        model_columns = tuple(selected)
        rename = tuple(zip(selected, wanted, strict=True))
    else:
        missing = [c for c in wanted if c not in selected]
        shown = ", ".join(selected[:20]) + (" ..." if len(selected) > 20 else "")
        raise InvalidInput(
            f"{where} has no column(s) {', '.join(map(repr, missing[:10]))} that model {model.label} needs "
            f"(it reads {', '.join(wanted[:20])}); the columns sent are: {shown or 'none'}. Fix the input or "
            "--input-filter (a headerless CSV is matched by position when the count agrees)"
        )
    joined = list(columns) + outputs if join_input else outputs
    if join_input:
        clash = [c for c in outputs if c in columns]
        if clash:
            raise InvalidInput(
                f"{where} already has column(s) {clash} that the output adds; rename them or do not join "
                "the input"
            )
    out_cols = tuple(output_filter.apply(joined, "output filter", "the output record")) if output_filter else None
    read = None if join_input else list(dict.fromkeys(model_columns))
    return _Plan(tuple(columns), read, model_columns, rename, out_cols)


# -- the job ------------------------------------------------------------------------------------------------
def _job_key(model: _ModelInfo, inputs: list[_Input], options: dict[str, Any]) -> str:
    import orjson

    doc = {"v": _KEY_VERSION, "model": model.source.sha256,
           "inputs": [[i.uri, i.fmt, i.identity] for i in inputs], "options": options}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _dumps(doc: Any) -> bytes:
    import orjson

    return orjson.dumps(doc, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def transform(
    ws: Workspace,
    model_ref: str | os.PathLike[str],
    input: str,
    output: str,
    *,
    workers: int = 2,
    executor: str | Executor = "local",
    batch_rows: int = BATCH_ROWS,
    max_payload_mb: float | None = None,
    join_input: bool = False,
    input_filter: str | Sequence[str] | ColumnFilter | None = None,
    output_filter: str | Sequence[str] | ColumnFilter | None = None,
    accept: str | None = None,
    max_error_ratio: float = 0.0,
    resume: bool = True,
    header: bool = True,
    max_retries: int = 2,
    ray_address: str | None = None,
    storage_options: dict[str, Any] | None = None,
    on_progress: Callable[[TransformProgress], None] | None = None,
) -> TransformResult:
    """Run a model over every record of ``input`` and write the predictions under ``output``.

    Parameters
    ----------
    ws
        The workspace (model registry, catalog, tracking).
    model_ref
        A registry reference (``churn:3``, ``churn@production``, ``churn``) or a model package folder.
    input
        A file, folder or glob of ``.csv`` / ``.tsv`` / ``.jsonl`` / ``.parquet`` files (optionally
        ``.gz``) on any fsspec URL, or ``dataset:NAME[:VER]``.
    output
        The output folder (any fsspec URL); created if missing.
    workers
        Worker processes (local) or tasks in flight (Ray).
    executor
        ``local`` (worker processes), ``ray`` (Ray tasks), ``inline`` (this process), or an
        :class:`~loopml.compute.Executor`.
    batch_rows
        Records per chunk: the unit of work, of retry and of memory.
    max_payload_mb
        Also cut chunks at this many megabytes of input (SageMaker's ``MaxPayloadInMB``).
    join_input
        Write the input record's columns before the prediction (SageMaker's ``JoinSource=Input``).
    input_filter
        The input columns the model gets: names (``["a", "b"]``, ``"a,b"``) or positions (``"$[1:]"``).
        Columns whose names match the model's inputs are sent by name; otherwise (a CSV
        without a header) by position, in the model's input order.
    output_filter
        The columns of the (joined) output record to keep: names or positions (``"$[0,-1]"``).
    accept
        Output format: ``csv``, ``jsonl`` or ``parquet`` (or a MIME type such as ``text/csv``);
        default: the input's own (CSV in, CSV out; a dataset gives Parquet).
    max_error_ratio
        The share of bad records tolerated (0 to 1); past it the job fails and writes no output.
    resume
        Reuse the chunks a previous attempt of the same job finished (False: start over).
    header
        CSV inputs have a header line (False: columns are ``f0, f1, ...`` and the output has no header).
    max_retries
        Times a chunk is run again after its worker died.
    ray_address
        The Ray cluster for ``executor="ray"`` (default: a local Ray instance).
    storage_options
        fsspec options for the input and output URLs (credentials, endpoints).
    on_progress
        Called with a :class:`TransformProgress` after each chunk.

    Returns
    -------
    TransformResult

    Raises
    ------
    TransformFailed
        More bad records than ``max_error_ratio`` allows, or a chunk crashed its worker
        more than ``max_retries`` times, or the model fails on every record. No ``.out``
        file is written; rerun to resume.
    NotFound, InvalidInput
        An unknown model or dataset, a missing input, a bad filter or option.

    Examples
    --------
    >>> result = transform(ws, "churn:3", "s3://bucket/in/", "s3://bucket/out/",   # doctest: +SKIP
    ...                    workers=4, join_input=True, output_filter="$[0,-1]")
    >>> result.files, result.rows_per_s                                          # doctest: +SKIP
    """
    started = time.perf_counter()
    opts = dict(storage_options or {})
    _check_options(workers, batch_rows, max_payload_mb, max_error_ratio, max_retries, executor)
    in_filter = _filter(input_filter, "input filter")
    out_filter = _filter(output_filter, "output filter")
    model = _resolve_model(ws, model_ref)
    inputs, in_fs, in_folder = _resolve_inputs(ws, input, opts)
    import fsspec

    try:
        out_fs, out_path = fsspec.core.url_to_fs(output, **opts)
    except (ValueError, ImportError) as e:
        raise InvalidInput(f"cannot open output {output!r}: {e}") from e
    out_path = out_path.rstrip("/")
    if out_fs.isfile(out_path):
        raise InvalidInput(f"output {output!r} is a file; give a folder for the .out files")
    if in_folder is not None and in_fs is not None and type(in_fs) is type(out_fs) and (
            out_path == in_folder or out_path.startswith(in_folder + "/")):
        raise InvalidInput(f"output {output!r} is inside the input folder; its files would be read as input "
                           "next time. Choose another output folder")
    formats = {_out_format(accept, i.family) for i in inputs}
    options = {
        "batch_rows": batch_rows, "max_payload_mb": max_payload_mb, "join_input": bool(join_input),
        "input_filter": in_filter.text if in_filter else None,
        "output_filter": out_filter.text if out_filter else None,
        "accept": _out_format(accept, "") if accept else None, "header": bool(header),
    }
    key = _job_key(model, inputs, options)
    job = _Job(ws, model, inputs, in_fs, out_fs, out_path, key, options, in_filter, out_filter, opts)
    return job.run(
        executor=executor, workers=workers, resume=resume, max_error_ratio=max_error_ratio,
        max_retries=max_retries, ray_address=ray_address, on_progress=on_progress, started=started,
        formats=formats, accept=accept,
    )


def _check_options(workers: int, batch_rows: int, max_payload_mb: float | None, max_error_ratio: float,
                   max_retries: int, executor: str | Executor) -> None:
    for name, value in (("workers", workers), ("batch_rows", batch_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{name} must be a positive whole number, got {value!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidInput(f"max_retries must be a whole number >= 0, got {max_retries!r}")
    if max_payload_mb is not None and (isinstance(max_payload_mb, bool) or not max_payload_mb > 0):
        raise InvalidInput(f"max_payload_mb must be a positive number of megabytes, got {max_payload_mb!r}")
    if isinstance(executor, str) and executor.strip().lower() not in ("local", "ray", "inline"):
        raise InvalidInput(f"executor {executor!r} is not one of local, ray, inline")
    if isinstance(max_error_ratio, bool) or not isinstance(max_error_ratio, (int, float)) \
            or not 0 <= max_error_ratio <= 1:
        raise InvalidInput(f"max_error_ratio must be between 0 and 1 (a share of the records), got "
                           f"{max_error_ratio!r}")


@dataclass
class _Done:
    rows: int
    errors: list[dict[str, Any]]


@dataclass
class _Pending:
    chunk: _Chunk
    task: ChunkTask
    attempts: int = 0


@dataclass
class _State:
    done: dict[tuple[int, int], _Done] = field(default_factory=dict)
    chunks: dict[int, int] = field(default_factory=dict)   # input -> number of chunks
    skipped: int = 0
    retries: int = 0
    errors: int = 0
    rows: int = 0


class _Job:
    """One run of a transform job: plan, dispatch chunks, record them, assemble the outputs."""

    def __init__(self, ws: Workspace, model: _ModelInfo, inputs: list[_Input], in_fs: Any, out_fs: Any,
                 out_path: str, key: str, options: dict[str, Any], in_filter: ColumnFilter | None,
                 out_filter: ColumnFilter | None, storage_options: dict[str, Any]) -> None:
        self.ws, self.model, self.inputs = ws, model, inputs
        self.in_fs, self.fs, self.out = in_fs, out_fs, out_path
        self.key, self.options = key, options
        self.job_id = f"transform-{key[:16]}"
        self.in_filter, self.out_filter = in_filter, out_filter
        self.storage_options = storage_options
        self.parts = f"{out_path}/{PARTS}/{self.job_id}"
        self.state = _State()

    # -- paths ------------------------------------------------------------------------------------
    def _part(self, i: int, c: int) -> str:
        return f"{self.parts}/{i:05d}-{c:07d}.part"

    def _done_path(self, i: int, c: int) -> str:
        return f"{self.parts}/{i:05d}-{c:07d}.done.json"

    def _uri(self, path: str) -> str:
        return str(self.fs.unstrip_protocol(path))

    def _out_file(self, inp: _Input) -> str:
        return f"{self.out}/{inp.name}{OUT_SUFFIX}"

    def _errors_file(self, inp: _Input) -> str:
        return f"{self.out}/{inp.name}{ERRORS_SUFFIX}"

    # -- manifest ---------------------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any] | None:
        import orjson

        path = f"{self.out}/{MANIFEST}"
        if not self.fs.exists(path):
            return None
        try:
            with self.fs.open(path, "rb") as f:
                doc = orjson.loads(f.read())
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) and doc.get("format") == _MANIFEST_FORMAT else None

    def _write_manifest(self, status: str, result: TransformResult | None = None,
                        message: str | None = None) -> None:
        doc = {
            "format": _MANIFEST_FORMAT, "version": 1, "job_id": self.job_id, "key": self.key, "status": status,
            "model": {"ref": self.model.label, "package_sha256": self.model.source.sha256},
            "inputs": [{"uri": i.uri, "format": i.fmt, "identity": i.identity,
                        "out": f"{i.name}{OUT_SUFFIX}"} for i in self.inputs],
            "options": self.options, "parts": f"{PARTS}/{self.job_id}",
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": message, "result": result.to_dict() if result else None,
        }
        self.fs.makedirs(self.out, exist_ok=True)
        write_atomic(self._uri(f"{self.out}/{MANIFEST}"), _dumps(doc), self.storage_options)

    def _load_done(self) -> None:
        import orjson

        if not self.fs.exists(self.parts):
            return
        for p in self.fs.ls(self.parts, detail=False):
            name = p.rsplit("/", 1)[-1]
            m = re.match(r"^(\d{5})-(\d{7})\.done\.json$", name)
            if not m:
                continue
            i, c = int(m.group(1)), int(m.group(2))
            if not self.fs.exists(self._part(i, c)):
                continue
            with self.fs.open(p, "rb") as f:
                doc = orjson.loads(f.read())
            self.state.done[(i, c)] = _Done(int(doc["rows"]), list(doc.get("errors") or []))

    # -- running ----------------------------------------------------------------------------------
    def run(self, *, executor: str | Executor, workers: int, resume: bool, max_error_ratio: float,
            max_retries: int, ray_address: str | None, on_progress: Callable[[TransformProgress], None] | None,
            started: float, formats: set[str], accept: str | None) -> TransformResult:
        previous = self._read_manifest()
        if previous is not None and previous.get("key") == self.key and resume:
            done = _stored_result(previous)
            if done is not None and previous.get("status") == "completed" and all(
                    self.fs.exists(self._out_file(i)) for i in self.inputs):
                log.info("transform job %s already completed; its outputs are in place", self.job_id)
                return replace(done, seconds=time.perf_counter() - started, chunks_skipped=done.chunks, retries=0)
            self._load_done()
        else:
            stale = [self.parts]
            parts = previous.get("parts") if previous is not None else None
            if isinstance(parts, str) and re.fullmatch(rf"{PARTS}/transform-[0-9a-f]{{16}}", parts):
                stale.append(f"{self.out}/{parts}")
            for folder in stale:  # another job's (or a restarted job's) parts
                if self.fs.exists(folder):
                    self.fs.rm(folder, recursive=True)
        self.fs.makedirs(self.parts, exist_ok=True)
        self._write_manifest("running")
        name = executor if isinstance(executor, str) else executor.name
        run = self.ws.start_run(experiment=EXPERIMENT, name=self.job_id, tags={
            "transform.job_id": self.job_id, "transform.model": self.model.label})
        run.log_params({"model": self.model.label, "model_package": self.model.source.sha256,
                        "inputs": ", ".join(i.uri for i in self.inputs)[:1000], "output": self._uri(self.out),
                        "executor": name, "workers": workers, **{k: v for k, v in self.options.items()}})
        if self.model.version is not None:
            self.ws.lineage.add(self.model.version.entity, EntityRef("run", run.id), "used_by")
        for inp in self.inputs:
            if inp.dataset is not None:
                run.log_dataset(inp.dataset, role="input")
        try:
            self._dispatch(executor, workers, max_error_ratio, max_retries, ray_address, on_progress)
            result = self._assemble(max_error_ratio, started, run.id, formats, name, workers)
        except BaseException as e:
            message = str(e) if isinstance(e, LoopmlError) else f"{type(e).__name__}: {e}"
            status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
            try:
                self._write_manifest("failed" if status == "FAILED" else "stopped", message=message)
                run.log_metrics({"rows_done": float(self.state.rows), "errors": float(self.state.errors)})
                run.end(status, message)
                if status == "FAILED":
                    self.ws.events.emit(TRANSFORM_FAILED, EntityRef("run", run.id), {
                        "job_id": self.job_id, "model": self.model.label, "message": message[:2000],
                        "output": self._uri(self.out)})
            except Exception as e2:  # never hide the job's own error
                log.warning("could not record the failure of %s: %s", self.job_id, e2)
            raise
        run.log_metrics({"rows_in": float(result.rows_in), "rows_out": float(result.rows_out),
                         "errors": float(result.errors), "seconds": result.seconds,
                         "rows_per_s": result.rows_per_s})
        run.end("FINISHED")
        payload = {"job_id": self.job_id, "run_id": run.id, "model": self.model.label,
                   "model_package": self.model.source.sha256, "inputs": [i.uri for i in self.inputs],
                   "output": self._uri(self.out), "files": result.files, "rows": result.rows_out,
                   "errors": result.errors}
        if self.model.version is not None:
            payload["model_version_id"] = self.model.version.id
        self.ws.events.emit(TRANSFORM_COMPLETED, EntityRef("run", run.id), payload)
        return result

    def _executor(self, executor: str | Executor, workers: int, ray_address: str | None) -> tuple[Executor, bool]:
        from loopml.compute import InlineExecutor, LocalExecutor

        if not isinstance(executor, str):
            return executor, False
        key = executor.strip().lower()
        if key == "inline":
            return InlineExecutor(), True
        if key == "local":
            env = {}
            if "OMP_NUM_THREADS" not in os.environ:  # the workers share the cores
                env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
            return LocalExecutor(workers, env=env), True
        if key == "ray":
            from loopml.compute.ray import RayExecutor

            return RayExecutor(workers, address=ray_address), True
        raise InvalidInput(f"executor {executor!r} is not one of local, ray, inline")

    def _chunks(self) -> Iterator[tuple[_Chunk, _Plan]]:
        """Every chunk of every input, in order, with its input's plan."""
        for inp in self.inputs:
            reader = _Reader(self.ws, inp, self.in_fs, header=bool(self.options["header"]),
                             batch_rows=int(self.options["batch_rows"]),
                             max_bytes=int(self.options["max_payload_mb"] * (1 << 20))
                             if self.options["max_payload_mb"] else None,
                             storage_options=self.storage_options)
            cols = reader.columns()
            plan = self._plan(inp, cols) if cols is not None else None
            n = 0
            for chunk in reader.chunks(plan.read if plan is not None else None):
                if plan is None:
                    plan = self._plan(inp, _jsonl_columns(chunk.lines or []))
                n += 1
                yield chunk, plan
            self.state.chunks[inp.index] = n

    def _plan(self, inp: _Input, columns: list[str]) -> _Plan:
        return _plan(inp, columns, self.model, self.in_filter, self.out_filter, bool(self.options["join_input"]))

    def _task(self, chunk: _Chunk, plan: _Plan) -> ChunkTask:
        inp = chunk.inp
        fmt = _out_format(self.options["accept"], inp.family)
        if chunk.table is not None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, chunk.table.schema) as w:
                w.write_table(chunk.table)
            payload, kind = bytes(sink.getvalue()), "arrow"
            columns = tuple(chunk.table.column_names)
        else:
            payload, kind, columns = b"\n".join(chunk.lines or []), "jsonl", plan.columns
        return ChunkTask(
            job_id=self.job_id, model=self.model.source, input_index=inp.index, input_name=inp.uri,
            chunk=chunk.index, row_offset=chunk.row_offset, kind=kind, payload=payload, columns=columns,
            model_columns=plan.model_columns, rename=plan.rename,
            types=tuple(sorted(self.model.types.items())), prediction_type=self.model.prediction_type,
            join_input=bool(self.options["join_input"]), output_columns=plan.output_columns, out_format=fmt,
            header=bool(self.options["header"]) and chunk.index == 0,
            part_uri=self._uri(self._part(inp.index, chunk.index)), storage_options=self.storage_options,
        )

    def _dispatch(self, executor: str | Executor, workers: int, max_error_ratio: float, max_retries: int,
                  ray_address: str | None, on_progress: Callable[[TransformProgress], None] | None) -> None:
        """Run every unfinished chunk, at most ``2 * workers`` in flight, recording each as it finishes.

        A chunk whose worker fails is run again (at most ``max_retries`` times).
        A dead worker process breaks a local pool and fails every chunk in
        flight; those are then run one at a time, so the chunk that kills its
        worker is the one that gets the blame.
        """
        state = self.state
        known = [i.rows for i in self.inputs]
        total = sum(r for r in known if r is not None) if all(r is not None for r in known) else None
        ex, owned = self._executor(executor, workers, ray_address)
        limit = max(2 * ex.max_workers, 2)
        in_flight: dict[Future[ChunkResult], _Pending] = {}
        retry: list[_Pending] = []     # to run again (their worker failed)
        suspects: list[_Pending] = []  # in flight when a process pool broke: each runs alone
        chunks = self._chunks()
        exhausted = False
        chunks_done = 0

        def progress() -> None:
            if on_progress is not None:
                on_progress(TransformProgress(state.rows, total, chunks_done, state.errors))

        def over_ratio() -> bool:
            if not state.errors:
                return False
            return max_error_ratio == 0 or (total is not None and state.errors > max_error_ratio * total)

        def submit(p: _Pending) -> None:
            p.attempts += 1
            in_flight[ex.submit(run_chunk, p.task)] = p

        def finished(p: _Pending, res: ChunkResult) -> None:
            nonlocal chunks_done
            self._record(p.chunk, res)
            chunks_done += 1
            state.rows += res.rows
            state.errors += len(res.errors)
            progress()

        try:
            while True:
                if suspects:  # one suspect at a time, alone
                    if not in_flight:
                        submit(suspects.pop(0))
                else:
                    while retry and len(in_flight) < limit:
                        submit(retry.pop(0))
                    while not exhausted and len(in_flight) < limit and not over_ratio():
                        item = next(chunks, None)
                        if item is None:
                            exhausted = True
                            break
                        chunk, plan = item
                        done = state.done.get((chunk.inp.index, chunk.index))
                        if done is None:
                            task = self._task(chunk, plan)
                            chunk.table = chunk.lines = None  # the task's payload is all that is kept
                            submit(_Pending(chunk, task))
                            continue
                        state.skipped += 1
                        chunks_done += 1
                        state.rows += done.rows
                        state.errors += len(done.errors)
                        progress()
                if not in_flight:
                    if over_ratio() or (exhausted and not retry and not suspects):
                        break
                    continue
                alone = len(in_flight) == 1
                ready, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                broken = False
                for fut in ready:
                    p = in_flight.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if alone:  # it ran alone: it killed its worker
                            self._crashed(p, RuntimeError("its worker process died"), max_retries)
                        else:
                            p.attempts -= 1  # not its fault, as far as anyone knows
                        suspects.append(p)
                        continue
                    except LoopmlError as e:  # the worker refused: the model, not the worker, is at fault
                        raise self._failed(e) from e
                    except Exception as e:
                        cause = getattr(e, "cause", None)  # Ray wraps the task's exception
                        if isinstance(cause, LoopmlError):
                            raise self._failed(cause) from None
                        if not _transient(e):  # a bug, not bad luck: running it again gives the same
                            self._crashed(p, e, 0)
                        self._crashed(p, e, max_retries)
                        state.retries += 1
                        retry.append(p)
                        continue
                    finished(p, res)
                if broken:
                    state.retries += 1
                    for fut, p in list(in_flight.items()):
                        if fut.done() and not fut.cancelled() and fut.exception() is None:
                            finished(p, fut.result())
                        else:
                            fut.cancel()
                            p.attempts -= 1
                            suspects.append(p)
                    in_flight.clear()
                    suspects.sort(key=lambda q: (q.chunk.inp.index, q.chunk.index))
                    if owned:
                        ex.shutdown(wait=False)
                    # a pool the caller passed in is broken for good: carry on with one of our own
                    ex, owned = self._executor(executor if isinstance(executor, str) else ex.name, ex.max_workers,
                                               ray_address)
        except BaseException:
            for fut in in_flight:
                fut.cancel()
            if owned:
                ex.shutdown(wait=False)
            raise
        if owned:
            ex.shutdown(wait=True)

    def _failed(self, e: LoopmlError) -> TransformFailed:
        return TransformFailed(f"transform job {self.job_id} failed: {e}. Finished chunks are kept: rerun to resume",
                               job_id=self.job_id)

    def _crashed(self, p: _Pending, error: BaseException, max_retries: int) -> None:
        if p.attempts > max_retries:
            c = p.chunk
            raise TransformFailed(
                f"transform job {self.job_id} failed: chunk {c.index} of {c.inp.uri} (records {c.row_offset}.."
                f"{c.row_offset + c.rows - 1}) failed {p.attempts} times; the last time: "
                f"{type(error).__name__}: {' '.join(str(error).split())[:300]}. Finished chunks are kept: rerun "
                "to resume",
                job_id=self.job_id,
            )
        log.warning("chunk %d of %s failed (%s: %s); running it again", p.chunk.index, p.chunk.inp.uri,
                    type(error).__name__, error)

    def _record(self, chunk: _Chunk, res: ChunkResult) -> None:
        """Mark a chunk finished (its part is already in place): the line resuming reads."""
        doc = {"input": chunk.inp.index, "chunk": chunk.index, "rows": res.rows, "bytes": res.part_bytes,
               "errors": res.errors, "seconds": round(res.seconds, 4)}
        write_atomic(self._uri(self._done_path(chunk.inp.index, chunk.index)), _dumps(doc), self.storage_options)
        self.state.done[(chunk.inp.index, chunk.index)] = _Done(res.rows, res.errors)

    # -- assembling -----------------------------------------------------------------------------
    def _assemble(self, max_error_ratio: float, started: float, run_id: str, formats: set[str],
                  executor: str, workers: int) -> TransformResult:
        state = self.state
        rows = sum(d.rows for d in state.done.values())
        by_input = self._errors_by_input()
        errors = sum(len(v) for v in by_input.values())
        error_files = self._write_errors(by_input)
        complete = len(state.chunks) == len(self.inputs) and all(
            (i.index, c) in state.done for i in self.inputs for c in range(state.chunks[i.index]))
        if errors and (max_error_ratio == 0 or errors > max_error_ratio * max(rows, 1) or not complete):
            first = next(e for v in by_input.values() for e in v)
            share = f"{errors} of {rows if complete else f'the first {rows}'}"
            raise TransformFailed(
                f"transform job {self.job_id} failed: {share} records could not be predicted, more than "
                f"max_error_ratio={max_error_ratio} allows (first: record {first['row']}: {first['reason']}); "
                f"see {', '.join(error_files[:3])}. No output was written; fix the records or raise "
                "the max error ratio and rerun (finished chunks are kept)",
                job_id=self.job_id,
            )
        if not complete:  # pragma: no cover - _dispatch returns only when every chunk is done
            raise TransformFailed(f"transform job {self.job_id} stopped before every chunk was done; rerun it",
                                  job_id=self.job_id)
        files = [self._assemble_one(inp) for inp in self.inputs]
        seconds = time.perf_counter() - started
        result = TransformResult(
            job_id=self.job_id, model=self.model.label, output=self._uri(self.out), files=files,
            error_files=error_files, rows_in=rows, rows_out=rows, errors=errors,
            chunks=sum(state.chunks.values()), chunks_skipped=state.skipped, retries=state.retries,
            seconds=seconds, rows_per_s=rows / seconds if seconds > 0 else 0.0, run_id=run_id,
            format=",".join(sorted(formats)), executor=executor, workers=workers,
        )
        self._write_manifest("completed", result)
        try:
            self.fs.rm(self.parts, recursive=True)
            if not self.fs.ls(f"{self.out}/{PARTS}", detail=False):
                self.fs.rmdir(f"{self.out}/{PARTS}")
        except OSError as e:  # the outputs are complete; stale parts only cost space
            log.warning("could not remove %s: %s", self.parts, e)
        return result

    def _errors_by_input(self) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {}
        for (i, _c), d in sorted(self.state.done.items()):
            if d.errors:
                out.setdefault(i, []).extend(d.errors)
        return out

    def _write_errors(self, by_input: dict[int, list[dict[str, Any]]]) -> list[str]:
        import orjson

        out: list[str] = []
        for inp in self.inputs:
            path = self._errors_file(inp)
            records = by_input.get(inp.index)
            if records:
                data = b"".join(orjson.dumps({"input": inp.uri, "row": e["row"], "reason": e["reason"],
                                              "record": e.get("record")}, default=str,
                                             option=orjson.OPT_APPEND_NEWLINE) for e in records)
                write_atomic(self._uri(path), data, self.storage_options)
                out.append(self._uri(path))
            elif self.fs.exists(path):
                self.fs.rm(path)
        return out

    def _assemble_one(self, inp: _Input) -> str:
        """Join the input's parts, in chunk order, into ``<name>.out`` (a temporary name, then a rename)."""
        import uuid

        target = self._out_file(inp)
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        n = self.state.chunks.get(inp.index, 0)
        fmt = _out_format(self.options["accept"], inp.family)
        try:
            with self.fs.open(tmp, "wb") as out:
                if fmt == "parquet":
                    self._parquet(inp, n, out)
                else:
                    for c in range(n):
                        with self.fs.open(self._part(inp.index, c), "rb") as f:
                            while block := f.read(1 << 22):
                                out.write(block)
            self.fs.mv(tmp, target)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return self._uri(target)

    def _parquet(self, inp: _Input, n: int, out: Any) -> None:
        import pyarrow.parquet as pq

        schemas = []
        for c in range(n):
            with self.fs.open(self._part(inp.index, c), "rb") as f:
                schemas.append(pa.ipc.open_stream(f).schema)
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
        with pq.ParquetWriter(out, schema) as w:
            for c in range(n):
                with self.fs.open(self._part(inp.index, c), "rb") as f:
                    table = pa.ipc.open_stream(f).read_all()
                if table.schema != schema:
                    table = table.select(schema.names).cast(schema) if set(table.schema.names) == set(
                        schema.names) else _conform(table, schema)
                w.write_table(table)


def _stored_result(manifest: dict[str, Any]) -> TransformResult | None:
    """The result a manifest recorded, if it reads as one."""
    doc = manifest.get("result")
    if not isinstance(doc, dict):
        return None
    try:
        return TransformResult(**{f.name: doc[f.name] for f in fields(TransformResult) if f.name in doc})
    except TypeError:
        return None


def _transient(e: BaseException) -> bool:
    """Whether a chunk's failure may go away when it runs again (I/O, a lost Ray worker or node)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return isinstance(cause, OSError)
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] == "ray"


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


__all__ = [
    "BATCH_ROWS",
    "FORMATS",
    "TRANSFORM_COMPLETED",
    "TRANSFORM_FAILED",
    "ColumnFilter",
    "TransformFailed",
    "TransformProgress",
    "TransformResult",
    "transform",
]
