from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from loopml import InvalidInput
from loopml.evaluate import evaluate_predictions, forecasting_metrics, regression_metrics


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(11)
    y = rng.normal(10, 3, 400)
    p = y + rng.normal(0, 1, 400)
    m = regression_metrics(y, p)
    assert m["mse"] == pytest.approx(skm.mean_squared_error(y, p))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert m["median_ae"] == pytest.approx(skm.median_absolute_error(y, p))
    assert m["r2"] == pytest.approx(skm.r2_score(y, p))
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, p))


def test_mape_leaves_out_zero_targets() -> None:
    notes: list[str] = []
    m = regression_metrics([0.0, 2.0, 4.0], [1.0, 1.0, 5.0], notes=notes)
    assert m["mape"] == pytest.approx((0.5 + 0.25) / 2)  # the 0 row is left out, not divided by eps
    assert notes == ["MAPE leaves out 1 row(s) whose true value is 0"]
    notes.clear()
    assert regression_metrics([0.0, 0.0], [1.0, 2.0], notes=notes)["mape"] is None
    assert "every true value is 0" in notes[0]
    assert regression_metrics([3.0, 3.0], [1.0, 2.0])["r2"] is None


def test_forecasting_metrics_by_hand() -> None:
    y_train = [10.0, 12.0, 11.0, 13.0, 12.0]  # naive errors 2, 1, 2, 1 -> scale 1.5
    actual = [14.0, 13.0, 15.0]
    forecast = [13.0, 13.0, 12.0]  # errors 1, 0, 3 -> MAE 4/3
    m = forecasting_metrics(actual, forecast, y_train=y_train)
    assert m["mae"] == pytest.approx(4 / 3)
    assert m["mase"] == pytest.approx((4 / 3) / 1.5)
    assert m["smape"] == pytest.approx(np.mean([2 / 27, 0.0, 6 / 27]))
    assert m["mape"] == pytest.approx(np.mean([1 / 14, 0, 3 / 15]))
    # seasonality 2: scale = mean(|11-10|, |13-12|, |12-11|) = 1
    assert forecasting_metrics(actual, forecast, y_train=y_train, seasonality=2)["mase"] == pytest.approx(4 / 3)
    # without a training series the scale comes from the actuals: mean(|13-14|, |15-13|) = 1.5
    assert forecasting_metrics(actual, forecast)["mase"] == pytest.approx((4 / 3) / 1.5)
    assert forecasting_metrics([0.0, 1.0], [0.0, 1.0], y_train=[1.0, 2.0])["smape"] == 0.0  # 0/0 counts as 0


def test_forecasting_undefined_and_bad_input() -> None:
    notes: list[str] = []
    assert forecasting_metrics([1.0, 2.0], [1.0, 2.5], y_train=[5.0, 5.0, 5.0], notes=notes)["mase"] is None
    assert "seasonal naive forecast is exact" in notes[0]
    with pytest.raises(InvalidInput, match="more than seasonality=4 values in y_train"):
        forecasting_metrics([1.0, 2.0], [1.0, 2.0], y_train=[1.0, 2.0, 3.0], seasonality=4)
    with pytest.raises(InvalidInput, match="seasonality must be a whole number"):
        forecasting_metrics([1.0, 2.0], [1.0, 2.0], seasonality=0)


def test_evaluate_regression_result_and_residuals() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=300) * 5 + 0.5
    p = y - rng.normal(size=300)
    r = evaluate_predictions(y, p)
    assert r.task == "regression" and r.info["task_inferred"]
    rs = r.curves["residuals"]
    assert rs["residual"] == pytest.approx(list(y - p), abs=1e-5)
    assert sum(rs["histogram"]["counts"]) == 300 and rs["mean"] == pytest.approx(np.mean(y - p))
    assert r.confusion_matrix is None and r.headline.keys() == {"rmse", "mae", "r2", "mape"}
    f = evaluate_predictions(y, p, task="forecasting", seasonality=7)
    assert f.task == "forecasting" and f.info["seasonality"] == 7 and "mase" in f.metrics


def test_regression_bad_input() -> None:
    with pytest.raises(InvalidInput, match=r"y_true has 3, y_pred has 2 rows"):
        regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="y_pred must be numbers; got values such as 'x'"):
        regression_metrics([1.0, 2.0], [1.0, "x"])
    with pytest.raises(InvalidInput, match="regression needs y_pred"):
        evaluate_predictions([1.0, 2.5], task="regression")
