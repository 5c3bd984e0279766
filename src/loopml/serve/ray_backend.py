"""Ray Serve as the backend of an endpoint: its variants served by a Ray cluster, for more than one machine.

``loopml endpoints deploy EP --model M:V --backend ray [--replicas MIN:MAX --target-inflight N]``
keeps ``loopml serve`` as the front door (routes, variants, weights, auth,
capture, metrics, guarded deployments all stay the same) and runs each
variant's model as a **Ray Serve deployment** wrapping the same
:class:`~loopml.serve.runtime.Predictor`. The server talks to it through a
Ray ``DeploymentHandle``; Ray Serve places the replicas on the cluster's nodes
and autoscales them.

Our settings map to Ray Serve's (see :func:`ray_deployment_options`):

================================  ===========================================
loopml                            Ray Serve
================================  ===========================================
``--replicas MIN:MAX``            ``autoscaling_config.min_replicas`` / ``max_replicas``
``--target-inflight N``           ``autoscaling_config.target_ongoing_requests``
scale-out / scale-in cooldowns    ``upscale_delay_s`` / ``downscale_delay_s``
``--serverless``                  ``min_replicas=0``, ``target_ongoing_requests=1``,
                                  ``downscale_delay_s`` = the idle timeout; the server
                                  still answers 429 past ``--max-concurrency``
``--memory-mb``                   ``ray_actor_options.memory`` (a scheduling reservation)
no ``--replicas``                 ``num_replicas=1``
================================  ===========================================

The model package travels to the replicas through Ray's object store (no
shared file system needed) and is verified against its hash there before it
loads. The server process joins the cluster named by ``RAY_ADDRESS`` (e.g.
``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the
others, then ``RAY_ADDRESS=auto loopml serve``), or starts a local Ray when
none is set. Ray Serve's own HTTP proxy is not started: requests come in
through ``loopml serve``. Needs ``pip install 'loopml[ray]'`` (Ray with its
``serve`` extra).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml import errors as _errors
from loopml.errors import InvalidInput, LoopmlError, ModelError
from loopml.serve.runtime import InvokeResult

if TYPE_CHECKING:
    from loopml.serve.app import ModelCache
    from loopml.serve.endpoints import EndpointConfig

log = logging.getLogger(__name__)

#: CPUs each Ray Serve replica reserves (override with $LOOPML_RAY_REPLICA_CPUS)
DEFAULT_REPLICA_CPUS = 1.0
_init_lock = threading.Lock()


def ray_deployment_options(config: EndpointConfig) -> dict[str, Any]:
    """The Ray Serve deployment options an endpoint config asks for (our autoscaling mapped to Ray's).

    Examples
    --------
    >>> from loopml.serve.endpoints import EndpointConfig
    >>> from loopml.serve.autoscale import check_scaling
    >>> cfg = EndpointConfig(extra={"backend": "ray", "scaling": check_scaling(1, 4, target_inflight=3).to_dict()})
    >>> opts = ray_deployment_options(cfg)
    >>> {k: opts["autoscaling_config"][k] for k in ("min_replicas", "max_replicas", "target_ongoing_requests")}
    {'min_replicas': 1, 'max_replicas': 4, 'target_ongoing_requests': 3.0}
    """
    from loopml.serve.autoscale import ScalingConfig
    from loopml.serve.serverless import ServerlessConfig

    cpus = float(os.environ.get("LOOPML_RAY_REPLICA_CPUS") or DEFAULT_REPLICA_CPUS)
    actor: dict[str, Any] = {"num_cpus": cpus}
    sv = config.extra.get("serverless")
    sc = config.extra.get("scaling")
    if sv:
        s = ServerlessConfig.from_dict(sv)
        scaling = s.scaling()
        actor["memory"] = int(s.memory_mb) * 1024 * 1024
    elif sc:
        scaling = ScalingConfig.from_dict(sc)
    else:
        return {"num_replicas": 1, "ray_actor_options": actor, "max_ongoing_requests": 8}
    auto = {
        "min_replicas": scaling.min_replicas,
        "initial_replicas": max(scaling.min_replicas, 1 if sv else scaling.min_replicas),
        "max_replicas": scaling.max_replicas,
        "target_ongoing_requests": float(scaling.target_inflight),
        "upscale_delay_s": float(scaling.scale_out_cooldown_s),
        "downscale_delay_s": float(scaling.idle_timeout_s if scaling.idle_timeout_s is not None
                                   else scaling.scale_in_cooldown_s),
    }
    if sv:
        auto["initial_replicas"] = 0
    return {"autoscaling_config": auto, "ray_actor_options": actor,
            "max_ongoing_requests": max(1, math.ceil(scaling.target_inflight * 2))}


def ensure_ray() -> Any:
    """Import Ray Serve and join (or start) a Ray cluster; InvalidInput saying how to install it otherwise."""
    try:
        import ray
        from ray import serve
    except ImportError as e:
        raise InvalidInput(f"the ray backend needs Ray Serve: pip install 'loopml[ray]' ({e})") from None
    with _init_lock:
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or None
            ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
        serve.start(proxy_location="Disabled")
    return serve


class RayPredictor:
    """The body of the Ray Serve deployment: one :class:`Predictor`, loaded from package files sent by the server."""

    def __init__(self, files: dict[str, bytes], sha256: str, max_rows: int, max_payload_bytes: int) -> None:
        import tempfile

        from loopml.serve.runtime import Predictor
        from loopml.train.package import load_model_package

        self._dir = tempfile.TemporaryDirectory(prefix="loopml-ray-model-")
        root = Path(self._dir.name)
        for rel, data in files.items():
            target = (root / rel).resolve()
            if root.resolve() not in target.parents:
                raise ValueError(f"package file {rel!r} would land outside the package")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        self.predictor = Predictor(load_model_package(root, sha256=sha256), max_rows=max_rows,
                                   max_payload_bytes=max_payload_bytes)

    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[Any, ...]:
        """``("ok", body, content type, rows, model ms)`` or ``("error", class, status, code, message)``."""
        try:
            r = self.predictor.invoke(body, content_type, accept)
        except LoopmlError as e:
            return ("error", type(e).__name__, e.http_status, e.code, str(e))
        except Exception as e:  # a model failure is an answer, not a dead replica
            return ("error", "ModelError", 424, "ModelError", f"the model failed: {type(e).__name__}: {e}")
        return ("ok", r.body, r.content_type, r.n_rows, r.model_ms)


class _RemoteError(LoopmlError):
    """A LoopmlError from a Ray replica whose class is not in :mod:`loopml.errors`."""


def _package_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class RayBackend:
    """A variant served by a Ray Serve deployment (see the module's docs).

    Parameters
    ----------
    cache
        The server's model cache (its workspace gives the package files).
    sha
        The model package.
    config
        The endpoint's config: limits, and ``scaling``/``serverless`` mapped to Ray Serve's autoscaling.
    """

    def __init__(self, cache: ModelCache, sha: str, config: EndpointConfig) -> None:
        from loopml.serve.serverless import ServerlessConfig
        from loopml.train.package import materialize_package, read_manifest

        serve = ensure_ray()
        folder = materialize_package(cache.ws, sha)
        manifest, _ = read_manifest(folder, sha256=sha)
        self.sha = sha
        self.input_names: list[str] = [str(c["name"]) for c in manifest["signature"]["inputs"]]
        self.size_bytes = 0
        self.options = ray_deployment_options(config)
        sv = config.extra.get("serverless")
        self.max_concurrency: int | None = ServerlessConfig.from_dict(sv).max_concurrency if sv else None
        key = f"{sha}:{config.limits.max_rows}:{config.limits.max_payload_bytes}:{sorted(self.options.items())!r}"
        self.app_name = f"loopml-{sha[:12]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        deployment = serve.deployment(RayPredictor, name="predictor", **self.options)
        app = deployment.bind(_package_files(folder), sha, config.limits.max_rows, config.limits.max_payload_bytes)
        self.handle = serve.run(app, name=self.app_name, route_prefix=None, blocking=False)
        self.inflight = 0
        self.throttled = 0
        self._closed = False

    async def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> InvokeResult:
        """Answer one request on the Ray Serve deployment (429 past a serverless max concurrency)."""
        if self.max_concurrency is not None and self.inflight >= self.max_concurrency:
            self.throttled += 1
            raise _errors.Throttled(f"this serverless endpoint already has {self.inflight} requests in flight, its "
                                    f"max concurrency ({self.max_concurrency}); retry with backoff")
        self.inflight += 1
        try:
            out = await self.handle.remote(body, content_type, accept)
        except Exception as e:
            raise ModelError(f"the Ray Serve deployment {self.app_name} failed: {type(e).__name__}: {e}") from e
        finally:
            self.inflight -= 1
        if out[0] == "ok":
            return InvokeResult(out[1], out[2], int(out[3]), [], [], float(out[4]))
        _, name, status, code, message = out
        cls = getattr(_errors, str(name), None)
        if isinstance(cls, type) and issubclass(cls, LoopmlError) and cls.http_status == status:
            raise cls(message)
        err = _RemoteError(message)
        err.http_status, err.code = int(status), str(code)
        raise err

    def stats(self) -> dict[str, Any]:
        """What ``GET /endpoints`` shows: the Ray application, its options and its replicas."""
        out: dict[str, Any] = {"backend": "ray", "app": self.app_name, "options": self.options,
                               "inflight": self.inflight, "throttled": self.throttled, "replicas": 0}
        with contextlib.suppress(Exception):
            from ray import serve

            app = serve.status().applications.get(self.app_name)
            if app is not None:
                out["status"] = str(app.status)
                dep = app.deployments.get("predictor")
                if dep is not None:
                    counts = dep.replica_states or {}
                    out["replicas"] = int(sum(n for state, n in counts.items() if str(state).endswith("RUNNING")))
        return out

    def take_cold_starts(self) -> list[float]:
        """Ray Serve starts its own replicas; their start times are not seen here."""
        return []

    def close(self) -> None:
        """Delete the Ray Serve application."""
        if self._closed:
            return
        self._closed = True
        try:
            from ray import serve

            serve.delete(self.app_name, _blocking=False)
        except Exception as e:  # the cluster may be gone already
            log.warning("could not delete Ray Serve application %s: %s", self.app_name, e)


__all__ = ["DEFAULT_REPLICA_CPUS", "RayBackend", "RayPredictor", "ensure_ray", "ray_deployment_options"]
