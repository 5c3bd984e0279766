"""The batch-transform worker: one chunk of records in, one part file out.

:func:`run_chunk` runs in a worker process (local or Ray). It loads the model
package once per process (a small cache keyed by the package id), converts
the chunk's columns to the model's signature types (values that do not
convert are bad records), predicts, isolates the records the model cannot
process by bisection, builds the output records (prediction, class
probabilities, optionally joined to the input record and filtered) and writes
them atomically as one part file. The driver (:mod:`loopml.serve.transform`)
records the part as finished and, at the end, assembles the parts in order.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import LoopmlError, ModelError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.train.package import Model

log = logging.getLogger(__name__)

#: test hook: ``INPUT:CHUNK`` makes the worker exit abruptly on that chunk (every attempt), or
#: ``INPUT:CHUNK:MARKER`` only while the file MARKER does not exist (it is created first)
CRASH_ENV = "LOOPML_TRANSFORM_CRASH"
#: single records tried before bisecting a failed chunk: all failing means the model, not the data
PROBES = 8
#: models kept loaded per worker process
CACHE_SIZE = 2

_models: OrderedDict[str, Model] = OrderedDict()


# -- what travels to a worker and back ---------------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    """Where a worker finds the model package.

    Attributes
    ----------
    sha256
        The package id (sha256 of its manifest); every file is verified on load.
    path
        The package folder on the driver's machine.
    artifact_root
        The workspace's artifact store, to fetch the package where ``path`` does not exist
        (a Ray worker on another machine).
    """

    sha256: str
    path: str
    artifact_root: str | None = None


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of one input object.

    ``payload`` is an Arrow IPC stream (``kind="arrow"``) or JSON lines
    (``kind="jsonl"``, parsed here so bad lines become bad records).
    ``columns`` are the input columns in order; ``model_columns`` those sent to
    the model, renamed by ``rename`` (positional input filters);
    ``output_columns`` the columns kept from the (joined) output record.
    """

    job_id: str
    model: ModelSource
    input_index: int
    input_name: str
    chunk: int
    row_offset: int
    kind: str
    payload: bytes
    columns: tuple[str, ...]
    model_columns: tuple[str, ...]
    rename: tuple[tuple[str, str], ...]
    types: tuple[tuple[str, str], ...]
    prediction_type: str | None
    join_input: bool
    output_columns: tuple[str, ...] | None
    out_format: str
    header: bool
    part_uri: str
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkResult:
    """What a worker reports for a chunk: rows written, bad records, the part's size."""

    input_index: int
    chunk: int
    rows: int
    errors: list[dict[str, Any]]
    part_bytes: int
    seconds: float
    pid: int


# -- the model ----------------------------------------------------------------------------------------
def load_model(src: ModelSource) -> Model:
    """The model of ``src``, loaded once per process (verified against its package id)."""
    model = _models.get(src.sha256)
    if model is not None:
        _models.move_to_end(src.sha256)
        return model
    from loopml.train.package import load_model_package

    folder = Path(src.path)
    if not folder.is_dir():
        if src.artifact_root is None:
            raise LoopmlError(f"the model package {src.sha256} is not at {src.path} on this machine")
        folder = _fetch(src.artifact_root, src.sha256)
    model = load_model_package(folder, sha256=src.sha256)
    _models[src.sha256] = model
    while len(_models) > CACHE_SIZE:
        _models.popitem(last=False)
    return model


def _fetch(artifact_root: str, sha256: str) -> Path:
    """Copy a stored package into this machine's temporary folder (files verified by the store)."""
    from loopml.store.artifacts import ArtifactStore
    from loopml.train.package import MANIFEST

    cache = Path(tempfile.gettempdir()) / "loopml-models"
    folder = cache / sha256
    if (folder / MANIFEST).is_file():
        return folder
    store = ArtifactStore(artifact_root)
    data = store.get_bytes(sha256)
    manifest = json.loads(data)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache))
    for rel, file_sha in dict(manifest.get("files") or {}).items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise LoopmlError(f"the manifest {sha256} names a file outside the package: {rel!r}")
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get_bytes(file_sha))
    (tmp / MANIFEST).write_bytes(data)
    try:
        os.replace(tmp, folder)
    except OSError:  # another worker put it there first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# -- the chunk ----------------------------------------------------------------------------------------
