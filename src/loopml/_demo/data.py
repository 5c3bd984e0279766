"""Generated customer-churn data for the demo, the examples and the end-to-end test.

:func:`make_churn` draws customers with numeric and categorical columns and a
churn label from a known model. ``drift=True`` draws the same columns as they
look after the market changed: higher monthly charges, a new ``enterprise``
plan, and a different reason to churn (long-standing customers on high
charges now leave; support calls no longer matter), so a model trained on the
old data ranks the new customers poorly and a model retrained on new labelled
data beats it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: the columns a churn model reads (what the endpoint receives)
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract", "plan", "region"]
#: the label
TARGET = "churn"
PLANS = ["basic", "plus", "premium"]
#: the plan that only appears in drifted data
NEW_PLAN = "enterprise"
CONTRACTS = ["monthly", "annual", "two_year"]
REGIONS = ["north", "south", "east", "west"]


def make_churn(
    n: int,
    seed: int,
    drift: bool = False,
    *,
    broken: float = 0.0,
    first_id: int = 0,
) -> pd.DataFrame:
    """Customers with a churn label, before or after a drift.

    Parameters
    ----------
    n
        Rows.
    seed
        Seed of the random generator (same arguments, same rows).
    drift
        Draw the drifted population: ``monthly_charges`` about 25 higher, the
        new plan ``enterprise`` on about 20% of the rows, and churn driven by
        tenure and charges instead of support calls.
    broken
        Share of rows whose ``monthly_charges`` is set to -1 (bad records for
        validation on arrival to quarantine).
    first_id
        The first ``customer_id`` (ids are ``first_id .. first_id + n - 1``).

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``event_time``, the :data:`FEATURES` and :data:`TARGET` (0/1).

    Examples
    --------
    >>> df = make_churn(500, seed=1)
    >>> list(df.columns)[:3], len(df), sorted(df["plan"].unique())
    (['customer_id', 'event_time', 'tenure_months'], 500, ['basic', 'plus', 'premium'])
    >>> "enterprise" in set(make_churn(500, seed=1, drift=True)["plan"])
    True
    """
    r = np.random.default_rng(seed)
    tenure = r.integers(1, 72, n)
    charges = r.normal(90.0 if drift else 65.0, 20.0, n).clip(5.0, None).round(2)
    calls = r.poisson(1.5, n)
    contract = r.choice(np.array(CONTRACTS, dtype=object), n, p=[0.5, 0.3, 0.2])
    plans = [*PLANS, NEW_PLAN] if drift else PLANS
    plan = r.choice(np.array(plans, dtype=object), n, p=[0.4, 0.25, 0.15, 0.2] if drift else [0.5, 0.3, 0.2])
    region = r.choice(np.array(REGIONS, dtype=object), n)
    monthly = contract == "monthly"
    if drift:
        # a competitor courts loyal, high-paying customers: tenure and charges now push churn up
        logit = (-1.0 + 0.05 * (tenure - 36) + 0.06 * (charges - 90.0) + 1.2 * (plan == NEW_PLAN)
                 + 0.3 * monthly)
    else:
        logit = -1.2 + 0.6 * (calls - 1.5) - 0.05 * (tenure - 36) + 0.02 * (charges - 65.0) + 0.9 * monthly
    churn = (r.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    df = pd.DataFrame({
        "customer_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "event_time": pd.Timestamp("2025-01-01") + pd.to_timedelta(r.integers(0, 365 * 86400, n), unit="s"),
        "tenure_months": tenure.astype(np.int64),
        "monthly_charges": charges,
        "support_calls": calls.astype(np.int64),
        "contract": contract,
        "plan": plan,
        "region": region,
        TARGET: churn,
    })
    if broken > 0:
        df.loc[r.random(n) < broken, "monthly_charges"] = -1.0
    return df


__all__ = ["CONTRACTS", "FEATURES", "NEW_PLAN", "PLANS", "REGIONS", "TARGET", "make_churn"]
