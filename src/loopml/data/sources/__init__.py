"""Data sources: files (any fsspec URL), SQL databases and HTTP JSON APIs."""

from __future__ import annotations

from typing import Any

from loopml.data.sources.base import IncrementalSource, Source
from loopml.data.sources.files import FORMATS, FileSource, _split_ext


def source_kind(uri: str, *, format: str | None = None, table: str | None = None,
                query: str | None = None) -> str:
    """Which source :func:`open_source` picks for these arguments: ``sql``, ``http`` or ``file``."""
    if table is not None or query is not None:
        return "sql"
    is_http = uri.startswith(("http://", "https://"))
    if format == "api" or (is_http and format is None and _split_ext(uri.split("?")[0])[0] is None):
        return "http"
    return "file"


def open_source(
    uri: str,
    *,
    format: str | None = None,
    table: str | None = None,
    query: str | None = None,
    **options: Any,
) -> Source:
    """Pick the source for ``uri``.

    - ``table`` or ``query`` given: a SQL database (``uri`` is a SQLAlchemy URL).
    - ``format="api"``, or an ``http(s)://`` URL without a data-file extension:
      a paginated JSON HTTP API (options as :class:`HttpSource`).
    - otherwise a file, folder or glob (options as :class:`FileSource`).
    """
    kind = source_kind(uri, format=format, table=table, query=query)
    if kind == "sql":
        from loopml.data.sources.sql import SqlSource

        return SqlSource(uri, table=table, query=query, **options)
    if kind == "http":
        from loopml.data.sources.http import HttpSource

        return HttpSource(uri, **options)
    return FileSource(uri, format=format, **options)


__all__ = ["FORMATS", "FileSource", "IncrementalSource", "Source", "open_source", "source_kind"]
