"""Seeded data and the customer group shared by the feature-store tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.features import FeatureStore


def events(n: int, ids: int, seed: int) -> pd.DataFrame:
    """Seeded feature rows: ``n`` events over ``ids`` customers in 2025."""
    r = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": r.integers(0, ids, n),
        "event_time": pd.Timestamp("2025-01-01", tz="UTC")
        + pd.to_timedelta(r.integers(0, 365 * 24 * 3600, n), unit="s"),
        "spend": r.normal(100, 20, n).round(2),
        "visits": r.integers(0, 50, n),
        "plan": r.choice(["basic", "pro", "team"], n),
    })


SPEC = {"spend": "fractional", "visits": "integral", "plan": "string"}


def make_group(store: FeatureStore, name: str = "cust", **kwargs: object) -> None:
    """Create the customer group used by most tests."""
    store.create_group(name, record_id="customer_id", event_time="event_time", features=SPEC,
                       id_type="integral", **kwargs)  # type: ignore[arg-type]
