"""Completion criteria and the strategy/early-stopping settings (pure parts)."""

from __future__ import annotations

import importlib.util

import optuna
import pytest

from loopml.errors import InvalidInput
from loopml.tune import CompletionCriteria, EarlyStopping
from loopml.tune.ranges import build_space
from loopml.tune.strategies import check_strategy, make_sampler, report_interval


def test_target_value_in_both_directions() -> None:
    c = CompletionCriteria(target=0.9)
    assert c.check([0.5, 0.8], "maximize") is None
    assert c.check([0.5, None, 0.95], "maximize") == "target reached: 0.95 >= 0.9"
    m = CompletionCriteria(target=0.2)
    assert m.check([0.5, 0.3], "minimize") is None
    assert m.check([0.5, 0.19], "minimize") == "target reached: 0.19 <= 0.2"


def test_no_improvement_counts_pruned_and_failed_trials() -> None:
    c = CompletionCriteria(max_trials_without_improvement=3, min_improvement=0.01)
    assert c.check([0.7, 0.8], "maximize") is None
    assert c.check([0.7, 0.8, None, 0.805, None], "maximize") is not None  # 3 trials since 0.8
    assert c.check([0.7, 0.8, None, 0.85, None], "maximize") is None      # 0.85 improved by > 0.01
    assert c.check([0.5, 0.4, 0.45, 0.42, 0.41], "minimize") is not None   # best 0.4, then 3 without
    assert CompletionCriteria(max_trials_without_improvement=2).check([None, None, None], "maximize") is None


def test_runtime_and_bad_values() -> None:
    assert CompletionCriteria(max_runtime=10).check([], "maximize", elapsed=11) == "max_runtime of 10 s reached"
    for kwargs in ({"max_trials_without_improvement": 0}, {"min_improvement": -1}, {"target": float("nan")},
                   {"max_runtime": 0}):
        with pytest.raises(InvalidInput):
            CompletionCriteria(**kwargs)  # type: ignore[arg-type]
    assert CompletionCriteria.parse({"target": 1.0}).target == 1.0
    with pytest.raises(InvalidInput, match="unexpected keyword"):
        CompletionCriteria.parse({"tarjet": 1.0})


def test_strategies_are_optuna_samplers() -> None:
    space = build_space("xgboost", {"max_depth": (2, 3), "tree_method": ["hist", "approx"]})
    assert isinstance(make_sampler("bayesian", space, seed=0, parallel=False), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("TPE", space, seed=0, parallel=True), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("random", space, seed=0, parallel=False), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler("grid", space, seed=0, parallel=False), optuna.samplers.GridSampler)
    with pytest.raises(InvalidInput, match="strategy 'annealing' is not one of bayesian, random, grid"):
        check_strategy("annealing")
    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(InvalidInput, match="needs the cmaes package"):
            check_strategy("cmaes")
    else:
        assert isinstance(make_sampler("cmaes", space, seed=0, parallel=False), optuna.samplers.CmaEsSampler)


def test_early_stopping_makes_optuna_pruners() -> None:
    assert EarlyStopping.parse(False) is None and EarlyStopping.parse("off") is None
    median = EarlyStopping.parse(True)
    assert median is not None and median.pruner == "median"
    assert isinstance(median.make_pruner(100), optuna.pruners.MedianPruner)
    hb = EarlyStopping.parse({"pruner": "hyperband", "reduction_factor": 3})
    assert hb is not None and isinstance(hb.make_pruner(81), optuna.pruners.HyperbandPruner)
    sh = EarlyStopping.parse("successive_halving")
    assert sh is not None and isinstance(sh.make_pruner(None), optuna.pruners.SuccessiveHalvingPruner)
    with pytest.raises(InvalidInput, match="early stopping 'soon' is not one of median"):
        EarlyStopping.parse("soon")
    assert report_interval(None) == 1 and report_interval(40) == 1 and report_interval(200) == 4
