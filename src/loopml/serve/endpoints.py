"""The endpoint control plane: endpoint configs in metadata, versioned, with their history.

An endpoint is a name and a *config*: data, not code. The config lists
production variants (each a registered model version resolved to
``name:version`` and its package id, with a traffic weight), or the model
targets of a multi-model endpoint, plus data capture, micro-batching, request
limits and whether API keys are required. Every change writes a new config
with ``version`` one higher, a row in the change history (who, when, why, old
and new config), lineage ``model_version --deployed_to--> endpoint`` and the
workspace event ``endpoint.updated``. ``loopml serve`` polls the versions and
reloads what changed, so changes take effect without a restart.

>>> from loopml.serve import endpoints as eps                       # doctest: +SKIP
>>> eps.deploy(ws, "churn", model="churn:3")                         # doctest: +SKIP
>>> eps.deploy(ws, "churn", variants=[eps.VariantSpec("a", "churn:3", 0.8),
...                                   eps.VariantSpec("b", "churn:4", 0.2)])   # doctest: +SKIP
>>> eps.update_weights(ws, "churn", {"a": 0.5, "b": 0.5})             # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopml._util import actor, as_utc, clean_reason, new_id, utcnow
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.serve import _auth
from loopml.serve.models import EndpointApiKey, EndpointChange, EndpointRow
from loopml.store.lineage import EntityRef
from loopml.store.metadata import retry_on_conflict

if TYPE_CHECKING:
    from loopml.registry import ModelVersionInfo
    from loopml.serve.autoscale import ScalingConfig
    from loopml.serve.serverless import ServerlessConfig
    from loopml.workspace import Workspace

#: lineage kind of an endpoint (its id is the endpoint's id, ``ep-...``)
ENDPOINT_KIND = "endpoint"
#: lineage relation model_version -> endpoint
DEPLOYED_TO = "deployed_to"
#: the workspace event of every change (create, update, weights, keys, delete)
ENDPOINT_UPDATED = "endpoint.updated"
#: the variant name of ``deploy(model=...)`` and of multi-model endpoints (SageMaker's default)
DEFAULT_VARIANT = "AllTraffic"
IN_SERVICE = "InService"
DEFAULT_MAX_ROWS = 10_000
#: SageMaker's real-time payload limit
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_VARIANTS = 10

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
_T = TypeVar("_T")


# -- the config: data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantSpec:
    """A production variant as a user asks for it: a name, a model reference, a weight.

    Parameters
    ----------
    name
        The variant's name (unique in the endpoint), e.g. ``"a"`` or ``"challenger"``.
    model
        Any registry reference: ``churn:3``, ``churn@production``, ``churn`` (newest approved).
    weight
        Its share of traffic is ``weight / sum of weights``.
    """

    name: str
    model: str
    weight: float = 1.0


@dataclass(frozen=True)
class Variant:
    """A production variant of a deployed config: its model resolved to a version and a package."""

    name: str
    #: ``name:version``
    model: str
    package_sha256: str
    weight: float
    model_version_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "model": self.model, "package_sha256": self.package_sha256,
                "weight": self.weight, "model_version_id": self.model_version_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Variant:
        """The inverse of :meth:`to_dict`."""
        return cls(str(d["name"]), str(d["model"]), str(d["package_sha256"]), float(d["weight"]),
                   str(d.get("model_version_id") or ""))


@dataclass(frozen=True)
class ModelTarget:
    """One model of a multi-model endpoint, resolved."""

    model: str
    package_sha256: str
    model_version_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"model": self.model, "package_sha256": self.package_sha256,
                "model_version_id": self.model_version_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelTarget:
        """The inverse of :meth:`to_dict`."""
        return cls(str(d["model"]), str(d["package_sha256"]), str(d.get("model_version_id") or ""))


@dataclass(frozen=True)
class MultiModelConfig:
    """The models of a multi-model endpoint (``{target name: model}``) and its cache bounds."""

    models: Mapping[str, ModelTarget]
    #: at most this many models loaded at once (least recently used evicted first)
    max_loaded: int = 8
    #: and at most about this much memory, counted as the package sizes on disk
    max_memory_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"models": {k: v.to_dict() for k, v in sorted(self.models.items())},
                "max_loaded": self.max_loaded, "max_memory_mb": self.max_memory_mb}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MultiModelConfig:
        """The inverse of :meth:`to_dict`."""
        mm = d.get("max_memory_mb")
        return cls({str(k): ModelTarget.from_dict(v) for k, v in dict(d["models"]).items()},
                   int(d.get("max_loaded") or 8), None if mm is None else float(mm))


@dataclass(frozen=True)
class CaptureConfig:
    """Data capture: the percentage of requests recorded (0 disables it)."""

    percentage: float = 0.0


@dataclass(frozen=True)
class MicroBatchingConfig:
    """Adaptive micro-batching of concurrent single-row requests."""

    enabled: bool = False
    max_batch_rows: int = 64
    max_wait_ms: float = 2.0


@dataclass(frozen=True)
class LimitsConfig:
    """Request limits: rows per request and body size (413 above it)."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES


@dataclass(frozen=True)
class AuthConfig:
    """Whether requests must carry one of the endpoint's API keys."""

    required: bool = False


