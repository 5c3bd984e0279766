"""Which pipeline a trigger runs: a file, ``module:attr``, a registered name, or a Pipeline object.

Registered pipelines (``pipelines:`` in a stack file, or
:func:`register_pipeline`) give a pipeline file a short name that triggers
can use; the registry keeps the definition and its content hash as of the
last registration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from loopml._util import as_utc, check_name, utcnow
from loopml.errors import InvalidInput, NotFound
from loopml.pipelines import Pipeline, load_pipeline
from loopml.pipelines.steps import resolve_function
from loopml.triggers.models import RegisteredPipelineRow

if TYPE_CHECKING:
    from loopml.workspace import Workspace

_SUFFIXES = (".yaml", ".yml", ".json", ".py")


@dataclass(frozen=True)
class RegisteredPipeline:
    """A pipeline registered by name: its source, the content hash and definition when registered."""

    name: str
    source: str
    version: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "source": self.source, "version": self.version,
                "pipeline": self.definition.get("name"), "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


def _info(r: RegisteredPipelineRow) -> RegisteredPipeline:
    return RegisteredPipeline(r.name, r.source, r.version, dict(r.definition), as_utc(r.created_at),
                              as_utc(r.updated_at))


def absolute_source(source: str, base: str | os.PathLike[str] | None = None) -> str:
    """``source`` with a relative file path made absolute (against ``base``, default the current folder).

    ``module:attr`` references stay as they are.
    """
    text = str(source).strip()
    path, attr = text, ""
    if ":" in text and not os.path.exists(text):
        head, _, tail = text.rpartition(":")
        if head and tail and "/" not in tail:
            path, attr = head, tail
    if path.lower().endswith(_SUFFIXES) or os.path.sep in path or "/" in path:
        full = path if os.path.isabs(path) else os.path.join(os.fspath(base) if base else os.getcwd(), path)
        path = os.path.normpath(os.path.abspath(full))
    return f"{path}:{attr}" if attr else path


def _looks_like_name(text: str) -> bool:
    return ":" not in text and "/" not in text and os.path.sep not in text and not text.lower().endswith(_SUFFIXES)


def check_rebuildable(p: Pipeline) -> dict[str, Any]:
    """The definition of ``p``, checked to load back without the objects in this process.

    A trigger given a Pipeline object keeps only its definition, so every
    Python step must name an importable function.
    """
    definition = p.to_dict()
    for st in p.steps:
        if st.kind == "python" and st.function:
            try:
                resolve_function(st.function)
            except InvalidInput as e:
                raise InvalidInput(f"pipeline {p.name!r} step {st.name!r}: {e}; a trigger keeps only the "
                                   "definition, so give a pipeline file or importable functions") from None
    Pipeline.from_dict(definition, source=f"pipeline {p.name!r}")
    return definition


def resolve_pipeline(
    ws: Workspace, ref: Pipeline | str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None,
) -> tuple[str | None, Pipeline]:
    """The source to keep and the loaded pipeline for a trigger's ``pipeline`` argument.

    Parameters
    ----------
    ref
        A :class:`~loopml.pipelines.Pipeline` (kept as its definition: source None),
        a registered pipeline name, a YAML/Python file (made absolute), or ``module:attr``.
    base
        The folder relative file paths are read against (default: the current one).

    Raises
    ------
    InvalidInput
        The file or module is missing or holds no valid pipeline.
    NotFound
        A bare name that is neither a registered pipeline nor a file.
    """
    if isinstance(ref, Pipeline):
        check_rebuildable(ref)
        return None, ref
    text = os.fspath(ref).strip() if ref is not None else ""
    if not text:
        raise InvalidInput("give a pipeline: a YAML/Python file, module:attr or a registered pipeline name")
    if _looks_like_name(text) and not os.path.exists(os.path.join(os.fspath(base or os.getcwd()), text)):
        try:
            reg = get_registered_pipeline(ws, text)
        except NotFound:
            raise NotFound(f"no pipeline {text!r}: not a file nor a registered pipeline; give a .yaml/.py file, "
                           "module:attr, or register it (`pipelines:` in a stack file)") from None
        return text, load_pipeline(reg.source)
    source = absolute_source(text, base)
    return source, load_pipeline(source)


def load_for_run(ws: Workspace, source: str | None, definition: dict[str, Any]) -> Pipeline:
    """The pipeline to run now: the source as it is today, or the kept definition when there is none."""
    if source is None:
        return Pipeline.from_dict(definition, source="the trigger's pipeline definition")
    if _looks_like_name(source):
        return load_pipeline(get_registered_pipeline(ws, source).source)
    return load_pipeline(source)


# -- the registry --------------------------------------------------------------------------------------
def register_pipeline(
    ws: Workspace, name: str, source: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None,
) -> RegisteredPipeline:
    """Register (or re-register) pipeline ``source`` under ``name``, keeping its definition and hash.

    Raises
    ------
    InvalidInput
        A bad name, or a source that does not load as a valid pipeline.
    """
    check_name(name, "pipeline")
    full = absolute_source(os.fspath(source), base)
    p = load_pipeline(full)
    definition, version = p.to_dict(), p.version
    now = utcnow()
    with ws.meta.session(write=True) as s:
        row = s.get(RegisteredPipelineRow, name, with_for_update=True)
        if row is None:
            row = RegisteredPipelineRow(name=name, source=full, version=version, definition=definition,
                                        created_at=now, updated_at=now)
            s.add(row)
        elif row.source != full or row.version != version:
            row.source, row.version, row.definition, row.updated_at = full, version, definition, now
        s.flush()
        return _info(row)


def get_registered_pipeline(ws: Workspace, name: str) -> RegisteredPipeline:
    """The registered pipeline ``name``; NotFound if there is none."""
    with ws.meta.session() as s:
        row = s.get(RegisteredPipelineRow, name)
        if row is None:
            raise NotFound(f"no registered pipeline {name!r}; register one with `pipelines:` in a stack file "
                           "(`loopml apply`)")
        return _info(row)


def list_registered_pipelines(ws: Workspace) -> list[RegisteredPipeline]:
    """Every registered pipeline, by name."""
    with ws.meta.session() as s:
        return [_info(r) for r in s.scalars(select(RegisteredPipelineRow).order_by(RegisteredPipelineRow.name))]


def unregister_pipeline(ws: Workspace, name: str) -> None:
    """Remove a registered pipeline (its executions stay)."""
    with ws.meta.session(write=True) as s:
        row = s.get(RegisteredPipelineRow, name)
        if row is None:
            raise NotFound(f"no registered pipeline {name!r}")
        s.delete(row)


__all__ = [
    "RegisteredPipeline",
    "absolute_source",
    "get_registered_pipeline",
    "list_registered_pipelines",
    "load_for_run",
    "register_pipeline",
    "resolve_pipeline",
    "unregister_pipeline",
]
