"""Algorithms on scikit-learn: linear learner, random forest, k-NN, k-means, PCA, isolation forest.

Models are saved with skops, and loaded only when every type in the file is
on the algorithm's explicit trusted list (never an unverified pickle).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from loopml.errors import IntegrityError, InvalidInput
from loopml.train.algorithms import register_algorithm
from loopml.train.algorithms._base import (
    ANOMALY_DETECTION,
    BINARY,
    CLASSIFICATION,
    CLUSTERING,
    DIMENSIONALITY_REDUCTION,
    MULTICLASS,
    REGRESSION,
    MetricCallback,
    TabularAlgorithm,
    check_fitted,
    labels_from_proba,
)
from loopml.train.hyperparameters import Hyperparameter as H

_MODEL_FILE = "model.skops"
#: types skops does not trust by default that our estimators contain
_PIPELINE_TYPES = ("numpy.dtype",)
_TREE_TYPES = ("sklearn.tree._tree.Tree",)
_NEIGHBOR_TYPES = (
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
)


class SklearnAlgorithm(TabularAlgorithm):
    """A scikit-learn estimator behind the Algorithm contract, persisted with skops.

    Subclasses implement :meth:`build` and list in :attr:`trusted_types` the
    types their saved estimator may contain beyond what skops trusts by default.
    """

    dtype: ClassVar[type] = np.float64
    libraries = ("scikit-learn", "skops")
    imports = ("sklearn.pipeline", "skops.io")
    handles_missing = True
    #: extra types allowed in the saved file
    trusted_types: ClassVar[tuple[str, ...]] = ()

    estimator_: Any

    @abstractmethod
    def build(self) -> Any:
        """A new, unfitted scikit-learn estimator configured from ``self.params``."""

    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        est = self.build()
        if y is None or self.problem_type in (CLUSTERING, DIMENSIONALITY_REDUCTION, ANOMALY_DETECTION):
            est.fit(X)
        else:
            est.fit(X, y)
        self.estimator_ = _single_threaded(est)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "estimator_")
        if self.problem_type in CLASSIFICATION:
            return labels_from_proba(self.proba_matrix(X))
        return np.asarray(self.estimator_.predict(X))

    def proba_matrix(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "estimator_")
        if self.problem_type not in CLASSIFICATION:
            return super().proba_matrix(X)
        return _full_proba(self.estimator_, self.estimator_.predict_proba(X), self.n_classes)

    def save_model(self, path: Path) -> None:
        import skops.io as sio

        sio.dump(self.estimator_, path / _MODEL_FILE)

    def load_model(self, path: Path) -> None:
        import skops.io as sio

        file = path / _MODEL_FILE
        untrusted = sio.get_untrusted_types(file=file)
        refused = sorted(set(untrusted) - set(self.trusted_types) - set(_PIPELINE_TYPES))
        if refused:
            raise IntegrityError(
                f"{file} holds types that {self.name} does not trust ({', '.join(refused)}); "
                "refusing to load it"
            )
        self.estimator_ = _single_threaded(sio.load(file, trusted=untrusted))


def _single_threaded(est: Any) -> Any:
    """Predict on one thread: forests sum tree outputs in thread order, so threads change the last bits."""
    if hasattr(est, "n_jobs"):
        est.n_jobs = None
    return est


def _full_proba(est: Any, proba: np.ndarray, n_classes: int | None) -> np.ndarray:
    """Probabilities with a column for every class code, even ones missing from the training rows."""
    classes = getattr(est, "classes_", None)
    if classes is None or n_classes is None or len(classes) == n_classes:
        return np.asarray(proba, dtype=np.float64)
    out = np.zeros((len(proba), n_classes))
    out[:, np.asarray(classes, dtype=np.int64)] = proba
    return out


def _prep(steps: list[tuple[str, Any]], *, impute: bool, scale: bool) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pre: list[tuple[str, Any]] = []
    if impute:
        pre.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
    if scale:
        pre.append(("scale", StandardScaler()))
    return Pipeline(pre + steps) if pre else steps[0][1]


_NORMALIZE = H("normalize", "bool", True, tunable=False,
               description="Standardise features (missing values are imputed with the median first).")


@register_algorithm
class Linear(SklearnAlgorithm):
    """The linear learner: logistic regression for classes, ridge / elastic net for values."""

    name = "linear"
    description = "Linear learner: logistic regression (classification), ridge or elastic net (regression)."
    problem_types = (BINARY, MULTICLASS, REGRESSION)
    categorical_encoding = "one_hot"
    hyperparameters = (
        H("l2", "float", 1.0, low=0.0, high=1e6, log=True, search=(1e-4, 100.0),
          description="L2 penalty (classification: C = 1 / (l1 + l2); regression: ridge alpha)."),
        H("l1", "float", 0.0, low=0.0, high=1e6, log=True, search=(1e-4, 10.0),
          description="L1 penalty (elastic net when > 0)."),
        H("max_iter", "int", 1000, low=1, high=1_000_000, tunable=False, description="Solver iterations."),
        H("fit_intercept", "bool", True, tunable=False, description="Learn a bias term."),
        H("class_weight", "categorical", "none", choices=("none", "balanced"), tunable=False,
          problem_types=(BINARY, MULTICLASS), description="Reweight classes inversely to their frequency."),
        _NORMALIZE,
    )
    trusted_types = _PIPELINE_TYPES

    def build(self) -> Any:
        from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge

        p = self.params
        l1, l2 = p["l1"], p["l2"]
        total = l1 + l2
        model: Any
        if self.problem_type in CLASSIFICATION:
            model = LogisticRegression(
                C=(1.0 / total) if total > 0 else np.inf, l1_ratio=(l1 / total) if total > 0 else 0.0,
                solver="saga" if l1 > 0 else "lbfgs", max_iter=p["max_iter"], fit_intercept=p["fit_intercept"],
                class_weight=None if p["class_weight"] == "none" else "balanced", random_state=self.seed,
            )
        elif l1 > 0:
            model = ElasticNet(alpha=total, l1_ratio=l1 / total, max_iter=p["max_iter"],
                               fit_intercept=p["fit_intercept"], random_state=self.seed)
        else:
            model = Ridge(alpha=l2, fit_intercept=p["fit_intercept"], max_iter=p["max_iter"])
        return _prep([("model", model)], impute=True, scale=p["normalize"])


@register_algorithm
class RandomForest(SklearnAlgorithm):
    """A random forest of decision trees (missing values handled by the trees)."""

    name = "random_forest"
    description = "Random forest (scikit-learn): classification and regression."
    problem_types = (BINARY, MULTICLASS, REGRESSION)
    dtype = np.float32
    hyperparameters = (
        H("num_trees", "int", 100, low=1, high=10_000, log=True, search=(50, 500), description="Trees."),
        H("max_depth", "int", None, low=1, high=1000, nullable=True, search=(3, 30),
          description="Maximum depth (None: grow until leaves are pure)."),
        H("min_samples_leaf", "int", 1, low=1, high=1_000_000, log=True, search=(1, 50),
          description="Minimum rows in a leaf."),
        H("min_samples_split", "int", 2, low=2, high=1_000_000, log=True, search=(2, 50),
          description="Minimum rows to split a node."),
        H("max_features", "categorical", "auto", choices=("auto", "sqrt", "log2", "all"),
          description="Features tried per split (auto: sqrt for classes, all for values)."),
        H("bootstrap", "bool", True, description="Sample rows with replacement for each tree."),
        H("class_weight", "categorical", "none", choices=("none", "balanced", "balanced_subsample"),
          tunable=False, problem_types=(BINARY, MULTICLASS), description="Class reweighting."),
        H("num_threads", "int", 0, low=0, high=1024, tunable=False, description="Threads (0: all cores)."),
    )
    trusted_types = _TREE_TYPES

    def build(self) -> Any:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        p = self.params
        mf: Any = {"auto": "sqrt" if self.problem_type in CLASSIFICATION else 1.0, "all": 1.0}.get(
            p["max_features"], p["max_features"])
        common = dict(n_estimators=p["num_trees"], max_depth=p["max_depth"],
                      min_samples_leaf=p["min_samples_leaf"], min_samples_split=p["min_samples_split"],
                      max_features=mf, bootstrap=p["bootstrap"], random_state=self.seed,
                      n_jobs=p["num_threads"] or -1)
        if self.problem_type in CLASSIFICATION:
            cw = None if p["class_weight"] == "none" else p["class_weight"]
            return RandomForestClassifier(class_weight=cw, **common)
        return RandomForestRegressor(**common)


@register_algorithm
class KNN(SklearnAlgorithm):
    """k-nearest neighbours on standardised features."""

    name = "knn"
    description = "k-nearest neighbours (scikit-learn): classification and regression."
    problem_types = (BINARY, MULTICLASS, REGRESSION)
    categorical_encoding = "one_hot"
    hyperparameters = (
        H("k", "int", 5, low=1, high=100_000, log=True, search=(1, 100), description="Neighbours."),
        H("weights", "categorical", "uniform", choices=("uniform", "distance"),
          description="Weigh neighbours equally or by inverse distance."),
        H("metric", "categorical", "euclidean", choices=("euclidean", "manhattan", "cosine"),
          description="Distance."),
        _NORMALIZE,
    )
    trusted_types = _NEIGHBOR_TYPES

    def build(self) -> Any:
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        p = self.params
        cls = KNeighborsClassifier if self.problem_type in CLASSIFICATION else KNeighborsRegressor
        return _prep([("model", cls(n_neighbors=p["k"], weights=p["weights"], metric=p["metric"]))],
                     impute=True, scale=p["normalize"])

    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        if self.params["k"] > len(X):
            raise InvalidInput(f"k={self.params['k']} for knn is more than the {len(X)} training rows")
        super().fit_matrix(X, y, X_val, y_val, callback=callback)


@register_algorithm
class KMeans(SklearnAlgorithm):
    """k-means clustering on standardised features; predictions are cluster ids."""

    name = "kmeans"
    description = "k-means clustering (scikit-learn); predicts the cluster id."
    problem_types = (CLUSTERING,)
    categorical_encoding = "one_hot"
    hyperparameters = (
        H("k", "int", 8, low=1, high=100_000, log=True, search=(2, 50), description="Clusters."),
        H("init", "categorical", "k-means++", choices=("k-means++", "random"), tunable=False,
          description="Initial centres."),
        H("n_init", "int", 3, low=1, high=1000, tunable=False, description="Restarts (the best is kept)."),
        H("max_iter", "int", 300, low=1, high=100_000, tunable=False, description="Iterations per run."),
        H("tol", "float", 1e-4, low=0.0, high=1.0, tunable=False, description="Convergence tolerance."),
        _NORMALIZE,
    )
    trusted_types = _PIPELINE_TYPES

    def build(self) -> Any:
        from sklearn.cluster import KMeans as _KMeans

        p = self.params
        return _prep([("model", _KMeans(n_clusters=p["k"], init=p["init"], n_init=p["n_init"],
                                        max_iter=p["max_iter"], tol=p["tol"], random_state=self.seed))],
                     impute=True, scale=p["normalize"])

    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        if self.params["k"] > len(X):
            raise InvalidInput(f"k={self.params['k']} for kmeans is more than the {len(X)} training rows")
        super().fit_matrix(X, None, X_val, None, callback=callback)

    def score(self, X: Any, y: np.ndarray | None) -> dict[str, float]:
        from loopml.train._metrics import evaluate

        check_fitted(self, "estimator_")
        m = self.matrix(X)
        space = self.estimator_[:-1].transform(m) if hasattr(self.estimator_, "steps") else m
        labels = self.predict_matrix(m)
        out = evaluate(CLUSTERING, None, labels, features=space)
        model = self.estimator_[-1] if hasattr(self.estimator_, "steps") else self.estimator_
        dist = model.transform(space).min(axis=1)
        out["inertia_per_row"] = float(np.mean(dist**2))
        return out


@register_algorithm
class PCA(SklearnAlgorithm):
    """Principal component analysis; predictions are the projections."""

    name = "pca"
    description = "Principal component analysis (scikit-learn); predicts the projection on the components."
    problem_types = (DIMENSIONALITY_REDUCTION,)
    categorical_encoding = "one_hot"
    hyperparameters = (
        H("num_components", "int", 2, low=1, high=100_000, tunable=False, description="Components kept."),
        H("algorithm_mode", "categorical", "regular", choices=("regular", "randomized"), tunable=False,
          description="Exact SVD, or randomized SVD for many columns."),
        H("whiten", "bool", False, tunable=False, description="Scale the projections to unit variance."),
        _NORMALIZE,
    )
    trusted_types = _PIPELINE_TYPES

    def build(self) -> Any:
        from sklearn.decomposition import PCA as _PCA

        p = self.params
        solver = "full" if p["algorithm_mode"] == "regular" else "randomized"
        return _prep([("model", _PCA(n_components=p["num_components"], svd_solver=solver, whiten=p["whiten"],
                                     random_state=self.seed))], impute=True, scale=p["normalize"])

    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        k, most = self.params["num_components"], min(X.shape)
        if k > most:
            raise InvalidInput(
                f"num_components={k} for pca is more than min(rows, features) = {most}; choose at most {most}"
            )
        super().fit_matrix(X, None, X_val, None, callback=callback)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "estimator_")
        return np.asarray(self.estimator_.transform(X))

    def score(self, X: Any, y: np.ndarray | None) -> dict[str, float]:
        check_fitted(self, "estimator_")
        model = self.estimator_[-1] if hasattr(self.estimator_, "steps") else self.estimator_
        return {"explained_variance": float(np.sum(model.explained_variance_ratio_))}


@register_algorithm
class IsolationForest(SklearnAlgorithm):
    """Isolation forest anomaly detection (the random-cut-forest role).

    The prediction is an anomaly score: higher is more anomalous (around 0.5
    for ordinary rows, towards 1 for anomalies). A target column, if given,
    is used only to report the AUC of the score against it (1 = anomaly).
    """

    name = "isolation_forest"
    description = "Isolation forest anomaly detection (scikit-learn); predicts an anomaly score (higher = stranger)."
    problem_types = (ANOMALY_DETECTION,)
    dtype = np.float32
    hyperparameters = (
        H("num_trees", "int", 100, low=1, high=10_000, log=True, search=(50, 500), description="Trees."),
        H("num_samples_per_tree", "int", 256, low=2, high=10_000_000, log=True, search=(64, 4096),
          description="Rows sampled to build each tree."),
        H("max_features", "float", 1.0, low=0.01, high=1.0, search=(0.5, 1.0),
          description="Share of features per tree."),
        H("contamination", "float", None, low=1e-4, high=0.5, nullable=True, tunable=False,
          description="Expected share of anomalies, sets the anomaly_rate threshold (None: automatic)."),
        H("num_threads", "int", 0, low=0, high=1024, tunable=False, description="Threads (0: all cores)."),
    )
    trusted_types = _TREE_TYPES

    def build(self) -> Any:
        from sklearn.ensemble import IsolationForest as _IF

        p = self.params
        return _IF(n_estimators=p["num_trees"], max_samples=p["num_samples_per_tree"],
                   max_features=p["max_features"], contamination=p["contamination"] or "auto",
                   random_state=self.seed, n_jobs=p["num_threads"] or -1)

    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        est = self.build()
        est.set_params(max_samples=min(self.params["num_samples_per_tree"], len(X)))
        est.fit(X)
        self.estimator_ = _single_threaded(est)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "estimator_")
        return -np.asarray(self.estimator_.score_samples(X), dtype=np.float64)

    def score(self, X: Any, y: np.ndarray | None) -> dict[str, float]:
        from loopml.train._metrics import evaluate

        m = self.matrix(X)
        scores = self.predict_matrix(m)
        out = evaluate(ANOMALY_DETECTION, y, scores)
        out["anomaly_rate"] = float(np.mean(self.estimator_.predict(m) == -1))
        return out


__all__ = ["KNN", "PCA", "IsolationForest", "KMeans", "Linear", "RandomForest", "SklearnAlgorithm"]
