"""Models, their versions, approval and stage aliases: the registry's metadata.

A *model* (a SageMaker model package group) is a name; each
:func:`register_model` adds a numbered *version* that references a model
package already in the artifact store by its id (the sha256 of its
manifest): nothing is copied, and the package is verified, file by file,
before it is registered. A version records what made it (run, metrics,
hyperparameters, signature, recipe, dataset versions) and its approval status
(``PendingManualApproval``, ``Approved``, ``Rejected`` with who, when and
why). The stage aliases ``staging``, ``production`` and ``archived`` each
point at one version of a model; moving one is recorded.

References to a version, wherever the registry takes one:

- ``churn:3`` -- version 3; ``churn:latest`` -- the newest version
- ``churn@production`` -- the version the alias points at
- ``churn`` -- the newest *approved* version, else the newest version

Lineage: ``run --registered_as--> model_version`` (and
``model_package --registered_as--> model_version``). Events:
``model.version_registered``, ``model.approval_changed``, ``model.alias_changed``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopml._util import actor, as_utc, clean_reason, new_id, utcnow
from loopml.errors import Conflict, IntegrityError, InvalidInput, NotFound
from loopml.registry.models import (
    ModelAlias,
    ModelAliasChange,
    ModelApproval,
    ModelGroup,
    ModelVersionRow,
)
from loopml.store.artifacts import check_hash
from loopml.store.lineage import EntityRef
from loopml.store.metadata import retry_on_conflict

if TYPE_CHECKING:
    from loopml.track import RunInfo
    from loopml.train import TrainingResult
    from loopml.train.package import Model
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
#: the approval statuses (SageMaker's ``ModelApprovalStatus`` values)
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)
#: the stage aliases a version can hold
ALIASES = ("staging", "production", "archived")

MODEL_VERSION_REGISTERED = "model.version_registered"
MODEL_APPROVAL_CHANGED = "model.approval_changed"
MODEL_ALIAS_CHANGED = "model.alias_changed"
#: lineage kind of a registered version
MODEL_VERSION_KIND = "model_version"
REGISTERED_AS = "registered_as"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_PACKAGE_MANIFEST = "model/manifest.json"
_T = TypeVar("_T")


# -- references ---------------------------------------------------------------------------------
def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidInput."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"model name {name!r} is not allowed; use letters, digits, '_', '-' or '.', starting with a "
            "letter or digit (at most 200 characters)"
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is one of :data:`ALIASES`, else raise InvalidInput."""
    if alias not in ALIASES:
        raise InvalidInput(f"unknown alias {alias!r}; the aliases are {', '.join(ALIASES)}")
    return alias


def parse_model_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split ``NAME``, ``NAME:VERSION``, ``NAME:latest`` or ``NAME@ALIAS``.

    Returns
    -------
    tuple
        ``(name, version, alias)``; version 0 means ``latest``, both None mean "the
        newest approved version, else the newest".

    Examples
    --------
    >>> parse_model_ref("churn:3"), parse_model_ref("churn@production"), parse_model_ref("churn")
    (('churn', 3, None), ('churn', None, 'production'), ('churn', None, None))
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"model reference {ref!r} is empty; write NAME, NAME:VERSION or NAME@ALIAS")
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return check_model_name(name), None, check_alias(alias)
    name, sep, ver = ref.partition(":")
    check_model_name(name)
    if not sep:
        return name, None, None
    if ver == "latest":
        return name, 0, None
    if not ver.isdigit() or int(ver) < 1:
        raise InvalidInput(f"model version in {ref!r} must be a positive number, 'latest', or use NAME@ALIAS")
    return name, int(ver), None


# -- records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApprovalRecord:
    """One approval decision: the status a version entered, from which, who, when and why."""

    status: str
    previous_status: str | None
    by: str
    reason: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"status": self.status, "previous_status": self.previous_status, "by": self.by,
                "reason": self.reason, "at": self.at.isoformat()}


@dataclass(frozen=True)
class AliasChange:
    """One move of an alias: to ``version`` (None: removed) from ``previous_version``."""

    model: str
    alias: str
    version: int | None
    previous_version: int | None
    by: str
    reason: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"model": self.model, "alias": self.alias, "version": self.version,
                "previous_version": self.previous_version, "by": self.by, "reason": self.reason,
                "at": self.at.isoformat()}


