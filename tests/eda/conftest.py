"""Seeded frames for the EDA tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_frame(n: int = 2000, seed: int = 7) -> pd.DataFrame:
    """Columns with known properties: an ID, a constant, co-missing pair, a perfectly associated pair..."""
    r = np.random.default_rng(seed)
    x = r.normal(10.0, 2.0, n)
    x[r.random(n) < 0.05] = np.nan
    x[:3] = [40.0, -30.0, 35.0]  # planted outliers
    gone = r.random(n) < 0.1
    a = np.where(gone, np.nan, r.normal(size=n))
    b = np.where(gone, np.nan, r.normal(size=n))
    color = r.choice(np.array(["red", "green", "blue"], dtype=object), n)
    shade = pd.Series(color).map({"red": "dark", "green": "light", "blue": "mid"})
    label = (np.nan_to_num(x, nan=10.0) + r.normal(0, 1.0, n) > 10.5).astype(np.int64)
    return pd.DataFrame({
        "row_id": np.arange(n, dtype=np.int64) + 1000,
        "x": x,
        "skewed": r.lognormal(0.0, 1.0, n),
        "zeros": np.where(r.random(n) < 0.6, 0.0, r.normal(5, 1, n)),
        "count": r.poisson(3, n).astype(np.int64),
        "const": np.full(n, 7, dtype=np.int64),
        "a": a,
        "b": b,
        "color": color,
        "shade": shade,
        "flag": r.random(n) < 0.3,
        "when": pd.Timestamp("2025-01-01") + pd.to_timedelta(r.integers(0, 90 * 24, n), unit="h"),
        "label": label,
        "amount": 3.0 * np.nan_to_num(x, nan=10.0) + r.normal(0, 1.0, n),
    })


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return make_frame()
