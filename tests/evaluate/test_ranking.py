from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score

from loopml import InvalidInput
from loopml.evaluate import evaluate_predictions, ranking_metrics


def test_rows_by_hand() -> None:
    # query a: ranked rel 3, 0, 1 (2 relevant); query b: ranked 0, 2 (1 relevant)
    rel = [3, 0, 1, 0, 2]
    score = [0.9, 0.8, 0.1, 0.7, 0.2]
    grp = ["a", "a", "a", "b", "b"]
    m = ranking_metrics(rel, score, group=grp, k=[1, 2, 3])
    assert m["precision@1"] == pytest.approx(0.5) and m["recall@1"] == pytest.approx(0.25)
    assert m["precision@2"] == pytest.approx(0.5) and m["recall@2"] == pytest.approx(0.75)
    # AP@3: a = (1/1 + 2/3) / 2, b = (1/2) / 1
    assert m["map@3"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)  # divides by k even for short queries
    ndcg_a = ndcg_score([[3, 0, 1]], [[0.9, 0.8, 0.1]], k=3)
    ndcg_b = ndcg_score([[0, 2]], [[0.7, 0.2]], k=3)
    assert m["ndcg@3"] == pytest.approx((ndcg_a + ndcg_b) / 2)


def test_ndcg_matches_sklearn_on_equal_queries() -> None:
    rng = np.random.default_rng(5)
    rel = rng.integers(0, 4, (40, 12))
    rel[:, 0] = np.maximum(rel[:, 0], 1)  # every query has a relevant item
    score = rng.random((40, 12))
    grp = np.repeat(np.arange(40), 12)
    m = ranking_metrics(rel.ravel(), score.ravel(), group=grp, k=[5, 12])
    assert m["ndcg@5"] == pytest.approx(ndcg_score(rel, score, k=5))
    assert m["ndcg@12"] == pytest.approx(ndcg_score(rel, score, k=12))
    # rows shuffled: the same answer (queries are found by id, not by position)
    order = rng.permutation(rel.size)
    m2 = ranking_metrics(rel.ravel()[order], score.ravel()[order], group=grp[order], k=[5, 12])
    assert m2 == pytest.approx(m)


def test_lists_for_recommendation() -> None:
    truth = [{"a", "c"}, ["x"], []]
    recs = [["a", "b", "c"], ["y", "z"], ["q"]]
    notes: list[str] = []
    info: dict[str, int] = {}
    m = ranking_metrics(truth, y_pred=recs, k=2, notes=notes, info=info)
    # user 0: hits a; user 1: none; user 2 has nothing relevant and is left out
    assert m["precision@2"] == pytest.approx((0.5 + 0) / 2)
    assert m["recall@2"] == pytest.approx((0.5 + 0) / 2)
    assert m["map@2"] == pytest.approx((0.5 + 0) / 2)
    assert m["ndcg@2"] == pytest.approx((ndcg_score([[1, 0, 1]], [[3, 2, 1]], k=2) + 0) / 2)
    assert info == {"queries": 3, "queries_without_relevant": 1}
    assert notes == ["1 of 3 queries have no relevant item and are left out"]


def test_relevant_items_beyond_k_count_in_the_ideal_dcg() -> None:
    # 1 of 3 relevant items in the top 2; the ideal ranking has 2 relevant in the top 2
    m = ranking_metrics([0, 1, 0, 1, 1], [5, 4, 3, 2, 1], k=2)
    assert m["ndcg@2"] == pytest.approx(ndcg_score([[0, 1, 0, 1, 1]], [[5, 4, 3, 2, 1]], k=2))
    assert m["recall@2"] == pytest.approx(1 / 3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1), st.integers(0, 4)), min_size=1, max_size=40),
       st.integers(1, 6))
def test_metrics_are_fractions_and_perfect_ranking_scores_one(rows: list[tuple[int, float, int]], k: int) -> None:
    rel = np.array([r[0] for r in rows])
    if not (rel > 0).any():
        rel[0] = 1
    grp = np.array([r[2] for r in rows])
    score = np.array([r[1] for r in rows])
    m = ranking_metrics(rel, score, group=grp, k=k)
    assert all(0 <= v <= 1 + 1e-9 for v in m.values() if v is not None)
    perfect = ranking_metrics(rel, rel + np.arange(len(rel)) * 1e-9, group=grp, k=k)
    assert perfect[f"ndcg@{k}"] == pytest.approx(1.0)
    assert perfect[f"map@{k}"] == pytest.approx(1.0)


def test_ranking_through_evaluate_and_bad_input() -> None:
    r = evaluate_predictions([1, 0, 1, 0], y_score=[0.9, 0.8, 0.2, 0.1], group=[1, 1, 2, 2], k=[1, 2])
    assert r.task == "ranking" and r.curves["at_k"]["k"] == [1, 2]
    assert set(r.headline) == {"ndcg@1", "ndcg@2", "map@1", "map@2", "precision@1", "precision@2",
                               "recall@1", "recall@2"}
    with pytest.raises(InvalidInput, match="k must be a positive whole number"):
        ranking_metrics([1, 0], [0.2, 0.1], k=0)
    with pytest.raises(InvalidInput, match=r"relevance .* must be ≥ 0"):
        ranking_metrics([1, -1], [0.2, 0.1])
    with pytest.raises(InvalidInput, match="no query or user has a relevant item"):
        ranking_metrics([0, 0], [0.2, 0.1])
    with pytest.raises(InvalidInput, match=r"y_true has 2, y_score has 3, group has 2 rows"):
        ranking_metrics([1, 0], [0.2, 0.1, 0.3], group=[1, 1])