@dataclass(frozen=True)
class ModelVersionInfo:
    """Everything the registry records about one model version."""

    id: str
    name: str
    version: int
    package_sha256: str
    run_id: str | None
    flavor: str
    problem_type: str
    description: str
    approval_status: str
    approval_by: str | None
    approval_at: datetime | None
    approval_reason: str | None
    metrics: dict[str, Any]
    hyperparameters: dict[str, Any]
    signature: dict[str, Any]
    recipe: dict[str, Any] | None
    datasets: list[dict[str, Any]]
    details: dict[str, Any]
    registered_by: str
    created_at: datetime
    #: aliases pointing at this version now
    aliases: list[str] = field(default_factory=list)
    #: the approval history, oldest first (the registration is the first entry)
    approvals: list[ApprovalRecord] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def entity(self) -> EntityRef:
        """The lineage reference of this version."""
        return EntityRef(MODEL_VERSION_KIND, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "id": self.id, "name": self.name, "version": self.version, "ref": self.ref,
            "package_sha256": self.package_sha256, "run_id": self.run_id, "flavor": self.flavor,
            "problem_type": self.problem_type, "description": self.description,
            "approval_status": self.approval_status, "approval_by": self.approval_by,
            "approval_at": self.approval_at.isoformat() if self.approval_at else None,
            "approval_reason": self.approval_reason, "aliases": self.aliases, "metrics": self.metrics,
            "hyperparameters": self.hyperparameters, "signature": self.signature, "recipe": self.recipe,
            "datasets": self.datasets, "details": self.details, "registered_by": self.registered_by,
            "created_at": self.created_at.isoformat(), "approvals": [a.to_dict() for a in self.approvals],
        }


@dataclass(frozen=True)
class ModelInfo:
    """A model with its number of versions, the newest (approved) one and its aliases."""

    id: str
    name: str
    description: str
    created_at: datetime
    versions: int
    latest_version: int
    latest_approved: int | None
    #: alias -> version
    aliases: dict[str, int]
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "name": self.name, "description": self.description,
                "created_at": self.created_at.isoformat(), "versions": self.versions,
                "latest_version": self.latest_version, "latest_approved": self.latest_approved,
                "aliases": self.aliases, "updated_at": self.updated_at.isoformat()}


# -- helpers ------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Metrics and manifest parts as strict JSON (NaN and infinities become null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


def _versions_text(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    if len(numbers) <= 10:
        return ", ".join(str(n) for n in numbers)
    return f"1 to {numbers[-1]} ({len(numbers)} versions)"



# -- resolving ------------------------------------------------------------------------------------
def _group(s: Session, name: str, *, lock: bool = False) -> ModelGroup:
    q = select(ModelGroup).where(ModelGroup.name == name)
    g = s.scalar(q.with_for_update() if lock else q)
    if g is None:
        known = list(s.scalars(select(ModelGroup.name).order_by(ModelGroup.name).limit(21)))
        listing = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "") if known else "none yet"
        raise NotFound(f"no model named {name!r} (models: {listing}); register one with "
                       "`loopml models register RUN --name NAME`")
    return g


def _version_numbers(s: Session, group_id: str) -> list[int]:
    return list(s.scalars(select(ModelVersionRow.version).where(ModelVersionRow.group_id == group_id)
                          .order_by(ModelVersionRow.version)))


def _aliases_of_group(s: Session, group_id: str) -> dict[str, int]:
    rows = s.execute(
        select(ModelAlias.alias, ModelVersionRow.version)
        .join(ModelVersionRow, ModelVersionRow.id == ModelAlias.version_id)
        .where(ModelAlias.group_id == group_id)
        .order_by(ModelAlias.alias)
    ).all()
    return {a: v for a, v in rows}


