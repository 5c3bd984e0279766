"""The monitoring store shared by every monitor: baselines and results (executions).

Each monitor (data quality, model quality, bias, attribution) computes its
findings as pure functions and then records them here with
:func:`save_result`: the output files become content-addressed artifacts, the
row keeps the status, a JSON summary and the violation count, lineage links
the target (endpoint or dataset version) and the baseline to the result, and
the event ``monitor.completed`` tells subscribers (triggers, alarms) about it
— all in one transaction.

Baselines are recorded the same way with :func:`save_baseline`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from loopml._util import as_utc, check_name, new_id, utcnow
from loopml.errors import InvalidInput, NotFound
from loopml.monitor.models import MonitorBaseline, MonitorResult
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.workspace import Workspace

#: event emitted when a monitoring execution is recorded
MONITOR_COMPLETED = "monitor.completed"
#: event emitted when a baseline is recorded
BASELINE_CREATED = "monitor.baseline_created"

#: the monitors that record results here
MONITOR_KINDS = ("data_quality", "model_quality", "bias", "attribution")

COMPLETED = "Completed"
COMPLETED_WITH_VIOLATIONS = "CompletedWithViolations"
FAILED = "Failed"
NO_DATA = "NoData"
#: the statuses of an execution (SageMaker's, plus NoData for an empty window)
STATUSES = (COMPLETED, COMPLETED_WITH_VIOLATIONS, FAILED, NO_DATA)

RESULT_KIND = "monitoring_result"
BASELINE_KIND = "monitor_baseline"
REPORT_KIND = "monitor_report"
ENDPOINT_KIND = "endpoint"
#: lineage relations
MONITORED_BY = "monitored_by"
BASELINED_BY = "baselined_by"
COMPARED_WITH = "baseline_of"
PRODUCED = "produced"

_TARGET_KINDS = ("endpoint", "dataset")
_REPORT_FILES = ("report.html",)


# -- targets -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a monitor looked at: an endpoint (by name) or a dataset version (``name:version``).

    Examples
    --------
    >>> Target.parse("endpoint:churn-ep"), Target.parse("churn-ep").kind, Target.parse("churn:2").kind
    (Target(kind='endpoint', name='churn-ep'), 'endpoint', 'dataset')
    >>> str(Target("dataset", "churn:2"))
    'dataset:churn:2'
    """

    kind: Literal["endpoint", "dataset"]
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str | Target) -> Target:
        """Read ``endpoint:NAME``, ``dataset:NAME:VER``, a bare endpoint ``NAME`` or a bare ``NAME:VER``.

        A bare name with a ``:`` is a dataset version (endpoint names have no ``:``).
        """
        if isinstance(text, Target):
            return text
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"monitoring target {text!r} is empty; give an endpoint name or "
                               "dataset NAME:VERSION")
        text = text.strip()
        kind, sep, rest = text.partition(":")
        if sep and kind in _TARGET_KINDS and rest:
            return cls(kind, rest)  # type: ignore[arg-type]
        return cls("dataset" if ":" in text else "endpoint", text)


def _target_entity(ws: Workspace, target: Target) -> tuple[Target, EntityRef]:
    """The target with a dataset's version made explicit, and its lineage node."""
    if target.kind == "endpoint":
        # The endpoint's own lineage node when it exists; its name when it was deleted
        # (captured data outlives the endpoint) or never deployed here.
        from loopml.serve.endpoints import get_endpoint

        try:
            return target, get_endpoint(ws, target.name).entity
        except NotFound:
            return target, EntityRef(ENDPOINT_KIND, target.name)
    from loopml.data.catalog import Catalog

    info = Catalog(ws).get(target.name)
    return Target("dataset", info.ref), info.entity