@dataclass(frozen=True)
class EndpointConfig:
    """An endpoint's whole config; ``to_dict``/``from_dict`` round-trip it through JSON.

    Exactly one of ``variants`` (a real-time endpoint, possibly A/B) and
    ``multi_model`` is set. ``extra`` keeps keys later stages add (deployment
    strategy, serverless, ...) through a round trip.
    """

    variants: tuple[Variant, ...] = ()
    multi_model: MultiModelConfig | None = None
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    micro_batching: MicroBatchingConfig = field(default_factory=MicroBatchingConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- reading -----------------------------------------------------------------------------
    @property
    def variant_names(self) -> list[str]:
        """The variants' names, in order (``["AllTraffic"]`` for a multi-model endpoint)."""
        return [v.name for v in self.variants] if self.multi_model is None else [DEFAULT_VARIANT]

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; InvalidInput naming the variants if there is none."""
        for v in self.variants:
            if v.name == name:
                return v
        raise InvalidInput(f"no variant {name!r}; the variants are {', '.join(self.variant_names)}")

    def model_refs(self) -> list[str]:
        """Every model version the config serves (``name:version``)."""
        if self.multi_model is not None:
            return sorted({t.model for t in self.multi_model.models.values()})
        return [v.model for v in self.variants]

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the metadata store keeps)."""
        return {
            **dict(self.extra),
            "variants": [v.to_dict() for v in self.variants],
            "multi_model": None if self.multi_model is None else self.multi_model.to_dict(),
            "capture": {"percentage": self.capture.percentage},
            "micro_batching": {"enabled": self.micro_batching.enabled,
                               "max_batch_rows": self.micro_batching.max_batch_rows,
                               "max_wait_ms": self.micro_batching.max_wait_ms},
            "limits": {"max_rows": self.limits.max_rows,
                       "max_payload_bytes": self.limits.max_payload_bytes},
            "auth": {"required": self.auth.required},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EndpointConfig:
        """The inverse of :meth:`to_dict`."""
        known = {"variants", "multi_model", "capture", "micro_batching", "limits", "auth"}
        mb = dict(d.get("micro_batching") or {})
        lim = dict(d.get("limits") or {})
        return cls(
            variants=tuple(Variant.from_dict(v) for v in d.get("variants") or ()),
            multi_model=None if not d.get("multi_model") else MultiModelConfig.from_dict(d["multi_model"]),
            capture=CaptureConfig(float(dict(d.get("capture") or {}).get("percentage") or 0.0)),
            micro_batching=MicroBatchingConfig(bool(mb.get("enabled", False)),
                                               int(mb.get("max_batch_rows", 64)),
                                               float(mb.get("max_wait_ms", 2.0))),
            limits=LimitsConfig(int(lim.get("max_rows", DEFAULT_MAX_ROWS)),
                                int(lim.get("max_payload_bytes", DEFAULT_MAX_PAYLOAD_BYTES))),
            auth=AuthConfig(bool(dict(d.get("auth") or {}).get("required", False))),
            extra={k: v for k, v in d.items() if k not in known},
        )


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint as stored: name, status, config and its version."""

    id: str
    name: str
    status: str
    version: int
    config: EndpointConfig
    created_by: str
    created_at: datetime
    updated_at: datetime
    #: ids of the active (not revoked) API keys
    api_keys: tuple[str, ...] = ()

    @property
    def entity(self) -> EntityRef:
        """The endpoint's lineage reference."""
        return EntityRef(ENDPOINT_KIND, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "name": self.name, "status": self.status, "version": self.version,
                "config": self.config.to_dict(), "created_by": self.created_by,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "api_keys": list(self.api_keys)}


@dataclass(frozen=True)
class EndpointChangeInfo:
    """One change of an endpoint: the version it made, what, who, when, why, old and new config."""

    endpoint: str
    endpoint_id: str
    version: int
    action: str
    old_config: dict[str, Any] | None
    new_config: dict[str, Any] | None
    by: str
    reason: str | None
    details: dict[str, Any]
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"endpoint": self.endpoint, "endpoint_id": self.endpoint_id, "version": self.version,
                "action": self.action, "old_config": self.old_config, "new_config": self.new_config,
                "by": self.by, "reason": self.reason, "details": self.details, "at": self.at.isoformat()}


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key's record (never its secret)."""

    id: str
    endpoint: str
    description: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "endpoint": self.endpoint, "description": self.description,
                "created_by": self.created_by, "created_at": self.created_at.isoformat(),
                "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat()}


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: ``key`` is the plaintext, shown this once and never stored."""

    id: str
    endpoint: str
    key: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "endpoint": self.endpoint, "key": self.key}


class VariantPicker:
    """Chooses the variant of each request: by weight, or the one a request pins.

    Parameters
    ----------
    config
        The endpoint's config (a multi-model endpoint has the one variant ``AllTraffic``).

    Examples
    --------
    >>> cfg = EndpointConfig(variants=(Variant("a", "m:1", "0" * 64, 3.0), Variant("b", "m:2", "0" * 64, 1.0)))
    >>> p = VariantPicker(cfg)
    >>> p.pick(0.5), p.pick(0.8), p.pick(0.1, "b")
    ('a', 'b', 'b')
    """

    def __init__(self, config: EndpointConfig) -> None:
        self.names = config.variant_names
        weights = [v.weight for v in config.variants] if config.multi_model is None else [1.0]
        self.total = float(sum(weights))
        cum: list[float] = []
        acc = 0.0
        for w in weights:
            acc += w
            cum.append(acc)
        self._cum = cum
        self._known = frozenset(self.names)

    def pick(self, r: float, pinned: str | None = None) -> str:
        """The variant for a uniform ``r`` in [0, 1), or ``pinned`` (InvalidInput naming the variants if unknown)."""
        if pinned:
            if pinned in self._known:
                return pinned
            raise InvalidInput(f"no variant {pinned[:100]!r} in this endpoint (X-Amzn-SageMaker-Target-Variant); "
                               f"its variants are {', '.join(self.names)}")
        if len(self.names) == 1:
            return self.names[0]
        if self.total <= 0:
            raise InvalidInput("every variant has weight 0; pin one with the X-Amzn-SageMaker-Target-Variant "
                               "header or give one a weight")
        i = bisect.bisect_right(self._cum, r * self.total)
        return self.names[min(i, len(self.names) - 1)]


# -- checks -------------------------------------------------------------------------------------------
def check_endpoint_name(name: str) -> str:
    """Return ``name`` if it is a valid endpoint name, else raise InvalidInput."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"endpoint name {name!r} is not allowed; use letters, digits, '_', '-' or '.', starting "
            "with a letter or digit (at most 200 characters)"
        )
    return name


