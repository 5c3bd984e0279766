"""Running pipelines: the coordinator, the step task workers run, and the execution records.

:func:`run_pipeline` validates the pipeline and its parameters, records an
execution, then walks the graph: a step starts when every step it waits for
has finished, so independent steps run at the same time on the executor
(``local``: worker processes; ``ray``: Ray tasks; ``thread``: threads of this
process; ``inline``: one at a time here). Conditions and fail steps are
evaluated by the coordinator itself. Every status change is written to the
metadata store as it happens; each step's stdout/stderr is captured and stored
as an artifact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from loopml._util import as_utc, new_id, utcnow
from loopml.compute._base import ThreadExecutor  # the ``thread`` executor (kept importable here)
from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound
from loopml.pipelines import _expr
from loopml.pipelines.cache import cache_key, canonical_json, find_cached, input_hashes
from loopml.pipelines.dsl import Pipeline
from loopml.pipelines.models import PipelineExecutionRow, PipelineRow, StepExecutionRow
from loopml.pipelines.steps import (
    ENTITY_OUTPUTS,
    KINDS,
    StepContext,
    function_ref,
    jsonable,
    resolve_function,
)
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    import os as _os

    from loopml.compute import Executor
    from loopml.workspace import Settings, Workspace

log = logging.getLogger(__name__)

# execution statuses (SageMaker's names)
EXECUTING, SUCCEEDED, FAILED, STOPPED = "Executing", "Succeeded", "Failed", "Stopped"
EXECUTION_STATUSES = (EXECUTING, SUCCEEDED, FAILED, STOPPED)
# step statuses
STARTING, SKIPPED, CACHED = "Starting", "Skipped", "Cached"
STEP_STATUSES = (STARTING, EXECUTING, SUCCEEDED, FAILED, SKIPPED, CACHED, STOPPED)
_DONE = (SUCCEEDED, CACHED)
_TERMINAL = (SUCCEEDED, CACHED, SKIPPED, FAILED, STOPPED)

EXECUTION_STARTED = "pipeline.execution_started"
EXECUTION_FINISHED = "pipeline.execution_finished"
EXECUTION_KIND = "pipeline_execution"
EXECUTORS = ("local", "ray", "thread", "inline")
#: largest JSON outputs a step may return (bigger objects belong in the artifact store)
MAX_OUTPUT_BYTES = 1 << 20


# -- records -------------------------------------------------------------------------------------------
def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


@dataclass(frozen=True)
class StepExecutionInfo:
    """One step of an execution as recorded.

    Attributes
    ----------
    status
        ``Starting``, ``Executing``, ``Succeeded``, ``Failed``, ``Skipped``, ``Cached`` or ``Stopped``.
    attempt
        Attempts made (retries included).
    cached_from
        For ``Cached``: the step execution whose outputs were reused.
    logs_sha256
        The captured stdout/stderr of the last attempt (see :func:`step_logs`).
    history
        One entry per attempt: ``attempt``, ``start``, ``end``, ``error``, ``logs_sha256``.
    """

    id: str
    execution_id: str
    name: str
    kind: str
    status: str
    attempt: int
    start_time: datetime | None
    end_time: datetime | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    logs_sha256: str | None
    error: str | None
    cache_key: str | None
    cached_from: str | None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (None while running or when it never ran)."""
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "execution_id": self.execution_id, "name": self.name, "kind": self.kind,
                "status": self.status, "attempt": self.attempt, "start_time": _iso(self.start_time),
                "end_time": _iso(self.end_time), "duration_s": self.duration_s, "inputs": self.inputs,
                "outputs": self.outputs, "logs_sha256": self.logs_sha256, "error": self.error,
                "cache_key": self.cache_key, "cached_from": self.cached_from, "history": self.history}


def _step_info(r: StepExecutionRow) -> StepExecutionInfo:
    return StepExecutionInfo(
        id=r.id, execution_id=r.execution_id, name=r.name, kind=r.kind, status=r.status, attempt=r.attempt,
        start_time=as_utc(r.start_time) if r.start_time else None,
        end_time=as_utc(r.end_time) if r.end_time else None, inputs=dict(r.inputs or {}),
        outputs=dict(r.outputs or {}), logs_sha256=r.logs_sha256, error=r.error, cache_key=r.cache_key,
        cached_from=r.cached_from, history=list(r.history or []),
    )


