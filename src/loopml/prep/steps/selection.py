"""Feature selection steps: the selected columns are part of the fitted recipe.

Each step considers ``columns`` (default: every numeric column except the
target), keeps the selected ones and drops the rest; other columns pass
through. Supervised methods (mutual information, model importance, RFE)
need the recipe's target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from loopml.prep._base import Record, Report, Step, StepError, column_kind, num_array


class _Select(Step):
    """Shared candidate resolution and the drop of unselected columns."""

    state_attrs: ClassVar[tuple[str, ...]] = ("selected_", "dropped_", "scores_")
    columns: list[str]
    allow_missing: ClassVar[bool] = False

    def _candidates(self, df: pd.DataFrame, y: pd.Series | None) -> tuple[list[str], np.ndarray]:
        target = str(y.name) if y is not None else None
        if self.columns:
            cols = self._columns(df, y, self.columns)
        else:
            cols = [str(c) for c in df.columns if c != target and column_kind(df[c]) in ("numeric", "bool")]
            if not cols:
                raise StepError("there are no numeric columns to select from; encode or convert columns first")
        self._require_numeric(df, cols)
        x = np.column_stack([num_array(df[c]) for c in cols])
        if not self.allow_missing and np.isnan(x).any():
            bad = cols[int(np.flatnonzero(np.isnan(x).any(axis=0))[0])]
            raise StepError(f"column {bad!r} has missing values, which {self.kind} cannot use; add an impute step first")
        return cols, x

    def _target(self, y: pd.Series | None) -> tuple[np.ndarray, bool]:
        """The target as an array, and whether it is a classification target."""
        from sklearn.utils.multiclass import type_of_target

        if y is None:
            raise StepError(f"{self.kind} needs the recipe's target; set 'target:' in the recipe or pass --target")
        if y.isna().any():
            raise StepError(f"the target {y.name!r} has missing values; drop those rows first")
        arr = y.to_numpy()
        return arr, type_of_target(arr) in ("binary", "multiclass")

    def _keep(self, cols: list[str], mask: np.ndarray, scores: np.ndarray | None) -> None:
        if not mask.any():
            raise StepError(f"{self.kind} would drop every column; loosen its threshold")
        self.selected_ = [c for c, m in zip(cols, mask, strict=True) if m]
        self.dropped_ = [c for c, m in zip(cols, mask, strict=True) if not m]
        self.scores_ = {c: float(s) for c, s in zip(cols, scores, strict=True)} if scores is not None else {}

    def input_columns(self) -> list[str]:
        return list(self.selected_)

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        drop = [c for c in self.dropped_ if c in df.columns]
        return df.drop(columns=drop) if drop else df

    def transform_one(self, rec: Record) -> None:
        for c in self.dropped_:
            rec.pop(c, None)


@dataclass(eq=True)
class SelectVariance(_Select):
    """Drop columns whose variance is at most ``threshold`` (scikit-learn's VarianceThreshold)."""

    kind: ClassVar[str] = "select_variance"
    allow_missing: ClassVar[bool] = True

    columns: list[str] = field(default_factory=list)
    threshold: float = 0.0

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.feature_selection import VarianceThreshold

        cols, x = self._candidates(df, y)
        vt = VarianceThreshold(self.threshold).fit(x)
        self._keep(cols, vt.get_support(), vt.variances_)


@dataclass(eq=True)
class SelectCorrelation(_Select):
    """Drop a column when its absolute correlation with an earlier kept column exceeds ``threshold``."""

    kind: ClassVar[str] = "select_correlation"
    allow_missing: ClassVar[bool] = True

    columns: list[str] = field(default_factory=list)
    threshold: float = 0.95
    method: Literal["pearson", "spearman"] = "pearson"

    def validate(self) -> None:
        if not 0 < self.threshold <= 1:
            raise StepError(f"select_correlation: threshold must be in (0, 1], got {self.threshold}")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        cols, x = self._candidates(df, y)
        # a constant column has no correlation (NaN): it is never a duplicate of another
        corr = np.nan_to_num(pd.DataFrame(x, columns=cols).corr(method=self.method).abs().to_numpy())
        keep = np.ones(len(cols), dtype=bool)
        worst = np.zeros(len(cols))
        for j in range(len(cols)):
            kept = np.flatnonzero(keep[:j])
            if len(kept):
                m = float(corr[kept, j].max())
                worst[j] = m
                if m > self.threshold:
                    keep[j] = False
        self._keep(cols, keep, worst)


@dataclass(eq=True)
class SelectMutualInfo(_Select):
    """Keep the ``k`` columns (or those scoring at least ``threshold``) with most mutual information with the target."""

    kind: ClassVar[str] = "select_mutual_info"
    needs_target: ClassVar[bool] = True

    columns: list[str] = field(default_factory=list)
    k: int | None = 10
    threshold: float | None = None
    random_state: int = 0

    def validate(self) -> None:
        if (self.k is None) == (self.threshold is None):
            raise StepError("select_mutual_info needs exactly one of 'k' or 'threshold'")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

        cols, x = self._candidates(df, y)
        target, classif = self._target(y)
        fn: Any = mutual_info_classif if classif else mutual_info_regression
        scores = fn(x, target, random_state=self.random_state)
        self._keep(cols, _top(scores, self.k, self.threshold), scores)


@dataclass(eq=True)
class SelectModel(_Select):
    """Keep the ``k`` columns (or those above ``threshold``) a random forest finds most important."""

    kind: ClassVar[str] = "select_model"
    needs_target: ClassVar[bool] = True

    columns: list[str] = field(default_factory=list)
    k: int | None = 10
    threshold: float | None = None
    n_estimators: int = 50
    random_state: int = 0

    def validate(self) -> None:
        if (self.k is None) == (self.threshold is None):
            raise StepError("select_model needs exactly one of 'k' or 'threshold'")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cols, x = self._candidates(df, y)
        target, classif = self._target(y)
        cls: Any = RandomForestClassifier if classif else RandomForestRegressor
        model = cls(n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=1).fit(x, target)
        scores = model.feature_importances_
        self._keep(cols, _top(scores, self.k, self.threshold), scores)


@dataclass(eq=True)
class SelectRFE(_Select):
    """Recursive feature elimination down to ``k`` columns with a linear model (scikit-learn's RFE)."""

    kind: ClassVar[str] = "select_rfe"
    needs_target: ClassVar[bool] = True

    columns: list[str] = field(default_factory=list)
    k: int = 10
    step: int = 1

    def validate(self) -> None:
        if self.k < 1 or self.step < 1:
            raise StepError("select_rfe: k and step must be at least 1")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.feature_selection import RFE
        from sklearn.linear_model import LinearRegression, LogisticRegression

        cols, x = self._candidates(df, y)
        target, classif = self._target(y)
        est: Any = LogisticRegression(max_iter=500) if classif else LinearRegression()
        rfe = RFE(est, n_features_to_select=min(self.k, len(cols)), step=self.step).fit(x, target)
        self._keep(cols, rfe.support_, -rfe.ranking_.astype(float))


def _top(scores: np.ndarray, k: int | None, threshold: float | None) -> np.ndarray:
    if k is not None:
        order = np.argsort(-scores, kind="stable")[: max(k, 1)]
        mask = np.zeros(len(scores), dtype=bool)
        mask[order] = True
        return mask
    return np.asarray(scores >= (threshold or 0.0))


__all__ = ["SelectCorrelation", "SelectModel", "SelectMutualInfo", "SelectRFE", "SelectVariance"]
