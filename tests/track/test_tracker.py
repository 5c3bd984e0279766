from __future__ import annotations

import math
import re
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import Conflict, IntegrityError, InvalidInput, NotFound, Workspace
from loopml.store.lineage import EntityRef
from loopml.track import RUN_FAILED, RUN_FINISHED, MetricPoint, Tracker


def test_log_and_read_back(any_tracker: Tracker) -> None:
    t = any_tracker
    with t.start_run(experiment="churn", name="xgb-1", tags={"team": "growth"}, seed=42) as run:
        assert run.experiment == "churn" and run.id.startswith("run-")
        run.log_param("max_depth", 6)
        run.log_params({"eta": 0.1, "objective": "binary:logistic", "max_depth": 6})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"auc": 0.91, "f1": np.float32(0.5)}, step=4)
        run.log_metric("auc", 0.8, step=2)  # an older step does not become the latest
        run.log_metric("nan", float("nan"))
        run.log_metric("inf", math.inf)
        run.set_tag("stage", "dev")
        run.set_tags({"stage": "prod", "n": 3})
        for step in range(500):  # a batch big enough for PostgreSQL's COPY path
            run.log_metric("big", step / 10)
    info = t.get_run(run.id)
    assert info.status == "FINISHED" and info.message is None and info.name == "xgb-1"
    assert info.params == {"max_depth": "6", "eta": "0.1", "objective": "binary:logistic"}
    assert info.metrics["loss"] == pytest.approx(0.2)
    assert info.metrics["auc"] == pytest.approx(0.91) and info.metrics["f1"] == 0.5
    assert math.isnan(info.metrics["nan"]) and info.metrics["inf"] == math.inf
    assert info.tags == {"team": "growth", "stage": "prod", "n": "3"}
    assert info.seed == 42 and info.user and info.host
    assert info.packages["python"] and info.packages["loopml"] and "numpy" in info.packages
    assert info.end_time is not None and info.duration is not None and info.duration >= 0
    assert info.start_time.tzinfo is not None

    history = t.metric_history(run.id, "loss")
    assert [p.step for p in history] == [0, 1, 2, 3, 4]
    assert history[2] == MetricPoint(2, 1 / 3, history[2].timestamp)
    assert abs(history[0].timestamp - time.time()) < 60
    assert [p.step for p in t.metric_history(run.id, "auc")] == [2, 4]
    assert t.metric_history(run.id, "nope") == []
    big = t.metric_history(run.id, "big")
    assert len(big) == 500 and big[-1] == MetricPoint(499, 49.9, big[-1].timestamp)
    assert info.to_dict()["metrics"]["nan"] is None


def test_default_steps_count_up_per_key_and_timestamps_are_kept(tracker: Tracker) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with tracker.start_run() as run:
        for v in (0.5, 0.4, 0.3):
            run.log_metric("loss", v)
        run.log_metric("acc", 0.9, timestamp=when)
        run.log_metric("loss", 0.1, step=10)
        run.log_metric("loss", 0.05)
        run.log_metrics({"loss": 0.01, "acc": 0.95})
    assert [p.step for p in tracker.metric_history(run.id, "loss")] == [0, 1, 2, 10, 11, 12]
    acc = tracker.metric_history(run.id, "acc")
    assert acc[0].timestamp == when.timestamp() and [p.step for p in acc] == [0, 1]
    assert run.experiment == "default" and "-" in run.name


