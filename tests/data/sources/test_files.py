from __future__ import annotations

import gzip
import json
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml import InvalidInput, NotFound, SourceError, Workspace
from loopml.data import Catalog
from loopml.data.ingest import ingest
from loopml.data.sources import FileSource, files, open_source


@pytest.fixture
def frame() -> pd.DataFrame:
    r = np.random.default_rng(0)
    n = 500
    return pd.DataFrame({
        "id": np.arange(n),
        "x": r.normal(size=n).round(6),
        "cat": r.choice(["a", "b", "c"], n),
        "when": pd.date_range("2025-01-01", periods=n, freq="h"),
    })


def _read(src: FileSource) -> pa.Table:
    return pa.Table.from_batches(list(src.batches()))


def _same(table: pa.Table, frame: pd.DataFrame) -> None:
    got = table.to_pandas()
    pd.testing.assert_series_equal(got["id"], frame["id"], check_dtype=False)
    np.testing.assert_allclose(got["x"], frame["x"])
    assert got["cat"].tolist() == frame["cat"].tolist()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "json", "jsonl", "csv.gz"])
def test_each_format_round_trips(tmp_path: Path, frame: pd.DataFrame, fmt: str) -> None:
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "csv.gz":
        with gzip.open(path, "wt") as f:
            frame.to_csv(f, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "json":
        path.write_text(frame.assign(when=frame["when"].astype(str)).to_json(orient="records"))
    else:
        path.write_text(frame.assign(when=frame["when"].astype(str)).to_json(orient="records", lines=True))
    src = open_source(str(path))
    assert isinstance(src, FileSource)
    _same(_read(src), frame)
    assert src.describe()["format"] == fmt.split(".")[0]


def test_json_object_with_one_records_list(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"meta": {"n": 2}, "items": [{"a": 1}, {"a": 2}]}))
    assert _read(FileSource(str(path))).column("a").to_pylist() == [1, 2]


def test_csv_options(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_bytes("1;Zürich\n2;Genève\n".encode("latin-1"))
    src = FileSource(str(path), format="csv", delimiter=";", header=False, encoding="latin-1")
    t = _read(src)
    assert t.column_names == ["f0", "f1"]
    assert t.column("f1").to_pylist() == ["Zürich", "Genève"]


def test_folder_and_glob_read_every_file_in_order(tmp_path: Path, frame: pd.DataFrame) -> None:
    d = tmp_path / "parts"
    d.mkdir()
    for i in range(3):
        frame.iloc[i * 100 : (i + 1) * 100].to_csv(d / f"part-{i}.csv", index=False)
    (d / ".hidden.csv").write_text("junk\n")
    folder = FileSource(str(d))
    assert len(folder.files()) == 3
    _same(_read(folder), frame.iloc[:300])
    globbed = FileSource(str(d / "part-[01].csv"))
    assert _read(globbed).num_rows == 200


def test_later_csv_files_use_first_files_types(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / "a.csv").write_text("v\n1.5\n2.5\n")
    (d / "b.csv").write_text("v\n3\n4\n")
    t = _read(FileSource(str(d)))
    assert t.schema.field("v").type == pa.float64()


def test_fsspec_urls(frame: pd.DataFrame) -> None:
    with fsspec.open("memory://bucket/data.parquet", "wb") as f:
        frame.to_parquet(f, index=False)
    _same(_read(FileSource("memory://bucket/data.parquet")), frame)


def test_large_csv_streams_in_many_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    r = np.random.default_rng(1)
    n = 20_000
    df = pd.DataFrame({"a": np.arange(n), "b": r.normal(size=n)})
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    monkeypatch.setattr(files, "BLOCK_SIZE", 16 << 10)
    batches = list(FileSource(str(path)).batches())
    assert len(batches) > 10
    assert sum(b.num_rows for b in batches) == n
    small = ingest(ws, FileSource(str(path)), "big")
    # Same rows read in one big block give byte-identical Parquet: a re-ingest is deduplicated.
    monkeypatch.setattr(files, "BLOCK_SIZE", 64 << 20)
    again = ingest(ws, FileSource(str(path)), "big")
    assert not again.created and again.content_hash == small.content_hash
    assert Catalog(ws).read_arrow("big").num_rows == n


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="file not found"):
        FileSource(str(tmp_path / "nope.csv")).files()
    with pytest.raises(NotFound, match="no files match"):
        FileSource(str(tmp_path / "*.csv")).files()
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="no data files"):
        FileSource(str(tmp_path / "empty")).files()


def test_unreadable_csv_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(SourceError, match=r"cannot read CSV file .*bad.csv.*Expected 2 columns"):
        _read(FileSource(str(path)))


def test_invalid_utf8_suggests_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("a\nZ\xfcrich\n".encode("latin-1"))
    with pytest.raises(SourceError, match="--encoding"):
        _read(FileSource(str(path)))


def test_bad_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(SourceError, match="jsonl"):
        _read(FileSource(str(p)))
    p.write_text("[1, 2, 3]")
    with pytest.raises(SourceError, match="array of objects"):
        _read(FileSource(str(p)))


def test_unknown_format(tmp_path: Path) -> None:
    p = tmp_path / "data.bin"
    p.write_text("x")
    with pytest.raises(InvalidInput, match="--format"):
        FileSource(str(p)).describe()
    with pytest.raises(InvalidInput, match="unknown format 'xls'"):
        FileSource(str(p), format="xls")
    with pytest.raises(InvalidInput, match="one character"):
        FileSource(str(p), delimiter=";;")


def test_credentials_are_masked() -> None:
    from loopml.data.sources.files import _strip_credentials

    assert "pw" not in _strip_credentials("ftp://user:pw@host/data.csv")


def test_type_change_after_the_inference_block_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "BLOCK_SIZE", 8 << 10)
    monkeypatch.setattr(files, "PARSE_BLOCK", 2 << 10)
    path = tmp_path / "late.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(5000)) + "x,1\n")
    with pytest.raises(SourceError, match="cannot read CSV file"):
        list(FileSource(str(path)).batches())
    path.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(5000)))
    batches = list(FileSource(str(path)).batches())
    assert sum(b.num_rows for b in batches) == 5000 and len(batches) > 1
    assert pa.Table.from_batches(batches).column("a").to_pylist() == list(range(5000))