def _check_weight(name: str, weight: Any, *, allow_zero: bool) -> float:
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise InvalidInput(f"the weight of variant {name!r} must be a number, got {weight!r}") from None
    if not math.isfinite(w) or w < 0 or (w == 0 and not allow_zero):
        need = "zero or more" if allow_zero else "more than zero"
        raise InvalidInput(f"the weight of variant {name!r} must be a finite number {need}, got {weight!r}")
    return w


def _check_range(what: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer and int(value) != value:
        ok = False
    if not ok or not lo <= value <= hi:
        kind = "a whole number" if integer else "a number"
        raise InvalidInput(f"{what} must be {kind} from {lo:g} to {hi:g}, got {value!r}")
    return int(value) if integer else float(value)





def _resolve_model(ws: Workspace, ref: str, *, require_approved: bool, what: str) -> ModelVersionInfo:
    from loopml.registry import APPROVED, REJECTED, get_model_version

    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"{what} names no model; give NAME:VERSION, NAME@ALIAS or NAME")
    info = get_model_version(ws, ref.strip())
    if info.approval_status == REJECTED:
        raise InvalidInput(
            f"{what}: model {info.ref} is Rejected ({info.approval_reason or 'no reason given'}); "
            f"deploy an approved version (see `loopml models list {info.name}`)"
        )
    if require_approved and info.approval_status != APPROVED:
        raise InvalidInput(
            f"{what}: model {info.ref} is {info.approval_status}, and only Approved versions may be deployed "
            f"here; approve it with `loopml models approve {info.ref}` or drop --require-approved"
        )
    from loopml.registry.versions import verify_stored_package

    verify_stored_package(ws, info.package_sha256, what=f"the model package of {info.ref}")
    return info


