"""The generated churn data: reproducible, and drifted the way the demo relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loopml._demo.data import FEATURES, NEW_PLAN, TARGET, make_churn
from loopml._demo.lifecycle import retrain_pipeline_text
from loopml.pipelines import Pipeline


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a, b = make_churn(300, seed=1), make_churn(300, seed=1)
    assert a.equals(b) and not a.equals(make_churn(300, seed=2))
    assert list(a.columns) == ["customer_id", "event_time", *FEATURES, TARGET]
    assert set(a[TARGET].unique()) == {0, 1} and 0.2 < a[TARGET].mean() < 0.6
    assert make_churn(10, seed=1, first_id=500)["customer_id"].tolist() == list(range(500, 510))


def test_drift_shifts_charges_adds_a_plan_and_changes_why_customers_leave() -> None:
    old, new = make_churn(5000, seed=3), make_churn(5000, seed=3, drift=True)
    assert new["monthly_charges"].mean() - old["monthly_charges"].mean() > 20
    assert NEW_PLAN not in set(old["plan"]) and 0.15 < (new["plan"] == NEW_PLAN).mean() < 0.25
    # before: support calls drive churn; after: long tenure does
    assert np.corrcoef(old["support_calls"], old[TARGET])[0, 1] > 0.2
    assert abs(np.corrcoef(new["support_calls"], new[TARGET])[0, 1]) < 0.05
    assert np.corrcoef(old["tenure_months"], old[TARGET])[0, 1] < -0.1
    assert np.corrcoef(new["tenure_months"], new[TARGET])[0, 1] > 0.1


def test_broken_rows_have_negative_charges() -> None:
    df = make_churn(2000, seed=4, broken=0.05)
    share = (df["monthly_charges"] < 0).mean()
    assert 0.03 < share < 0.07 and (make_churn(2000, seed=4)["monthly_charges"] > 0).all()


def test_the_retraining_pipeline_is_valid() -> None:
    import yaml

    p = Pipeline.from_dict(yaml.safe_load(retrain_pipeline_text()))
    p.validate()
    assert p.name == "churn_retrain"


def test_the_example_generator_writes_every_file(tmp_path: Path) -> None:
    import importlib.util

    import pandas as pd

    script = Path(__file__).resolve().parents[2] / "examples" / "churn" / "generate.py"
    spec = importlib.util.spec_from_file_location("churn_generate", script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    written = mod.main(["--out", str(tmp_path), "--rows", "400", "--seed", "1"])
    assert sorted(p.name for p in written) == sorted(
        ["customers.csv", "train.csv", "holdout.csv", "traffic.jsonl", "drifted.jsonl", "fresh.csv",
         "fresh_holdout.csv"])
    train, holdout = pd.read_csv(tmp_path / "train.csv"), pd.read_csv(tmp_path / "holdout.csv")
    assert list(train.columns) == [*FEATURES, TARGET] and (train["monthly_charges"] >= 0).all()
    assert len(train) + len(holdout) == (pd.read_csv(tmp_path / "customers.csv")["monthly_charges"] >= 0).sum()
    drifted = pd.read_json(tmp_path / "drifted.jsonl", lines=True)
    assert list(drifted.columns) == FEATURES and NEW_PLAN in set(drifted["plan"])
