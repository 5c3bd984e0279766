"""Cleaning steps: duplicates, row filters, imputation, outliers, type conversions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from loopml.prep._base import (
    NAN,
    Record,
    Report,
    RowDropped,
    Step,
    StepError,
    add_report,
    cat_value,
    check_new_names,
    check_present,
    column_kind,
    describe_kind,
    is_missing,
    new_columns,
    num_array,
    num_value,
    time_array,
    time_value,
)
from loopml.prep._expr import Expression, expr_env, expr_env_one, expr_kinds
from loopml.prep.steps.history import segments


# -- rows ---------------------------------------------------------------------------------------
@dataclass(eq=True)
class DropDuplicates(Step):
    """Drop repeated rows (over ``columns``, default all), keeping the first or last.

    Needs the whole data set, so a recipe with it does not stream; a single
    record passes through unchanged.
    """

    kind: ClassVar[str] = "drop_duplicates"
    row_wise: ClassVar[bool] = False
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_",)

    columns: list[str] = field(default_factory=list)
    keep: Literal["first", "last"] = "first"

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, None, self.columns) if self.columns else []

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        dup = df.duplicated(subset=self.columns_ or None, keep=self.keep).to_numpy()
        add_report(report, rows_dropped=int(dup.sum()))
        return df[~dup] if dup.any() else df

    def transform_one(self, rec: Record) -> None:
        return None


class _ExprStep(Step):
    """Shared fitting of a boolean/numeric expression over columns."""

    state_attrs: ClassVar[tuple[str, ...]] = ("kinds_",)

    def _expression(self) -> str:
        raise NotImplementedError

    def validate(self) -> None:
        self._expr = Expression(self._expression())

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self._columns(df, None, self._expr.names)
        self.kinds_ = expr_kinds(df, self._expr.names)

    def input_columns(self) -> list[str]:
        return list(self._expr.names)

    def _mask(self, df: pd.DataFrame) -> np.ndarray:
        check_present(df, self._expr.names)
        out = self._expr.evaluate(expr_env(df, self.kinds_))
        return _as_mask(out, len(df), self._expression())

    def _mask_one(self, rec: Record) -> bool:
        out = self._expr.evaluate(expr_env_one(rec, self.kinds_))
        return bool(_as_mask(out, 1, self._expression())[0])


def _as_mask(out: np.ndarray, n: int, text: str) -> np.ndarray:
    if out.dtype.kind == "f":
        out = (out != 0) & ~np.isnan(out)
    elif out.dtype.kind != "b":
        raise StepError(f"the condition {text!r} must give true/false, not {out.dtype}")
    return np.broadcast_to(out, (n,))


@dataclass(eq=True)
class DropRows(_ExprStep):
    """Drop the rows where ``where`` is true, e.g. ``"age < 0 or age > 120"``.

    On the serving path a matching record raises :class:`~loopml.prep.RowDropped`.
    """

    kind: ClassVar[str] = "drop_rows"

    where: str

    def _expression(self) -> str:
        return self.where

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        mask = self._mask(df)
        add_report(report, rows_dropped=int(mask.sum()))
        return df[~mask] if mask.any() else df

    def transform_one(self, rec: Record) -> None:
        if self._mask_one(rec):
            raise RowDropped(f"the record matches {self.where!r} and is dropped")


@dataclass(eq=True)
class FlagRows(_ExprStep):
    """Add a 0/1 column ``name`` that is 1 where ``where`` is true."""

    kind: ClassVar[str] = "flag_rows"

    where: str
    name: str = "flag"

    def _expression(self) -> str:
        return self.where

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        mask = self._mask(df)
        add_report(report, rows_flagged=int(mask.sum()))
        return new_columns(df, {self.name: mask.astype(np.float64)})

    def transform_one(self, rec: Record) -> None:
        rec[self.name] = 1.0 if self._mask_one(rec) else 0.0


@dataclass(eq=True)
class DropColumns(Step):
    """Remove columns (absent ones are ignored when transforming)."""

    kind: ClassVar[str] = "drop_columns"
    state_attrs: ClassVar[tuple[str, ...]] = ("dropped_",)

    columns: list[str]

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.dropped_ = self._columns(df, None, self.columns)

    def input_columns(self) -> list[str]:
        return []

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        return df.drop(columns=[c for c in self.dropped_ if c in df.columns])

    def transform_one(self, rec: Record) -> None:
        for c in self.dropped_:
            rec.pop(c, None)


# -- imputation -----------------------------------------------------------------------------------
Strategy = Literal["mean", "median", "most_frequent", "constant", "ffill", "bfill", "interpolate"]


@dataclass(eq=True)
class Impute(Step):
    """Fill missing values.

    ``mean``, ``median``, ``most_frequent`` and ``constant`` learn one value
    per column (scikit-learn's SimpleImputer). ``ffill`` / ``bfill`` /
    ``interpolate`` order rows by ``time`` (within ``entity`` if given):
    ffill carries the entity's last value forward, also from the fitted data
    into later rows (see :mod:`loopml.prep.steps.history`); bfill and
    interpolate look at *later* rows, which a single record at serving time
    does not have, so prefer ffill for features served online. Numeric
    columns come out as floats. ``indicator: true`` adds ``{column}_missing``
    (1 where the value was missing).
    """

    kind: ClassVar[str] = "impute"
    state_attrs: ClassVar[tuple[str, ...]] = (
        "columns_", "fill_", "numeric_", "time_is_datetime_", "cutoff_", "history_",
    )

    columns: list[str]
    strategy: Strategy = "mean"
    fill_value: float | str | None = None
    time: str | None = None
    entity: str | None = None
    indicator: bool = False
    keep_history: bool = True

    def validate(self) -> None:
        ordered = self.strategy in ("ffill", "bfill", "interpolate")
        if ordered and not self.time:
            raise StepError(f"impute: strategy {self.strategy!r} needs 'time', the column that orders rows")
        if not ordered and (self.time or self.entity):
            raise StepError(f"impute: 'time' and 'entity' only apply to ffill, bfill and interpolate, not {self.strategy!r}")
        if self.strategy == "constant" and self.fill_value is None:
            raise StepError("impute: strategy 'constant' needs 'fill_value'")

    def is_row_wise(self) -> bool:
        return self.strategy not in ("ffill", "bfill", "interpolate")

    def input_columns(self) -> list[str]:
        return [*self.columns_, *(c for c in (self.entity, self.time) if c)]

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from sklearn.impute import SimpleImputer

        self.columns_ = self._columns(df, y, self.columns)
        self._columns(df, None, [c for c in (self.entity, self.time) if c])
        self.numeric_ = [c for c in self.columns_ if column_kind(df[c]) in ("numeric", "bool")]
        if self.strategy in ("mean", "median", "interpolate"):
            self._require_numeric(df, self.columns_)
        if self.indicator:
            check_new_names(df, [f"{c}_missing" for c in self.columns_])
        self.fill_: dict[str, Any] = {}
        self.time_is_datetime_: bool | None = None
        self.cutoff_: float | None = None
        self.history_: dict[str, Any] | None = None
        if self.strategy == "constant":
            for c in self.columns_:
                value = self.fill_value
                if c in self.numeric_:
                    if not isinstance(value, (int, float)):
                        raise StepError(f"column {c!r} holds numbers, but fill_value {value!r} is text")
                    self.fill_[c] = float(value)
                else:
                    self.fill_[c] = str(value)
        elif self.strategy in ("mean", "median", "most_frequent"):
            for c in self.columns_:
                numeric = c in self.numeric_
                values = (num_array(df[c]) if numeric else df[c].to_numpy(dtype=object, na_value=np.nan))
                if pd.isna(values).all():
                    raise StepError(f"column {c!r} has no values to compute the {self.strategy} from")
                imp = SimpleImputer(strategy=self.strategy, missing_values=np.nan)
                stat = imp.fit(values.reshape(-1, 1)).statistics_[0]
                self.fill_[c] = float(stat) if numeric else str(stat)
        else:
            t = _times(df, self)
            self.time_is_datetime_ = t
            if self.strategy in ("ffill", "interpolate") and self.keep_history and len(df):
                self._fit_history(df)

    def _fit_history(self, df: pd.DataFrame) -> None:
        (seg,) = segments(df, self.entity, self.time or "", None, self.kind)
        self.cutoff_ = seg.t.max().item()
        keys = pd.unique(seg.keys)
        last: dict[str, list[Any]] = {}
        last_t: dict[str, list[Any]] = {}
        for c in self.columns_:
            vals = pd.Series(df[c].to_numpy()[seg.pos] if c not in self.numeric_ else num_array(df[c])[seg.pos])
            ok = vals.notna().to_numpy()
            g = pd.DataFrame({"v": vals.where(ok), "t": pd.Series(seg.t).where(ok)}).groupby(seg.codes, sort=True)
            lv = g["v"].last()
            lt = g["t"].last()
            last[c] = [None if is_missing(v) else (float(v) if c in self.numeric_ else v) for v in lv.tolist()]
            last_t[c] = [None if is_missing(v) else v for v in lt.tolist()]
        self.history_ = {"keys": [str(k) for k in keys], "last": last, "time": last_t}

    def _prepare(self) -> None:
        hist = self.history_
        self._index = {k: i for i, k in enumerate(hist["keys"])} if hist else {}
        self._keys = pd.Index(hist["keys"] if hist else [], dtype=object)
        self._row = [(c, self.fill_.get(c), c in self.numeric_) for c in self.columns_]

    # -- batch --------------------------------------------------------------------------------
    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.input_columns())
        for c in self.numeric_:
            if column_kind(df[c]) not in ("numeric", "bool"):
                raise StepError(f"column {c!r} was fitted as numbers; the data now has {describe_kind(df[c])}")
        out: dict[str, Any] = {}
        values = {c: (num_array(df[c]) if c in self.numeric_ else df[c].to_numpy(dtype=object, na_value=None))
                  for c in self.columns_}
        missing = {c: pd.isna(v) for c, v in values.items()}
        add_report(report, values_filled=int(sum(m.sum() for m in missing.values())))
        if self.strategy in ("ffill", "bfill", "interpolate"):
            filled = self._ordered(df, values)
        else:
            filled = {c: np.where(missing[c], self.fill_[c], values[c]) for c in self.columns_}
        for c in self.columns_:
            v = filled[c]
            out[c] = v.astype(np.float64) if c in self.numeric_ else pd.array(v, dtype=df[c].dtype)
        if self.indicator:
            for c in self.columns_:
                out[f"{c}_missing"] = missing[c].astype(np.float64)
        return new_columns(df, out)

    def _ordered(self, df: pd.DataFrame, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cutoff = self.cutoff_ if self.keep_history else None
        segs = segments(df, self.entity, self.time or "", cutoff, self.kind, self.time_is_datetime_)
        out = {c: v.copy() for c, v in values.items()}
        for seg in segs:
            snap = self._keys.get_indexer(seg.keys) if (seg.post and self.history_) else None
            for c in self.columns_:
                x = pd.Series(values[c][seg.pos])
                grouped = x.groupby(seg.codes, sort=False)
                if self.strategy == "bfill":
                    res = grouped.bfill().to_numpy()
                elif self.strategy == "ffill":
                    res = grouped.ffill().to_numpy()
                    if snap is not None and self.history_:
                        hist = np.empty(len(self.history_["last"][c]) + 1, dtype=object)
                        hist[:-1] = self.history_["last"][c]
                        fallback = hist[np.where(snap >= 0, snap, len(hist) - 1)]
                        res = np.where(pd.isna(res), fallback, res)
                else:
                    res = self._interpolate(seg, x, grouped, c, snap)
                if c in self.numeric_:
                    res = np.asarray(pd.array(res, dtype="Float64").to_numpy(dtype=float, na_value=NAN))
                out[c][seg.pos] = res
        return out

    def _interpolate(self, seg: Any, x: pd.Series, grouped: Any, c: str, snap: np.ndarray | None) -> np.ndarray:
        t = pd.Series(seg.t.astype(float))
        ok = x.notna()
        tv = t.where(ok)
        g_t = tv.groupby(seg.codes, sort=False)
        v0, t0 = grouped.ffill().to_numpy(dtype=float), g_t.ffill().to_numpy(dtype=float)
        v1, t1 = grouped.bfill().to_numpy(dtype=float), g_t.bfill().to_numpy(dtype=float)
        if snap is not None and self.history_:
            hv = np.array(self.history_["last"][c] + [None], dtype=float)
            ht = np.array(self.history_["time"][c] + [None], dtype=float)
            idx = np.where(snap >= 0, snap, len(hv) - 1)
            use = np.isnan(v0)
            v0 = np.where(use, hv[idx], v0)
            t0 = np.where(use, ht[idx], t0)
        tt = t.to_numpy()
        with np.errstate(all="ignore"):
            frac = np.where(t1 > t0, (tt - t0) / (t1 - t0), 0.0)
            res = v0 + (v1 - v0) * frac
        return np.where(ok.to_numpy(), x.to_numpy(dtype=float), res)

    # -- one record ---------------------------------------------------------------------------
    def transform_one(self, rec: Record) -> None:
        if self.indicator:
            flags = {f"{c}_missing": 1.0 if is_missing(rec[c]) else 0.0 for c in self.columns_}
        if self.strategy in ("ffill", "bfill", "interpolate"):
            self._ordered_one(rec)
        else:
            for c, fill, numeric in self._row:
                v = rec[c]
                if numeric:
                    v = num_value(v, c, self.kind)
                    rec[c] = fill if v != v else v
                elif is_missing(v):
                    rec[c] = fill
        if self.indicator:
            rec.update(flags)

    def _ordered_one(self, rec: Record) -> None:
        i = -1
        time = self.time or ""
        t = time_value(rec[time], bool(self.time_is_datetime_), time, self.kind)
        if (self.strategy == "ffill" and self.history_ and self.keep_history
                and self.cutoff_ is not None and t > self.cutoff_):
            i = self._index.get(cat_value(rec[self.entity]) if self.entity else "", -1)
        for c, _, numeric in self._row:
            v = rec[c]
            if numeric:
                v = num_value(v, c, self.kind)
            if is_missing(v) and i >= 0 and self.history_:
                last = self.history_["last"][c][i]
                v = (NAN if last is None else last) if numeric else last
            rec[c] = v


def _times(df: pd.DataFrame, step: Impute) -> bool:
    return time_array(df[step.time or ""], step.time or "", step.kind)[1]


# -- outliers -----------------------------------------------------------------------------------
class _Bounds(Step):
    """Shared clipping to per-column bounds (NaN passes through)."""

    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "lower_", "upper_")
    columns_: list[str]
    lower_: dict[str, float | None]
    upper_: dict[str, float | None]

    def _prepare(self) -> None:
        self._row = [(c, self._b(self.lower_.get(c)), self._b(self.upper_.get(c))) for c in self.columns_]

    @staticmethod
    def _b(v: float | None) -> float:
        return NAN if v is None else float(v)

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        self._require_numeric(df, self.columns_)
        out = {}
        clipped = 0
        for c, lo, hi in self._row:
            x = num_array(df[c])
            below, above = x < lo, x > hi
            clipped += int(below.sum() + above.sum())
            out[c] = np.where(below, lo, np.where(above, hi, x))
        add_report(report, values_clipped=clipped)
        return new_columns(df, out)

    def transform_one(self, rec: Record) -> None:
        for c, lo, hi in self._row:
            v = num_value(rec[c], c, self.kind)
            rec[c] = lo if v < lo else hi if v > hi else v


@dataclass(eq=True)
class Clip(_Bounds):
    """Limit values to ``[lower, upper]`` (either may be omitted)."""

    kind: ClassVar[str] = "clip"

    columns: list[str]
    lower: float | None = None
    upper: float | None = None

    def validate(self) -> None:
        if self.lower is None and self.upper is None:
            raise StepError("clip needs 'lower', 'upper' or both")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise StepError(f"clip: lower ({self.lower}) is above upper ({self.upper})")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, y, self.columns)
        self._require_numeric(df, self.columns_)
        self.lower_ = {c: self.lower for c in self.columns_}
        self.upper_ = {c: self.upper for c in self.columns_}


@dataclass(eq=True)
class Winsorize(_Bounds):
    """Clip each column to its fitted quantiles ``limits`` (default 1% and 99%)."""

    kind: ClassVar[str] = "winsorize"

    columns: list[str]
    limits: list[float] = field(default_factory=lambda: [0.01, 0.99])

    def validate(self) -> None:
        if len(self.limits) != 2 or not 0 <= self.limits[0] < self.limits[1] <= 1:
            raise StepError(f"winsorize: limits must be two quantiles 0 <= low < high <= 1, got {self.limits}")

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, y, self.columns)
        self._require_numeric(df, self.columns_)
        self.lower_, self.upper_ = {}, {}
        for c in self.columns_:
            x = num_array(df[c])
            if np.isnan(x).all():
                raise StepError(f"column {c!r} has no values to compute quantiles from")
            lo, hi = np.nanquantile(x, self.limits)
            self.lower_[c], self.upper_[c] = float(lo), float(hi)


# -- types --------------------------------------------------------------------------------------
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _to_float(v: Any) -> float:
    if is_missing(v):
        return NAN
    if isinstance(v, str):
        return float(v.strip())
    return float(v)


def _to_int(v: Any) -> int | None:
    if is_missing(v):
        return None
    if isinstance(v, str):
        v = v.strip()
        try:
            return int(v)
        except ValueError:
            v = float(v)
    if isinstance(v, float) or hasattr(v, "is_integer"):
        if not float(v).is_integer():
            raise ValueError(v)
        return int(v)
    return int(v)


def _to_bool(v: Any) -> bool | None:
    if is_missing(v):
        return None
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError(v)
    return bool(v != 0) if not isinstance(v, bool) else v


def _to_str(v: Any) -> str | None:
    return None if is_missing(v) else str(v)


_CASTS = {"float": _to_float, "int": _to_int, "bool": _to_bool, "str": _to_str}


@dataclass(eq=True)
class Cast(Step):
    """Convert columns to ``float``, ``int``, ``bool`` or ``str``; a value that does not convert is an error.

    (``coerce_numeric`` is the forgiving variant: bad values become missing.)
    """

    kind: ClassVar[str] = "cast"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_",)

    columns: list[str]
    to: Literal["float", "int", "bool", "str"]

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, None, self.columns)
        self._prepare()
        self.transform(df)

    def _prepare(self) -> None:
        self._fn = _CASTS[self.to]

    def _convert(self, c: str, v: Any) -> Any:
        try:
            return self._fn(v)
        except (ValueError, TypeError, OverflowError):
            raise StepError(f"column {c!r} has the value {v!r}, which is not a valid {self.to}") from None

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        out: dict[str, Any] = {}
        for c in self.columns_:
            s = df[c]
            if self.to == "float" and column_kind(s) in ("numeric", "bool"):
                out[c] = num_array(s)
                continue
            vals = [self._convert(c, v) for v in s.tolist()]
            dtype = {"float": "float64", "int": "Int64", "bool": "boolean", "str": "str"}[self.to]
            out[c] = pd.array(vals, dtype=dtype)
        return new_columns(df, out)

    def transform_one(self, rec: Record) -> None:
        for c in self.columns_:
            rec[c] = self._convert(c, rec[c])


@dataclass(eq=True)
class CoerceNumeric(Step):
    """Convert columns to numbers; values that do not parse become missing (and are counted)."""

    kind: ClassVar[str] = "coerce_numeric"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "coerced_")

    columns: list[str]

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self.columns_ = self._columns(df, y, self.columns)
        report: Report = {}
        self.transform(df, report)
        self.coerced_ = int(report.get("values_coerced_to_null", 0))

    @staticmethod
    def _one(v: Any) -> tuple[float, bool]:
        try:
            return _to_float(v), False
        except (ValueError, TypeError, OverflowError):
            return NAN, True

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        out, coerced = {}, {}
        for c in self.columns_:
            s = df[c]
            if column_kind(s) in ("numeric", "bool"):
                out[c] = num_array(s)
                continue
            pairs = [self._one(v) for v in s.tolist()]
            out[c] = np.array([p[0] for p in pairs], dtype=np.float64)
            n_bad = sum(p[1] for p in pairs)
            if n_bad:
                coerced[c] = n_bad
        add_report(report, values_coerced_to_null=sum(coerced.values()))
        if report is not None and coerced:
            per = report.setdefault("by_column", {})
            for c, n in coerced.items():
                per[c] = per.get(c, 0) + n
        return new_columns(df, out)

    def transform_one(self, rec: Record) -> None:
        for c in self.columns_:
            rec[c] = self._one(rec[c])[0]


@dataclass(eq=True)
class ParseDates(Step):
    """Parse text columns into dates/times; unparsable values become missing (and are counted).

    Without ``format`` the format is guessed from the first value when fitting
    and then used for every value, so batch and single records parse alike.
    """

    kind: ClassVar[str] = "parse_dates"
    state_attrs: ClassVar[tuple[str, ...]] = ("columns_", "formats_", "coerced_")

    columns: list[str]
    format: str | None = None
    utc: bool = False

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        from pandas.tseries.api import guess_datetime_format

        self.columns_ = self._columns(df, y, self.columns)
        self.formats_: dict[str, str | None] = {}
        for c in self.columns_:
            s = df[c]
            kind = column_kind(s)
            if kind == "datetime":
                self.formats_[c] = None
                continue
            if kind not in ("text", "category"):
                raise StepError(f"column {c!r} holds {describe_kind(s)}, but parse_dates reads text")
            first = s.dropna()
            fmt = self.format or (guess_datetime_format(str(first.iloc[0])) if len(first) else None)
            self.formats_[c] = fmt or "ISO8601"
        report: Report = {}
        self.transform(df, report)
        self.coerced_ = int(report.get("values_coerced_to_null", 0))

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.columns_)
        out = {}
        bad = 0
        for c in self.columns_:
            s = df[c]
            if column_kind(s) == "datetime":
                out[c] = pd.to_datetime(s, utc=True) if self.utc else s
                continue
            fmt = self.formats_[c] or "ISO8601"
            parsed = pd.to_datetime(s, format=fmt, errors="coerce", utc=self.utc)
            bad += int((s.notna() & parsed.isna()).sum())
            out[c] = parsed
        add_report(report, values_coerced_to_null=bad)
        return new_columns(df, out)

    def transform_one(self, rec: Record) -> None:
        for c in self.columns_:
            v = rec[c]
            if is_missing(v):
                rec[c] = None
            elif isinstance(v, str):
                ts = pd.to_datetime(v, format=self.formats_[c] or "ISO8601", errors="coerce", utc=self.utc)
                rec[c] = None if ts is pd.NaT else ts
            else:
                ts = pd.Timestamp(v)
                if self.utc:
                    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
                rec[c] = ts


__all__ = [
    "Cast",
    "Clip",
    "CoerceNumeric",
    "DropColumns",
    "DropDuplicates",
    "DropRows",
    "FlagRows",
    "Impute",
    "ParseDates",
    "Winsorize",
]