def test_nested_runs(any_tracker: Tracker) -> None:
    t = any_tracker
    with t.start_run(experiment="tune", name="study") as parent:
        for i in range(3):
            with t.start_run(name=f"trial-{i}", parent_run_id=parent.id) as child:
                child.log_metric("auc", 0.7 + i / 10)
                assert child.experiment == "tune"  # inherited from the parent
        # a prefix of the id works too
        with t.start_run(parent_run_id=parent.id[:12]) as extra:
            pass
    kids = t.child_runs(parent.id)
    assert [k.name for k in kids[:3]] == ["trial-0", "trial-1", "trial-2"]
    assert {k.parent_run_id for k in kids} == {parent.id} and len(kids) == 4
    assert t.get_run(extra.id).parent_run_id == parent.id
    assert t.child_runs(kids[0].id) == []
    found = t.search_runs(filter=f"attributes.parent_run_id = '{parent.id}'",
                          order_by=["metrics.auc DESC"])
    assert [r.name for r in found][:3] == ["trial-2", "trial-1", "trial-0"]
    with pytest.raises(NotFound, match="no run 'run-nope'"):
        t.start_run(parent_run_id="run-nope")


def test_exception_marks_the_run_failed_and_keeps_the_traceback(any_ws: Workspace) -> None:
    t = Tracker(any_ws, capture_code_version=False)
    with pytest.raises(ValueError, match="bad value"), t.start_run(experiment="e") as run:
        run.log_metric("loss", 0.5)
        raise ValueError("bad value\nsecond line")
    info = t.get_run(run.id)
    assert info.status == "FAILED" and info.message == "ValueError: bad value second line"
    assert info.metrics == {"loss": 0.5}
    tb = t.read_artifact(run.id, "error/traceback.txt").decode()
    assert "raise ValueError" in tb and "bad value" in tb

    with pytest.raises(KeyboardInterrupt), t.start_run(experiment="e") as killed:
        raise KeyboardInterrupt
    assert t.get_run(killed.id).status == "KILLED"

    with t.start_run(experiment="e") as marked:
        marked.set_status("failed", message="AUC below the floor")
        marked.log_metric("auc", 0.4)  # still open after set_status
    info = t.get_run(marked.id)
    assert (info.status, info.message) == ("FAILED", "AUC below the floor")

    events = any_ws.events.list()
    assert [(e.type, e.entity.id) for e in events] == [
        (RUN_FAILED, run.id), (RUN_FAILED, killed.id), (RUN_FAILED, marked.id)
    ]
    assert events[0].payload["status"] == "FAILED" and events[0].payload["experiment"] == "e"
    assert events[1].payload["status"] == "KILLED"
    t.close()


def test_finished_event_and_explicit_end(tracker: Tracker) -> None:
    run = tracker.start_run(experiment="e", name="manual")
    run.log_metric("x", 1)
    assert tracker.open_runs() == [run]
    run.end()
    run.end()  # idempotent
    assert tracker.open_runs() == [] and run.ended
    events = tracker.ws.events.list(type=RUN_FINISHED)
    assert [e.entity for e in events] == [EntityRef("run", run.id)]
    assert events[0].payload["name"] == "manual" and events[0].payload["duration_s"] >= 0
    with pytest.raises(InvalidInput, match="has ended"):
        run.log_metric("x", 2)
    with pytest.raises(InvalidInput, match="cannot end as RUNNING"):
        tracker.start_run().end(status="RUNNING")


