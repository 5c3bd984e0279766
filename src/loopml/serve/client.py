"""A client of an endpoint: :class:`Endpoint` predicts in this process or over HTTP.

``Endpoint(ws, "churn")`` reads the endpoint's config from the workspace and
predicts in this process, through the same :class:`~loopml.serve.runtime.Predictor`
the server uses (same variant choice by weight, same validation, same
numbers), with no server running. ``Endpoint("http://127.0.0.1:8080", "churn")``
sends the same requests to a ``loopml serve``. In-process calls are not
captured or counted in the server's metrics.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from loopml import errors
from loopml.errors import InvalidInput, LoopmlError
from loopml.serve.endpoints import DEFAULT_VARIANT, VariantPicker, check_endpoint_name, get_endpoint
from loopml.serve.multimodel import resolve_target

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from loopml.serve.app import ModelCache
    from loopml.serve.runtime import Predictor
    from loopml.workspace import Workspace

_STATUS_ERRORS: dict[int, type[LoopmlError]] = {
    400: errors.InvalidInput, 401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
    406: errors.NotAcceptable, 409: errors.Conflict, 413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType, 424: errors.ModelError, 429: errors.Throttled,
    503: errors.ServiceUnavailable,
}


@dataclass(frozen=True)
class InvokeResponse:
    """An endpoint's answer: body, content type, the variant that answered, echoed custom attributes."""

    body: bytes
    content_type: str
    variant: str
    custom_attributes: str | None = None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


def _json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        try:
            import pandas as pd

            if o is pd.NaT:
                return None
        except ImportError:  # pragma: no cover
            pass
        return o.isoformat()
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    try:
        import pandas as pd

        if o is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"cannot send a {type(o).__name__} as JSON")


