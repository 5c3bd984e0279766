"""Production readiness: a checklist for one model version, computed from what the workspace records.

:func:`readiness` answers "may this version serve production traffic?" with
one item per question, each passed or failed with its evidence:

=====================  =====================================================================
item                   passes when
=====================  =====================================================================
approved               the version's approval status is ``Approved``
holdout_evaluation     a stored evaluation of the version (or its run or package) used a dataset
                       version other than the data it was trained and validated on
performance_benchmark  such an evaluation measured the serving latency (p50/p99 in its
                       model–business alignment table)
monitor_baseline       a data-quality baseline exists for the version or its training data
monitoring             the endpoint has a monitoring schedule (with the triggers stage), else a
                       monitoring run has checked the endpoint
alarms                 alarms watch the endpoint (their dimensions name it)
rollback               an earlier version of the model is ``Approved``, so there is one to go back to
endpoint_auth          the endpoint requires an API key
artifacts_verified     every file of the model package matches its hash, checked now
=====================  =====================================================================

The endpoint is the one given, else the one serving the version; without
either, the endpoint items fail and say to deploy or name one.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopml._util import utcnow
from loopml.errors import IntegrityError, LoopmlError, NotFound
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.evaluate import EvaluationResult
    from loopml.registry import ModelVersionInfo
    from loopml.serve.endpoints import EndpointInfo
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the items of a report, in order: (key, title)
ITEMS: tuple[tuple[str, str], ...] = (
    ("approved", "approved in the registry"),
    ("holdout_evaluation", "evaluated on a holdout"),
    ("performance_benchmark", "performance benchmark recorded"),
    ("monitor_baseline", "monitoring baseline"),
    ("monitoring", "monitors configured"),
    ("alarms", "alarms set"),
    ("rollback", "rollback possible"),
    ("endpoint_auth", "endpoint requires authentication"),
    ("artifacts_verified", "artifact hashes verified"),
)
_TITLES = dict(ITEMS)


@dataclass(frozen=True)
class ReadinessItem:
    """One item of the checklist.

    Attributes
    ----------
    key
        A stable name (``holdout_evaluation``, ...; see :data:`ITEMS`).
    title
        What it checks, in words.
    passed
        Whether it holds.
    evidence
        What was found (or not), naming the records: an evaluation and its
        dataset, a baseline, alarms, versions, the hash check.
    """

    key: str
    title: str
    passed: bool
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"key": self.key, "title": self.title, "passed": self.passed, "evidence": self.evidence}


@dataclass(frozen=True)
class ReadinessReport:
    """The checklist of one model version.

    Attributes
    ----------
    model
        The version checked, ``NAME:VERSION``.
    model_version_id
        Its id.
    endpoint
        The endpoint the endpoint items looked at (None when there was none).
    items
        The items, in the order of :data:`ITEMS`.
    checked_at
        When the report was computed (UTC).
    """

    model: str
    model_version_id: str
    endpoint: str | None
    items: tuple[ReadinessItem, ...]
    checked_at: datetime

    @property
    def passed(self) -> bool:
        """True when every item passed."""
        return all(i.passed for i in self.items)

    @property
    def failed(self) -> list[ReadinessItem]:
        """The items that failed."""
        return [i for i in self.items if not i.passed]

    def item(self, key: str) -> ReadinessItem:
        """The item called ``key`` (KeyError naming the keys if there is none)."""
        for i in self.items:
            if i.key == key:
                return i
        raise KeyError(f"no readiness item {key!r}; the items are {', '.join(k for k, _ in ITEMS)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {"model": self.model, "model_version_id": self.model_version_id, "endpoint": self.endpoint,
                "passed": self.passed, "passed_count": sum(i.passed for i in self.items),
                "total": len(self.items), "items": [i.to_dict() for i in self.items],
                "checked_at": self.checked_at.isoformat()}


def _item(key: str, passed: bool, evidence: str) -> ReadinessItem:
    return ReadinessItem(key, _TITLES[key], bool(passed), evidence)


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


# -- the evaluations of a version -----------------------------------------------------------------
@dataclass(frozen=True)
class _Evaluation:
    sha256: str
    result: EvaluationResult

    @property
    def dataset(self) -> str:
        return str(self.result.source.get("dataset") or "?")


def _evaluations(ws: Workspace, mv: ModelVersionInfo) -> list[_Evaluation]:
    """Every stored evaluation linked from the version, its training run or its package, oldest first."""
    from loopml.evaluate import load_evaluation
    from loopml.evaluate.run import EVALUATED_BY, EVALUATION_KIND

    subjects = [mv.entity, EntityRef("model_package", mv.package_sha256)]
    if mv.run_id:
        subjects.append(EntityRef("run", mv.run_id))
    seen: dict[str, None] = {}
    for subject in subjects:
        for ref in ws.lineage.targets(subject, EVALUATED_BY, EVALUATION_KIND):
            seen.setdefault(ref.id, None)
    out: list[_Evaluation] = []
    for sha in seen:
        try:
            out.append(_Evaluation(sha, load_evaluation(ws, sha)))
        except (IntegrityError, NotFound) as e:  # a damaged record is not evidence; say so in the log
            log.warning("readiness of %s: skipping evaluation %s: %s", mv.ref, sha[:12], e)
    return out


def _holdouts(mv: ModelVersionInfo, evals: Sequence[_Evaluation]) -> list[_Evaluation]:
    """The evaluations on data the version did not learn from (by version id and by content)."""
    ids = {str(d.get("id")) for d in mv.datasets if d.get("id")}
    hashes = {str(d.get("content_hash")) for d in mv.datasets if d.get("content_hash")}
    return [e for e in evals
            if e.result.source.get("dataset_id") not in ids and e.result.source.get("content_hash") not in hashes]


def _headline(e: _Evaluation) -> str:
    metrics = e.result.headline or {}
    name = next(iter(metrics), None)
    return f"{name} {_fmt(metrics[name])}" if name is not None and metrics[name] is not None else "no headline metric"


def _check_holdout(mv: ModelVersionInfo, evals: Sequence[_Evaluation]) -> ReadinessItem:
    trained = ", ".join(f"{d.get('name')}:{d.get('version')}" for d in mv.datasets) or None
    if trained is None:
        return _item("holdout_evaluation", False,
                     f"{mv.ref} has no recorded training data, so no evaluation can be shown to be on held-out "
                     "data; register it from a training run")
    good = _holdouts(mv, evals)
    if not good:
        on = ", ".join(sorted({e.dataset for e in evals}))
        seen = f"its {len(evals)} evaluation(s) used only its training data ({on})" if evals else "no evaluation"
        return _item("holdout_evaluation", False,
                     f"{seen}; trained on {trained}. Run `loopml evaluate {mv.ref} --data HOLDOUT`")
    e = good[-1]
    more = f" (+{len(good) - 1} more)" if len(good) > 1 else ""
    return _item("holdout_evaluation", True,
                 f"evaluation {e.sha256[:12]} on {e.dataset}: {_headline(e)}{more}; trained on {trained}")


def _check_benchmark(mv: ModelVersionInfo, evals: Sequence[_Evaluation]) -> ReadinessItem:
    for e in [*reversed(_holdouts(mv, evals)), *reversed(evals)]:   # the newest, holdout evaluations first
        lat = (e.result.business or {}).get("latency") or {}
        p50, p99 = lat.get("p50_ms"), lat.get("p99_ms")
        if p50 is not None and p99 is not None:
            rows = f" over {lat['rows']} requests" if lat.get("rows") else ""
            how = lat.get("source") or "given"
            return _item("performance_benchmark", True,
                         f"latency p50 {p50:.3g} ms, p99 {p99:.3g} ms{rows} ({how}, evaluation {e.sha256[:12]} "
                         f"on {e.dataset})")
    return _item("performance_benchmark", False,
                 f"no evaluation of {mv.ref} measured its latency; run `loopml evaluate {mv.ref} --data HOLDOUT` "
                 "(latency is timed unless --latency-rows 0)")


def _check_baseline(ws: Workspace, mv: ModelVersionInfo) -> ReadinessItem:
    from loopml.monitor.results import list_baselines

    ids = {str(d.get("id")) for d in mv.datasets if d.get("id")}
    for b in list_baselines(ws, kind="data_quality"):
        if b.model_version_id == mv.id:
            return _item("monitor_baseline", True, f"baseline {b.name} ({b.id}) of {mv.ref} on {b.dataset_ref}")
    for b in list_baselines(ws, kind="data_quality"):
        if b.dataset_version_id in ids:
            return _item("monitor_baseline", True,
                         f"baseline {b.name} ({b.id}) of its training data {b.dataset_ref}")
    return _item("monitor_baseline", False,
                 f"no data-quality baseline for {mv.ref} or its training data; run "
                 f"`loopml monitor baseline --model {mv.ref}`")


def _schedules_of(ws: Workspace, endpoint: str) -> list[str] | None:
    """Enabled monitoring schedules of ``endpoint``, described; None without the triggers stage.

    Schedules belong to the triggers stage, which comes after monitoring in the
    import order, so it is looked up by name at run time and may be absent.
    """
    try:
        mod = importlib.import_module("loopml.triggers")
    except ImportError:
        return None
    lister: Callable[..., Iterable[Any]] | None = getattr(mod, "list_monitor_schedules", None)
    if lister is None:
        return None
    return [f"{s.name} ({s.kind}, {s.schedule})" for s in lister(ws, endpoint=endpoint) if s.enabled]


def _check_monitoring(ws: Workspace, endpoint: str | None) -> ReadinessItem:
    from loopml.monitor.results import list_results

    if endpoint is None:
        return _item("monitoring", False, "no endpoint serves the version; deploy it or name one with --endpoint")
    schedules = _schedules_of(ws, endpoint)
    if schedules:
        return _item("monitoring", True, f"monitoring schedule(s) of endpoint {endpoint}: {', '.join(schedules)}")
    runs = list_results(ws, target=f"endpoint:{endpoint}", limit=1)
    if schedules is None and runs:
        r = runs[0]
        return _item("monitoring", True,
                     f"latest monitoring run {r.id} ({r.kind}, {r.status}) on endpoint {endpoint}, "
                     f"{r.created_at:%Y-%m-%d %H:%M} UTC")
    fix = f"`loopml monitor schedule {endpoint} ...`" if schedules is not None else \
        f"`loopml monitor run {endpoint}` on a schedule"
    return _item("monitoring", False, f"no monitoring schedule for endpoint {endpoint}; add one with {fix}")


def _check_alarms(ws: Workspace, endpoint: str | None) -> ReadinessItem:
    from loopml.metrics.alarms import list_alarms

    if endpoint is None:
        return _item("alarms", False, "no endpoint serves the version; deploy it or name one with --endpoint")
    mine = [a for a in list_alarms(ws) if a.dimensions.get("endpoint") == endpoint]
    if not mine:
        return _item("alarms", False, f"no alarm watches endpoint {endpoint}; add one with "
                     f"`loopml alarms put NAME --metric ... --dimension endpoint={endpoint} ...`")
    return _item("alarms", True, "; ".join(f"{a.name}: {a.condition} [{a.state}]" for a in mine))


def _check_rollback(ws: Workspace, mv: ModelVersionInfo) -> ReadinessItem:
    from loopml.registry import APPROVED, list_versions

    earlier = [v for v in list_versions(ws, mv.name, status=APPROVED) if v.version < mv.version]
    if not earlier:
        return _item("rollback", False, f"no earlier version of {mv.name} is Approved; there is nothing to roll "
                     "back to (approve a known-good version)")
    prev = earlier[-1]
    aliases = f" (@{', @'.join(prev.aliases)})" if prev.aliases else ""
    return _item("rollback", True, f"{prev.ref}{aliases} is Approved ({len(earlier)} earlier approved version(s))")


def _check_auth(ep: EndpointInfo | None) -> ReadinessItem:
    if ep is None:
        return _item("endpoint_auth", False, "no endpoint serves the version; deploy it or name one with --endpoint")
    if not ep.config.auth.required:
        return _item("endpoint_auth", False, f"endpoint {ep.name} answers requests without an API key; "
                     f"`loopml endpoints update {ep.name} --auth` and create a key")
    return _item("endpoint_auth", True,
                 f"endpoint {ep.name} requires an API key ({len(ep.api_keys)} active key(s))")


def _check_artifacts(ws: Workspace, mv: ModelVersionInfo) -> ReadinessItem:
    from loopml.registry.versions import verify_stored_package

    try:
        manifest = verify_stored_package(ws, mv.package_sha256, what=f"the package of {mv.ref}")
    except (IntegrityError, NotFound, LoopmlError) as e:
        return _item("artifacts_verified", False, str(e))
    files = dict(manifest.get("files") or {})
    return _item("artifacts_verified", True,
                 f"package {mv.package_sha256[:12]}: manifest and {len(files)} file(s) match their sha256 now")


def _endpoint(ws: Workspace, mv: ModelVersionInfo, name: str | None) -> tuple[EndpointInfo | None, str]:
    """The endpoint to check (given, or the first serving the version) and a note on how it was chosen."""
    from loopml.serve.endpoints import get_endpoint, list_endpoints

    if name is not None:
        ep = get_endpoint(ws, name)
        serves = mv.ref in ep.config.model_refs()
        return ep, "" if serves else f"endpoint {ep.name} does not serve {mv.ref} (it serves " \
            f"{', '.join(ep.config.model_refs()) or 'nothing'})"
    serving = [e for e in list_endpoints(ws) if mv.ref in e.config.model_refs()]
    if not serving:
        return None, f"{mv.ref} is not deployed to any endpoint"
    note = f"also served by {', '.join(e.name for e in serving[1:])}" if len(serving) > 1 else ""
    return serving[0], note


def readiness(ws: Workspace, ref: str, endpoint: str | None = None) -> ReadinessReport:
    """The production-readiness checklist of a model version.

    Parameters
    ----------
    ws
        The workspace.
    ref
        The version: ``NAME:VERSION``, ``NAME@ALIAS`` or ``NAME`` (its newest approved version).
    endpoint
        The endpoint that serves it or will (default: the first endpoint serving the version).

    Returns
    -------
    ReadinessReport
        Every item of :data:`ITEMS`, passed or failed, with evidence.

    Raises
    ------
    NotFound
        No such model, version or endpoint.

    Examples
    --------
    >>> import tempfile, loopml
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> readiness(ws, "churn:1")
    Traceback (most recent call last):
    ...
    loopml.errors.NotFound: no model named 'churn' (models: none yet); register one with `loopml models register RUN --name NAME`
    >>> ws.close()
    """
    from loopml.registry import APPROVED, get_model_version

    mv = get_model_version(ws, ref)
    ep, note = _endpoint(ws, mv, endpoint)
    ep_name = ep.name if ep is not None else None
    evals = _evaluations(ws, mv)
    approved = _item("approved", mv.approval_status == APPROVED,
                     f"{mv.ref} is {mv.approval_status}" + (f" by {mv.approval_by}" if mv.approval_by else ""))
    items = [
        approved,
        _check_holdout(mv, evals),
        _check_benchmark(mv, evals),
        _check_baseline(ws, mv),
        _check_monitoring(ws, ep_name),
        _check_alarms(ws, ep_name),
        _check_rollback(ws, mv),
        _check_auth(ep),
        _check_artifacts(ws, mv),
    ]
    if note:
        log.info("readiness of %s: %s", mv.ref, note)
        items = [i if i.key not in ("monitoring", "alarms", "endpoint_auth") or ep is None
                 else ReadinessItem(i.key, i.title, i.passed, f"{i.evidence} ({note})") for i in items]
    return ReadinessReport(mv.ref, mv.id, ep_name, tuple(items), utcnow())


__all__ = ["ITEMS", "ReadinessItem", "ReadinessReport", "readiness"]
