"""Data capture: what endpoints were asked and what they answered.

The file layout and line format are SageMaker's (see the reference's "Data
capture and Model Monitor" section), so tools that read Model Monitor capture
files read ours::

    {artifact_root}/capture/{endpoint}/{variant}/yyyy/mm/dd/hh/{uuid}.jsonl

one JSON line per request::

    {"captureData": {"endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                                        "data": "5,99.0,4", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<caller id>",
                       "inferenceTime": "2026-01-02T03:04:05.123456Z",
                       "variant": "v1", "model": "churn:3", "inputColumns": ["a", "b"], "latencyMs": 1.2},
     "eventVersion": "0"}

loopml adds ``variant``, ``model``, ``inputColumns`` (so CSV inputs can be
read back by name) and ``latencyMs`` to ``eventMetadata``.

:class:`CaptureWriter` samples and queues records on the request path and
writes them from a background thread, so capture never blocks or fails a
request (a full queue drops the record and counts it). :func:`read_capture`
turns a time window of capture files back into a table, one row per input
record, for the monitors.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import logging
import os
import queue
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

from loopml._util import as_utc, check_name

if TYPE_CHECKING:
    import fsspec
    import pandas as pd

    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the folder under the artifact root that holds capture files
CAPTURE_DIR = "capture"
_EVENT_VERSION = "0"


def capture_root(ws: Workspace) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of the workspace's capture files."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(ws.settings.artifact_root)
    return fs, f"{root.rstrip('/')}/{CAPTURE_DIR}"


def _encoding(content_type: str) -> str:
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct in ("text/csv", "text/plain"):
        return "CSV"
    if ct.endswith("json") or ct.endswith("jsonlines") or ct in ("application/jsonl", "application/x-ndjson"):
        return "JSON"
    return "BASE64"


def _payload(data: bytes, content_type: str, mode: str) -> dict[str, str]:
    enc = _encoding(content_type)
    if enc != "BASE64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            enc = "BASE64"
    if enc == "BASE64":
        text = base64.b64encode(data).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": text, "encoding": enc}


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Item:
    variant: str
    model: str
    inference_id: str | None
    request_body: bytes
    request_content_type: str
    response_body: bytes
    response_content_type: str
    latency_ms: float
    input_columns: Sequence[str]
    time: datetime


class CaptureWriter:
    """Samples requests and writes them to capture files from a background thread.

    Parameters
    ----------
    ws
        The workspace (capture files go under its artifact root).
    endpoint
        The endpoint name (the first folder level).
    sampling_percentage
        Share of requests captured, 0-100.
    flush_interval_s
        At most this long between a request and its line reaching a file.
    max_queue
        Records waiting to be written; past it new records are dropped (and counted).

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.serve.capture import CaptureWriter, read_capture
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> w = CaptureWriter(ws, "churn")
    >>> w.record(variant="v1", model="churn:1", inference_id="req-1",
    ...          request_body=b'[{"x": 1.5}]', request_content_type="application/json",
    ...          response_body=b'{"predictions": [{"prediction": 0.7}]}',
    ...          response_content_type="application/json", latency_ms=0.4, input_columns=["x"])
    True
    >>> w.close()
    >>> read_capture(ws, "churn")[["inference_id", "x", "prediction"]].to_dict("records")
    [{'inference_id': 'req-1', 'x': 1.5, 'prediction': 0.7}]
    >>> ws.close()
    """

    def __init__(
        self,
        ws: Workspace,
        endpoint: str,
        *,
        sampling_percentage: float = 100.0,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
    ) -> None:
        if not 0.0 <= float(sampling_percentage) <= 100.0:
            from loopml.errors import InvalidInput

            raise InvalidInput(f"capture sampling percentage must be between 0 and 100, got {sampling_percentage}")
        self.endpoint = check_name(endpoint, "endpoint")
        self.sampling = float(sampling_percentage) / 100.0
        self.flush_interval_s = float(flush_interval_s)
        self.fs, root = capture_root(ws)
        self.root = f"{root}/{self.endpoint}"
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._flushed = threading.Condition()
        self._pending = 0
        self.captured = 0
        self.dropped = 0
        self.errors = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"loopml-capture-{endpoint}", daemon=True)
        self._thread.start()

    # -- the request path ----------------------------------------------------------------------------
    def record(
        self,
        *,
        variant: str,
        model: str,
        inference_id: str | None,
        request_body: bytes,
        request_content_type: str,
        response_body: bytes,
        response_content_type: str,
        latency_ms: float,
        input_columns: Sequence[str] = (),
    ) -> bool:
        """Queue one request/response for capture; True when it was sampled and queued. Never raises."""
        try:
            if self._closed or (self.sampling < 1.0 and random.random() >= self.sampling):
                return False
            item = _Item(variant, model, inference_id, bytes(request_body), request_content_type or "application/json",
                         bytes(response_body), response_content_type or "application/json", float(latency_ms),
                         list(input_columns), datetime.now(timezone.utc))
            with self._flushed:
                self._pending += 1
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                with self._flushed:
                    self._pending -= 1
                self.dropped += 1
                return False
            return True
        except Exception:  # capture must never fail a request
            self.errors += 1
            return False

    # -- the writer thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        batch: list[_Item] = []
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=self.flush_interval_s)
                if item is None:
                    stop = True
                else:
                    batch.append(item)
                    # drain what is already there, up to a batch
                    while len(batch) < 5000:
                        nxt = self._queue.get_nowait()
                        if nxt is None:
                            stop = True
                            break
                        batch.append(nxt)
            except queue.Empty:
                pass
            if batch:
                self._write(batch)
                with self._flushed:
                    self._pending -= len(batch)
                    self._flushed.notify_all()
                batch = []

    def _write(self, batch: list[_Item]) -> None:
        groups: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        for it in batch:
            try:
                event_id = str(uuid.uuid4())
                line = {
                    "captureData": {
                        "endpointInput": _payload(it.request_body, it.request_content_type, "INPUT"),
                        "endpointOutput": _payload(it.response_body, it.response_content_type, "OUTPUT"),
                    },
                    "eventMetadata": {
                        "eventId": event_id, "inferenceId": it.inference_id or event_id,
                        "inferenceTime": _iso(it.time), "variant": it.variant, "model": it.model,
                        "inputColumns": list(it.input_columns), "latencyMs": round(it.latency_ms, 4),
                    },
                    "eventVersion": _EVENT_VERSION,
                }
                folder = f"{check_name(it.variant, 'variant')}/{it.time:%Y/%m/%d/%H}"
                groups[(folder, "")].append(orjson.dumps(line))
            except Exception:
                self.errors += 1
                log.exception("could not encode a capture record of endpoint %s", self.endpoint)
        for (folder, _), lines in groups.items():
            path = f"{self.root}/{folder}/{uuid.uuid4().hex}.jsonl"
            data = b"\n".join(lines) + b"\n"
            try:
                self._put(path, data)
                self.captured += len(lines)
            except Exception:
                self.errors += len(lines)
                log.exception("could not write capture file %s", path)

    def _put(self, path: str, data: bytes) -> None:
        from fsspec.implementations.local import LocalFileSystem

        parent = path.rsplit("/", 1)[0]
        if isinstance(self.fs, LocalFileSystem):
            os.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # readers never see half a file
        else:
            self.fs.pipe_file(path, data)  # object stores write whole objects

    # -- lifecycle -----------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written; False on timeout."""
        with self._flushed:
            return self._flushed.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading ------------------------------------------------------------------------------------------
