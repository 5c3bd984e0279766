"""Settings of a profile: sampling and the thresholds behind every warning."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from loopml.errors import InvalidInput


@dataclass(frozen=True)
class ProfileConfig:
    """How a profile samples and when it warns.

    Counts, missing values, distinct values, moments, quantiles, top values,
    histograms, outlier counts, missing patterns and duplicates are always
    exact. Correlations, the IsolationForest score and the target plots use a
    deterministic sample of at most ``sample_rows`` rows drawn with ``seed``.

    Parameters
    ----------
    sample_rows
        Rows above which the sampled analyses use a seeded random sample.
    seed
        Seed of the sample and of the IsolationForest.
    top_values
        Most frequent values listed per column.
    histogram_bins
        Bins of numeric histograms (integers with a smaller range get one bin per value).
    iqr_k
        IQR outlier fences: below ``Q1 - k·IQR`` or above ``Q3 + k·IQR``.
    z_threshold
        z-score outliers: ``|x - mean| > z_threshold · std``.
    iforest_trees
        Trees of the IsolationForest.
    iforest_threshold
        Anomaly score (0..1, higher is stranger) above which a row counts as anomalous.
    outlier_examples
        Example rows kept per column (the most extreme ones outside the IQR fences).
    high_missing
        Share of missing values that raises a warning.
    co_missing
        Jaccard overlap of two columns' missing rows that counts as "missing together".
    near_constant
        Share of the most frequent value that makes a column near-constant.
    high_cardinality
        Distinct values above which a text column is high-cardinality.
    id_unique_ratio
        Distinct / non-missing ratio above which an integer or text column looks like an ID.
    outliers
        Share of IQR outliers in a column that raises a note.
    skew
        Absolute skewness that raises a note.
    many_zeros
        Share of zeros that raises a note.
    correlation
        Absolute correlation (or Cramér's V, correlation ratio) between two features
        that raises a warning.
    leakage
        Association of a feature with the target that raises a possible-leakage warning.
    imbalance
        Share of the rarest class below which the target is called imbalanced.
    max_categories
        Text columns with more distinct values are left out of Cramér's V and the
        correlation ratio.
    max_correlation_columns
        At most this many numeric (and categorical) columns enter the heatmaps.
    scatter_points
        Points per target scatter plot.
    target_plots
        Features plotted against the target.
    top_pairs
        Most associated column pairs listed.
    max_classes
        Classes listed for a classification target.
    """

    sample_rows: int = 50_000
    seed: int = 0
    top_values: int = 10
    histogram_bins: int = 30
    iqr_k: float = 1.5
    z_threshold: float = 3.0
    iforest_trees: int = 100
    iforest_threshold: float = 0.6
    outlier_examples: int = 3
    high_missing: float = 0.2
    co_missing: float = 0.5
    near_constant: float = 0.95
    high_cardinality: int = 50
    id_unique_ratio: float = 0.95
    outliers: float = 0.05
    skew: float = 2.0
    many_zeros: float = 0.5
    correlation: float = 0.9
    leakage: float = 0.95
    imbalance: float = 0.1
    max_categories: int = 100
    max_correlation_columns: int = 60
    scatter_points: int = 1000
    target_plots: int = 4
    top_pairs: int = 15
    max_classes: int = 50

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(f"profile setting {f.name} must be a number, not {value!r}")
            if f.name != "seed" and value <= 0:
                raise InvalidInput(f"profile setting {f.name} must be positive, not {value!r}")
        if self.sample_rows < 10:
            raise InvalidInput(f"sample_rows must be at least 10, not {self.sample_rows}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)
