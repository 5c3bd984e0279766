"""Stage 6, hyperparameter tuning: Optuna underneath, trials as tracked runs.

- :class:`HyperparameterTuner`: tune an :class:`~loopml.train.Estimator`
  (strategies ``bayesian``, ``random``, ``grid``, ``hyperband``, ``cmaes``;
  early stopping of trials; completion criteria; warm start; parallel trials
  on local processes or Ray; resume of a killed job).
- :mod:`loopml.tune.ranges`: search spaces (continuous, integer, categorical;
  linear, log and reverse-log scaling), from the algorithm's schema or YAML.
- :mod:`loopml.tune.jobs`: stored jobs, :class:`TuningResult`,
  :func:`list_tuning_jobs`, :func:`get_tuning_job`.
- :mod:`loopml.tune.report`: the job's self-contained HTML report
  (:func:`write_report`): history, per-iteration values, parallel
  coordinates, hyperparameter importance, trials.

The Optuna study of a job lives in the workspace's metadata database, so the
job survives its process and several workers share it. See ``docs/tune.md``.
"""

from loopml.tune.completion import CompletionCriteria
from loopml.tune.jobs import (
    TrialInfo,
    TuningJobSummary,
    TuningResult,
    get_tuning_job,
    list_tuning_jobs,
)
from loopml.tune.ranges import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
    build_space,
    default_space,
    load_space,
)
from loopml.tune.report import tuning_report, write_report
from loopml.tune.strategies import STRATEGIES, EarlyStopping
from loopml.tune.tuner import HyperparameterTuner, TuningError
from loopml.tune.warm_start import WarmStart

__all__ = [
    "STRATEGIES",
    "CategoricalParameter",
    "CompletionCriteria",
    "ContinuousParameter",
    "EarlyStopping",
    "HyperparameterTuner",
    "IntegerParameter",
    "SearchSpace",
    "TrialInfo",
    "TuningError",
    "TuningJobSummary",
    "TuningResult",
    "WarmStart",
    "build_space",
    "default_space",
    "get_tuning_job",
    "list_tuning_jobs",
    "load_space",
    "tuning_report",
    "write_report",
]
