"""``loopml.edge``: load (hash checks), predict (records, columns, one record), errors, the CLI, the standalone copy."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml.edge
from loopml import IntegrityError, InvalidInput, Workspace
from tests.edge._bundles import export, frame, inputs

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "sklearn", "pyarrow", "onnx", "xgboost", "lightgbm", "scipy", "loopml.train", "loopml.prep",
         "loopml.registry", "loopml.data")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    tmp = tmp_path_factory.mktemp("edge")
    ws = Workspace.init(tmp / "ws")
    try:
        res, model = export(ws, tmp, "xgboost", {"num_round": 15, "max_depth": 3}, target="tier",
                            sample=frame(60, seed=5))
        yield res.path, model
    finally:
        ws.close()


@pytest.fixture
def bundle_dir(exported: tuple[Path, Any], tmp_path: Path) -> Path:
    """A private copy of the bundle (tests may damage it)."""
    return Path(shutil.copytree(exported[0], tmp_path / "bundle"))


def _records(n: int = 8, seed: int = 11) -> list[dict[str, Any]]:
    rows = inputs(frame(n, seed=seed))
    out = []
    for rec in rows.to_dict("records"):
        out.append({k: (v.isoformat() if isinstance(v, pd.Timestamp) else None if v != v else v)
                    for k, v in rec.items()})
    return out


def _python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_import_and_predict_load_only_numpy_and_onnxruntime(exported: tuple[Path, Any]) -> None:
    path, model = exported
    code = (
        "import json, sys\n"
        "import loopml.edge\n"
        "after_import = sorted(sys.modules)\n"
        "b = loopml.edge.load(sys.argv[1])\n"
        "p = b.predict(json.loads(sys.argv[2]))\n"
        f"heavy = {HEAVY!r}\n"
        "bad = lambda mods: sorted({m for m in mods for h in heavy if m == h or m.startswith(h + '.')})\n"
        "print(json.dumps({'import': bad(after_import), 'predict': bad(sys.modules), 'p': p,\n"
        "                  'ort_at_import': 'onnxruntime' in after_import}))\n"
    )
    recs = _records()
    proc = _python(code, str(path), json.dumps(recs))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["import"] == [] and out["predict"] == [] and out["ort_at_import"] is False
    native = model.predict_proba(pd.DataFrame(recs).assign(day=lambda d: pd.to_datetime(d["day"])))
    assert np.abs(np.array([p["probabilities"] for p in out["p"]]) - native).max() < 1e-4


def test_the_bundled_copy_runs_without_loopml(bundle_dir: Path, exported: tuple[Path, Any]) -> None:
    blocker = (
        "import sys, runpy\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('loopml', 'pandas', 'sklearn', 'pyarrow', 'onnx'):\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['loopml_edge.py', sys.argv[1], '--data', sys.argv[2]]\n"
        "runpy.run_path('loopml_edge.py', run_name='__main__')\n"
    )
    recs = _records(5)
    proc = _python(blocker, ".", json.dumps(recs), cwd=bundle_dir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["classes"] == ["high", "low", "mid"] or sorted(out["classes"]) == ["high", "low", "mid"]
    assert out["predictions"] == loopml.edge.load(bundle_dir).predict(recs)

    # the same copy, imported: its errors are plain ValueErrors without loopml
    code = blocker.split("sys.argv")[0] + (
        "sys.path.insert(0, '.')\nimport loopml_edge\n"
        "try:\n    loopml_edge.load('.').predict([{'x1': 1.0}])\n"
        "except ValueError as e:\n    print(type(e).__name__, e)\n"
    )
    proc = _python(code, cwd=bundle_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("InvalidInput record 0 has no field 'x2'; this model reads x1, x2, x3, city")


def test_cli(bundle_dir: Path, tmp_path: Path) -> None:
    recs = _records(3)
    cmd = [sys.executable, "-m", "loopml.edge", str(bundle_dir), "--data"]
    proc = subprocess.run([*cmd, json.dumps(recs)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["predictions"]) == 3 and set(out["classes"]) == {"low", "mid", "high"}
    assert out["predictions"] == loopml.edge.load(bundle_dir).predict(recs)

    body = tmp_path / "body.json"
    body.write_text(json.dumps({"instances": recs[:2]}))
    proc = subprocess.run([*cmd, f"@{body}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and len(json.loads(proc.stdout)["predictions"]) == 2
    proc = subprocess.run([*cmd, "-"], input=json.dumps(recs[0]), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and len(json.loads(proc.stdout)["predictions"]) == 1

    for data, msg in [("{nope", "error: --data is not valid JSON"),
                      ('[{"x1": 1}]', "error: record 0 has no field 'x2'")]:
        proc = subprocess.run([*cmd, data], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and proc.stderr.startswith(msg) and proc.stderr.count("\n") == 1
        assert proc.stdout == ""


def test_load_verifies_every_file(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / "edge.json").read_text())
    assert manifest["format"] == "loopml.edge" and manifest["graph"] == "edge.onnx"
    assert set(manifest["files"]) == {"edge.onnx", "loopml_edge.py", "model.onnx", "onnx.json", "recipe.json"}
    b = loopml.edge.load(bundle_dir)
    assert b.layout == "raw" and b.input_names == ["x1", "x2", "x3", "city", "plan", "shop", "day"]
    assert "layout='raw'" in repr(b)

    # a device needs only edge.json and the graph
    for name in ("model.onnx", "onnx.json", "recipe.json", "loopml_edge.py"):
        (bundle_dir / name).unlink()
    assert loopml.edge.load(bundle_dir).predict(_records(2)) == b.predict(_records(2))

    graph = bundle_dir / "edge.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"edge.onnx does not match the sha256 in edge.json: it was modified"):
        loopml.edge.load(bundle_dir)
    graph.unlink()
    with pytest.raises(IntegrityError, match=r"has no edge.onnx, the graph its manifest names"):
        loopml.edge.load(bundle_dir)

    manifest["files"]["../outside"] = {"sha256": "0" * 64}
    (bundle_dir / "edge.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"lists the file '../outside' outside the bundle"):
        loopml.edge.load(bundle_dir)
    manifest["format_version"] = 99
    (bundle_dir / "edge.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInput, match="has format version 99; this runtime reads version 1"):
        loopml.edge.load(bundle_dir)
    (bundle_dir / "edge.json").write_text("{")
    with pytest.raises(InvalidInput, match=r"edge\.json is not valid JSON"):
        loopml.edge.load(bundle_dir)
    (bundle_dir / "edge.json").write_text("[]")
    with pytest.raises(InvalidInput, match="is not a loopml edge manifest"):
        loopml.edge.load(bundle_dir)
    (bundle_dir / "edge.json").unlink()
    with pytest.raises(InvalidInput, match=r"is not an edge bundle: it has no edge.json \(write one with `loopml models"):
        loopml.edge.load(bundle_dir)


def test_input_forms_agree(exported: tuple[Path, Any]) -> None:
    path, model = exported
    b = loopml.edge.load(path)
    rows = inputs(frame(12, seed=21))
    native = model.predict_proba(rows)
    records = rows.to_dict("records")  # pandas Timestamps and NaN, as a DataFrame gives them
    forms: list[Any] = [
        records,
        {c: rows[c].to_numpy() for c in rows.columns},
        {c: rows[c].tolist() for c in rows.columns},
        rows,  # anything with columns and to_numpy
    ]
    for form in forms:
        got = np.array([p["probabilities"] for p in b.predict(form)])
        assert np.abs(got - native).max() < 1e-4
    assert b.predict([]) == [] and b.predict({c: [] for c in rows.columns}) == []

    # dates as datetime, date, numpy datetime64, ISO text with a zone (its wall clock), nanoseconds
    base = records[0]
    day = base["day"]
    for v in (day.to_pydatetime(), np.datetime64(day.value, "ns"), day.isoformat(), int(day.value),
              day.tz_localize("Europe/Paris").isoformat()):
        assert b.predict_one({**base, "day": v}) == b.predict_one(base)
    midnight = {**base, "day": dt.date(day.year, day.month, day.day)}
    assert b.predict_one(midnight) == b.predict_one({**base, "day": day.normalize()})
    # missing values: None and NaN alike; a number as a category reads as its text
    missing = {**base, "x2": None, "plan": float("nan"), "day": None}
    assert b.predict_one(missing) == b.predict_one({**base, "x2": float("nan"), "plan": None, "day": pd.NaT})
    assert b.predict_one({**base, "shop": 3.0}) == b.predict_one({**base, "shop": "3"})
    native_one = model.predict_one({**missing, "day": None})
    assert np.abs(np.array(b.predict_one(missing)["probabilities"]) - native_one["probabilities"]).max() < 1e-4
    assert b.predict(base) == [b.predict_one(base)]


def test_bad_input_says_what_to_fix(exported: tuple[Path, Any]) -> None:
    b = loopml.edge.load(exported[0])
    rec = _records(1)[0]
    with pytest.raises(InvalidInput, match=r"^the record has no field 'city'; this model reads x1, x2, x3, city, plan"):
        b.predict_one({k: v for k, v in rec.items() if k != "city"})
    with pytest.raises(InvalidInput, match=r"^record 1 has no field 'day'"):
        b.predict([rec, {k: v for k, v in rec.items() if k != "day"}])
    with pytest.raises(InvalidInput, match=r"^field 'x1' must be a number \(or null\), got the text 'abc'"):
        b.predict_one({**rec, "x1": "abc"})
    with pytest.raises(InvalidInput, match=r"^field 'x1' must be a number \(or null\), got \[1\]"):
        b.predict([{**rec, "x1": [1]}])
    with pytest.raises(InvalidInput, match=r"^field 'day' got 'tomorrow', which is not an ISO 8601 date/time"):
        b.predict_one({**rec, "day": "tomorrow"})
    with pytest.raises(InvalidInput, match=r"^field 'day' must be a date/time \(ISO 8601 text\), got 1.5"):
        b.predict_one({**rec, "day": 1.5})
    with pytest.raises(InvalidInput, match=r"^the columns have different lengths \[1, 2\]"):
        b.predict({c: ([v] if c != "x1" else [v, v]) for c, v in rec.items()})
    with pytest.raises(InvalidInput, match=r"^the data has no column 'x1'"):
        b.predict({c: [v] for c, v in rec.items() if c != "x1"})
    with pytest.raises(InvalidInput, match=r"^predict takes a list of records, one record \(a dict\) or a dict of "
                                           r"columns, got str"):
        b.predict("x1=1")
    with pytest.raises(InvalidInput, match=r"^record 0 is int, not an object of fields"):
        b.predict([1])
    with pytest.raises(InvalidInput, match=r"^predict_one takes one record \(a dict\), got list"):
        b.predict_one([rec])  # type: ignore[arg-type]
