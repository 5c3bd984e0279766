"""SQL sources: a table or a query of any database SQLAlchemy can reach, streamed in chunks.

Rows are fetched with a server-side cursor where the driver has one
(PostgreSQL) and turned into Arrow record batches of ``chunk_rows`` rows, with
column types taken from the database where it knows them, so a column that is
NULL in the first chunk keeps its real type.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, CursorResult

from loopml.errors import InvalidInput, SourceError

#: PostgreSQL type OIDs -> Arrow types, for query results whose column types SQLAlchemy does not know
_PG_OIDS: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 700: pa.float64(),
    701: pa.float64(), 1700: pa.float64(), 19: pa.string(), 25: pa.string(), 1042: pa.string(),
    1043: pa.string(), 1082: pa.date32(), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
}
#: ``:name`` in the user's query is SQL text, not a SQLAlchemy bind parameter
_COLON = re.compile(r"(?<![:\w\\]):(?=\w)")


@dataclass
class SqlSource:
    """Read a table or the result of a query from a SQL database.

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``postgresql+psycopg://user:pw@host/db`` or
        ``sqlite:///shop.db``; the password never appears in descriptions or messages.
    table
        Table (or view) name, optionally schema-qualified: ``public.orders``.
    query
        A ``SELECT`` statement (run as ``SELECT * FROM (<query>) AS q``).
        Give exactly one of ``table`` and ``query``.
    chunk_rows
        Rows fetched per record batch (bounds memory).

    Examples
    --------
    >>> import sqlite3, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "shop.db")
    >>> with sqlite3.connect(path) as c:
    ...     _ = c.execute("CREATE TABLE orders (id INTEGER, amount FLOAT)")
    ...     _ = c.execute("INSERT INTO orders VALUES (1, 9.5), (2, NULL)")
    >>> src = SqlSource(f"sqlite:///{path}", table="orders")
    >>> src.set_watermark("id", 1)
    >>> [b.to_pylist() for b in src.batches()]
    [[{'id': 2, 'amount': None}]]
    """

    url: str
    table: str | None = None
    query: str | None = None
    chunk_rows: int = 65_536
    kind: str = "sql"

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise InvalidInput("give exactly one of --table and --query for a SQL source")
        if self.table is not None and not self.table.strip():
            raise InvalidInput("--table must name a table, got an empty string")
        if self.query is not None and not self.query.strip().rstrip(";").strip():
            raise InvalidInput("--query must be a SELECT statement, got an empty string")
        if self.chunk_rows < 1:
            raise InvalidInput(f"chunk_rows must be a positive number, got {self.chunk_rows}")
        try:
            self._url: URL = sa.make_url(self.url)
        except sa_exc.ArgumentError as e:
            raise InvalidInput(
                f"{_mask_text(self.url)!r} is not a SQLAlchemy database URL; use e.g. "
                "postgresql+psycopg://user@host/db or sqlite:///path/to/file.db"
            ) from e
        try:
            self._url.get_dialect().import_dbapi()
        except (sa_exc.NoSuchModuleError, ImportError) as e:
            raise InvalidInput(
                f"no driver for {self._url.drivername!r} in {self._masked()}: {self._safe(str(e))}; "
                "install the database driver or name an installed one (e.g. postgresql+psycopg://)"
            ) from e
        self._watermark: tuple[str, Any] | None = None

    def __repr__(self) -> str:
        what = f"table={self.table!r}" if self.table is not None else f"query={self.query!r}"
        return f"SqlSource({self._masked()!r}, {what}, chunk_rows={self.chunk_rows})"

    def describe(self) -> dict[str, Any]:
        """JSON description; the password in the URL is masked."""
        d: dict[str, Any] = {"kind": self.kind, "uri": self._masked()}
        if self.table is not None:
            d["table"] = self.table
        else:
            d["query"] = self.query
        return d

    def set_watermark(self, column: str, value: Any) -> None:
        """Make the next :meth:`batches` select only rows with ``column > value``, in that order."""
        self._watermark = (column, value)

    # -- reading --------------------------------------------------------------------
    def batches(self) -> Generator[pa.RecordBatch, None, None]:
        """Stream the rows as record batches of at most ``chunk_rows`` rows."""
        engine = self._engine()
        try:
            with self._connect(engine) as conn:
                stmt, types = self._statement(conn)
                conn.execution_options(stream_results=True, yield_per=self.chunk_rows)
                try:
                    with conn.execute(stmt) as result:  # closes the server-side cursor early too
                        names = list(result.keys())
                        _check_unique(names)
                        schema = _schema(names, types, result, engine.dialect.name)
                        empty = True
                        for rows in result.partitions():
                            empty = False
                            yield _to_batch(rows, names, schema)
                        if empty:  # still tell the writer the columns and their types
                            yield _to_batch([], names, schema)
                except sa_exc.DBAPIError as e:
                    raise self._query_error(e) from e
        finally:
            engine.dispose()

    def _engine(self) -> sa.Engine:
        url, args = self._url, {}
        if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
            args["connect_timeout"] = 5
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
                and not database.startswith("file:") and not os.path.exists(database):
            # sqlite3 would silently create an empty database file
            raise SourceError(f"SQLite database file {database!r} does not exist; check the path in the URL")
        return sa.create_engine(url, connect_args=args, poolclass=sa.NullPool)

    def _connect(self, engine: sa.Engine) -> Connection:
        try:
            return engine.connect()
        except sa_exc.DBAPIError as e:
            raise SourceError(
                f"cannot connect to {self._masked()}: {self._first_line(e)}; check the host, port, "
                "database name and credentials, and that the server is running"
            ) from e

    def _statement(self, conn: Connection) -> tuple[sa.Select[Any], list[sa.types.TypeEngine[Any]] | None]:
        """The SELECT to run and, for a table, its declared column types."""
        if self.table is not None:
            table = self._reflect(conn)
            stmt: sa.Select[Any] = sa.select(table)
            if self._watermark is not None:
                c = table.c[self._watermark_column(list(table.c.keys()))]
                stmt = stmt.where(c > sa.bindparam("_wm", self._watermark[1], type_=c.type)).order_by(c)
            return stmt, [c.type for c in table.columns]
        text = _COLON.sub(r"\\:", (self.query or "").strip().rstrip(";").rstrip())
        sub = sa.text(text).columns().subquery("q")
        stmt = sa.select(sa.literal_column("*")).select_from(sub)
        if self._watermark is not None:
            try:
                names = list(conn.execute(stmt.limit(0)).keys())
            except sa_exc.DBAPIError as e:
                raise self._query_error(e) from e
            wm: sa.ColumnClause[Any] = sa.column(self._watermark_column(names))
            stmt = stmt.where(wm > sa.bindparam("_wm", self._watermark[1])).order_by(wm)
        return stmt, None

    def _reflect(self, conn: Connection) -> sa.Table:
        assert self.table is not None
        schema, _, name = self.table.strip().rpartition(".")
        try:
            return sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema or None)
        except sa_exc.NoSuchTableError as e:
            insp = sa.inspect(conn)
            try:
                found = sorted(insp.get_table_names(schema=schema or None)
                               + insp.get_view_names(schema=schema or None))
            except sa_exc.SQLAlchemyError:
                found = []
            where = f"schema {schema!r} of " if schema else ""
            have = (f"tables there include {', '.join(found[:10])}{' ...' if len(found) > 10 else ''}"
                    if found else "it has no tables")
            raise SourceError(
                f"table {self.table!r} not found in {where}{self._masked()}; {have}; check the --table name"
            ) from e
        except sa_exc.DBAPIError as e:
            raise self._query_error(e) from e

    def _watermark_column(self, names: Sequence[str]) -> str:
        assert self._watermark is not None
        column = self._watermark[0]
        if column not in names:
            what = f"table {self.table!r}" if self.table is not None else "the query result"
            raise InvalidInput(
                f"--incremental-by column {column!r} is not in {what}; columns are {list(names)}"
            )
        return column

    # -- messages -------------------------------------------------------------------
    def _masked(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def _safe(self, text: str) -> str:
        pw = self._url.password
        return text.replace(str(pw), "***") if pw else text

    def _first_line(self, e: sa_exc.DBAPIError) -> str:
        lines = [ln.strip() for ln in str(e.orig or e).splitlines() if ln.strip()]
        return self._safe(lines[0] if lines else type(e.orig).__name__)

    def _query_error(self, e: sa_exc.DBAPIError) -> SourceError:
        what = f"reading table {self.table!r}" if self.table is not None else "the query"
        fix = "fix the SQL of --query" if self.query is not None else "check the table and your permissions"
        return SourceError(f"{what} failed on {self._masked()}: {self._first_line(e)}; {fix}")


def _mask_text(url: str) -> str:
    """Hide a ``user:password@`` in text that did not parse as a URL."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", url)


