from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import InvalidInput, NotFound
from loopml.evaluate import BusinessCosts, business_metrics, evaluate_predictions, measure_latency

Y_TRUE = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
Y_PRED = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]  # TP 3, FN 1, FP 1, TN 5
COSTS = {"cost_fp": 10, "cost_fn": 100, "benefit_tp": 50, "price_per_prediction": 0.5,
         "predictions_per_day": 1000, "development_cost": 20000}


def test_business_math_by_hand() -> None:
    b = business_metrics(Y_TRUE, Y_PRED, COSTS)
    base, model = b["scenarios"]
    assert (base["name"], base["role"], model["name"]) == ("always-negative", "baseline", "model")
    # baseline predicts nothing: FN 4, TN 6 -> errors 4 * 100 / 10 = 40 per prediction, runs for free
    assert (base["tp"], base["fp"], base["tn"], base["fn"]) == (0, 0, 6, 4)
    assert base["cost_per_prediction"] == 40 and base["value_per_prediction"] == -40
    assert base["value_per_day"] == -40_000 and base["operating_cost_per_prediction"] == 0
    # model: errors (10 + 100) / 10 = 11, benefit 3 * 50 / 10 = 15, operating 0.5
    assert model["error_cost_per_prediction"] == 11 and model["benefit_per_prediction"] == 15
    assert model["cost_per_prediction"] == 11.5 and model["value_per_prediction"] == 3.5
    assert model["cost_per_day"] == 11_500 and model["value_per_day"] == 3_500
    # savings: 3.5 - (-40) = 43.5 per prediction, 43,500 per day
    assert model["savings_per_prediction"] == 43.5 and model["savings_per_day"] == 43_500
    assert model["roi"] == pytest.approx((43_500 * 365 - 20_000) / 20_000)  # 792.875
    assert model["payback_days"] == pytest.approx(20_000 / 43_500)
    assert b["summary"]["roi"] == model["roi"] and b["notes"] == []


def test_users_compute_cost_and_always_positive_baseline() -> None:
    costs = {"cost_fp": 10, "cost_fn": 100, "price_per_compute_second": 2.0, "users_per_day": 500,
             "predictions_per_user": 4, "baseline": "always-positive", "currency": "EUR",
             "horizon_days": 30, "development_cost": 1000}
    b = business_metrics(Y_TRUE, Y_PRED, costs, latency={"p50_ms": 20, "p99_ms": 80, "mean_ms": 25})
    base, model = b["scenarios"]
    assert b["predictions_per_day"] == 2000 and b["currency"] == "EUR"
    # always-positive: FP 6 -> 6 * 10 / 10 = 6 per prediction
    assert base["name"] == "always-positive" and base["cost_per_prediction"] == 6
    # compute: 2.0 per second * 25 ms (the mean) = 0.05 per prediction
    assert model["operating_cost_per_prediction"] == pytest.approx(0.05)
    assert model["cost_per_user_per_day"] == pytest.approx((11 + 0.05) * 2000 / 500)
    assert model["operating_cost_per_user_per_day"] == pytest.approx(0.05 * 4)
    save = (-(11 + 0.05)) - (-6)  # the model loses money against always-positive here
    assert model["savings_per_day"] == pytest.approx(save * 2000) and model["payback_days"] is None
    assert model["roi"] == pytest.approx((save * 2000 * 30 - 1000) / 1000)
    assert any("never pays back" in n for n in b["notes"])
    align = {a["name"]: a for a in b["alignment"]}
    assert align["model"]["latency_p99_ms"] == 80 and align["always-positive"]["latency_p50_ms"] is None


def test_baseline_predictions_and_missing_volume() -> None:
    prod = [1, 0, 0, 0, 1, 1, 0, 0, 0, 0]  # TP 1, FN 3, FP 2, TN 4
    b = business_metrics(Y_TRUE, Y_PRED, {"cost_fp": 1, "cost_fn": 5, "baseline": "prod"}, baseline_pred=prod)
    base, model = b["scenarios"]
    assert base["name"] == "baseline: prod" and base["cost_per_prediction"] == pytest.approx((2 + 15) / 10)
    assert model["savings_per_prediction"] == pytest.approx((2 + 15) / 10 - (1 + 5) / 10)
    assert model["savings_per_day"] is None and model["roi"] is None
    assert any("predictions_per_day or users_per_day" in n for n in b["notes"])
    with pytest.raises(InvalidInput, match="name the baseline column 'prod'; pass its predictions"):
        business_metrics(Y_TRUE, Y_PRED, {"baseline": "prod"})