@dataclass(frozen=True)
class ExecutionInfo:
    """An execution of a pipeline with its steps.

    Attributes
    ----------
    status
        ``Executing``, ``Succeeded``, ``Failed`` or ``Stopped``.
    steps
        The step executions, in the pipeline's step order.
    step_names
        Every step of the pipeline, in order (those that never ran have no record in ``steps``).
    resumed_from
        The failed execution this one resumed, if any.
    """

    id: str
    pipeline: str
    pipeline_version: str
    pipeline_id: str
    params: dict[str, Any]
    status: str
    executor: str
    idempotency_key: str | None
    resumed_from: str | None
    error: str | None
    created_at: datetime
    start_time: datetime
    end_time: datetime | None
    steps: list[StepExecutionInfo] = field(default_factory=list)
    step_names: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (None while executing)."""
        return (self.end_time - self.start_time).total_seconds() if self.end_time else None

    def step(self, name: str) -> StepExecutionInfo:
        """The record of step ``name``.

        Raises
        ------
        NotFound
            The step has no record (it never started) or does not exist.
        """
        for s in self.steps:
            if s.name == name:
                return s
        raise NotFound(f"execution {self.id} has no record of step {name!r}; recorded steps: "
                       f"{', '.join(s.name for s in self.steps) or 'none'}")

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Step name -> outputs, for the steps that succeeded or were cached."""
        return {s.name: s.outputs for s in self.steps if s.status in _DONE}

    @property
    def entity(self) -> EntityRef:
        """The execution's lineage reference."""
        return EntityRef(EXECUTION_KIND, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "pipeline": self.pipeline, "pipeline_version": self.pipeline_version,
                "params": self.params, "status": self.status, "executor": self.executor,
                "idempotency_key": self.idempotency_key, "resumed_from": self.resumed_from, "error": self.error,
                "created_at": _iso(self.created_at), "start_time": _iso(self.start_time),
                "end_time": _iso(self.end_time), "duration_s": self.duration_s,
                "steps": [s.to_dict() for s in self.steps], "step_names": self.step_names}


def _execution_info(s: Any, row: PipelineExecutionRow) -> ExecutionInfo:
    prow = s.get(PipelineRow, row.pipeline_id)
    names = [st["name"] for st in (prow.definition.get("steps") or [])] if prow else []
    rank = {n: i for i, n in enumerate(names)}
    rows = list(s.scalars(select(StepExecutionRow).where(StepExecutionRow.execution_id == row.id)))
    rows.sort(key=lambda r: (rank.get(r.name, len(rank)), as_utc(r.start_time) if r.start_time else utcnow()))
    return ExecutionInfo(
        id=row.id, pipeline=row.pipeline_name, pipeline_version=row.pipeline_version, pipeline_id=row.pipeline_id,
        params=dict(row.params or {}), status=row.status, executor=row.executor,
        idempotency_key=row.idempotency_key, resumed_from=row.resumed_from, error=row.error,
        created_at=as_utc(row.created_at), start_time=as_utc(row.start_time),
        end_time=as_utc(row.end_time) if row.end_time else None, steps=[_step_info(r) for r in rows],
        step_names=names,
    )


def _find_row(s: Session, execution_id: str) -> PipelineExecutionRow:
    row = s.get(PipelineExecutionRow, execution_id)
    if row is not None:
        return row
    if execution_id and len(execution_id) >= 6:
        hits = list(s.scalars(select(PipelineExecutionRow).where(
            PipelineExecutionRow.id.startswith(execution_id, autoescape=True)).limit(2)))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidInput(f"execution id prefix {execution_id!r} is ambiguous; give more of it")
    raise NotFound(f"no pipeline execution {execution_id!r}; see `loopml pipelines list`")


def get_execution(ws: Workspace, execution_id: str) -> ExecutionInfo:
    """The execution ``execution_id`` (or a unique prefix of it, at least 6 characters) with its steps.

    Raises
    ------
    NotFound
        No such execution.
    """
    with ws.meta.session() as s:
        return _execution_info(s, _find_row(s, execution_id))


def list_executions(
    ws: Workspace, *, pipeline: str | None = None, status: str | None = None, limit: int = 50,
) -> list[ExecutionInfo]:
    """Executions, newest first, optionally of one pipeline or status."""
    if status is not None and status not in EXECUTION_STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(EXECUTION_STATUSES)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive whole number, got {limit!r}")
    q = select(PipelineExecutionRow).order_by(PipelineExecutionRow.created_at.desc()).limit(limit)
    if pipeline is not None:
        q = q.where(PipelineExecutionRow.pipeline_name == pipeline)
    if status is not None:
        q = q.where(PipelineExecutionRow.status == status)
    with ws.meta.session() as s:
        return [_execution_info(s, r) for r in s.scalars(q)]


def get_definition(ws: Workspace, execution_id: str) -> dict[str, Any]:
    """The pipeline definition (YAML/JSON form) an execution ran."""
    with ws.meta.session() as s:
        row = _find_row(s, execution_id)
        prow = s.get(PipelineRow, row.pipeline_id)
        return dict(prow.definition) if prow else {}


def step_logs(ws: Workspace, execution_id: str, step: str) -> str:
    """The captured stdout/stderr of a step, every attempt in order (empty if it printed nothing)."""
    info = get_execution(ws, execution_id).step(step)
    shas = [h.get("logs_sha256") for h in info.history] or [info.logs_sha256]
    parts = []
    for i, sha in enumerate(shas, 1):
        text = ws.artifacts.get_bytes(sha).decode("utf-8", "replace") if sha else ""
        if len(shas) > 1:
            parts.append(f"--- attempt {i} ---\n")
        parts.append(text)
    return "".join(parts)


