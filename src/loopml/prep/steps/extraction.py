"""Extraction steps: date parts, age, binning, expressions, text (TF-IDF and hashing)."""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from loopml.prep._base import (
    NAN,
    Record,
    Report,
    Step,
    StepError,
    check_new_names,
    check_present,
    is_missing,
    new_columns,
    num_array,
    num_value,
    to_timestamp,
)
from loopml.prep._expr import Expression, expr_env, expr_env_one, expr_kinds

# -- dates ------------------------------------------------------------------------------------------
Part = Literal["year", "quarter", "month", "day", "dow", "dayofyear", "hour", "minute", "weekend", "holiday"]

_HOLIDAYS: set[date] = set()


def _holidays() -> set[date]:
    """US federal holidays 1900-2100 (pandas' calendar), built once."""
    if not _HOLIDAYS:
        from pandas.tseries.holiday import USFederalHolidayCalendar

        days = USFederalHolidayCalendar().holidays("1900-01-01", "2100-12-31")
        _HOLIDAYS.update(d.date() for d in days)
    return _HOLIDAYS


@dataclass(eq=True)
class DateParts(Step):
    """Calendar features of date/time columns: ``{column}_{part}``.

    Parts: year, quarter, month, day, dow (0 = Monday), dayofyear, hour,
    minute, weekend (1 on Saturday and Sunday) and holiday (1 on US federal
    holidays). A record may carry the date as an ISO string.
    """

    kind: ClassVar[str] = "date_parts"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_",)

    columns: list[str]
    parts: list[Part] = field(default_factory=lambda: ["dow", "month", "hour", "weekend"])
    drop_original: bool = False

    def validate(self) -> None:
        if not self.parts:
            raise StepError("date_parts: 'parts' is empty")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, y, self.columns)
        self._require_datetime(df, self.columns_)
        check_new_names(df, [f"{c}_{p}" for c in self.columns_ for p in self.parts])

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        self._require_datetime(df, self.columns_)
        out: dict[str, np.ndarray] = {}
        for c in self.columns_:
            dt = df[c].dt
            for p in self.parts:
                if p == "weekend":
                    v = (dt.day_of_week >= 5).astype(float).where(df[c].notna())
                elif p == "holiday":
                    hol = _holidays()
                    v = pd.Series([NAN if is_missing(d) else float(d.date() in hol) for d in df[c].tolist()],
                                  dtype=float)
                else:
                    attr = {"dow": "day_of_week", "dayofyear": "day_of_year"}.get(p, p)
                    v = getattr(dt, attr)
                out[f"{c}_{p}"] = v.to_numpy(dtype=float, na_value=NAN)
        base = df.drop(columns=self.columns_) if self.drop_original else df
        return new_columns(base, out)

    def transform_one(self, rec: Record) -> None:
        for c in self.columns_:
            ts = to_timestamp(rec.pop(c) if self.drop_original else rec[c], c, self.kind)
            for p in self.parts:
                if ts is None:
                    rec[f"{c}_{p}"] = NAN
                elif p == "weekend":
                    rec[f"{c}_{p}"] = 1.0 if ts.day_of_week >= 5 else 0.0
                elif p == "holiday":
                    rec[f"{c}_{p}"] = 1.0 if ts.date() in _holidays() else 0.0
                else:
                    rec[f"{c}_{p}"] = float(getattr(ts, {"dow": "day_of_week", "dayofyear": "day_of_year"}.get(p, p)))