def test_evaluate_adds_a_threshold_column_and_alignment() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.4, 0.7, 0.8, 0.9])
    r = evaluate_predictions(y, y_score=s, costs={"cost_fp": 1, "cost_fn": 10, "predictions_per_day": 100},
                             latency={"p50_ms": 1.5, "p99_ms": 4.0})
    assert r.business is not None
    names = [x["name"] for x in r.business["scenarios"]]
    assert names == ["always-negative", "model", "model @ 0.4"]
    at_t = r.business["scenarios"][2]
    assert at_t["cost_per_prediction"] == pytest.approx(0.2) and at_t["fn"] == 0
    model_row = r.business["alignment"][1]
    assert model_row["metrics"]["roc_auc"] == r.metrics["roc_auc"] and model_row["latency_p50_ms"] == 1.5


def test_latency_only_and_regression_operating_costs() -> None:
    r = evaluate_predictions([1.0, 2.0, 3.0], [1.1, 2.0, 2.7], latency={"p50_ms": 3, "p99_ms": 9})
    assert r.business is not None and r.business["scenarios"] == [] and r.business["costs"] is None
    assert r.business["alignment"][0]["metrics"]["rmse"] == r.metrics["rmse"]
    r2 = evaluate_predictions([1.0, 2.0, 3.0], [1.1, 2.0, 2.7],
                              costs={"price_per_prediction": 0.002, "predictions_per_day": 1e6, "cost_fp": 1})
    [model] = r2.business["scenarios"] if r2.business else []
    assert model["cost_per_day"] == pytest.approx(2000) and model["value_per_day"] is None
    assert any("binary classification only" in n for n in r2.business["notes"]) if r2.business else False


def test_measure_latency_times_single_rows() -> None:
    calls: list[int] = []

    def predict(rows: pd.DataFrame) -> np.ndarray:
        calls.append(len(rows))
        time.sleep(0.002)
        return np.zeros(len(rows))

    X = pd.DataFrame({"a": range(30), "b": range(30)})
    lat = measure_latency(predict, X, rows=20, warmup=2)
    assert set(calls) == {1} and len(calls) == 22
    assert 2.0 <= lat["p50_ms"] <= lat["p99_ms"] < 500 and lat["rows"] == 20
    r = evaluate_predictions([0, 1, 1, 0], [0, 1, 0, 0], predict=predict, X=X)
    assert r.business is not None and r.business["latency"]["source"] == "measured"
    with pytest.raises(InvalidInput, match="predict needs sample rows X"):
        evaluate_predictions([0, 1], [0, 1], predict=predict)


@pytest.mark.parametrize(("text", "message"), [
    ("cost_fp: 5\ncost_fx: 3\n", "unknown key 'cost_fx' (did you mean 'cost_fp'?); known keys are cost_fp"),
    ("predictions_per_day: -10\n", "predictions_per_day must be a number above 0; got -10"),
    ("users_per_day: 0\n", "users_per_day must be a number above 0"),
    ("cost_fn: -1\n", "cost_fn must be a number ≥ 0; got -1"),
    ("cost_fn: lots\n", "cost_fn must be a number; got 'lots'"),
    ("cost_fn: true\n", "cost_fn must be a number; got True"),
    ("- cost_fp: 5\n", "must be a mapping of key: value (e.g. 'cost_fp: 5'); got a list"),
    ("", "must be a mapping of key: value (e.g. 'cost_fp: 5'); got nothing"),
    ("baseline: 3\n", "baseline must be text"),
    ("cost_fp: [1\n", "is not valid YAML"),
])
def test_bad_costs_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "costs.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as exc:
        BusinessCosts.load(path)
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_costs_file_round_trip_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "costs.yaml"
    path.write_text("cost_fp: 5\ncost_fn: 50\nusers_per_day: 200\nbaseline: always-positive\n")
    c = BusinessCosts.load(path)
    assert c.cost_fn == 50 and c.daily_predictions == 200 and c.baseline == "always-positive"
    assert BusinessCosts.from_mapping(c.to_dict()) == c
    assert BusinessCosts.coerce(str(path)) == c
    with pytest.raises(NotFound, match=r"costs file .*nope.yaml' does not exist"):
        BusinessCosts.load(tmp_path / "nope.yaml")