# -- running one step (in a worker, or a thread of this process) ---------------------------------------
@dataclass(frozen=True)
class StepTask:
    """What a worker needs to run one attempt of a step."""

    home: str
    settings: Settings
    pipeline: str
    execution_id: str
    step: str
    kind: str
    function: str
    args: dict[str, Any]
    attempt: int
    retry_on: tuple[str, ...] = ()
    sys_path: tuple[str, ...] = ()
    cwd: str | None = None


def _retryable(e: BaseException, on: tuple[str, ...]) -> bool:
    if not on:
        return not isinstance(e, LoopmlError)
    names = set()
    for cls in type(e).__mro__:
        names.update({cls.__name__, f"{cls.__module__}.{cls.__qualname__}", f"{cls.__module__}:{cls.__qualname__}"})
    return any(n in names for n in on)


def _wants_ctx(fn: Callable[..., Any]) -> bool:
    import inspect

    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _normalise(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    out = jsonable(result)
    if not isinstance(out, dict):
        out = {"result": out}
    size = len(canonical_json(out))
    if size > MAX_OUTPUT_BYTES:
        raise InvalidInput(f"the step returned {size} bytes of outputs (at most {MAX_OUTPUT_BYTES}); store large "
                           "objects as a dataset or an artifact and return the reference")
    return out


def _execute(task: StepTask, ws: Workspace, functions: Mapping[str, Callable[..., Any]] | None) -> dict[str, Any]:
    started = time.time()
    try:
        fn = resolve_function(task.function, functions)
        kwargs = dict(task.args)
        if _wants_ctx(fn):
            kwargs["ctx"] = StepContext(ws, task.pipeline, task.execution_id, task.step, task.attempt)
        outputs = _normalise(fn(**kwargs))
        return {"ok": True, "outputs": outputs, "started": started, "ended": time.time()}
    except Exception as e:
        traceback.print_exc()
        message = str(e) if isinstance(e, LoopmlError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        return {"ok": False, "error": message, "error_type": f"{type(e).__module__}.{type(e).__qualname__}",
                "retryable": _retryable(e, task.retry_on), "started": started, "ended": time.time()}


class _Router:
    """Stands in for sys.stdout/stderr: writes of a capturing thread go to its buffer, the rest pass on.

    Everything else (``encoding``, ``isatty``, ``fileno``, ...) is the original stream's.
    """

    def __init__(self, original: Any) -> None:
        self.original = original
        self.local = threading.local()

    def write(self, s: str) -> int:
        buf = getattr(self.local, "buf", None)
        (buf if buf is not None else self.original).write(s)
        return len(s)

    def flush(self) -> None:
        if getattr(self.local, "buf", None) is None:
            self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_ROUTING = threading.Lock()
_routers: list[_Router] = []
_route_users = 0


@contextlib.contextmanager
def _routing() -> Iterator[None]:
    """Route sys.stdout/stderr through :class:`_Router` while any in-process execution runs."""
    global _route_users
    with _ROUTING:
        if _route_users == 0:
            _routers[:] = [_Router(sys.stdout), _Router(sys.stderr)]
            sys.stdout, sys.stderr = _routers[0], _routers[1]
        _route_users += 1
    try:
        yield
    finally:
        with _ROUTING:
            _route_users -= 1
            if _route_users == 0:
                if sys.stdout is _routers[0]:
                    sys.stdout = _routers[0].original
                if sys.stderr is _routers[1]:
                    sys.stderr = _routers[1].original
                _routers.clear()


class _LogCapture(logging.Handler):
    """Copies log records of one thread (WARNING and above, as the loggers allow) into a step's log."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        super().__init__()
        self.ident = threading.get_ident()
        self.out = write
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.ident:
            with contextlib.suppress(Exception):
                self.out(self.format(record) + "\n")


def _store_logs(ws: Workspace, data: bytes) -> str | None:
    if not data:
        return None
    try:
        return ws.artifacts.put_bytes(data).sha256
    except Exception as e:  # logs are a convenience: never fail the step for them
        log.warning("could not store the step's logs: %s", e)
        return None


class InProcessRunner:
    """Runs step tasks in threads of the coordinating process, sharing its workspace."""

    def __init__(self, ws: Workspace, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.ws = ws
        self.functions = dict(functions)

    def __call__(self, task: StepTask) -> dict[str, Any]:
        buf = io.StringIO()
        routers = list(_routers)
        for r in routers:
            r.local.buf = buf
        handler = _LogCapture(buf.write)
        logging.getLogger().addHandler(handler)
        try:
            outcome = _execute(task, self.ws, self.functions)
        finally:
            logging.getLogger().removeHandler(handler)
            for r in routers:
                r.local.buf = None
        outcome["logs_sha256"] = _store_logs(self.ws, buf.getvalue().encode())
        return outcome


_WORKER_WS: dict[tuple[str, str, str], Workspace] = {}


def run_step_task(task: StepTask) -> dict[str, Any]:
    """Run one attempt of a step in a worker process (local pool or Ray) and report the outcome.

    The workspace is opened once per process; stdout and stderr (of the
    process, so a subprocess's output too) are captured into the step's log.
    Errors come back as data (``ok``, ``error``, ``retryable``), never raised.
    """
    from loopml.workspace import Workspace

    for p in task.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    if task.cwd and os.path.isdir(task.cwd) and os.getcwd() != task.cwd:
        os.chdir(task.cwd)
    key = (task.home, task.settings.metadata_url, task.settings.artifact_root)
    ws = _WORKER_WS.get(key)
    if ws is None:
        ws = _WORKER_WS[key] = Workspace(Path(task.home), task.settings)
    with tempfile.TemporaryFile() as tmp:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        handler = _LogCapture(sys.stderr.write)
        logging.getLogger().addHandler(handler)
        try:
            outcome = _execute(task, ws, None)
        finally:
            logging.getLogger().removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        tmp.seek(0)
        outcome["logs_sha256"] = _store_logs(ws, tmp.read())
    return outcome


# -- the coordinator -------------------------------------------------------------------------------
def _coordinator() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(coord: Mapping[str, Any]) -> bool:
    if coord.get("host") != socket.gethostname() or not isinstance(coord.get("pid"), int):
        return True  # another machine: assume it is still at work
    try:
        os.kill(coord["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _sys_path() -> tuple[str, ...]:
    return tuple(p for p in sys.path if p and os.path.isdir(p))


def _pipeline_row(ws: Workspace, p: Pipeline, version: str) -> str:
    definition = p.to_dict()
    for _ in range(3):
        with ws.meta.session() as s:
            hit = s.scalar(select(PipelineRow.id).where(PipelineRow.name == p.name, PipelineRow.version == version))
        if hit:
            return hit
        try:
            with ws.meta.session(write=True) as s:
                row = PipelineRow(id=new_id("pln"), name=p.name, version=version, definition=definition,
                                  created_at=utcnow())
                s.add(row)
            return row.id
        except sa_exc.IntegrityError:
            continue  # registered by a concurrent run: read it
    raise Conflict(f"could not record pipeline {p.name!r}; try again")  # pragma: no cover


class _Run:
    """One execution being coordinated."""

    def __init__(
        self, ws: Workspace, p: Pipeline, params: dict[str, Any], execution_id: str, start: datetime,
        executor: str, max_workers: int | None, ray_address: str | None,
        on_step: Callable[[StepExecutionInfo], None] | None, reuse: Mapping[str, StepExecutionRow],
    ) -> None:
        self.ws = ws
        self.p = p
        self.params = params
        self.id = execution_id
        self.start = start
        self.executor_name = executor
        self.ray_address = ray_address
        self.on_step = on_step
        self.reuse = dict(reuse)
        self.order = p.order()
        self.deps = p.dependencies()
        self.gates = p.gates()
        self.status: dict[str, str] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.tasks: dict[str, StepTask] = {}
        self.keys: dict[str, str | None] = {}
        self.in_flight: dict[Future[Any], str] = {}
        self.retry_at: dict[str, float] = {}
        self.failed: list[tuple[str, str]] = []
        runnable = [s for s in p.steps if not KINDS.get(s.kind).inline]
        n = max_workers if max_workers is not None else (
            min(8, max(2, os.cpu_count() or 1)) if executor == "thread"
            else min(os.cpu_count() or 1, max(1, len(runnable))))
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidInput(f"max_workers must be a positive whole number, got {max_workers!r}")
        self.max_workers = n
        self.functions: dict[str, Callable[..., Any]] = dict(p.functions)
        self.function_of: dict[str, str] = {}
        for s in p.steps:
            if s.kind == "python" and s.function:
                self.function_of[s.name] = s.function
            elif not KINDS.get(s.kind).inline:
                fn = KINDS.get(s.kind).fn
                ref, _ = function_ref(fn)
                self.functions[ref] = fn
                self.function_of[s.name] = ref
        self.code = {s.name: p.code_id(s.name) for s in p.steps if s.cached}
        self.executor: Executor | None = None
        self.runner: InProcessRunner | None = None

    # -- executor ---------------------------------------------------------------------------------------
    def _make_executor(self) -> Executor:
        from loopml.compute import InlineExecutor, LocalExecutor

        if self.executor_name == "thread":
            return ThreadExecutor(self.max_workers, thread_name_prefix="loopml-step")
        if self.executor_name == "inline":
            return InlineExecutor()
        if self.executor_name == "ray":
            from loopml.compute.ray import RayExecutor

            return RayExecutor(self.max_workers, address=self.ray_address)
        return LocalExecutor(self.max_workers)

    def check_importable(self) -> None:
        """Out-of-process executors import every step function by reference: check they can."""
        if self.executor_name in ("thread", "inline"):
            return
        for name, ref in self.function_of.items():
            fn = self.functions.get(ref)
            if fn is not None and not function_ref(fn)[1]:
                raise InvalidInput(
                    f"step {name!r} runs {ref}, which {self.executor_name} worker processes cannot import "
                    "(defined interactively or inside a function); move it to a module or a .py file, or run "
                    "with executor='thread'")

    # -- recording --------------------------------------------------------------------------------------
    def _notify(self, row: StepExecutionRow) -> None:
        if self.on_step is not None:
            try:
                self.on_step(_step_info(row))
            except Exception as e:  # a progress display must not break the run
                log.debug("on_step callback failed: %s", e)

    def _write(self, name: str, **values: Any) -> None:
        edges = self._edges(values.get("outputs") or {}, values["status"]) if values.get("status") in _DONE else []
        with self.ws.meta.session(write=True) as s:
            if name in self.rows:
                row = s.get_one(StepExecutionRow, self.rows[name])
                for k, v in values.items():
                    setattr(row, k, v)
            else:
                spec = self.p.step_spec(name)
                row = StepExecutionRow(id=new_id("pse"), execution_id=self.id, name=name, kind=spec.kind,
                                       attempt=0, inputs={}, outputs={}, history=[])
                for k, v in values.items():
                    setattr(row, k, v)
                s.add(row)
                self.rows[name] = row.id
            me = EntityRef(EXECUTION_KIND, self.id)
            for dst, relation in edges:
                self.ws.lineage.add(me, dst, relation, session=s)
            s.flush()
            self._notify(row)

    def _edges(self, outputs: Mapping[str, Any], status: str) -> list[tuple[EntityRef, str]]:
        """Lineage edges from this execution to the entities a step's outputs name."""
        relation = "produced" if status == SUCCEEDED else "reused"
        out = []
        for key, kind in ENTITY_OUTPUTS.items():
            value = outputs.get(key)
            if not isinstance(value, str) or not value:
                continue
            try:
                out.append((EntityRef(kind, self._entity_id(kind, value)), relation))
            except LoopmlError:
                continue  # not an entity of this workspace: no edge
        return out

    def _entity_id(self, kind: str, value: str) -> str:
        if kind == "dataset_version":
            from loopml.data import Catalog

            return Catalog(self.ws).get(value).id
        if kind == "model_version":
            from loopml.registry import get_model_version

            return get_model_version(self.ws, value).id
        if kind == "recipe_version":
            from loopml.prep import get_recipe

            return get_recipe(self.ws, value).id
        return value

    # -- resolving ---------------------------------------------------------------------------------------
    def _lookup(self, ref: _expr.Ref) -> Any:
        if ref.kind == "param":
            return self.params[ref.name]
        if ref.kind == "execution":
            return {"id": self.id, "start_time": self.start.isoformat(), "pipeline": self.p.name}[ref.name]
        return _expr.get_path(self.outputs.get(ref.name, {}), ref.path, f"step {ref.name!r}")

    def _lookup_text(self, text: str) -> Any:
        m = _expr.REF.fullmatch(text)
        assert m is not None
        return self._lookup(_expr.parse_ref(m.group(1)))

    # -- scheduling -----------------------------------------------------------------------------------
    def _ready(self, name: str) -> bool:
        return all(self.status.get(d) in _TERMINAL for d in self.deps[name])

    def _start_ready(self) -> None:
        progress = True
        while progress:
            progress = False
            for name in self.order:
                if name in self.status or not self._ready(name):
                    continue
                why = self._skip_reason(name)
                if why is not None:
                    self._skip(name, why)
                    progress = True
                    continue
                if self.failed or any(self.status.get(d) not in _DONE for d in self.deps[name]):
                    continue  # after a failure nothing new starts (resume runs the rest)
                if len(self.in_flight) >= self.max_workers and not self._is_inline(name):
                    if name not in self.rows:  # ready, waiting for a free worker
                        self._write(name, status=STARTING, start_time=utcnow())
                    continue
                self._start(name)
                progress = True

    def _skip_reason(self, name: str) -> str | None:
        """Why a step whose dependencies all ended is skipped, or None if it is not."""
        skipped = next((d for d in self.deps[name] if self.status.get(d) == SKIPPED), None)
        if skipped is not None:
            return f"step {skipped!r} was skipped"
        gate = self.gates.get(name)
        if gate is not None and self.status.get(gate[0]) in _DONE:
            cond, branch = gate
            if bool(self.outputs[cond].get("result")) != branch:
                return f"condition {cond!r} was {str(not branch).lower()}"
        return None

    def _is_inline(self, name: str) -> bool:
        return KINDS.get(self.p.step_spec(name).kind).inline

    def _start(self, name: str) -> None:
        spec = self.p.step_spec(name)
        now = utcnow()
        if name in self.reuse:
            old = self.reuse[name]
            self.status[name] = CACHED
            self.outputs[name] = dict(old.outputs or {})
            self._write(name, status=CACHED, start_time=now, end_time=now, inputs=dict(old.inputs or {}),
                        outputs=dict(old.outputs or {}), cache_key=old.cache_key,
                        cached_from=old.cached_from or old.id, logs_sha256=old.logs_sha256)
            return
        if spec.kind == "condition":
            self._condition(name, spec.when, now)
            return
        try:
            args = _expr.resolve(spec.args, self._lookup)
        except LoopmlError as e:
            self._fail(name, str(e), now, inputs={})
            return
        if spec.kind == "fail":
            self._fail(name, str(args.get("message")), now, inputs=args)
            return
        key = None
        if spec.cached:
            kind = KINDS.get(spec.kind)
            key = cache_key(spec.kind, self.code[name], args, input_hashes(self.ws, args, kind.dataset_args))
            with self.ws.meta.session() as s:
                hit = find_cached(s, key, spec.expire_after_s)
                if hit is not None:
                    hit_outputs, hit_id, hit_logs = dict(hit.outputs or {}), hit.id, hit.logs_sha256
            if hit is not None:
                self.status[name] = CACHED
                self.outputs[name] = hit_outputs
                self._write(name, status=CACHED, start_time=now, end_time=utcnow(), inputs=args,
                            outputs=hit_outputs, cache_key=key, cached_from=hit_id, logs_sha256=hit_logs)
                return
        self.keys[name] = key
        self.tasks[name] = StepTask(
            home=str(self.ws.home), settings=self.ws.settings, pipeline=self.p.name, execution_id=self.id,
            step=name, kind=spec.kind, function=self.function_of[name], args=args, attempt=1,
            retry_on=spec.retries.on, sys_path=_sys_path() if self.executor_name == "ray" else (),
            cwd=os.getcwd(),
        )
        self.status[name] = STARTING
        self._submit(name, start_time=now, inputs=args, cache_key=key)

    def _submit(self, name: str, **first: Any) -> None:
        """Hand an attempt to the executor (``first``: the values to record with the first one)."""
        assert self.executor is not None
        attempt = self.attempts.get(name, 0) + 1
        self.attempts[name] = attempt
        task = self.tasks[name]
        if attempt != task.attempt:
            task = self.tasks[name] = dataclasses.replace(task, attempt=attempt)
        self.status[name] = EXECUTING
        self._write(name, status=EXECUTING, attempt=attempt, **first)
        fn: Callable[[StepTask], dict[str, Any]] = self.runner if self.runner is not None else run_step_task
        try:
            fut = self.executor.submit(fn, task)
        except Exception as e:  # the executor itself is broken (a dead pool)
            fut = Future()
            fut.set_exception(e)
        self.in_flight[fut] = name

    def _skip(self, name: str, why: str) -> None:
        self.status[name] = SKIPPED
        now = utcnow()
        self._write(name, status=SKIPPED, start_time=now, end_time=now, error=None,
                    outputs={}, inputs={"skipped_because": why})

    def _fail(self, name: str, message: str, now: datetime, inputs: dict[str, Any]) -> None:
        self.status[name] = FAILED
        self.failed.append((name, message))
        self._write(name, status=FAILED, start_time=now, end_time=utcnow(), inputs=inputs, error=message,
                    attempt=max(1, self.attempts.get(name, 0)))

    def _condition(self, name: str, when: Any, now: datetime) -> None:
        try:
            values = _expr.resolve(when, self._lookup)
            result = bool(_expr.evaluate(when, self._lookup_text))
        except LoopmlError as e:
            self._fail(name, f"cannot evaluate {_expr.to_text(when)}: {e}", now, inputs={})
            return
        shown = _expr.to_text(values)
        if isinstance(when, str):  # a bare reference: say which value decided
            shown = f"{when} = {shown}"
        detail = f"{shown} -> {str(result).lower()}"
        outputs = {"result": result, "detail": detail}
        self.status[name] = SUCCEEDED
        self.outputs[name] = outputs
        self._write(name, status=SUCCEEDED, start_time=now, end_time=utcnow(), attempt=1,
                    inputs={"when": _expr.to_text(when)}, outputs=outputs)

    def _finish(self, fut: Future[Any]) -> None:
        name = self.in_flight.pop(fut)
        try:
            outcome = fut.result()
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            if isinstance(e, BrokenProcessPool):
                self._restart_executor()
            outcome = {"ok": False, "retryable": True, "started": None, "ended": time.time(),
                       "error": f"the {self.executor_name} worker failed: {type(e).__name__}: "
                                f"{' '.join(str(e).split())}"}
        attempt = self.attempts[name]
        started = _ts(outcome.get("started"))
        ended = _ts(outcome.get("ended")) or utcnow()
        entry = {"attempt": attempt, "start": _iso(started), "end": _iso(ended), "error": outcome.get("error"),
                 "logs_sha256": outcome.get("logs_sha256")}
        hist = self.history.setdefault(name, [])
        hist.append(entry)
        first_start = _ts(_parse(hist[0]["start"])) if hist[0]["start"] else None
        common: dict[str, Any] = {"history": list(hist), "logs_sha256": outcome.get("logs_sha256")}
        if first_start is not None:
            common["start_time"] = first_start
        if outcome.get("ok"):
            self.status[name] = SUCCEEDED
            self.outputs[name] = outcome["outputs"]
            self._write(name, status=SUCCEEDED, end_time=ended, outputs=outcome["outputs"], error=None, **common)
            return
        spec = self.p.step_spec(name)
        if outcome.get("retryable") and attempt < spec.retries.max_attempts:
            delay = spec.retries.delay(attempt)
            self.retry_at[name] = time.monotonic() + delay
            self._write(name, error=f"attempt {attempt} failed ({outcome.get('error')}); retrying in {delay:g}s",
                        **common)
            return
        self.status[name] = FAILED
        message = str(outcome.get("error"))
        self.failed.append((name, message))
        self._write(name, status=FAILED, end_time=ended, error=message, **common)

    def _restart_executor(self) -> None:
        if self.executor is not None:
            with contextlib.suppress(Exception):
                self.executor.shutdown(wait=False)
        self.executor = self._make_executor()

    # -- the loop -----------------------------------------------------------------------------------------
    def run(self) -> tuple[str, str | None]:
        """Run to the end; returns (status, error)."""
        self.executor = self._make_executor()
        if self.executor.in_process:
            self.runner = InProcessRunner(self.ws, self.functions)
        routing = _routing() if self.executor.in_process else contextlib.nullcontext()
        clean = False
        try:
            with routing:
                while True:
                    self._start_ready()
                    due = [n for n, t in self.retry_at.items() if t <= time.monotonic()]
                    for n in due:
                        del self.retry_at[n]
                        self._submit(n)
                    if not self.in_flight and not self.retry_at:
                        break
                    timeout = None
                    if self.retry_at:
                        timeout = max(0.0, min(self.retry_at.values()) - time.monotonic())
                    if self.in_flight:
                        done, _ = wait(list(self.in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
                        for fut in done:
                            self._finish(fut)
                    elif timeout:
                        time.sleep(timeout)
            clean = True
        except KeyboardInterrupt:
            self._stop("interrupted")
            raise
        finally:
            if self.executor is not None:
                with contextlib.suppress(Exception):
                    self.executor.shutdown(wait=clean)
        if self.failed:
            name, message = self.failed[0]
            return FAILED, f"step {name!r} failed: {message}"
        return SUCCEEDED, None

    def _stop(self, why: str) -> None:
        now = utcnow()
        for name, st in list(self.status.items()):
            if st in (STARTING, EXECUTING):
                self.status[name] = STOPPED
                with contextlib.suppress(Exception):
                    self._write(name, status=STOPPED, end_time=now, error=f"stopped: {why}")
        with contextlib.suppress(Exception), self.ws.meta.session(write=True) as s:
            row = s.get_one(PipelineExecutionRow, self.id)
            row.status, row.end_time, row.error = STOPPED, now, f"stopped: {why}"
            self.ws.events.emit(EXECUTION_FINISHED, EntityRef(EXECUTION_KIND, self.id),
                                {"execution_id": self.id, "pipeline": self.p.name, "status": STOPPED}, session=s)


def _ts(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- the entry point -------------------------------------------------------------------------------
def run_pipeline(
    ws: Workspace,
    pipeline: Pipeline | str | _os.PathLike[str] | None,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str = "local",
    max_workers: int | None = None,
    idempotency_key: str | None = None,
    resume_from: str | None = None,
    ray_address: str | None = None,
    on_step: Callable[[StepExecutionInfo], None] | None = None,
) -> ExecutionInfo:
    """Run a pipeline and return its execution (Succeeded or Failed; failures are recorded, not raised).

    Parameters
    ----------
    ws
        The workspace.
    pipeline
        A :class:`~loopml.pipelines.Pipeline`, a YAML/Python file, or
        ``module:attribute`` (see :func:`~loopml.pipelines.load_pipeline`). With
        ``resume_from`` it may be None: the definition the execution ran is used.
    params
        Parameter values; text (as ``--param k=v`` gives) is converted to each parameter's type.
    executor
        ``local`` (worker processes), ``ray`` (Ray tasks), ``thread`` (threads of
        this process; functions need not be importable) or ``inline`` (one step at a time here).
    max_workers
        Steps at once (default: the CPUs, at most the number of steps).
    idempotency_key
        If an execution with this key exists, return it instead of starting
        another (what a trigger firing twice for one event needs).
    resume_from
        A Failed or Stopped execution: run a new one with its parameters that
        reuses the outputs of the steps that succeeded there (marked Cached)
        and runs the rest.
    ray_address
        The Ray cluster for ``executor="ray"`` (default: a local instance, or the connected one).
    on_step
        Called with each step's record whenever its status changes (progress display).

    Returns
    -------
    ExecutionInfo

    Raises
    ------
    InvalidInput
        The pipeline or the parameters are invalid (nothing ran).
    Conflict
        ``resume_from`` names an execution that succeeded or is still running.
    """
    ex = str(executor).strip().lower()
    if ex not in EXECUTORS:
        raise InvalidInput(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 500):
        raise InvalidInput("idempotency_key must be text of 1 to 500 characters")
    reuse: dict[str, StepExecutionRow] = {}
    if resume_from is not None:
        parent = get_execution(ws, resume_from)
        if parent.status == SUCCEEDED:
            raise Conflict(f"execution {parent.id} succeeded; there is nothing to resume (run the pipeline again)")
        if parent.status == EXECUTING:
            with ws.meta.session() as s:
                coord = dict(s.get_one(PipelineExecutionRow, parent.id).coordinator or {})
            if _alive(coord):
                raise Conflict(f"execution {parent.id} is still executing (process {coord.get('pid')} on "
                               f"{coord.get('host')}); wait for it, or stop it first")
            _mark_dead(ws, parent.id)
        if params:
            raise InvalidInput("a resumed execution keeps the parameters of the one it resumes; drop params")
        params = parent.params
        if pipeline is None:
            p = Pipeline.from_dict(get_definition(ws, parent.id), source=f"execution {parent.id}")
        else:
            from loopml.pipelines.yaml_loader import load_pipeline

            p = load_pipeline(pipeline)
            if p.name != parent.pipeline:
                raise InvalidInput(f"execution {parent.id} ran pipeline {parent.pipeline!r}, not {p.name!r}")
        with ws.meta.session() as s:
            rows = s.scalars(select(StepExecutionRow).where(StepExecutionRow.execution_id == parent.id,
                                                            StepExecutionRow.status.in_(_DONE)))
            reuse = {r.name: r for r in rows if r.name in {st.name for st in p.steps}}
        resume_id: str | None = parent.id
    else:
        if pipeline is None:
            raise InvalidInput("give a pipeline (or resume_from an execution)")
        from loopml.pipelines.yaml_loader import load_pipeline

        p = load_pipeline(pipeline)
        resume_id = None
    p.validate()
    values = p.resolve_params(params)
    version = p.version
    now = utcnow()
    execution_id = new_id("pex")
    run = _Run(ws, p, values, execution_id, now, ex, max_workers, ray_address, on_step, reuse)
    run.check_importable()
    pipeline_id = _pipeline_row(ws, p, version)
    try:
        with ws.meta.session(write=True) as s:
            if idempotency_key is not None:
                existing = s.scalar(select(PipelineExecutionRow.id).where(
                    PipelineExecutionRow.idempotency_key == idempotency_key))
                if existing:
                    raise _Existing(existing)
            s.add(PipelineExecutionRow(
                id=execution_id, pipeline_id=pipeline_id, pipeline_name=p.name, pipeline_version=version,
                params=values, status=EXECUTING, executor=ex, idempotency_key=idempotency_key,
                resumed_from=resume_id, coordinator=_coordinator(), created_at=now, start_time=now,
            ))
            s.flush()
            ws.lineage.add(EntityRef("pipeline", pipeline_id), EntityRef(EXECUTION_KIND, execution_id),
                           "executed_as", session=s)
            if resume_id:
                ws.lineage.add(EntityRef(EXECUTION_KIND, resume_id), EntityRef(EXECUTION_KIND, execution_id),
                               "resumed_by", session=s)
            ws.events.emit(EXECUTION_STARTED, EntityRef(EXECUTION_KIND, execution_id),
                           {"execution_id": execution_id, "pipeline": p.name, "version": version, "params": values,
                            "idempotency_key": idempotency_key, "resumed_from": resume_id}, session=s)
    except _Existing as e:
        log.info("idempotency key %r: execution %s exists", idempotency_key, e.execution_id)
        return get_execution(ws, e.execution_id)
    except sa_exc.IntegrityError:
        # a concurrent run with the same key won the race
        with ws.meta.session() as s:
            existing = s.scalar(select(PipelineExecutionRow.id).where(
                PipelineExecutionRow.idempotency_key == idempotency_key))
        if existing is None:
            raise
        return get_execution(ws, existing)
    log.info("pipeline %s: execution %s started (%s executor)", p.name, execution_id, ex)
    try:
        status, error = run.run()
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        status, error = FAILED, f"the executor failed: {type(e).__name__}: {' '.join(str(e).split())}"
        log.exception("pipeline %s execution %s", p.name, execution_id)
        if not isinstance(e, Exception):
            raise
    with ws.meta.session(write=True) as s:
        row = s.get_one(PipelineExecutionRow, execution_id)
        row.status, row.error, row.end_time = status, error, utcnow()
        ws.events.emit(EXECUTION_FINISHED, EntityRef(EXECUTION_KIND, execution_id),
                       {"execution_id": execution_id, "pipeline": p.name, "version": version, "status": status,
                        "error": error, "outputs": {n: o for n, o in run.outputs.items()}}, session=s)
    return get_execution(ws, execution_id)


class _Existing(Exception):
    def __init__(self, execution_id: str) -> None:
        super().__init__(execution_id)
        self.execution_id = execution_id


def _mark_dead(ws: Workspace, execution_id: str) -> None:
    """Record an execution whose coordinator died as Stopped (its running steps too)."""
    now = utcnow()
    with ws.meta.session(write=True) as s:
        row = s.get_one(PipelineExecutionRow, execution_id)
        row.status, row.end_time, row.error = STOPPED, now, "stopped: its coordinating process ended"
        for st in s.scalars(select(StepExecutionRow).where(StepExecutionRow.execution_id == execution_id,
                                                           StepExecutionRow.status.in_((STARTING, EXECUTING)))):
            st.status, st.end_time, st.error = STOPPED, now, "stopped: its coordinating process ended"


__all__ = [
    "CACHED",
    "EXECUTING",
    "EXECUTION_FINISHED",
    "EXECUTION_STARTED",
    "EXECUTION_STATUSES",
    "EXECUTORS",
    "FAILED",
    "SKIPPED",
    "STARTING",
    "STEP_STATUSES",
    "STOPPED",
    "SUCCEEDED",
    "ExecutionInfo",
    "StepExecutionInfo",
    "StepTask",
    "ThreadExecutor",
    "get_definition",
    "get_execution",
    "list_executions",
    "run_pipeline",
    "run_step_task",
    "step_logs",
]
