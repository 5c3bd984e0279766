"""Edge inference: predict offline from an exported bundle, with numpy and ONNX Runtime only.

Export a registered version with ``loopml models export M:V --format onnx --out DIR``
(or :func:`loopml.registry.export_model`), copy the folder to the device, then::

    import loopml.edge

    bundle = loopml.edge.load("DIR")          # every file checked against edge.json first
    bundle.predict([{"tenure": 3, "plan": "basic"}])
    bundle.predict_one({"tenure": 3, "plan": "basic"})   # {"prediction": ..., "probabilities": [...]}

This package imports neither pandas, scikit-learn nor the training and recipe
stages of loopml; the bundle also carries a copy of the runtime
(``loopml_edge.py``) for devices without loopml. See ``docs/edge.md``.
"""

from __future__ import annotations

from loopml.edge._runtime import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    EdgeBundle,
    encode,
    load,
    main,
    verify,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "EdgeBundle", "encode", "load", "main", "verify"]
