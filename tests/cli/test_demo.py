from __future__ import annotations

from pathlib import Path

import pytest

from loopml import Workspace
from loopml.cli import main
from loopml.data import Catalog


def test_demo_runs_the_lifecycle_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):  # the second run finds everything in place and still succeeds
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--path", str(tmp_path / "demo"), "--rows", "600"])
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "where to look" in out and "customers:1" in out
    assert (tmp_path / "demo" / "reports" / "customers-eda.html").stat().st_size > 100_000
    with Workspace.open(tmp_path / "demo") as ws:
        names = {d.name for d in Catalog(ws).list()}
        assert {"customers", "customers_prepared"} <= names
        assert Catalog(ws).get("customers").version == 1
