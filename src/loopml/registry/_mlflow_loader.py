"""The ``python_function`` loader of loopml models exported in the MLflow model format.

``mlflow.pyfunc.load_model(DIR)`` reads ``DIR/MLmodel``, imports this module
(its ``loader_module``) and calls :func:`_load_pyfunc` with ``DIR/model``: the
loopml model package. The package is verified (every file against the
manifest, the manifest against the id recorded in ``MLmodel``) before it is
loaded; predictions apply the recipe, then the model, as loopml does.

This module does not import mlflow: the same folder loads without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loopml.errors import InvalidInput
from loopml.train.package import Model, load_model_package

#: the metadata key in ``MLmodel`` holding the package id
PACKAGE_KEY = "loopml_package_sha256"


def _expected_sha(folder: Path) -> str | None:
    """The package id recorded in the ``MLmodel`` file next to the package folder (if any)."""
    import yaml

    mlmodel = folder.parent / "MLmodel"
    if not mlmodel.is_file():
        return None
    doc = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    sha = (doc.get("metadata") or {}).get(PACKAGE_KEY)
    return str(sha) if sha else None


class LoopmlPyFunc:
    """What ``mlflow.pyfunc`` wraps: ``predict(model_input, params=None)``.

    Parameters
    ----------
    model
        The loaded loopml model.
    """

    def __init__(self, model: Model) -> None:
        self.model = model

    def get_raw_model(self) -> Model:
        """The loopml :class:`~loopml.train.package.Model` (``PyFuncModel.get_raw_model()``)."""
        return self.model

    def _frame(self, model_input: Any) -> Any:
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):
            return model_input
        if isinstance(model_input, Mapping):
            values = list(model_input.values())
            scalar = all(np.ndim(v) == 0 for v in values)
            return pd.DataFrame([dict(model_input)]) if scalar else pd.DataFrame(dict(model_input))
        if isinstance(model_input, np.ndarray) and model_input.ndim == 2:
            return pd.DataFrame(model_input, columns=self.model.signature.input_names)
        if isinstance(model_input, Sequence) and not isinstance(model_input, (str, bytes)):
            return pd.DataFrame(list(model_input))
        raise InvalidInput(f"predict takes a DataFrame, a dict, a list of records or a 2-D array, "
                           f"got {type(model_input).__name__}")

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Predictions for each row: class labels, values, scores, cluster ids or projections.

        ``params={"output": "probabilities"}`` returns a DataFrame of class
        probabilities (one column per class) instead.
        """
        import pandas as pd

        df = self._frame(model_input)
        output = (params or {}).get("output", "prediction")
        if output == "probabilities":
            proba = self.model.predict_proba(df)
            return pd.DataFrame(proba, columns=[str(c) for c in self.model.classes or []], index=df.index)
        if output != "prediction":
            raise InvalidInput(f"params output={output!r} must be 'prediction' or 'probabilities'")
        return self.model.predict(df)


def _load_pyfunc(path: str) -> LoopmlPyFunc:
    """Load the loopml model package at ``path`` (MLflow's ``loader_module`` entry point)."""
    folder = Path(path)
    return LoopmlPyFunc(load_model_package(folder, sha256=_expected_sha(folder)))


__all__ = ["PACKAGE_KEY", "LoopmlPyFunc", "_load_pyfunc"]
