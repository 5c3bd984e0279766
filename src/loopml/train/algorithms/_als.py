"""Recommendation from implicit feedback: alternating least squares with confidence weights.

The model of Hu, Koren and Volinsky (*Collaborative Filtering for Implicit
Feedback Datasets*, ICDM 2008): every (user, item) cell has a preference
``p = 1`` if the user interacted with the item (weight ``r > 0``) and ``0``
otherwise, trusted with confidence ``c = 1 + alpha * r`` (or
``1 + alpha * log(1 + r)``). ALS alternates exact least-squares solves of
the user factors ``X`` and the item factors ``Y`` that minimise

    sum_ui c_ui (p_ui - x_u . y_i)^2 + regularization * (|X|^2 + |Y|^2)

using the identity ``Y^T C^u Y = Y^T Y + Y^T (C^u - I) Y`` so each solve costs
time in the user's interactions only. Solves are batched (stacked
``numpy.linalg.solve``), with numpy and scipy.sparse only.

The model saves as ``factors.npz`` (the factors and the training
interactions, read back with ``allow_pickle=False``) and ``ids.json`` (the
user and item ids in factor order): no pickle anywhere.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.train.algorithms import register_algorithm
from loopml.train.algorithms._base import RECOMMENDATION, Algorithm, MetricCallback, check_fitted
from loopml.train.hyperparameters import Hyperparameter as H

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp
    from typing_extensions import Self

log = logging.getLogger(__name__)

#: the cut-off of the ranking metrics reported during training and in the final scores
K = 10
_FACTORS_FILE = "factors.npz"
_IDS_FILE = "ids.json"
_FORMAT_VERSION = 1
#: floats held by the per-block stack of k x k outer products (bounds memory of a solve step)
_BLOCK_FLOATS = 1 << 22
#: users scored at once when ranking every item
_SCORE_ROWS = 2048


@register_algorithm
class ALS(Algorithm):
    """Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren, Volinsky 2008).

    Reads interactions: a ``user`` and an ``item`` role column, and an
    optional weight (the ``weight`` role or, if none, the target column;
    without either every row counts 1 and repeated pairs add up).
    ``predict`` scores (user, item) pairs -- NaN where the user or the item
    was not in the training data -- and :meth:`recommend` ranks items for
    one user.

    Per iteration it reports ``train:loss`` (the objective per training
    interaction) and, with validation interactions, ``validation:precision_at_10``,
    ``validation:recall_at_10`` and ``validation:ndcg_at_10`` of the top 10
    items of each validation user among the items the user did not interact
    with in training (``_at_`` rather than ``@``: the characters run metrics allow).

    Examples
    --------
    >>> import pandas as pd
    >>> from loopml.train import get_algorithm
    >>> df = pd.DataFrame({"u": [1, 1, 2, 2, 3], "i": ["a", "b", "a", "b", "c"]})
    >>> als = get_algorithm("als")({"factors": 2, "iterations": 3}, problem_type="recommendation",
    ...                            roles={"user": "u", "item": "i"})
    >>> als = als.fit(df)
    >>> list(als.recommend(3, k=2, exclude_seen=False).columns)
    ['i', 'score']
    """

    name = "als"
    description = "Recommendation from implicit feedback: matrix factorisation by ALS (Hu/Koren/Volinsky)."
    problem_types = (RECOMMENDATION,)
    input_kind = "interactions"
    roles_doc: ClassVar[Mapping[str, str]] = {
        "user": "user id column",
        "item": "item id column",
        "weight": "interaction strength (count, seconds watched, ...); default: the target, else 1 per row",
    }
    required_roles: ClassVar[Mapping[str, tuple[str, ...]]] = {RECOMMENDATION: ("user", "item")}
    predict_roles = ("user", "item")
    iteration_metrics: ClassVar[Mapping[str, tuple[str, ...]]] = {
        RECOMMENDATION: (f"precision_at_{K}", f"recall_at_{K}", f"ndcg_at_{K}"),
    }
    libraries = ("scipy",)
    imports = ("scipy.sparse",)
    handles_missing = True
    categorical_encoding = "none"  # ids are ids: no recipe encodes them
    hyperparameters = (
        H("factors", "int", 32, low=1, high=1024, log=True, search=(8, 256),
          description="Latent factors per user and item."),
        H("regularization", "float", 0.01, low=0.0, high=1e6, log=True, search=(1e-4, 10.0),
          description="L2 penalty on the factors."),
        H("alpha", "float", 1.0, low=0.0, high=1e6, log=True, search=(0.1, 100.0),
          description="Confidence growth: c = 1 + alpha * weight (or alpha * log(1 + weight))."),
        H("iterations", "int", 15, low=1, high=1000, search=(5, 50),
          description="ALS sweeps (each solves every user, then every item)."),
        H("confidence", "categorical", "linear", choices=("linear", "log"),
          description="How weights become confidence: linear, or logarithmic for heavy-tailed counts."),
        H("init_scale", "float", 0.01, low=1e-8, high=10.0, tunable=False,
          description="Standard deviation of the random initial factors."),
    )

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    users_: list[Any]
    items_: list[Any]
    seen_: sp.csr_matrix

    # -- columns and ids -------------------------------------------------------------------------------
    def _column(self, X: pd.DataFrame, role: str) -> str:
        col = self.roles.get(role)
        if col is None:
            raise InvalidInput(f"{self.name} needs a {role} column: pass roles={{'{role}': COLUMN}} "
                               f"(--role {role}=COLUMN)")
        if col not in X.columns:
            raise InvalidInput(f"the data has no {role} column {col!r}; columns: "
                               f"{', '.join(map(str, X.columns))}")
        return col

    def _codes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """User and item codes of the rows of ``X`` (-1: not in the training data)."""
        check_fitted(self, "users_")
        return (self._lookup("user", _ids(X[self._column(X, "user")], "user")),
                self._lookup("item", _ids(X[self._column(X, "item")], "item")))

    def _lookup(self, role: str, ids: np.ndarray) -> np.ndarray:
        """Codes of normalised ``ids`` (-1 for ids not in the training data)."""
        import pandas as pd

        if not hasattr(self, "_index"):
            self._index = {"user": pd.Index(self.users_, dtype=object), "item": pd.Index(self.items_, dtype=object)}
        return np.asarray(self._index[role].get_indexer(pd.Index(ids, dtype=object)), dtype=np.int64)

    def _weights(self, X: pd.DataFrame, y: np.ndarray | None) -> np.ndarray:
        col = self.roles.get("weight")
        if col is not None:
            w = X[self._column(X, "weight")].to_numpy(dtype=np.float64, na_value=np.nan)
        elif y is not None:
            w = np.asarray(y, dtype=np.float64)
        else:
            return np.ones(len(X))
        if np.any(w < 0):
            raise InvalidInput(f"interaction weights must be >= 0 (the smallest is {np.nanmin(w):g}); "
                               "ALS reads them as strengths of implicit feedback")
        return w

    def _confidence(self, r: np.ndarray) -> np.ndarray:
        """``c - 1`` for weights ``r``: what the interactions add to the all-ones confidence."""
        alpha = float(self.params["alpha"])
        if self.params["confidence"] == "log":
            return alpha * np.log1p(r)
        return alpha * r

    # -- training ------------------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | None = None,
        *,
        callback: MetricCallback | None = None,
    ) -> Self:
        import pandas as pd
        import scipy.sparse as sp

        users = _ids(X[self._column(X, "user")], "user")
        items = _ids(X[self._column(X, "item")], "item")
        w = self._weights(X, y)
        keep = ~(pd.isna(users) | pd.isna(items) | np.isnan(w)) & (w > 0)
        dropped = int(len(X) - keep.sum())
        if dropped:
            log.info("ignoring %d interactions with a missing id or a weight that is missing or 0", dropped)
        if not keep.any():
            raise InvalidInput("the training data has no interactions (rows with a user, an item and a weight > 0)")
        ucodes, uniq_users = pd.factorize(users[keep])
        icodes, uniq_items = pd.factorize(items[keep])
        self.users_ = [_py(v) for v in uniq_users]
        self.items_ = [_py(v) for v in uniq_items]
        self._index = {"user": pd.Index(self.users_, dtype=object), "item": pd.Index(self.items_, dtype=object)}
        n_users, n_items = len(self.users_), len(self.items_)
        # repeated (user, item) pairs add up
        R = sp.csr_matrix((w[keep], (ucodes, icodes)), shape=(n_users, n_items), dtype=np.float64)
        R.sum_duplicates()
        self.seen_ = R
        C = R.copy()
        C.data = self._confidence(C.data)
        Ct = C.T.tocsr()
        log.info("ALS on %d users x %d items, %d interactions (density %.3g%%)", n_users, n_items, R.nnz,
                 100.0 * R.nnz / (n_users * n_items))

        val = None
        if X_val is not None:
            val = self._relevant(X_val, y_val)
            if not val[0].size:
                log.info("no validation interaction has a user and an item seen in training: "
                         "no precision_at_%d per iteration", K)
                val = None

        f = int(self.params["factors"])
        reg = float(self.params["regularization"])
        rng = np.random.default_rng(self.seed)
        scale = float(self.params["init_scale"])
        Xf = np.zeros((n_users, f))
        Yf = rng.normal(0.0, scale, size=(n_items, f))
        for it in range(1, int(self.params["iterations"]) + 1):
            Xf = als_half_step(C, Yf, reg)
            Yf = als_half_step(Ct, Xf, reg)
            if callback is not None:
                metrics = {"train:loss": als_loss(C, Xf, Yf, reg) / max(C.nnz, 1)}
                if val is not None:
                    metrics.update(_prefix(self._rank_metrics(*val, Xf, Yf), "validation"))
                callback(it, metrics)
        self.user_factors_ = Xf.astype(np.float32)
        self.item_factors_ = Yf.astype(np.float32)
        return self

    # -- predicting -------------------------------------------------------------------------------------
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Scores ``x_u . y_i`` of the (user, item) rows of ``X``; NaN where either was not in training."""
        u, i = self._codes(X)
        out = np.full(len(X), np.nan)
        ok = (u >= 0) & (i >= 0)
        if ok.any():
            out[ok] = np.einsum("ij,ij->i", self.user_factors_[u[ok]].astype(np.float64),
                                self.item_factors_[i[ok]].astype(np.float64))
        return out

    def predict_one(self, record: Mapping[str, Any]) -> Any:
        check_fitted(self, "user_factors_")
        u = self._code_one(record, "user")
        i = self._code_one(record, "item")
        if u < 0 or i < 0:
            return float("nan")
        return float(self.user_factors_[u].astype(np.float64) @ self.item_factors_[i].astype(np.float64))

    def _code_one(self, record: Mapping[str, Any], role: str) -> int:
        col = self._role_name(role)
        if col not in record:
            raise InvalidInput(f"the record has no field {col!r}, the {role} id of this model")
        return int(self._lookup(role, np.array([_py(record[col])], dtype=object))[0])

    def recommend(
        self,
        user: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        unknown: str = "error",
    ) -> pd.DataFrame:
        """The ``k`` best items for one user, best first.

        Parameters
        ----------
        user
            A user id as in the training data.
        k
            How many items.
        exclude_seen
            Leave out items the user interacted with in training.
        unknown
            For a user not in the training data: ``"error"`` (raise NotFound)
            or ``"popular"`` (the items with the most interactions, score NaN).

        Returns
        -------
        pandas.DataFrame
            Columns: the item column (its name in the training data) and ``score``.
        """
        check_fitted(self, "user_factors_")
        out = self.recommend_many([user], k, exclude_seen=exclude_seen, unknown=unknown)
        return out.drop(columns=[self._role_name("user"), "rank"]).reset_index(drop=True)

    def recommend_many(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        unknown: str = "error",
    ) -> pd.DataFrame:
        """The ``k`` best items of each user as one frame (user, item, rank, score); see :meth:`recommend`."""
        import pandas as pd

        check_fitted(self, "user_factors_")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidInput(f"k must be a positive integer, got {k!r}")
        if unknown not in ("error", "popular"):
            raise InvalidInput(f"unknown={unknown!r} must be 'error' or 'popular'")
        ucol, icol = self._role_name("user"), self._role_name("item")
        ids = [_py(u) for u in (list(users) if not isinstance(users, (str, bytes)) else [users])]
        codes = self._lookup("user", np.array(ids, dtype=object))
        missing = [u for u, c in zip(ids, codes.tolist(), strict=True) if c < 0]
        if missing and unknown == "error":
            raise NotFound(
                f"user {missing[0]!r} was not in the training data of this {self.name} model "
                f"({len(self.users_)} users, e.g. {', '.join(map(repr, self.users_[:3]))}); "
                "pass unknown='popular' to get the most popular items for new users"
            )
        k = min(int(k), len(self.items_))
        known = codes[codes >= 0]
        top, scores = self._top_k(known, k, exclude_seen=exclude_seen)
        popular = np.argsort(-np.asarray(self.seen_.getnnz(axis=0)), kind="stable")[:k]
        frames = []
        row = 0
        for u, c in zip(ids, codes.tolist(), strict=True):
            if c >= 0:
                sel = top[row][np.isfinite(scores[row])]
                sc = scores[row][np.isfinite(scores[row])]
                row += 1
            else:
                sel, sc = popular, np.full(len(popular), np.nan)
            frames.append(pd.DataFrame({ucol: pd.Series([u] * len(sel), dtype=object),
                                        icol: pd.Series([self.items_[j] for j in sel], dtype=object),
                                        "rank": np.arange(1, len(sel) + 1), "score": sc}))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            {ucol: [], icol: [], "rank": [], "score": []})

    def _role_name(self, role: str) -> str:
        return self.roles.get(role, role)

    def _top_k(
        self, codes: np.ndarray, k: int, *, exclude_seen: bool, keep: list[np.ndarray] | None = None,
        X: np.ndarray | None = None, Y: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item codes and scores for user ``codes`` (excluded items score -inf).

        ``keep[j]``: items of user ``codes[j]`` not to exclude even if seen in training.
        """
        Xf = self.user_factors_ if X is None else X
        Yf = self.item_factors_ if Y is None else Y
        top = np.zeros((len(codes), k), dtype=np.int64)
        best = np.zeros((len(codes), k))
        for s in range(0, len(codes), _SCORE_ROWS):
            block = codes[s:s + _SCORE_ROWS]
            S = np.asarray(Xf[block], dtype=np.float64) @ np.asarray(Yf, dtype=np.float64).T
            if exclude_seen:
                kept_rows = kept_cols = kept = None
                if keep is not None:
                    parts = keep[s:s + len(block)]
                    kept_rows = np.repeat(np.arange(len(block)), [len(p) for p in parts])
                    kept_cols = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
                    kept = S[kept_rows, kept_cols]
                seen = self.seen_[block].tocoo()
                S[seen.row, seen.col] = -np.inf
                if kept is not None:
                    S[kept_rows, kept_cols] = kept
            if k < S.shape[1]:
                part = np.argpartition(-S, k - 1, axis=1)[:, :k]
            else:
                part = np.tile(np.arange(S.shape[1]), (len(block), 1))
            vals = np.take_along_axis(S, part, axis=1)
            order = np.lexsort((part, -vals), axis=1)  # best first; ties to the lower item code
            top[s:s + len(block)] = np.take_along_axis(part, order, axis=1)
            best[s:s + len(block)] = np.take_along_axis(vals, order, axis=1)
        return top, best

    # -- metrics -------------------------------------------------------------------------------------
    def _relevant(self, X: pd.DataFrame, y: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Users of ``X`` known to the model, with their known items of positive weight."""
        u, i = self._codes(X)
        w = self._weights(X, y)
        ok = (u >= 0) & (i >= 0) & ~np.isnan(w) & (w > 0)
        if not ok.any():
            return np.zeros(0, dtype=np.int64), []
        u, i = u[ok], i[ok]
        order = np.lexsort((i, u))
        u, i = u[order], i[order]
        users, starts = np.unique(u, return_index=True)
        groups = [np.unique(g) for g in np.split(i, starts[1:])]
        return users, groups

    def _rank_metrics(
        self, users: np.ndarray, relevant: list[np.ndarray], X: np.ndarray | None = None,
        Y: np.ndarray | None = None,
    ) -> dict[str, float]:
        """precision, recall and NDCG at K, leaving out items seen in training but not being evaluated."""
        k = min(K, len(self.items_))
        top, scores = self._top_k(users, k, exclude_seen=True, keep=relevant, X=X, Y=Y)
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        prec = rec = ndcg = 0.0
        for r, rel in enumerate(relevant):
            hit = np.isin(top[r], rel) & np.isfinite(scores[r])
            n_hit = float(hit.sum())
            prec += n_hit / K
            rec += n_hit / len(rel)
            ndcg += float(disc[hit].sum() / disc[: min(len(rel), k)].sum())
        n = max(len(relevant), 1)
        return {f"precision_at_{K}": prec / n, f"recall_at_{K}": rec / n, f"ndcg_at_{K}": ndcg / n}

    def score(self, X: pd.DataFrame, y: np.ndarray | None) -> dict[str, float]:
        """Ranking metrics of the interactions in ``X`` (keys without a prefix).

        For each user of ``X`` known to the model, the top 10 items among
        those it did not interact with in training -- plus the ones in ``X``
        -- are compared with the user's items in ``X``: ``precision_at_10``,
        ``recall_at_10``, ``ndcg_at_10``, and ``coverage`` (the share of the rows of
        ``X`` whose user and item the model knows).
        """
        u, i = self._codes(X)
        users, relevant = self._relevant(X, y)
        out = {"coverage": float(np.mean((u >= 0) & (i >= 0))) if len(X) else 0.0}
        if len(users):
            out.update(self._rank_metrics(users, relevant))
        return out

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        check_fitted(self, "user_factors_")
        R = self.seen_
        np.savez(path / _FACTORS_FILE, user_factors=self.user_factors_, item_factors=self.item_factors_,
                 seen_indptr=R.indptr.astype(np.int64), seen_indices=R.indices.astype(np.int64),
                 seen_data=R.data.astype(np.float64))
        doc = {"format_version": _FORMAT_VERSION, "users": self.users_, "items": self.items_}
        (path / _IDS_FILE).write_text(json.dumps(doc, allow_nan=False))

    def load(self, path: Path) -> Self:
        import pandas as pd
        import scipy.sparse as sp

        doc = json.loads((path / _IDS_FILE).read_text())
        if doc.get("format_version") != _FORMAT_VERSION:
            raise InvalidInput(f"{path / _IDS_FILE} has format version {doc.get('format_version')}; this loopml "
                               f"reads version {_FORMAT_VERSION}")
        with np.load(path / _FACTORS_FILE, allow_pickle=False) as z:
            U, V = z["user_factors"], z["item_factors"]
            indptr, indices, data = z["seen_indptr"], z["seen_indices"], z["seen_data"]
        users, items = list(doc["users"]), list(doc["items"])
        if U.shape[0] != len(users) or V.shape[0] != len(items) or U.shape[1] != V.shape[1]:
            raise IntegrityError(f"the factors in {path} do not match its id maps "
                                 f"({U.shape} users, {V.shape} items, {len(users)} / {len(items)} ids)")
        self.user_factors_, self.item_factors_ = U, V
        self.users_, self.items_ = users, items
        self._index = {"user": pd.Index(users, dtype=object), "item": pd.Index(items, dtype=object)}
        self.seen_ = sp.csr_matrix((data, indices, indptr), shape=(len(users), len(items)))
        return self


# -- the maths: pure functions of sparse matrices and factors -------------------------------------------------
def als_half_step(C: sp.csr_matrix, Y: np.ndarray, regularization: float) -> np.ndarray:
    """Solve every row's factors given the other side's factors ``Y`` (one half of an ALS sweep).

    Parameters
    ----------
    C
        Rows x columns, CSR, holding ``c - 1`` (``alpha * weight``) for each interaction.
    Y
        The column factors, shape ``(columns, f)``.
    regularization
        The L2 penalty ``lambda``.

    Returns
    -------
    numpy.ndarray
        Row factors ``x_u = (Y^T Y + Y^T (C^u - I) Y + lambda I)^-1 Y^T C^u p(u)``, shape ``(rows, f)``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> C = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 0.0]]))
    >>> als_half_step(C, np.eye(2), 0.0).round(3).tolist()
    [[1.0, 0.0], [0.0, 0.0]]
    """
    n, f = C.shape[0], Y.shape[1]
    YtY = Y.T @ Y
    base = YtY + regularization * np.eye(f)
    out = np.zeros((n, f))
    indptr, indices, data = C.indptr, C.indices, C.data
    counts = np.diff(indptr)
    per_block = max(1, _BLOCK_FLOATS // (f * f))
    r0 = 0
    while r0 < n:
        # rows whose interactions fit the block budget (at least one row)
        r1 = int(np.searchsorted(indptr, indptr[r0] + per_block, side="right")) - 1
        r1 = min(max(r1, r0 + 1), n)
        rows = np.arange(r0, r1)[counts[r0:r1] > 0]
        if rows.size:
            s, e = indptr[r0], indptr[r1]
            Yi = Y[indices[s:e]]
            c1 = data[s:e]
            starts = indptr[rows] - s
            A = base + np.add.reduceat((c1[:, None] * Yi)[:, :, None] * Yi[:, None, :], starts, axis=0)
            b = np.add.reduceat((1.0 + c1)[:, None] * Yi, starts, axis=0)
            out[rows] = _solve(A, b)
        r0 = r1
    return out


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(np.linalg.solve(A, b[..., None])[..., 0])
    except np.linalg.LinAlgError:  # singular without regularization: least squares, row by row
        return np.stack([np.linalg.lstsq(a, v, rcond=None)[0] for a, v in zip(A, b, strict=True)])


def als_loss(C: sp.csr_matrix, X: np.ndarray, Y: np.ndarray, regularization: float) -> float:
    """The ALS objective ``sum_ui c_ui (p_ui - x_u . y_i)^2 + lambda (|X|^2 + |Y|^2)``.

    Computed without the dense matrix: ``sum_all s^2 = trace(X^T X Y^T Y)``
    plus, over the interactions, ``c (1 - s)^2 - s^2``.
    """
    rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    s = np.einsum("ij,ij->i", X[rows], Y[C.indices])
    total = float(np.sum((X.T @ X) * (Y.T @ Y)))
    total += float(np.sum((1.0 + C.data) * (1.0 - s) ** 2 - s**2))
    total += regularization * float(np.sum(X**2) + np.sum(Y**2))
    return total


# -- ids -------------------------------------------------------------------------------------------------
def _py(v: Any) -> Any:
    """An id as a JSON-safe Python value: integral numbers become int, the rest str."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return int(v)
    return str(v)


def _ids(s: pd.Series, role: str) -> np.ndarray:
    """A column of ids as an object array of int / str (None where missing)."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(s.dtype) and not s.hasnans:
        return np.asarray(s.to_numpy(dtype=np.int64), dtype=object)
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = v[~np.isnan(v)]
        if finite.size and not np.all(np.equal(np.mod(finite, 1), 0)):
            raise InvalidInput(f"the {role} ids hold fractional numbers ({finite[np.mod(finite, 1) != 0][0]:g}); "
                               "ids must be integers or text")
    return np.array([_py(v) for v in s.tolist()], dtype=object)


def _prefix(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}:{k}": float(v) for k, v in metrics.items()}


__all__ = ["ALS", "als_half_step", "als_loss"]