# -- building configs ---------------------------------------------------------------------------------
def build_config(
    ws: Workspace,
    *,
    model: str | None = None,
    variants: Sequence[VariantSpec] | None = None,
    multi_model: Mapping[str, str] | None = None,
    max_loaded: int = 8,
    max_memory_mb: float | None = None,
    capture_percentage: float = 0.0,
    api_key_required: bool = False,
    micro_batching: bool = False,
    max_batch_rows: int = 64,
    max_wait_ms: float = 2.0,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    require_approved: bool = False,
    extra: Mapping[str, Any] | None = None,
    scaling: ScalingConfig | None = None,
    serverless: ServerlessConfig | None = None,
    backend: str = "local",
) -> EndpointConfig:
    """Check and resolve a config (models to ``name:version`` and package ids); see :func:`deploy`."""
    placement = _placement(scaling, serverless, backend, multi_model=bool(multi_model),
                           micro_batching=bool(micro_batching))
    specs: list[VariantSpec] = []
    if model is not None:
        specs.append(VariantSpec(DEFAULT_VARIANT, model, 1.0))
    for v in variants or ():
        if not isinstance(v, VariantSpec):
            raise InvalidInput(f"variants must be VariantSpec(name, model, weight) values, got {v!r}")
        specs.append(v)
    if specs and multi_model:
        raise InvalidInput("give variants (or model) or multi_model, not both: a multi-model endpoint "
                           "chooses the model by the request's Target-Model header")
    if not specs and not multi_model:
        raise InvalidInput("the endpoint serves no model; give model='M:V', variants=[...] or multi_model={...}")
    if len(specs) > MAX_VARIANTS:
        raise InvalidInput(f"{len(specs)} variants; an endpoint has at most {MAX_VARIANTS}")
    seen: set[str] = set()
    resolved: list[Variant] = []
    for spec in specs:
        if not isinstance(spec.name, str) or not _VARIANT.match(spec.name):
            raise InvalidInput(f"variant name {spec.name!r} is not allowed; use letters, digits, '_', '-' or '.' "
                               "(at most 63 characters)")
        if spec.name in seen:
            raise InvalidInput(f"two variants are named {spec.name!r}; variant names must differ")
        seen.add(spec.name)
        weight = _check_weight(spec.name, spec.weight, allow_zero=False)
        info = _resolve_model(ws, spec.model, require_approved=require_approved, what=f"variant {spec.name!r}")
        resolved.append(Variant(spec.name, info.ref, info.package_sha256, weight, info.id))
    mm: MultiModelConfig | None = None
    if multi_model:
        if not isinstance(multi_model, Mapping):
            raise InvalidInput("multi_model must map target names to model references, e.g. {'a': 'churn:3'}")
        targets: dict[str, ModelTarget] = {}
        for target, ref in multi_model.items():
            if not isinstance(target, str) or not _NAME.match(target):
                raise InvalidInput(f"target model name {target!r} is not allowed; use letters, digits, '_', "
                                   "'-' or '.'")
            info = _resolve_model(ws, ref, require_approved=require_approved, what=f"target model {target!r}")
            targets[target] = ModelTarget(info.ref, info.package_sha256, info.id)
        mm = MultiModelConfig(
            targets, _check_range("max_loaded", max_loaded, 1, 10_000, integer=True),
            None if max_memory_mb is None else _check_range("max_memory_mb", max_memory_mb, 0.001, 1e9),
        )
    return EndpointConfig(
        variants=tuple(resolved),
        multi_model=mm,
        capture=CaptureConfig(_check_range("capture percentage", capture_percentage, 0, 100)),
        micro_batching=MicroBatchingConfig(
            bool(micro_batching), _check_range("max_batch_rows", max_batch_rows, 1, 100_000, integer=True),
            _check_range("max_wait_ms", max_wait_ms, 0, 1000)),
        limits=LimitsConfig(_check_range("max_rows", max_rows, 1, 10_000_000, integer=True),
                            _check_range("max_payload_bytes", max_payload_bytes, 1, 1 << 30, integer=True)),
        auth=AuthConfig(bool(api_key_required)),
        extra={**{k: v for k, v in dict(extra or {}).items() if k not in _PLACEMENT_KEYS}, **placement},
    )


#: the keys of ``EndpointConfig.extra`` that say where variants run (see :func:`loopml.serve.app.default_backend`)
_PLACEMENT_KEYS = ("backend", "scaling", "serverless")
BACKENDS = ("local", "ray")


def _placement(scaling: ScalingConfig | None, serverless: ServerlessConfig | None, backend: str, *,
               multi_model: bool, micro_batching: bool) -> dict[str, Any]:
    """The ``extra`` keys of replicas, serverless and the Ray backend, checked."""
    from loopml.serve.autoscale import ScalingConfig
    from loopml.serve.serverless import ServerlessConfig

    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if scaling is not None and not isinstance(scaling, ScalingConfig):
        raise InvalidInput(f"scaling must be a ScalingConfig (see loopml.serve.autoscale), got {scaling!r}")
    if serverless is not None and not isinstance(serverless, ServerlessConfig):
        raise InvalidInput(f"serverless must be a ServerlessConfig (see loopml.serve.serverless), got {serverless!r}")
    if scaling is not None and serverless is not None:
        raise InvalidInput("give --replicas or --serverless, not both: a serverless endpoint scales from zero "
                           "by itself (its bound is --max-concurrency)")
    special = scaling is not None or serverless is not None or backend != "local"
    if special and multi_model:
        raise InvalidInput("a multi-model endpoint runs in the server process; drop --replicas, --serverless "
                           "and --backend, or deploy the models as variants")
    if special and micro_batching:
        raise InvalidInput("micro-batching groups requests for a model in the server process; it does not "
                           "apply with --replicas, --serverless or --backend ray: drop --micro-batching")
    out: dict[str, Any] = {}
    if backend != "local":
        out["backend"] = backend
    if scaling is not None:
        out["scaling"] = scaling.to_dict()
    if serverless is not None:
        out["serverless"] = serverless.to_dict()
    return out


def placement_of(config: EndpointConfig) -> dict[str, Any]:
    """Where the variants of ``config`` run: ``{"backend", "scaling"?, "serverless"?}`` (JSON-ready)."""
    out: dict[str, Any] = {"backend": str(config.extra.get("backend") or "local")}
    for k in ("scaling", "serverless"):
        if config.extra.get(k):
            out[k] = dict(config.extra[k])
    return out


# -- reading ----------------------------------------------------------------------------------------
def _row(s: Session, name: str, *, lock: bool = False) -> EndpointRow:
    check_endpoint_name(name)
    q = select(EndpointRow).where(EndpointRow.name == name)
    if lock:
        q = q.with_for_update()
    row = s.scalar(q)
    if row is None:
        names = list(s.scalars(select(EndpointRow.name).order_by(EndpointRow.name).limit(21)))
        known = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none yet"
        raise NotFound(f"no endpoint named {name!r} (endpoints: {known}); deploy one with "
                       f"`loopml endpoints deploy {name} --model M:V`")
    return row


