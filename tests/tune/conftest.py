"""Small seeded data and estimators for tuning tests (few rows, few boosting rounds)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.train._data import churn


@pytest.fixture(scope="session")
def churn_df() -> pd.DataFrame:
    """300 rows with a learnable 0/1 target ``y``."""
    return churn(300, seed=0)


@pytest.fixture(scope="session")
def churn_val() -> pd.DataFrame:
    """100 held-out rows of the same kind."""
    return churn(100, seed=1)
