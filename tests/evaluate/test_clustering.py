from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import make_blobs

from loopml import InvalidInput
from loopml.evaluate import clustering_metrics, evaluate_predictions


def test_clustering_metrics_match_sklearn() -> None:
    X, y = make_blobs(n_samples=300, centers=3, random_state=0)
    labels = (y + 1) % 3  # same partition, other names
    m = clustering_metrics(X, labels, y_true=y)
    assert m["silhouette"] == pytest.approx(skm.silhouette_score(X, labels))
    assert m["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(X, labels))
    assert m["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(X, labels))
    assert m["adjusted_rand"] == pytest.approx(1.0) and m["nmi"] == pytest.approx(1.0)
    assert m["n_clusters"] == 3


def test_silhouette_is_sampled_on_large_data() -> None:
    X, y = make_blobs(n_samples=400, centers=2, random_state=1)
    m = clustering_metrics(X, y, sample_size=100, seed=3)
    assert m["silhouette"] == pytest.approx(skm.silhouette_score(X, y, sample_size=100, random_state=3))


def test_evaluate_clustering_and_bad_input() -> None:
    X, y = make_blobs(n_samples=60, centers=2, random_state=2)
    r = evaluate_predictions(None, y, X=X)
    assert r.task == "clustering" and r.curves["cluster_sizes"]["counts"] == [30, 30]
    with pytest.raises(InvalidInput, match="between 2 and n_rows − 1 = 59 clusters; the labels hold 1"):
        clustering_metrics(X, np.zeros(60, int))
    with pytest.raises(InvalidInput, match="clustering needs the features X"):
        evaluate_predictions(None, y, task="clustering")
    with pytest.raises(InvalidInput, match=r"X has 60, y_pred has 59 rows"):
        clustering_metrics(X, y[:-1])
