"""Ranking and recommendation: precision@k, recall@k, NDCG@k and MAP@k per query, then averaged.

Two input shapes:

* **rows** (search, learning to rank): one row per (query, item) with its
  relevance (``y_true``, ≥ 0, graded or 0/1), the model's score (``y_score``)
  and the query or user id (``group``);
* **lists** (recommendation): per user, the relevant items (``y_true``, a
  collection) and the ranked recommendations (``y_pred``, a list).

Each query's items are ordered by score (ties keep the input order) and cut
at k. An item counts as relevant for precision, recall and MAP when its
relevance is above 0; NDCG uses the graded relevance. Precision@k divides by
k, recall@k by the query's number of relevant items, AP@k by
``min(k, relevant items)``. Queries without any relevant item are left out of
the averages (a note says how many).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import ndcg_score

from loopml.errors import InvalidInput
from loopml.evaluate._arrays import as_1d, as_numeric, check_k, check_lengths


def ranking_metrics(
    y_true: Any,
    y_score: Any = None,
    *,
    group: Any = None,
    k: int | Sequence[int] = 10,
    y_pred: Any = None,
    notes: list[str] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, float | None]:
    """Precision@k, recall@k, NDCG@k and MAP@k, averaged over queries (or users).

    Parameters
    ----------
    y_true
        Rows: the relevance of each row (≥ 0). Lists: per user, the collection of relevant items.
    y_score
        Rows: the model's score of each row (higher ranks first).
    group
        Rows: the query or user of each row (default: all rows are one query).
    k
        Cut-off, or several (e.g. ``[5, 10]``).
    y_pred
        Lists: per user, the recommended items, best first.
    notes, info
        Receive notes and counts (``queries``, ``queries_without_relevant``).

    Returns
    -------
    dict
        ``precision@k``, ``recall@k``, ``ndcg@k``, ``map@k`` for each k.

    Examples
    --------
    >>> m = ranking_metrics([3, 0, 1, 0, 2], [0.9, 0.8, 0.1, 0.7, 0.2], group=[1, 1, 1, 2, 2], k=2)
    >>> m["precision@2"], m["recall@2"]
    (0.5, 0.75)
    >>> ranking_metrics([{"a", "c"}], y_pred=[["a", "b", "c"]], k=2)["map@2"]
    0.5
    """
    ks = check_k(k)
    kmax = ks[-1]
    if y_score is not None:
        rel = as_numeric("y_true (relevance)", y_true)
        score = as_numeric("y_score", y_score)
        grp = as_1d("group", group) if group is not None else None
        check_lengths(y_true=rel, y_score=score, group=grp)
        if (rel < 0).any():
            raise InvalidInput(f"relevance (y_true) must be ≥ 0; got {float(rel.min())}")
        codes = pd.factorize(grp)[0] if grp is not None else np.zeros(len(rel), dtype=np.int64)
        gains, relevant = _from_rows(rel, score, codes, kmax)
    elif y_pred is not None:
        if group is not None:
            raise InvalidInput("group applies to rows with scores; lists of recommendations are one per user")
        gains, relevant = _from_lists(y_true, y_pred, kmax)
    else:
        raise InvalidInput("ranking needs y_score (a score per row, with group) or y_pred (a ranked list per user)")
    valid = relevant > 0
    n_valid = int(valid.sum())
    if info is not None:
        info.update(queries=len(relevant), queries_without_relevant=len(relevant) - n_valid)
    if n_valid == 0:
        raise InvalidInput("no query or user has a relevant item (relevance above 0); ranking metrics are undefined")
    if n_valid < len(relevant) and notes is not None:
        notes.append(f"{len(relevant) - n_valid} of {len(relevant)} queries have no relevant item and are left out")
    gains, relevant = gains[valid], relevant[valid]
    hit = gains[:, :kmax] > 0
    # the columns are already in ranked order: a strictly decreasing score keeps it for sklearn
    order_score = np.broadcast_to(-np.arange(gains.shape[1], dtype=float), gains.shape)
    out: dict[str, float | None] = {}
    for kk in ks:
        h = hit[:, :kk]
        hits = h.sum(axis=1)
        precision_at = np.cumsum(h, axis=1) / np.arange(1, kk + 1)
        ap = (precision_at * h).sum(axis=1) / np.minimum(kk, relevant)
        out[f"precision@{kk}"] = float(np.mean(hits / kk))
        out[f"recall@{kk}"] = float(np.mean(hits / relevant))
        out[f"ndcg@{kk}"] = float(ndcg_score(gains, order_score, k=kk))
        out[f"map@{kk}"] = float(np.mean(ap))
    return out


def _from_rows(rel: np.ndarray, score: np.ndarray, codes: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: the gains of its top-k items in ranked order, then its next best gains (for the ideal DCG)."""
    g = int(codes.max()) + 1
    order = np.lexsort((-score, codes))  # stable: ties keep the input order
    c, r = codes[order], rel[order]
    starts = np.searchsorted(c, np.arange(g))
    rank = np.arange(len(c)) - starts[c]
    gains = np.zeros((g, 2 * kmax))
    top = rank < kmax
    gains[c[top], rank[top]] = r[top]
    rest = ~top
    if rest.any():
        c2, r2 = c[rest], r[rest]
        o2 = np.lexsort((-r2, c2))
        c2, r2 = c2[o2], r2[o2]
        rank2 = np.arange(len(c2)) - np.searchsorted(c2, c2)
        keep = rank2 < kmax
        gains[c2[keep], kmax + rank2[keep]] = r2[keep]
    relevant = np.bincount(codes, weights=(rel > 0).astype(float), minlength=g)
    return gains, relevant


def _items(name: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    items = list(value)
    try:
        set(items)
    except TypeError as e:
        raise InvalidInput(f"{name} must hold item ids (numbers or text); got {items[:3]!r}") from e
    return items


def _from_lists(y_true: Any, y_pred: Any, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    truth = list(y_true) if not isinstance(y_true, (str, bytes)) else None
    recs = list(y_pred) if not isinstance(y_pred, (str, bytes)) else None
    if truth is None or recs is None:
        raise InvalidInput("y_true and y_pred must be one collection of items per user")
    check_lengths(y_true=truth, y_pred=recs)
    gains = np.zeros((len(truth), 2 * kmax))
    relevant = np.zeros(len(truth))
    for u, (want, got) in enumerate(zip(truth, recs, strict=True)):
        rel = set(_items("y_true", want))
        ranked = list(dict.fromkeys(_items("y_pred", got)))[:kmax]
        for j, item in enumerate(ranked):
            gains[u, j] = 1.0 if item in rel else 0.0
        missed = min(len(rel - set(ranked)), kmax)
        gains[u, kmax:kmax + missed] = 1.0
        relevant[u] = len(rel)
    return gains, relevant
