"""Strategies (how to pick the next trial) and early stopping (when to stop one): Optuna's.

A strategy names an Optuna sampler; early stopping names an Optuna pruner.
Both are data (:class:`EarlyStopping` is a frozen dataclass stored with the
job), so every worker process of a job builds the same sampler and pruner.

=============  ==========================================================
strategy       Optuna
=============  ==========================================================
``bayesian``   ``TPESampler(multivariate=True)`` (constant liar when parallel)
``random``     ``RandomSampler``
``grid``       ``GridSampler`` over the categorical/integer values
``hyperband``  ``TPESampler`` + ``HyperbandPruner`` (resource: boosting rounds / epochs)
``cmaes``      ``CmaEsSampler`` (needs the ``cmaes`` package)
=============  ==========================================================

Early stopping of trials (``TrainingJobEarlyStoppingType`` ``Auto`` in
SageMaker) is ``median`` (Optuna's ``MedianPruner``: a trial stops when its
best value so far is worse than the median of the finished trials at the same
step), ``hyperband`` or ``successive-halving``; the values pruned on are the
objective's per-iteration values (``validation:auc`` after each boosting round).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import optuna

    from loopml.tune.ranges import SearchSpace

STRATEGIES: tuple[str, ...] = ("bayesian", "random", "grid", "hyperband", "cmaes")
_ALIASES = {"tpe": "bayesian", "bayes": "bayesian", "cma-es": "cmaes", "cma": "cmaes"}
PRUNERS: tuple[str, ...] = ("median", "hyperband", "successive-halving")

#: hyperparameters that count training iterations: the resource Hyperband allocates
RESOURCE_PARAMS: tuple[str, ...] = ("num_round", "num_boost_round", "n_estimators", "epochs", "max_iter",
                                    "iterations")
#: at most about this many intermediate values are reported per trial (each is a database write)
MAX_REPORTS = 50


def check_strategy(strategy: str) -> str:
    """The canonical strategy name, or InvalidInput naming the choices."""
    s = _ALIASES.get(str(strategy).strip().lower(), str(strategy).strip().lower())
    if s not in STRATEGIES:
        raise InvalidInput(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if s == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise InvalidInput("strategy 'cmaes' needs the cmaes package: pip install cmaes")
    return s


@dataclass(frozen=True)
class EarlyStopping:
    """How trials are stopped early from their per-iteration objective values.

    Parameters
    ----------
    pruner
        ``median``, ``hyperband`` or ``successive-halving``.
    n_startup_trials
        ``median``: trials that finish before any is pruned.
    warmup_fraction
        ``median``: no pruning before this fraction of the iterations (of the
        first fold's, with cross-validation).
    min_resource
        ``hyperband`` / ``successive-halving``: iterations every trial gets
        (default: about 1/9 of the maximum: with fewer, Hyperband judges trials on so few
        iterations that it prunes slow learners that would have won).
    max_resource
        The most iterations a trial runs (set from the algorithm's rounds).
    reduction_factor
        ``hyperband`` / ``successive-halving``: 1/η of the trials go on at each rung.
    """

    pruner: str = "median"
    n_startup_trials: int = 5
    warmup_fraction: float = 0.1
    min_resource: int | None = None
    max_resource: int | None = None
    reduction_factor: int = 3

    def __post_init__(self) -> None:
        p = str(self.pruner).strip().lower().replace("_", "-")
        if p in ("auto", "true", "on"):
            p = "median"
        if p not in PRUNERS:
            raise InvalidInput(f"early stopping {self.pruner!r} is not one of {', '.join(PRUNERS)} (or auto)")
        object.__setattr__(self, "pruner", p)
        if not 0 <= self.warmup_fraction < 1:
            raise InvalidInput(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.n_startup_trials < 0:
            raise InvalidInput(f"n_startup_trials must be >= 0, got {self.n_startup_trials!r}")
        if self.reduction_factor < 2:
            raise InvalidInput(f"reduction_factor must be >= 2, got {self.reduction_factor!r}")
        if self.min_resource is not None and self.min_resource < 1:
            raise InvalidInput(f"min_resource must be >= 1, got {self.min_resource!r}")

    @classmethod
    def parse(cls, value: Any) -> EarlyStopping | None:
        """None for off; ``True``/``"auto"`` for median; a pruner name; a mapping; an EarlyStopping."""
        if value is None or value is False:
            return None
        if isinstance(value, EarlyStopping):
            return value
        if value is True:
            return cls()
        if isinstance(value, str):
            if value.strip().lower() in ("off", "none", "false", ""):
                return None
            return cls(value)
        if isinstance(value, Mapping):
            try:
                return cls(**dict(value))
            except TypeError as e:
                raise InvalidInput(f"early_stopping: {e}") from None
        raise InvalidInput(f"early_stopping must be True/False, a pruner name ({', '.join(PRUNERS)}) "
                           f"or EarlyStopping(...), got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored with the job."""
        return asdict(self)

    def make_pruner(self, max_steps: int | None, folds: int | None = None) -> optuna.pruners.BasePruner:
        """The Optuna pruner.

        ``max_steps`` is the most iterations a trial runs (if known); with
        ``folds`` (cross-validation) they are the folds' iterations one after
        another, and the median rule's warm-up is a fraction of one fold's.
        """
        import optuna

        top = self.max_resource or max_steps
        if self.pruner == "median":
            warmup = int(self.warmup_fraction * top / (folds or 1)) if top else 0
            return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials, n_warmup_steps=warmup)
        # about 1/9 of the maximum, rounded up so that no rung falls just before the end (a trial
        # stopped there has done nearly all its work)
        min_resource = self.min_resource or (max(1, -(-top // (self.reduction_factor ** 2))) if top else 1)
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=top or "auto",
                                                  reduction_factor=self.reduction_factor)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource,
                                                      reduction_factor=self.reduction_factor)


def _grid_sampler_class() -> type[optuna.samplers.GridSampler]:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler for ask-and-tell: the job stops after the grid by counting trials.

        Optuna's own calls ``study.stop()`` when the grid is done, which only works inside
        ``study.optimize`` and raises from ``study.tell`` otherwise.
        """

        def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        state: optuna.trial.TrialState, values: Any) -> None:
            return None

    return GridSampler


def _grid_sampler(search_space: Any, seed: int | None) -> optuna.samplers.GridSampler:
    return _grid_sampler_class()(search_space, seed=seed)


def make_sampler(strategy: str, space: SearchSpace, *, seed: int | None, parallel: bool) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of a strategy for ``space``.

    Parameters
    ----------
    strategy
        One of :data:`STRATEGIES`.
    space
        The search space (the grid comes from it).
    seed
        Seed of the sampler's random numbers.
    parallel
        Trials run concurrently: TPE then treats running trials as bad
        ("constant liar") so workers do not all try the same point.
    """
    import optuna

    s = check_strategy(strategy)
    if s == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s == "grid":
        return _grid_sampler(space.grid(), seed=seed)
    if s == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False,
                                            independent_sampler=optuna.samplers.RandomSampler(seed=seed))
    # bayesian and hyperband
    return optuna.samplers.TPESampler(multivariate=True, seed=seed, constant_liar=parallel)


def report_interval(max_steps: int | None) -> int:
    """Report every n-th iteration so a trial makes at most about :data:`MAX_REPORTS` reports."""
    if not max_steps or max_steps <= MAX_REPORTS:
        return 1
    return -(-max_steps // MAX_REPORTS)


__all__ = ["MAX_REPORTS", "PRUNERS", "RESOURCE_PARAMS", "STRATEGIES", "EarlyStopping", "check_strategy",
           "make_sampler", "report_interval"]
