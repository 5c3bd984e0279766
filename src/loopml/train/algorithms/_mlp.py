"""A PyTorch multilayer perceptron for tabular classification and regression (CPU).

PyTorch is an optional dependency (``pip install 'loopml[torch]'``): this
module imports it only when a model trains or loads, so listing algorithms
works without it. Training is deterministic for a seed (initial weights,
shuffling and dropout draw from a forked, seeded generator; the caller's
global random state is left as it was), reports per-epoch metrics through
the callback (``train:loss`` and, with validation data, the validation
metrics a tuner prunes on), and can stop early and keep the best epoch.

The model saves as ``weights.pt`` -- a flat dict of tensors written by
``torch.save`` and read with ``torch.load(weights_only=True)``, never a full
pickle -- beside ``mlp.json`` (the architecture).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from loopml.errors import IntegrityError, InvalidInput
from loopml.train.algorithms import register_algorithm
from loopml.train.algorithms._base import (
    BINARY,
    CLASSIFICATION,
    MULTICLASS,
    REGRESSION,
    MetricCallback,
    TabularAlgorithm,
    check_fitted,
    labels_from_proba,
    need_validation,
)
from loopml.train.hyperparameters import Hyperparameter as H

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_WEIGHTS_FILE = "weights.pt"
_CONFIG_FILE = "mlp.json"
_FORMAT_VERSION = 1
#: rows per forward pass when predicting
_PREDICT_ROWS = 65_536

#: per-epoch validation metrics; the first one is the one early stopping watches
EPOCH_METRICS: dict[str, tuple[str, ...]] = {
    BINARY: ("logloss", "auc"),
    MULTICLASS: ("logloss", "accuracy"),
    REGRESSION: ("rmse", "mae"),
}
_HIGHER_IS_BETTER = frozenset({"auc", "accuracy"})


# -- helpers shared with the other torch algorithms ---------------------------------------------------
def import_torch(what: str) -> Any:
    """Import torch, or raise InvalidInput saying how to install it."""
    try:
        import torch
    except ImportError:
        raise InvalidInput(
            f"{what} needs PyTorch, which is not installed; install the extra: pip install 'loopml[torch]'"
        ) from None
    return torch


@contextmanager
def seeded(torch: Any, seed: int) -> Iterator[None]:
    """Run a block with torch's CPU generator seeded, restoring the caller's random state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


@contextmanager
def threads(torch: Any, n: int) -> Iterator[None]:
    """Run a block on ``n`` intra-op CPU threads (0: leave torch's setting), restoring it after.

    Small networks run several times faster on one thread than on many
    (each operation is too short to share), and a fixed count keeps results
    identical from one machine load to the next.
    """
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n and n != before:
            torch.set_num_threads(before)


def epoch_metrics(problem_type: str, y: np.ndarray, out: np.ndarray, n_classes: int | None) -> dict[str, float]:
    """The :data:`EPOCH_METRICS` of predictions ``out`` (probabilities for classes, values otherwise)."""
    from loopml.train._metrics import evaluate

    if problem_type in CLASSIFICATION:
        got = evaluate(problem_type, y, labels_from_proba(out), proba=out, n_classes=n_classes)
    else:
        got = evaluate(problem_type, y, out)
    return {k: got[k] for k in EPOCH_METRICS[problem_type] if k in got}


class EarlyStopping:
    """Track the watched validation metric per epoch and say when to stop.

    Parameters
    ----------
    metric
        The metric name (``logloss``, ``auc``, ...).
    patience
        Epochs without improvement before stopping; 0 never stops.
    """

    def __init__(self, metric: str, patience: int) -> None:
        self.metric = metric
        self.patience = patience
        self.sign = -1.0 if metric in _HIGHER_IS_BETTER else 1.0
        self.best = math.inf
        self.best_epoch = 0
        self.best_state: dict[str, Any] | None = None

    def update(self, epoch: int, value: float, state: Callable[[], dict[str, Any]]) -> bool:
        """Record ``value`` of ``epoch`` (``state()`` snapshots the weights if best); True means stop."""
        v = self.sign * value
        if math.isfinite(v) and v < self.best:
            self.best, self.best_epoch = v, epoch
            self.best_state = state()
        return bool(self.patience) and epoch - self.best_epoch >= self.patience


