"""The model registry: named models, versions with approval, stage aliases, model cards, export.

>>> from loopml.registry import register_model, approve, set_alias, load_model   # doctest: +SKIP
>>> v = register_model(ws, result.run_id, "churn", description="first try")      # doctest: +SKIP
>>> approve(ws, v.ref); set_alias(ws, v.ref, "production")                       # doctest: +SKIP
>>> load_model(ws, "churn@production").predict_one({"tenure": 3})                # doctest: +SKIP

- :mod:`loopml.registry.versions`: register, approve/reject, aliases, resolve, load.
- :mod:`loopml.registry.card`: the Markdown model card.
- :mod:`loopml.registry.export`: MLflow model format and ONNX (with a parity check).

See ``docs/registry.md``.
"""

from loopml.registry._onnx import Parity, ParityError
from loopml.registry.card import model_card
from loopml.registry.export import ExportResult, export_model
from loopml.registry.versions import (
    ALIASES,
    APPROVAL_STATUSES,
    APPROVED,
    MODEL_ALIAS_CHANGED,
    MODEL_APPROVAL_CHANGED,
    MODEL_VERSION_REGISTERED,
    PENDING,
    REJECTED,
    AliasChange,
    ApprovalRecord,
    ModelInfo,
    ModelVersionInfo,
    alias_history,
    approve,
    get_model_version,
    list_models,
    list_versions,
    load_model,
    parse_model_ref,
    register_model,
    reject,
    remove_alias,
    set_alias,
)

__all__ = [
    "ALIASES",
    "APPROVAL_STATUSES",
    "APPROVED",
    "MODEL_ALIAS_CHANGED",
    "MODEL_APPROVAL_CHANGED",
    "MODEL_VERSION_REGISTERED",
    "PENDING",
    "REJECTED",
    "AliasChange",
    "ApprovalRecord",
    "ExportResult",
    "ModelInfo",
    "ModelVersionInfo",
    "Parity",
    "ParityError",
    "alias_history",
    "approve",
    "export_model",
    "get_model_version",
    "list_models",
    "list_versions",
    "load_model",
    "model_card",
    "parse_model_ref",
    "register_model",
    "reject",
    "remove_alias",
    "set_alias",
]
