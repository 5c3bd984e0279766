"""Ingestion: read a source, validate on arrival, write a new dataset version.

Rows stream from the source through the expectations (bad rows go to the
version's quarantine with the rule they broke) into a :class:`DatasetWriter`;
the version appears in the catalog only when everything succeeded.

Incremental ingestion (``incremental_by=COL``) keeps a watermark (the largest
``COL`` ingested so far) in the dataset's state; the next run reads only rows
with a larger ``COL`` and creates a version that holds the previous version's
parts plus one new appended partition (the union, without copying old data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.catalog import Catalog, DatasetVersionInfo, DatasetWriter, _arrow_type, _jsonable
from loopml.data.sources.base import IncrementalSource, Source
from loopml.data.sources.files import FileSource
from loopml.errors import InvalidInput, ValidationFailed
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.data.validation import Expectations
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


def ingest(
    ws: Workspace,
    source: Source,
    name: str,
    *,
    expectations: Expectations | str | Path | None = None,
    fail_on_invalid: bool = False,
    incremental_by: str | None = None,
    partition_by: Sequence[str] = (),
    description: str = "",
    progress: ProgressFn | None = None,
) -> DatasetVersionInfo:
    """Ingest ``source`` into a new version of dataset ``name``.

    Parameters
    ----------
    ws
        The workspace.
    source
        A :class:`~loopml.data.sources.base.Source` (see :func:`loopml.data.sources.open_source`).
    name
        Dataset name.
    expectations
        An :class:`~loopml.data.validation.Expectations` or the path of its YAML file.
    fail_on_invalid
        Reject the whole batch if any row breaks an expectation (default:
        quarantine the bad rows and ingest the good ones).
    incremental_by
        Column whose watermark selects only new rows; the new version appends
        a partition to the previous one.
    partition_by
        Columns that split the rows into partitions (default: ingestion date).
    progress
        Called with the number of rows read so far.

    Returns
    -------
    DatasetVersionInfo
        The new version, or the existing latest one (``created=False``) when
        the content is identical.
    """
    if isinstance(expectations, (str, Path)):
        from loopml.data.validation import Expectations

        expectations = Expectations.from_file(expectations)
    validator = expectations.validator() if expectations is not None else None
    if expectations is not None and isinstance(source, FileSource):
        # Let the validator convert typed columns, so one bad value deep in a
        # CSV is quarantined instead of failing the whole read.
        source.text_columns = tuple(c.name for c in expectations.columns if c.type is not None)
    catalog = Catalog(ws)
    description_src = source.describe()

    watermark: pa.Scalar | None = None
    if incremental_by:
        description_src["incremental_by"] = incremental_by
        saved = catalog.state(name).get("watermark")
        if saved and saved.get("column") == incremental_by:
            watermark = _decode_watermark(saved)
            if isinstance(source, IncrementalSource):
                source.set_watermark(incremental_by, watermark.as_py())
    new_max: pa.Scalar | None = None
    read = 0
    with DatasetWriter(
        ws, name, source=description_src, partition_by=partition_by,
        append=bool(incremental_by), description=description,
    ) as writer:
        for batch in _batches(source):
            if incremental_by:
                batch = _after_watermark(batch, incremental_by, watermark)
                if batch.num_rows == 0:
                    continue
            if validator is not None:
                good, bad = validator.check(batch, first_row=read)
            else:
                good, bad = batch, None
            read += batch.num_rows
            if incremental_by and good.num_rows:
                new_max = _max(new_max, pc.max(good.column(incremental_by)))
            writer.write(good)
            if bad is not None and bad.num_rows:
                writer.quarantine(bad)
            if progress is not None:
                progress(read)
        summary: dict[str, Any] = {"rows_read": read, "rows_ingested": writer.rows,
                                   "rows_quarantined": writer.quarantine_count}
        if validator is not None:
            summary.update(validator.finish(writer.rows))
            if fail_on_invalid and writer.quarantine_count:
                raise ValidationFailed(
                    f"{writer.quarantine_count} of {read} rows break the expectations "
                    f"({_rule_counts(summary)}); nothing was ingested (drop --fail-on-invalid to "
                    "quarantine them instead)"
                )
        state: dict[str, Any] = {}
        if incremental_by and new_max is not None and new_max.is_valid:
            state["watermark"] = {
                "column": incremental_by, "value": _jsonable(new_max.as_py()), "type": str(new_max.type)
            }
        src_ref = EntityRef("source", str(description_src.get("uri") or description_src.get("kind")))
        info = writer.commit(validation=summary, state=state, lineage=[(src_ref, "ingested_from")])
    return info


def _batches(source: Source) -> Iterator[pa.RecordBatch]:
    for b in source.batches():
        if isinstance(b, pa.Table):  # be lenient with sources that yield tables
            yield from b.to_batches()
        else:
            yield b


def _rule_counts(summary: dict[str, Any]) -> str:
    rules = summary.get("failures", {})
    return ", ".join(f"{k}: {v}" for k, v in list(rules.items())[:5]) or "see the summary"


def _after_watermark(batch: pa.RecordBatch, column: str, watermark: pa.Scalar | None) -> pa.RecordBatch:
    if column not in batch.schema.names:
        raise InvalidInput(
            f"--incremental-by column {column!r} is not in the data; columns are {batch.schema.names}"
        )
    col = batch.column(column)
    if watermark is None:
        return batch.filter(pc.is_valid(col))
    try:
        wm = watermark.cast(col.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InvalidInput(
            f"the saved watermark {watermark} does not fit column {column!r} of type {col.type}"
        ) from e
    return batch.filter(pc.fill_null(pc.greater(col, wm), False))


def _max(a: pa.Scalar | None, b: pa.Scalar) -> pa.Scalar:
    if a is None or not a.is_valid:
        return b
    if not b.is_valid:
        return a
    return b if pc.greater(b, a.cast(b.type)).as_py() else a


def _decode_watermark(saved: dict[str, Any]) -> pa.Scalar:
    typ = _arrow_type(saved["type"])
    value = saved["value"]
    if pa.types.is_timestamp(typ) and isinstance(value, str):
        return pa.scalar(datetime.fromisoformat(value), type=typ)
    if pa.types.is_date(typ) and isinstance(value, str):
        return pa.scalar(date.fromisoformat(value), type=typ)
    return pa.scalar(value).cast(typ)