def _as_tensor(torch: Any, a: np.ndarray, dtype: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


# -- the algorithm ----------------------------------------------------------------------------------------
@register_algorithm
class MLP(TabularAlgorithm):
    """A multilayer perceptron (PyTorch, CPU) for tabular classification and regression.

    Missing values are imputed with the training medians and features are
    standardised inside the model (the statistics are saved with the weights);
    regression targets are standardised for training and scaled back.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from loopml.train import get_algorithm
    >>> X = pd.DataFrame({"a": np.linspace(-1, 1, 40)})
    >>> mlp = get_algorithm("mlp")({"epochs": 2, "width": 8}, problem_type="binary", n_classes=2)
    >>> mlp.fit(X, (X["a"] > 0).to_numpy().astype(int)).predict_proba(X).shape  # doctest: +SKIP
    (40, 2)
    """

    name = "mlp"
    description = "Multilayer perceptron (PyTorch, CPU): classification and regression on tabular data."
    problem_types = (BINARY, MULTICLASS, REGRESSION)
    iteration_metrics: ClassVar[Mapping[str, tuple[str, ...]]] = EPOCH_METRICS
    libraries = ("torch",)
    imports = ("torch",)
    handles_missing = True
    categorical_encoding = "one_hot"
    hyperparameters = (
        H("hidden_layers", "int", 2, low=0, high=16, search=(1, 4), description="Hidden layers (0: a linear model)."),
        H("width", "int", 64, low=1, high=8192, log=True, search=(16, 512), description="Units per hidden layer."),
        H("activation", "categorical", "relu", choices=("relu", "gelu", "tanh"), description="Hidden activation."),
        H("dropout", "float", 0.1, low=0.0, high=0.95, search=(0.0, 0.5), description="Dropout after each hidden layer."),
        H("lr", "float", 1e-3, low=1e-7, high=1.0, log=True, search=(1e-4, 1e-2),
          description="Learning rate (AdamW)."),
        H("weight_decay", "float", 0.0, low=0.0, high=10.0, log=True, search=(1e-6, 1e-2),
          description="Decoupled weight decay (AdamW)."),
        H("epochs", "int", 30, low=1, high=100_000, search=(5, 200), description="Passes over the training rows."),
        H("batch_size", "int", 64, low=1, high=1_048_576, log=True, search=(16, 1024),
          description="Rows per gradient step."),
        H("early_stopping_patience", "int", 0, low=0, high=100_000, tunable=False,
          description="Stop after this many epochs without a better validation metric and keep the best "
                      "epoch (0: off; needs validation data)."),
        H("normalize", "bool", True, tunable=False, description="Standardise the features."),
        H("num_threads", "int", 1, low=0, high=1024, tunable=False,
          description="CPU threads for training and prediction (0: torch's default); small networks are "
                      "fastest on 1."),
    )

    net_: Any
    stats_: dict[str, np.ndarray]

    def _torch(self) -> Any:
        return import_torch(f"the {self.name} algorithm")

    def _out_dim(self) -> int:
        return int(self.n_classes or 2) if self.problem_type == MULTICLASS else 1

    def _config(self, n_features: int) -> dict[str, Any]:
        p = self.params
        return {"format_version": _FORMAT_VERSION, "inputs": n_features, "outputs": self._out_dim(),
                "hidden_layers": p["hidden_layers"], "width": p["width"], "activation": p["activation"],
                "dropout": p["dropout"]}

    # -- training -------------------------------------------------------------------------------------
    def fit_matrix(
        self, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray | None, y_val: np.ndarray | None, *,
        callback: MetricCallback | None, groups: np.ndarray | None = None, groups_val: np.ndarray | None = None,
    ) -> None:
        torch = self._torch()
        if y is None:
            raise InvalidInput(f"{self.name} needs a target; pass target=COLUMN")
        p = self.params
        patience = int(p["early_stopping_patience"])
        if patience:
            need_validation(self, "early_stopping_patience", X_val)
        self.stats_ = _stats(X, normalize=bool(p["normalize"]))
        if self.problem_type == REGRESSION:
            yf = np.asarray(y, dtype=np.float64)
            self.stats_["target_mean"] = np.array([yf.mean()], dtype=np.float32)
            self.stats_["target_std"] = np.array([yf.std() or 1.0], dtype=np.float32)
        config = self._config(X.shape[1])
        Xt = _as_tensor(torch, self._prepare(X), torch.float32)
        yt = self._target_tensor(torch, y)
        loss_fn = {BINARY: torch.nn.BCEWithLogitsLoss(), MULTICLASS: torch.nn.CrossEntropyLoss(),
                   REGRESSION: torch.nn.MSELoss()}[self.problem_type]
        watch = EarlyStopping(EPOCH_METRICS[self.problem_type][0], patience)
        with seeded(torch, self.seed), threads(torch, p["num_threads"]):
            net = _build(torch, config)
            opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
            n, bs = len(Xt), int(p["batch_size"])
            for epoch in range(1, int(p["epochs"]) + 1):
                net.train()
                total = 0.0
                for idx in torch.randperm(n).split(bs):
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(net(Xt[idx]), yt[idx])
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                metrics = {"train:loss": total / max(n, 1)}
                stop = False
                if X_val is not None and y_val is not None:
                    self.net_ = net
                    got = epoch_metrics(self.problem_type, y_val, self._outputs(X_val), self.n_classes)
                    metrics.update({f"validation:{k}": v for k, v in got.items()})
                    if watch.metric in got:
                        stop = watch.update(epoch, got[watch.metric],
                                            lambda: {k: v.detach().clone() for k, v in net.state_dict().items()})
                if callback is not None:
                    callback(epoch, metrics)
                if stop:
                    log.info("early stopping after epoch %d: best %s at epoch %d", epoch, watch.metric,
                             watch.best_epoch)
                    break
        if patience and watch.best_state is not None:
            net.load_state_dict(watch.best_state)
        net.eval()
        self.net_ = net
        self.config_ = config

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        """Impute and standardise a feature matrix with the training statistics (float32)."""
        s = self.stats_
        out = np.where(np.isnan(X), s["fill"], X) if np.isnan(X).any() else X
        return np.asarray((out - s["center"]) / s["scale"], dtype=np.float32)

    def _target_tensor(self, torch: Any, y: np.ndarray) -> torch.Tensor:
        if self.problem_type == MULTICLASS:
            return _as_tensor(torch, np.asarray(y, dtype=np.int64), torch.long)
        if self.problem_type == BINARY:
            return _as_tensor(torch, np.asarray(y, dtype=np.float32).reshape(-1, 1), torch.float32)
        z = (np.asarray(y, dtype=np.float64) - self.stats_["target_mean"][0]) / self.stats_["target_std"][0]
        return _as_tensor(torch, z.astype(np.float32).reshape(-1, 1), torch.float32)

    # -- predicting ------------------------------------------------------------------------------------
    def _outputs(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (classes) or values (regression) as float64."""
        torch = self._torch()
        check_fitted(self, "net_")
        Xp = self._prepare(np.asarray(X, dtype=np.float32))
        was_training = self.net_.training
        self.net_.eval()
        parts = []
        with torch.inference_mode(), threads(torch, self.params["num_threads"]):
            for s in range(0, max(len(Xp), 1), _PREDICT_ROWS):
                chunk = torch.from_numpy(np.ascontiguousarray(Xp[s:s + _PREDICT_ROWS]))
                z = self.net_(chunk)
                if self.problem_type == BINARY:
                    z = torch.sigmoid(z)
                elif self.problem_type == MULTICLASS:
                    z = torch.softmax(z, dim=1)
                parts.append(z.double().numpy())
        self.net_.train(was_training)
        out = np.concatenate(parts) if parts else np.zeros((0, self._out_dim()))
        if self.problem_type == BINARY:
            p = out[:, 0]
            return np.column_stack([1.0 - p, p])
        if self.problem_type == REGRESSION:
            mean = float(self.stats_["target_mean"][0])
            std = float(self.stats_["target_std"][0])
            return out[:, 0] * std + mean
        return out

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        out = self._outputs(X)
        return labels_from_proba(out) if self.is_classifier else out

    def proba_matrix(self, X: np.ndarray) -> np.ndarray:
        if not self.is_classifier:
            return super().proba_matrix(X)
        return self._outputs(X)

    # -- persistence ----------------------------------------------------------------------------------
    def save_model(self, path: Path) -> None:
        torch = self._torch()
        check_fitted(self, "net_")
        state = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        state.update({f"stats.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.stats_.items()})
        torch.save(state, path / _WEIGHTS_FILE)
        (path / _CONFIG_FILE).write_text(json.dumps(self.config_, sort_keys=True))

    def load_model(self, path: Path) -> None:
        torch = self._torch()
        config = json.loads((path / _CONFIG_FILE).read_text())
        if config.get("format_version") != _FORMAT_VERSION:
            raise InvalidInput(f"{path / _CONFIG_FILE} has format version {config.get('format_version')}; "
                               f"this loopml reads version {_FORMAT_VERSION}")
        try:
            state = torch.load(path / _WEIGHTS_FILE, map_location="cpu", weights_only=True)
        except Exception as e:  # weights_only refuses anything but tensors and plain containers
            raise IntegrityError(f"{path / _WEIGHTS_FILE} is not a plain file of tensors: {e}") from None
        if not isinstance(state, dict):
            raise IntegrityError(f"{path / _WEIGHTS_FILE} does not hold a dict of tensors")
        net = _build(torch, config)
        try:
            net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")}, strict=True)
        except RuntimeError as e:
            raise IntegrityError(f"{path / _WEIGHTS_FILE} does not fit the architecture in {_CONFIG_FILE}: "
                                 f"{' '.join(str(e).split())[:300]}") from None
        net.eval()
        self.net_ = net
        self.config_ = config
        self.stats_ = {k[6:]: v.numpy() for k, v in state.items() if k.startswith("stats.")}


def _stats(X: np.ndarray, *, normalize: bool) -> dict[str, np.ndarray]:
    """Medians to impute with, and the centre and scale of each feature (float32)."""
    import warnings

    n = X.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns
        fill = np.nan_to_num(np.nanmedian(X, axis=0), nan=0.0) if len(X) else np.zeros(n)
        filled = np.where(np.isnan(X), fill, X)
        if normalize and len(X):
            center = filled.mean(axis=0)
            scale = filled.std(axis=0)
        else:
            center, scale = np.zeros(n), np.ones(n)
    scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
    return {k: np.asarray(v, dtype=np.float32) for k, v in
            {"fill": fill, "center": center, "scale": scale}.items()}


def _build(torch: Any, config: Mapping[str, Any]) -> Any:
    """The network an ``mlp.json`` config describes."""
    nn = torch.nn
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}[config["activation"]]
    layers: list[Any] = []
    width_in = int(config["inputs"])
    for _ in range(int(config["hidden_layers"])):
        layers += [nn.Linear(width_in, int(config["width"])), act()]
        if config["dropout"]:
            layers.append(nn.Dropout(float(config["dropout"])))
        width_in = int(config["width"])
    layers.append(nn.Linear(width_in, int(config["outputs"])))
    return nn.Sequential(*layers)


__all__ = ["EPOCH_METRICS", "MLP", "EarlyStopping", "epoch_metrics", "import_torch", "seeded"]
