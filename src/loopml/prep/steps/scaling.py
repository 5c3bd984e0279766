"""Transformation steps: standardize, min-max, robust scaling, log, Box-Cox, Yeo-Johnson.

scikit-learn learns the parameters (StandardScaler, MinMaxScaler,
RobustScaler, PowerTransformer); the steps apply them with the same numpy
formula to a column and to one record, so both agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from loopml.prep._base import (
    NAN,
    Record,
    Report,
    Step,
    StepError,
    check_present,
    new_columns,
    num_array,
    num_value,
)


class _Numeric(Step):
    """Shared plumbing of per-column numeric transforms."""

    columns: list[str]
    columns_: list[str]

    def _matrix(self, df: pd.DataFrame, y: pd.Series | None) -> np.ndarray:
        self.columns_ = self._columns(df, y, self.columns)
        self._require_numeric(df, self.columns_)
        x = np.column_stack([num_array(df[c]) for c in self.columns_]) if self.columns_ else np.zeros((len(df), 0))
        empty = [c for c, col in zip(self.columns_, x.T, strict=True) if np.isnan(col).all()]
        if empty:
            raise StepError(f"column {empty[0]!r} has no values to fit {self.kind} on")
        return x

    def _apply(self, i: int, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _apply_one(self, i: int, v: float) -> float:
        raise NotImplementedError

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        self._require_numeric(df, self.columns_)
        with np.errstate(all="ignore"):
            return new_columns(df, {c: self._apply(i, num_array(df[c])) for i, c in enumerate(self.columns_)})

    def transform_one(self, rec: Record) -> None:
        for i, c in enumerate(self.columns_):
            rec[c] = self._apply_one(i, num_value(rec[c], c, self.kind))


class _Affine(_Numeric):
    """``(x - center_) / scale_`` per column."""

    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "center_", "scale_")
    center_: list[float]
    scale_: list[float]

    def _prepare(self) -> None:
        self._row = list(zip(self.columns_, self.center_, self.scale_, strict=True))

    def _apply(self, i: int, x: np.ndarray) -> np.ndarray:
        return (x - self.center_[i]) / self.scale_[i]

    def transform_one(self, rec: Record) -> None:
        for c, m, s in self._row:
            v = rec[c]
            if type(v) is not float:
                v = num_value(v, c, self.kind)
            rec[c] = (v - m) / s


@dataclass(eq=True)
class Standardize(_Affine):
    """Centre on the mean and divide by the standard deviation (scikit-learn's StandardScaler)."""

    kind: ClassVar[str] = "standardize"

    columns: list[str]
    with_mean: bool = True
    with_std: bool = True

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.preprocessing import StandardScaler

        sc = StandardScaler(with_mean=self.with_mean, with_std=self.with_std).fit(self._matrix(df, y))
        k = len(self.columns_)
        self.center_ = [float(v) for v in sc.mean_] if self.with_mean else [0.0] * k
        self.scale_ = [float(v) for v in sc.scale_] if self.with_std else [1.0] * k


@dataclass(eq=True)
class Robust(_Affine):
    """Centre on the median and divide by the inter-quartile range (RobustScaler)."""

    kind: ClassVar[str] = "robust"

    columns: list[str]
    with_centering: bool = True
    with_scaling: bool = True
    quantile_range: list[float] = field(default_factory=lambda: [25.0, 75.0])

    def validate(self) -> None:
        q = self.quantile_range
        if len(q) != 2 or not 0 <= q[0] < q[1] <= 100:
            raise StepError(f"robust: quantile_range must be two percentiles 0 <= low < high <= 100, got {q}")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.preprocessing import RobustScaler

        sc = RobustScaler(
            with_centering=self.with_centering, with_scaling=self.with_scaling,
            quantile_range=(self.quantile_range[0], self.quantile_range[1]),
        ).fit(self._matrix(df, y))
        k = len(self.columns_)
        self.center_ = [float(v) for v in sc.center_] if self.with_centering else [0.0] * k
        self.scale_ = [float(v) for v in sc.scale_] if self.with_scaling else [1.0] * k


@dataclass(eq=True)
class MinMax(_Numeric):
    """Scale each column to ``feature_range`` (default [0, 1]) from its fitted min and max (MinMaxScaler)."""

    kind: ClassVar[str] = "minmax"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "scale_", "min_")

    columns: list[str]
    feature_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    clip: bool = False

    def validate(self) -> None:
        r = self.feature_range
        if len(r) != 2 or not r[0] < r[1]:
            raise StepError(f"minmax: feature_range must be [low, high] with low < high, got {r}")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.preprocessing import MinMaxScaler

        sc = MinMaxScaler(feature_range=(self.feature_range[0], self.feature_range[1])).fit(self._matrix(df, y))
        self.scale_ = [float(v) for v in sc.scale_]
        self.min_ = [float(v) for v in sc.min_]

    def _prepare(self) -> None:
        lo, hi = self.feature_range
        self._row = [(c, s, m, lo, hi) for c, s, m in zip(self.columns_, self.scale_, self.min_, strict=True)]

    def _apply(self, i: int, x: np.ndarray) -> np.ndarray:
        out = x * self.scale_[i] + self.min_[i]
        if self.clip:
            lo, hi = self.feature_range
            out = np.where(out < lo, lo, np.where(out > hi, hi, out))
        return out

    def transform_one(self, rec: Record) -> None:
        for c, s, m, lo, hi in self._row:
            v = rec[c]
            if type(v) is not float:
                v = num_value(v, c, self.kind)
            out = v * s + m
            if self.clip:
                out = lo if out < lo else hi if out > hi else out
            rec[c] = out


