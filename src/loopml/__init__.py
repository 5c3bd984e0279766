"""loopml: a local-first platform for the whole machine-learning lifecycle.

The names users call are re-exported here. Stage classes load on first use
(``loopml.Estimator`` imports the training stage only when touched), so
``import loopml`` and the CLI stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports
from loopml.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    LoopmlError,
    NotFound,
    SchemaVersionError,
    SourceError,
    ValidationFailed,
)

if TYPE_CHECKING:
    from loopml.data import Catalog
    from loopml.data.ingest import ingest
    from loopml.data.sources import open_source
    from loopml.eda import run_eda
    from loopml.features import FeatureStore
    from loopml.pipelines import Pipeline, run_pipeline, step
    from loopml.prep import Recipe, apply_recipe, fit_recipe, load_recipe
    from loopml.serve.client import Endpoint
    from loopml.serve.transform import transform
    from loopml.track import Tracker
    from loopml.train import Estimator, load_model_package
    from loopml.tune import HyperparameterTuner
    from loopml.workspace import Settings, Workspace

__version__ = "0.1.0"

#: public name -> module that defines it (loaded lazily, PEP 562)
_LAZY = {
    "Workspace": "loopml.workspace",
    "Settings": "loopml.workspace",
    "Catalog": "loopml.data",
    "ingest": "loopml.data.ingest",
    "open_source": "loopml.data.sources",
    "run_eda": "loopml.eda",
    "Recipe": "loopml.prep",
    "fit_recipe": "loopml.prep",
    "apply_recipe": "loopml.prep",
    "load_recipe": "loopml.prep",
    "FeatureStore": "loopml.features",
    "Tracker": "loopml.track",
    "Estimator": "loopml.train",
    "load_model_package": "loopml.train",
    "HyperparameterTuner": "loopml.tune",
    "Endpoint": "loopml.serve.client",
    "transform": "loopml.serve.transform",
    "Pipeline": "loopml.pipelines",
    "step": "loopml.pipelines",
    "run_pipeline": "loopml.pipelines",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "Catalog",
    "Conflict",
    "Endpoint",
    "Estimator",
    "FeatureStore",
    "HyperparameterTuner",
    "IntegrityError",
    "InvalidInput",
    "LoopmlError",
    "NotFound",
    "Pipeline",
    "Recipe",
    "SchemaVersionError",
    "Settings",
    "SourceError",
    "Tracker",
    "ValidationFailed",
    "Workspace",
    "__version__",
    "apply_recipe",
    "fit_recipe",
    "ingest",
    "load_model_package",
    "load_recipe",
    "open_source",
    "run_eda",
    "run_pipeline",
    "step",
    "transform",
]