def frame_body(df: pd.DataFrame) -> bytes:
    """A DataFrame as an ``application/json`` request body (a list of records)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(f"predict needs a pandas DataFrame, got {type(df).__name__}")
    return orjson.dumps(df.to_dict("records"), default=_json_default,
                        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def predictions_frame(body: bytes, index: Any = None) -> pd.DataFrame:
    """An ``application/json`` response as a DataFrame: ``prediction`` (+ ``probabilities``)."""
    import pandas as pd

    doc = orjson.loads(body)
    preds = doc.get("predictions") if isinstance(doc, dict) else None
    if not isinstance(preds, list):
        raise InvalidInput("the response holds no 'predictions' list")
    out = pd.DataFrame({"prediction": [p.get("prediction") for p in preds]}, index=index)
    if preds and "probabilities" in preds[0]:
        out["probabilities"] = [p.get("probabilities") for p in preds]
    return out


class Endpoint:
    """A handle on one endpoint: in this process (by workspace) or over HTTP (by URL).

    Parameters
    ----------
    source
        A :class:`~loopml.Workspace` (predict in this process), or the base URL of a
        ``loopml serve`` (``http://127.0.0.1:8080``).
    name
        The endpoint. Over HTTP it may be None for a single-endpoint server
        (``loopml serve --endpoint``), which is then called at ``/invocations``.
    api_key
        Sent as ``Authorization: Bearer KEY`` (HTTP only; in-process calls need none).
    timeout
        Seconds to wait for an HTTP answer.
    seed
        Seed of the in-process variant choice.

    Examples
    --------
    >>> ep = Endpoint(ws, "churn")                               # doctest: +SKIP
    >>> ep.predict(df)                                           # doctest: +SKIP
       prediction         probabilities
    0           1  [0.21, 0.79]
    >>> Endpoint("http://127.0.0.1:8080", "churn").predict(df)   # doctest: +SKIP
    """

    def __init__(
        self,
        source: Workspace | str,
        name: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        seed: int | None = None,
    ) -> None:
        self.name = None if name is None else check_endpoint_name(name)
        self.api_key = api_key
        self._rng = random.Random(seed)
        self._http: httpx.Client | None = None
        self._cache: ModelCache | None = None
        self._acquired: dict[tuple[str, int, int], Predictor] = {}
        if isinstance(source, str):
            if not source.startswith(("http://", "https://")):
                raise InvalidInput(f"{source!r} is not an http(s):// URL; give a URL or a Workspace")
            import httpx

            self.url: str | None = source.rstrip("/")
            self.ws: Workspace | None = None
            self._http = httpx.Client(timeout=timeout)
        else:
            if name is None:
                raise InvalidInput("name the endpoint: Endpoint(ws, NAME)")
            self.url = None
            self.ws = source

    def __repr__(self) -> str:
        where = self.url if self.url is not None else "in-process"
        return f"Endpoint({self.name!r}, {where})"

    # -- invoking ------------------------------------------------------------------------------------
    def invoke(
        self,
        body: bytes | str,
        content_type: str = "application/json",
        accept: str | None = None,
        *,
        variant: str | None = None,
        target_model: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
    ) -> InvokeResponse:
        """Send one request body; return the answer.

        Raises
        ------
        LoopmlError
            The subclass of the server's status (InvalidInput for 400, NotFound for 404, ...).
        """
        data = body.encode() if isinstance(body, str) else bytes(body)
        if self._http is not None:
            return self._invoke_http(data, content_type, accept, variant, target_model, inference_id,
                                     custom_attributes)
        predictor, chosen = self._route(variant, target_model)
        result = predictor.invoke(data, content_type, accept)
        return InvokeResponse(result.body, result.content_type, chosen, custom_attributes)

    def predict(self, df: pd.DataFrame, *, variant: str | None = None,
                target_model: str | None = None) -> pd.DataFrame:
        """Predictions for every row of ``df``: ``prediction`` and, for classifiers, ``probabilities``.

        In this process the frame goes through the model's vectorised path
        (the numbers of ``model.predict``); over HTTP it is sent as JSON records.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise InvalidInput(f"predict needs a pandas DataFrame, got {type(df).__name__}")
        if self._http is not None:
            r = self.invoke(frame_body(df), "application/json", "application/json", variant=variant,
                            target_model=target_model)
            return predictions_frame(r.body, df.index)
        predictor, _ = self._route(variant, target_model)
        return predictor.predict_frame(df)

    # -- in-process -----------------------------------------------------------------------------------
    def _route(self, variant: str | None, target_model: str | None) -> tuple[Predictor, str]:
        assert self.ws is not None and self.name is not None
        info = get_endpoint(self.ws, self.name)
        cfg = info.config
        picker = VariantPicker(cfg)
        chosen = picker.pick(self._rng.random(), variant)
        if cfg.multi_model is not None:
            target = resolve_target(self.name, cfg.multi_model.models, target_model)
            sha = cfg.multi_model.models[target].package_sha256
            chosen = DEFAULT_VARIANT
        else:
            if target_model:
                raise InvalidInput(f"endpoint {self.name!r} is not a multi-model endpoint; drop target_model")
            sha = cfg.variant(chosen).package_sha256
        return self._predictor(sha, cfg.limits.max_rows, cfg.limits.max_payload_bytes), chosen

    def _predictor(self, sha: str, max_rows: int, max_payload_bytes: int) -> Predictor:
        key = (sha, max_rows, max_payload_bytes)
        p = self._acquired.get(key)
        if p is None:
            if self._cache is None:
                from loopml.serve.app import ModelCache

                assert self.ws is not None
                self._cache = ModelCache(self.ws)
            p = self._acquired[key] = self._cache.acquire(sha, max_rows=max_rows,
                                                          max_payload_bytes=max_payload_bytes)
        return p

    # -- HTTP -----------------------------------------------------------------------------------------
    def _invoke_http(self, data: bytes, content_type: str, accept: str | None, variant: str | None,
                     target_model: str | None, inference_id: str | None,
                     custom_attributes: str | None) -> InvokeResponse:
        import httpx

        assert self._http is not None and self.url is not None
        path = "/invocations" if self.name is None else f"/endpoints/{self.name}/invocations"
        headers = {"Content-Type": content_type}
        for key, value in (("Accept", accept), ("X-Amzn-SageMaker-Target-Variant", variant),
                           ("X-Amzn-SageMaker-Target-Model", target_model),
                           ("X-Amzn-SageMaker-Inference-Id", inference_id),
                           ("X-Amzn-SageMaker-Custom-Attributes", custom_attributes)):
            if value is not None:
                headers[key] = value
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            r = self._http.post(self.url + path, content=data, headers=headers)
        except httpx.HTTPError as e:
            raise errors.ServiceUnavailable(f"cannot reach {self.url}: {e}; is `loopml serve` running?") from None
        if r.status_code >= 400:
            try:
                message = str(orjson.loads(r.content).get("message") or r.text)
            except (orjson.JSONDecodeError, AttributeError):
                message = r.text[:500] or r.reason_phrase
            cls = _STATUS_ERRORS.get(r.status_code, LoopmlError)
            raise cls(f"{message} (HTTP {r.status_code})")
        return InvokeResponse(r.content, r.headers.get("content-type", ""),
                              r.headers.get("x-amzn-invoked-production-variant", ""),
                              r.headers.get("x-amzn-sagemaker-custom-attributes"))

    # -- lifetime -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release loaded models and the HTTP connections."""
        if self._cache is not None:
            for (sha, rows, size) in list(self._acquired):
                self._cache.release(sha, max_rows=rows, max_payload_bytes=size)
        self._acquired.clear()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = ["Endpoint", "InvokeResponse", "frame_body", "predictions_frame"]
