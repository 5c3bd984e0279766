from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import SourceError, Workspace
from loopml.data import Catalog
from loopml.data.ingest import ingest
from loopml.data.sources import FileSource
from loopml.store import EntityRef


def _csv(path: Path, n: int, seed: int) -> Path:
    r = np.random.default_rng(seed)
    pd.DataFrame({"id": np.arange(n) + seed * 1_000_000, "x": r.normal(size=n),
                  "ts": pd.date_range("2025-01-01", periods=n, freq="min")}).to_csv(path, index=False)
    return path


def test_ingest_records_version_source_lineage(ws: Workspace, tmp_path: Path) -> None:
    path = _csv(tmp_path / "a.csv", 100, 1)
    info = ingest(ws, FileSource(str(path)), "a")
    assert info.row_count == 100 and info.created
    assert info.source["kind"] == "file" and info.source["uri"].endswith("a.csv")
    assert info.validation == {"rows_read": 100, "rows_ingested": 100, "rows_quarantined": 0}
    [edge] = ws.lineage.upstream(info.entity)
    assert edge.src == EntityRef("source", str(path)) and edge.relation == "ingested_from"
    again = ingest(ws, FileSource(str(path)), "a")
    assert not again.created and again.id == info.id


def test_incremental_file_ingest_appends_partitions(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    pd.DataFrame({"seq": [1, 2, 3], "v": ["a", "b", "c"]}).to_csv(path, index=False)
    v1 = ingest(ws, FileSource(str(path)), "log", incremental_by="seq")
    pd.DataFrame({"seq": [1, 2, 3, 4, 5], "v": list("abcde")}).to_csv(path, index=False)
    v2 = ingest(ws, FileSource(str(path)), "log", incremental_by="seq")
    assert v2.version == 2 and v2.row_count == 5 and len(v2.parts) == 2
    assert v2.parts[0] == v1.parts[0]
    assert Catalog(ws).read_pandas("log")["seq"].tolist() == [1, 2, 3, 4, 5]
    assert Catalog(ws).state("log")["watermark"]["value"] == 5
    v3 = ingest(ws, FileSource(str(path)), "log", incremental_by="seq")
    assert not v3.created and v3.version == 2
    assert [e.relation for e in ws.lineage.upstream(v2.entity, depth=1)] == ["extended_by", "ingested_from"]


def test_failure_mid_stream_leaves_no_version(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.data.sources import files

    path = _csv(tmp_path / "big.csv", 5000, 2)
    with path.open("a") as f:
        f.write("1,2,3,4,5\n")  # a broken last line, after many good blocks
    monkeypatch.setattr(files, "BLOCK_SIZE", 8 << 10)
    with pytest.raises(SourceError, match="Expected 3 columns"):
        ingest(ws, FileSource(str(path)), "big")
    assert Catalog(ws).list() == []
    assert list((ws.home / "artifacts" / "tmp").glob("*")) == []
    assert ws.events.list() == []


def _ingest_many(root: str, folder: str, worker: int, n: int) -> list[int]:
    versions = []
    with Workspace.open(root) as ws:
        for i in range(n):
            path = _csv(Path(folder) / f"w{worker}-{i}.csv", 50, seed=worker * 100 + i)
            versions.append(ingest(ws, FileSource(str(path)), "shared").version)
            ingest(ws, FileSource(str(path)), f"own-{worker}")
    return versions


def test_two_processes_ingest_concurrently(any_ws: Workspace, tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    n = 6
    with ctx.Pool(2) as pool:
        results = pool.starmap(_ingest_many, [(str(any_ws.root), str(tmp_path), w, n) for w in (1, 2)])
    all_versions = sorted(v for r in results for v in r)
    assert all_versions == list(range(1, 2 * n + 1))
    cat = Catalog(any_ws)
    assert len(cat.versions("shared")) == 2 * n
    assert len(cat.versions("own-1")) == n and len(cat.versions("own-2")) == n
    assert len(any_ws.events.list()) == 4 * n
    for v in cat.versions("shared"):
        assert cat.read_arrow(v).num_rows == 50