def test_close_ends_open_runs(ws: Workspace) -> None:
    t = Tracker(ws, capture_code_version=False)
    run = t.start_run()
    run.log_metric("x", 1.0)
    t.close()
    t.close()
    t2 = Tracker(ws)
    assert t2.get_run(run.id).status == "FINISHED" and t2.get_run(run.id).metrics == {"x": 1.0}
    with pytest.raises(InvalidInput, match="tracker is closed"):
        t.start_run()
    with pytest.raises(ZeroDivisionError), Tracker(ws) as t3:
        failing = t3.start_run()
        1 / 0  # noqa: B018
    assert t2.get_run(failing.id).status == "FAILED"
    t2.close()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.log_metric("auc", "0.9"), "metric 'auc' must be a number, got '0.9'"),
        (lambda r: r.log_metric("auc", None), "must be a number"),
        (lambda r: r.log_metric("auc", object()), "must be a number"),
        (lambda r: r.log_metric("auc", 1.0, step=1.5), "step of metric 'auc' must be an integer"),
        (lambda r: r.log_metric("auc", 1.0, step=2**70), "64-bit"),
        (lambda r: r.log_metric("auc", 1.0, timestamp="now"), "seconds since the epoch"),
        (lambda r: r.log_metric("", 1.0), "metric name '' is not allowed"),
        (lambda r: r.log_metric("a;b", 1.0), "metric name 'a;b' is not allowed"),
        (lambda r: r.log_metric("x" * 251, 1.0), "at most 250"),
        (lambda r: r.log_param("p", "x" * 6001), "at most 6000"),
        (lambda r: r.log_params({"bad key!": 1}), "param name 'bad key!'"),
        (lambda r: r.set_tag("t ", 1), "tag name 't '"),
        (lambda r: r.set_status("DONE"), "not one of RUNNING, FINISHED, FAILED, KILLED"),
        (lambda r: r.log_dataset("x", role="a b"), "dataset role 'a b'"),
        (lambda r: r.log_bytes("a.txt", "text"), "must be bytes"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(tracker: Tracker, call, message) -> None:  # type: ignore[no-untyped-def]
    with tracker.start_run() as run, pytest.raises(InvalidInput, match=re.escape(message)):
        call(run)
    assert tracker.get_run(run.id).status == "FINISHED"


def test_start_run_validates_its_arguments(tracker: Tracker) -> None:
    with pytest.raises(InvalidInput, match="experiment name 'bad name'"):
        tracker.start_run(experiment="bad name")
    with pytest.raises(InvalidInput, match="run name"):
        tracker.start_run(name="")
    with pytest.raises(InvalidInput, match="seed must be an integer"):
        tracker.start_run(seed="7")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="tag name"):
        tracker.start_run(tags={"no!": 1})
    with pytest.raises(InvalidInput, match="flush_interval"):
        Tracker(tracker.ws, flush_interval=-1)
    assert tracker.search_runs() == []


def test_params_are_fixed_within_a_run(tracker: Tracker) -> None:
    with tracker.start_run() as run:
        run.log_param("depth", 6)
        run.log_param("depth", "6")  # same text: fine
        with pytest.raises(Conflict, match=r"param 'depth' of run .* is already '6', cannot become '7'"):
            run.log_param("depth", 7)
    assert tracker.get_run(run.id).params == {"depth": "6"}


def test_artifacts_are_content_addressed_and_verified(any_tracker: Tracker, tmp_path: Path) -> None:
    t = any_tracker
    f = tmp_path / "model.json"
    f.write_text('{"trees": 3}')
    with t.start_run() as run:
        sha = run.log_artifact(f)
        sha2 = run.log_artifact(f, name="models/best.json")
        sha3 = run.log_bytes("notes/readme.txt", b"hello")
        with pytest.raises(NotFound, match="does not exist"):
            run.log_artifact(tmp_path / "missing.bin")
        with pytest.raises(InvalidInput, match="is not a file"):
            run.log_artifact(tmp_path)
        for bad in ("../escape.txt", "/etc/passwd", "a/../../b", "a\\b", "./x", "a//b", ""):
            with pytest.raises(InvalidInput, match="artifact name"):
                run.log_bytes(bad, b"x")
            with pytest.raises(InvalidInput, match="artifact name"):
                run.log_artifact(f, name=bad)
    assert sha == sha2 and len(sha) == 64 and sha3 != sha
    info = t.get_run(run.id)
    assert [a.name for a in info.artifacts] == ["model.json", "models/best.json", "notes/readme.txt"]
    assert info.artifacts[0].size == f.stat().st_size
    assert t.read_artifact(run.id, "models/best.json") == f.read_bytes()
    with pytest.raises(NotFound, match="has no artifact 'nope'"):
        t.read_artifact(run.id, "nope")
    # Tampering with the stored blob is detected before anyone reads it.
    stored = Path(t.ws.artifacts.local_path(sha3, verify=False) or "")
    stored.write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="modified or corrupted"):
        t.read_artifact(run.id, "notes/readme.txt")


