"""Input checks at the public edge: turn array-likes into 1-D/2-D numpy arrays or say why not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput


def _example(values: np.ndarray, mask: np.ndarray) -> Any:
    idx = np.flatnonzero(mask)
    return values[idx[0]] if idx.size else None


def as_1d(name: str, values: Any) -> np.ndarray:
    """One value per row, no missing values (labels of any type, or numbers)."""
    if values is None:
        raise InvalidInput(f"{name} is required")
    if isinstance(values, (str, bytes)):
        raise InvalidInput(f"{name} must be one value per row (an array or list); got the text {values!r}")
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must be one value per row (1-D); got an array of shape {arr.shape}")
    missing = np.asarray(pd.isna(arr), dtype=bool)
    if missing.any():
        raise InvalidInput(
            f"{name} has {int(missing.sum())} missing value(s) (first at row {int(np.flatnonzero(missing)[0])}); "
            "drop or fill those rows first"
        )
    return _tidy_labels(arr)


def _tidy_labels(arr: np.ndarray) -> np.ndarray:
    """Whole-number floats (a label column read back with nulls) become integers."""
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    if arr.dtype.kind == "O":
        kinds = {type(v) for v in arr.tolist()}
        if kinds and all(issubclass(k, (bool, np.bool_)) for k in kinds):
            return arr.astype(bool)
        if kinds and all(issubclass(k, (int, np.integer)) and not issubclass(k, bool) for k in kinds):
            return arr.astype(np.int64)
        if kinds and all(issubclass(k, str) for k in kinds):
            return arr.astype(str)
    return arr


def as_numeric(name: str, values: Any, *, ndim: int | tuple[int, ...] = 1) -> np.ndarray:
    """Finite numbers, 1-D (or 2-D where allowed)."""
    if values is None:
        raise InvalidInput(f"{name} is required")
    if isinstance(values, (str, bytes)):
        raise InvalidInput(f"{name} must be numbers (an array or list); got the text {values!r}")
    arr = np.asarray(values)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim == 2 and arr.shape[1] == 1 and 1 in allowed:
        arr = arr[:, 0]
    if arr.ndim not in allowed:
        shape = "one number per row" if allowed == (1,) else "one row of numbers per row (2-D)"
        raise InvalidInput(f"{name} must be {shape}; got an array of shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError) as e:
            flat = arr.ravel()
            bad = next((v for v in flat.tolist() if not _is_number(v)), flat[0] if flat.size else None)
            raise InvalidInput(f"{name} must be numbers; got values such as {bad!r}") from e
    arr = arr.astype(float)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = bad if arr.ndim == 1 else bad.any(axis=1)
        raise InvalidInput(
            f"{name} has {int(rows.sum())} row(s) with missing or infinite values (first at row "
            f"{int(np.flatnonzero(rows)[0])}, value {_example(arr.ravel(), bad.ravel())!r}); drop or fill them first"
        )
    return arr


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def check_lengths(**arrays: Any) -> int:
    """All given arrays have the same number of rows; return it."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise InvalidInput(f"the inputs must have one entry per row, but {desc} rows")
    n = next(iter(lengths.values()), 0)
    if n == 0:
        raise InvalidInput("nothing to evaluate: the inputs have no rows")
    return n


def check_k(k: int | Sequence[int]) -> list[int]:
    """``k`` as a sorted list of distinct positive integers."""
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not ks or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in ks):
        raise InvalidInput(f"k must be a positive whole number (or a list of them); got {k!r}")
    return sorted({int(v) for v in ks})


def json_float(v: Any) -> float | None:
    """A finite float, or None (NaN and infinities are not JSON)."""
    if v is None:
        return None
    f = float(v)
    return f if np.isfinite(f) else None