def _resolve(s: Session, ref: str, *, lock: bool = False) -> tuple[ModelGroup, ModelVersionRow]:
    name, version, alias = parse_model_ref(ref)
    # writers lock the model's row: changes to one model's versions and aliases happen one at a time
    g = _group(s, name, lock=lock)
    q = select(ModelVersionRow).where(ModelVersionRow.group_id == g.id)
    newest = ModelVersionRow.version.desc()
    row: ModelVersionRow | None
    if alias is not None:
        row = s.scalar(q.join(ModelAlias, ModelAlias.version_id == ModelVersionRow.id)
                       .where(ModelAlias.group_id == g.id, ModelAlias.alias == alias))
    elif version:
        row = s.scalar(q.where(ModelVersionRow.version == version))
    else:
        row = None
        if version is None:  # plain NAME: the newest approved version, else the newest
            row = s.scalar(q.where(ModelVersionRow.approval_status == APPROVED).order_by(newest).limit(1))
        if row is None:
            row = s.scalar(q.order_by(newest).limit(1))
    if row is not None:
        return g, row
    if alias is not None:
        current = _aliases_of_group(s, g.id)
        now = ", ".join(f"{a} -> {v}" for a, v in current.items()) or "none"
        raise NotFound(f"model {name!r} has no {alias!r} alias (aliases set: {now}); set it with "
                       f"`loopml models alias {name}:VERSION {alias}`")
    numbers = _version_numbers(s, g.id)
    raise NotFound(f"model {name!r} has no version {version} (versions: {_versions_text(numbers)}); "
                   f"see `loopml models list {name}`")


def _explicit(ref: str, what: str) -> None:
    """Refuse a plain NAME where a decision must name its version."""
    name, version, alias = parse_model_ref(ref)
    if version is None and alias is None:
        raise InvalidInput(f"say which version to {what}: {name}:VERSION or {name}@ALIAS "
                           f"(see `loopml models list {name}`)")


def _approvals(s: Session, version_ids: list[str]) -> dict[str, list[ApprovalRecord]]:
    out: dict[str, list[ApprovalRecord]] = {v: [] for v in version_ids}
    if not version_ids:
        return out
    for r in s.scalars(select(ModelApproval).where(ModelApproval.version_id.in_(version_ids))
                       .order_by(ModelApproval.id)):
        out[r.version_id].append(ApprovalRecord(r.status, r.previous_status, r.by, r.reason, as_utc(r.created_at)))
    return out


def _infos(s: Session, g: ModelGroup, rows: list[ModelVersionRow]) -> list[ModelVersionInfo]:
    ids = [r.id for r in rows]
    approvals = _approvals(s, ids)
    aliases: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for alias, vid in s.execute(select(ModelAlias.alias, ModelAlias.version_id)
                                    .where(ModelAlias.version_id.in_(ids)).order_by(ModelAlias.alias)):
            aliases[vid].append(alias)
    return [
        ModelVersionInfo(
            id=r.id, name=g.name, version=r.version, package_sha256=r.package_sha256, run_id=r.run_id,
            flavor=r.flavor, problem_type=r.problem_type, description=r.description,
            approval_status=r.approval_status, approval_by=r.approval_by,
            approval_at=as_utc(r.approval_at) if r.approval_at else None, approval_reason=r.approval_reason,
            metrics=dict(r.metrics), hyperparameters=dict(r.hyperparameters), signature=dict(r.signature),
            recipe=dict(r.recipe) if r.recipe is not None else None, datasets=list(r.datasets),
            details=dict(r.details), registered_by=r.registered_by, created_at=as_utc(r.created_at),
            aliases=aliases[r.id], approvals=approvals[r.id],
        )
        for r in rows
    ]


