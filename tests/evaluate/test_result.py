from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopml import InvalidInput
from loopml.evaluate import EvaluationResult, evaluate_predictions, infer_task


@pytest.mark.parametrize(("y_true", "y_pred", "y_score", "kw", "task"), [
    ([0, 1, 1, 0], [0, 1, 0, 0], None, {}, "classification"),
    (["a", "b", "c"], ["a", "b", "b"], None, {}, "classification"),
    ([True, False], [True, True], None, {}, "classification"),
    ([0.0, 1.0, 1.0], None, [0.2, 0.8, 0.6], {}, "classification"),  # whole floats are labels
    ([1.5, 2.0, 3.1], [1.4, 2.2, 3.0], None, {}, "regression"),
    ([1, 2, 3], [1.2, 2.1, 2.9], None, {}, "regression"),
    (list(range(30)), list(range(30)), None, {}, "regression"),  # more than 20 distinct integers
    ([0, 1, 2], None, np.full((3, 3), 1 / 3), {}, "multiclass"),
    ([1, 0, 2], None, [0.3, 0.2, 0.1], {"group": [1, 1, 1]}, "ranking"),
    ([{"a"}, {"b"}], [["a"], ["c"]], None, {}, "ranking"),
    (pd.Series([["a"], ["b", "c"]]), [["a"], ["c"]], None, {}, "ranking"),
    (np.array([[0], [1], [1]]), [0, 1, 0], None, {}, "classification"),
    (None, [0, 1], None, {}, "clustering"),
])
def test_task_inference(y_true: object, y_pred: object, y_score: object, kw: dict[str, object], task: str) -> None:
    assert infer_task(y_true, y_pred, y_score, **kw) == task


def test_unknown_task_and_nothing_to_evaluate() -> None:
    with pytest.raises(InvalidInput, match=r"task must be one of auto, classification, binary, .*; got 'vision'"):
        evaluate_predictions([0, 1], [0, 1], task="vision")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="nothing to evaluate: the inputs have no rows"):
        evaluate_predictions([], [])
    with pytest.raises(InvalidInput, match="must be one value per row \\(1-D\\)"):
        evaluate_predictions(np.zeros((3, 2)), [0, 1, 0])


def test_result_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.4 * y + 0.6 * rng.random(200), 0, 1)
    r = evaluate_predictions(y, y_score=s, costs={"cost_fp": 1, "cost_fn": 4, "users_per_day": 10})
    text = r.to_json()
    assert "NaN" not in text and "Infinity" not in text
    back = EvaluationResult.from_json(text)
    assert back.to_json() == text
    assert back.threshold == r.threshold and back.metrics == r.metrics
    d = json.loads(text)
    assert set(d) >= {"task", "metrics", "curves", "confusion_matrix", "business", "threshold", "per_class"}
    assert d["labels"] == [0, 1] and d["pos_label"] == 1


def test_undefined_values_become_null() -> None:
    r = evaluate_predictions([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], task="regression")
    assert r.metrics["r2"] is None and json.loads(r.to_json())["metrics"]["r2"] is None
    assert r.greater_is_better("r2") and not r.greater_is_better("rmse")


def test_text_labels_survive_the_result() -> None:
    r = evaluate_predictions(["no", "yes", "yes", "no"], ["no", "yes", "no", "no"])
    assert r.task == "binary" and r.pos_label == "yes" and r.labels == ["no", "yes"]
    assert r.confusion_matrix == [[2, 0], [1, 1]]
    assert r.metrics["recall"] == 0.5