def _info(s: Session, row: EndpointRow) -> EndpointInfo:
    keys = tuple(s.scalars(select(EndpointApiKey.id).where(
        EndpointApiKey.endpoint_id == row.id, EndpointApiKey.revoked_at.is_(None)).order_by(EndpointApiKey.id)))
    return EndpointInfo(row.id, row.name, row.status, row.version, EndpointConfig.from_dict(row.config),
                        row.created_by, as_utc(row.created_at), as_utc(row.updated_at), keys)


def get_endpoint(ws: Workspace, name: str) -> EndpointInfo:
    """The endpoint called ``name``.

    Raises
    ------
    NotFound
        No such endpoint (the message lists the endpoints).

    Examples
    --------
    >>> import tempfile, loopml
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> get_endpoint(ws, "churn")
    Traceback (most recent call last):
    ...
    loopml.errors.NotFound: no endpoint named 'churn' (endpoints: none yet); deploy one with `loopml endpoints deploy churn --model M:V`
    >>> ws.close()
    """
    with ws.meta.session() as s:
        return _info(s, _row(s, name))


def list_endpoints(ws: Workspace) -> list[EndpointInfo]:
    """Every endpoint of the workspace, by name."""
    with ws.meta.session() as s:
        return [_info(s, r) for r in s.scalars(select(EndpointRow).order_by(EndpointRow.name))]


def endpoint_versions(ws: Workspace) -> dict[str, tuple[str, int]]:
    """``{name: (id, version)}`` of every endpoint: the cheap query servers poll to spot changes."""
    with ws.meta.session() as s:
        return {n: (i, v) for n, i, v in s.execute(select(EndpointRow.name, EndpointRow.id, EndpointRow.version))}


def active_keys(ws: Workspace, endpoint_id: str) -> _auth.KeySet:
    """The active API keys of an endpoint as the server checks them (salted hashes)."""
    with ws.meta.session() as s:
        rows = s.execute(select(EndpointApiKey.id, EndpointApiKey.salt, EndpointApiKey.key_hash).where(
            EndpointApiKey.endpoint_id == endpoint_id, EndpointApiKey.revoked_at.is_(None)))
        return _auth.KeySet({i: (salt, h) for i, salt, h in rows})


def endpoint_history(ws: Workspace, name: str) -> list[EndpointChangeInfo]:
    """Every change of endpoints called ``name`` (also deleted ones), oldest first."""
    check_endpoint_name(name)
    with ws.meta.session() as s:
        rows = list(s.scalars(select(EndpointChange).where(EndpointChange.endpoint_name == name)
                              .order_by(EndpointChange.id)))
        if not rows:
            _row(s, name)  # NotFound with the list of endpoints
    return [EndpointChangeInfo(r.endpoint_name, r.endpoint_id, r.version, r.action, r.old_config, r.new_config,
                               r.by, r.reason, dict(r.details or {}), as_utc(r.created_at)) for r in rows]


# -- writing ------------------------------------------------------------------------------------------
def _record(ws: Workspace, s: Session, row: EndpointRow, action: str, old: dict[str, Any] | None,
            new: dict[str, Any] | None, who: str, reason: str | None, details: Mapping[str, Any] | None) -> None:
    now = utcnow()
    s.add(EndpointChange(endpoint_id=row.id, endpoint_name=row.name, version=row.version, action=action,
                         old_config=old, new_config=new, by=who, reason=reason, details=dict(details or {}),
                         created_at=now))
    ref = EntityRef(ENDPOINT_KIND, row.id)
    if new is not None:
        cfg = EndpointConfig.from_dict(new)
        ids = [v.model_version_id for v in cfg.variants]
        if cfg.multi_model is not None:
            ids += [t.model_version_id for t in cfg.multi_model.models.values()]
        for mv in sorted({i for i in ids if i}):
            ws.lineage.add(EntityRef("model_version", mv), ref, DEPLOYED_TO, session=s)
    payload = {"endpoint": row.name, "version": row.version, "action": action, "by": who, "reason": reason,
               "status": row.status,
               "variants": [] if new is None else [
                   {"name": v["name"], "model": v["model"], "weight": v["weight"]} for v in new.get("variants") or ()],
               "models": [] if new is None else EndpointConfig.from_dict(new).model_refs()}
    ws.events.emit(ENDPOINT_UPDATED, ref, payload, session=s)


