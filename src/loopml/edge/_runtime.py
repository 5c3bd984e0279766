"""The edge runtime: predict from an exported bundle with numpy and ONNX Runtime only.

This file needs nothing but the standard library, numpy and onnxruntime, so
an export also ships a copy of it as ``loopml_edge.py``: a device without
loopml runs ``python loopml_edge.py BUNDLE --data '[{...}]'`` or imports it.

A bundle (``loopml models export M:V --format onnx --out DIR``) holds
``edge.json``, the manifest, and the graph it names: ``edge.onnx`` (the recipe
and the model in one graph: one named input per raw column) or, when some
recipe step has no ONNX translation, ``model.onnx`` on the feature matrix,
which then takes records that already went through the recipe.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING or __name__.startswith("loopml."):
    from loopml.errors import IntegrityError, InvalidInput
else:  # the copy shipped in a bundle: no loopml import, even where loopml is installed

    class InvalidInput(ValueError):
        """The input is not what the bundle takes."""

        http_status = 400
        code = "ValidationError"

    class IntegrityError(ValueError):
        """A bundle file does not match the hash in its manifest."""

        http_status = 500
        code = "IntegrityError"

FORMAT = "loopml.edge"
FORMAT_VERSION = 1
MANIFEST = "edge.json"
#: how a missing category reaches the graph
MISSING = "__missing__"
NAT = -(2**63)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)
    except (TypeError, ValueError):  # pandas.NA and friends
        return True


def _cat_str(v: Any) -> str:
    """A value as a category, as loopml's encoders read it (``3.0`` and ``3`` are one category)."""
    if type(v) is str:
        return v
    if _is_missing(v):
        return MISSING
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, np.generic):
        return _cat_str(v.item())
    return str(v)


def _wall_ns(v: Any, name: str) -> int:
    """A date/time value as nanoseconds since 1970 on its own wall clock."""
    if _is_missing(v):
        return NAT
    if isinstance(v, str):
        try:
            v = _dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise InvalidInput(f"field {name!r} got {v!r}, which is not an ISO 8601 date/time "
                               "(such as 2024-05-01 or 2024-05-01T13:45:00)") from None
    if isinstance(v, np.datetime64):
        return int(v.astype("datetime64[ns]").astype(np.int64))
    if isinstance(v, _dt.datetime):
        days = v.toordinal() - _EPOCH_ORDINAL
        secs = days * 86400 + v.hour * 3600 + v.minute * 60 + v.second
        return (secs * 1_000_000 + v.microsecond) * 1000 + int(getattr(v, "nanosecond", 0))
    if isinstance(v, _dt.date):
        return (v.toordinal() - _EPOCH_ORDINAL) * 86_400_000_000_000
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)  # nanoseconds, as pandas reads an integer
    raise InvalidInput(f"field {name!r} must be a date/time (ISO 8601 text), got {v!r}")


