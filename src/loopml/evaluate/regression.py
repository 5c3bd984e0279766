"""Regression and forecasting metrics, and the residual data of the report."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from loopml.errors import InvalidInput
from loopml.evaluate._arrays import as_numeric, check_lengths, json_float

#: most points of the residual scatter plots (a seeded sample beyond this)
MAX_SCATTER_POINTS = 5000
RESIDUAL_BINS = 40


def _guarded_mape(y_true: np.ndarray, y_pred: np.ndarray, notes: list[str]) -> float | None:
    """MAPE over the rows whose true value is not 0 (a fraction: 0.1 is 10%)."""
    nonzero = y_true != 0
    skipped = int((~nonzero).sum())
    if skipped == len(y_true):
        notes.append("MAPE is undefined: every true value is 0")
        return None
    if skipped:
        notes.append(f"MAPE leaves out {skipped} row(s) whose true value is 0")
    return float(skm.mean_absolute_percentage_error(y_true[nonzero], y_pred[nonzero]))


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    yt = as_numeric("y_true", y_true)
    yp = as_numeric("y_pred", y_pred) if y_pred is not None else None
    if yp is None:
        raise InvalidInput("y_pred (the predicted values) is required for regression and forecasting")
    check_lengths(y_true=yt, y_pred=yp)
    return yt, yp


def regression_metrics(y_true: Any, y_pred: Any, *, notes: list[str] | None = None) -> dict[str, float | None]:
    """MSE, RMSE, MAE, median absolute error, R² and MAPE.

    MAPE is a fraction (0.1 is 10%) over the rows whose true value is not 0;
    when some are 0 a note says how many rows it leaves out. R² is undefined
    (None) with fewer than two rows or a constant ``y_true``.

    Parameters
    ----------
    y_true, y_pred
        True and predicted values.
    notes
        A list that receives notes about left-out rows.

    Returns
    -------
    dict
        ``mse``, ``rmse``, ``mae``, ``median_ae``, ``r2``, ``mape``.

    Examples
    --------
    >>> m = regression_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 4.0])
    >>> round(m["mse"], 4), round(m["mae"], 4)
    (0.3333, 0.3333)
    """
    yt, yp = _pair(y_true, y_pred)
    notes = notes if notes is not None else []
    out: dict[str, float | None] = {
        "mse": float(skm.mean_squared_error(yt, yp)),
        "rmse": float(skm.root_mean_squared_error(yt, yp)),
        "mae": float(skm.mean_absolute_error(yt, yp)),
        "median_ae": float(skm.median_absolute_error(yt, yp)),
        "r2": float(skm.r2_score(yt, yp)) if len(yt) > 1 and np.ptp(yt) > 0 else None,
        "mape": _guarded_mape(yt, yp, notes),
    }
    if out["r2"] is None:
        notes.append("R² is undefined: fewer than two rows, or every true value is the same")
    return out


def forecasting_metrics(
    y_true: Any,
    y_pred: Any,
    *,
    y_train: Any = None,
    seasonality: int = 1,
    notes: list[str] | None = None,
) -> dict[str, float | None]:
    """MAE, RMSE, MAPE, sMAPE and MASE of a forecast.

    MASE divides the forecast's MAE by the MAE of the seasonal naive forecast
    (``y[t] = y[t - seasonality]``) on ``y_train`` (the series the model was
    fitted on; without it, on ``y_true`` itself). sMAPE is
    ``mean(2·|y − ŷ| / (|y| + |ŷ|))`` with 0/0 counted as 0, in [0, 2]; MAPE as
    in :func:`regression_metrics`.

    Parameters
    ----------
    y_true, y_pred
        The actual and forecast values, in time order.
    y_train
        The training series for the MASE scale.
    seasonality
        Season length in steps (1: the plain naive forecast).
    notes
        A list that receives notes.

    Returns
    -------
    dict
        ``mae``, ``rmse``, ``mape``, ``smape``, ``mase``.

    Examples
    --------
    >>> m = forecasting_metrics([3.0, 4.0, 5.0], [3.5, 4.0, 4.5], y_train=[1.0, 2.0, 3.0])
    >>> round(m["mase"], 4), round(m["smape"], 4)
    (0.3333, 0.0864)
    """
    yt, yp = _pair(y_true, y_pred)
    notes = notes if notes is not None else []
    if isinstance(seasonality, bool) or not isinstance(seasonality, (int, np.integer)) or seasonality < 1:
        raise InvalidInput(f"seasonality must be a whole number of steps ≥ 1; got {seasonality!r}")
    m = int(seasonality)
    history = as_numeric("y_train", y_train) if y_train is not None else yt
    if len(history) <= m:
        where = "y_train" if y_train is not None else "y_true (no y_train given)"
        raise InvalidInput(
            f"MASE needs more than seasonality={m} values in {where} for the seasonal naive scale; got {len(history)}"
        )
    scale = float(skm.mean_absolute_error(history[m:], history[:-m]))
    mae = float(skm.mean_absolute_error(yt, yp))
    denom = np.abs(yt) + np.abs(yp)
    with np.errstate(divide="ignore", invalid="ignore"):
        smape = np.where(denom > 0, 2.0 * np.abs(yt - yp) / denom, 0.0)
    if scale == 0:
        notes.append("MASE is undefined: the seasonal naive forecast is exact on the training series")
    return {
        "mae": mae,
        "rmse": float(skm.root_mean_squared_error(yt, yp)),
        "mape": _guarded_mape(yt, yp, notes),
        "smape": float(smape.mean()),
        "mase": json_float(mae / scale) if scale > 0 else None,
    }


def residuals(y_true: Any, y_pred: Any, *, seed: int = 0) -> dict[str, Any]:
    """Data of the residual plots: a seeded sample of (predicted, actual, residual) and a histogram."""
    yt, yp = _pair(y_true, y_pred)
    res = yt - yp
    n = len(yt)
    idx = (np.sort(np.random.default_rng(seed).choice(n, MAX_SCATTER_POINTS, replace=False))
           if n > MAX_SCATTER_POINTS else np.arange(n))
    counts, edges = np.histogram(res, bins=min(RESIDUAL_BINS, max(1, n)))
    return {
        "predicted": [round(float(v), 6) for v in yp[idx]],
        "actual": [round(float(v), 6) for v in yt[idx]],
        "residual": [round(float(v), 6) for v in res[idx]],
        "sampled": bool(n > MAX_SCATTER_POINTS),
        "histogram": {"edges": [float(v) for v in edges], "counts": [int(c) for c in counts]},
        "mean": float(res.mean()),
        "std": float(res.std()),
    }
