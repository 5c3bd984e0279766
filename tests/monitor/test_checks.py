"""constraints.json (suggested and edited) and every check type of constraint_violations.json."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.monitor.checks import check_data
from loopml.monitor.constraints import check_constraints, feature_config, suggest_constraints
from loopml.monitor.statistics import compute_statistics

rng = np.random.default_rng(7)
N = 4000
BASE = pd.DataFrame({
    "age": rng.integers(18, 80, N),
    "amount": rng.lognormal(3, 0.5, N),
    "plan": rng.choice(np.array(["basic", "plus", "pro"], dtype=object), N, p=[0.5, 0.3, 0.2]),
    "score": np.where(rng.random(N) < 0.05, np.nan, rng.normal(0, 1, N)),
})


def _run(cur: pd.DataFrame, cons: dict[str, Any] | None = None) -> dict[str, Any]:
    bs = compute_statistics(BASE)
    c = check_constraints(cons) if cons is not None else suggest_constraints(bs)
    types = {f["name"]: f["inferred_type"] for f in c["features"]}
    cs = compute_statistics(cur, features=[f for f in types if f in cur.columns], types=types)
    return check_data(bs, c, cs, current_columns=[str(x) for x in cur.columns])


def _checks(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(v["feature_name"], v["constraint_check_type"]) for v in doc["violations"]}


def _same() -> pd.DataFrame:
    r = np.random.default_rng(8)
    return pd.DataFrame({
        "age": r.integers(18, 80, N), "amount": r.lognormal(3, 0.5, N),
        "plan": r.choice(np.array(["basic", "plus", "pro"], dtype=object), N, p=[0.5, 0.3, 0.2]),
        "score": np.where(r.random(N) < 0.05, np.nan, r.normal(0, 1, N)),
    })


def test_suggested_constraints() -> None:
    c = suggest_constraints(compute_statistics(BASE))
    f = {x["name"]: x for x in c["features"]}
    assert f["age"]["inferred_type"] == "Integral" and f["amount"]["num_constraints"] == {"is_non_negative": True}
    assert f["plan"]["string_constraints"] == {"domains": ["basic", "plus", "pro"]}
    assert f["score"]["completeness"] == pytest.approx(1 - BASE["score"].isna().mean())
    assert f["score"]["num_constraints"] == {"is_non_negative": False}
    dc = c["monitoring_config"]["distribution_constraints"]
    assert (dc["comparison_method"], dc["comparison_threshold"], dc["categorical_drift_method"]) == ("Robust", 0.1, "LInfinity")
    assert json.loads(json.dumps(c)) == c  # plain JSON


def test_no_violation_on_the_same_process() -> None:
    doc = _run(_same())
    assert doc["violations"] == [] and doc["drift"]["drift_share"] == 0.0
    assert doc["drift"]["compared_features"] == 4 and not doc["drift"]["dataset_drift"]


def test_each_check_type() -> None:
    cur = _same()
    cur["age"] = cur["age"].astype(float)
    cur.loc[:99, "age"] = 30.5                                  # data_type_check: not Integral
    cur.loc[: N // 5, "score"] = np.nan                         # completeness_check: 20% more missing
    cur.loc[:199, "amount"] = -1.0                              # non_negative_check: 5% negative
    cur.loc[:599, "plan"] = "enterprise"                        # categorical_values_check + drift
    cur = cur.drop(columns=["plan"]).assign(plan=cur["plan"])   # column order does not matter
    cur["extra"] = 1                                            # extra_column_check
    doc = _run(cur)
    assert _checks(doc) == {
        ("age", "data_type_check"), ("score", "completeness_check"), ("amount", "non_negative_check"),
        ("plan", "categorical_values_check"), ("plan", "baseline_drift_check"), ("extra", "extra_column_check"),
    }
    by = {v["constraint_check_type"]: v["description"] for v in doc["violations"]}
    assert "Expected data type: Integral" in by["data_type_check"] and "97.5%" in by["data_type_check"]
    assert "'enterprise'" in by["categorical_values_check"] and "15%" in by["categorical_values_check"]
    assert "exceeds threshold: 0.1 (LInfinity, Robust)" in by["baseline_drift_check"]
    missing = _run(_same().drop(columns=["amount"]))
    assert _checks(missing) == {("amount", "missing_column_check")}


def test_numeric_drift_check_and_drift_block() -> None:
    cur = _same()
    cur["amount"] = cur["amount"] * 1.8
    doc = _run(cur)
    assert _checks(doc) == {("amount", "baseline_drift_check")}
    d = doc["drift"]["features"]["amount"]
    assert d["primary_methods"] == ["KS"] and d["drift"] and set(d["methods"]) == {"KS", "Wasserstein", "PSI"}
    assert all(m["drift"] for m in d["methods"].values())
    assert doc["drift"]["drifted_features"] == ["amount"] and doc["drift"]["drift_share"] == 0.25


def test_edited_constraints() -> None:
    cons = suggest_constraints(compute_statistics(BASE))
    cur = _same()
    cur["amount"] = cur["amount"] * 1.05
    assert _run(cur, copy.deepcopy(cons))["violations"] == []
    tight = copy.deepcopy(cons)
    f = next(x for x in tight["features"] if x["name"] == "amount")
    f["monitoring_config_overrides"] = {"numerical_drift_method": "Wasserstein", "comparison_threshold": 0.01,
                                        "comparison_method": "Simple"}
    assert _checks(_run(cur, tight)) == {("amount", "baseline_drift_check")}
    off = copy.deepcopy(tight)
    off["monitoring_config"]["evaluate_constraints"] = "Disabled"
    assert _run(cur, off)["violations"] == []
    no_compare = copy.deepcopy(tight)
    no_compare["monitoring_config"]["distribution_constraints"]["perform_comparison"] = "Disabled"
    assert _run(cur, no_compare)["drift"]["features"] == {}
    # the domain can be widened by hand
    wide = copy.deepcopy(cons)
    next(x for x in wide["features"] if x["name"] == "plan")["string_constraints"]["domains"].append("enterprise")
    cur2 = _same()
    cur2.loc[:3, "plan"] = "enterprise"
    assert ("plan", "categorical_values_check") in _checks(_run(cur2, cons))
    assert ("plan", "categorical_values_check") not in _checks(_run(cur2, wide))


def test_feature_config_resolution() -> None:
    cons = check_constraints(suggest_constraints(compute_statistics(BASE)))
    cons["monitoring_config"]["distribution_constraints"]["method_thresholds"]["PSI"] = 0.3
    f = {x["name"]: x for x in cons["features"]}
    num, cat = feature_config(cons, f["amount"]), feature_config(cons, f["plan"])
    assert num.primary == ("KS",) and num.thresholds["PSI"] == 0.3 and num.robust and num.alpha == 0.001
    assert cat.primary == ("LInfinity",) and cat.thresholds["LInfinity"] == 0.1


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.pop("features"), "'features' list"),
    (lambda c: c["features"][0].update(inferred_type="Float"), r"features\[0\].inferred_type \(age\) must be one of"),
    (lambda c: c["features"][0].update(completeness=1.5), "completeness .age. must be a number between 0.0 and 1.0"),
    (lambda c: c["features"].append(dict(c["features"][0])), "feature 'age' appears twice"),
    (lambda c: c["monitoring_config"]["distribution_constraints"].update(comparison_method="Strict"),
     "comparison_method must be one of Robust, Simple"),
    (lambda c: c["monitoring_config"]["distribution_constraints"].update(categorical_drift_method="KS"),
     "categorical_drift_method must be one of"),
    (lambda c: c["monitoring_config"]["distribution_constraints"].update(method_thresholds={"KL": 1}),
     "method_thresholds must be one of"),
    (lambda c: c["monitoring_config"].update(robust_alpha=-1), "robust_alpha must be a number"),
    (lambda c: c["features"][2].update(string_constraints={"domains": "basic"}), "domains .plan. must be a list"),
])
def test_bad_constraints_say_what_is_wrong(edit: Any, message: str) -> None:
    c = suggest_constraints(compute_statistics(BASE))
    edit(c)
    with pytest.raises(InvalidInput, match=message):
        check_constraints(c, source="c.json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        check_constraints("{nope", source="c.json")