def _number(v: Any, name: str) -> float:
    if _is_missing(v):
        return math.nan
    if isinstance(v, (str, bytes)):
        raise InvalidInput(f"field {name!r} must be a number (or null), got the text {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InvalidInput(f"field {name!r} must be a number (or null), got {v!r}") from None


def encode(kind: str, name: str, values: Any) -> np.ndarray:
    """One column of values as the ``[N, 1]`` array the graph input ``name`` takes.

    ``number``: float64, missing as NaN; ``string``: text, missing as
    ``"__missing__"``; ``datetime``: int64 nanoseconds on the wall clock,
    missing as NaT.
    """
    arr = values if isinstance(values, np.ndarray) else None
    if kind == "number":
        if arr is not None and arr.dtype.kind in "fiub":
            return arr.astype(np.float64).reshape(-1, 1)
        return np.array([_number(v, name) for v in values], dtype=np.float64).reshape(-1, 1)
    if kind == "string":
        out = np.empty(len(values), dtype=object)
        try:
            out[:] = list(values) if arr is None else arr.reshape(-1)
        except (ValueError, TypeError):  # nested values: one by one
            for i, v in enumerate(values):
                out[i] = v
        is_text = np.frompyfunc(lambda v: type(v) is str, 1, 1)(out).astype(bool)
        for j in np.flatnonzero(~is_text).tolist():  # only what is not text already
            out[j] = _cat_str(out[j])
        return out.reshape(-1, 1)
    if kind == "datetime":
        if arr is not None and arr.dtype.kind == "M":
            return arr.astype("datetime64[ns]").view(np.int64).reshape(-1, 1)
        return np.array([_wall_ns(v, name) for v in values], dtype=np.int64).reshape(-1, 1)
    if kind == "features":
        raise InvalidInput("features are encoded by the bundle")  # pragma: no cover
    raise InvalidInput(f"input {name!r} has the unknown kind {kind!r}; this bundle needs a newer loopml.edge")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EdgeBundle:
    """A loaded bundle: predicts records with ONNX Runtime.

    Built by :func:`load`, which verifies the files first.

    Parameters
    ----------
    manifest
        The ``edge.json`` document.
    graph
        The bytes of the graph it names.
    threads
        ONNX Runtime intra-op threads (1 gives the lowest single-row latency).
    """

    def __init__(self, manifest: Mapping[str, Any], graph: bytes, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.manifest = dict(manifest)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self._inputs: list[tuple[str, str]] = [(str(i["name"]), str(i["kind"])) for i in manifest["inputs"]]
        pred = manifest["prediction"]
        self._output, self._rule = str(pred["output"]), str(pred["rule"])
        self._outputs = [self._output]
        classes = manifest.get("classes")
        self.classes: list[Any] | None = list(classes) if classes is not None else None
        self.layout: str = str(manifest.get("layout", "raw"))
        self._features: list[str] = list(manifest.get("features") or [])
        self._recipe_note = ""
        if self.layout == "features":
            bad = [f"step {s['step']} ({s['kind']}): {s.get('reason', '')}"
                   for s in (manifest.get("recipe") or {}).get("steps", []) if not s.get("converted")]
            if bad:
                self._recipe_note = (f" (the recipe stays outside this graph: {'; '.join(bad)}; apply recipe.json "
                                     "with loopml first)")

    @property
    def input_names(self) -> list[str]:
        """The fields each record must carry (raw columns, or features for a feature-matrix bundle)."""
        return list(self._features) if self.layout == "features" else [n for n, _ in self._inputs]

    def __repr__(self) -> str:
        return (f"EdgeBundle(model={self.manifest.get('model')!r}, layout={self.layout!r}, "
                f"inputs={len(self.input_names)})")

    # -- feeding ---------------------------------------------------------------------------------
    def _columns(self, data: Any) -> tuple[dict[str, Any], int]:
        """``data`` (records, one record or a dict of columns) as columns of equal length."""
        names = self.input_names
        if hasattr(data, "columns") and hasattr(data, "to_numpy") and not isinstance(data, Mapping):
            data = {str(c): data[c].to_numpy() for c in data.columns}  # a DataFrame, without importing pandas
        if isinstance(data, Mapping):
            if data and all(isinstance(v, (list, tuple, np.ndarray)) for v in data.values()):
                cols = dict(data)
                lengths = {len(v) for v in cols.values()}
                if len(lengths) > 1:
                    raise InvalidInput(f"the columns have different lengths {sorted(lengths)}")
                missing = [n for n in names if n not in cols]
                if missing:
                    raise InvalidInput(self._missing_msg(missing[0], "the data has no column"))
                return {n: cols[n] for n in names}, lengths.pop() if lengths else 0
            data = [data]
        if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
            raise InvalidInput(f"predict takes a list of records, one record (a dict) or a dict of columns, "
                               f"got {type(data).__name__}")
        out: dict[str, list[Any]] = {n: [] for n in names}
        for i, rec in enumerate(data):
            if not isinstance(rec, Mapping):
                raise InvalidInput(f"record {i} is {type(rec).__name__}, not an object of fields")
            for n in names:
                try:
                    out[n].append(rec[n])
                except KeyError:
                    raise InvalidInput(self._missing_msg(n, f"record {i} has no field")) from None
        return out, len(data)

    def _missing_msg(self, name: str, what: str) -> str:
        shown = ", ".join(self.input_names[:12]) + (" ..." if len(self.input_names) > 12 else "")
        return f"{what} {name!r}; this model reads {shown}{self._recipe_note}"

    def feeds(self, data: Any) -> tuple[dict[str, np.ndarray], int]:
        """The graph's input arrays for ``data``, and the number of rows."""
        cols, n = self._columns(data)
        if self.layout == "features":
            try:
                m = np.array([[_number(v, c) for v in cols[c]] for c in self._features], dtype=np.float32)
            except InvalidInput as e:
                raise InvalidInput(f"{e}{self._recipe_note}") from None
            return {self._inputs[0][0]: np.ascontiguousarray(m.T.reshape(n, len(self._features)))}, n
        return {name: encode(kind, name, cols[name]) for name, kind in self._inputs}, n

    # -- predicting -----------------------------------------------------------------------------------
    def run(self, data: Any) -> dict[str, np.ndarray]:
        """Every graph output for ``data``, by name (the raw ONNX Runtime arrays)."""
        feeds, _ = self.feeds(data)
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, feeds), strict=True))

    def _format(self, out: np.ndarray, n: int) -> list[dict[str, Any]]:
        if self._rule == "argmax":
            proba = np.asarray(out, dtype=np.float64).reshape(n, -1)
            codes = np.argmax(proba, axis=1)
            labels = self.classes or list(range(proba.shape[1]))
            return [{"prediction": labels[int(c)], "probabilities": p}
                    for c, p in zip(codes.tolist(), proba.tolist(), strict=True)]
        values = np.asarray(out).reshape(n, -1)
        if self._rule == "vector":
            return [{"prediction": row} for row in values.tolist()]
        return [{"prediction": v} for v in values[:, 0].tolist()]

    def predict(self, data: Any) -> list[dict[str, Any]]:
        """Predict rows.

        Parameters
        ----------
        data
            A list of records (dicts of field values), one record, a dict of
            columns (name -> list or array), or a DataFrame. Missing values may be None or NaN;
            dates/times may be ISO 8601 text, ``datetime`` or ``numpy.datetime64``.

        Returns
        -------
        list of dict
            One ``{"prediction": ...}`` per row, with ``"probabilities"`` (in
            the order of :attr:`classes`) for classifiers.
        """
        feeds, n = self.feeds(data)
        if n == 0:
            return []
        (out,) = self._session.run(self._outputs, feeds)
        return self._format(out, n)

    def predict_one(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Predict one record (a dict of field values): the single-row path."""
        if not isinstance(record, Mapping):
            raise InvalidInput(f"predict_one takes one record (a dict), got {type(record).__name__}")
        if self.layout == "features":
            return self.predict([record])[0]
        feeds = {}
        for name, kind in self._inputs:
            try:
                v = record[name]
            except KeyError:
                raise InvalidInput(self._missing_msg(name, "the record has no field")) from None
            if kind == "number":
                feeds[name] = np.array([[v if type(v) is float else _number(v, name)]], dtype=np.float64)
            elif kind == "string":
                feeds[name] = np.array([[v if type(v) is str else _cat_str(v)]], dtype=object)
            else:
                feeds[name] = np.array([[_wall_ns(v, name)]], dtype=np.int64)
        (out,) = self._session.run(self._outputs, feeds)
        return self._format(out, 1)[0]


def verify(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """Read ``edge.json`` and the graph, checking every listed file against its sha256.

    Files the manifest lists but the folder lacks are skipped, except the
    graph: a device needs only ``edge.json`` and the graph it names.
    """
    folder = Path(path)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise InvalidInput(f"{folder} is not an edge bundle: it has no {MANIFEST} "
                           "(write one with `loopml models export M:V --format onnx --out DIR`)")
    try:
        manifest = json.loads(mpath.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{mpath} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{mpath} is not a loopml edge manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(f"{mpath} has format version {manifest.get('format_version')}; this runtime reads "
                           f"version {FORMAT_VERSION}")
    graph_name = str(manifest.get("graph", ""))
    files = manifest.get("files") or {}
    if graph_name not in files:
        raise IntegrityError(f"{mpath} lists no hash for its graph {graph_name!r}; export the bundle again")
    graph = b""
    for name, info in sorted(files.items()):
        p = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise IntegrityError(f"{mpath} lists the file {name!r} outside the bundle")
        if not p.is_file():
            if name == graph_name:
                raise IntegrityError(f"the bundle {folder} has no {name}, the graph its manifest names")
            continue
        data = p.read_bytes()
        if _sha256(data) != info.get("sha256"):
            raise IntegrityError(f"{p} does not match the sha256 in {MANIFEST}: it was modified or corrupted; "
                                 "export the bundle again")
        if name == graph_name:
            graph = data
    return manifest, graph


def load(path: str | Path, *, threads: int = 1) -> EdgeBundle:
    """Load an edge bundle, verifying its files against the manifest first.

    Parameters
    ----------
    path
        The bundle folder (``loopml models export M:V --format onnx --out DIR``).
    threads
        ONNX Runtime intra-op threads.

    Returns
    -------
    EdgeBundle
        Call :meth:`EdgeBundle.predict` or :meth:`EdgeBundle.predict_one`.

    Raises
    ------
    InvalidInput
        The folder is no bundle.
    IntegrityError
        A file does not match its hash in ``edge.json``.
    """
    manifest, graph = verify(path)
    return EdgeBundle(manifest, graph, threads=threads)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return v


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m loopml.edge BUNDLE --data JSON``: predictions as JSON on stdout."""
    ap = argparse.ArgumentParser(prog="loopml.edge", description="Predict with an exported edge bundle.")
    ap.add_argument("bundle", help="the bundle folder")
    ap.add_argument("--data", required=True,
                    help="JSON: a list of records, one record or {\"instances\": [...]}; @FILE reads a file, - stdin")
    a = ap.parse_args(argv)
    try:
        text = sys.stdin.read() if a.data == "-" else (Path(a.data[1:]).read_text() if a.data.startswith("@")
                                                        else a.data)
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InvalidInput(f"--data is not valid JSON: {e}") from None
        if isinstance(data, dict) and set(data) == {"instances"}:
            data = data["instances"]
        bundle = load(a.bundle)
        preds = bundle.predict(data)
    except (InvalidInput, IntegrityError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    out: dict[str, Any] = {"predictions": preds}
    if bundle.classes is not None:
        out["classes"] = bundle.classes
    print(json.dumps(_jsonable(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
