"""Small seeded data with every kind of column the recipe steps read."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

CITIES = ["paris", "lyon", "nice", "lille"]
PLANS = ["basic", "pro", "max"]
WORDS = ["fast", "slow", "great", "price", "support", "bad", "love", "late", "refund", "app"]
START = pd.Timestamp("2024-01-01")


def make_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    amount = r.lognormal(3, 1, n)
    amount[r.random(n) < 0.1] = np.nan
    score = r.normal(0, 2, n)
    score[r.random(n) < 0.1] = np.nan
    city = r.choice(np.array([*CITIES, None], dtype=object), n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    texts = [" ".join(r.choice(WORDS, r.integers(1, 6))) for _ in range(n)]
    num_str = np.array([f"{v:.2f}" for v in r.normal(10, 3, n)], dtype=object)
    num_str[r.random(n) < 0.1] = "n/a"
    num_str[r.random(n) < 0.05] = None
    when = [(START + pd.Timedelta(days=int(d))).strftime("%Y-%m-%d") for d in r.integers(0, 300, n)]
    visits = r.integers(0, 20, n)
    y = (r.random(n) < 1 / (1 + np.exp(-(np.nan_to_num(score) + (city == "paris") - 0.3)))).astype(int)
    return pd.DataFrame({
        "customer": r.integers(0, 15, n),
        "ts": START + pd.to_timedelta(r.integers(0, 90 * 86400, n), unit="s"),
        "amount": amount,
        "visits": visits,
        "score": score,
        "city": pd.array(city, dtype="str"),
        "plan": pd.array(r.choice(PLANS, n), dtype="str"),
        "text": pd.array(texts, dtype="str"),
        "birth": pd.Timestamp("1950-01-01") + pd.to_timedelta(r.integers(0, 55 * 365, n), unit="D"),
        "when": pd.array(when, dtype="str"),
        "num_str": pd.array(num_str, dtype="str"),
        "y": y,
    })


def norm(v: Any) -> Any:
    """A value with every kind of missing as None and numpy scalars as Python ones."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return norm(v.item())
    return v


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: norm(v) for k, v in r.items()} for r in df.to_dict("records")]


def as_json(rec: dict[str, Any]) -> dict[str, Any]:
    """What a record looks like after a JSON round trip: dates as ISO text, missing as null."""
    return {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in
            ((k, norm(v)) for k, v in rec.items())}
