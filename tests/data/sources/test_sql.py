"""SqlSource: tables and queries from SQLite and a real PostgreSQL, streamed, typed, incremental."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from loopml import Workspace
from loopml.data.catalog import Catalog
from loopml.data.ingest import ingest
from loopml.data.sources import open_source
from loopml.data.sources.sql import SqlSource
from loopml.errors import InvalidInput, SourceError

T0 = datetime(2024, 1, 1)
SCHEMA = pa.schema([
    ("id", pa.int64()), ("customer", pa.string()), ("amount", pa.float64()),
    ("created_at", pa.timestamp("us")), ("flag", pa.bool_()),
])


def _orders(name: str = "orders") -> sa.Table:
    return sa.Table(
        name, sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer", sa.String(20)),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("created_at", sa.DateTime),
        sa.Column("flag", sa.Boolean),
    )


ORDERS = _orders()


def _row(i: int) -> dict[str, Any]:
    # amount is NULL in the first 10 rows, so a 7-row first chunk has no amount at all
    amount = None if i <= 10 or i % 9 == 0 else Decimal(i) * Decimal("1.25")
    return {"id": i, "customer": f"c{i % 7}", "amount": amount,
            "created_at": T0 + timedelta(hours=i), "flag": i % 3 == 0}


def _seed(url: str, start: int, stop: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        ORDERS.create(c, checkfirst=True)
        if stop > start:
            c.execute(ORDERS.insert(), [_row(i) for i in range(start, stop)])
    engine.dispose()


def _expected(start: int, stop: int) -> pd.DataFrame:
    rows = [_row(i) for i in range(start, stop)]
    for r in rows:
        r["amount"] = None if r["amount"] is None else float(r["amount"])
    return pa.Table.from_pylist(rows, schema=SCHEMA).to_pandas()


def _read(ws: Workspace, ref: str) -> pd.DataFrame:
    return Catalog(ws).read_pandas(ref).sort_values("id").reset_index(drop=True)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a source database holding orders 1..100."""
    url = f"sqlite:///{tmp_path / 'shop.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    _seed(url, 1, 101)
    yield url


# -- reading ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [65_536, 7])
def test_table_ingest_round_trips_rows_and_types(ws: Workspace, db: str, chunk_rows: int) -> None:
    src = open_source(db, table="orders", chunk_rows=chunk_rows)
    assert isinstance(src, SqlSource)
    info = ingest(ws, src, "orders")
    assert info.row_count == 100
    assert Catalog(ws).read_arrow("orders").schema == SCHEMA
    pd.testing.assert_frame_equal(_read(ws, "orders"), _expected(1, 101))
    assert info.source == {"kind": "sql", "uri": db, "table": "orders"}


def test_batches_are_chunked_and_typed_even_when_first_chunk_is_null(db: str) -> None:
    batches = list(SqlSource(db, table="orders", chunk_rows=7).batches())
    assert [b.num_rows for b in batches] == [7] * 14 + [2]
    assert all(b.schema == SCHEMA for b in batches)
    assert batches[0].column("amount").null_count == 7


def test_schema_qualified_table(ws: Workspace, db: str) -> None:
    schema = "main" if db.startswith("sqlite") else "public"
    info = ingest(ws, SqlSource(db, table=f"{schema}.orders"), "orders")
    assert info.row_count == 100