def apply_config(
    ws: Workspace,
    name: str,
    config: EndpointConfig,
    *,
    action: str = "update",
    status: str | None = None,
    by: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
    create: bool = False,
    on_write: Callable[[Session, EndpointRow], None] | None = None,
) -> EndpointInfo:
    """Write ``config`` as the endpoint's new config (version + 1), with history, lineage and event.

    The primitive every change goes through; deployment strategies call it for
    each traffic shift. ``config`` must already be resolved (see :func:`build_config`).

    Parameters
    ----------
    ws, name, config
        The workspace, the endpoint and its new config.
    action
        What the change is, for the history (``create``, ``update``, ``update_weights``, ...).
    status
        A new status (default: keep it; ``InService`` for a new endpoint).
    by, reason, details
        Who, why, and free-form details for the history.
    expected_version
        If given, refuse (Conflict) when the endpoint is no longer at this version.
    create
        Create the endpoint if it does not exist (otherwise NotFound).
    on_write
        Called in the same transaction after the write, with the session and the endpoint's row
        (a deployment records its step there, so the two never disagree after a crash).
    """
    check_endpoint_name(name)
    who = actor(by)
    why = clean_reason(reason)
    new = config.to_dict()
    if status is not None and (not isinstance(status, str) or not status or len(status) > 30):
        raise InvalidInput(f"status {status!r} must be a word of at most 30 characters")

    def write() -> EndpointInfo:
        with ws.meta.session(write=True) as s:
            now = utcnow()
            row = s.scalar(select(EndpointRow).where(EndpointRow.name == name).with_for_update())
            if row is None:
                if not create:
                    _row(s, name)
                first = int(s.scalar(select(func.max(EndpointChange.version))
                                     .where(EndpointChange.endpoint_name == name)) or 0)
                row = EndpointRow(id=new_id("ep"), name=name, status=status or IN_SERVICE, version=first + 1,
                                  config=new, created_by=who, created_at=now, updated_at=now)
                s.add(row)
                s.flush()
                _record(ws, s, row, "create", None, new, who, why, details)
            else:
                if expected_version is not None and row.version != expected_version:
                    raise Conflict(f"endpoint {name!r} is at version {row.version}, not {expected_version}: "
                                   "it changed meanwhile; look again and retry")
                old = dict(row.config)
                row.config = new
                row.version += 1
                row.updated_at = now
                if status is not None:
                    row.status = status
                s.flush()
                _record(ws, s, row, action, old, new, who, why, details)
            s.flush()
            if on_write is not None:
                on_write(s, row)
                s.flush()
            return _info(s, row)

    return retry_on_conflict(write, "this endpoint")


def deploy(
    ws: Workspace,
    name: str,
    *,
    model: str | None = None,
    variants: Sequence[VariantSpec] | None = None,
    multi_model: Mapping[str, str] | None = None,
    max_loaded: int = 8,
    max_memory_mb: float | None = None,
    capture_percentage: float = 0.0,
    api_key_required: bool = False,
    micro_batching: bool = False,
    max_batch_rows: int = 64,
    max_wait_ms: float = 2.0,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    require_approved: bool = False,
    replicas: tuple[int, int] | str | None = None,
    target_inflight: float | None = None,
    scaling: ScalingConfig | None = None,
    serverless: ServerlessConfig | None = None,
    backend: str = "local",
    by: str | None = None,
    reason: str | None = None,
) -> EndpointInfo:
    """Create endpoint ``name``, or replace its config if it exists (a redeploy).

    Parameters
    ----------
    ws
        The workspace.
    name
        The endpoint.
    model
        One model (a registry reference: ``churn:3``, ``churn@production``, ``churn``), served as the
        variant ``AllTraffic``.
    variants
        Production variants (A/B testing): ``[VariantSpec("a", "churn:3", 0.8), VariantSpec("b", "churn:4", 0.2)]``.
    multi_model
        A multi-model endpoint instead: ``{target name: model reference}``; requests choose with
        the ``X-Amzn-SageMaker-Target-Model`` header.
    max_loaded, max_memory_mb
        Bounds of a multi-model endpoint's cache of loaded models.
    capture_percentage
        Percentage of requests (and responses) recorded by data capture (0 to 100).
    api_key_required
        Requests must carry an API key (see :func:`create_api_key`).
    micro_batching, max_batch_rows, max_wait_ms
        Batch concurrent single-row requests for the model, waiting at most ``max_wait_ms``.
    max_rows, max_payload_bytes
        Request limits (defaults 10,000 rows and 6 MB).
    require_approved
        Refuse versions not ``Approved`` (``PendingManualApproval`` is accepted otherwise;
        ``Rejected`` never is).
    replicas, target_inflight
        Serve each variant from ``(MIN, MAX)`` (or ``"MIN:MAX"``) autoscaled worker processes,
        aiming at ``target_inflight`` requests in flight per replica (default 2); see
        :mod:`loopml.serve.replicas`.
    scaling
        The whole autoscaling policy instead (:class:`~loopml.serve.autoscale.ScalingConfig`: cooldowns too).
    serverless
        Serverless instead (:class:`~loopml.serve.serverless.ServerlessConfig`): no replica while idle,
        a cold start on the first request, 429 past the max concurrency.
    backend
        ``"local"`` (this machine: the server process, or its replicas) or ``"ray"`` (a Ray Serve
        deployment per variant, on the Ray cluster; see :mod:`loopml.serve.ray_backend`).
    by, reason
        Who deploys, and why (kept in the history).

    Returns
    -------
    EndpointInfo

    Raises
    ------
    NotFound
        An unknown model, version or alias.
    InvalidInput
        A Rejected model, a weight of zero or less, two variants with one name, a bad limit.
    """
    check_endpoint_name(name)
    if replicas is not None or target_inflight is not None:
        from loopml.serve.autoscale import ScalingConfig, check_scaling, parse_replicas

        if scaling is not None:
            raise InvalidInput("give replicas/target_inflight or scaling, not both")
        lo, hi = parse_replicas(replicas) if isinstance(replicas, str) else (replicas or (1, 1))
        scaling = check_scaling(lo, hi, target_inflight=ScalingConfig.target_inflight if target_inflight is None
                                else target_inflight)
    config = build_config(
        ws, model=model, variants=variants, multi_model=multi_model, max_loaded=max_loaded,
        max_memory_mb=max_memory_mb, capture_percentage=capture_percentage, api_key_required=api_key_required,
        micro_batching=micro_batching, max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms,
        max_rows=max_rows, max_payload_bytes=max_payload_bytes, require_approved=require_approved,
        scaling=scaling, serverless=serverless, backend=backend,
    )
    return apply_config(ws, name, config, action="update", by=by, reason=reason, create=True)


