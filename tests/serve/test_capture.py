"""Data capture: the writer's file layout and line format, and reading a window back."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from loopml.errors import InvalidInput
from loopml.serve.capture import CaptureWriter, capture_files, capture_root, read_capture


def _record(w: CaptureWriter, i: int, **kw: object) -> bool:
    args: dict[str, object] = dict(
        variant="v1", model="churn:1", inference_id=f"req-{i}",
        request_body=json.dumps([{"x": float(i), "plan": "basic"}]).encode(),
        request_content_type="application/json",
        response_body=json.dumps({"predictions": [{"prediction": "yes", "probabilities": [0.2, 0.8]}],
                                  "classes": ["no", "yes"]}).encode(),
        response_content_type="application/json", latency_ms=1.5, input_columns=["x", "plan"],
    )
    args.update(kw)
    return w.record(**args)  # type: ignore[arg-type]


def test_lines_follow_the_sagemaker_layout_and_format(ws):
    with CaptureWriter(ws, "churn", flush_interval_s=0.05) as w:
        assert _record(w, 1)
        assert w.flush()
    fs, root = capture_root(ws)
    files = capture_files(ws, "churn")
    assert len(files) == 1
    rel = files[0][len(root):].strip("/").split("/")
    now = datetime.now(timezone.utc)
    assert rel[0] == "churn" and rel[1] == "v1" and rel[2] == f"{now:%Y}" and rel[-1].endswith(".jsonl")
    line = json.loads(fs.cat_file(files[0]).decode().splitlines()[0])
    assert line["eventVersion"] == "0"
    inp = line["captureData"]["endpointInput"]
    assert inp == {"observedContentType": "application/json", "mode": "INPUT",
                   "data": '[{"x": 1.0, "plan": "basic"}]', "encoding": "JSON"}
    meta = line["eventMetadata"]
    assert meta["inferenceId"] == "req-1" and meta["variant"] == "v1" and meta["model"] == "churn:1"
    assert meta["inferenceTime"].endswith("Z") and meta["inputColumns"] == ["x", "plan"]


def test_read_back_json_csv_jsonl_and_binary(ws):
    with CaptureWriter(ws, "ep", flush_interval_s=0.05) as w:
        _record(w, 0)
        _record(w, 1, request_body=b"2.5,pro\n3.5,basic\n", request_content_type="text/csv",
                response_body=b"no,0.9,0.1\nyes,0.3,0.7\n", response_content_type="text/csv")
        _record(w, 2, request_body=b'{"x": 4.0, "plan": "pro"}\n', request_content_type="application/jsonlines",
                response_body=b'{"prediction": "no"}\n', response_content_type="application/jsonlines",
                variant="v2")
        _record(w, 3, request_body=b'{"instances": [[5.0, "basic"]]}', inference_id=None)
    df = read_capture(ws, "ep")
    assert len(df) == 5
    by_id = df.set_index("inference_id")
    assert by_id.loc["req-0", "prediction"] == "yes" and by_id.loc["req-0", "probabilities"] == [0.2, 0.8]
    assert by_id.loc["req-1", "x"] == 2.5 and by_id.loc["req-1:1", "plan"] == "basic"
    assert by_id.loc["req-1:1", "probabilities"] == [0.3, 0.7]
    assert by_id.loc["req-2", "variant"] == "v2"
    # no caller id: the event id stands in
    last = df[df["x"] == 5.0].iloc[0]
    assert last["inference_id"] == last["event_id"] and last["plan"] == "basic"
    assert str(df["time"].dtype).startswith("datetime64") and df["time"].dt.tz is not None
    assert set(read_capture(ws, "ep", variant="v2")["inference_id"]) == {"req-2"}


def test_time_window_and_empty_window(ws):
    with CaptureWriter(ws, "ep", flush_interval_s=0.05) as w:
        for i in range(3):
            _record(w, i)
    now = datetime.now(timezone.utc)
    assert len(read_capture(ws, "ep", since=now - timedelta(minutes=5))) == 3
    empty = read_capture(ws, "ep", since=now + timedelta(minutes=5))
    assert empty.empty and {"inference_id", "time", "prediction"} <= set(empty.columns)
    assert read_capture(ws, "never-deployed").empty


def test_sampling_and_bad_settings(ws):
    with CaptureWriter(ws, "ep", sampling_percentage=0.0) as w:
        assert not _record(w, 1)
    with CaptureWriter(ws, "ep2", sampling_percentage=30.0, flush_interval_s=0.05) as w:
        kept = sum(_record(w, i) for i in range(2000))
    assert 450 < kept < 750  # binomial(2000, 0.3): mean 600, sd 20
    assert len(read_capture(ws, "ep2")) == kept
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        CaptureWriter(ws, "ep", sampling_percentage=150)


def test_record_never_raises_and_full_queue_drops(ws):
    w = CaptureWriter(ws, "ep", max_queue=1, flush_interval_s=5)
    try:
        assert not w.record(variant="v1", model="m:1", inference_id=None, request_body=None,  # type: ignore[arg-type]
                            request_content_type="application/json", response_body=b"",
                            response_content_type="application/json", latency_ms=0.0)
        assert w.errors == 1
        results = [_record(w, i) for i in range(50)]
        assert w.dropped >= 1 and results.count(True) + w.dropped == 50
    finally:
        w.close()


def test_concurrent_writers_lose_nothing(ws):
    w = CaptureWriter(ws, "ep", flush_interval_s=0.02)

    def send(k: int) -> None:
        for i in range(200):
            _record(w, k * 1000 + i)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    df = read_capture(ws, "ep")
    assert len(df) == 800 and df["inference_id"].is_unique