def test_several_artifacts_in_one_write(any_tracker: Tracker, tmp_path: Path) -> None:
    t = any_tracker
    a, b = tmp_path / "a.bin", tmp_path / "b.txt"
    a.write_bytes(b"\x00\x01")
    b.write_text("bee")
    with t.start_run() as run:
        shas = run.log_artifacts({"model/a.bin": a, "notes/b.txt": b})
        assert list(shas) == ["model/a.bin", "notes/b.txt"]
        again = run.log_artifacts({"notes/b.txt": a})  # a later file replaces the name's content
        assert again["notes/b.txt"] == shas["model/a.bin"]
        assert run.log_artifacts({}) == {}
        with pytest.raises(NotFound, match="is not a file"):
            run.log_artifacts({"ok.txt": b, "gone.txt": tmp_path / "missing"})
        with pytest.raises(InvalidInput, match="artifact name"):
            run.log_artifacts({"../up.txt": b})
    info = t.get_run(run.id)
    assert [x.name for x in info.artifacts] == ["model/a.bin", "notes/b.txt"]  # nothing half-recorded
    assert t.read_artifact(run.id, "notes/b.txt") == a.read_bytes()


def test_datasets_are_recorded_with_lineage(ws: Workspace, tracker: Tracker, tmp_path: Path) -> None:
    from loopml.data.ingest import ingest
    from loopml.data.sources import open_source

    csv = tmp_path / "train.csv"
    pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]}).to_csv(csv, index=False)
    info = ingest(ws, open_source(str(csv)), "train")
    with tracker.start_run() as run:
        run.log_dataset(info)
        run.log_dataset("train:1", role="validation")
        run.log_dataset(info)  # recorded once
        with pytest.raises(NotFound):
            run.log_dataset("nope")
    got = tracker.get_run(run.id)
    assert sorted((d.ref, d.role) for d in got.datasets) == [("train:1", "train"), ("train:1", "validation")]
    assert got.datasets[0].id == info.id and got.datasets[0].content_hash == info.content_hash
    edges = ws.lineage.downstream(info.entity, depth=1)
    assert [(e.relation, e.dst) for e in edges] == [("used_by", EntityRef("run", run.id))]