@dataclass(eq=True)
class Age(Step):
    """Whole years from ``birth`` to the event date ``at`` (a column, or a fixed ``at_date``).

    Writes ``name`` (default ``{birth}_age``) and, with ``groups`` (bin edges
    such as ``[0, 18, 30, 50, 120]``), ``{name}_group`` labelled ``"18-30"``
    (or by ``labels``); ages outside the edges get no group.
    """

    kind: ClassVar[str] = "age"
    state_attrs: ClassVar[tuple[str, ...]] = ("name_", "labels_")

    birth: str
    at: str | None = None
    at_date: str | None = None
    name: str | None = None
    groups: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if (self.at is None) == (self.at_date is None):
            raise StepError("age needs exactly one of 'at' (the event date column) or 'at_date'")
        if self.at_date is not None:
            try:
                pd.Timestamp(self.at_date)
            except (ValueError, TypeError):
                raise StepError(f"age: at_date {self.at_date!r} is not a date") from None
        if self.groups and sorted(self.groups) != self.groups:
            raise StepError("age: 'groups' must be increasing bin edges")
        if self.labels and len(self.labels) != len(self.groups) - 1:
            raise StepError(f"age: {len(self.groups) - 1} groups need as many labels, got {len(self.labels)}")

    def input_columns(self) -> list[str]:
        return [self.birth] + ([self.at] if self.at else [])

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        cols = self._columns(df, None, self.input_columns())
        self._require_datetime(df, cols)
        self.name_ = self.name or f"{self.birth}_age"
        g = self.groups
        self.labels_ = self.labels or [f"{_fmt(a)}-{_fmt(b)}" for a, b in itertools.pairwise(g)]
        check_new_names(df, [self.name_] + ([f"{self.name_}_group"] if g else []))

    def _ages(self, df: pd.DataFrame) -> np.ndarray:
        b = df[self.birth].dt
        if self.at:
            a = df[self.at].dt
            ay, am, ad = (a.year.to_numpy(float, na_value=NAN), a.month.to_numpy(float, na_value=NAN),
                          a.day.to_numpy(float, na_value=NAN))
        else:
            t = pd.Timestamp(self.at_date)
            ay, am, ad = float(t.year), float(t.month), float(t.day)
        by, bm, bd = (b.year.to_numpy(float, na_value=NAN), b.month.to_numpy(float, na_value=NAN),
                      b.day.to_numpy(float, na_value=NAN))
        before = (am < bm) | ((am == bm) & (ad < bd))
        return (ay - by) - before.astype(float)

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.input_columns())
        self._require_datetime(df, self.input_columns())
        age = self._ages(df)
        out: dict[str, Any] = {self.name_: age}
        if self.groups:
            out[f"{self.name_}_group"] = pd.array([self._group(v) for v in age.tolist()], dtype="str")
        return new_columns(df, out)

    def _group(self, age: float) -> str | None:
        if age != age or not self.groups[0] <= age < self.groups[-1]:
            return None
        return self.labels_[bisect.bisect_right(self.groups, age) - 1]

    def transform_one(self, rec: Record) -> None:
        b = to_timestamp(rec[self.birth], self.birth, self.kind)
        a = to_timestamp(rec[self.at], self.at, self.kind) if self.at else pd.Timestamp(self.at_date)
        if a is None or b is None:
            age = NAN
        else:
            before = (a.month < b.month) or (a.month == b.month and a.day < b.day)
            age = (float(a.year) - float(b.year)) - (1.0 if before else 0.0)
        rec[self.name_] = age
        if self.groups:
            rec[f"{self.name_}_group"] = self._group(age)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


# -- binning ------------------------------------------------------------------------------------------
@dataclass(eq=True)
class Bin(Step):
    """Replace numbers by their bin (0, 1, ...) or a label.

    The edges are ``edges`` (fixed) or learned: ``n_bins`` bins by
    ``strategy`` quantile / uniform / kmeans (scikit-learn's
    KBinsDiscretizer). Values below the first edge go to the first bin and
    above the last to the last bin; missing stays missing.
    """

    kind: ClassVar[str] = "bin"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "edges_")

    columns: list[str]
    n_bins: int = 5
    strategy: Literal["quantile", "uniform", "kmeans"] = "quantile"
    edges: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.edges and (len(self.edges) < 2 or sorted(self.edges) != self.edges):
            raise StepError("bin: 'edges' must be at least two increasing numbers")
        if self.n_bins < 2:
            raise StepError("bin: n_bins must be at least 2")
        if self.labels and self.edges and len(self.labels) != len(self.edges) - 1:
            raise StepError(f"bin: {len(self.edges) - 1} bins need as many labels, got {len(self.labels)}")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.preprocessing import KBinsDiscretizer

        self.columns_ = self._columns(df, y, self.columns)
        self._require_numeric(df, self.columns_)
        self.edges_ = {}
        for c in self.columns_:
            if self.edges:
                self.edges_[c] = list(self.edges)
                continue
            x = num_array(df[c])
            x = x[~np.isnan(x)]
            if len(x) == 0:
                raise StepError(f"column {c!r} has no values to learn bin edges from")
            kb = KBinsDiscretizer(n_bins=self.n_bins, encode="ordinal", strategy=self.strategy,
                                  subsample=None)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kb.fit(x.reshape(-1, 1))
            self.edges_[c] = [float(v) for v in kb.bin_edges_[0]]
            if self.labels and len(self.labels) != len(self.edges_[c]) - 1:
                raise StepError(
                    f"column {c!r} got {len(self.edges_[c]) - 1} bins (repeated values merge bins), "
                    f"but {len(self.labels)} labels were given"
                )

    def _prepare(self) -> None:
        self._row = [(c, self.edges_[c][1:-1]) for c in self.columns_]

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        self._require_numeric(df, self.columns_)
        out: dict[str, Any] = {}
        for c, inner in self._row:
            x = num_array(df[c])
            b = np.searchsorted(np.asarray(inner, dtype=float), x, side="right").astype(float)
            b[np.isnan(x)] = NAN
            if self.labels:
                out[c] = pd.array([None if v != v else self.labels[int(v)] for v in b.tolist()], dtype="str")
            else:
                out[c] = b
        return new_columns(df, out)

    def transform_one(self, rec: Record) -> None:
        for c, inner in self._row:
            v = num_value(rec[c], c, self.kind)
            if v != v:
                rec[c] = None if self.labels else NAN
            else:
                i = bisect.bisect_right(inner, v)
                rec[c] = self.labels[i] if self.labels else float(i)