@dataclass(eq=True)
class Log(_Numeric):
    """``log(x + offset)``; fitting checks every value is above ``-offset``.

    At transform time ``x + offset == 0`` gives -inf and below 0 gives NaN.
    """

    kind: ClassVar[str] = "log"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_",)

    columns: list[str]
    offset: float = 1.0

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        x = self._matrix(df, y)
        for c, col in zip(self.columns_, x.T, strict=True):
            lo = np.nanmin(col)
            if lo + self.offset <= 0:
                raise StepError(
                    f"column {c!r} has values down to {lo:g}, and log needs x + offset > 0 "
                    f"(offset is {self.offset:g}); raise 'offset' or use yeo_johnson"
                )

    def _apply(self, i: int, x: np.ndarray) -> np.ndarray:
        return np.log(x + self.offset)

    def _apply_one(self, i: int, v: float) -> float:
        u = v + self.offset
        if u > 0:  # a one-value array takes the same numpy loop as a column
            return float(np.log(np.array([u]))[0])
        return -np.inf if u == 0 else NAN


def yeo_johnson(x: np.ndarray, lam: float) -> np.ndarray:
    """The Yeo-Johnson transform with parameter ``lam`` (NaN stays NaN)."""
    out = np.full(x.shape, NAN)
    pos, neg = x >= 0, x < 0
    eps = np.spacing(1.0)
    if abs(lam) < eps:
        out[pos] = np.log1p(x[pos])
    else:
        out[pos] = (np.power(x[pos] + 1, lam) - 1) / lam
    if abs(lam - 2) > eps:
        out[neg] = -(np.power(-x[neg] + 1, 2 - lam) - 1) / (2 - lam)
    else:
        out[neg] = -np.log1p(-x[neg])
    return out


def box_cox(x: np.ndarray, lam: float) -> np.ndarray:
    """The Box-Cox transform with parameter ``lam``; values <= 0 give NaN."""
    out = np.full(x.shape, NAN)
    pos = x > 0
    if abs(lam) < np.spacing(1.0):
        out[pos] = np.log(x[pos])
    else:
        out[pos] = (np.power(x[pos], lam) - 1) / lam
    return out


class _Power(_Numeric):
    """Power transforms: scikit-learn's PowerTransformer picks lambda; optional standardizing after."""

    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "lambdas_", "mean_", "std_")
    method: ClassVar[str] = ""
    standardize: bool

    def _kernel(self, x: np.ndarray, lam: float) -> np.ndarray:
        return yeo_johnson(x, lam) if self.method == "yeo-johnson" else box_cox(x, lam)

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.preprocessing import PowerTransformer

        x = self._matrix(df, y)
        if self.method == "box-cox":
            for c, col in zip(self.columns_, x.T, strict=True):
                if np.nanmin(col) <= 0:
                    raise StepError(
                        f"column {c!r} has values <= 0 (min {np.nanmin(col):g}), and box_cox needs "
                        "strictly positive data; use yeo_johnson, or log with an offset"
                    )
        pt = PowerTransformer(method=self.method, standardize=False).fit(x)
        self.lambdas_ = [float(v) for v in pt.lambdas_]
        self.mean_, self.std_ = [], []
        for i, col in enumerate(x.T):
            z = self._kernel(col, self.lambdas_[i])
            mean, std = (float(np.nanmean(z)), float(np.nanstd(z))) if self.standardize else (0.0, 1.0)
            self.mean_.append(mean)
            self.std_.append(std if std > 0 else 1.0)

    def _apply(self, i: int, x: np.ndarray) -> np.ndarray:
        z = self._kernel(x, self.lambdas_[i])
        return (z - self.mean_[i]) / self.std_[i] if self.standardize else z

    def _apply_one(self, i: int, v: float) -> float:
        return float(self._apply(i, np.array([v]))[0])


@dataclass(eq=True)
class YeoJohnson(_Power):
    """Yeo-Johnson power transform (any sign), lambda fitted per column by maximum likelihood."""

    kind: ClassVar[str] = "yeo_johnson"
    method: ClassVar[str] = "yeo-johnson"

    columns: list[str]
    standardize: bool = False


@dataclass(eq=True)
class BoxCox(_Power):
    """Box-Cox power transform (strictly positive data), lambda fitted per column."""

    kind: ClassVar[str] = "box_cox"
    method: ClassVar[str] = "box-cox"

    columns: list[str]
    standardize: bool = False


__all__ = ["BoxCox", "Log", "MinMax", "Robust", "Standardize", "YeoJohnson", "box_cox", "yeo_johnson"]
