"""Point-in-time steps: per-entity aggregations, lags, rolling windows, differences.

Rows are ordered by (entity, time, row position). A row's features come only
from rows of the same entity that are *earlier*: aggregations use strictly
earlier times (rows at the same time do not see each other), lags and
rolling windows use the preceding rows in that order. No row sees its own
future.

**The fitted history.** Fitting keeps, per entity, a summary of the fitting
data (counts, sums, last values, the last few values) and the latest time in
it, the *cutoff*. A row later than the cutoff sees that summary (everything
up to the cutoff) plus the earlier rows of its own batch that are also
later than the cutoff; a row at or before the cutoff sees only the earlier
rows of its batch. That is what a single record at serving time gets, so
:meth:`~loopml.prep.FittedRecipe.transform_one` equals ``transform`` on a
one-row frame, and transforming the fitting data itself never leaks (every
row is at or before the cutoff). Set ``keep_history: false`` to keep no
summary (rows then only ever see their own batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from loopml.prep._base import (
    NAN,
    NS_PER_DAY,
    Record,
    Report,
    Step,
    StepError,
    cat_array,
    cat_value,
    check_new_names,
    check_present,
    new_columns,
    num_array,
    num_value,
    time_array,
    time_value,
)


# -- ordering ---------------------------------------------------------------------------------
@dataclass
class Segment:
    """Rows of one segment (before or after the cutoff), sorted by (entity, time, position)."""

    pos: np.ndarray  # original row positions, in sorted order
    codes: np.ndarray  # entity code per sorted row
    keys: np.ndarray  # entity key (str) per sorted row
    t: np.ndarray  # time per sorted row
    post: bool  # after the fitted cutoff
    first: np.ndarray  # first row of its entity
    rank: np.ndarray  # position within its entity (0, 1, ...)


def segments(
    df: pd.DataFrame, entity: str | None, time: str, cutoff: float | None, kind: str,
    is_dt: bool | None = None,
) -> list[Segment]:
    """Split ``df`` at the cutoff and sort each part; see the module docstring."""
    t, dt = time_array(df[time], time, kind)
    if is_dt is not None and dt != is_dt:
        want = "dates/times" if is_dt else "numbers"
        raise StepError(f"column {time!r} was fitted as {want}; the data now has {df[time].dtype}")
    n = len(df)
    keys = cat_array(df[entity]) if entity else np.full(n, "", dtype=object)
    post = (t > cutoff) if cutoff is not None else np.zeros(n, dtype=bool)
    out = []
    for flag in (False, True):
        idx = np.flatnonzero(post == flag)
        if len(idx) == 0:
            continue
        codes, _ = pd.factorize(keys[idx])
        order = np.lexsort((idx, t[idx], codes))
        c = codes[order]
        first = np.r_[True, c[1:] != c[:-1]] if len(c) else np.zeros(0, dtype=bool)
        ar = np.arange(len(c))
        start = np.maximum.accumulate(np.where(first, ar, 0))
        out.append(Segment(idx[order], c, keys[idx[order]], t[idx][order], flag, first, ar - start))
    return out


def entity_ends(seg: Segment) -> tuple[np.ndarray, np.ndarray]:
    """Indices (in sorted order) of each entity's first and last row."""
    starts = np.flatnonzero(seg.first)
    ends = np.r_[starts[1:] - 1, len(seg.codes) - 1] if len(starts) else starts
    return starts, ends