def run_chunk(task: ChunkTask) -> ChunkResult:
    """Predict one chunk and write its part file; return what happened."""
    t0 = time.perf_counter()
    _crash_hook(task)
    model = load_model(task.model)
    table, errors = _decode(task)
    n = table.num_rows
    feed, bad = _feed(table, task, errors)
    outputs = _predict(model, feed, bad, task, errors)
    out = _output(table, outputs, task)
    data = encode(out, task.out_format, header=task.header)
    write_atomic(task.part_uri, data, task.storage_options)
    errors.sort(key=lambda e: e["row"])
    for e in errors:  # the record itself, to see what was wrong with it
        if "record" not in e:
            e["record"] = table.slice(e["row"] - task.row_offset, 1).to_pylist()[0]
    return ChunkResult(task.input_index, task.chunk, n, errors, len(data), time.perf_counter() - t0, os.getpid())


def _crash_hook(task: ChunkTask) -> None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    parts = spec.split(":", 2)
    if len(parts) < 2 or (int(parts[0]), int(parts[1])) != (task.input_index, task.chunk):
        return
    if len(parts) == 3:
        marker = Path(parts[2])
        if marker.exists():
            return
        marker.write_text("crashed once\n")
    os._exit(70)


def _decode(task: ChunkTask) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The chunk as an Arrow table of the input columns, and the records that could not be read."""
    if task.kind == "arrow":
        return pa.ipc.open_stream(task.payload).read_all(), []
    import orjson

    errors: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for i, line in enumerate(task.payload.split(b"\n") if task.payload else []):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            rec = None
            reason = f"not valid JSON: {e}"
        else:
            reason = "not a JSON object (each line must be one record, {...})"
        if isinstance(rec, dict):
            records.append(rec)
        else:
            errors.append({"row": task.row_offset + i, "reason": reason,
                           "record": line.decode("utf-8", "replace")[:1000]})
            records.append({})
    arrays = [_json_column([r.get(c) for r in records]) for c in task.columns]
    return pa.Table.from_arrays(arrays, names=list(task.columns)), errors


def _json_column(values: list[Any]) -> pa.Array:
    """Values of one JSON field as an Arrow array; mixed types become text (the model's types decide)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        import orjson

        return pa.array([v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
                        pa.string())


def _feed(table: pa.Table, task: ChunkTask, errors: list[dict[str, Any]]) -> tuple[pa.Table, np.ndarray]:
    """The model's input columns, converted to its signature types; and the mask of bad records."""
    from loopml.data.catalog import _arrow_type
    from loopml.data.validation import _convert

    rename = dict(task.rename)
    types = dict(task.types)
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    for e in errors:
        bad[e["row"] - task.row_offset] = True
    arrays: list[pa.Array] = []
    names: list[str] = []
    for col in task.model_columns:
        name = rename.get(col, col)
        values = table.column(col).combine_chunks() if n else pa.array([], table.schema.field(col).type)
        target = types.get(name)
        if target is not None and _convertible(target):
            typ = _arrow_type(target)
            if values.type != typ:
                values, mask = _convert(values, typ)
                if mask is not None:
                    wrong = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
                    for i in np.flatnonzero(wrong & ~bad):
                        raw = table.column(col)[int(i)].as_py()
                        errors.append({"row": task.row_offset + int(i),
                                       "reason": f"column {name!r}: cannot read {raw!r} as {target}"})
                    bad |= wrong
        arrays.append(values)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names), bad


_CONVERTIBLE = ("int", "uint", "float", "double", "bool", "string", "large_string", "timestamp", "date32")


def _convertible(type_name: str) -> bool:
    return type_name.startswith(_CONVERTIBLE)


@dataclass
class _Outputs:
    prediction: pa.Array
    proba: list[tuple[str, pa.Array]]


def _predict(model: Model, feed: pa.Table, bad: np.ndarray, task: ChunkTask,
             errors: list[dict[str, Any]]) -> _Outputs:
    """Predictions for the good records (bad ones, and those the model fails on, stay null)."""
    from loopml.train.algorithms._base import CLASSIFICATION

    n = feed.num_rows
    good = np.flatnonzero(~bad)
    classes = list(model.classes or []) if model.problem_type in CLASSIFICATION else None
    predicted: np.ndarray | None = None
    if len(good):
        df = _to_pandas(feed if len(good) == n else feed.take(pa.array(good)))
        predicted, failed = _isolate(model, df, classes is not None, errors, task, good)
        if failed.size:
            keep = np.ones(len(good), dtype=bool)
            keep[failed] = False
            df, good = df.iloc[np.flatnonzero(keep)], good[keep]
            predicted = _call(model, df, classes is not None) if len(good) else None
    if classes is not None:
        proba = np.full((n, len(classes)), np.nan)
        if predicted is not None:
            proba[good] = predicted
        valid = ~np.isnan(proba).any(axis=1) if classes else np.zeros(n, dtype=bool)
        codes = np.argmax(np.nan_to_num(proba, nan=-1.0), axis=1) if classes else np.zeros(n, dtype=np.int64)
        prediction = pc.take(pa.array(classes), pa.array(codes, mask=~valid))
        return _Outputs(_typed(prediction, task.prediction_type),
                        [(f"proba_{c}", pa.array(proba[:, j], mask=np.isnan(proba[:, j])))
                         for j, c in enumerate(classes)])
    if predicted is None:
        return _Outputs(_typed(pa.nulls(n), task.prediction_type), [])
    values = np.asarray(predicted)
    if values.ndim > 1:  # one vector per record (projections, embeddings)
        vectors: list[Any] = [None] * n
        for j, g in enumerate(good):
            vectors[g] = values[j].tolist()
        return _Outputs(pa.array(vectors), [])
    if len(good) == n:
        return _Outputs(_typed(pa.array(values, from_pandas=True), task.prediction_type), [])
    full = np.empty(n, dtype=object)
    full[:] = None
    full[good] = values
    return _Outputs(_typed(pa.array(full, from_pandas=True), task.prediction_type), [])


def _typed(arr: pa.Array, type_name: str | None) -> pa.Array:
    """Predictions as the type the signature declares (so every chunk has the same schema)."""
    if type_name is None or not _convertible(type_name):
        return arr
    from loopml.data.catalog import _arrow_type

    typ = _arrow_type(type_name)
    if arr.type == typ:
        return arr
    try:
        return pc.cast(arr, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return arr


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


def _call(model: Model, frame: pd.DataFrame, classifier: bool) -> np.ndarray:
    return model.predict_proba(frame) if classifier else np.asarray(model.predict(frame))


def _isolate(model: Model, df: pd.DataFrame, classifier: bool, errors: list[dict[str, Any]],
             task: ChunkTask, rows: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Predict ``df``; if that fails, find the records the model fails on.

    Returns the predictions of the whole frame (None if it failed) and the
    positions in ``df`` of the failing records. After a failure a few single
    records are tried: if they all fail, the model (not the data) is broken
    and the chunk fails; otherwise halves are bisected down to single records.
    """
    def fails(frame: pd.DataFrame) -> str | None:
        try:
            _call(model, frame, classifier)
        except Exception as e:  # any failure of the recipe or the model on these records
            return _reason(e)
        return None

    n = len(df)
    try:
        return _call(model, df, classifier), np.array([], dtype=np.int64)
    except Exception as e:  # isolate the records below
        first = _reason(e)
    probes = np.unique(np.linspace(0, n - 1, min(PROBES, n)).astype(np.int64))
    reasons = [fails(df.iloc[[int(i)]]) for i in probes]
    if n > len(probes) and all(r is not None for r in reasons):
        raise ModelError(
            f"the model fails on every record tried in chunk {task.chunk} of {task.input_name} "
            f"(records {task.row_offset}..{task.row_offset + task_rows(task, rows)}): {reasons[0]}"
        )
    found: dict[int, str] = {}
    todo = [(0, n, first)]
    while todo:
        lo, hi, reason = todo.pop()
        if hi - lo == 1:
            found[lo] = reason
            continue
        mid = (lo + hi) // 2
        for a, b in ((mid, hi), (lo, mid)):
            r = fails(df.iloc[a:b])
            if r is not None:
                todo.append((a, b, r))
    for i, reason in found.items():
        errors.append({"row": task.row_offset + int(rows[i]), "reason": reason})
    return None, np.array(sorted(found), dtype=np.int64)


def task_rows(task: ChunkTask, rows: np.ndarray) -> int:
    """The last record number of the chunk (relative to its offset)."""
    return int(rows[-1]) if len(rows) else 0


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]


def _output(table: pa.Table, outputs: _Outputs, task: ChunkTask) -> pa.Table:
    """The output records: prediction (+ probabilities), after the input if joined, then filtered."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    names: list[str] = []
    if task.join_input:
        arrays += list(table.columns)
        names += list(table.column_names)
    arrays.append(outputs.prediction)
    names.append("prediction")
    for name, arr in outputs.proba:
        arrays.append(arr)
        names.append(name)
    out = pa.Table.from_arrays(arrays, names=names)
    if task.output_columns is not None:
        out = out.select(list(task.output_columns))
    return out


# -- encoding and writing ----------------------------------------------------------------------------------
def encode(table: pa.Table, fmt: str, *, header: bool) -> bytes:
    """Serialise output records: CSV (Arrow's writer), JSON lines, or an Arrow IPC part (for Parquet)."""
    if fmt == "csv":
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        table = _flat(table)
        if table.num_columns == 0:
            return b""
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=header))
        return buf.getvalue()
    if fmt == "jsonl":
        return _jsonl(table)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue())