def _hour_of(path: str, root: str) -> datetime | None:
    parts = path[len(root):].strip("/").split("/")
    # variant/yyyy/mm/dd/hh/file
    if len(parts) < 6:
        return None
    try:
        y, m, d, h = (int(p) for p in parts[1:5])
        return datetime(y, m, d, h, tzinfo=timezone.utc)
    except ValueError:
        return None


def capture_files(
    ws: Workspace,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    variant: str | None = None,
) -> list[str]:
    """Capture files of ``endpoint`` whose hour overlaps the window, oldest first."""
    fs, root = capture_root(ws)
    base = f"{root}/{check_name(endpoint, 'endpoint')}"
    if variant is not None:
        base_glob = f"{base}/{check_name(variant, 'variant')}/*/*/*/*/*.jsonl"
    else:
        base_glob = f"{base}/*/*/*/*/*/*.jsonl"
    since_u = as_utc(since) if since is not None else None
    until_u = as_utc(until) if until is not None else None
    out = []
    for path in fs.glob(base_glob):
        hour = _hour_of(path, base)
        if hour is None:
            continue
        if since_u is not None and hour + timedelta(hours=1) <= since_u:
            continue
        if until_u is not None and hour > until_u:
            continue
        out.append(path)
    return sorted(out, key=lambda p: (_hour_of(p, base) or datetime.min.replace(tzinfo=timezone.utc), p))


def _text(payload: dict[str, Any]) -> str:
    data = payload.get("data", "")
    if payload.get("encoding") == "BASE64":
        return base64.b64decode(data).decode("utf-8", errors="replace")
    return str(data)


def _records(payload: dict[str, Any], columns: Sequence[str]) -> list[dict[str, Any]]:
    ct = str(payload.get("observedContentType", "")).split(";", 1)[0].strip().lower()
    text = _text(payload)
    if ct in ("text/csv", "text/plain"):
        rows = []
        for row in csv.reader(io.StringIO(text)):
            if not row:
                continue
            rows.append({c: _csv_value(v) for c, v in zip(columns, row, strict=False)})
        return rows
    if "jsonlines" in ct or ct in ("application/jsonl", "application/x-ndjson"):
        items = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    else:
        doc = orjson.loads(text) if text.strip() else []
        if isinstance(doc, dict) and ("instances" in doc or "inputs" in doc):
            doc = doc.get("instances", doc.get("inputs"))
        items = doc if isinstance(doc, list) else [doc]
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(item)
        elif isinstance(item, list):
            out.append(dict(zip(columns, item, strict=False)))
    return out