# -- expressions ------------------------------------------------------------------------------------
@dataclass(eq=True)
class ExpressionStep(Step):
    """A new column ``name`` computed by a safe expression, e.g. ``amount / (visits + 1)``.

    See :mod:`loopml.prep._expr` for the language: arithmetic, comparisons,
    and/or/not, ``x if c else y``, ``in (...)``, and abs, log, log1p, exp,
    sqrt, floor, ceil, round, min, max, isnull, notnull, fillna, where, clip.
    Date/time columns enter as days since 1970, so ``end - start`` is days.
    """

    kind: ClassVar[str] = "expression"
    state_attrs: ClassVar[tuple[str, ...]] = ("kinds_", "text_output_")

    name: str
    expr: str

    def validate(self) -> None:
        self._expr = Expression(self.expr)

    def input_columns(self) -> list[str]:
        return list(self._expr.names)

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self._columns(df, None, self._expr.names)
        self.kinds_ = expr_kinds(df, self._expr.names)
        check_new_names(df, [self.name], replaced=[self.name] if self.name in self._expr.names else [])
        out = self._expr.evaluate(expr_env(df, self.kinds_))
        self.text_output_ = out.dtype.kind in "OUS"

    def _result(self, out: np.ndarray, n: int) -> Any:
        out = np.broadcast_to(out, (n,))
        if self.text_output_:
            return pd.array([None if is_missing(v) else str(v) for v in out.tolist()], dtype="str")
        return out.astype(np.float64)

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self._expr.names)
        return new_columns(df, {self.name: self._result(self._expr.evaluate(expr_env(df, self.kinds_)), len(df))})

    def transform_one(self, rec: Record) -> None:
        out = self._expr.evaluate(expr_env_one(rec, self.kinds_))
        v = np.broadcast_to(out, (1,))[0]
        if self.text_output_:
            rec[self.name] = None if is_missing(v) else str(v)
        else:
            rec[self.name] = float(v)


# -- text -----------------------------------------------------------------------------------------------
_SAFE = re.compile(r"[^0-9A-Za-z_]+")


def _texts(s: pd.Series) -> list[str]:
    return ["" if is_missing(v) else str(v) for v in s.tolist()]


