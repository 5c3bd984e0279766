from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from loopml import IntegrityError, InvalidInput, NotFound, Workspace
from loopml.data import Catalog, DatasetWriter, parse_ref
from loopml.store.events import DATASET_VERSION_CREATED


def _df(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": range(start, start + n), "v": [i * 0.5 for i in range(n)],
                         "day": ["2025-01-01" if i % 2 else "2025-01-02" for i in range(n)]})


def test_write_read_in_every_form(any_ws: Workspace) -> None:
    cat = Catalog(any_ws)
    info = cat.write("t", _df(10))
    assert (info.ref, info.row_count, info.columns) == ("t:1", 10, ["id", "v", "day"])
    assert cat.read_arrow("t").num_rows == 10
    assert cat.read_pandas("t:1")["id"].tolist() == list(range(10))
    rel = cat.duckdb("t")
    assert rel.aggregate("sum(id)").fetchall()[0] == (45,)
    assert info.stats["columns"]["v"] == {"nulls": 0, "min": 0.0, "max": 4.5, "mean": 2.25}


def test_versions_dedup_and_lookup(any_ws: Workspace) -> None:
    cat = Catalog(any_ws)
    v1 = cat.write("t", _df(5))
    same = cat.write("t", _df(5))
    assert not same.created and same.version == 1
    v2 = cat.write("t", _df(6))
    assert v2.version == 2 and v2.created
    assert [v.version for v in cat.versions("t")] == [1, 2]
    assert cat.get("t").version == 2
    assert cat.get("t:1").id == v1.id
    assert cat.get("t:latest").id == v2.id
    with pytest.raises(NotFound, match=r"no version 7 \(latest is 2\)"):
        cat.get("t:7")
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        cat.get("nope")
    [summary] = cat.list()
    assert (summary.name, summary.versions, summary.latest, summary.row_count) == ("t", 2, 2, 6)


@pytest.mark.parametrize("ref", ["bad name", "../x", "", "x:0", "x:abc", "-x"])
def test_bad_refs(ref: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ref(ref)


def test_partitions_are_recorded_and_queryable(ws: Workspace) -> None:
    cat = Catalog(ws)
    info = cat.write("p", _df(10), partition_by=["day"])
    assert info.partitions() == [{"day": "2025-01-01", "rows": 5}, {"day": "2025-01-02", "rows": 5}]
    only = cat.read_arrow("p", where={"day": "2025-01-01"})
    assert only.num_rows == 5 and set(only.column("day").to_pylist()) == {"2025-01-01"}
    assert cat.duckdb("p", where={"day": "2025-01-02"}).aggregate("count(*)").fetchall()[0] == (5,)
    default = cat.write("q", _df(3))
    assert list(default.partitions()[0]) == ["ingest_date", "rows"]
    with pytest.raises(InvalidInput, match="no partition key"):
        cat.read_arrow("p", where={"month": "x"})


def test_diff_reports_schema_and_rows(ws: Workspace) -> None:
    cat = Catalog(ws)
    cat.write("d", _df(4))
    cat.write("d", _df(6).drop(columns=["day"]).assign(extra=1, id=lambda d: d["id"].astype(float)))
    d = cat.diff("d:1", "d:2")
    assert d["added_columns"] == [{"name": "extra", "type": "int64"}]
    assert [c["name"] for c in d["removed_columns"]] == ["day"]
    assert d["type_changes"] == [{"name": "id", "from": "int64", "to": "double"}]
    assert (d["rows_from"], d["rows_to"], d["row_change"]) == (4, 6, 2)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export(ws: Workspace, tmp_path: Path, fmt: str) -> None:
    cat = Catalog(ws)
    cat.write("e", _df(7))
    out = tmp_path / "out" / f"e.{fmt}"
    cat.export("e", str(out))
    back = {"parquet": pd.read_parquet, "csv": pd.read_csv,
            "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt](out)
    assert back["id"].tolist() == list(range(7))
    assert not list(out.parent.glob("*.tmp-*"))
    with pytest.raises(InvalidInput, match="cannot export to 'xlsx'"):
        cat.export("e", str(tmp_path / "e.xlsx"))


def test_tampered_part_is_refused(ws: Workspace) -> None:
    cat = Catalog(ws)
    info = cat.write("x", _df(3))
    path = Path(ws.artifacts._path(info.parts[0].sha256))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        cat.read_arrow("x")
    with pytest.raises(IntegrityError):
        cat.duckdb("x")


def test_writer_abort_leaves_nothing(ws: Workspace) -> None:
    with pytest.raises(RuntimeError), DatasetWriter(ws, "a") as w:
        w.write(pa.table({"x": [1, 2]}))
        raise RuntimeError("source died")
    assert Catalog(ws).list() == []
    assert list((ws.home / "artifacts" / "tmp").glob("*")) == []


def test_schema_change_mid_stream_is_a_clear_error(ws: Workspace) -> None:
    with DatasetWriter(ws, "s") as w:
        w.row_group_size = 2
        w.write(pa.table({"x": [1, 2]}))
        with pytest.raises(InvalidInput, match="changes type"):
            w.write(pa.table({"x": ["a", "b"]}))
        with pytest.raises(InvalidInput, match="new column"):
            w.write(pa.table({"x": [3], "y": [1]}))


def test_all_null_first_rows_take_later_type(ws: Workspace) -> None:
    with DatasetWriter(ws, "n") as w:
        w.write(pa.table({"x": pa.nulls(3)}))
        w.write(pa.table({"x": [1.5]}))
        info = w.commit()
    assert info.schema[0]["type"] == "double"
    assert Catalog(ws).read_arrow("n").column("x").to_pylist() == [None, None, None, 1.5]


def test_events_and_lineage_for_each_version(ws: Workspace) -> None:
    cat = Catalog(ws)
    info = cat.write("ev", _df(2))
    [event] = ws.events.list(type=DATASET_VERSION_CREATED)
    assert event.entity == info.entity
    assert event.payload == {"dataset": "ev", "version": 1, "rows": 2, "quarantined": 0}


def test_empty_table_round_trips(ws: Workspace) -> None:
    cat = Catalog(ws)
    info = cat.write("empty", pa.table({"a": pa.array([], pa.int64())}))
    assert info.row_count == 0
    assert cat.read_arrow("empty").schema.names == ["a"]


def test_schema_matches_what_reads_back(ws: Workspace) -> None:
    t = pa.table({"ts": pa.array([0, 1], pa.timestamp("s")), "d": pa.array([0, 1], pa.date32())})
    info = Catalog(ws).write("ts", t)
    back = Catalog(ws).read_arrow(info)
    assert [c["type"] for c in info.schema] == [str(f.type) for f in back.schema]


def test_parquet_bytes_do_not_depend_on_input_batching(ws: Workspace) -> None:
    import numpy as np

    r = np.random.default_rng(3)
    n = 300_000
    t = pa.table({"s": pa.array([f"id-{v}" for v in r.integers(0, 10**9, n)]),
                  "x": r.normal(size=n), "k": r.integers(0, 5, n)})
    one = Catalog(ws).write("b1", t)
    with DatasetWriter(ws, "b2") as w:
        for off in range(0, n, 1000):
            w.write(t.slice(off, 1000))
        many = w.commit()
    assert [p.sha256 for p in one.parts] == [p.sha256 for p in many.parts]
