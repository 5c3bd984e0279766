"""Ground truth: formats, storage (atomic Parquet per upload), last-wins merging, unknown ids."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest

from loopml import Workspace
from loopml.errors import InvalidInput, NotFound
from loopml.monitor.ground_truth import (
    GROUND_TRUTH,
    ground_truth_root,
    ingest_ground_truth,
    labelled_predictions,
    parse_ground_truth,
    read_ground_truth,
)
from loopml.serve.capture import CaptureWriter


def _capture(ws: Workspace, endpoint: str, ids: list[str]) -> None:
    with CaptureWriter(ws, endpoint, flush_interval_s=0.05) as w:
        for i, ident in enumerate(ids):
            w.record(variant="v1", model="m:1", inference_id=ident, request_body=json.dumps([{"x": i}]).encode(),
                     request_content_type="application/json",
                     response_body=json.dumps({"predictions": [{"prediction": i % 2}]}).encode(),
                     response_content_type="application/json", latency_ms=1.0, input_columns=["x"])
        assert w.flush()


def test_parse_every_format(tmp_path: Path) -> None:
    sm = tmp_path / "gt.jsonl"
    sm.write_text("\n".join([
        json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "a"},
                    "eventVersion": "0"}),
        "",
        json.dumps({"groundTruthData": {"data": json.dumps({"label": "yes"}), "encoding": "JSON"},
                    "eventMetadata": {"eventId": "b"}, "eventVersion": "0"}),
        json.dumps({"groundTruthData": {"data": base64.b64encode(b"0,extra").decode(), "encoding": "BASE64"},
                    "eventMetadata": {"eventId": "c"}, "eventVersion": "0"}),
        json.dumps({"groundTruthData": {"data": "2.5", "encoding": "JSON"}, "eventMetadata": {"eventId": "d"}}),
    ]))
    assert parse_ground_truth(sm).values.tolist() == [["a", "1"], ["b", "yes"], ["c", "0"], ["d", "2.5"]]

    csv = tmp_path / "gt.csv"
    csv.write_text("inference_id,label,other\nx,1,q\ny,0,r\n")
    assert parse_ground_truth(csv).values.tolist() == [["x", "1"], ["y", "0"]]

    simple = tmp_path / "simple.jsonl"
    simple.write_text('{"inference_id": "p", "label": 1}\n{"inference_id": 7, "label": true}\n')
    assert parse_ground_truth(simple).values.tolist() == [["p", "1"], ["7", "true"]]

    arr = tmp_path / "arr.json"
    arr.write_text('[{"inference_id": "p", "label": "cat"}]')
    assert parse_ground_truth(arr).values.tolist() == [["p", "cat"]]


@pytest.mark.parametrize(("name", "text", "match"), [
    ("a.jsonl", '{"groundTruthData": {"data": "1"}}\n', r"line 1 \(eventMetadata.eventId\) has no inference id"),
    ("b.jsonl", '{"groundTruthData": {"data": "1", "encoding": "XML"}, "eventMetadata": {"eventId": "a"}}\n',
     "encoding 'XML' is not CSV, JSON or BASE64"),
    ("c.jsonl", '{"inference_id": "a"}\n', "neither groundTruthData nor a 'label'"),
    ("d.jsonl", "not json\n", "line 1 is not valid JSON"),
    ("e.csv", "id,value\n1,2\n", "needs the columns inference_id and label"),
    ("f.csv", "inference_id,label\na,\n", "row 1 has no label"),
    ("g.jsonl", "\n\n", "holds no labels"),
])
def test_bad_files_say_what_is_wrong(tmp_path: Path, name: str, text: str, match: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InvalidInput, match=match):
        parse_ground_truth(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no ground-truth file"):
        parse_ground_truth(tmp_path / "nope.jsonl")


def test_ingest_counts_unknown_ids_and_last_wins(ws: Workspace, tmp_path: Path) -> None:
    _capture(ws, "ep", ["r1", "r2", "r3"])
    up = ingest_ground_truth(ws, "ep", pd.DataFrame({"inference_id": ["r1", "r2", "zz", "r1"],
                                                     "label": ["0", "1", "1", "1"]}))
    assert (up.rows, up.duplicates, up.matched, up.unknown, up.unknown_ids) == (3, 1, 2, 1, ["zz"])
    fs, root = ground_truth_root(ws, "ep")
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)] == [up.path.rsplit("/", 1)[-1]]
    assert up.path.endswith(".parquet") and up.to_dict()["unknown"] == 1
    # a later upload relabels r2: last wins
    ingest_ground_truth(ws, "ep", pd.DataFrame({"inference_id": ["r2", "r3"], "label": ["0", "0"]}))
    gt = read_ground_truth(ws, "ep").set_index("inference_id")["label"].to_dict()
    assert gt == {"r1": "1", "r2": "0", "r3": "0", "zz": "1"}

    merged, facts = labelled_predictions(ws, "ep")
    assert (facts["captured"], facts["labelled"], facts["unlabelled"]) == (3, 3, 0)
    assert dict(zip(merged["inference_id"], merged[GROUND_TRUTH], strict=True)) == {"r1": "1", "r2": "0", "r3": "0"}
    assert sorted(merged["x"]) == [0, 1, 2]


def test_all_unknown_or_no_capture_is_refused(ws: Workspace) -> None:
    gt = pd.DataFrame({"inference_id": ["a", "b"], "label": ["1", "0"]})
    with pytest.raises(InvalidInput, match="endpoint 'ep' has no captured requests"):
        ingest_ground_truth(ws, "ep", gt)
    _capture(ws, "ep", ["r1"])
    with pytest.raises(InvalidInput, match=r"none of the 2 inference ids .* captured ids look like \['r1'\]"):
        ingest_ground_truth(ws, "ep", gt)
    assert read_ground_truth(ws, "ep").empty  # nothing stored
    with pytest.raises(InvalidInput, match="endpoint name"):
        ingest_ground_truth(ws, "../x", gt)


def test_labelled_predictions_without_labels_or_capture(ws: Workspace) -> None:
    merged, facts = labelled_predictions(ws, "ep")
    assert merged.empty and "no captured requests" in facts["message"]
    _capture(ws, "ep", ["r1", "r2"])
    merged, facts = labelled_predictions(ws, "ep")
    assert merged.empty and facts["captured"] == 2
    assert "none of the 2 captured predictions" in facts["message"] and "loopml monitor ground-truth ep" in facts["message"]