def _check_unique(names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"the query returns the column(s) {dupes} more than once; give them distinct aliases")


def _arrow_type_of(t: sa.types.TypeEngine[Any]) -> pa.DataType | None:
    """The Arrow type for a SQLAlchemy column type, or None to infer it from the values."""
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.Integer):
        return pa.int64()
    if isinstance(t, sa.Numeric):  # Float is a Numeric; decimals become float64
        return pa.float64()
    if isinstance(t, sa.String):
        return pa.string()
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if t.timezone else None)
    if isinstance(t, sa.Date):
        return pa.date32()
    return None


def _schema(
    names: list[str], types: list[sa.types.TypeEngine[Any]] | None, result: CursorResult[Any], dialect: str
) -> list[pa.DataType | None]:
    out: list[pa.DataType | None] = [_arrow_type_of(t) for t in types] if types else [None] * len(names)
    description = getattr(result.cursor, "description", None) if dialect == "postgresql" else None
    if description and len(description) == len(names):
        out = [t if t is not None else _PG_OIDS.get(d[1]) for t, d in zip(out, description, strict=True)]
    return out


def _to_batch(rows: Sequence[Sequence[Any]], names: list[str], types: list[pa.DataType | None]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [_to_array(list(c), t) for c, t in zip(columns, types, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _to_array(values: list[Any], typ: pa.DataType | None) -> pa.Array:
    if typ is not None:
        if not values:
            return pa.array([], type=typ)
        try:
            return pa.array(values, type=typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            pass  # e.g. decimals for float64, or SQLite's weak typing: infer, then cast
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        arr = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    if typ is not None and arr.type != typ:
        try:
            return arr.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return arr
    return arr
