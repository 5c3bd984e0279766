"""Ground truth: the true labels of captured predictions, uploaded later and joined by inference id.

Accepted inputs (one file per upload):

- SageMaker Model Monitor's JSON lines, one label per line::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<inference id>"}, "eventVersion": "0"}

  (``encoding`` ``CSV``: the first field of ``data``; ``JSON``: the decoded
  value, or its ``label`` key; ``BASE64``: decoded, then read as CSV);
- CSV with a header holding ``inference_id`` and ``label`` columns;
- JSON lines (or a JSON array) of ``{"inference_id": ..., "label": ...}``;
- a pandas DataFrame with those two columns.

Each upload is stored as one Parquet file (``inference_id``, ``label`` as
text, ``uploaded_at``) under the artifact root's
``ground_truth/{endpoint}/`` folder, written atomically and named by upload
time, so no database table is needed and the files sort oldest first. When
an id is labelled twice the last label wins (later upload, later line).
Labels are kept as text and converted to the model's classes (or to numbers
for regression) when a monitor joins them with the captured predictions.

Ids that match no captured request are counted and reported; an upload
where no id matches is refused (it is almost always the wrong endpoint or
the wrong id column).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._util import as_utc, check_name, utcnow
from loopml.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import fsspec
    import pandas as pd

    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the folder under the artifact root that holds ground-truth uploads
GROUND_TRUTH_DIR = "ground_truth"
#: the column of the true label in :func:`labelled_predictions`'s frame
GROUND_TRUTH = "_ground_truth"
_ID_COLUMNS = ("inference_id", "inferenceId", "eventId", "event_id")


@dataclass(frozen=True)
class GroundTruthUpload:
    """What :func:`ingest_ground_truth` stored and how it matched the captured requests."""

    endpoint: str
    #: labels stored (after duplicates in the upload were resolved, last wins)
    rows: int
    #: lines whose id was repeated later in the same upload (they were dropped)
    duplicates: int
    #: ids that match a captured request
    matched: int
    #: ids that match no captured request (stored anyway: the capture may be late)
    unknown: int
    #: up to 20 of the unknown ids
    unknown_ids: list[str] = field(default_factory=list)
    path: str = ""
    uploaded_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {"endpoint": self.endpoint, "rows": self.rows, "duplicates": self.duplicates,
                "matched": self.matched, "unknown": self.unknown, "unknown_ids": self.unknown_ids,
                "path": self.path, "uploaded_at": self.uploaded_at.isoformat() if self.uploaded_at else None}


def ground_truth_root(ws: Workspace, endpoint: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and folder of ``endpoint``'s ground-truth uploads."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(ws.settings.artifact_root)
    return fs, f"{root.rstrip('/')}/{GROUND_TRUTH_DIR}/{check_name(endpoint, 'endpoint')}"


# -- parsing ---------------------------------------------------------------------------------------
def _label_text(value: Any, where: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        raise InvalidInput(f"{where} has no label")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise InvalidInput(f"{where}: the label must be one value, got {json.dumps(value)[:80]}")
    text = str(value).strip()
    if not text:
        raise InvalidInput(f"{where} has an empty label")
    return text


def _id_text(value: Any, where: str) -> str:
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        raise InvalidInput(f"{where} has no inference id")
    return str(value).strip()


def _sagemaker_label(gt: Any, where: str) -> str:
    if not isinstance(gt, dict) or "data" not in gt:
        raise InvalidInput(f"{where}: groundTruthData must be an object with 'data' and 'encoding'")
    data = gt.get("data")
    encoding = str(gt.get("encoding") or "CSV").upper()
    if encoding == "BASE64":
        try:
            data = base64.b64decode(str(data)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"{where}: groundTruthData.data is not valid base64 UTF-8 text") from None
        encoding = "CSV"
    if encoding == "CSV":
        fields = next(csv.reader(io.StringIO(str(data))), [])
        return _label_text(fields[0] if fields else None, where)
    if encoding == "JSON":
        try:
            value = json.loads(data) if isinstance(data, str) else data
        except ValueError:
            raise InvalidInput(f"{where}: groundTruthData.data is not valid JSON") from None
        if isinstance(value, dict):
            value = value.get("label", value.get("groundTruthLabel"))
        return _label_text(value, where)
    raise InvalidInput(f"{where}: groundTruthData.encoding {encoding!r} is not CSV, JSON or BASE64")


def _from_object(obj: Any, where: str) -> tuple[str, str]:
    if not isinstance(obj, dict):
        raise InvalidInput(f"{where} is not a JSON object")
    if "groundTruthData" in obj:
        meta = obj.get("eventMetadata") or {}
        ident = meta.get("eventId", meta.get("inferenceId")) if isinstance(meta, dict) else None
        return _id_text(ident, f"{where} (eventMetadata.eventId)"), _sagemaker_label(obj["groundTruthData"], where)
    ident = next((obj[k] for k in _ID_COLUMNS if k in obj), None)
    if "label" not in obj:
        raise InvalidInput(f"{where} has neither groundTruthData nor a 'label' key; each line needs "
                           "an inference id and a label")
    return _id_text(ident, where), _label_text(obj["label"], where)


def _parse_json(text: str, name: str) -> list[tuple[str, str]]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as e:
            raise InvalidInput(f"{name} is not valid JSON: {e}") from None
        return [_from_object(o, f"{name} item {i + 1}") for i, o in enumerate(items)]
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise InvalidInput(f"{name} line {i} is not valid JSON") from None
        out.append(_from_object(obj, f"{name} line {i}"))
    return out


def _parse_frame(df: pd.DataFrame, name: str) -> list[tuple[str, str]]:
    id_col = next((c for c in _ID_COLUMNS if c in df.columns), None)
    if id_col is None or "label" not in df.columns:
        raise InvalidInput(f"{name} needs the columns inference_id and label; it has {list(df.columns)[:10]}")
    ids = df[id_col].tolist()
    labels = df["label"].tolist()
    return [(_id_text(i, f"{name} row {n + 1}"), _label_text(v, f"{name} row {n + 1}"))
            for n, (i, v) in enumerate(zip(ids, labels, strict=True))]


def parse_ground_truth(source: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Read a ground-truth file (or frame) into ``inference_id``, ``label`` (text) rows, in file order.

    Raises
    ------
    InvalidInput
        An unreadable file, a line without id or label, an unknown encoding, no rows.
    NotFound
        The file does not exist.

    Examples
    --------
    >>> import pandas as pd
    >>> parse_ground_truth(pd.DataFrame({"inference_id": ["a", "b"], "label": [1, 0]})).values.tolist()
    [['a', '1'], ['b', '0']]
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        pairs = _parse_frame(source, "the ground-truth frame")
        name = "the ground-truth frame"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise NotFound(f"no ground-truth file {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is not UTF-8 text; give JSON lines or CSV") from None
        suffix = path.suffix.lower()
        if suffix == ".csv" or (suffix not in (".json", ".jsonl", ".ndjson") and not text.lstrip().startswith(("{", "["))):
            try:
                frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            except (ValueError, pd.errors.ParserError) as e:
                raise InvalidInput(f"{path} is not valid CSV: {e}") from None
            frame = frame.replace({"": None})
            pairs = _parse_frame(frame, name)
        else:
            pairs = _parse_json(text, name)
    if not pairs:
        raise InvalidInput(f"{name} holds no labels")
    return pd.DataFrame(pairs, columns=["inference_id", "label"])


# -- storing ---------------------------------------------------------------------------------------
def _write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    from fsspec.implementations.local import LocalFileSystem

    parent = path.rsplit("/", 1)[0]
    if isinstance(fs, LocalFileSystem):
        os.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        fs.pipe_file(path, data)  # object stores write whole objects


def _captured_ids(ws: Workspace, endpoint: str) -> set[str]:
    from loopml.serve.capture import read_capture

    cap = read_capture(ws, endpoint)
    return set(cap["inference_id"].dropna().astype(str).tolist()) if len(cap) else set()


def ingest_ground_truth(
    ws: Workspace,
    endpoint: str,
    source: str | os.PathLike[str] | pd.DataFrame,
) -> GroundTruthUpload:
    """Store the true labels of ``endpoint``'s captured predictions (see the module docstring for formats).

    Parameters
    ----------
    ws
        The workspace.
    endpoint
        The endpoint whose captured requests the labels belong to.
    source
        A file path (JSON lines in SageMaker's ground-truth format, JSON lines
        or CSV with ``inference_id`` and ``label``), or a DataFrame.

    Returns
    -------
    GroundTruthUpload
        Rows stored, duplicates dropped, ids matched and unknown.

    Raises
    ------
    InvalidInput
        Bad file content, or no id matches a captured request (nothing is stored then).
    NotFound
        The file does not exist.

    Examples
    --------
    >>> up = ingest_ground_truth(ws, "churn-ep", "labels.jsonl")   # doctest: +SKIP
    >>> up.matched, up.unknown                                      # doctest: +SKIP
    (980, 20)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_name(endpoint, "endpoint")
    frame = parse_ground_truth(source)
    n_lines = len(frame)
    frame = frame.drop_duplicates(subset="inference_id", keep="last").reset_index(drop=True)
    duplicates = n_lines - len(frame)
    known = _captured_ids(ws, endpoint)
    is_known = frame["inference_id"].isin(known)
    matched = int(is_known.sum())
    unknown_ids = frame.loc[~is_known, "inference_id"].tolist()
    if matched == 0:
        if not known:
            raise InvalidInput(
                f"endpoint {endpoint!r} has no captured requests, so its ground truth cannot be matched; "
                "deploy it with data capture on (capture_percentage > 0) and send requests first"
            )
        sample = sorted(known)[:3]
        raise InvalidInput(
            f"none of the {len(frame)} inference ids in the upload matches a captured request of endpoint "
            f"{endpoint!r} (e.g. {unknown_ids[:3]}; captured ids look like {sample}); check the endpoint "
            "and that the ids are the inference ids the requests were sent with"
        )
    now = utcnow()
    table = pa.table({
        "inference_id": pa.array(frame["inference_id"].tolist(), pa.string()),
        "label": pa.array(frame["label"].tolist(), pa.string()),
        "uploaded_at": pa.array([now] * len(frame), pa.timestamp("us", tz="UTC")),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink)
    fs, root = ground_truth_root(ws, endpoint)
    path = f"{root}/{now:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.parquet"
    _write_atomic(fs, path, sink.getvalue())
    if unknown_ids:
        log.warning("%d of %d ground-truth ids of endpoint %s match no captured request",
                    len(unknown_ids), len(frame), endpoint)
    return GroundTruthUpload(endpoint=endpoint, rows=len(frame), duplicates=duplicates, matched=matched,
                             unknown=len(unknown_ids), unknown_ids=unknown_ids[:20], path=path, uploaded_at=now)


def read_ground_truth(ws: Workspace, endpoint: str) -> pd.DataFrame:
    """Every stored label of ``endpoint``: ``inference_id``, ``label`` (text), ``uploaded_at``; last wins per id."""
    import pandas as pd
    import pyarrow.parquet as pq

    fs, root = ground_truth_root(ws, endpoint)
    paths = sorted(p for p in fs.glob(f"{root}/*.parquet") if not p.rsplit("/", 1)[-1].startswith("."))
    if not paths:
        return pd.DataFrame({"inference_id": pd.Series(dtype=object), "label": pd.Series(dtype=object),
                             "uploaded_at": pd.Series(dtype="datetime64[us, UTC]")})
    frames = []
    for p in paths:
        with fs.open(p, "rb") as f:
            frames.append(pq.read_table(f).to_pandas())
    out = pd.concat(frames, ignore_index=True)
    return out.drop_duplicates(subset="inference_id", keep="last").reset_index(drop=True)


def labelled_predictions(
    ws: Workspace,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    variant: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Captured predictions in the window joined with their ground truth (inner join on inference id).

    Returns
    -------
    (pandas.DataFrame, dict)
        The captured rows that have a label, with the label (text) in column
        ``_ground_truth``; and counts ``captured``, ``labelled``,
        ``unlabelled`` with a ``message`` saying what is missing when no row
        has a label.
    """
    from loopml.serve.capture import read_capture

    captured = read_capture(ws, endpoint, since=as_utc(since) if since else None,
                            until=as_utc(until) if until else None, variant=variant)
    facts: dict[str, Any] = {"captured": len(captured), "labelled": 0, "unlabelled": len(captured)}
    if captured.empty:
        facts["message"] = f"endpoint {endpoint!r} has no captured requests in the window"
        return captured.assign(**{GROUND_TRUTH: []}), facts
    truth = read_ground_truth(ws, endpoint)
    merged = captured.merge(truth[["inference_id", "label"]].rename(columns={"label": GROUND_TRUTH}),
                            on="inference_id", how="inner")
    facts.update(labelled=len(merged), unlabelled=len(captured) - len(merged))
    if merged.empty:
        facts["message"] = (f"none of the {len(captured)} captured predictions of {endpoint!r} in the window has "
                            f"ground truth yet; upload labels with `loopml monitor ground-truth {endpoint} FILE`")
    return merged, facts


__all__ = [
    "GROUND_TRUTH",
    "GROUND_TRUTH_DIR",
    "GroundTruthUpload",
    "ground_truth_root",
    "ingest_ground_truth",
    "labelled_predictions",
    "parse_ground_truth",
    "read_ground_truth",
]
