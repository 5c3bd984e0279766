from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from loopml import Conflict, InvalidInput, NotFound
from loopml.evaluate import (
    MetricRegistry,
    default_registry,
    evaluate_predictions,
    register_metric,
    unregister_metric,
)


@pytest.fixture
def reg() -> MetricRegistry:
    return MetricRegistry()


@pytest.fixture
def global_metric() -> Iterator[str]:
    register_metric("share_of_ones", lambda t, p: float(np.mean(p == 1)), task="classification")
    yield "share_of_ones"
    unregister_metric("share_of_ones")


def test_registered_metric_is_computed_alongside(global_metric: str) -> None:
    r = evaluate_predictions([0, 1, 1, 0], [0, 1, 1, 1])
    assert r.metrics[global_metric] == 0.75 and r.custom[global_metric]["greater_is_better"]
    assert "accuracy" in r.metrics
    # other tasks do not get it
    assert global_metric not in evaluate_predictions([1.5, 2.5, 3.0], [1.0, 2.0, 3.0]).metrics
    # an explicit, empty registry leaves it out
    assert global_metric not in evaluate_predictions([0, 1], [0, 1], registry=MetricRegistry()).metrics


def test_needs_scores_features_and_direction(reg: MetricRegistry) -> None:
    reg.register("top_score", lambda t, s: float(s.max()), task="binary", needs="score")
    reg.register("worst", lambda t, p: float(np.max(np.abs(t - p))), task=("regression", "forecasting"),
                 greater_is_better=False)
    reg.register("width", lambda X, labels: float(X.shape[1]), task="clustering", needs="features")
    r = evaluate_predictions([0, 1, 1], y_score=[0.2, 0.9, 0.7], registry=reg)
    assert r.metrics["top_score"] == 0.9
    without = evaluate_predictions([0, 1, 1], [0, 1, 0], registry=reg)
    assert "top_score" not in without.metrics and any("'top_score' needs y_score" in w for w in without.warnings)
    reg_r = evaluate_predictions([1.0, 2.0, 4.5], [1.5, 2.0, 3.0], registry=reg)
    assert reg_r.metrics["worst"] == 1.5 and not reg_r.greater_is_better("worst")
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.2]])
    assert evaluate_predictions(None, [0, 0, 1, 1], X=X, registry=reg).metrics["width"] == 2.0


def test_registry_rules(reg: MetricRegistry) -> None:
    reg.register("m", lambda t, p: 1.0)
    with pytest.raises(Conflict, match="already registered; pass replace=True"):
        reg.register("m", lambda t, p: 2.0)
    reg.register("m", lambda t, p: 2.0, replace=True)
    assert reg.get("m").fn(None, None) == 2.0 and "m" in reg and len(reg) == 1
    with pytest.raises(Conflict, match="'roc_auc' is a built-in metric"):
        reg.register("roc_auc", lambda t, p: 1.0)
    with pytest.raises(Conflict, match="built-in"):
        reg.register("ndcg@5", lambda t, p: 1.0)
    with pytest.raises(InvalidInput, match="metric name 'bad name!' is not allowed"):
        reg.register("bad name!", lambda t, p: 1.0)
    with pytest.raises(InvalidInput, match="task must be one of"):
        reg.register("x", lambda t, p: 1.0, task="vision")
    with pytest.raises(InvalidInput, match="needs must be"):
        reg.register("x", lambda t, p: 1.0, needs="labels")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="fn must be callable"):
        reg.register("x", 3)  # type: ignore[arg-type]
    reg.unregister("m")
    with pytest.raises(NotFound, match="no custom metric named 'm'"):
        reg.unregister("m")
    assert "share_of_ones" not in default_registry


def test_a_failing_metric_names_itself(reg: MetricRegistry) -> None:
    reg.register("boom", lambda t, p: 1 / 0)
    with pytest.raises(InvalidInput, match="custom metric 'boom' failed: ZeroDivisionError"):
        evaluate_predictions([0, 1], [0, 1], registry=reg)
    reg.register("text", lambda t, p: "high", replace=False)
    reg.unregister("boom")
    with pytest.raises(InvalidInput, match="custom metric 'text' must return a number; it returned 'high'"):
        evaluate_predictions([0, 1], [0, 1], registry=reg)