_UNSET: Any = object()


def update_endpoint(
    ws: Workspace,
    name: str,
    *,
    capture_percentage: float | None = None,
    api_key_required: bool | None = None,
    micro_batching: bool | None = None,
    max_batch_rows: int | None = None,
    max_wait_ms: float | None = None,
    max_rows: int | None = None,
    max_payload_bytes: int | None = None,
    max_loaded: int | None = None,
    max_memory_mb: float | None = _UNSET,
    by: str | None = None,
    reason: str | None = None,
) -> EndpointInfo:
    """Change some settings of an endpoint (None keeps a setting); models and weights stay.

    Use :func:`deploy` to change the models and :func:`update_weights` to shift traffic.
    """
    cur = get_endpoint(ws, name)
    c = cur.config
    mb = c.micro_batching
    new = replace(
        c,
        capture=CaptureConfig(c.capture.percentage if capture_percentage is None
                              else _check_range("capture percentage", capture_percentage, 0, 100)),
        auth=AuthConfig(c.auth.required if api_key_required is None else bool(api_key_required)),
        micro_batching=MicroBatchingConfig(
            mb.enabled if micro_batching is None else bool(micro_batching),
            mb.max_batch_rows if max_batch_rows is None
            else _check_range("max_batch_rows", max_batch_rows, 1, 100_000, integer=True),
            mb.max_wait_ms if max_wait_ms is None else _check_range("max_wait_ms", max_wait_ms, 0, 1000)),
        limits=LimitsConfig(
            c.limits.max_rows if max_rows is None else _check_range("max_rows", max_rows, 1, 10_000_000, integer=True),
            c.limits.max_payload_bytes if max_payload_bytes is None
            else _check_range("max_payload_bytes", max_payload_bytes, 1, 1 << 30, integer=True)),
    )
    if max_loaded is not None or max_memory_mb is not _UNSET:
        if c.multi_model is None:
            raise InvalidInput(f"endpoint {name!r} is not a multi-model endpoint; max_loaded and max_memory_mb "
                               "apply to multi-model endpoints only")
        mm = c.multi_model
        new = replace(new, multi_model=MultiModelConfig(
            mm.models,
            mm.max_loaded if max_loaded is None else _check_range("max_loaded", max_loaded, 1, 10_000, integer=True),
            mm.max_memory_mb if max_memory_mb is _UNSET else (
                None if max_memory_mb is None else _check_range("max_memory_mb", max_memory_mb, 0.001, 1e9)),
        ))
    if new == c:
        return cur
    return apply_config(ws, name, new, action="update", by=by, reason=reason, expected_version=cur.version)


def update_weights(
    ws: Workspace,
    name: str,
    weights: Mapping[str, float],
    *,
    by: str | None = None,
    reason: str | None = None,
) -> EndpointInfo:
    """Set the traffic weights of some variants (others keep theirs); takes effect without a restart.

    A weight may be 0 (the variant gets no traffic unless a request pins it),
    but not every weight.

    Raises
    ------
    InvalidInput
        An unknown variant (the message lists them), a negative weight, all weights zero.
    """
    cur = get_endpoint(ws, name)
    if cur.config.multi_model is not None:
        raise InvalidInput(f"endpoint {name!r} is a multi-model endpoint; it has no variant weights")
    if not weights:
        raise InvalidInput("give at least one VARIANT=WEIGHT")
    by_name = {v.name: v for v in cur.config.variants}
    for variant in weights:
        if variant not in by_name:
            raise InvalidInput(f"endpoint {name!r} has no variant {variant!r}; its variants are "
                               f"{', '.join(by_name)}")
    variants = tuple(replace(v, weight=_check_weight(v.name, weights[v.name], allow_zero=True))
                     if v.name in weights else v for v in cur.config.variants)
    if sum(v.weight for v in variants) <= 0:
        raise InvalidInput("every variant would have weight 0; at least one needs a weight above 0")
    details = {"weights": {v.name: v.weight for v in variants}}
    return apply_config(ws, name, replace(cur.config, variants=variants), action="update_weights", by=by,
                        reason=reason, details=details, expected_version=cur.version)