def _csv_value(v: str) -> Any:
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def _outputs(payload: dict[str, Any]) -> list[dict[str, Any]]:
    ct = str(payload.get("observedContentType", "")).split(";", 1)[0].strip().lower()
    text = _text(payload)
    if ct in ("text/csv", "text/plain"):
        out = []
        for row in csv.reader(io.StringIO(text)):
            if not row:
                continue
            values = [_csv_value(v) for v in row]
            rec: dict[str, Any] = {"prediction": values[0]}
            if len(values) > 1:
                rec["probabilities"] = values[1:]
            out.append(rec)
        return out
    if "jsonlines" in ct or ct in ("application/jsonl", "application/x-ndjson"):
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]
    doc = orjson.loads(text) if text.strip() else {}
    if isinstance(doc, dict) and "predictions" in doc:
        preds = doc["predictions"]
        return [p if isinstance(p, dict) else {"prediction": p} for p in preds]
    if isinstance(doc, list):
        return [p if isinstance(p, dict) else {"prediction": p} for p in doc]
    return [doc if isinstance(doc, dict) else {"prediction": doc}]


def iter_capture(
    ws: Workspace,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    variant: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The raw capture lines (parsed JSON) of ``endpoint`` in the window, oldest file first."""
    fs, _ = capture_root(ws)
    since_u = as_utc(since) if since is not None else None
    until_u = as_utc(until) if until is not None else None
    for path in capture_files(ws, endpoint, since=since, until=until, variant=variant):
        with fs.open(path, "rb") as f:
            data = f.read()
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
                t = _parse_time(line["eventMetadata"]["inferenceTime"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("skipping a malformed capture line in %s", path)
                continue
            if (since_u is not None and t < since_u) or (until_u is not None and t > until_u):
                continue
            yield line


_RESERVED = frozenset({"event_id", "inference_id", "time", "variant", "model", "prediction", "probabilities"})


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def read_capture(
    ws: Workspace,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    variant: str | None = None,
) -> pd.DataFrame:
    """Captured requests of ``endpoint`` in ``[since, until]`` as a table, one row per input record.

    Returns
    -------
    pandas.DataFrame
        ``event_id, inference_id, time, variant, model``, one column per input
        field, ``prediction`` and ``probabilities`` (a list, or None). A
        request of N records gives N rows; rows after the first get
        ``inference_id`` suffixed ``:i``. Empty (with those columns) when
        nothing was captured in the window.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    input_cols: dict[str, None] = {}
    for line in iter_capture(ws, endpoint, since=since, until=until, variant=variant):
        meta = line.get("eventMetadata", {})
        data = line.get("captureData", {})
        columns = list(meta.get("inputColumns") or [])
        try:
            records = _records(data.get("endpointInput", {}), columns)
            outputs = _outputs(data.get("endpointOutput", {})) if "endpointOutput" in data else []
        except (orjson.JSONDecodeError, ValueError, TypeError):
            log.warning("skipping an undecodable capture record %s", meta.get("eventId"))
            continue
        t = _parse_time(meta["inferenceTime"])
        for i, rec in enumerate(records):
            out = outputs[i] if i < len(outputs) else {}
            row = {
                "event_id": meta.get("eventId"),
                "inference_id": meta.get("inferenceId") if i == 0 else f"{meta.get('inferenceId')}:{i}",
                "time": t, "variant": meta.get("variant"), "model": meta.get("model"),
            }
            for k, v in rec.items():
                input_cols.setdefault(k, None)
                row[f"\0{k}"] = v
            row["prediction"] = out.get("prediction")
            row["probabilities"] = out.get("probabilities")
            rows.append(row)
    fixed = ["event_id", "inference_id", "time", "variant", "model"]
    names = fixed + [f"input.{k}" if k in _RESERVED else k for k in input_cols] + ["prediction", "probabilities"]
    if not rows:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        frame["time"] = pd.Series(dtype="datetime64[ns, UTC]")
        return frame
    table = {c: [r.get(c) for r in rows] for c in fixed}
    for k in input_cols:  # an input field named like a fixed column is kept as ``input.<name>``
        table[f"input.{k}" if k in _RESERVED else k] = [r.get(f"\0{k}") for r in rows]
    table["prediction"] = [r["prediction"] for r in rows]
    table["probabilities"] = [r["probabilities"] for r in rows]
    frame = pd.DataFrame(table, columns=list(dict.fromkeys(names)))
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


__all__ = ["CAPTURE_DIR", "CaptureWriter", "capture_files", "capture_root", "iter_capture", "read_capture"]
