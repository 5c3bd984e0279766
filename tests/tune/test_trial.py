"""Trials' pruning decisions: the median rule decided locally agrees with Optuna asking the study."""

from __future__ import annotations

import random

import optuna
import pytest

from loopml import Workspace
from loopml.tune._storage import open_studies
from loopml.tune._trial import _LocalPruning


@pytest.mark.parametrize("pruner", [optuna.pruners.MedianPruner(3, 24),
                                    optuna.pruners.PercentilePruner(25.0, n_startup_trials=2, interval_steps=2)])
def test_local_median_rule_agrees_with_the_study(ws: Workspace, pruner: optuna.pruners.BasePruner) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = open_studies(ws.settings.metadata_url)
    try:
        study = optuna.create_study(storage=studies.storage("p"), study_name="p", direction="maximize",
                                    pruner=pruner)
        rng = random.Random(0)
        decisions = []
        for i in range(14):
            trial = study.ask()
            x = trial.suggest_float("x", 0.0, 1.0)
            local = _LocalPruning(study, pruner)
            pruned = False
            for step in range(12, 241, 12):
                v = x * step / 240 + rng.random() * 0.05
                trial.report(v, step)
                ours, theirs = local.should_prune(step, v), trial.should_prune()
                assert ours == theirs, (i, step)
                decisions.append(ours)
                if ours:
                    pruned = True
                    break
            if pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, x)
        assert any(decisions) and not all(decisions)
    finally:
        studies.close()