def delete_endpoint(ws: Workspace, name: str, *, by: str | None = None, reason: str | None = None) -> None:
    """Delete an endpoint and its API keys; its history stays (see :func:`endpoint_history`)."""
    who = actor(by)
    why = clean_reason(reason)
    with ws.meta.session(write=True) as s:
        row = _row(s, name, lock=True)
        old = dict(row.config)
        row.version += 1
        row.status = "Deleted"
        _record(ws, s, row, "delete", old, None, who, why, None)
        for key in s.scalars(select(EndpointApiKey).where(EndpointApiKey.endpoint_id == row.id)):
            s.delete(key)
        s.delete(row)


# -- API keys -----------------------------------------------------------------------------------------
def create_api_key(ws: Workspace, name: str, *, description: str = "", by: str | None = None) -> NewApiKey:
    """Create an API key for endpoint ``name``; the plaintext is in the result, and only there.

    The endpoint's version goes up, so running servers learn the key within a second.
    """
    who = actor(by)
    text = " ".join((description or "").split())
    if len(text) > 500:
        raise InvalidInput(f"the description has {len(text)} characters; at most 500")
    key_id, plaintext, salt, digest = _auth.new_key()
    with ws.meta.session(write=True) as s:
        row = _row(s, name, lock=True)
        s.add(EndpointApiKey(id=key_id, endpoint_id=row.id, salt=salt, key_hash=digest, description=text,
                             created_by=who, created_at=utcnow()))
        row.version += 1
        row.updated_at = utcnow()
        s.flush()
        cfg = dict(row.config)
        _record(ws, s, row, "api_key_created", cfg, cfg, who, None, {"key_id": key_id})
    return NewApiKey(key_id, name, plaintext)


def list_api_keys(ws: Workspace, name: str) -> list[ApiKeyInfo]:
    """The API keys of endpoint ``name`` (revoked ones too), oldest first; never their secrets."""
    with ws.meta.session() as s:
        row = _row(s, name)
        keys = s.scalars(select(EndpointApiKey).where(EndpointApiKey.endpoint_id == row.id)
                         .order_by(EndpointApiKey.created_at, EndpointApiKey.id))
        return [ApiKeyInfo(k.id, name, k.description, k.created_by, as_utc(k.created_at),
                           None if k.revoked_at is None else as_utc(k.revoked_at)) for k in keys]


def revoke_api_key(ws: Workspace, name: str, key_id: str, *, by: str | None = None) -> None:
    """Revoke one API key of endpoint ``name`` (running servers refuse it within a second)."""
    who = actor(by)
    with ws.meta.session(write=True) as s:
        row = _row(s, name, lock=True)
        key = s.get(EndpointApiKey, key_id)
        if key is None or key.endpoint_id != row.id:
            raise NotFound(f"endpoint {name!r} has no API key {key_id!r}; see `loopml endpoints api-keys {name}`")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            row.version += 1
            row.updated_at = utcnow()
            s.flush()
            cfg = dict(row.config)
            _record(ws, s, row, "api_key_revoked", cfg, cfg, who, None, {"key_id": key_id})


# -- parsing (CLI forms) --------------------------------------------------------------------------------
def parse_variant(text: str) -> VariantSpec:
    """Parse ``NAME=MODEL_REF:WEIGHT`` (``a=churn:3:0.8``, ``b=churn@production:0.2``).

    Examples
    --------
    >>> parse_variant("a=churn:3:0.8")
    VariantSpec(name='a', model='churn:3', weight=0.8)
    """
    name, sep, rest = (text or "").partition("=")
    ref, sep2, weight = rest.rpartition(":")
    example = "NAME=MODEL:VERSION:WEIGHT, e.g. a=churn:3:0.8"
    if not sep or not sep2 or not name.strip() or not ref.strip():
        raise InvalidInput(f"variant {text!r} must look like {example}")
    try:
        w = float(weight)
    except ValueError:
        raise InvalidInput(f"variant {text!r} must end with its weight: {example}") from None
    return VariantSpec(name.strip(), ref.strip(), w)


def parse_weights(items: Iterable[str]) -> dict[str, float]:
    """Parse ``NAME=WEIGHT`` items into a dict."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, weight = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(weight)
        except ValueError:
            raise InvalidInput(f"weight {item!r} must look like VARIANT=WEIGHT, e.g. a=0.5") from None
    return out


__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_VARIANT",
    "DEPLOYED_TO",
    "ENDPOINT_KIND",
    "ENDPOINT_UPDATED",
    "IN_SERVICE",
    "ApiKeyInfo",
    "AuthConfig",
    "CaptureConfig",
    "EndpointChangeInfo",
    "EndpointConfig",
    "EndpointInfo",
    "LimitsConfig",
    "MicroBatchingConfig",
    "ModelTarget",
    "MultiModelConfig",
    "NewApiKey",
    "Variant",
    "VariantPicker",
    "VariantSpec",
    "active_keys",
    "apply_config",
    "build_config",
    "check_endpoint_name",
    "create_api_key",
    "delete_endpoint",
    "deploy",
    "endpoint_history",
    "endpoint_versions",
    "get_endpoint",
    "list_api_keys",
    "list_endpoints",
    "parse_variant",
    "parse_weights",
    "placement_of",
    "revoke_api_key",
    "update_endpoint",
    "update_weights",
]
