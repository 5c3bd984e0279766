"""Clustering metrics: silhouette, Davies-Bouldin, Calinski-Harabasz (and agreement with true labels)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from loopml.errors import InvalidInput
from loopml.evaluate._arrays import as_1d, as_numeric, check_lengths

#: silhouette is O(n²): beyond this many rows it is computed on a seeded sample
SILHOUETTE_SAMPLE = 10_000


def clustering_metrics(
    X: Any,
    labels: Any,
    *,
    y_true: Any = None,
    sample_size: int = SILHOUETTE_SAMPLE,
    seed: int = 0,
) -> dict[str, float | None]:
    """Internal quality of a clustering, and its agreement with known classes when given.

    Parameters
    ----------
    X
        The features the clustering used (rows × columns of numbers).
    labels
        The cluster of each row.
    y_true
        Known classes, if any: adds the adjusted Rand index and normalised mutual information.
    sample_size
        Silhouette on at most this many rows (a seeded sample; it is quadratic in rows).
    seed
        Seed of that sample.

    Returns
    -------
    dict
        ``silhouette`` (−1..1, higher is better), ``davies_bouldin`` (≥ 0, lower
        is better), ``calinski_harabasz`` (higher is better), ``n_clusters``, and
        with ``y_true`` ``adjusted_rand`` and ``nmi``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> m = clustering_metrics(X, [0, 0, 1, 1])
    >>> m["silhouette"] > 0.9, m["n_clusters"]
    (True, 2.0)
    """
    x = as_numeric("X", X, ndim=(1, 2))
    if x.ndim == 1:
        x = x[:, None]
    lab = as_1d("cluster labels (y_pred)", labels)
    yt = as_1d("y_true", y_true) if y_true is not None else None
    n = check_lengths(X=x, y_pred=lab, y_true=yt)
    k = len(np.unique(lab))
    if not 2 <= k <= n - 1:
        raise InvalidInput(
            f"clustering metrics need between 2 and n_rows − 1 = {n - 1} clusters; the labels hold {k}"
        )
    out: dict[str, float | None] = {
        "silhouette": float(skm.silhouette_score(
            x, lab, sample_size=sample_size if n > sample_size else None, random_state=seed)),
        "davies_bouldin": float(skm.davies_bouldin_score(x, lab)),
        "calinski_harabasz": float(skm.calinski_harabasz_score(x, lab)),
        "n_clusters": float(k),
    }
    if yt is not None:
        out["adjusted_rand"] = float(skm.adjusted_rand_score(yt, lab))
        out["nmi"] = float(skm.normalized_mutual_info_score(yt, lab))
    return out


def cluster_sizes(labels: Any) -> dict[str, list[Any]]:
    """Rows per cluster (for the report)."""
    values, counts = np.unique(as_1d("cluster labels", labels), return_counts=True)
    return {"labels": values.tolist(), "counts": [int(c) for c in counts]}