# -- records -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """A stored baseline (see :func:`save_baseline`); read its files with :meth:`output`."""

    id: str
    kind: str
    name: str
    dataset_version_id: str | None
    dataset_ref: str | None
    model_version_id: str | None
    model_ref: str | None
    statistics_sha256: str | None
    constraints_sha256: str | None
    outputs: dict[str, str]
    details: dict[str, Any]
    created_at: datetime

    @property
    def entity(self) -> EntityRef:
        """The lineage reference of this baseline."""
        return EntityRef(BASELINE_KIND, self.id)

    def output(self, ws: Workspace, name: str) -> bytes:
        """The (hash-verified) content of one stored file, e.g. ``constraints.json``."""
        return _read_output(ws, self.outputs, name, f"baseline {self.name} ({self.id})")

    def output_path(self, ws: Workspace, name: str) -> str | None:
        """Local path of a stored file, or None for a remote artifact store."""
        return _output_path(ws, self.outputs, name, f"baseline {self.name} ({self.id})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "id": self.id, "kind": self.kind, "name": self.name,
            "dataset_version_id": self.dataset_version_id, "dataset": self.dataset_ref,
            "model_version_id": self.model_version_id, "model": self.model_ref,
            "statistics_sha256": self.statistics_sha256, "constraints_sha256": self.constraints_sha256,
            "outputs": self.outputs, "details": self.details, "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class MonitoringResult:
    """One recorded monitoring execution (see :func:`save_result`)."""

    id: str
    kind: str
    target: Target
    status: str
    summary: dict[str, Any]
    violation_count: int
    outputs: dict[str, str]
    since: datetime | None
    until: datetime | None
    baseline_id: str | None
    created_at: datetime
    #: local path of the stored HTML report, when there is one and the store is local
    report_path: str | None = field(default=None, compare=False)

    @property
    def entity(self) -> EntityRef:
        """The lineage reference of this result."""
        return EntityRef(RESULT_KIND, self.id)

    def output(self, ws: Workspace, name: str) -> bytes:
        """The (hash-verified) content of one output file, e.g. ``constraint_violations.json``."""
        return _read_output(ws, self.outputs, name, f"monitoring result {self.id}")

    def output_path(self, ws: Workspace, name: str) -> str | None:
        """Local path of an output file, or None for a remote artifact store."""
        return _output_path(ws, self.outputs, name, f"monitoring result {self.id}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "id": self.id, "kind": self.kind, "target_kind": self.target.kind, "target": self.target.name,
            "status": self.status, "violation_count": self.violation_count,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "baseline_id": self.baseline_id, "outputs": self.outputs, "report_path": self.report_path,
            "summary": self.summary, "created_at": self.created_at.isoformat(),
        }


def _read_output(ws: Workspace, outputs: Mapping[str, str], name: str, what: str) -> bytes:
    if name not in outputs:
        raise NotFound(f"{what} has no file {name!r}; it has {sorted(outputs)}")
    return ws.artifacts.get_bytes(outputs[name])


def _output_path(ws: Workspace, outputs: Mapping[str, str], name: str, what: str) -> str | None:
    if name not in outputs:
        raise NotFound(f"{what} has no file {name!r}; it has {sorted(outputs)}")
    return ws.artifacts.local_path(outputs[name])


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars made Python numbers and NaN/inf made None (strict JSON).

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": np.float64(1.5), "b": [float("nan"), np.int64(2)], "c": (True,)})
    {'a': 1.5, 'b': [None, 2], 'c': [True]}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return jsonable(item())
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, not {type(value).__name__}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _check_kind(kind: str) -> str:
    if kind not in MONITOR_KINDS:
        raise InvalidInput(f"monitor kind {kind!r} is not one of {', '.join(MONITOR_KINDS)}")
    return kind


def _store_outputs(ws: Workspace, outputs: Mapping[str, bytes]) -> dict[str, str]:
    stored: dict[str, str] = {}
    for name, data in outputs.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise InvalidInput(f"output name {name!r} must be a plain file name such as report.html")
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidInput(f"output {name!r} must be bytes, not {type(data).__name__}")
        stored[name] = ws.artifacts.put_bytes(bytes(data)).sha256
    return stored


# -- results -----------------------------------------------------------------------------------
def _result(row: MonitorResult, ws: Workspace | None = None) -> MonitoringResult:
    outputs = {str(k): str(v) for k, v in (row.outputs or {}).items()}
    report = next((outputs[n] for n in _REPORT_FILES if n in outputs), None)
    return MonitoringResult(
        id=row.id, kind=row.kind, target=Target(row.target_kind, row.target),  # type: ignore[arg-type]
        status=row.status, summary=dict(row.summary or {}), violation_count=row.violation_count,
        outputs=outputs, since=as_utc(row.since) if row.since else None,
        until=as_utc(row.until) if row.until else None, baseline_id=row.baseline_id,
        created_at=as_utc(row.created_at),
        report_path=ws.artifacts.local_path(report, verify=False) if ws is not None and report else None,
    )


def save_result(
    ws: Workspace,
    kind: str,
    target: str | Target,
    *,
    status: str,
    summary: Mapping[str, Any],
    outputs: Mapping[str, bytes] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    baseline_id: str | None = None,
    violation_count: int | None = None,
) -> MonitoringResult:
    """Record one monitoring execution with its output files, lineage and event.

    Parameters
    ----------
    ws
        The workspace.
    kind
        The monitor: ``data_quality``, ``model_quality``, ``bias`` or ``attribution``.
    target
        What was monitored: an endpoint name, a dataset ``NAME:VERSION``, or a
        :class:`Target` (``endpoint:NAME`` / ``dataset:NAME:VER`` strings work too).
        A dataset version must exist.
    status
        ``Completed``, ``CompletedWithViolations``, ``Failed`` or ``NoData``.
    summary
        JSON-ready findings (numpy numbers and NaN are converted).
    outputs
        Files to store, by plain file name (``constraint_violations.json``,
        ``report.html``, ...): each becomes a content-addressed artifact.
    since, until
        The window of captured data the run covered (UTC; naive means UTC).
    baseline_id
        The baseline compared with, if any (it must exist).
    violation_count
        How many violations were found; by default ``summary["violation_count"]``,
        else the length of ``summary["violations"]``, else 0.

    Returns
    -------
    MonitoringResult

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.monitor import save_result, list_results
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> r = save_result(ws, "model_quality", "churn-ep", status="Completed",
    ...                 summary={"accuracy": 0.91}, outputs={"metrics.json": b'{"accuracy": 0.91}'})
    >>> r.status, r.target.name, r.output(ws, "metrics.json")
    ('Completed', 'churn-ep', b'{"accuracy": 0.91}')
    >>> [x.id for x in list_results(ws, target="churn-ep")] == [r.id]
    True
    >>> ws.close()
    """
    _check_kind(kind)
    if status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")
    tgt = Target.parse(target)
    since_utc, until_utc = _utc(since, "since"), _utc(until, "until")
    if since_utc is not None and until_utc is not None and since_utc > until_utc:
        raise InvalidInput(f"the window starts ({since_utc.isoformat()}) after it ends ({until_utc.isoformat()})")
    body = jsonable(dict(summary))
    if violation_count is None:
        vc = body.get("violation_count")
        if isinstance(vc, int):
            violation_count = vc
        elif isinstance(body.get("violations"), list):
            violation_count = len(body["violations"])
        else:
            violation_count = 0
    if violation_count < 0:
        raise InvalidInput(f"violation_count must be 0 or more, not {violation_count}")
    tgt, target_entity = _target_entity(ws, tgt)
    stored = _store_outputs(ws, outputs or {})
    row = MonitorResult(
        id=new_id("mon"), kind=kind, target_kind=tgt.kind, target=tgt.name, since=since_utc, until=until_utc,
        status=status, baseline_id=baseline_id, summary=body, violation_count=int(violation_count),
        outputs=stored, created_at=utcnow(),
    )
    entity = EntityRef(RESULT_KIND, row.id)
    with ws.meta.session(write=True) as s:
        if baseline_id is not None and s.get(MonitorBaseline, baseline_id) is None:
            raise NotFound(f"no monitoring baseline {baseline_id!r}; see `loopml monitor baselines`")
        s.add(row)
        ws.lineage.add(target_entity, entity, MONITORED_BY, session=s)
        if baseline_id is not None:
            ws.lineage.add(EntityRef(BASELINE_KIND, baseline_id), entity, COMPARED_WITH, session=s)
        for name, sha in stored.items():
            out_kind = REPORT_KIND if name in _REPORT_FILES else "artifact"
            ws.lineage.add(entity, EntityRef(out_kind, sha), PRODUCED, session=s)
        ws.events.emit(MONITOR_COMPLETED, entity, {
            "result_id": row.id, "kind": kind, "target_kind": tgt.kind, "target": tgt.name,
            "status": status, "violation_count": int(violation_count), "baseline_id": baseline_id,
            "since": since_utc.isoformat() if since_utc else None,
            "until": until_utc.isoformat() if until_utc else None,
        }, session=s)
    return _result(row, ws)


def get_result(ws: Workspace, result_id: str) -> MonitoringResult:
    """The recorded execution ``result_id`` (an id such as ``mon-...``, or a unique prefix of one)."""
    if not isinstance(result_id, str) or not result_id.strip():
        raise InvalidInput("give a monitoring result id (see `loopml monitor results`)")
    with ws.meta.session() as s:
        row = s.get(MonitorResult, result_id)
        if row is None and len(result_id) >= 4:
            rows = list(s.scalars(select(MonitorResult).where(MonitorResult.id.startswith(result_id,
                                                                                          autoescape=True)).limit(2)))
            if len(rows) > 1:
                raise InvalidInput(f"{result_id!r} matches several monitoring results; give more of the id")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"no monitoring result {result_id!r}; see `loopml monitor results`")
        return _result(row, ws)


