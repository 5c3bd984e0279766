"""Forecasting: one gradient-boosting model (LightGBM) on lag features, recursive multi-step.

The data has a ``time`` role column, an optional ``series`` role column (many
series share one global model, the series id is a categorical feature) and
the target values. Features of each row: the previous ``lags`` values of its
series, their mean and spread, and calendar parts of its time. To forecast,
the model predicts one step ahead, appends the prediction to the history and
repeats (recursive strategy). ``predict`` takes rows naming a series and a
future time and returns the forecast for it; forecasts are cached per series.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from loopml.errors import InvalidInput
from loopml.train.algorithms import register_algorithm
from loopml.train.algorithms._base import FORECASTING, Algorithm, MetricCallback, check_fitted
from loopml.train.hyperparameters import Hyperparameter as H

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import Self

log = logging.getLogger(__name__)

_MAX_STEPS = 100_000
_CALENDAR = ("dow", "month", "dayofyear", "hour")


def _key(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


@register_algorithm
class Forecast(Algorithm):
    """Gradient boosting on lag features with recursive multi-step forecasts.

    Roles: ``time`` (required; datetimes or integer periods) and ``series``
    (optional; one id per series). Per-round metric: the one-step-ahead
    ``validation:one_step_rmse``; final validation metrics (rmse, mae, mape,
    smape, mase) compare recursive forecasts with the validation rows, which
    must come after the training rows of their series.
    """

    name = "forecast"
    description = "Forecasting: gradient boosting (LightGBM) on lag features, recursive multi-step, many series."
    problem_types = (FORECASTING,)
    roles_doc: ClassVar[Mapping[str, str]] = {
        "time": "the time of each observation (datetimes or integer periods, evenly spaced)",
        "series": "series id: one model forecasts every series",
    }
    required_roles: ClassVar[Mapping[str, tuple[str, ...]]] = {FORECASTING: ("time",)}
    predict_roles = ("time", "series")
    iteration_metrics: ClassVar[Mapping[str, tuple[str, ...]]] = {FORECASTING: ("one_step_rmse",)}
    libraries = ("lightgbm",)
    imports = ("lightgbm",)
    imports_without_sklearn = ("lightgbm",)
    handles_missing = True
    categorical_encoding = "none"
    hyperparameters = (
        H("lags", "int", 7, low=1, high=1000, search=(3, 60), description="Past values used as features."),
        H("horizon", "int", 7, low=1, high=_MAX_STEPS, tunable=False,
          description="Steps forecast by forecast() when not told otherwise."),
        H("num_boost_round", "int", 200, low=1, high=10_000, log=True, search=(50, 1000),
          description="Boosting rounds."),
        H("learning_rate", "float", 0.05, low=1e-4, high=1.0, log=True, search=(0.01, 0.3),
          description="Shrinkage."),
        H("num_leaves", "int", 31, low=2, high=131_072, log=True, search=(4, 128), description="Leaves per tree."),
        H("min_data_in_leaf", "int", 10, low=1, high=1_000_000, log=True, search=(2, 100),
          description="Minimum rows in a leaf."),
        H("window_stats", "bool", True, description="Add the mean and standard deviation of the lags."),
        H("calendar", "bool", True, description="Add day of week, month, day of year and hour of the time."),
        H("num_threads", "int", 0, low=0, high=1024, tunable=False, description="Threads (0: all cores)."),
    )

    booster_: Any

    def __init__(self, hyperparameters: Mapping[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(hyperparameters, **kw)
        self._cache: dict[str, list[float]] = {}

    # -- roles and time handling -----------------------------------------------------------------
    @property
    def _time_col(self) -> str:
        col = self.roles.get("time")
        if not col:
            raise InvalidInput("forecast needs a time column: pass roles={'time': COLUMN}")
        return col

    def _series_keys(self, X: pd.DataFrame) -> np.ndarray:
        col = self.roles.get("series")
        if not col:
            return np.full(len(X), "", dtype=object)
        if col not in X.columns:
            raise InvalidInput(f"the data has no series column {col!r}")
        return np.array([_key(v) for v in X[col].tolist()], dtype=object)

    def _times(self, values: Any) -> Any:
        import pandas as pd

        s = pd.Series(values)
        if self.time_kind_ == "numeric":
            try:
                return pd.to_numeric(s).to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidInput(f"time column {self._time_col!r} must hold numbers, as in training") from None
        try:
            out = pd.to_datetime(s)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"time column {self._time_col!r} must hold dates/times: {e}") from None
        return pd.DatetimeIndex(out)

    def _detect_time(self, col: pd.Series) -> None:
        import pandas as pd

        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            self.time_kind_ = "numeric"
        else:
            self.time_kind_ = "datetime"

    def _calendar(self, times: Any) -> np.ndarray:
        if not self.params["calendar"] or self.time_kind_ == "numeric":
            return np.zeros((len(times), 0))
        idx = times
        return np.column_stack([
            np.asarray(idx.day_of_week, dtype=float), np.asarray(idx.month, dtype=float),
            np.asarray(idx.day_of_year, dtype=float), np.asarray(idx.hour, dtype=float),
        ])

    def _features(self, lagmat: np.ndarray, codes: np.ndarray, times: Any) -> np.ndarray:
        cols = [lagmat]
        if self.params["window_stats"]:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-missing windows
                cols.append(np.nanmean(lagmat, axis=1, keepdims=True))
                cols.append(np.nanstd(lagmat, axis=1, keepdims=True))
        cols.append(codes.reshape(-1, 1).astype(float))
        cols.append(self._calendar(times))
        return np.column_stack(cols).astype(np.float64)

    def _feature_names(self) -> list[str]:
        names = [f"lag_{i}" for i in range(1, self.params["lags"] + 1)]
        if self.params["window_stats"]:
            names += ["lag_mean", "lag_std"]
        names.append("series")
        if self.params["calendar"] and self.time_kind_ == "datetime":
            names += list(_CALENDAR)
        return names

    def _lag_frame(self, keys: np.ndarray, times: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
        """Sort by (series, time); return order, lag matrix, sorted times and sorted y."""
        import pandas as pd

        t_num = np.asarray(times.asi8 if hasattr(times, "asi8") else times, dtype=np.float64)
        order = np.lexsort((t_num, keys))
        k_s, y_s = keys[order], np.asarray(y, dtype=np.float64)[order]
        L = self.params["lags"]
        frame = pd.DataFrame({"k": k_s, "y": y_s})
        g = frame.groupby("k", sort=False)["y"]
        lagmat = np.column_stack([g.shift(i).to_numpy(dtype=np.float64) for i in range(1, L + 1)])
        t_sorted = times[order]
        return order, lagmat, t_sorted, y_s

    # -- fit ----------------------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | None = None,
        *,
        callback: MetricCallback | None = None,
    ) -> Self:
        import lightgbm as lgb
        import pandas as pd

        if y is None:
            raise InvalidInput("forecast needs a target column with the values to forecast")
        tcol = self._time_col
        if tcol not in X.columns:
            raise InvalidInput(f"the data has no time column {tcol!r}; columns are {list(X.columns)}")
        ignored = [c for c in X.columns if c not in self.roles.values()]
        if ignored:
            log.info("forecast uses the target history and calendar only; ignoring columns %s", ignored[:10])
        self._detect_time(X[tcol])
        keys = self._series_keys(X)
        times = self._times(X[tcol])
        if pd.isna(pd.Series(np.asarray(times))).any():
            raise InvalidInput(f"time column {tcol!r} has missing values")
        yv = np.asarray(y, dtype=np.float64)
        self.series_codes_ = {k: i for i, k in enumerate(sorted(set(keys.tolist())))}
        self._infer_step(keys, times)

        order, lagmat, t_sorted, y_s = self._lag_frame(keys, times, yv)
        k_s = keys[order]
        codes = np.array([self.series_codes_[k] for k in k_s], dtype=np.int64)
        use = ~np.isnan(lagmat[:, 0]) & ~np.isnan(y_s)
        if use.sum() < 2:
            raise InvalidInput(
                f"forecast with lags={self.params['lags']} has too little history: each series needs more "
                "than one observation"
            )
        feats = self._features(lagmat, codes, t_sorted)
        dtrain = lgb.Dataset(feats[use], label=y_s[use], feature_name=self._feature_names(),
                             categorical_feature=["series"], free_raw_data=True)
        # the history each series ends with: the last `lags` values, newest last
        L = self.params["lags"]
        self.history_: dict[str, list[float]] = {}
        self.last_time_: dict[str, Any] = {}
        ends = np.flatnonzero(np.r_[k_s[1:] != k_s[:-1], True])
        starts = np.r_[0, ends[:-1] + 1]
        for s, e in zip(starts, ends, strict=True):
            vals = y_s[s : e + 1][-L:]
            self.history_[str(k_s[s])] = [float("nan")] * (L - len(vals)) + vals.tolist()
            self.last_time_[str(k_s[s])] = t_sorted[e]
        diffs = np.abs(np.diff(y_s))[k_s[1:] == k_s[:-1]]
        diffs = diffs[~np.isnan(diffs)]
        self.scale_ = float(diffs.mean()) if len(diffs) else float("nan")

        valid_sets, callbacks = [], []
        if X_val is not None and y_val is not None:
            vfeats, vy = self._one_step_features(X_val, y_val, X, yv)
            if len(vy):
                valid_sets.append(lgb.Dataset(vfeats, label=vy, reference=dtrain))
        if callback is not None and valid_sets:
            def _cb(env: Any) -> None:
                for data, _name, value, *_ in env.evaluation_result_list:
                    if data == "validation":
                        callback(env.iteration + 1, {"validation:one_step_rmse": float(value)})

            callbacks.append(_cb)
        params: dict[str, Any] = {
            "objective": "regression", "metric": "rmse", "learning_rate": self.params["learning_rate"],
            "num_leaves": self.params["num_leaves"], "min_data_in_leaf": self.params["min_data_in_leaf"],
            "seed": self.seed, "deterministic": True, "verbosity": -1,
        }
        if self.params["num_threads"]:
            params["num_threads"] = self.params["num_threads"]
        self.booster_ = lgb.train(params, dtrain, num_boost_round=self.params["num_boost_round"],
                                  valid_sets=valid_sets, valid_names=["validation"] * len(valid_sets),
                                  callbacks=callbacks)
        self._cache = {}
        return self

    def _infer_step(self, keys: np.ndarray, times: Any) -> None:
        import pandas as pd

        # the longest series tells the spacing
        uniq, counts = np.unique(keys, return_counts=True)
        longest = uniq[np.argmax(counts)]
        t = times[keys == longest]
        self.freq_: str | None = None
        if self.time_kind_ == "datetime":
            idx = pd.DatetimeIndex(t).sort_values()
            if len(idx) >= 3:
                self.freq_ = _infer_freq(idx[-min(len(idx), 200):])
            deltas = np.diff(np.asarray(idx.asi8, dtype=np.float64))
        else:
            deltas = np.diff(np.sort(np.asarray(t, dtype=np.float64)))
        deltas = deltas[deltas > 0]
        if not len(deltas):
            raise InvalidInput("forecast needs at least two distinct times in a series to learn the spacing")
        self.step_ = float(np.median(deltas))

    def _one_step_features(
        self, X: pd.DataFrame, y: np.ndarray, X_hist: pd.DataFrame | None, y_hist: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features of ``X``'s rows with their true lags (history first): one-step-ahead evaluation."""
        keys = self._series_keys(X)
        times = self._times(X[self._time_col])
        yv = np.asarray(y, dtype=np.float64)
        is_new = np.ones(len(X), dtype=bool)
        if X_hist is not None and y_hist is not None:
            hk = self._series_keys(X_hist)
            ht = self._times(X_hist[self._time_col])
            keys = np.concatenate([hk, keys])
            times = ht.append(times) if hasattr(ht, "append") else np.concatenate([ht, times])
            yv = np.concatenate([np.asarray(y_hist, dtype=np.float64), yv])
            is_new = np.r_[np.zeros(len(hk), dtype=bool), is_new]
        order, lagmat, t_sorted, y_s = self._lag_frame(keys, times, yv)
        known = np.array([k in self.series_codes_ for k in keys[order]])
        codes = np.array([self.series_codes_.get(k, -1) for k in keys[order]], dtype=np.int64)
        feats = self._features(lagmat, codes, t_sorted)
        pick = is_new[order] & ~np.isnan(lagmat[:, 0]) & ~np.isnan(y_s) & known
        return feats[pick], y_s[pick]

    # -- predict ------------------------------------------------------------------------------------
    def _steps(self, key: str, times: Any) -> np.ndarray:
        """Step numbers (1 = the first time after training) of ``times`` for series ``key``."""
        import pandas as pd

        last = self.last_time_[key]
        if self.time_kind_ == "numeric":
            k = (np.asarray(times, dtype=np.float64) - float(last)) / self.step_
        elif self.freq_ is not None:
            t = pd.DatetimeIndex(times)
            last_ts = pd.Timestamp(last)
            span = (t.max() - last_ts) / pd.Timedelta(self.step_, unit="ns") if len(t) else 0
            n = int(min(max(math.ceil(float(span) * 1.1) + 2, 2), _MAX_STEPS + 1))
            grid = pd.date_range(last_ts, periods=n + 1, freq=self.freq_)
            pos = grid.get_indexer(t)
            k = np.where(pos >= 0, pos, np.nan).astype(np.float64)
        else:
            t_ns = np.asarray(pd.DatetimeIndex(times).asi8, dtype=np.float64)
            k = (t_ns - float(pd.Timestamp(last).value)) / self.step_
        bad = np.isnan(k) | (np.abs(k - np.round(k)) > 1e-6) | (np.round(k) < 1) | (k > _MAX_STEPS)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            when = times[i]
            raise InvalidInput(
                f"cannot forecast series {key or '(all)'!r} at {when}: forecasts are for times after the "
                f"last training time {last}, on its spacing ({self.freq_ or self.step_}), "
                f"at most {_MAX_STEPS} steps ahead"
            )
        return np.round(k).astype(np.int64)

    def _time_at(self, key: str, steps: np.ndarray) -> Any:
        import pandas as pd

        last = self.last_time_[key]
        if self.time_kind_ == "numeric":
            return float(last) + steps.astype(np.float64) * self.step_
        if self.freq_ is not None:
            grid = pd.date_range(pd.Timestamp(last), periods=int(steps.max()) + 1, freq=self.freq_)
            return grid[steps]
        return pd.DatetimeIndex(pd.Timestamp(last).value + (steps * self.step_).astype(np.int64))

    def _extend(self, need: Mapping[str, int]) -> None:
        """Make sure ``self._cache[key]`` holds at least ``need[key]`` forecasts, all series at once."""
        todo = {k: n for k, n in need.items() if len(self._cache.get(k, [])) < n}
        if not todo:
            return
        keys = sorted(todo)
        L = self.params["lags"]
        hist = np.array([self.history_[k] + self._cache.get(k, []) for k in keys], dtype=object)
        windows = np.array([np.asarray(h[-L:], dtype=np.float64) for h in hist])
        done = np.array([len(self._cache.get(k, [])) for k in keys])
        target = np.array([todo[k] for k in keys])
        codes = np.array([self.series_codes_[k] for k in keys], dtype=np.int64)
        out: dict[str, list[float]] = {k: list(self._cache.get(k, [])) for k in keys}
        step = int(done.min())
        while True:
            step += 1
            active = np.flatnonzero((done < step) & (target >= step))
            if not len(active):
                if step > target.max():
                    break
                continue
            lagmat = windows[active][:, ::-1]  # lag_1 is the newest value
            times = self._stack_times([keys[i] for i in active], step)
            pred = np.asarray(self.booster_.predict(self._features(lagmat, codes[active], times)), dtype=np.float64)
            for j, i in enumerate(active):
                out[keys[i]].append(float(pred[j]))
            windows[active] = np.column_stack([windows[active][:, 1:], pred])
            done[active] = step
        self._cache.update(out)

    def _stack_times(self, keys: list[str], step: int) -> Any:
        import pandas as pd

        one = np.array([step])
        parts = [self._time_at(k, one) for k in keys]
        if self.time_kind_ == "numeric":
            return np.concatenate(parts)
        return pd.DatetimeIndex(np.concatenate([np.asarray(p) for p in parts]))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_fitted(self, "booster_")
        tcol = self._time_col
        if tcol not in X.columns:
            raise InvalidInput(f"the data has no time column {tcol!r}; forecasts are asked for by time")
        keys = self._series_keys(X)
        times = self._times(X[tcol])
        unknown = sorted(set(keys.tolist()) - set(self.history_))
        if unknown:
            raise InvalidInput(f"series {unknown[0]!r} was not in the training data; cannot forecast it")
        steps = np.zeros(len(X), dtype=np.int64)
        for key in set(keys.tolist()):
            idx = np.flatnonzero(keys == key)
            steps[idx] = self._steps(key, times[idx])
        need: dict[str, int] = {}
        for key, s in zip(keys.tolist(), steps.tolist(), strict=True):
            need[key] = max(need.get(key, 0), s)
        self._extend(need)
        return np.array([self._cache[k][s - 1] for k, s in zip(keys.tolist(), steps.tolist(), strict=True)])

    def forecast(self, steps: int | None = None) -> pd.DataFrame:
        """The next ``steps`` (default: ``horizon``) values of every series as a frame (series, time, forecast)."""
        import pandas as pd

        check_fitted(self, "booster_")
        n = int(steps or self.params["horizon"])
        self._extend({k: n for k in self.history_})
        rows = []
        for k in sorted(self.history_):
            ts = self._time_at(k, np.arange(1, n + 1))
            rows.append(pd.DataFrame({"series": k, "time": ts, "forecast": self._cache[k][:n]}))
        out = pd.concat(rows, ignore_index=True)
        scol = self.roles.get("series")
        return out.rename(columns={"series": scol or "series", "time": self._time_col})

    def score(self, X: pd.DataFrame, y: np.ndarray | None) -> dict[str, float]:
        from loopml.train._metrics import evaluate

        if y is None:
            return {}
        keys = self._series_keys(X)
        times = self._times(X[self._time_col])
        future = np.ones(len(X), dtype=bool)
        for key in set(keys.tolist()):
            last = self.last_time_.get(key)
            if last is None:
                continue
            idx = np.flatnonzero(keys == key)
            future[idx] = np.asarray(times[idx] > last)
        if future.all():
            out = evaluate(FORECASTING, np.asarray(y, dtype=np.float64), self.predict(X))
            if self.scale_ and math.isfinite(self.scale_) and "mae" in out:
                out["mase"] = out["mae"] / self.scale_
            return out
        feats, yv = self._one_step_features(X, y, None, None)
        if not len(yv):
            return {}
        pred = np.asarray(self.booster_.predict(feats))
        return {"one_step_rmse": float(np.sqrt(np.mean((pred - yv) ** 2))),
                "one_step_mae": float(np.mean(np.abs(pred - yv)))}

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        self.booster_.save_model(str(path / "model.txt"))
        state = {
            "time_kind": self.time_kind_, "freq": self.freq_, "step": self.step_,
            "history": {k: [None if math.isnan(v) else v for v in h] for k, h in self.history_.items()},
            "last_time": {k: (str(v) if self.time_kind_ == "datetime" else float(v))
                          for k, v in self.last_time_.items()},
            "series_codes": self.series_codes_,
            "scale": None if math.isnan(self.scale_) else self.scale_,
        }
        (path / "state.json").write_text(json.dumps(state, sort_keys=True))

    def load(self, path: Path) -> Self:
        import lightgbm as lgb
        import pandas as pd

        state = json.loads((path / "state.json").read_text())
        self.time_kind_ = state["time_kind"]
        self.freq_ = state["freq"]
        self.step_ = float(state["step"])
        self.history_ = {k: [float("nan") if v is None else float(v) for v in h] for k, h in state["history"].items()}
        self.last_time_ = {k: (pd.Timestamp(v) if self.time_kind_ == "datetime" else float(v))
                           for k, v in state["last_time"].items()}
        self.series_codes_ = {k: int(v) for k, v in state["series_codes"].items()}
        self.scale_ = float("nan") if state["scale"] is None else float(state["scale"])
        self.booster_ = lgb.Booster(model_file=str(path / "model.txt"))
        self._cache = {}
        return self


def _infer_freq(times: Any) -> str | None:
    """pandas' inferred frequency alias (``D``, ``MS``, ``h``, ...) of evenly spaced times, or None."""
    import pandas as pd

    try:
        with pd.option_context("future.infer_freq_returns_offset", True):
            off = pd.infer_freq(times)
        return None if off is None else str(getattr(off, "freqstr", off))
    except (KeyError, ValueError, pd.errors.OptionError):  # pandas without that option
        return pd.infer_freq(times)


__all__ = ["Forecast"]