def test_query_ingest(ws: Workspace, db: str) -> None:
    # '%' and ':name' in the user's SQL are plain text, not parameters
    query = "SELECT id, customer, amount FROM orders WHERE customer LIKE 'c1%' AND customer <> ':x' ORDER BY id;"
    info = ingest(ws, SqlSource(db, query=query, chunk_rows=7), "c1")
    want = _expected(1, 101)
    want = want[want.customer == "c1"][["id", "customer", "amount"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(_read(ws, "c1"), want)
    assert info.source["query"] == query


def test_query_types_on_postgres_come_from_the_database(pg_url: str) -> None:
    _seed(pg_url, 1, 30)
    query = "SELECT id, amount, created_at, created_at AT TIME ZONE 'UTC' AS ts_utc, flag FROM orders"
    batches = list(SqlSource(pg_url, query=query, chunk_rows=7).batches())
    assert batches[0].column("amount").null_count == 7
    assert batches[0].schema == pa.schema([
        ("id", pa.int64()), ("amount", pa.float64()), ("created_at", pa.timestamp("us")),
        ("ts_utc", pa.timestamp("us", tz="UTC")), ("flag", pa.bool_()),
    ])


def test_query_types_on_sqlite_are_inferred(ws: Workspace, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    _seed(url, 1, 101)
    info = ingest(ws, SqlSource(url, query="SELECT id, amount, flag FROM orders", chunk_rows=7), "q")
    # amount is NULL in the first chunks but still ends up float64 (the writer unifies the types)
    assert {c["name"]: c["type"] for c in info.schema} == {"id": "int64", "amount": "double", "flag": "int64"}


def test_empty_table_keeps_its_schema(ws: Workspace, db: str) -> None:
    engine = sa.create_engine(db)
    with engine.begin() as c:
        _orders("empty_orders").create(c)
    engine.dispose()
    info = ingest(ws, SqlSource(db, table="empty_orders"), "empty")
    assert info.row_count == 0
    assert Catalog(ws).read_arrow("empty").schema == SCHEMA


def test_postgres_metadata_workspace_ingests_from_sqlite(any_ws: Workspace, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    _seed(url, 1, 101)
    ingest(any_ws, SqlSource(url, table="orders", chunk_rows=7), "orders")
    pd.testing.assert_frame_equal(_read(any_ws, "orders"), _expected(1, 101))


# -- incremental --------------------------------------------------------------------


@pytest.mark.parametrize(("column", "first", "second"), [
    ("id", 100, 130), ("created_at", (T0 + timedelta(hours=100)).isoformat(),
                       (T0 + timedelta(hours=130)).isoformat()),
])
def test_incremental_ingest_appends_a_partition(
    ws: Workspace, db: str, column: str, first: Any, second: Any
) -> None:
    cat = Catalog(ws)
    v1 = ingest(ws, SqlSource(db, table="orders"), "orders", incremental_by=column)
    assert (v1.version, v1.row_count) == (1, 100)
    assert cat.state("orders")["watermark"]["value"] == first

    _seed(db, 101, 131)
    v2 = ingest(ws, SqlSource(db, table="orders", chunk_rows=7), "orders", incremental_by=column)
    assert (v2.version, v2.row_count) == (2, 130)
    assert len(v2.parts) == len(v1.parts) + 1
    assert v2.parts[: len(v1.parts)] == v1.parts  # old parts are reused, not copied
    assert v2.validation["rows_read"] == 30
    assert cat.state("orders")["watermark"]["value"] == second
    pd.testing.assert_frame_equal(_read(ws, "orders:2"), _expected(1, 131))

    v3 = ingest(ws, SqlSource(db, table="orders"), "orders", incremental_by=column)
    assert (v3.version, v3.created) == (2, False)
    assert len(cat.versions("orders")) == 2
    assert cat.state("orders")["watermark"]["value"] == second


def test_incremental_query_ingest(ws: Workspace, db: str) -> None:
    query = "SELECT id, customer FROM orders WHERE flag"
    ingest(ws, SqlSource(db, query=query), "flagged", incremental_by="id")
    _seed(db, 101, 131)
    v2 = ingest(ws, SqlSource(db, query=query), "flagged", incremental_by="id")
    assert v2.validation["rows_read"] == 10
    assert _read(ws, "flagged")["id"].tolist() == list(range(3, 131, 3))


@pytest.mark.parametrize("mode", ["table", "query"])
def test_watermark_is_pushed_down(db: str, mode: str) -> None:
    src = SqlSource(db, table="orders") if mode == "table" else SqlSource(db, query="SELECT * FROM orders")
    src.set_watermark("id", 95)
    ids = [i for b in src.batches() for i in b.column("id").to_pylist()]
    assert ids == [96, 97, 98, 99, 100]

    src.set_watermark("created_at", T0 + timedelta(hours=97))
    ids = [i for b in src.batches() for i in b.column("id").to_pylist()]
    assert ids == [98, 99, 100]


@pytest.mark.parametrize("mode", ["table", "query"])
def test_unknown_watermark_column(ws: Workspace, db: str, mode: str) -> None:
    src = SqlSource(db, table="orders") if mode == "table" else SqlSource(db, query="SELECT * FROM orders")
    src.set_watermark("nope", 1)
    with pytest.raises(InvalidInput, match=r"'nope' is not in .*columns are \['id', 'customer'"):
        list(src.batches())


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, "exactly one of --table and --query"),
    ({"table": "orders", "query": "SELECT 1"}, "exactly one of --table and --query"),
    ({"table": " "}, "--table must name a table"),
    ({"table": "orders", "chunk_rows": 0}, "chunk_rows must be a positive number"),
])
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        SqlSource(f"sqlite:///{tmp_path / 'x.db'}", **kwargs)


@pytest.mark.parametrize(("url", "match"), [
    ("not a url at all", "is not a SQLAlchemy database URL"),
    ("nosuchdb://u:s3cr3t@host/db", "no driver for 'nosuchdb'"),
    ("mysql+pymysql://u:s3cr3t@host/db", r"no driver for 'mysql\+pymysql'.*install"),
])
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as e:
        SqlSource(url, table="orders")
    assert "s3cr3t" not in str(e.value)


def _fails(ws: Workspace, src: SqlSource, error: type[Exception], match: str) -> str:
    with pytest.raises(error, match=match) as e:
        ingest(ws, src, "orders")
    message = str(e.value)
    assert "\n" not in message
    assert Catalog(ws).list() == []
    return message


def test_cannot_connect(ws: Workspace) -> None:
    url = "postgresql+psycopg://u:s3cr3t@127.0.0.1:1/db"
    msg = _fails(ws, SqlSource(url, table="orders"), SourceError, r"cannot connect to postgresql\+psycopg://u:\*\*\*@")
    assert "s3cr3t" not in msg and "check the host, port" in msg


def test_missing_sqlite_file_is_not_created(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    _fails(ws, SqlSource(f"sqlite:///{path}", table="orders"), SourceError, "does not exist; check the path")
    assert not path.exists()


def test_table_not_found_lists_tables(ws: Workspace, db: str) -> None:
    msg = _fails(ws, SqlSource(db, table="ordres"), SourceError, "table 'ordres' not found")
    assert "tables there include orders" in msg


def test_query_syntax_error(ws: Workspace, db: str) -> None:
    msg = _fails(ws, SqlSource(db, query="SELEC * FROM orders"), SourceError, "the query failed on")
    assert "syntax error" in msg and "fix the SQL of --query" in msg


def test_query_on_missing_table(ws: Workspace, db: str) -> None:
    _fails(ws, SqlSource(db, query="SELECT * FROM no_such_table"), SourceError, "no_such_table")


def test_error_mid_stream_leaves_no_version(ws: Workspace, pg_url: str) -> None:
    _seed(pg_url, 1, 101)
    src = SqlSource(pg_url, query="SELECT id, 1 / (id - 50) AS x FROM orders ORDER BY id", chunk_rows=7)
    batches = src.batches()
    assert next(batches).num_rows == 7  # rows stream from a server-side cursor before the error
    batches.close()
    _fails(ws, src, SourceError, "division by zero")


def test_password_is_never_shown(ws: Workspace, pg_url: str) -> None:
    # the test server trusts local connections, so any password connects
    url = pg_url.replace("://loopml@", "://loopml:s3cr3t@")
    _seed(url, 1, 11)
    msg = _fails(ws, SqlSource(url, table="nope"), SourceError, "not found")
    assert "s3cr3t" not in msg and "***" in msg
    src = SqlSource(url, table="orders")
    assert "s3cr3t" not in repr(src)
    assert src.describe()["uri"] == url.replace("s3cr3t", "***")
    info = ingest(ws, src, "orders")
    assert "s3cr3t" not in str(info.source) and info.row_count == 10