def _fmin(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    return a if a <= b else b


def _fmax(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    return a if a >= b else b


class _HistoryStep(Step):
    """Shared fitting of entity/time checks and the cutoff."""

    row_wise: ClassVar[bool] = False
    entity: str | None
    time: str
    keep_history: bool
    cutoff_: int | float | None
    time_is_datetime_: bool

    def _fit_time(self, df: pd.DataFrame, y: pd.Series | None) -> np.ndarray:
        cols = [c for c in (self.entity, self.time) if c]
        self._columns(df, None, cols)
        t, is_dt = time_array(df[self.time], self.time, self.kind)
        self.time_is_datetime_ = is_dt
        self.cutoff_ = (int(t.max()) if is_dt else float(t.max())) if len(t) else None
        return t

    def _segments(self, df: pd.DataFrame, with_cutoff: bool = True) -> list[Segment]:
        cutoff = self.cutoff_ if (with_cutoff and self.keep_history) else None
        return segments(df, self.entity, self.time, cutoff, self.kind, self.time_is_datetime_)

    def _row_key(self, rec: Record) -> tuple[str, int | float]:
        key = cat_value(rec[self.entity]) if self.entity else ""
        return key, time_value(rec[self.time], self.time_is_datetime_, self.time, self.kind)

    def _snapshot_row(self, rec: Record) -> int:
        """Index of the record's entity in the fitted history, or -1 (none, or not after the cutoff)."""
        key, t = self._row_key(rec)
        if not self.keep_history or self.cutoff_ is None or not t > self.cutoff_:
            return -1
        return int(self._index.get(key, -1))

    def _prepare(self) -> None:
        hist = getattr(self, "history_", None)
        keys = hist["keys"] if hist else []
        self._index = {k: i for i, k in enumerate(keys)}
        self._keys = pd.Index(keys, dtype=object)

    def input_columns(self) -> list[str]:
        return [c for c in (self.entity, self.time) if c] + list(getattr(self, "columns_", []))


# -- group aggregations ----------------------------------------------------------------------
Agg = Literal["count", "sum", "mean", "min", "max", "std", "last"]


@dataclass(eq=True)
class GroupAgg(_HistoryStep):
    """Point-in-time aggregates of each entity's earlier rows (count, mean, recency, ...).

    Outputs ``{prefix}count``, ``{prefix}recency`` (time since the entity's
    previous row: days for datetimes) and ``{prefix}{column}_{agg}`` for the
    other aggregates. ``prefix`` defaults to ``"{entity}_"``.
    """

    kind: ClassVar[str] = "group_agg"
    state_attrs: ClassVar[tuple[str, ...]] = (
        "columns_", "outputs_", "time_is_datetime_", "cutoff_", "history_",
    )

    entity: str
    time: str
    columns: list[str] = field(default_factory=list)
    aggs: list[Agg] = field(default_factory=lambda: ["count", "mean"])
    recency: bool = True
    prefix: str | None = None
    keep_history: bool = True

    def validate(self) -> None:
        if not self.aggs and not self.recency:
            raise StepError("group_agg needs at least one aggregate or recency: true")

    def _names(self) -> list[str]:
        p = self.prefix if self.prefix is not None else f"{self.entity}_"
        names = [f"{p}count"] if "count" in self.aggs else []
        names += [f"{p}{c}_{a}" for c in self.columns_ for a in self.aggs if a != "count"]
        if self.recency:
            names.append(f"{p}recency")
        return names

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self._fit_time(df, y)
        self.columns_ = self._columns(df, y, self.columns) if self.columns else []
        self._require_numeric(df, self.columns_)
        self.outputs_ = self._names()
        check_new_names(df, self.outputs_)
        self.history_: dict[str, Any] | None = None
        if self.keep_history and len(df):
            (seg,) = segments(df, self.entity, self.time, None, self.kind)
            starts, ends = entity_ends(seg)
            hist: dict[str, Any] = {
                "keys": [str(k) for k in seg.keys[starts]],
                "n": (ends - starts + 1).astype(float).tolist(),
                "time": seg.t[ends].tolist(),
                "cols": {},
            }
            for c in self.columns_:
                x = num_array(df[c])[seg.pos]
                g = pd.Series(x).groupby(seg.codes, sort=True)
                valid = g.count().to_numpy(dtype=float)
                mean = g.mean().to_numpy()
                m2 = (g.var(ddof=0).to_numpy() * valid)
                hist["cols"][c] = {
                    "valid": valid.tolist(),
                    "sum": np.where(valid > 0, g.sum().to_numpy(), 0.0).tolist(),
                    "min": g.min().to_numpy().tolist(),
                    "max": g.max().to_numpy().tolist(),
                    "last": g.last().to_numpy().tolist(),
                    "mean": np.where(valid > 0, mean, 0.0).tolist(),
                    "m2": np.where(valid > 0, m2, 0.0).tolist(),
                }
            self.history_ = hist

    def _prepare(self) -> None:
        super()._prepare()
        hist = self.history_
        self._snap: dict[str, np.ndarray] = {}
        if hist:
            self._snap["n"] = np.asarray(hist["n"], dtype=float)
            self._snap["time"] = np.asarray(hist["time"], dtype=np.int64 if self.time_is_datetime_ else float)
            for c, d in hist["cols"].items():
                for k, v in d.items():
                    self._snap[f"{c}\0{k}"] = np.asarray(v, dtype=float)
        self._rows = [
            (c, {k: self._snap[f"{c}\0{k}"].tolist() for k in ("valid", "sum", "min", "max", "last", "mean", "m2")}
             if hist else None)
            for c in self.columns_
        ]
        self._row_n = self._snap["n"].tolist() if hist else []
        self._row_t = self._snap["time"].tolist() if hist else []

    # -- batch --------------------------------------------------------------------------------
    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.input_columns())
        self._require_numeric(df, self.columns_)
        n = len(df)
        out = {name: np.full(n, NAN) for name in self.outputs_}
        p = self.prefix if self.prefix is not None else f"{self.entity}_"
        for seg in self._segments(df):
            snap = self._keys.get_indexer(seg.keys) if (seg.post and self._snap) else np.full(len(seg.pos), -1)
            has_snap = snap >= 0
            si = np.where(has_snap, snap, 0)
            res = self._segment(df, seg, snap, has_snap, si)
            for name, values in res.items():
                out[f"{p}{name}"][seg.pos] = values
        return new_columns(df, out)

    def _segment(
        self, df: pd.DataFrame, seg: Segment, snap: np.ndarray, has_snap: np.ndarray, si: np.ndarray
    ) -> dict[str, np.ndarray]:
        m = len(seg.pos)
        # blocks: runs of rows of one entity at one time (they do not see each other)
        new_block = seg.first | np.r_[True, seg.t[1:] != seg.t[:-1]]
        b = np.cumsum(new_block) - 1
        starts = np.flatnonzero(new_block)
        blk_ent = seg.codes[starts]
        nb = len(starts)
        same = np.r_[False, blk_ent[1:] == blk_ent[:-1]]  # the previous block is the same entity's

        def prev_cumsum(v: np.ndarray) -> np.ndarray:
            cum = pd.Series(v).groupby(blk_ent, sort=False).cumsum().to_numpy(dtype=float)
            return np.where(same, np.r_[0.0, cum[:-1]], 0.0)[b]

        def prev_running(v: np.ndarray, how: str) -> np.ndarray:
            g = pd.Series(v).groupby(blk_ent, sort=False)
            run = g.cummin() if how == "min" else g.cummax() if how == "max" else pd.Series(v)
            run = run.groupby(blk_ent, sort=False).ffill().to_numpy(dtype=float)
            return np.where(same, np.r_[NAN, run[:-1]], NAN)[b]

        def snapshot(key: str, default: float) -> np.ndarray:
            if not self._snap:
                return np.full(m, default)
            return np.where(has_snap, self._snap[key][si], default)

        res: dict[str, np.ndarray] = {}
        if "count" in self.aggs:
            counts = np.bincount(b, minlength=nb).astype(float)
            res["count"] = snapshot("n", 0.0) + prev_cumsum(counts)
        for c in self.columns_:
            x = num_array(df[c])[seg.pos]
            valid = ~np.isnan(x)
            sv = snapshot(f"{c}\0valid", 0.0)
            ssum = snapshot(f"{c}\0sum", 0.0)
            # variance reference: the fitted mean, else the entity's first value in the batch
            first_valid = pd.Series(x).groupby(seg.codes, sort=False).transform("first").to_numpy()
            own_ref = np.where(np.isnan(first_valid), 0.0, first_valid)
            ref = np.where(has_snap, snapshot(f"{c}\0mean", 0.0), own_ref)
            smean = ref
            p_valid = prev_cumsum(np.bincount(b, weights=valid.astype(float), minlength=nb))
            p_sum = prev_cumsum(np.bincount(b, weights=np.where(valid, x, 0.0), minlength=nb))
            total_sum = ssum + p_sum
            nvalid = sv + p_valid
            with np.errstate(all="ignore"):
                if "sum" in self.aggs:
                    res[f"{c}_sum"] = total_sum
                if "mean" in self.aggs:
                    res[f"{c}_mean"] = np.where(nvalid > 0, total_sum / nvalid, NAN)
                if "min" in self.aggs:
                    p_min = prev_running(np.fmin.reduceat(x, starts), "min")
                    res[f"{c}_min"] = np.fmin(snapshot(f"{c}\0min", NAN), p_min)
                if "max" in self.aggs:
                    p_max = prev_running(np.fmax.reduceat(x, starts), "max")
                    res[f"{c}_max"] = np.fmax(snapshot(f"{c}\0max", NAN), p_max)
                if "last" in self.aggs:
                    blk_last = pd.Series(x).groupby(b, sort=False).last().to_numpy(dtype=float)
                    p_last = prev_running(blk_last, "last")
                    res[f"{c}_last"] = np.where(np.isnan(p_last), snapshot(f"{c}\0last", NAN), p_last)
                if "std" in self.aggs:
                    d = np.where(valid, x - ref, 0.0)
                    p_d1 = prev_cumsum(np.bincount(b, weights=d, minlength=nb))
                    p_d2 = prev_cumsum(np.bincount(b, weights=d * d, minlength=nb))
                    sm2 = snapshot(f"{c}\0m2", 0.0)
                    dm = smean - ref
                    d1 = p_d1 + sv * dm
                    d2 = p_d2 + sm2 + sv * (dm * dm)
                    var = np.where(nvalid > 1, (d2 - d1 * d1 / nvalid) / (nvalid - 1), NAN)
                    res[f"{c}_std"] = np.sqrt(np.where(var < 0, 0.0, var))
        if self.recency:
            blk_t = seg.t[starts]
            prev_t = np.where(same, np.r_[blk_t[:1], blk_t[:-1]], blk_t)[b]
            has_prev = same[b]
            if self._snap:
                st = np.where(has_snap, self._snap["time"][si], 0).astype(seg.t.dtype)
                last_t = np.where(has_prev, prev_t, st)
                has = has_prev | has_snap
            else:
                last_t, has = prev_t, has_prev
            gap = (seg.t - last_t).astype(float)
            if self.time_is_datetime_:
                gap = gap / NS_PER_DAY
            res["recency"] = np.where(has, gap, NAN)
        return res

    # -- one record -----------------------------------------------------------------------
    def transform_one(self, rec: Record) -> None:
        for c in self.columns_:
            num_value(rec[c], c, self.kind)
        i = self._snapshot_row(rec)
        p = self.prefix if self.prefix is not None else f"{self.entity}_"
        if "count" in self.aggs:
            rec[f"{p}count"] = (self._row_n[i] if i >= 0 else 0.0) + 0.0
        for c, h in self._rows:
            if i >= 0 and h is not None:
                sv, ssum, smean = h["valid"][i], h["sum"][i], h["mean"][i]
                smin, smax, slast, sm2 = h["min"][i], h["max"][i], h["last"][i], h["m2"][i]
            else:
                sv, ssum, smin, smax, slast, sm2 = 0.0, 0.0, NAN, NAN, NAN, 0.0
                smean = 0.0
            ref = smean
            total_sum = ssum + 0.0
            nvalid = sv + 0.0
            for a in self.aggs:
                if a == "sum":
                    rec[f"{p}{c}_sum"] = total_sum
                elif a == "mean":
                    rec[f"{p}{c}_mean"] = total_sum / nvalid if nvalid > 0 else NAN
                elif a == "min":
                    rec[f"{p}{c}_min"] = _fmin(smin, NAN)
                elif a == "max":
                    rec[f"{p}{c}_max"] = _fmax(smax, NAN)
                elif a == "last":
                    rec[f"{p}{c}_last"] = slast
                elif a == "std":
                    dm = smean - ref
                    d1 = 0.0 + sv * dm
                    d2 = 0.0 + sm2 + sv * (dm * dm)
                    var = (d2 - d1 * d1 / nvalid) / (nvalid - 1) if nvalid > 1 else NAN
                    rec[f"{p}{c}_std"] = math.sqrt(0.0 if var < 0 else var) if var == var else NAN
        if self.recency:
            if i >= 0:
                _, t = self._row_key(rec)
                gap = float(t - self._row_t[i])
                rec[f"{p}recency"] = gap / NS_PER_DAY if self.time_is_datetime_ else gap
            else:
                rec[f"{p}recency"] = NAN


# -- lags, rolling windows, differences ------------------------------------------------------------
class _TailStep(_HistoryStep):
    """Steps that look at the preceding rows: they keep each entity's last values."""

    state_attrs: ClassVar[tuple[str, ...]] = (
        "columns_", "outputs_", "time_is_datetime_", "cutoff_", "history_",
    )
    columns: list[str]
    keep_history: bool

    def _depth(self) -> int:
        raise NotImplementedError

    def _names(self) -> list[str]:
        raise NotImplementedError

    def _fit(self, df: pd.DataFrame, y: pd.Series | None) -> None:
        self._fit_time(df, y)
        self.columns_ = self._columns(df, y, self.columns)
        self._require_numeric(df, self.columns_)
        self.outputs_ = self._names()
        check_new_names(df, self.outputs_)
        self.history_: dict[str, Any] | None = None
        depth = self._depth()
        if self.keep_history and len(df) and depth > 0:
            (seg,) = segments(df, self.entity, self.time, None, self.kind)
            starts, ends = entity_ends(seg)
            tails: dict[str, list[list[float]]] = {}
            for c in self.columns_:
                x = num_array(df[c])[seg.pos]
                tail = np.full((len(starts), depth), NAN)
                for slot in range(depth):
                    src = ends - (depth - 1 - slot)
                    ok = src >= starts
                    tail[ok, slot] = x[src[ok]]
                tails[c] = tail.tolist()
            self.history_ = {"keys": [str(k) for k in seg.keys[starts]], "tails": tails}

    def _prepare(self) -> None:
        super()._prepare()
        hist = self.history_
        self._tails = {c: np.asarray(v, dtype=float).reshape(-1, self._depth())
                       for c, v in (hist["tails"].items() if hist else [])}
        self._row_tails = {c: v.tolist() for c, v in self._tails.items()}

    def _lag(self, seg: Segment, x: np.ndarray, k: int, c: str, snap: np.ndarray) -> np.ndarray:
        """The value k rows back within the entity (the fitted tail for rows after the cutoff)."""
        out = np.full(len(x), NAN)
        ok = seg.rank >= k
        out[ok] = x[np.flatnonzero(ok) - k]
        if seg.post and c in self._tails:
            depth = self._depth()
            need = ~ok & (snap >= 0) & (k - seg.rank <= depth)
            out[need] = self._tails[c][snap[need], depth - (k - seg.rank[need])]
        return out

    def _row_lag(self, c: str, i: int, k: int) -> float:
        return float(self._row_tails[c][i][self._depth() - k]) if i >= 0 and c in self._row_tails else NAN

    def transform(self, df: pd.DataFrame, report: Report | None = None) -> pd.DataFrame:
        check_present(df, self.input_columns())
        self._require_numeric(df, self.columns_)
        out = {name: np.full(len(df), NAN) for name in self.outputs_}
        for seg in self._segments(df):
            snap = self._keys.get_indexer(seg.keys) if (seg.post and len(self._keys)) else np.full(len(seg.pos), -1)
            for c in self.columns_:
                x = num_array(df[c])[seg.pos]
                for name, values in self._outputs(seg, c, x, snap).items():
                    out[name][seg.pos] = values
        return new_columns(df, out)

    def _outputs(self, seg: Segment, c: str, x: np.ndarray, snap: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def transform_one(self, rec: Record) -> None:
        i = self._snapshot_row(rec)
        for c in self.columns_:
            x = num_value(rec[c], c, self.kind)
            self._row_outputs(rec, c, x, i)

    def _row_outputs(self, rec: Record, c: str, x: float, i: int) -> None:
        raise NotImplementedError


@dataclass(eq=True)
class Lag(_TailStep):
    """The values of the entity's previous rows: ``{column}_lag{k}`` for each k in ``lags``."""

    kind: ClassVar[str] = "lag"

    time: str
    columns: list[str]
    lags: list[int] = field(default_factory=lambda: [1])
    entity: str | None = None
    keep_history: bool = True

    def validate(self) -> None:
        if not self.lags or any(k < 1 for k in self.lags):
            raise StepError("lag: 'lags' must be a list of positive integers")

    def _depth(self) -> int:
        return max(self.lags)

    def _names(self) -> list[str]:
        return [f"{c}_lag{k}" for c in self.columns_ for k in self.lags]

    def _outputs(self, seg: Segment, c: str, x: np.ndarray, snap: np.ndarray) -> dict[str, np.ndarray]:
        return {f"{c}_lag{k}": self._lag(seg, x, k, c, snap) for k in self.lags}

    def _row_outputs(self, rec: Record, c: str, x: float, i: int) -> None:
        for k in self.lags:
            rec[f"{c}_lag{k}"] = self._row_lag(c, i, k)


@dataclass(eq=True)
class Diff(_TailStep):
    """The change since ``periods`` rows back within the entity: ``{column}_diff{periods}``."""

    kind: ClassVar[str] = "diff"

    time: str
    columns: list[str]
    periods: int = 1
    entity: str | None = None
    keep_history: bool = True

    def validate(self) -> None:
        if self.periods < 1:
            raise StepError("diff: 'periods' must be a positive integer")

    def _depth(self) -> int:
        return self.periods

    def _names(self) -> list[str]:
        return [f"{c}_diff{self.periods}" for c in self.columns_]

    def _outputs(self, seg: Segment, c: str, x: np.ndarray, snap: np.ndarray) -> dict[str, np.ndarray]:
        return {f"{c}_diff{self.periods}": x - self._lag(seg, x, self.periods, c, snap)}

    def _row_outputs(self, rec: Record, c: str, x: float, i: int) -> None:
        rec[f"{c}_diff{self.periods}"] = x - self._row_lag(c, i, self.periods)


Stat = Literal["mean", "std", "min", "max", "sum", "count"]


def window_stats(values: Sequence[Any], stats: Sequence[str], min_periods: int) -> dict[str, Any]:
    """Statistics over window values (oldest first), skipping missing ones.

    Works element-wise on numpy arrays (a whole column) and on floats (one
    record) with the same operations in the same order, so both agree exactly.
    """
    arrays = isinstance(values[0], np.ndarray)
    isnan = np.isnan if arrays else (lambda v: v != v)
    where = np.where if arrays else (lambda c, a, b: a if c else b)
    cnt: Any = 0.0
    total: Any = 0.0
    lo: Any = NAN
    hi: Any = NAN
    for v in values:
        miss = isnan(v)
        cnt = cnt + where(miss, 0.0, 1.0)
        total = total + where(miss, 0.0, v)
        lo = np.fmin(lo, v) if arrays else _fmin(lo, v)
        hi = np.fmax(hi, v) if arrays else _fmax(hi, v)
    enough = cnt >= min_periods
    with np.errstate(all="ignore"):
        mean = where(cnt > 0, total / cnt if arrays else (total / cnt if cnt > 0 else NAN), NAN)
        out: dict[str, Any] = {}
        if "std" in stats:
            ss: Any = 0.0
            for v in values:
                dv = v - mean
                ss = ss + where(isnan(v), 0.0, dv * dv)
            var = where(cnt > 1, ss / (cnt - 1) if arrays else (ss / (cnt - 1) if cnt > 1 else NAN), NAN)
            out["std"] = np.sqrt(var) if arrays else (math.sqrt(var) if var == var else NAN)
    full = {"mean": mean, "min": lo, "max": hi, "sum": total, "count": cnt, **out}
    return {s: full[s] if s == "count" else where(enough, full[s], NAN) for s in stats}


@dataclass(eq=True)
class Rolling(_TailStep):
    """Statistics over the entity's last ``window`` rows: ``{column}_roll{window}_{stat}``.

    The window ends at the current row (``include_current: true``, the
    default) or just before it.
    """

    kind: ClassVar[str] = "rolling"

    time: str
    columns: list[str]
    window: int = 3
    stats: list[Stat] = field(default_factory=lambda: ["mean"])
    entity: str | None = None
    include_current: bool = True
    min_periods: int = 1
    keep_history: bool = True

    def validate(self) -> None:
        if self.window < 1 or self.min_periods < 1 or self.min_periods > self.window:
            raise StepError("rolling: need window >= 1 and 1 <= min_periods <= window")
        if not self.stats:
            raise StepError("rolling: 'stats' is empty")

    def _depth(self) -> int:
        return self.window - 1 if self.include_current else self.window

    def _names(self) -> list[str]:
        return [f"{c}_roll{self.window}_{s}" for c in self.columns_ for s in self.stats]

    def _lags(self) -> list[int]:
        # oldest first
        return list(range(self.window - 1, 0, -1)) if self.include_current else list(range(self.window, 0, -1))

    def _outputs(self, seg: Segment, c: str, x: np.ndarray, snap: np.ndarray) -> dict[str, np.ndarray]:
        values = [self._lag(seg, x, k, c, snap) for k in self._lags()]
        if self.include_current:
            values.append(x)
        res = window_stats(values, self.stats, self.min_periods)
        return {f"{c}_roll{self.window}_{s}": np.asarray(v, dtype=float) for s, v in res.items()}

    def _row_outputs(self, rec: Record, c: str, x: float, i: int) -> None:
        values: list[Any] = [self._row_lag(c, i, k) for k in self._lags()]
        if self.include_current:
            values.append(x)
        for s, v in window_stats(values, self.stats, self.min_periods).items():
            rec[f"{c}_roll{self.window}_{s}"] = float(v)


__all__ = ["Diff", "GroupAgg", "Lag", "Rolling", "Segment", "entity_ends", "segments", "window_stats"]
