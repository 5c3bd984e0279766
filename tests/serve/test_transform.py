"""Batch transform: formats, folder/dataset inputs, join and filters, bad records, resume after crashes, Ray."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.errors import InvalidInput, NotFound
from loopml.registry import register_model
from loopml.serve._transform_worker import CRASH_ENV
from loopml.serve.transform import (
    MANIFEST,
    TRANSFORM_COMPLETED,
    ColumnFilter,
    TransformFailed,
    TransformProgress,
    _rechunk,
    transform,
)
from loopml.store.lineage import EntityRef
from loopml.train.package import Model
from tests.serve.conftest import inputs_of, serve_frame

N = 1200  # records per input file: 3 chunks of 500


@pytest.fixture
def model(ws: Workspace, trained: Callable[..., Model]) -> Model:
    """A binary XGBoost model with the default recipe (text and date encoded), registered as churn:1."""
    m = trained("xgboost", "binary", "auto")
    assert register_model(ws, m.path, "churn").ref == "churn:1"
    return m


def frame(n: int = N, seed: int = 3) -> pd.DataFrame:
    return inputs_of(serve_frame(n, seed), "auto")


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under an output folder (the manifest excepted), by relative name."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def expected(model: Model, df: pd.DataFrame) -> pd.DataFrame:
    proba = model.predict_proba(df)
    return pd.DataFrame({"prediction": model.predict(df), "proba_0": proba[:, 0], "proba_1": proba[:, 1]})


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A folder with the same kind of records as CSV, Parquet and JSON Lines (and a nested CSV)."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    frame(N, 1).to_csv(folder / "a.csv", index=False)
    frame(N, 2).to_parquet(folder / "b.parquet", row_group_size=300)
    frame(700, 3).to_json(folder / "c.jsonl", orient="records", lines=True, date_format="iso")
    frame(300, 4).to_csv(folder / "sub" / "d.csv", index=False)
    return folder


# -- formats and inputs ------------------------------------------------------------------------------------
def test_folder_of_csv_parquet_jsonl_gives_one_out_per_input(
        ws: Workspace, model: Model, inputs: Path, tmp_path: Path) -> None:
    seen: list[TransformProgress] = []
    out = tmp_path / "out"
    r = transform(ws, "churn:1", str(inputs), str(out), executor="inline", batch_rows=500, on_progress=seen.append)
    assert sorted(outputs(out)) == ["a.csv.out", "b.parquet.out", "c.jsonl.out", "sub/d.csv.out"]
    assert (r.rows_in, r.rows_out, r.errors, r.chunks, r.chunks_skipped) == (3400, 3400, 0, 3 + 3 + 2 + 1, 0)
    assert r.files == [(out / n).as_uri() for n in ["a.csv.out", "b.parquet.out", "c.jsonl.out", "sub/d.csv.out"]]
    assert seen[-1].rows_done == 3400 and seen[-1].chunks_done == 9 and seen[-1].rows_total is None
    # the same numbers as the model in memory, in input order, in each input's own format
    pd.testing.assert_frame_equal(pd.read_csv(out / "a.csv.out"), expected(model, frame(N, 1)))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "b.parquet.out"), expected(model, frame(N, 2)))
    pd.testing.assert_frame_equal(pd.read_json(out / "c.jsonl.out", lines=True), expected(model, frame(700, 3)))
    pd.testing.assert_frame_equal(pd.read_csv(out / "sub" / "d.csv.out"), expected(model, frame(300, 4)))
    # no parts left; the manifest says completed
    assert not (out / "_parts").exists()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "completed" and manifest["job_id"] == r.job_id
    # recorded: a tracking run, lineage from the model version, an event
    run = ws.tracker.get_run(r.run_id or "")
    assert run.status == "FINISHED" and run.metrics["rows_out"] == 3400 and run.params["model"] == "churn:1"
    version = ws.lineage.upstream(EntityRef("run", run.id))
    assert any(e.src.kind == "model_version" and e.relation == "used_by" for e in version)
    events = ws.events.list(type=TRANSFORM_COMPLETED)
    assert len(events) == 1 and events[0].payload["job_id"] == r.job_id and events[0].payload["rows"] == 3400


@pytest.mark.slow
def test_local_workers_write_the_same_bytes_as_one_process(
        ws: Workspace, model: Model, inputs: Path, tmp_path: Path) -> None:
    inline = transform(ws, "churn:1", str(inputs), str(tmp_path / "inline"), executor="inline", batch_rows=500)
    local = transform(ws, "churn:1", str(inputs), str(tmp_path / "local"), executor="local", workers=2,
                      batch_rows=500)
    assert local.job_id == inline.job_id and local.rows_out == 3400
    assert outputs(tmp_path / "local") == outputs(tmp_path / "inline")


def test_dataset_version_input_and_output_format(ws: Workspace, model: Model, tmp_path: Path) -> None:
    df = frame(900, 5)
    Catalog(ws).write("customers", df)
    r = transform(ws, "churn:1", "dataset:customers", str(tmp_path / "out"),
                  executor="inline", batch_rows=400, accept="text/csv")
    assert [Path(f).name for f in r.files] == ["customers-v1.out"] and r.chunks == 3
    got = pd.read_csv(tmp_path / "out" / "customers-v1.out")
    pd.testing.assert_frame_equal(got, expected(model, df))
    run = ws.tracker.get_run(r.run_id or "")
    assert [(d.name, d.role) for d in run.datasets] == [("customers", "input")]
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        transform(ws, "churn:1", "dataset:nope", str(tmp_path / "o2"), executor="inline")


def test_multiclass_labels_and_regression(ws: Workspace, trained: Callable[..., Model], tmp_path: Path) -> None:
    multi = trained("lightgbm", "multiclass", "auto")
    reg = trained("xgboost", "regression", "none")
    df = frame(300, 6)
    df.to_parquet(tmp_path / "x.parquet")
    transform(ws, str(multi.path), str(tmp_path / "x.parquet"), str(tmp_path / "m"), executor="inline",
              accept="jsonl")
    got = pd.read_json(tmp_path / "m" / "x.parquet.out", lines=True)
    assert list(got.columns) == ["prediction", *[f"proba_{c}" for c in multi.classes or []]]
    assert got["prediction"].tolist() == list(multi.predict(df))
    transform(ws, str(reg.path), str(tmp_path / "x.parquet"), str(tmp_path / "r"), executor="inline")
    got = pd.read_parquet(tmp_path / "r" / "x.parquet.out")
    assert list(got.columns) == ["prediction"]
    np.testing.assert_allclose(got["prediction"], reg.predict(df[["x1", "x2", "n"]]), rtol=1e-6)


def test_empty_inputs_give_empty_outputs(ws: Workspace, model: Model, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "header_only.csv").write_text("x1,x2,n,city,day\n")
    (folder / "empty.jsonl").write_text("")
    frame(0).to_parquet(folder / "none.parquet")
    r = transform(ws, "churn:1", str(folder), str(tmp_path / "out"), executor="inline", join_input=True)
    assert r.rows_out == 0 and len(r.files) == 3
    assert (tmp_path / "out" / "header_only.csv.out").read_text() == \
        '"x1","x2","n","city","day","prediction","proba_0","proba_1"\n'
    assert (tmp_path / "out" / "empty.jsonl.out").read_bytes() == b""
    assert pd.read_parquet(tmp_path / "out" / "none.parquet.out").shape == (0, 8)


# -- join and filters ------------------------------------------------------------------------------------
def test_headerless_csv_positional_input_filter_join_and_output_filter(
        ws: Workspace, model: Model, tmp_path: Path) -> None:
    df = frame(600, 7)
    with_id = df.copy()
    with_id.insert(0, "id", [f"c{i}" for i in range(len(df))])
    with_id.to_csv(tmp_path / "x.csv", index=False, header=False)
    r = transform(ws, "churn:1", str(tmp_path / "x.csv"), str(tmp_path / "out"), executor="inline",
                  batch_rows=250, header=False, input_filter="$[1:]", join_input=True, output_filter="$[0,-1]")
    assert r.rows_out == 600
    text = (tmp_path / "out" / "x.csv.out").read_text()
    got = pd.read_csv(pd.io.common.StringIO(text), header=None, names=["id", "p1"])
    assert got["id"].tolist() == with_id["id"].tolist()  # no header out, as none came in
    np.testing.assert_allclose(got["p1"], model.predict_proba(df)[:, 1], rtol=0, atol=0)


def test_named_filters_and_jsonl_join(ws: Workspace, model: Model, tmp_path: Path) -> None:
    df = frame(300, 8)
    df.insert(0, "id", range(300))
    df["note"] = "x"
    df.to_json(tmp_path / "x.jsonl", orient="records", lines=True, date_format="iso")
    transform(ws, "churn:1", str(tmp_path / "x.jsonl"), str(tmp_path / "out"), executor="inline",
              input_filter=["x1", "x2", "n", "city", "day"], join_input=True, output_filter="id,note,prediction")
    lines = (tmp_path / "out" / "x.jsonl.out").read_text().splitlines()
    first = json.loads(lines[0])
    assert list(first) == ["id", "note", "prediction"] and first["id"] == 0 and first["note"] == "x"
    assert [json.loads(x)["prediction"] for x in lines] == list(model.predict(df))
    # a column the model needs, filtered away
    with pytest.raises(InvalidInput, match=r"has no column\(s\) 'day' that model churn:1 needs"):
        transform(ws, "churn:1", str(tmp_path / "x.jsonl"), str(tmp_path / "o2"), executor="inline",
                  input_filter="x1,x2,n,city")
    with pytest.raises(InvalidInput, match="output filter 'nope' names column 'nope'"):
        transform(ws, "churn:1", str(tmp_path / "x.jsonl"), str(tmp_path / "o3"), executor="inline",
                  output_filter="nope")


def test_column_filter_forms_and_mistakes() -> None:
    cols = ["id", "a", "b", "c"]
    assert ColumnFilter.parse("$[1:]").apply(cols) == ["a", "b", "c"]
    assert ColumnFilter.parse("$[0, -1]").apply(cols) == ["id", "c"]
    assert ColumnFilter.parse("$[:2]").apply(cols) == ["id", "a"]
    assert ColumnFilter.parse("$['c','id']").apply(cols) == ["c", "id"]
    assert ColumnFilter.parse("$.b").apply(cols) == ["b"]
    assert ColumnFilter.parse("$").apply(cols) == cols
    assert ColumnFilter.parse(["b", "a", "b"]).apply(cols) == ["b", "a"]
    with pytest.raises(InvalidInput, match="position 7 is out of range; the record has 4 columns"):
        ColumnFilter.parse("$[7]").apply(cols)
    with pytest.raises(InvalidInput, match="'x' is not a position"):
        ColumnFilter.parse("$[1,x]")
    with pytest.raises(InvalidInput, match="is not understood"):
        ColumnFilter.parse("$[]")
    with pytest.raises(InvalidInput, match="keeps no column"):
        ColumnFilter.parse("$[4:]").apply(cols)


# -- bad records -------------------------------------------------------------------------------------------
def _bad_csv(path: Path) -> pd.DataFrame:
    df = frame(N, 9)
    text = df.astype(object)
    text.loc[5, "x1"] = "abc"
    text.loc[77, "day"] = "not a date"
    text.loc[1100, "n"] = "1.5"
    text.to_csv(path, index=False)
    return df


def test_bad_records_go_to_the_errors_file_and_fail_the_job_past_the_ratio(
        ws: Workspace, model: Model, tmp_path: Path) -> None:
    df = _bad_csv(tmp_path / "x.csv")
    out = tmp_path / "out"
    with pytest.raises(TransformFailed, match=r"failed: 2 of the first 1000 records could not be predicted, more "
                                              r"than max_error_ratio=0.0 allows \(first: record 5: column 'x1'"):
        transform(ws, "churn:1", str(tmp_path / "x.csv"), str(out), executor="inline", batch_rows=500)
    assert not (out / "x.csv.out").exists()  # nothing half-written
    assert json.loads((out / MANIFEST).read_text())["status"] == "failed"
    assert ws.tracker.search_runs(experiment="transform")[0].status == "FAILED"
    # tolerated: bad records keep their place with no prediction, and are listed with the reason
    r = transform(ws, "churn:1", str(tmp_path / "x.csv"), str(out), executor="inline", batch_rows=500,
                  max_error_ratio=0.01)
    assert (r.rows_out, r.errors) == (N, 3) and [Path(f).name for f in r.error_files] == ["x.csv.errors.jsonl"]
    errors = [json.loads(x) for x in (out / "x.csv.errors.jsonl").read_text().splitlines()]
    assert [e["row"] for e in errors] == [5, 77, 1100]
    assert errors[0]["reason"] == "column 'x1': cannot read 'abc' as double"
    assert "cannot read 'not a date' as timestamp" in errors[1]["reason"]
    assert errors[2]["record"]["n"] == "1.5"
    got = pd.read_csv(out / "x.csv.out")
    assert got["prediction"].isna().tolist() == [i in (5, 77, 1100) for i in range(N)]
    good = np.setdiff1d(np.arange(N), [5, 77, 1100])
    want = expected(model, df.iloc[good].reset_index(drop=True))
    np.testing.assert_allclose(got["proba_1"].to_numpy()[good], want["proba_1"].to_numpy(), rtol=0, atol=0)


def test_bad_json_lines_and_records_the_model_rejects(
        ws: Workspace, model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = frame(400, 10)
    lines = df.to_json(orient="records", lines=True, date_format="iso").splitlines()
    lines[3] = '{"x1": 1.0, "x2":'  # cut short
    lines[10] = "[1, 2, 3]"
    rec = json.loads(lines[20])
    rec["x1"] = [1, 2]
    lines[20] = json.dumps(rec)
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    # records the model itself cannot process: the recipe fails on them (found by bisection)
    original = Model.predict_proba

    def poisoned(self: Model, frame: pd.DataFrame) -> np.ndarray:
        if (frame["x1"] > 2.5).any():
            raise ValueError("x1 over 2.5 breaks this model")
        return original(self, frame)

    monkeypatch.setattr(Model, "predict_proba", poisoned)
    over = set(np.flatnonzero(df["x1"].to_numpy() > 2.5).tolist()) - {3, 10, 20}
    assert over  # the seed gives a few
    r = transform(ws, "churn:1", str(tmp_path / "x.jsonl"), str(tmp_path / "out"), executor="inline",
                  batch_rows=128, max_error_ratio=0.5)
    errors = [json.loads(x) for x in (tmp_path / "out" / "x.jsonl.errors.jsonl").read_text().splitlines()]
    assert [e["row"] for e in errors] == sorted({3, 10, 20} | over) and r.errors == len(errors)
    reasons = {e["row"]: e["reason"] for e in errors}
    assert reasons[3].startswith("not valid JSON") and reasons[10].startswith("not a JSON object")
    assert reasons[20] == "column 'x1': cannot read '[1,2]' as double"
    assert all(reasons[i] == "ValueError: x1 over 2.5 breaks this model" for i in over)
    out = [json.loads(x) for x in (tmp_path / "out" / "x.jsonl.out").read_text().splitlines()]
    assert len(out) == 400 and all((o["prediction"] is None) == (i in reasons) for i, o in enumerate(out))

    # a model that fails on every record fails the job at once, with the model's reason
    def broken(self: Model, frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("weights missing")

    monkeypatch.setattr(Model, "predict_proba", broken)
    with pytest.raises(TransformFailed, match=r"the model fails on every record tried .* weights missing"):
        transform(ws, "churn:1", str(tmp_path / "x.jsonl"), str(tmp_path / "out2"), executor="inline",
                  batch_rows=128, max_error_ratio=1.0)


# -- exactly once: crashes and resumes -----------------------------------------------------------------------
@pytest.fixture
def big_csv(tmp_path: Path) -> Path:
    frame(3000, 11).to_csv(tmp_path / "x.csv", index=False)
    return tmp_path / "x.csv"


@pytest.fixture
def clean(ws: Workspace, model: Model, big_csv: Path, tmp_path: Path) -> dict[str, bytes]:
    """The output of an uninterrupted run (6 chunks of 500)."""
    transform(ws, "churn:1", str(big_csv), str(tmp_path / "clean"), executor="inline", batch_rows=500)
    return outputs(tmp_path / "clean")


@pytest.mark.slow
def test_a_worker_killed_once_is_retried_and_the_output_is_unchanged(
        ws: Workspace, big_csv: Path, clean: dict[str, bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, f"0:2:{tmp_path / 'crashed-once'}")
    r = transform(ws, "churn:1", str(big_csv), str(tmp_path / "out"), executor="local", workers=2, batch_rows=500)
    assert (tmp_path / "crashed-once").exists() and r.retries >= 1 and r.rows_out == 3000
    assert outputs(tmp_path / "out") == clean


@pytest.mark.slow
def test_a_job_that_dies_resumes_from_its_finished_chunks(
        ws: Workspace, big_csv: Path, clean: dict[str, bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv(CRASH_ENV, "0:3")  # chunk 3 kills its worker, every time
    with pytest.raises(TransformFailed, match=r"chunk 3 of .*x.csv \(records 1500..1999\) failed 2 times"):
        transform(ws, "churn:1", str(big_csv), str(out), executor="local", workers=1, batch_rows=500,
                  max_retries=1)
    assert not (out / "x.csv.out").exists()
    done = sorted(p.name for p in out.rglob("*.done.json"))
    assert "00000-0000003.done.json" not in done and len(done) >= 3
    monkeypatch.delenv(CRASH_ENV)
    r = transform(ws, "churn:1", str(big_csv), str(out), executor="local", workers=1, batch_rows=500)
    assert r.chunks == 6 and r.chunks_skipped == len(done) and r.rows_out == 3000
    assert outputs(out) == clean


def test_a_killed_driver_resumes_with_no_duplicates_and_no_gaps(
        ws: Workspace, big_csv: Path, clean: dict[str, bytes], tmp_path: Path) -> None:
    """The whole job process dies (kill -9 style) after two chunks; the rerun finishes the rest."""
    out = tmp_path / "out"
    script = (
        "import sys; from loopml import Workspace; from loopml.serve.transform import transform\n"
        "with Workspace.open(sys.argv[1]) as ws:\n"
        "    transform(ws, 'churn:1', sys.argv[2], sys.argv[3], executor='inline', batch_rows=500)\n"
    )
    env = {**os.environ, CRASH_ENV: "0:2"}
    proc = subprocess.run([sys.executable, "-c", script, str(ws.root), str(big_csv), str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 70, proc.stderr
    assert sorted(p.name for p in out.rglob("*.done.json")) == ["00000-0000000.done.json", "00000-0000001.done.json"]
    assert json.loads((out / MANIFEST).read_text())["status"] == "running" and not (out / "x.csv.out").exists()
    r = transform(ws, "churn:1", str(big_csv), str(out), executor="inline", batch_rows=500)
    assert (r.chunks, r.chunks_skipped, r.rows_out) == (6, 2, 3000)
    assert outputs(out) == clean
    # done is done: the same job again reuses the outputs; resume=False computes them again
    again = transform(ws, "churn:1", str(big_csv), str(out), executor="inline", batch_rows=500)
    assert again.job_id == r.job_id and again.chunks_skipped == 6
    fresh = transform(ws, "churn:1", str(big_csv), str(out), executor="inline", batch_rows=500, resume=False)
    assert fresh.chunks_skipped == 0 and outputs(out) == clean
    # another job into the same folder (other options) starts over
    other = transform(ws, "churn:1", str(big_csv), str(out), executor="inline", batch_rows=1000)
    assert other.job_id != r.job_id and other.chunks == 3 and outputs(out) == clean


def test_payload_limit_cuts_smaller_chunks_with_the_same_output(
        ws: Workspace, model: Model, big_csv: Path, clean: dict[str, bytes], tmp_path: Path) -> None:
    r = transform(ws, "churn:1", str(big_csv), str(tmp_path / "out"), executor="inline", batch_rows=500,
                  max_payload_mb=0.02)
    assert r.chunks > 6 and outputs(tmp_path / "out") == clean


def test_chunk_cuts_do_not_depend_on_how_the_input_is_batched() -> None:
    table = pa.table({"k": np.arange(1000), "s": [("x" * (i % 50)) for i in range(1000)]})

    def cuts(batch: int, rows: int, max_bytes: int | None) -> list[list[int]]:
        return [t.column("k").to_pylist() for t in _rechunk(iter(table.to_batches(batch)), rows, max_bytes, None)]

    for rows, max_bytes in [(128, None), (128, 2000), (1000, 700)]:
        want = cuts(1000, rows, max_bytes)
        assert [k for c in want for k in c] == list(range(1000))
        assert all(len(c) <= rows for c in want)
        for batch in (1, 7, 99, 333):
            assert cuts(batch, rows, max_bytes) == want
    assert [t.num_rows for t in _rechunk(iter([]), 10, None, pa.schema([("a", pa.int64())]))] == [0]


# -- mistakes ------------------------------------------------------------------------------------------------
def test_mistakes_are_clear_errors(ws: Workspace, model: Model, big_csv: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    with pytest.raises(NotFound, match="no model named 'nope'"):
        transform(ws, "nope:1", str(big_csv), out, executor="inline")
    with pytest.raises(NotFound, match="no model package folder at"):
        transform(ws, str(tmp_path / "no" / "pkg"), str(big_csv), out, executor="inline")
    with pytest.raises(NotFound, match="file not found"):
        transform(ws, "churn:1", str(tmp_path / "missing.csv"), out, executor="inline")
    (tmp_path / "in").mkdir()
    frame(10).to_csv(tmp_path / "in" / "x.csv", index=False)
    with pytest.raises(InvalidInput, match="inside the input folder"):
        transform(ws, "churn:1", str(tmp_path / "in"), str(tmp_path / "in" / "preds"), executor="inline")
    with pytest.raises(InvalidInput, match="workers must be a positive whole number"):
        transform(ws, "churn:1", str(big_csv), out, workers=0)
    with pytest.raises(InvalidInput, match="max_error_ratio must be between 0 and 1"):
        transform(ws, "churn:1", str(big_csv), out, max_error_ratio=2)
    with pytest.raises(InvalidInput, match="output format 'xml' is not one of"):
        transform(ws, "churn:1", str(big_csv), out, accept="xml", executor="inline")
    with pytest.raises(InvalidInput, match="executor 'dask' is not one of"):
        transform(ws, "churn:1", str(big_csv), out, executor="dask")
    (tmp_path / "doc.json").write_text("[]")
    with pytest.raises(InvalidInput, match="is a JSON document; batch transform reads JSON Lines"):
        transform(ws, "churn:1", str(tmp_path / "doc.json"), out, executor="inline")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(InvalidInput, match=r"has no column\(s\) 'x1', 'x2', 'n', 'city', 'day'"):
        transform(ws, "churn:1", str(tmp_path / "other.csv"), out, executor="inline")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="is a file; give a folder"):
        transform(ws, "churn:1", str(big_csv), str(tmp_path / "file"), executor="inline")


# -- Ray ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A real local Ray instance with 2 CPUs for this module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_tasks_give_the_same_output(
        ray_local: None, ws: Workspace, model: Model, inputs: Path, tmp_path: Path) -> None:
    inline = transform(ws, "churn:1", str(inputs), str(tmp_path / "inline"), executor="inline", batch_rows=500)
    ray = transform(ws, "churn:1", str(inputs), str(tmp_path / "ray"), executor="ray", workers=2, batch_rows=500,
                    join_input=False)
    assert ray.executor == "ray" and ray.rows_out == inline.rows_out == 3400
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "inline")
