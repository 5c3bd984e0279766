"""Serving: real-time endpoints, variants, multi-model, data capture, batch transform.

The data plane is one ASGI app (``loopml serve``) hosting every endpoint of a
workspace; see ``docs/serve.md``.

- :mod:`loopml.serve.endpoints`: the control plane (deploy, weights, API keys, history).
- :mod:`loopml.serve.app`: the data plane (:func:`create_app`).
- :mod:`loopml.serve.runtime`: one model from request bytes to response bytes.
- :mod:`loopml.serve.client`: :class:`Endpoint`, in-process or over HTTP.
- :mod:`loopml.serve.capture`: data capture files.

Names load on first use, so ``import loopml.serve`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

if TYPE_CHECKING:
    from loopml.serve.app import Server, create_app
    from loopml.serve.capture import CaptureWriter, read_capture
    from loopml.serve.client import Endpoint, InvokeResponse
    from loopml.serve.endpoints import (
        EndpointConfig,
        EndpointInfo,
        VariantSpec,
        create_api_key,
        delete_endpoint,
        deploy,
        endpoint_history,
        get_endpoint,
        list_endpoints,
        update_endpoint,
        update_weights,
    )
    from loopml.serve.runtime import InvokeResult, MicroBatcher, Predictor

#: public name -> module that defines it (loaded lazily, PEP 562)
_LAZY = {
    "create_app": "loopml.serve.app",
    "Server": "loopml.serve.app",
    "CaptureWriter": "loopml.serve.capture",
    "read_capture": "loopml.serve.capture",
    "Endpoint": "loopml.serve.client",
    "InvokeResponse": "loopml.serve.client",
    "EndpointConfig": "loopml.serve.endpoints",
    "EndpointInfo": "loopml.serve.endpoints",
    "VariantSpec": "loopml.serve.endpoints",
    "create_api_key": "loopml.serve.endpoints",
    "delete_endpoint": "loopml.serve.endpoints",
    "deploy": "loopml.serve.endpoints",
    "endpoint_history": "loopml.serve.endpoints",
    "get_endpoint": "loopml.serve.endpoints",
    "list_endpoints": "loopml.serve.endpoints",
    "update_endpoint": "loopml.serve.endpoints",
    "update_weights": "loopml.serve.endpoints",
    "InvokeResult": "loopml.serve.runtime",
    "MicroBatcher": "loopml.serve.runtime",
    "Predictor": "loopml.serve.runtime",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "CaptureWriter",
    "Endpoint",
    "EndpointConfig",
    "EndpointInfo",
    "InvokeResponse",
    "InvokeResult",
    "MicroBatcher",
    "Predictor",
    "Server",
    "VariantSpec",
    "create_api_key",
    "create_app",
    "delete_endpoint",
    "deploy",
    "endpoint_history",
    "get_endpoint",
    "list_endpoints",
    "read_capture",
    "update_endpoint",
    "update_weights",
]