def list_results(
    ws: Workspace,
    *,
    kind: str | None = None,
    target: str | Target | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 100,
) -> list[MonitoringResult]:
    """Recorded executions, newest first, filtered by monitor kind, target, status and creation time.

    ``target`` is parsed like in :func:`save_result`; ``since``/``until`` bound ``created_at``.
    """
    q = select(MonitorResult).order_by(MonitorResult.created_at.desc(), MonitorResult.id.desc())
    if kind is not None:
        q = q.where(MonitorResult.kind == _check_kind(kind))
    if target is not None:
        tgt = Target.parse(target)
        q = q.where(MonitorResult.target_kind == tgt.kind, MonitorResult.target == tgt.name)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")
        q = q.where(MonitorResult.status == status)
    if (s_ := _utc(since, "since")) is not None:
        q = q.where(MonitorResult.created_at >= s_)
    if (u_ := _utc(until, "until")) is not None:
        q = q.where(MonitorResult.created_at <= u_)
    if limit is not None:
        q = q.limit(limit)
    with ws.meta.session() as s:
        return [_result(r, ws) for r in s.scalars(q)]


# -- baselines ---------------------------------------------------------------------------------
def _baseline(row: MonitorBaseline) -> Baseline:
    return Baseline(
        id=row.id, kind=row.kind, name=row.name, dataset_version_id=row.dataset_version_id,
        dataset_ref=row.dataset_ref, model_version_id=row.model_version_id, model_ref=row.model_ref,
        statistics_sha256=row.statistics_sha256, constraints_sha256=row.constraints_sha256,
        outputs={str(k): str(v) for k, v in (row.outputs or {}).items()}, details=dict(row.details or {}),
        created_at=as_utc(row.created_at),
    )


