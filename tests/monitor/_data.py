"""Generated data with known drift, after ../shared/bench/gen_data.py, small enough for tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

CARD = [3, 5, 10, 20, 50]
#: the features ``make(..., drift=True)`` changes
DRIFTED = {"num_00", "num_01", "num_02", "cat_0", "cat_1"}
FEATURES = [f"num_{i:02d}" for i in range(20)] + [f"cat_{i}" for i in range(5)]


def make(n: int, seed: int, drift: bool = False) -> pd.DataFrame:
    """20 numbers (some log-normal, 2% missing in num_00..num_04) and 5 categories.

    With ``drift``: num_00 mean +0.8, num_01 spread x2, num_02 12% missing,
    cat_0 frequencies reversed, cat_1 a new category in 15% of the rows.
    """
    r = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i in range(20):
        if i % 4 == 3:
            x = r.lognormal(mean=1.0 + i * 0.05, sigma=0.6, size=n)
        else:
            x = r.normal(loc=i * 1.5, scale=1.0 + i * 0.1, size=n)
        cols[f"num_{i:02d}"] = x
    if drift:
        cols["num_00"] = cols["num_00"] + 0.8
        cols["num_01"] = cols["num_01"] * 2.0 - cols["num_01"].mean()
    for i, k in enumerate(CARD):
        p = np.linspace(1, 2, k)
        p = p / p.sum()
        if drift and i == 0:
            p = p[::-1].copy()
        v = r.choice(np.array([f"c{i}_{j}" for j in range(k)], dtype=object), n, p=p)
        if drift and i == 1:
            v[r.random(n) < 0.15] = "c1_new"
        cols[f"cat_{i}"] = v
    df = pd.DataFrame(cols)
    for i in range(5):
        rate = 0.12 if drift and i == 2 else 0.02
        df.loc[r.random(n) < rate, f"num_{i:02d}"] = np.nan
    return df