def test_code_version_is_captured_from_the_git_repository(ws: Workspace, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "train.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    monkeypatch.chdir(repo)
    t = Tracker(ws)
    with t.start_run() as clean:
        pass
    (repo / "train.py").write_text("print(2)\n")
    t2 = Tracker(ws)  # the code version is read once per tracker and folder
    with t2.start_run() as dirty:
        pass
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with t2.start_run() as outside:
        pass
    cv = t.get_run(clean.id).code_version
    assert cv is not None and cv.commit == head and cv.dirty is False
    assert Path(cv.repo).resolve() == repo.resolve()
    cv2 = t.get_run(dirty.id).code_version
    assert cv2 is not None and cv2.commit == head and cv2.dirty is True
    assert t.get_run(outside.id).code_version is None
    t.close()
    t2.close()


def test_concurrent_runs_from_two_threads(any_tracker: Tracker) -> None:
    t = any_tracker
    errors: list[BaseException] = []
    ids: list[str] = []

    def work(i: int) -> None:
        try:
            with t.start_run(experiment="threads", name=f"worker-{i}") as run:
                ids.append(run.id)
                for step in range(3000):
                    run.log_metric("loss", step * i, step=step)
                    if step % 500 == 0:
                        run.log_params({f"p{step}": i})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in (1, 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for rid in ids:
        info = t.get_run(rid)
        i = int(info.name[-1])
        history = t.metric_history(rid, "loss")
        assert len(history) == 3000 and history[-1].value == 2999 * i
        assert info.metrics == {"loss": 2999 * i} and len(info.params) == 6
        assert info.status == "FINISHED"


def test_background_flusher_makes_points_visible_to_other_processes(ws: Workspace) -> None:
    t = Tracker(ws, flush_interval=0.05, capture_code_version=False)
    run = t.start_run(experiment="live")
    run.log_metric("loss", 0.5)
    other = Workspace.open(ws.home)  # another connection, as another process would have
    reader = Tracker(other, flush_interval=0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if reader.metric_history(run.id, "loss"):
                break
        except NotFound:
            pass
        time.sleep(0.02)
    info = reader.get_run(run.id)
    assert info.status == "RUNNING" and info.metrics == {"loss": 0.5}
    run.end()
    assert reader.get_run(run.id).status == "FINISHED"
    t.close()
    reader.close()
    other.close()


def test_size_threshold_writes_without_waiting(ws: Workspace) -> None:
    t = Tracker(ws, flush_interval=0, batch_size=100, capture_code_version=False)
    with t.start_run() as run:
        for i in range(100 * 20 + 5):  # past 20 batches the logging call writes itself
            run.log_metric("x", i)
        assert t._writer.pending() < 100 * 20
    assert len(t.metric_history(run.id, "x")) == 2005
    t.close()


def test_experiments_and_lookup_by_prefix(tracker: Tracker) -> None:
    with tracker.start_run(experiment="a") as r1:
        pass
    with tracker.start_run(experiment="b"):
        pass
    with tracker.start_run(experiment="a"):
        pass
    exps = tracker.list_experiments()
    assert [(e.name, e.run_count) for e in exps] == [("a", 2), ("b", 1)]
    assert exps[0].last_run_at is not None
    assert tracker.get_run(r1.id[:10]).id == r1.id
    assert tracker.get_run(r1.id[4:14]).id == r1.id
    with pytest.raises(NotFound, match="no run 'zz'"):
        tracker.get_run("zz")
    with pytest.raises(InvalidInput, match="empty"):
        tracker.get_run("")


def test_ambiguous_prefix(tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml._util import new_id

    ids = iter(["run-abcd0001", "run-abcd0002"])
    monkeypatch.setattr("loopml.track.tracker.new_id",
                        lambda prefix: next(ids) if prefix == "run" else new_id(prefix))
    for _ in range(2):
        tracker.start_run().end()
    with pytest.raises(InvalidInput, match="prefix 'abcd' is ambiguous"):
        tracker.get_run("abcd")
    assert tracker.get_run("abcd0002").id == "run-abcd0002"


def test_a_dropped_tracker_still_writes_its_buffer(ws: Workspace) -> None:
    import gc

    t = Tracker(ws, flush_interval=60, capture_code_version=False)
    with t.start_run() as run:
        run_id = run.id
    late = t.start_run()  # open: keeps the tracker alive until exit ends it
    late.end()
    t._writer.add_metric(run_id, "late", 0, 1.0, time.time())  # buffered after the end
    del t, run, late
    gc.collect()
    with Tracker(ws) as reader:
        assert reader.metric_history(run_id, "late")[0].value == 1.0


def _child(tracker: Tracker, parent_run_id: str) -> None:
    tracker.flush()  # must not write the parent's buffered points a second time
    with tracker.start_run(experiment="fork", name="child", parent_run_id=parent_run_id) as run:
        run.log_metric("x", 2.0)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_does_not_write_the_parents_buffer(ws: Workspace) -> None:
    import multiprocessing

    t = Tracker(ws, flush_interval=0, capture_code_version=False)
    with t.start_run(experiment="fork", name="parent") as parent:
        t.flush()
        for i in range(100):
            parent.log_metric("x", float(i))  # still buffered when the child is forked
        proc = multiprocessing.get_context("fork").Process(target=_child, args=(t, parent.id))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
    assert len(t.metric_history(parent.id, "x")) == 100
    (child,) = t.child_runs(parent.id)
    assert child.name == "child" and child.metrics == {"x": 2.0} and child.status == "FINISHED"
    t.close()