def save_baseline(
    ws: Workspace,
    kind: str,
    name: str,
    *,
    outputs: Mapping[str, bytes],
    dataset_version: tuple[str, str] | None = None,
    model_version: tuple[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Baseline:
    """Record a baseline: store its files, link it to its dataset and model versions, emit an event.

    Parameters
    ----------
    ws
        The workspace.
    kind
        The monitor it serves (``data_quality``, ``model_quality``, ``bias``, ``attribution``).
    name
        A name to find it by; several baselines may share one (the newest wins on lookup).
    outputs
        Files by plain name; ``statistics.json`` and ``constraints.json`` are also
        recorded in their own columns.
    dataset_version, model_version
        ``(id, "name:version")`` of what it was computed from, if any.
    details
        Kind-specific JSON facts.
    """
    _check_kind(kind)
    check_name(name, "baseline")
    stored = _store_outputs(ws, outputs)
    row = MonitorBaseline(
        id=new_id("mbl"), kind=kind, name=name,
        dataset_version_id=dataset_version[0] if dataset_version else None,
        dataset_ref=dataset_version[1] if dataset_version else None,
        model_version_id=model_version[0] if model_version else None,
        model_ref=model_version[1] if model_version else None,
        statistics_sha256=stored.get("statistics.json"), constraints_sha256=stored.get("constraints.json"),
        outputs=stored, details=jsonable(dict(details or {})), created_at=utcnow(),
    )
    entity = EntityRef(BASELINE_KIND, row.id)
    with ws.meta.session(write=True) as s:
        s.add(row)
        if dataset_version:
            ws.lineage.add(EntityRef("dataset_version", dataset_version[0]), entity, BASELINED_BY, session=s)
        if model_version:
            ws.lineage.add(EntityRef("model_version", model_version[0]), entity, BASELINED_BY, session=s)
        for sha in stored.values():
            ws.lineage.add(entity, EntityRef("artifact", sha), PRODUCED, session=s)
        ws.events.emit(BASELINE_CREATED, entity, {
            "baseline_id": row.id, "kind": kind, "name": name, "dataset": row.dataset_ref, "model": row.model_ref,
        }, session=s)
    return _baseline(row)


def get_baseline(ws: Workspace, ref: str, *, kind: str | None = None) -> Baseline:
    """A baseline by id (``mbl-...``) or by name (the newest of that name, of ``kind`` if given)."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput("give a baseline name or id (see `loopml monitor baselines`)")
    with ws.meta.session() as s:
        row = s.get(MonitorBaseline, ref)
        if row is None:
            q = select(MonitorBaseline).where(MonitorBaseline.name == ref)
            if kind is not None:
                q = q.where(MonitorBaseline.kind == _check_kind(kind))
            row = s.scalar(q.order_by(MonitorBaseline.created_at.desc(), MonitorBaseline.id.desc()).limit(1))
        if row is None or (kind is not None and row.kind != kind):
            what = f"{kind} baseline" if kind else "baseline"
            raise NotFound(f"no {what} named {ref!r}; see `loopml monitor baselines` "
                           "or create one with `loopml monitor baseline`")
        return _baseline(row)


def list_baselines(ws: Workspace, *, kind: str | None = None, name: str | None = None) -> list[Baseline]:
    """Stored baselines, newest first (of one kind and/or name if given)."""
    q = select(MonitorBaseline).order_by(MonitorBaseline.created_at.desc(), MonitorBaseline.id.desc())
    if kind is not None:
        q = q.where(MonitorBaseline.kind == _check_kind(kind))
    if name is not None:
        q = q.where(MonitorBaseline.name == name)
    with ws.meta.session() as s:
        return [_baseline(r) for r in s.scalars(q)]


__all__ = [
    "BASELINE_CREATED",
    "COMPLETED",
    "COMPLETED_WITH_VIOLATIONS",
    "FAILED",
    "MONITOR_COMPLETED",
    "MONITOR_KINDS",
    "NO_DATA",
    "STATUSES",
    "Baseline",
    "MonitoringResult",
    "Target",
    "get_baseline",
    "get_result",
    "jsonable",
    "list_baselines",
    "list_results",
    "save_baseline",
    "save_result",
]