# -- the package of a run -------------------------------------------------------------------------
def _package_source(ws: Workspace, source: Any) -> tuple[str, RunInfo | None]:
    """The package id and the run behind ``source`` (a run, a training result, a package id or folder)."""
    run_id: str
    if hasattr(source, "run_id") and hasattr(source, "model_sha256"):  # a TrainingResult
        run_id = str(source.run_id)
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if not text.strip():
            raise InvalidInput("give a run id, a model package id or a package folder to register")
        if re.fullmatch(r"[0-9a-f]{64}", text) and not Path(text).is_dir():
            check_hash(text)
            if not ws.artifacts.exists(text):
                raise NotFound(f"no model package {text} in the artifact store {ws.artifacts.url}")
            return text, _run_of_package(ws, text)
        if Path(text).is_dir():
            stored = _store_folder(ws, Path(text))
            return stored, _run_of_package(ws, stored)
        run_id = text
    else:
        raise InvalidInput(
            f"register_model takes a run id, a TrainingResult, a model package id or a package folder, "
            f"got {type(source).__name__}"
        )
    run = ws.tracker.get_run(run_id)
    shas = {a.name: a.sha256 for a in run.artifacts}
    sha = shas.get(_PACKAGE_MANIFEST)
    if sha is None:
        why = f"; it {run.status}: {run.message}" if run.status == "FAILED" and run.message else (
            f" (status {run.status})")
        raise InvalidInput(
            f"run {run.id} ({run.name}) has no model package: it has no artifact {_PACKAGE_MANIFEST}{why}; "
            "register a finished training run (see `loopml runs list`)"
        )
    return sha, run


def _run_of_package(ws: Workspace, sha: str) -> RunInfo | None:
    for e in ws.lineage.upstream(EntityRef("model_package", sha), depth=1):
        if e.relation == "produced" and e.src.kind == "run":
            try:
                return ws.tracker.get_run(e.src.id)
            except NotFound:
                return None
    return None


def _store_folder(ws: Workspace, folder: Path) -> str:
    """Verify a package folder and put its files into the artifact store (content-addressed)."""
    from loopml.train.package import MANIFEST, verify_package

    manifest = verify_package(folder)
    for rel in sorted(manifest.get("files") or {}):
        ws.artifacts.put_file(folder / rel)
    return ws.artifacts.put_file(folder / MANIFEST).sha256