@dataclass(eq=True)
class Tfidf(Step):
    """TF-IDF of a text column over its ``max_features`` most frequent terms: ``{column}_tfidf_{term}``.

    Built on scikit-learn's TfidfVectorizer; a single record is scored from
    the fitted vocabulary and idf weights without it, with the same result.
    """

    kind: ClassVar[str] = "tfidf"
    state_attrs: ClassVar[tuple[str, ...]] = ("vocabulary_", "idf_", "names_")

    column: str
    max_features: int = 20
    ngram_range: list[int] = field(default_factory=lambda: [1, 1])
    lowercase: bool = True
    min_df: float = 1.0
    stop_words: Literal["english"] | None = None
    sublinear_tf: bool = False
    norm: Literal["l2", "l1"] | None = "l2"

    def validate(self) -> None:
        if self.max_features < 1:
            raise StepError("tfidf: max_features must be at least 1")
        if len(self.ngram_range) != 2 or not 1 <= self.ngram_range[0] <= self.ngram_range[1]:
            raise StepError(f"tfidf: ngram_range must be [min_n, max_n], got {self.ngram_range}")

    def input_columns(self) -> list[str]:
        return [self.column]

    def _vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            max_features=self.max_features, ngram_range=tuple(self.ngram_range), lowercase=self.lowercase,
            min_df=int(self.min_df) if self.min_df >= 1 else self.min_df, stop_words=self.stop_words,
            sublinear_tf=self.sublinear_tf, norm=self.norm, dtype=np.float64,
        )

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self._columns(df, None, [self.column])
        self._require_text(df, [self.column])
        vec = self._vectorizer()
        try:
            vec.fit(_texts(df[self.column]))
        except ValueError as e:  # empty vocabulary
            raise StepError(f"column {self.column!r}: {e}") from None
        self.vocabulary_ = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        self.idf_ = [float(v) for v in vec.idf_]
        terms = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        self.names_ = [f"{self.column}_tfidf_{_SAFE.sub('_', t)}" for t in terms]
        if len(set(self.names_)) != len(self.names_):
            self.names_ = [f"{self.column}_tfidf_{i}" for i in range(len(terms))]
        check_new_names(df, self.names_)

    def _prepare(self) -> None:
        vec = self._vectorizer()
        self._analyzer = vec.build_analyzer()
        vec.vocabulary_ = dict(self.vocabulary_)
        vec.idf_ = np.asarray(self.idf_, dtype=np.float64)
        self._vec = vec
        self._zeros = dict.fromkeys(self.names_, 0.0)

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, [self.column])
        self._require_text(df, [self.column])
        texts = _texts(df[self.column])
        mat = np.asarray(self._vec.transform(texts).toarray()) if texts else np.zeros((0, len(self.names_)))
        return new_columns(df, {n: mat[:, j] for j, n in enumerate(self.names_)})

    def transform_one(self, rec: Record) -> None:
        v = rec[self.column]
        text = "" if is_missing(v) else str(v)
        counts: dict[int, int] = {}
        vocab = self.vocabulary_
        for tok in self._analyzer(text):
            j = vocab.get(tok)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        rec.update(self._zeros)
        if not counts:
            return
        idx = sorted(counts)
        tf = np.array([counts[j] for j in idx], dtype=np.float64)
        if self.sublinear_tf:
            np.log(tf, tf)
            tf += 1.0
        vals = (tf * np.asarray(self.idf_)[idx]).tolist()
        if self.norm == "l2":
            total = 0.0
            for x in vals:
                total += x * x
            if total != 0:
                total = math.sqrt(total)
                vals = [x / total for x in vals]
        elif self.norm == "l1":
            total = 0.0
            for x in vals:
                total += abs(x)
            if total != 0:
                vals = [x / total for x in vals]
        for j, x in zip(idx, vals, strict=True):
            rec[self.names_[j]] = x


@dataclass(eq=True)
class Hashing(Step):
    """Hashed term counts of a text column in ``n_features`` columns: ``{column}_hash_{i}``.

    scikit-learn's HashingVectorizer: nothing to learn, so unseen words still
    count.
    """

    kind: ClassVar[str] = "hashing"
    state_attrs: ClassVar[tuple[str, ...]] = ()

    column: str
    n_features: int = 16
    ngram_range: list[int] = field(default_factory=lambda: [1, 1])
    lowercase: bool = True
    alternate_sign: bool = False
    norm: Literal["l2", "l1"] | None = "l2"

    def validate(self) -> None:
        if not 1 <= self.n_features <= 4096:
            raise StepError("hashing: n_features must be between 1 and 4096")

    def input_columns(self) -> list[str]:
        return [self.column]

    def _names(self) -> list[str]:
        return [f"{self.column}_hash_{i}" for i in range(self.n_features)]

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self._columns(df, None, [self.column])
        self._require_text(df, [self.column])
        check_new_names(df, self._names())

    def _prepare(self) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self._vec = HashingVectorizer(
            n_features=self.n_features, ngram_range=tuple(self.ngram_range), lowercase=self.lowercase,
            alternate_sign=self.alternate_sign, norm=self.norm,
        )
        self._names_list = self._names()

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, [self.column])
        self._require_text(df, [self.column])
        texts = _texts(df[self.column])
        mat = np.asarray(self._vec.transform(texts).toarray()) if texts else np.zeros((0, self.n_features))
        return new_columns(df, {n: mat[:, j] for j, n in enumerate(self._names_list)})

    def transform_one(self, rec: Record) -> None:
        v = rec[self.column]
        row = self._vec.transform(["" if is_missing(v) else str(v)]).toarray()[0].tolist()
        rec.update(zip(self._names_list, row, strict=True))


__all__ = ["Age", "Bin", "DateParts", "ExpressionStep", "Hashing", "Tfidf"]
