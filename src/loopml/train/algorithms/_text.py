"""Transfer learning for text: a head trained on a pretrained encoder's embeddings.

``text_classifier`` embeds a text column with a Hugging Face encoder
(sentence-transformers or transformers; see :mod:`loopml.train.pretrained`),
in batches without gradients, and trains a linear head on the embeddings:
logistic regression (classes) or ridge regression (values) from
scikit-learn on standardised embeddings. With ``fine_tune=true`` it then
trains the head together with the encoder's last transformer block in
PyTorch (starting from the fitted head), reporting validation metrics per
epoch.

The saved model holds the head as arrays (``head.npz``, read with
``allow_pickle=False``), the fine-tuned block, if any, as tensors
(``encoder_layer.pt``, read with ``torch.load(weights_only=True)``), and a
reference to the encoder -- its folder, package or Hub id and the sha256 of
its files -- in ``text_model.json``. The encoder itself is never copied;
loading finds it again and refuses one whose files changed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
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
    Algorithm,
    MetricCallback,
    check_fitted,
    labels_from_proba,
)
from loopml.train.algorithms._mlp import (
    EPOCH_METRICS,
    EarlyStopping,
    epoch_metrics,
    import_torch,
    seeded,
    threads,
)
from loopml.train.hyperparameters import Hyperparameter
from loopml.train.hyperparameters import Hyperparameter as H
from loopml.train.pretrained import DEFAULT_TEXT_MODEL, ENCODER_KINDS

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import Self

    from loopml.train.pretrained import TextEncoder

log = logging.getLogger(__name__)

_HEAD_FILE = "head.npz"
_CONFIG_FILE = "text_model.json"
_LAYER_FILE = "encoder_layer.pt"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelReference(Hyperparameter):
    """A hyperparameter naming a pretrained model: any folder, ``package:NAME`` or Hub id.

    A ``str`` hyperparameter whose error message says what a reference
    looks like; it is never tuned.
    """

    def validate(self, value: Any, algorithm: str) -> Any:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(
                f"{self.name}={value!r} for {algorithm} must name a pretrained model: a folder, "
                f"package:NAME or a Hugging Face Hub id such as {self.default!r}"
            )
        return value.strip()

    def parse(self, text: str) -> Any:
        return text.strip()

    def range_text(self) -> str:
        return "a folder, package:NAME or a Hugging Face Hub id"


@register_algorithm
class TextClassifier(Algorithm):
    """A linear head on a pretrained text encoder's embeddings (optionally fine-tuning its last block).

    The text comes from the ``text`` role column, or from the only
    non-numeric column when no role is given; missing texts read as "".

    Examples
    --------
    >>> from loopml.train import get_algorithm
    >>> cls = get_algorithm("text_classifier")
    >>> cls.check_hyperparameters({"model": "/models/minilm"})["model"]
    '/models/minilm'
    """

    name = "text_classifier"
    description = ("Text classification / regression: a linear head on a pretrained Hugging Face encoder's "
                   "embeddings, optionally fine-tuning its last layer (torch extra).")
    problem_types = (BINARY, MULTICLASS, REGRESSION)
    input_kind = "text"
    roles_doc: ClassVar[Mapping[str, str]] = {"text": "the column of text (default: the only text column)"}
    predict_roles = ("text",)
    iteration_metrics: ClassVar[Mapping[str, tuple[str, ...]]] = EPOCH_METRICS  # with fine_tune=true
    libraries = ("torch", "transformers", "sentence-transformers", "scikit-learn")
    imports = ("torch", "sentence_transformers", "sklearn.linear_model")
    handles_missing = True
    categorical_encoding = "none"  # the text column reaches the encoder as text
    hyperparameters = (
        ModelReference("model", "str", DEFAULT_TEXT_MODEL, tunable=False,
                       description="The pretrained encoder: a local folder, package:NAME or a Hugging Face Hub "
                                   "id (downloaded only where the network is allowed)."),
        H("encoder", "categorical", "auto", choices=ENCODER_KINDS, tunable=False,
          description="How to load it: auto (sentence-transformers if the folder has modules.json), "
                      "sentence_transformers or transformers (mean pooling)."),
        H("l2", "float", 1.0, low=0.0, high=1e6, log=True, search=(1e-3, 100.0),
          description="L2 penalty of the head on standardised embeddings (logistic: C = 1 / l2; ridge alpha)."),
        H("max_iter", "int", 1000, low=1, high=1_000_000, tunable=False, description="Head solver iterations."),
        H("batch_size", "int", 32, low=1, high=65_536, tunable=False,
          description="Texts per encoder batch (embedding and fine-tuning)."),
        H("max_length", "int", None, low=1, high=1_000_000, nullable=True, tunable=False,
          description="Truncate texts to this many tokens (None: the encoder's limit)."),
        H("fine_tune", "bool", False, tunable=False,
          description="Then train the encoder's last transformer layer together with the head (slower)."),
        H("epochs", "int", 3, low=1, high=10_000, search=(1, 10), description="Fine-tuning epochs."),
        H("lr", "float", 2e-5, low=1e-8, high=1.0, log=True, search=(5e-6, 2e-4),
          description="Fine-tuning learning rate (AdamW)."),
        H("early_stopping_patience", "int", 0, low=0, high=10_000, tunable=False,
          description="Fine-tuning: stop after this many epochs without a better validation metric and keep "
                      "the best epoch (0: off)."),
        H("num_threads", "int", 0, low=0, high=1024, tunable=False,
          description="CPU threads for the encoder (0: torch's default, all cores)."),
    )

    encoder_: TextEncoder
    weight_: np.ndarray
    bias_: np.ndarray
    text_column_: str
    layer_name_: str | None

    # -- the text -----------------------------------------------------------------------------------
    def _text_column(self, X: pd.DataFrame) -> str:
        import pandas as pd

        col = self.roles.get("text")
        if col is not None:
            if col not in X.columns:
                raise InvalidInput(f"the data has no text column {col!r}; columns: {', '.join(map(str, X.columns))}")
            return col
        cols = [str(c) for c in X.columns if c not in self.roles.values()]
        texts = [c for c in cols if not pd.api.types.is_numeric_dtype(X[c].dtype)
                 and not pd.api.types.is_bool_dtype(X[c].dtype)]
        if len(texts) == 1:
            return texts[0]
        if len(cols) == 1:
            return cols[0]
        raise InvalidInput(
            f"{self.name} reads one text column and the data has {len(texts)} ({', '.join(texts) or 'none'}); "
            "name it with roles={'text': COLUMN} (--role text=COLUMN)"
        )

    def _texts(self, X: pd.DataFrame) -> list[Any]:
        col = getattr(self, "text_column_", None) or self._text_column(X)
        if col not in X.columns:
            raise InvalidInput(f"the data has no text column {col!r}, the text this model reads")
        return list(X[col].tolist())

    def _load_encoder(self, source: Any) -> TextEncoder:
        from loopml.train.pretrained import load_text_encoder

        import_torch(f"the {self.name} algorithm")
        return load_text_encoder(source, kind=self.params["encoder"], max_length=self.params["max_length"])

    def embed(self, X: pd.DataFrame) -> np.ndarray:
        """Embeddings of the text column of ``X`` (float32, one row per row)."""
        check_fitted(self, "encoder_")
        return self._embed(self._texts(X))

    def _embed(self, texts: list[Any]) -> np.ndarray:
        torch = import_torch(f"the {self.name} algorithm")
        with threads(torch, self.params["num_threads"]):
            return self.encoder_.embed(texts, batch_size=self.params["batch_size"])

    # -- training ----------------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | None = None,
        *,
        callback: MetricCallback | None = None,
    ) -> Self:
        if y is None:
            raise InvalidInput(f"{self.name} needs a target; pass target=COLUMN")
        self.text_column_ = self._text_column(X)
        self.encoder_ = self._load_encoder(self.params["model"])
        log.info("encoder %s (%s, %d dimensions) from %s", self.encoder_.source.ref, self.encoder_.kind,
                 self.encoder_.dimension, self.encoder_.source.path)
        texts = self._texts(X)
        E = self._embed(texts)
        self.weight_, self.bias_ = self._fit_head(E, np.asarray(y))
        self.layer_name_ = None
        if self.params["fine_tune"]:
            self._fine_tune(texts, np.asarray(y), X_val, y_val, callback)
        return self

    def _fit_head(self, E: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fit the linear head on standardised embeddings; return it folded back onto raw embeddings."""
        from sklearn.linear_model import LogisticRegression, Ridge

        E64 = E.astype(np.float64)
        center = E64.mean(axis=0)
        # one scale for all dimensions: l2 means the same for every encoder, and dimensions that barely
        # vary in the training texts do not get huge weights (which fine-tuning would blow up)
        scale = float(np.sqrt(np.mean(E64.var(axis=0)))) or 1.0
        Z = (E64 - center) / scale
        l2 = float(self.params["l2"])
        model: Any
        if self.problem_type in CLASSIFICATION:
            model = LogisticRegression(C=1.0 / l2 if l2 > 0 else np.inf, max_iter=self.params["max_iter"],
                                       random_state=self.seed)
        else:
            model = Ridge(alpha=l2)
        model.fit(Z, y)
        W = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
        b = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
        if self.problem_type == MULTICLASS and W.shape[0] != self.n_classes:
            W, b = _all_classes(W, b, np.asarray(model.classes_), int(self.n_classes or 0))
        # w . (e - c) / s + b  ==  (w / s) . e + (b - (w / s) . c)
        W = W / scale
        return W, b - W @ center

    def _fine_tune(self, texts: list[Any], y: np.ndarray, X_val: pd.DataFrame | None, y_val: np.ndarray | None,
                   callback: MetricCallback | None) -> None:
        torch = import_torch(f"fine-tuning in {self.name}")
        p = self.params
        enc = self.encoder_
        name, block = enc.last_layer()
        val_texts = self._texts(X_val) if X_val is not None and y_val is not None else None
        watch = EarlyStopping(EPOCH_METRICS[self.problem_type][0], int(p["early_stopping_patience"]))
        if watch.patience and val_texts is None:
            raise InvalidInput(f"early_stopping_patience for {self.name} needs validation data; "
                               "pass validation=NAME[:VER]")
        loss_fn = {BINARY: torch.nn.BCEWithLogitsLoss(), MULTICLASS: torch.nn.CrossEntropyLoss(),
                   REGRESSION: torch.nn.MSELoss()}[self.problem_type]
        if self.problem_type == MULTICLASS:
            target = torch.from_numpy(y.astype(np.int64))
        else:
            target = torch.from_numpy(y.astype(np.float32).reshape(-1, 1))
        log.info("fine-tuning %s and the head for %d epochs", name, p["epochs"])
        with seeded(torch, self.seed), threads(torch, p["num_threads"]):
            head = torch.nn.Linear(self.weight_.shape[1], self.weight_.shape[0])
            with torch.no_grad():
                head.weight.copy_(torch.from_numpy(self.weight_.astype(np.float32)))
                head.bias.copy_(torch.from_numpy(self.bias_.astype(np.float32)))
            enc.module.requires_grad_(False)
            block.requires_grad_(True)
            params = [*block.parameters(), *head.parameters()]
            opt = torch.optim.AdamW(params, lr=p["lr"])
            n, bs = len(texts), int(p["batch_size"])

            def snapshot() -> dict[str, Any]:
                return {"block": {k: v.detach().clone() for k, v in block.state_dict().items()},
                        "head": {k: v.detach().clone() for k, v in head.state_dict().items()}}

            try:
                for epoch in range(1, int(p["epochs"]) + 1):
                    enc.module.train()
                    total = 0.0
                    for idx in torch.randperm(n).split(bs):
                        rows = idx.tolist()
                        opt.zero_grad(set_to_none=True)
                        out = head(enc.forward([texts[i] for i in rows]))
                        loss = loss_fn(out, target[idx])
                        loss.backward()
                        opt.step()
                        total += float(loss.detach()) * len(rows)
                    self._set_head(head)
                    metrics = {"train:loss": total / max(n, 1)}
                    stop = False
                    if val_texts is not None and y_val is not None:
                        E_val = self._embed(val_texts)
                        got = epoch_metrics(self.problem_type, y_val, self._head_outputs(E_val), self.n_classes)
                        metrics.update({f"validation:{k}": v for k, v in got.items()})
                        if watch.metric in got:
                            stop = watch.update(epoch, got[watch.metric], snapshot)
                    if callback is not None:
                        callback(epoch, metrics)
                    if stop:
                        log.info("early stopping after epoch %d: best %s at epoch %d", epoch, watch.metric,
                                 watch.best_epoch)
                        break
            finally:
                enc.module.requires_grad_(False)
                enc.module.eval()
        if watch.patience and watch.best_state is not None:
            block.load_state_dict(watch.best_state["block"])
            head.load_state_dict(watch.best_state["head"])
        self._set_head(head)
        self.layer_name_ = name

    def _set_head(self, head: Any) -> None:
        self.weight_ = head.weight.detach().double().numpy().copy()
        self.bias_ = head.bias.detach().double().numpy().copy()

    # -- predicting ------------------------------------------------------------------------------
    def _head_outputs(self, E: np.ndarray) -> np.ndarray:
        """Class probabilities or values from embeddings (numpy, float64)."""
        from scipy.special import expit, softmax

        z = E.astype(np.float64) @ self.weight_.T + self.bias_
        if self.problem_type == BINARY:
            p = expit(z[:, 0])
            return np.column_stack([1.0 - p, p])
        if self.problem_type == MULTICLASS:
            return np.asarray(softmax(z, axis=1))
        return np.asarray(z[:, 0])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        out = self._head_outputs(self.embed(X))
        return labels_from_proba(out) if self.is_classifier else out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if not self.is_classifier:
            return super().predict_proba(X)
        return self._head_outputs(self.embed(X))

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        check_fitted(self, "weight_")
        np.savez(path / _HEAD_FILE, weight=self.weight_, bias=self.bias_)
        doc = {"format_version": _FORMAT_VERSION, "text_column": self.text_column_,
               "encoder": self.encoder_.source.to_dict(), "encoder_kind": self.encoder_.kind,
               "dimension": int(self.weight_.shape[1]), "fine_tuned_layer": self.layer_name_}
        if self.layer_name_ is not None:
            torch = import_torch(f"the {self.name} algorithm")
            block = self.encoder_.module.get_submodule(self.layer_name_)
            torch.save({k: v.detach().cpu().contiguous() for k, v in block.state_dict().items()},
                       path / _LAYER_FILE)
        (path / _CONFIG_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True))

    def load(self, path: Path) -> Self:
        from loopml.train.pretrained import verify_model

        doc = json.loads((path / _CONFIG_FILE).read_text())
        if doc.get("format_version") != _FORMAT_VERSION:
            raise InvalidInput(f"{path / _CONFIG_FILE} has format version {doc.get('format_version')}; this "
                               f"loopml reads version {_FORMAT_VERSION}")
        with np.load(path / _HEAD_FILE, allow_pickle=False) as z:
            weight, bias = np.asarray(z["weight"]), np.asarray(z["bias"])
        source = verify_model(doc["encoder"])  # the same encoder files, or a clear error
        encoder = self._load_encoder(source)
        if encoder.dimension != weight.shape[1]:
            raise IntegrityError(f"the encoder {source.ref!r} gives {encoder.dimension}-dimensional embeddings; "
                                 f"the head in {path} reads {weight.shape[1]}")
        layer = doc.get("fine_tuned_layer")
        if layer is not None:
            torch = import_torch(f"the {self.name} algorithm")
            try:
                state = torch.load(path / _LAYER_FILE, map_location="cpu", weights_only=True)
                encoder.module.get_submodule(layer).load_state_dict(state, strict=True)
            except (RuntimeError, AttributeError, ValueError) as e:
                raise IntegrityError(f"{path / _LAYER_FILE} does not fit layer {layer!r} of the encoder "
                                     f"{source.ref!r}: {' '.join(str(e).split())[:300]}") from None
            encoder.module.eval()
        self.encoder_ = encoder
        self.weight_, self.bias_ = weight, bias
        self.text_column_ = str(doc["text_column"])
        self.layer_name_ = layer
        return self


def _all_classes(W: np.ndarray, b: np.ndarray, classes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A head with a row for every class code: codes missing from training get a very low score."""
    if len(classes) == 2 and W.shape[0] == 1:  # a binary subproblem of a multiclass target
        W = np.vstack([-W / 2, W / 2])
        b = np.concatenate([-b / 2, b / 2])
    out_w = np.zeros((n, W.shape[1]))
    out_b = np.full(n, -1e9)
    out_w[classes.astype(np.int64)] = W
    out_b[classes.astype(np.int64)] = b
    return out_w, out_b


__all__ = ["ModelReference", "TextClassifier"]