def verify_stored_package(ws: Workspace, sha: str, *, what: str = "the model package") -> dict[str, Any]:
    """Check the stored manifest and every file it lists against their hashes; return the manifest.

    Raises
    ------
    IntegrityError
        A file was modified or corrupted in the artifact store.
    NotFound
        A file is missing.
    """
    from loopml.train.package import FORMAT

    try:
        data = ws.artifacts.get_bytes(sha)
    except IntegrityError:
        raise IntegrityError(f"the manifest of {what} {sha[:12]} was modified or corrupted in the artifact "
                             f"store {ws.artifacts.url}; refusing it (restore it or train the model again)") from None
    try:
        manifest = json.loads(data)
    except ValueError:
        raise InvalidInput(f"artifact {sha} is not a model package manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"artifact {sha} is not a model package manifest")
    for rel, file_sha in sorted(dict(manifest.get("files") or {}).items()):
        try:
            ws.artifacts.verify(file_sha)
        except IntegrityError:
            raise IntegrityError(
                f"{rel} of {what} {sha[:12]} was modified or corrupted in the artifact store "
                f"{ws.artifacts.url}; refusing it (restore it or train the model again)"
            ) from None
        except NotFound:
            raise NotFound(f"{rel} of {what} {sha[:12]} is missing from the artifact store "
                           f"{ws.artifacts.url}") from None
    return manifest


# -- registering ------------------------------------------------------------------------------------
def register_model(
    ws: Workspace,
    run_id_or_package: str | os.PathLike[str] | TrainingResult,
    name: str,
    description: str | None = None,
    approval: str = PENDING,
    *,
    by: str | None = None,
) -> ModelVersionInfo:
    """Register a trained model package as the next version of model ``name``.

    Nothing is copied: the version references the package in the artifact
    store by its id, after checking every file of it against its hash.

    Parameters
    ----------
    ws
        The workspace.
    run_id_or_package
        A training run (id, unique id prefix, or a :class:`~loopml.train.TrainingResult`),
        a model package id (the sha256 of its manifest) or a package folder.
    name
        The model; created by its first registration.
    description
        What this version is (the model's description too, when it is new).
    approval
        The initial status: ``PendingManualApproval`` (default), ``Approved`` or ``Rejected``.
    by
        Who registers it (default: the login name).

    Returns
    -------
    ModelVersionInfo

    Raises
    ------
    InvalidInput
        The run has no model package; a bad name or status.
    IntegrityError
        The package was modified or corrupted in the artifact store.
    NotFound
        No such run or package.
    """
    check_model_name(name)
    if approval not in APPROVAL_STATUSES:
        raise InvalidInput(f"approval {approval!r} is not a status; use one of {', '.join(APPROVAL_STATUSES)}")
    who = actor(by)
    text = " ".join((description or "").split())
    if len(text) > 2000:
        raise InvalidInput(f"the description has {len(text)} characters; at most 2000")
    sha, run = _package_source(ws, run_id_or_package)
    source = f"the model package of run {run.id}" if run is not None else "the model package"
    manifest = verify_stored_package(ws, sha, what=source)
    if run is not None:
        _check_run_files(run, manifest, sha)
    metrics = _jsonable({**dict(manifest.get("metrics") or {}), **(run.metrics if run is not None else {})})
    datasets = [d.to_dict() for d in run.datasets] if run is not None else []
    recipe = _recipe_doc(ws, manifest, run)
    details = _jsonable({
        "target": manifest.get("target"), "libraries": manifest.get("libraries") or {},
        "training": manifest.get("training") or {}, "seed": manifest.get("seed"),
        "roles": manifest.get("roles") or {}, "n_classes": manifest.get("n_classes"),
        "algorithm": manifest.get("algorithm") or {}, "package_created_at": manifest.get("created_at"),
        **({"run_name": run.name, "experiment": run.experiment, "code_version":
            run.code_version.to_dict() if run.code_version else None} if run is not None else {}),
    })

    def write() -> ModelVersionInfo:
        with ws.meta.session(write=True) as s:
            now = utcnow()
            # the locked group row serialises version numbers (PostgreSQL; SQLite locks the database)
            g = s.scalar(select(ModelGroup).where(ModelGroup.name == name).with_for_update())
            if g is None:
                g = ModelGroup(id=new_id("mdl"), name=name, description=text, created_at=now)
                s.add(g)
                s.flush()
            number = int(s.scalar(select(func.max(ModelVersionRow.version))
                                  .where(ModelVersionRow.group_id == g.id)) or 0) + 1
            decided = approval != PENDING
            row = ModelVersionRow(
                id=new_id("mv"), group_id=g.id, version=number, package_sha256=sha,
                run_id=run.id if run is not None else None, flavor=str(manifest.get("flavor") or "?"),
                problem_type=str(manifest.get("problem_type") or "?"), description=text,
                approval_status=approval, approval_by=who if decided else None,
                approval_at=now if decided else None, approval_reason=None,
                metrics=metrics, hyperparameters=_jsonable(dict(manifest.get("hyperparameters") or {})),
                signature=_jsonable(dict(manifest.get("signature") or {})), recipe=recipe,
                datasets=datasets, details=details, registered_by=who, created_at=now,
            )
            s.add(row)
            s.flush()
            s.add(ModelApproval(version_id=row.id, status=approval, previous_status=None, by=who,
                                reason="registered", created_at=now))
            entity = EntityRef(MODEL_VERSION_KIND, row.id)
            if run is not None:
                ws.lineage.add(EntityRef("run", run.id), entity, REGISTERED_AS, session=s)
            ws.lineage.add(EntityRef("model_package", sha), entity, REGISTERED_AS, session=s)
            payload = {"model": name, "version": number, "package_sha256": sha,
                       "run_id": run.id if run is not None else None, "approval_status": approval,
                       "flavor": row.flavor, "by": who}
            ws.events.emit(MODEL_VERSION_REGISTERED, entity, payload, session=s)
            if decided:
                ws.events.emit(MODEL_APPROVAL_CHANGED, entity,
                               {"model": name, "version": number, "from": None, "to": approval, "by": who,
                                "reason": None}, session=s)
            s.flush()
            return _infos(s, g, [row])[0]

    info = retry_on_conflict(write, "this model")
    log.info("registered %s (package %s, %s)", info.ref, sha[:12], approval)
    return info


def _check_run_files(run: RunInfo, manifest: Mapping[str, Any], sha: str) -> None:
    """The run's ``model/...`` artifacts must be the files the manifest lists."""
    stored = {a.name: a.sha256 for a in run.artifacts}
    for rel, file_sha in dict(manifest.get("files") or {}).items():
        got = stored.get(f"model/{rel}")
        if got is not None and got != file_sha:
            raise IntegrityError(
                f"run {run.id} stores model/{rel} with hash {got[:12]}, but its package manifest {sha[:12]} "
                f"lists {file_sha[:12]}; the run's artifacts are inconsistent, refusing to register it"
            )


def _recipe_doc(ws: Workspace, manifest: Mapping[str, Any], run: RunInfo | None) -> dict[str, Any] | None:
    doc = manifest.get("recipe")
    if not doc:
        return None
    out: dict[str, Any] = dict(doc)
    if run is not None and "id" not in out:
        for e in ws.lineage.upstream(EntityRef("run", run.id), depth=1):
            if e.src.kind == "recipe_version":
                out["id"] = e.src.id
                break
    if "id" in out and "ref" not in out:
        from loopml.prep.models import RecipeVersion

        with ws.meta.session() as s:
            hit = s.execute(select(RecipeVersion.name, RecipeVersion.version)
                            .where(RecipeVersion.id == out["id"])).first()
        if hit is not None:
            out["ref"] = f"{hit[0]}:{hit[1]}"
    return _jsonable(out)


# -- approval ---------------------------------------------------------------------------------------
def approve(ws: Workspace, ref: str, *, by: str | None = None, reason: str | None = None) -> ModelVersionInfo:
    """Approve a version (``NAME:VERSION`` or ``NAME@ALIAS``) for deployment.

    Approving an approved version changes nothing.

    Raises
    ------
    Conflict
        The version was rejected (a rejected version stays rejected: register the run again).
    """
    _explicit(ref, "approve")
    return _decide(ws, ref, APPROVED, actor(by), clean_reason(reason))


def reject(ws: Workspace, ref: str, reason: str, *, by: str | None = None) -> ModelVersionInfo:
    """Reject a version, saying why; it loses its ``staging`` alias.

    Raises
    ------
    InvalidInput
        No reason given.
    Conflict
        The version is in production (move ``production`` to another version first).
    """
    _explicit(ref, "reject")
    why = clean_reason(reason)
    if not why:
        raise InvalidInput("rejecting a model version needs a reason (--reason TEXT)")
    return _decide(ws, ref, REJECTED, actor(by), why)


def _decide(ws: Workspace, ref: str, status: str, who: str, reason: str | None) -> ModelVersionInfo:
    def write() -> ModelVersionInfo:
        with ws.meta.session(write=True) as s:
            g, row = _resolve(s, ref, lock=True)
            previous = row.approval_status
            if previous == status:
                return _infos(s, g, [row])[0]
            if previous == REJECTED:
                rejected = (f" by {row.approval_by} on {as_utc(row.approval_at):%Y-%m-%d}"
                            if row.approval_at else "")
                why = f" ({row.approval_reason})" if row.approval_reason else ""
                again = f"loopml models register {row.run_id or row.package_sha256} --name {g.name}"
                raise Conflict(
                    f"{g.name}:{row.version} was rejected{rejected}{why}; a rejected version stays rejected: "
                    f"register the model again for a new review (`{again}`)"
                )
            now = utcnow()
            aliases = _aliases_of_group(s, g.id)
            if status == REJECTED:
                if aliases.get("production") == row.version:
                    raise Conflict(
                        f"{g.name}:{row.version} is in production; move production to another approved "
                        f"version first (`loopml models alias {g.name}:VERSION production`), then reject it"
                    )
                if aliases.get("staging") == row.version:
                    _move_alias(ws, s, g, "staging", None, row.version, who, f"rejected: {reason}", now,
                                entity=EntityRef(MODEL_VERSION_KIND, row.id))
            row.approval_status = status
            row.approval_by = who
            row.approval_at = now
            row.approval_reason = reason
            s.add(ModelApproval(version_id=row.id, status=status, previous_status=previous, by=who,
                                reason=reason, created_at=now))
            ws.events.emit(MODEL_APPROVAL_CHANGED, EntityRef(MODEL_VERSION_KIND, row.id),
                           {"model": g.name, "version": row.version, "from": previous, "to": status,
                            "by": who, "reason": reason}, session=s)
            s.flush()
            return _infos(s, g, [row])[0]

    info = retry_on_conflict(write, "this model")
    log.info("%s is %s", info.ref, info.approval_status)
    return info


# -- aliases ----------------------------------------------------------------------------------------
def set_alias(
    ws: Workspace, ref: str, alias: str, *, by: str | None = None, reason: str | None = None
) -> ModelVersionInfo:
    """Point ``alias`` (``staging``, ``production`` or ``archived``) of a model at a version.

    The alias leaves the version it pointed at; the move is recorded and
    announced (``model.alias_changed``). ``ref`` may itself be an alias:
    ``set_alias(ws, "churn@staging", "production")`` promotes the staged version.

    Raises
    ------
    Conflict
        ``production`` on a version that is not approved; ``staging`` on a
        rejected one; ``archived`` on the production version.
    """
    check_alias(alias)
    _explicit(ref, "alias")
    who, why = actor(by), clean_reason(reason)

    def write() -> ModelVersionInfo:
        with ws.meta.session(write=True) as s:
            g, row = _resolve(s, ref, lock=True)
            label = f"{g.name}:{row.version}"
            if alias == "production" and row.approval_status != APPROVED:
                raise Conflict(f"{label} is {row.approval_status}; only an approved version goes to production"
                               + (f": approve it first (`loopml models approve {label}`)"
                                  if row.approval_status == PENDING else ""))
            if alias == "staging" and row.approval_status == REJECTED:
                raise Conflict(f"{label} was rejected; a rejected version cannot be staged")
            current = _aliases_of_group(s, g.id)
            if alias == "archived" and current.get("production") == row.version:
                raise Conflict(f"{label} is in production; move production to another version before "
                               "archiving it")
            if current.get(alias) != row.version:
                _move_alias(ws, s, g, alias, row, current.get(alias), who, why, utcnow(),
                            entity=EntityRef(MODEL_VERSION_KIND, row.id))
            s.flush()
            return _infos(s, g, [row])[0]

    return retry_on_conflict(write, "this model")


def remove_alias(ws: Workspace, name: str, alias: str, *, by: str | None = None) -> None:
    """Take ``alias`` off model ``name`` (recorded; nothing happens when it is not set)."""
    check_model_name(name)
    check_alias(alias)
    who = actor(by)

    def write() -> None:
        with ws.meta.session(write=True) as s:
            g = _group(s, name, lock=True)
            current = s.get(ModelAlias, (g.id, alias))
            if current is None:
                return
            version = s.get(ModelVersionRow, current.version_id)
            assert version is not None
            _move_alias(ws, s, g, alias, None, version.version, who, None, utcnow(),
                        entity=EntityRef(MODEL_VERSION_KIND, version.id))

    retry_on_conflict(write, "this model")


def _move_alias(
    ws: Workspace, s: Session, g: ModelGroup, alias: str, row: ModelVersionRow | None, previous: int | None,
    who: str, reason: str | None, now: datetime, *, entity: EntityRef,
) -> None:
    current = s.get(ModelAlias, (g.id, alias))
    if row is None:
        if current is not None:
            s.delete(current)
    elif current is None:
        s.add(ModelAlias(group_id=g.id, alias=alias, version_id=row.id, by=who, updated_at=now))
    else:
        current.version_id, current.by, current.updated_at = row.id, who, now
    version = row.version if row is not None else None
    s.add(ModelAliasChange(group_id=g.id, alias=alias, version=version, previous_version=previous, by=who,
                           reason=reason, created_at=now))
    ws.events.emit(MODEL_ALIAS_CHANGED, entity,
                   {"model": g.name, "alias": alias, "version": version, "previous_version": previous,
                    "by": who, "reason": reason}, session=s)
    s.flush()


def alias_history(ws: Workspace, name: str) -> list[AliasChange]:
    """Every alias move of model ``name``, oldest first."""
    check_model_name(name)
    with ws.meta.session() as s:
        g = _group(s, name)
        rows = s.scalars(select(ModelAliasChange).where(ModelAliasChange.group_id == g.id)
                         .order_by(ModelAliasChange.id))
        return [AliasChange(g.name, r.alias, r.version, r.previous_version, r.by, r.reason, as_utc(r.created_at))
                for r in rows]


# -- reading ----------------------------------------------------------------------------------------
def list_models(ws: Workspace) -> list[ModelInfo]:
    """Every model with its version count, newest (approved) version and aliases, by name."""
    v = ModelVersionRow
    with ws.meta.session() as s:
        stats = {
            gid: (n, latest, updated)
            for gid, n, latest, updated in s.execute(
                select(v.group_id, func.count(v.id), func.max(v.version), func.max(v.created_at)).group_by(v.group_id))
        }
        approved = dict(s.execute(select(v.group_id, func.max(v.version)).where(v.approval_status == APPROVED)
                                  .group_by(v.group_id)).all())
        aliases: dict[str, dict[str, int]] = {}
        for gid, alias, number in s.execute(
            select(ModelAlias.group_id, ModelAlias.alias, v.version).join(v, v.id == ModelAlias.version_id)
            .order_by(ModelAlias.alias)
        ):
            aliases.setdefault(gid, {})[alias] = number
        out = []
        for g in s.scalars(select(ModelGroup).order_by(ModelGroup.name)):
            n, latest, updated = stats.get(g.id, (0, 0, g.created_at))
            out.append(ModelInfo(g.id, g.name, g.description, as_utc(g.created_at), int(n), int(latest or 0),
                                 approved.get(g.id), aliases.get(g.id, {}), as_utc(updated or g.created_at)))
        return out


def list_versions(ws: Workspace, name: str, *, status: str | None = None) -> list[ModelVersionInfo]:
    """The versions of model ``name``, oldest first (optionally only those with one approval status)."""
    check_model_name(name)
    if status is not None and status not in APPROVAL_STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}")
    with ws.meta.session() as s:
        g = _group(s, name)
        q = select(ModelVersionRow).where(ModelVersionRow.group_id == g.id).order_by(ModelVersionRow.version)
        if status is not None:
            q = q.where(ModelVersionRow.approval_status == status)
        return _infos(s, g, list(s.scalars(q)))


