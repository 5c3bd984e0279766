"""Association measures between columns, vectorised with numpy.

Pearson and Spearman use every pair of rows where both columns are present
(pairwise-complete, as pandas does); Spearman is Pearson on average ranks,
each column ranked over its own present values. Cramér's V (uncorrected) and
the correlation ratio take integer category codes, ``-1`` for missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pearson_matrix(x: np.ndarray) -> np.ndarray:
    """Pairwise-complete Pearson correlations of the columns of ``x`` (NaN = missing)."""
    x = np.asarray(x, dtype=np.float64)
    present = ~np.isnan(x)
    if present.all():
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(x, rowvar=False)
        return np.atleast_2d(r)
    m = present.astype(np.float64)
    with np.errstate(invalid="ignore"):
        centred = np.where(present, x - np.nanmean(x, axis=0), 0.0)
    n = m.T @ m
    sx = centred.T @ m  # sx[i, j]: sum of column i over rows where i and j are present
    sxx = (centred * centred).T @ m
    sxy = centred.T @ centred
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sx.T / n
        var = sxx - sx * sx / n
        r = cov / np.sqrt(var * var.T)
    r[n < 2] = np.nan
    return np.clip(r, -1.0, 1.0)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    """1-based ranks of ``v`` (no NaN), ties sharing their average rank."""
    order = np.argsort(v, kind="mergesort")
    ordered = v[order]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(v))
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return ranks


def rank_columns(x: np.ndarray) -> np.ndarray:
    """Average ranks of each column over its present values (NaN stays NaN)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        present = ~np.isnan(x[:, j])
        if present.all():
            out[:, j] = _average_ranks(x[:, j])
        elif present.any():
            out[present, j] = _average_ranks(x[present, j])
    return out


def spearman_matrix(x: np.ndarray) -> np.ndarray:
    """Spearman rank correlations of the columns of ``x`` (pairwise-complete Pearson of ranks)."""
    return pearson_matrix(rank_columns(x))


def _codes(values: Any) -> np.ndarray:
    import pandas as pd

    codes, _ = pd.factorize(pd.Series(values), use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64)


def cramers_v_codes(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cramér's V of two code arrays (``-1`` = missing; those rows are dropped)."""
    keep = (a >= 0) & (b >= 0)
    if keep.sum() < 2:
        return None
    a, b = a[keep], b[keep]
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    table = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    k = min(table.shape) - 1
    if k < 1:
        return None
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0))
    chi2 = n * ((table * table / expected).sum() - 1.0)
    return float(np.clip(np.sqrt(max(chi2, 0.0) / (n * k)), 0.0, 1.0))


def correlation_ratio_codes(codes: np.ndarray, values: np.ndarray) -> float | None:
    """Correlation ratio η of numeric ``values`` grouped by category ``codes`` (``-1``/NaN dropped)."""
    values = np.asarray(values, dtype=np.float64)
    keep = (codes >= 0) & np.isfinite(values)
    if keep.sum() < 2:
        return None
    c, y = codes[keep], values[keep]
    n_k = np.bincount(c)
    sums = np.bincount(c, weights=y)
    mean = y.mean()
    total = float(((y - mean) ** 2).sum())
    if total <= 0:
        return None
    groups = n_k > 0
    between = float((n_k[groups] * (sums[groups] / n_k[groups] - mean) ** 2).sum())
    return float(np.clip(np.sqrt(between / total), 0.0, 1.0))


def cramers_v(x: Any, y: Any) -> float | None:
    """Cramér's V between two categorical sequences (0 = independent, 1 = each determines the other).

    The uncorrected statistic, ``sqrt(chi2 / (n * (min(r, c) - 1)))``, over rows
    where both values are present.

    Parameters
    ----------
    x, y
        Sequences of equal length (lists, arrays, pandas Series); None/NaN are missing.

    Returns
    -------
    float or None
        None when it is undefined (fewer than two rows, or a single category).

    Examples
    --------
    >>> cramers_v(["a", "a", "b", "b"], ["x", "x", "y", "y"])
    1.0
    """
    return cramers_v_codes(_codes(x), _codes(y))


def correlation_ratio(categories: Any, values: Any) -> float | None:
    """Correlation ratio η: how much of a numeric variable's variance the categories explain.

    ``η² = Σ n_k (mean_k - mean)² / Σ (y - mean)²``, between 0 (the category
    says nothing about the value) and 1 (it determines it).

    Parameters
    ----------
    categories
        Category of each row (None/NaN = missing).
    values
        Numeric value of each row (NaN = missing).

    Returns
    -------
    float or None
        None when it is undefined (fewer than two rows, or no variance).

    Examples
    --------
    >>> round(correlation_ratio(["a", "a", "b", "b"], [1.0, 1.0, 5.0, 5.0]), 3)
    1.0
    """
    return correlation_ratio_codes(_codes(categories), np.asarray(values, dtype=np.float64))
