"""Encoding steps: one-hot, ordinal, frequency and (out-of-fold) target encoding.

Values are read as categories: text as is, other values through ``str()``,
and a missing value as the category ``__missing__``, the same way for a
column and for one record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from loopml.prep._base import (
    MISSING,
    NAN,
    Record,
    Report,
    Step,
    StepError,
    add_report,
    cat_array,
    cat_value,
    check_new_names,
    check_present,
    new_columns,
)


def _cats(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return np.column_stack([cat_array(df[c]) for c in columns]) if columns else np.zeros((len(df), 0), object)


class _Mapping(Step):
    """Replace each value by a number looked up in a fitted per-column table."""

    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "tables_", "default_")
    columns_: list[str]
    tables_: dict[str, dict[str, float]]
    default_: dict[str, float]

    def _prepare(self) -> None:
        self._row = [(c, self.tables_[c], self.default_[c]) for c in self.columns_]
        self._index = {c: (pd.Index(list(t.keys()), dtype=object), np.array(list(t.values()), dtype=float))
                       for c, t in self.tables_.items()}

    def _lookup(self, c: str, values: np.ndarray) -> np.ndarray:
        keys, codes = self._index[c]
        pos = keys.get_indexer(values)
        return np.where(pos >= 0, codes[np.maximum(pos, 0)] if len(codes) else NAN, self.default_[c])

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        return new_columns(df, {c: self._lookup(c, cat_array(df[c])) for c in self.columns_})

    def transform_one(self, rec: Record) -> None:
        for c, table, default in self._row:
            rec[c] = table.get(cat_value(rec[c]), default)


@dataclass(eq=True)
class Frequency(_Mapping):
    """Replace each category by its share of the fitting rows (or its count); unseen ones get 0."""

    kind: ClassVar[str] = "frequency"

    columns: list[str]
    normalize: bool = True

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, y, self.columns)
        n = max(len(df), 1)
        self.tables_ = {}
        for c in self.columns_:
            counts = pd.Series(cat_array(df[c])).value_counts(sort=False)
            self.tables_[c] = {str(k): (float(v) / n if self.normalize else float(v)) for k, v in counts.items()}
        self.default_ = {c: 0.0 for c in self.columns_}


@dataclass(eq=True)
class Ordinal(_Mapping):
    """Replace each category by its position (0, 1, ...); unseen ones get ``unknown_value``.

    The order is alphabetical (scikit-learn's OrdinalEncoder) unless
    ``categories`` gives it per column, e.g. ``{size: [S, M, L]}``. Missing
    values stay missing (NaN).
    """

    kind: ClassVar[str] = "ordinal"

    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    unknown_value: float = -1.0

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, y, self.columns)
        extra = [c for c in self.categories if c not in self.columns_]
        if extra:
            raise StepError(f"'categories' names column {extra[0]!r}, which is not in 'columns'")
        self.tables_ = {}
        for c in self.columns_:
            if c not in self.categories:  # sorted, as scikit-learn's OrdinalEncoder orders them
                cats = sorted(v for v in pd.unique(cat_array(df[c])) if v != MISSING)
                self.tables_[c] = {v: float(i) for i, v in enumerate(cats)}
        for c, order in self.categories.items():
            self.tables_[c] = {str(v): float(i) for i, v in enumerate(order)}
        for c in self.columns_:
            self.tables_[c][MISSING] = NAN
        self.default_ = {c: self.unknown_value for c in self.columns_}


@dataclass(eq=True)
class TargetEncode(_Mapping):
    """Replace each category by the target's mean for it, shrunk towards the overall mean.

    Built on scikit-learn's TargetEncoder. When the recipe is fitted, the
    fitting rows get *out-of-fold* encodings (each row's value comes from the
    other folds), so a model trained on them does not see its own target;
    later data gets the encodings learned from all the fitting rows. Unseen
    categories get the target mean. Binary and continuous targets.
    """

    kind: ClassVar[str] = "target_encode"
    needs_target: ClassVar[bool] = True

    columns: list[str]
    smooth: float | Literal["auto"] = "auto"
    cv: int = 5
    shuffle: bool = True
    random_state: int = 0

    def validate(self) -> None:
        if self.cv < 2:
            raise StepError("target_encode: cv must be at least 2")

    def _encoder(self, df: pd.DataFrame, y: pd.Series | None) -> tuple[Any, np.ndarray, pd.Series]:
        from sklearn.preprocessing import TargetEncoder
        from sklearn.utils.multiclass import type_of_target

        if y is None:
            raise StepError("target_encode needs the recipe's target; set 'target:' in the recipe or pass --target")
        self.columns_ = self._columns(df, y, self.columns)
        if y.isna().any():
            raise StepError(f"the target {y.name!r} has {int(y.isna().sum())} missing value(s); drop those rows first")
        kind = type_of_target(y.to_numpy())
        if kind not in ("binary", "continuous"):
            raise StepError(
                f"target_encode supports a binary or continuous target; {y.name!r} is {kind} "
                f"({y.nunique()} distinct values)"
            )
        from sklearn.model_selection import KFold, StratifiedKFold

        rs = self.random_state if self.shuffle else None
        folds = (StratifiedKFold if kind == "binary" else KFold)(self.cv, shuffle=self.shuffle, random_state=rs)
        enc = TargetEncoder(smooth=self.smooth, cv=folds, target_type=kind)
        return enc, _cats(df, self.columns_), y

    def _learn(self, enc: Any) -> None:
        mean = float(np.asarray(enc.target_mean_).ravel()[0])
        self.tables_ = {c: {str(k): float(v) for k, v in zip(cats, codes, strict=True)}
                        for c, cats, codes in zip(self.columns_, enc.categories_, enc.encodings_, strict=True)}
        self.default_ = {c: mean for c in self.columns_}

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        enc, x, target = self._encoder(df, y)
        self._learn(enc.fit(x, target.to_numpy()))

    def fit_transform(
        self, df: pd.DataFrame, y: pd.Series | None = None, report: Report | None = None
    ) -> pd.DataFrame:
        enc, x, target = self._encoder(df, y)
        oof = enc.fit_transform(x, target.to_numpy())
        self._learn(enc)
        self._prepare()
        return new_columns(df, {c: oof[:, i] for i, c in enumerate(self.columns_)})


@dataclass(eq=True)
class OneHot(Step):
    """One 0/1 column per category: ``{column}_{category}`` (scikit-learn's OneHotEncoder).

    ``max_categories`` / ``min_frequency`` group rare categories into
    ``{column}_infrequent``. Unseen categories give all zeros
    (``handle_unknown: ignore``), count as infrequent (``infrequent``), or
    are an error (``error``). The original column is dropped unless
    ``keep_original``.
    """

    kind: ClassVar[str] = "one_hot"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "categories_", "infrequent_", "names_")

    columns: list[str]
    max_categories: int | None = None
    min_frequency: float | None = None
    handle_unknown: Literal["ignore", "infrequent", "error"] = "ignore"
    keep_original: bool = False

    def validate(self) -> None:
        if self.max_categories is not None and self.max_categories < 2:
            raise StepError("one_hot: max_categories must be at least 2")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.preprocessing import OneHotEncoder

        self.columns_ = self._columns(df, y, self.columns)
        min_freq: float | int | None = self.min_frequency
        if min_freq is not None and min_freq >= 1:
            min_freq = int(min_freq)
        grouped = self.max_categories is not None or min_freq is not None
        enc = OneHotEncoder(
            handle_unknown="infrequent_if_exist" if grouped else "ignore",
            max_categories=self.max_categories, min_frequency=min_freq, sparse_output=False,
        ).fit(_cats(df, self.columns_))
        infrequent = getattr(enc, "infrequent_categories_", [None] * len(self.columns_))
        self.categories_, self.infrequent_, self.names_ = {}, {}, {}
        for c, cats, inf in zip(self.columns_, enc.categories_, infrequent, strict=True):
            rare = [str(v) for v in inf] if inf is not None else []
            kept = [str(v) for v in cats if str(v) not in set(rare)]
            self.categories_[c], self.infrequent_[c] = kept, rare
            self.names_[c] = [f"{c}_{v}" for v in kept] + ([f"{c}_infrequent"] if rare else [])
        check_new_names(df, [n for names in self.names_.values() for n in names],
                        replaced=[] if self.keep_original else self.columns_)

    def _prepare(self) -> None:
        self._tables: dict[str, dict[str, int]] = {}
        self._row = []
        for c in self.columns_:
            table = {v: i for i, v in enumerate(self.categories_[c])}
            k = len(self.categories_[c])
            table.update({v: k for v in self.infrequent_[c]})
            self._tables[c] = table
            names = self.names_[c]
            unknown = k if (self.handle_unknown == "infrequent" and self.infrequent_[c]) else -1
            self._row.append((c, table, names, dict.fromkeys(names, 0.0), unknown))

    def input_columns(self) -> list[str]:
        return list(self.columns_)

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        out: dict[str, np.ndarray] = {}
        unseen = 0
        for c, table, names, _, unknown in self._row:
            vals = cat_array(df[c])
            keys = pd.Index(list(table.keys()), dtype=object)
            codes = np.array(list(table.values()), dtype=np.int64)
            pos = keys.get_indexer(vals)
            code = np.where(pos >= 0, codes[np.maximum(pos, 0)] if len(codes) else -1, unknown)
            miss = pos < 0
            if miss.any():
                unseen += int(miss.sum())
                if self.handle_unknown == "error":
                    raise StepError(
                        f"column {c!r} has the category {vals[miss][0]!r}, not seen when fitting "
                        "(set handle_unknown: ignore or infrequent to accept new categories)"
                    )
            mat = np.zeros((len(df), len(names)))
            rows = np.flatnonzero(code >= 0)
            mat[rows, code[rows]] = 1.0
            for j, name in enumerate(names):
                out[name] = mat[:, j]
        add_report(report, unseen_categories=unseen)
        base = df if self.keep_original else df.drop(columns=self.columns_)
        return new_columns(base, out)

    def transform_one(self, rec: Record) -> None:
        for c, table, names, zeros, unknown in self._row:
            v = cat_value(rec[c] if self.keep_original else rec.pop(c))
            rec.update(zeros)
            j = table.get(v, unknown)
            if j >= 0:
                rec[names[j]] = 1.0
            elif self.handle_unknown == "error" and v not in table:
                raise StepError(f"column {c!r} has the category {v!r}, not seen when fitting")


__all__ = ["Frequency", "OneHot", "Ordinal", "TargetEncode"]