def get_model_version(ws: Workspace, ref: str) -> ModelVersionInfo:
    """The version ``ref`` names (``NAME:VERSION``, ``NAME@ALIAS`` or ``NAME``).

    Raises
    ------
    NotFound
        No such model, version or alias (the message lists what exists).

    Examples
    --------
    >>> import tempfile, loopml
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> list_models(ws)
    []
    >>> get_model_version(ws, "churn@production")
    Traceback (most recent call last):
    ...
    loopml.errors.NotFound: no model named 'churn' (models: none yet); register one with `loopml models register RUN --name NAME`
    >>> ws.close()
    """
    with ws.meta.session() as s:
        g, row = _resolve(s, ref)
        return _infos(s, g, [row])[0]


def load_model(ws: Workspace, ref: str) -> Model:
    """Load the model package of a version, every file verified against its hash.

    Examples
    --------
    >>> model = load_model(ws, "churn@production")      # doctest: +SKIP
    >>> model.predict_one({"tenure": 3, "plan": "basic"})  # doctest: +SKIP
    {'prediction': 1, 'probabilities': [0.2, 0.8]}
    """
    from loopml.train.package import load_model_package

    info = get_model_version(ws, ref)
    try:
        return load_model_package(info.package_sha256, ws=ws)
    except IntegrityError as e:
        raise IntegrityError(f"{info.ref} cannot be loaded: {e}") from None
    except NotFound as e:
        raise NotFound(f"{info.ref} cannot be loaded: {e}") from None


__all__ = [
    "ALIASES",
    "APPROVAL_STATUSES",
    "APPROVED",
    "MODEL_ALIAS_CHANGED",
    "MODEL_APPROVAL_CHANGED",
    "MODEL_VERSION_KIND",
    "MODEL_VERSION_REGISTERED",
    "PENDING",
    "REJECTED",
    "AliasChange",
    "ApprovalRecord",
    "ModelInfo",
    "ModelVersionInfo",
    "alias_history",
    "approve",
    "check_model_name",
    "get_model_version",
    "list_models",
    "list_versions",
    "load_model",
    "parse_model_ref",
    "register_model",
    "reject",
    "remove_alias",
    "set_alias",
    "verify_stored_package",
]
