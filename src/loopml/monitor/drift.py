"""Drift distances between a baseline and current data, each with a threshold and a verdict.

Pure numpy/scipy functions of what ``statistics.json`` holds, so a baseline
never needs its raw rows again:

numbers (from the two quantile sketches)
    ``KS``: the Kolmogorov–Smirnov distance, the largest gap between the two
    cumulative distributions (the reference's numeric distance), with its
    asymptotic p-value. ``Wasserstein``: the earth mover's distance
    ∫|Q_b(p) − Q_c(p)| dp divided by the baseline's standard deviation (its
    interquartile range when that is 0), so one threshold fits every feature.
    ``PSI``: the population stability index over the baseline's deciles.
categories (from the two frequency tables)
    ``LInfinity``: the largest change of a category's share (the reference's).
    ``JensenShannon``: the Jensen–Shannon distance, base 2 (in [0, 1]).
    ``ChiSquare``: the chi-square test of the 2 × k table: its p-value, and as
    distance sqrt(½ Σ (p − q)² / (p + q)), which is Cramér's V of the table
    when both samples have the same size (and, unlike V, does not shrink when
    they do not). ``PSI`` as for numbers, over the categories.

Raw p-values flag noise at 100,000 rows, so every verdict compares a distance
with a threshold. ``Simple`` comparison: drift when distance > threshold.
``Robust`` (the default) also takes the sample sizes into account: drift when
distance > max(threshold, the distance that sampling noise alone exceeds with
probability ``alpha``), so a window of a few hundred rows does not raise false
alarms. The noise bounds: KS — the two-sample critical value
sqrt(−ln(α/2)/2)·sqrt(1/n + 1/m); PSI, chi-square and Jensen–Shannon — their
chi-square approximations (each is ≈ χ²ₖ₋₁·(1/n + 1/m) times a constant);
L-infinity — a Bonferroni-corrected normal bound on the largest share change;
Wasserstein — z₁₋α/₂·∫√(F(1−F))dx·sqrt(1/n + 1/m), the Brownian-bridge bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from loopml.monitor.constraints import CATEGORICAL_METHODS, NUMERIC_METHODS, FeatureConfig
from loopml.monitor.statistics import GRID_SIZE, category_counts, grid, sketch_of

#: counts added to every PSI bin before taking shares
PSI_SMOOTHING = 0.5
#: baseline quantiles that bound the PSI bins of a numeric feature (its deciles)
PSI_BINS = 10

_STEP = 1.0 / (GRID_SIZE - 1)
_GRID = grid()


@dataclass(frozen=True)
class MethodScore:
    """One method's verdict on one feature."""

    method: str
    distance: float
    threshold: float
    #: the noise bound of the Robust comparison (None for Simple)
    critical: float | None
    p_value: float | None
    drift: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (in constraint_violations.json's ``drift`` block)."""
        return {"method": self.method, "distance": _r(self.distance), "threshold": self.threshold,
                "critical": _r(self.critical), "p_value": _r(self.p_value), "drift": self.drift}


def _r(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None if v is None or math.isnan(v) else v
    return float(f"{v:.6g}")


def _verdict(method: str, distance: float, threshold: float, critical: float, p_value: float | None,
             robust: bool) -> MethodScore:
    bound = max(threshold, critical) if robust else threshold
    return MethodScore(method, float(distance), float(threshold), float(critical) if robust else None,
                       p_value, bool(distance > bound))


# -- numbers: from quantile sketches ------------------------------------------------------------------
def sketch_cdf(q: np.ndarray, x: np.ndarray, *, left: bool = False) -> np.ndarray:
    """The cumulative distribution a quantile sketch ``q`` describes, at ``x`` (``left``: just below x).

    Accurate within one grid step (0.001), for continuous and discrete data alike.
    """
    idx = np.searchsorted(q, x, side="left" if left else "right")
    return np.clip((idx - 1) * _STEP, 0.0, 1.0)


def ks_distance(qb: np.ndarray, qc: np.ndarray) -> float:
    """Largest gap between the two sketches' cumulative distributions (both sides of every jump).

    Examples
    --------
    >>> import numpy as np
    >>> from loopml.monitor.statistics import quantile_sketch
    >>> rng = np.random.default_rng(0)
    >>> a, b = np.sort(rng.normal(0, 1, 20_000)), np.sort(rng.normal(0.5, 1, 20_000))
    >>> round(ks_distance(quantile_sketch(a), quantile_sketch(b)), 2)   # exact: 0.197
    0.2
    """
    pts = np.concatenate([qb, qc])
    right = np.abs(sketch_cdf(qb, pts) - sketch_cdf(qc, pts))
    left = np.abs(sketch_cdf(qb, pts, left=True) - sketch_cdf(qc, pts, left=True))
    return float(max(right.max(), left.max()))


def ks_p_value(distance: float, n: int, m: int) -> float:
    """Asymptotic two-sample Kolmogorov–Smirnov p-value."""
    return float(special.kolmogorov(distance * math.sqrt(n * m / (n + m))))


def ks_critical(alpha: float, n: int, m: int) -> float:
    """The KS distance that two samples of one distribution exceed with probability ``alpha``."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt(1 / n + 1 / m)


def _scale(qb: np.ndarray, std: float | None) -> float:
    if std and std > 0:
        return float(std)
    iqr = float(qb[(GRID_SIZE - 1) * 3 // 4] - qb[(GRID_SIZE - 1) // 4])
    return iqr if iqr > 0 else 1.0


def wasserstein_distance(qb: np.ndarray, qc: np.ndarray, scale: float = 1.0) -> float:
    """∫|Q_b(p) − Q_c(p)| dp over the sketch grid, divided by ``scale``."""
    return float(np.trapezoid(np.abs(qb - qc), _GRID) / scale)


def wasserstein_critical(alpha: float, qb: np.ndarray, n: int, m: int, scale: float) -> float:
    """The noise bound of the normalised Wasserstein distance (see the module docstring)."""
    p = _GRID[:-1]
    spread = float(np.sum(np.sqrt(p * (1 - p)) * np.diff(qb)))
    return float(stats.norm.isf(alpha / 2)) * spread * math.sqrt(1 / n + 1 / m) / scale


def psi(counts_b: np.ndarray, counts_c: np.ndarray) -> float:
    """Population stability index Σ (c − b)·ln(c / b) of the shares of two count vectors.

    Half a count is added to every bin of both (so an empty bin has a small
    finite share instead of an infinite logarithm, and sparse tables are not
    over-penalised).

    Examples
    --------
    >>> import numpy as np
    >>> round(psi(np.array([500, 500]), np.array([500, 500])), 6), round(psi(np.array([500, 500]), np.array([700, 300])), 3)
    (0.0, 0.169)
    """
    b = (counts_b + PSI_SMOOTHING) / (counts_b.sum() + PSI_SMOOTHING * len(counts_b))
    c = (counts_c + PSI_SMOOTHING) / (counts_c.sum() + PSI_SMOOTHING * len(counts_c))
    return float(np.sum((c - b) * np.log(c / b)))


def _chi2_bound(alpha: float, df: int, n: int, m: int) -> float:
    return float(stats.chi2.isf(alpha, max(df, 1))) * (1 / n + 1 / m)


def numeric_scores(base: Mapping[str, Any], cur: Mapping[str, Any], cfg: FeatureConfig,
                   methods: tuple[str, ...] = NUMERIC_METHODS) -> dict[str, Any]:
    """Every numeric method's verdict on one feature (statistics.json entries of baseline and current)."""
    sb, sc = sketch_of(base), sketch_of(cur)
    if sb is None or sc is None:
        return {"kind": "numerical", "compared": False,
                "reason": "no numeric values in the " + ("baseline" if sb is None else "current data")}
    (qb, nb), (qc, nc) = sb, sc
    a = cfg.alpha
    out: dict[str, MethodScore] = {}
    if "KS" in methods:
        d = ks_distance(qb, qc)
        out["KS"] = _verdict("KS", d, cfg.thresholds["KS"], ks_critical(a, nb, nc), ks_p_value(d, nb, nc), cfg.robust)
    if "Wasserstein" in methods:
        scale = _scale(qb, base["numerical_statistics"].get("std_dev"))
        d = wasserstein_distance(qb, qc, scale)
        out["Wasserstein"] = _verdict("Wasserstein", d, cfg.thresholds["Wasserstein"],
                                      wasserstein_critical(a, qb, nb, nc, scale), None, cfg.robust)
    if "PSI" in methods:
        edges = np.unique(qb[[(GRID_SIZE - 1) * k // PSI_BINS for k in range(1, PSI_BINS)]])
        fb = np.concatenate([[0.0], sketch_cdf(qb, edges), [1.0]])
        fc = np.concatenate([[0.0], sketch_cdf(qc, edges), [1.0]])
        pb, pc = np.diff(fb), np.diff(fc)
        keep = (pb > 0) | (pc > 0)
        d = psi(pb[keep] * nb, pc[keep] * nc)
        out["PSI"] = _verdict("PSI", d, cfg.thresholds["PSI"], _chi2_bound(a, int(keep.sum()) - 1, nb, nc),
                              None, cfg.robust)
    return _feature_result("numerical", out, cfg, nb, nc)


# -- categories: from frequency tables ------------------------------------------------------------------
def align_counts(base: Mapping[str, float], cur: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(categories, baseline counts, current counts) over the union of both tables' categories.

    Current values the baseline never saw keep their own category, unless the
    baseline lumped its rare values into ``__other__``; then they join it.
    """
    folds = "__other__" in base
    cats = list(base)
    idx = {c: i for i, c in enumerate(cats)}
    b = np.array([base[c] for c in cats], dtype=np.float64)
    extra: dict[str, float] = {}
    c_arr = np.zeros(len(cats), dtype=np.float64)
    for k, v in cur.items():
        if k in idx:
            c_arr[idx[k]] += v
        elif folds:
            c_arr[idx["__other__"]] += v
        else:
            extra[k] = extra.get(k, 0.0) + v
    if extra:
        cats += list(extra)
        b = np.concatenate([b, np.zeros(len(extra))])
        c_arr = np.concatenate([c_arr, np.array(list(extra.values()))])
    return cats, b, c_arr


def categorical_scores(base_counts: Mapping[str, float], cur_counts: Mapping[str, float], cfg: FeatureConfig,
                       methods: tuple[str, ...] = CATEGORICAL_METHODS) -> dict[str, Any]:
    """Every categorical method's verdict on one feature, from ``{value: count}`` tables."""
    cats, b, c = align_counts(base_counts, cur_counts)
    nb, nc = float(b.sum()), float(c.sum())
    if nb <= 0 or nc <= 0:
        return {"kind": "categorical", "compared": False,
                "reason": "no values in the " + ("baseline" if nb <= 0 else "current data")}
    p, q = b / nb, c / nc
    k = len(cats)
    a = cfg.alpha
    noise = 1 / nb + 1 / nc
    out: dict[str, MethodScore] = {}
    if "LInfinity" in methods:
        m = (p + q) / 2
        z = float(stats.norm.isf(a / (2 * k)))
        crit = z * float(np.sqrt(np.max(m * (1 - m)) * noise))
        out["LInfinity"] = _verdict("LInfinity", float(np.max(np.abs(p - q))), cfg.thresholds["LInfinity"], crit,
                                    None, cfg.robust)
    if "JensenShannon" in methods:
        m = (p + q) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
            kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
        jsd = max(float(0.5 * (kl_p.sum() + kl_q.sum())), 0.0)
        crit = math.sqrt(float(stats.chi2.isf(a, max(k - 1, 1))) * noise / (8 * math.log(2)))
        out["JensenShannon"] = _verdict("JensenShannon", math.sqrt(jsd), cfg.thresholds["JensenShannon"], crit,
                                        None, cfg.robust)
    if "ChiSquare" in methods:
        s = p + q
        dist = math.sqrt(0.5 * float(np.sum(np.where(s > 0, (p - q) ** 2 / np.where(s > 0, s, 1.0), 0.0))))
        if k > 1:
            table = np.vstack([b, c])
            expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
            chi2 = float(np.sum((table - expected) ** 2 / expected))
            pval = float(stats.chi2.sf(chi2, k - 1))
        else:
            pval = 1.0
        crit = math.sqrt(float(stats.chi2.isf(a, max(k - 1, 1))) * noise / 4)
        out["ChiSquare"] = _verdict("ChiSquare", dist, cfg.thresholds["ChiSquare"], crit, pval, cfg.robust)
    if "PSI" in methods:
        out["PSI"] = _verdict("PSI", psi(b, c), cfg.thresholds["PSI"], _chi2_bound(a, k - 1, int(nb), int(nc)),
                              None, cfg.robust)
    res = _feature_result("categorical", out, cfg, int(nb), int(nc))
    res["categories"] = len(cats)
    return res


def categorical_feature_scores(base: Mapping[str, Any], cur: Mapping[str, Any], cfg: FeatureConfig,
                               methods: tuple[str, ...] = CATEGORICAL_METHODS) -> dict[str, Any]:
    """:func:`categorical_scores` of two statistics.json string entries."""
    bc, cc = category_counts(base), category_counts(cur)
    if bc is None or cc is None:
        return {"kind": "categorical", "compared": False, "reason": "no category counts"}
    return categorical_scores(bc, cc, cfg, methods)


def _feature_result(kind: str, scores: Mapping[str, MethodScore], cfg: FeatureConfig, nb: int, nc: int
                    ) -> dict[str, Any]:
    primary = [m for m in cfg.primary if m in scores]
    drift = any(scores[m].drift for m in primary)
    main = scores[primary[0]] if primary else None
    return {
        "kind": kind, "compared": True, "n_baseline": nb, "n_current": nc,
        "comparison_method": "Robust" if cfg.robust else "Simple",
        "primary_methods": primary,
        "distance": _r(main.distance) if main else None,
        "threshold": max(main.threshold, main.critical or 0.0) if main else None,
        "drift": drift,
        "methods": {m: s.to_dict() for m, s in scores.items()},
    }


__all__ = [
    "PSI_BINS",
    "PSI_SMOOTHING",
    "MethodScore",
    "align_counts",
    "categorical_feature_scores",
    "categorical_scores",
    "ks_critical",
    "ks_distance",
    "ks_p_value",
    "numeric_scores",
    "psi",
    "sketch_cdf",
    "wasserstein_critical",
    "wasserstein_distance",
]
