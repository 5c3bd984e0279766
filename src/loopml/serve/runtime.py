"""The serving runtime: one model behind an invocation, from request bytes to response bytes.

A :class:`Predictor` wraps a loaded model package and does what every
real-time invocation needs, in order:

1. **decode** the body by its ``Content-Type`` (JSON, JSON lines, CSV; see
   :mod:`loopml.serve._codecs` for the formats) - 415 for another type, 413
   over the size or row limit, 400 for a malformed body, saying where;
2. **validate** every row against the model's input signature (missing or
   unknown columns, values of the wrong type, nulls where the model needs a
   value) - 400 naming the row and the column, so bad input never reaches
   the model;
3. **predict**: the fitted recipe, then one call of the library on a matrix
   of all the rows (no pandas on this path): a few rows go record by record
   (:meth:`FittedRecipe.transform_one`), more go column by column (the recipe
   compiled to numpy operations, :mod:`loopml.serve._vector_recipe`), with the
   very same numbers; a failure inside the model is a
   :class:`~loopml.errors.ModelError` (424);
4. **encode** the outputs in the format ``Accept`` asks for (406 if none).

Response bodies:

- ``application/json``: ``{"predictions": [{"prediction": p, "probabilities": [...]}, ...],
  "classes": [...]}`` (``probabilities`` and ``classes`` for classifiers only);
- ``application/jsonlines``: one ``{"prediction": p, "probabilities": [...]}`` per line;
- ``text/csv``: one line per row, ``prediction[,p_class0,p_class1,...]``.

The predictions are the numbers :meth:`Model.predict` and
:meth:`Model.predict_proba` give for the same rows.

:class:`MicroBatcher` (in :mod:`loopml.serve.batching`, re-exported here)
groups concurrent small requests into one model call for an asyncio server.

Examples
--------
>>> from loopml.serve.runtime import Predictor             # doctest: +SKIP
>>> p = Predictor.load(ws, "churn@production")             # doctest: +SKIP
>>> r = p.invoke(b'{"x1": 0.5, "city": "paris"}', "application/json", None)   # doctest: +SKIP
>>> r.body                                                 # doctest: +SKIP
b'{"predictions":[{"prediction":1,"probabilities":[0.2,0.8]}],"classes":[0,1]}'
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from loopml.errors import InvalidInput, LoopmlError, ModelError
from loopml.serve import _codecs
from loopml.serve._fastpath import RowPredictor, Validator

if TYPE_CHECKING:
    import pandas as pd

    from loopml.train.package import Model
    from loopml.workspace import Workspace

#: default limits of one request (SageMaker real-time: 6 MB)
MAX_ROWS = 10_000
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: above this many rows a request goes through the DataFrame path (Model.predict). The column path
#: (the recipe compiled to numpy operations, one matrix to the library) measured faster at every size
#: up to 10,000 rows (bench/serve_predict.py), so only limits raised far above the default reach it.
FRAME_ROWS = 50_000
_RECORDS_ONLY = {dict}


@dataclass
class InvokeResult:
    """What one invocation produced.

    Attributes
    ----------
    body
        The response body.
    content_type
        Its media type (``application/json``, ``application/jsonlines`` or ``text/csv``).
    n_rows
        Rows predicted.
    records
        The validated input records (signature order, converted values), for data capture.
    outputs
        ``{"prediction": ..., "probabilities": [...]}`` per row.
    model_ms
        Milliseconds spent in the recipe and the model (the rest is overhead).
    """

    body: bytes
    content_type: str
    n_rows: int
    records: list[dict[str, Any]] = field(repr=False)
    outputs: list[dict[str, Any]] = field(repr=False)
    model_ms: float = 0.0


class Predictor:
    """One model ready to answer invocations: decode, validate, predict, encode.

    Parameters
    ----------
    model
        A loaded model package (:func:`loopml.train.load_model_package`,
        :func:`loopml.registry.load_model`).
    max_rows
        Most rows one request may carry (413 above).
    max_payload_bytes
        Largest request body (413 above); SageMaker's real-time limit is 6 MB.

    Examples
    --------
    >>> p = Predictor(model)                                       # doctest: +SKIP
    >>> p.predict_records([{"x1": 0.5, "x2": None, "city": "lyon"}])   # doctest: +SKIP
    [{'prediction': 1, 'probabilities': [0.31, 0.69]}]
    """

    def __init__(self, model: Model, *, max_rows: int = MAX_ROWS, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        if max_rows < 1:
            raise InvalidInput(f"max_rows must be at least 1, got {max_rows}")
        if max_payload_bytes < 1:
            raise InvalidInput(f"max_payload_bytes must be at least 1, got {max_payload_bytes}")
        self.model = model
        self.max_rows = int(max_rows)
        self.max_payload_bytes = int(max_payload_bytes)
        self._validator = Validator(model.signature.inputs)
        self._rows = RowPredictor(model)
        self.input_names: list[str] = list(self._validator.names)
        self.is_classifier: bool = self._rows.is_classifier
        self.classes: list[Any] | None = self._rows.labels
        #: requests with more rows go through :meth:`predict_frame`
        self.frame_rows = FRAME_ROWS

    @classmethod
    def load(cls, ws: Workspace, ref: str, **kwargs: Any) -> Predictor:
        """A predictor for a registered model version: ``M:V``, ``M@alias`` or ``M`` (the latest).

        Parameters
        ----------
        ws
            The workspace holding the registry.
        ref
            The model version reference.
        **kwargs
            ``max_rows`` and ``max_payload_bytes``.
        """
        from loopml.registry.versions import load_model

        return cls(load_model(ws, ref), **kwargs)

    def __repr__(self) -> str:
        return f"Predictor({self.model!r}, inputs={len(self.input_names)})"

    # -- the steps ------------------------------------------------------------------------------
    def decode(self, body: bytes, content_type: str | None) -> list[dict[str, Any]]:
        """Parse a request body into records (values as sent; :meth:`predict_records` validates them).

        Rows sent as lists (``{"instances": [[...]]}``, JSON lines of lists, CSV)
        become records keyed by the signature's input names.

        Raises
        ------
        UnsupportedMediaType
            ``content_type`` is not JSON, JSON lines or CSV.
        PayloadTooLarge
            The body is over ``max_payload_bytes`` or has more than ``max_rows`` rows.
        InvalidInput
            The body is malformed (the message gives the line or row), or a list row
            has the wrong number of values.
        """
        return self._decode(body, _codecs.request_format(content_type))

    def _decode(self, body: bytes, fmt: str) -> list[dict[str, Any]]:
        rows = _codecs.decode(body, fmt, max_rows=self.max_rows, max_payload_bytes=self.max_payload_bytes)
        if set(map(type, rows)) == _RECORDS_ONLY:  # records only (what JSON bodies mostly hold): as they are
            return cast("list[dict[str, Any]]", rows)
        names = self.input_names
        n = len(names)
        out: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            if type(row) is list:
                if len(row) != n:
                    raise InvalidInput(
                        f"row {i} has {len(row)} value(s); the model takes {n} column(s) in this order: "
                        f"{self._validator.expected()}"
                    )
                out.append(dict(zip(names, row, strict=True)))
            else:
                out.append(row)  # type: ignore[arg-type]
        return out

    def validate(self, records: Sequence[Mapping[str, Any] | Sequence[Any]]) -> list[dict[str, Any]]:
        """Check records against the signature; return them in input order with converted values.

        Raises
        ------
        InvalidInput
            A missing or unknown column, a value of the wrong type, or null where the
            model needs a value; the message names the row (from 0) and the column.
        """
        return self._validator.validate(records)

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Validate and predict records: one ``{"prediction", "probabilities"?}`` dict per record.

        Raises
        ------
        InvalidInput
            Invalid records (nothing is predicted).
        ModelError
            The model failed on valid input.
        """
        return self.predict_valid(self._validator.validate(records))

    def predict_valid(self, records: list[dict[str, Any]], *,
                      columns: Mapping[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
        """Predict records that :meth:`validate` returned (no second check).

        ``columns``, the same values column by column (input name -> values, as
        the validator reads them), spares reading them out of the records again.
        """
        if len(records) > self.frame_rows:
            return self._predict_frame_records(records)
        return self._rows.predict(records, columns)

    def encode(self, outputs: Sequence[dict[str, Any]], accept: str | None, *,
               request_content_type: str | None = None) -> tuple[bytes, str]:
        """Serialise outputs for ``accept``; return the body and its content type.

        ``*/*`` or no ``Accept`` answers in the request's format
        (``request_content_type``; JSON when unknown).

        Raises
        ------
        NotAcceptable
            ``accept`` names no supported format.
        """
        req = _codecs.MEDIA_TYPES.get(_codecs.media_type(request_content_type), _codecs.JSON)
        fmt = _codecs.response_format(accept, req)
        return _codecs.encode(outputs, fmt, self.classes), fmt

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> InvokeResult:
        """Decode, validate, predict and encode one request.

        The ``Accept`` is checked first, so a request that cannot be answered
        costs no prediction.

        Raises
        ------
        UnsupportedMediaType, NotAcceptable, PayloadTooLarge, InvalidInput
            A bad request (4xx).
        ModelError
            The model failed (424).
        """
        req = _codecs.request_format(content_type)
        fmt = _codecs.response_format(accept, req)
        records, columns = self._validator.validate_columns(self._decode(body, req))
        t0 = time.perf_counter()
        outputs = self.predict_valid(records, columns=columns)
        model_ms = (time.perf_counter() - t0) * 1e3
        return InvokeResult(
            body=_codecs.encode(outputs, fmt, self.classes), content_type=fmt, n_rows=len(records),
            records=records, outputs=outputs, model_ms=model_ms,
        )

    # -- frames -----------------------------------------------------------------------------------
    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Predict a DataFrame through :meth:`Model.predict` (the vectorised path).

        Columns beyond the signature's inputs are ignored; missing ones are an error.

        Returns
        -------
        pandas.DataFrame
            ``prediction`` and, for classifiers, ``probabilities`` (a list per row in
            the order of :attr:`classes`), on ``df``'s index.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise InvalidInput(f"predict_frame needs a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in self.input_names if c not in df.columns]
        if missing:
            raise InvalidInput(
                f"the frame has no column(s) {', '.join(map(repr, missing))}; the model takes "
                f"{self._validator.expected()}"
            )
        X = df[self.input_names]
        try:
            pred = self.model.predict(X)
            out = pd.DataFrame({"prediction": list(pred) if getattr(pred, "ndim", 1) > 1 else pred}, index=df.index)
            if self.is_classifier:
                out["probabilities"] = list(self.model.predict_proba(X).tolist())
        except LoopmlError:
            raise
        except Exception as e:
            raise ModelError(f"the model failed: {type(e).__name__}: {e}") from e
        return out

    def _predict_frame_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        frame = self.records_frame(records)
        out = self.predict_frame(frame)
        preds = out["prediction"].tolist()
        if self.is_classifier:
            return [{"prediction": p, "probabilities": q}
                    for p, q in zip(preds, out["probabilities"].tolist(), strict=True)]
        return [{"prediction": p} for p in preds]

    def records_frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """Validated records as a DataFrame with the signature's column types."""
        import pyarrow as pa

        fields = []
        for c in self.model.signature.inputs:
            try:
                t = _arrow_type(str(c.get("type", "")))
            except (ValueError, TypeError, pa.ArrowInvalid):
                t = None
            fields.append((c["name"], t))
        cols: dict[str, Any] = {}
        for name, t in fields:
            values = [r[name] for r in records]
            cols[name] = pa.array(values, type=t) if t is not None else pa.array(values)
        return pa.table(cols).to_pandas()


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    t = name.strip()
    simple = {"double": pa.float64(), "float": pa.float32(), "int64": pa.int64(), "int32": pa.int32(),
              "int16": pa.int16(), "int8": pa.int8(), "bool": pa.bool_(), "string": pa.string(),
              "large_string": pa.large_string(), "uint8": pa.uint8(), "uint16": pa.uint16(),
              "uint32": pa.uint32(), "uint64": pa.uint64()}
    if t in simple:
        return simple[t]
    if t.startswith("timestamp["):
        inner = t[len("timestamp["):-1]
        unit, _, rest = inner.partition(",")
        tz = rest.split("=", 1)[1].strip() if "tz=" in rest else None
        return pa.timestamp(unit.strip(), tz=tz)
    return None


from loopml.serve.batching import MicroBatcher  # noqa: E402  (re-exported: the contract's home)

__all__ = ["FRAME_ROWS", "MAX_PAYLOAD_BYTES", "MAX_ROWS", "InvokeResult", "MicroBatcher", "Predictor"]