def _flat(table: pa.Table) -> pa.Table:
    """Nested columns (lists, structs) as JSON text, which CSV can hold."""
    import orjson

    for i, f in enumerate(table.schema):
        if pa.types.is_nested(f.type):
            text = [None if v is None else orjson.dumps(v, default=str).decode() for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(text, pa.string()))
    return table


def _jsonl(table: pa.Table) -> bytes:
    import orjson

    if table.num_rows == 0:
        return b""
    names = table.column_names
    columns = [_pylist(table.column(i)) for i in range(table.num_columns)]
    dumps = orjson.dumps
    opt = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NAIVE_UTC
    return b"".join(dumps(dict(zip(names, row, strict=True)), default=str, option=opt)
                    for row in zip(*columns, strict=True))


def _pylist(col: pa.ChunkedArray) -> list[Any]:
    t = col.type
    if (pa.types.is_floating(t) or pa.types.is_integer(t)) and col.null_count == 0:
        return list(col.to_numpy().tolist())
    if pa.types.is_floating(t):
        arr = col.to_numpy()
        out = arr.tolist()
        return [None if v != v else v for v in out]
    return list(col.to_pylist())


def write_atomic(uri: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    """Write ``data`` to ``uri`` on any fsspec filesystem: a temporary name, then a rename."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    parent = path.rsplit("/", 1)[0]
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


__all__ = ["CRASH_ENV", "ChunkResult", "ChunkTask", "ModelSource", "encode", "load_model", "run_chunk",
           "write_atomic"]
