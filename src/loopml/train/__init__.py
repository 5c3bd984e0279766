"""Stage 5, training: built-in algorithms, the Estimator and its training jobs, model packages.

- :mod:`loopml.train.algorithms`: the registry of algorithms (``xgboost``,
  ``lightgbm``, ``linear``, ``random_forest``, ``knn``, ``kmeans``, ``pca``,
  ``isolation_forest``, ``forecast``) and the :class:`Algorithm` contract
  users implement to add their own (:func:`register_algorithm`).
- :class:`Estimator`: trains one algorithm as a tracked job in its own process
  (``fit``, or ``cross_validate`` for k-fold cross-validation).
- :func:`infer_problem_type` and :func:`metric_direction`: what a training job
  will decide (the problem type from the target; whether a metric is
  minimised), for tools built on training such as the tuner.
- :mod:`loopml.train.package`: the model package (native model files, the
  fitted recipe and a manifest with hashes) and :class:`Model`, which applies
  the recipe and the model exactly as in training.

Importing this package is cheap: names load on first use (PEP 562), and
libraries load when a job trains or a model loads. The training job process
and the CLI's early job start import only the modules they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

if TYPE_CHECKING:
    from loopml.train._metrics import metric_direction
    from loopml.train._prepare import infer_problem_type
    from loopml.train.algorithms import (
        Algorithm,
        TabularAlgorithm,
        get_algorithm,
        list_algorithms,
        register_algorithm,
    )
    from loopml.train.estimator import (
        CrossValidationResult,
        Estimator,
        TrainingError,
        TrainingResult,
    )
    from loopml.train.hyperparameters import Hyperparameter, validate_hyperparameters
    from loopml.train.package import Model, Signature, load_model_package

#: public name -> module that defines it
_LAZY = {
    "metric_direction": "loopml.train._metrics",
    "infer_problem_type": "loopml.train._prepare",
    **dict.fromkeys(["Algorithm", "TabularAlgorithm", "get_algorithm", "list_algorithms", "register_algorithm"],
                    "loopml.train.algorithms"),
    **dict.fromkeys(["CrossValidationResult", "Estimator", "TrainingError", "TrainingResult"],
                    "loopml.train.estimator"),
    **dict.fromkeys(["Hyperparameter", "validate_hyperparameters"], "loopml.train.hyperparameters"),
    **dict.fromkeys(["Model", "Signature", "load_model_package"], "loopml.train.package"),
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "Algorithm",
    "CrossValidationResult",
    "Estimator",
    "Hyperparameter",
    "Model",
    "Signature",
    "TabularAlgorithm",
    "TrainingError",
    "TrainingResult",
    "get_algorithm",
    "infer_problem_type",
    "list_algorithms",
    "load_model_package",
    "metric_direction",
    "register_algorithm",
    "validate_hyperparameters",
]
