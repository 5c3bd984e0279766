"""What every data source provides: a description and a stream of Arrow record batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Source(Protocol):
    """A readable data source.

    ``describe()`` returns a JSON-ready description stored with the dataset
    version (never secrets: no passwords, tokens or auth headers).
    ``batches()`` streams the content as Arrow record batches with bounded
    memory and raises :class:`loopml.errors.SourceError` (or ``InvalidInput``)
    with a one-line message that says what to fix.
    """

    kind: str

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the source (no secrets)."""
        ...

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream the content."""
        ...


@runtime_checkable
class IncrementalSource(Source, Protocol):
    """A source that can fetch only rows whose ``column`` is greater than a watermark.

    The ingest layer also filters rows itself, so pushing the filter down is an
    optimisation, never needed for correctness.
    """

    def set_watermark(self, column: str, value: Any) -> None:
        """Restrict the next :meth:`batches` to rows with ``column > value``."""
        ...
