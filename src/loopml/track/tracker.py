"""Experiment tracking: the :class:`Tracker` (a client over one workspace) and its :class:`Run`.

A run records what a training job, a tuning trial or an evaluation did:
params, metrics as time series, tags, artifacts, the dataset versions it
used, and, captured automatically, the git commit of the code, the package
versions, the user, the host and the seed. Runs group into experiments and
nest (a tuning job's trials are child runs).

Logging is buffered: ``log_metric`` appends to memory and a background thread
writes batches with ``executemany`` (every ``flush_interval`` seconds, so other
processes see a new run and its points within that time); everything is
written when a run ends, when the tracker closes, and at interpreter exit.
Reads through the tracker flush first, so a tracker always sees its own
writes. There is no "active run" global: runs are objects, and several can be
open at once, in several threads.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import operator
import os
import random
import re
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, SupportsFloat

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loopml._util import as_utc, new_id, utcnow
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.store.artifacts import ArtifactRef, check_name
from loopml.store.lineage import EntityRef
from loopml.track._env import CodeVersion, code_version, package_versions, user_and_host
from loopml.track._filter import (
    STATUSES,
    SqlQuery,
    compile_filter,
    compile_order_by,
    parse_filter,
    parse_order_by,
)
from loopml.track._writer import MetricRow, RunEnd, _Writer
from loopml.track.models import (
    Experiment,
    RunArtifact,
    RunDatasetRow,
    RunMetric,
    RunRow,
)

if TYPE_CHECKING:
    from loopml.data.catalog import DatasetVersionInfo
    from loopml.track.compare import RunComparison
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: events emitted when a run ends (payload: experiment, name, status, message, parent_run_id, duration_s)
RUN_FINISHED = "run.finished"
RUN_FAILED = "run.failed"

DEFAULT_EXPERIMENT = "default"
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
MAX_MESSAGE_LENGTH = 4000

_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-./:@ ]{0,249}$")
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,59}$")
_NUMERIC = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INT64 = (-(2**63), 2**63 - 1)
_CHUNK = 500


# -- validation helpers ---------------------------------------------------------------------------
def check_experiment_name(name: str) -> str:
    """Return ``name`` if it is a valid experiment name, else raise InvalidInput."""
    if not isinstance(name, str) or not _EXPERIMENT_NAME.match(name):
        raise InvalidInput(
            f"experiment name {name!r} is not allowed; use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (at most 200 characters)"
        )
    return name


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or key.endswith(" "):
        raise InvalidInput(
            f"{what} name {key!r} is not allowed; use letters, digits, '_', '-', '.', '/', ':', '@' "
            "or spaces (at most 250 characters, not starting or ending with a space)"
        )
    return key


def _as_number(text: str) -> float | None:
    """The number a param or tag text spells, for numeric filters (None when it is not one)."""
    if len(text) > 40 or not _NUMERIC.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _metric_value(key: str, value: Any) -> float | None:
    if isinstance(value, (str, bytes)) or value is None:
        raise InvalidInput(f"metric {key!r} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"metric {key!r} must be a number, got {value!r} ({type(value).__name__})"
        ) from None
    return None if v != v else v  # NaN is stored as NULL on every database


def _check_step(key: str, step: Any) -> int:
    try:
        s = operator.index(step)
    except TypeError:
        raise InvalidInput(f"step of metric {key!r} must be an integer, got {step!r}") from None
    if isinstance(step, bool) or not _INT64[0] <= s <= _INT64[1]:
        raise InvalidInput(f"step of metric {key!r} must be a 64-bit integer, got {step!r}")
    return s


def _timestamp(value: float | datetime | None) -> float:
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        return as_utc(value).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InvalidInput(
        f"timestamp {value!r} must be seconds since the epoch (like time.time()) or a datetime"
    )


def _tag_rows(run_id: str, tags: Mapping[str, Any]) -> list[tuple[str, str, str, float | None]]:
    rows = []
    for key, value in tags.items():
        _check_key(key, "tag")
        text = str(value)
        if len(text) > MAX_TAG_LENGTH:
            raise InvalidInput(
                f"tag {key!r} is {len(text)} characters long (at most {MAX_TAG_LENGTH})"
            )
        rows.append((run_id, key, text, _as_number(text)))
    return rows


def _one_line(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_ADJECTIVES = ("amber", "brave", "calm", "deft", "eager", "fleet", "gentle", "hardy", "keen",
               "lucid", "merry", "nimble", "proud", "quick", "rapid", "sharp", "steady", "sunny",
               "swift", "tidy", "vivid", "warm", "wise", "zesty")
_NOUNS = ("badger", "crane", "dolphin", "eagle", "falcon", "gecko", "heron", "ibis", "jaguar",
          "koala", "lynx", "marten", "newt", "otter", "panda", "quail", "raven", "seal", "tapir",
          "urchin", "vole", "walrus", "yak", "zebra")


def _random_name() -> str:
    r = random.SystemRandom()
    return f"{r.choice(_ADJECTIVES)}-{r.choice(_NOUNS)}-{r.randrange(1000)}"


# -- records --------------------------------------------------------------------------------------
class MetricPoint(NamedTuple):
    """One point of a metric history: ``(step, value, timestamp)`` (seconds since the epoch)."""

    step: int
    value: float
    timestamp: float


@dataclass(frozen=True)
class RunDataset:
    """A dataset version a run used, and its role (``train``, ``validation``, ...)."""

    id: str
    name: str
    version: int
    role: str
    content_hash: str

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "name": self.name, "version": self.version, "role": self.role,
                "content_hash": self.content_hash}


@dataclass(frozen=True)
class RunArtifactInfo:
    """A named artifact of a run: its sha256 in the artifact store and its size."""

    name: str
    sha256: str
    size: int
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "sha256": self.sha256, "size": self.size,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class RunInfo:
    """Everything recorded about one run (``metrics`` holds each metric's latest value)."""

    id: str
    experiment: str
    experiment_id: str
    name: str
    status: str
    message: str | None
    parent_run_id: str | None
    start_time: datetime
    end_time: datetime | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[RunDataset] = field(default_factory=list)
    artifacts: list[RunArtifactInfo] = field(default_factory=list)
    code_version: CodeVersion | None = None
    packages: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    user: str = ""
    host: str = ""

    @property
    def entity(self) -> EntityRef:
        """The lineage reference of this run."""
        return EntityRef("run", self.id)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while running)."""
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (used by ``--json`` output)."""
        return {
            "id": self.id,
            "experiment": self.experiment,
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "parent_run_id": self.parent_run_id,
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "duration_s": self.duration,
            "params": self.params,
            "metrics": {k: (None if math.isnan(v) else v) for k, v in self.metrics.items()},
            "tags": self.tags,
            "datasets": [d.to_dict() for d in self.datasets],
            "artifacts": [a.to_dict() for a in self.artifacts],
            "code_version": self.code_version.to_dict() if self.code_version else None,
            "packages": self.packages,
            "seed": self.seed,
            "user": self.user,
            "host": self.host,
        }


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment with its number of runs and when the latest one started."""

    id: str
    name: str
    created_at: datetime
    run_count: int
    last_run_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "name": self.name, "created_at": self.created_at.isoformat(),
                "run_count": self.run_count,
                "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None}


# -- the run --------------------------------------------------------------------------------------
class Run:
    """An open run: log params, metrics, tags, artifacts and datasets into it.

    Create runs with :meth:`Tracker.start_run` and use them as context
    managers: leaving the ``with`` block ends the run FINISHED, or FAILED
    (KILLED on Ctrl-C) when an exception escapes, with the error as message
    and the traceback kept as the artifact ``error/traceback.txt``.

    Attributes
    ----------
    id, name, experiment, experiment_id, parent_run_id, start_time, seed
        What the run was started with.
    """

    def __init__(
        self,
        tracker: Tracker,
        *,
        id: str,
        name: str,
        experiment: str,
        experiment_id: str,
        parent_run_id: str | None,
        start_time: datetime,
        seed: int | None,
    ) -> None:
        self.id = id
        self.name = name
        self.experiment = experiment
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.start_time = start_time
        self.seed = seed
        self._tracker = tracker
        self._writer = tracker._writer
        self._params: dict[str, str] = {}
        #: metric key -> highest step logged (also the set of keys already validated)
        self._steps: dict[str, int] = {}
        self._final_status: str | None = None
        self._message: str | None = None
        self._ended = False

    # -- metrics ----------------------------------------------------------------
    def log_metric(
        self,
        key: str,
        value: SupportsFloat,
        step: int | None = None,
        timestamp: float | datetime | None = None,
    ) -> None:
        """Record one point of metric ``key`` (buffered; written in batches).

        Parameters
        ----------
        key
            Metric name: letters, digits, ``_ - . / :`` and spaces.
        value
            A number (NaN and infinities are kept).
        step
            Position in the series; by default one past the last step logged
            for this key in this run (0 for the first point).
        timestamp
            Seconds since the epoch or a datetime; default now.
        """
        if self._ended:
            raise self._ended_error()
        last = self._steps.get(key)
        if last is None:
            _check_key(key, "metric")
            last = -1
        step = last + 1 if step is None else _check_step(key, step)
        if step > last:
            self._steps[key] = step
        v: float | None = value if type(value) is float else _metric_value(key, value)
        if v is not None and v != v:
            v = None
        self._writer.add_metric(
            self.id, key, step, v, time.time() if timestamp is None else _timestamp(timestamp)
        )

    def log_metrics(
        self,
        metrics: Mapping[str, SupportsFloat],
        step: int | None = None,
        timestamp: float | datetime | None = None,
    ) -> None:
        """Record several metrics at one step (each key's next step when ``step`` is None)."""
        if self._ended:
            raise self._ended_error()
        ts = _timestamp(timestamp)
        rows: list[MetricRow] = []
        steps: dict[str, int] = {}
        for key, value in metrics.items():
            last = self._steps.get(key)
            if last is None:
                _check_key(key, "metric")
                last = -1
            s = last + 1 if step is None else _check_step(key, step)
            steps[key] = max(s, last)
            rows.append((self.id, key, s, _metric_value(key, value), ts))
        self._steps.update(steps)
        if rows:
            self._writer.add_metrics(rows)

    # -- params and tags --------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter (stored as text; a param cannot change within a run)."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record several parameters at once."""
        if self._ended:
            raise self._ended_error()
        rows: list[tuple[str, str, str, float | None]] = []
        new: dict[str, str] = {}
        for key, value in params.items():
            _check_key(key, "param")
            text = str(value)
            if len(text) > MAX_PARAM_LENGTH:
                raise InvalidInput(
                    f"param {key!r} is {len(text)} characters long (at most {MAX_PARAM_LENGTH}); "
                    "log long values as an artifact"
                )
            old = self._params.get(key, new.get(key))
            if old is not None:
                if old != text:
                    raise Conflict(
                        f"param {key!r} of run {self.id} is already {old!r}, cannot become "
                        f"{text!r}; params are fixed for a run (use a tag or start a new run)"
                    )
                continue
            new[key] = text
            rows.append((self.id, key, text, _as_number(text)))
        self._params.update(new)
        if rows:
            self._writer.add_params(rows)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (a later value replaces an earlier one)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags at once."""
        if self._ended:
            raise self._ended_error()
        rows = _tag_rows(self.id, tags)
        if rows:
            self._writer.add_tags(rows)

    # -- artifacts and datasets -------------------------------------------------
    def log_artifact(self, local_path: str | os.PathLike[str], name: str | None = None) -> str:
        """Store a local file as an artifact of this run; return its sha256.

        Parameters
        ----------
        local_path
            The file to store (folders: log their files one by one).
        name
            Its name within the run, e.g. ``plots/roc.html`` (default: the
            file's name). Absolute names and ``..`` are refused.
        """
        if self._ended:
            raise self._ended_error()
        path = Path(local_path)
        name = check_name(path.name if name is None else name)
        if not path.exists():
            raise NotFound(f"cannot log artifact {name!r}: {path} does not exist")
        if not path.is_file():
            raise InvalidInput(f"cannot log artifact {name!r}: {path} is not a file; log the "
                               "files of a folder one by one")
        ref = self._tracker.ws.artifacts.put_file(path)
        self._tracker._record_artifacts(self.id, [(name, ref)])
        return ref.sha256

    def log_artifacts(self, files: Mapping[str, str | os.PathLike[str]]) -> dict[str, str]:
        """Store several local files as artifacts of this run in one database write.

        Parameters
        ----------
        files
            Name within the run -> local file (names as for :meth:`log_artifact`).

        Returns
        -------
        dict
            Name -> sha256, in the order given.
        """
        if self._ended:
            raise self._ended_error()
        refs: list[tuple[str, ArtifactRef]] = []
        for raw_name, local_path in files.items():
            path = Path(local_path)
            name = check_name(raw_name)
            if not path.is_file():
                raise NotFound(f"cannot log artifact {name!r}: {path} is not a file")
            refs.append((name, self._tracker.ws.artifacts.put_file(path)))
        self._tracker._record_artifacts(self.id, refs)
        return {name: ref.sha256 for name, ref in refs}

    def log_bytes(self, name: str, data: bytes) -> str:
        """Store ``data`` as the artifact ``name`` of this run; return its sha256."""
        if self._ended:
            raise self._ended_error()
        name = check_name(name)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput(f"artifact {name!r} must be bytes, got {type(data).__name__}; "
                               "encode text first")
        ref = self._tracker.ws.artifacts.put_bytes(bytes(data))
        self._tracker._record_artifacts(self.id, [(name, ref)])
        return ref.sha256

    def log_dataset(self, info: DatasetVersionInfo | str, role: str = "train") -> None:
        """Record that this run used a dataset version (and a lineage edge ``used_by`` to it).

        Parameters
        ----------
        info
            A :class:`~loopml.data.catalog.DatasetVersionInfo`, or ``NAME[:VER]``
            looked up in the catalog (latest version without ``:VER``).
        role
            What the run used it for: ``train``, ``validation``, ``test``, ...
        """
        if self._ended:
            raise self._ended_error()
        if not isinstance(role, str) or not _ROLE.match(role):
            raise InvalidInput(f"dataset role {role!r} is not allowed; use a word such as "
                               "'train', 'validation' or 'test'")
        if isinstance(info, str):
            from loopml.data.catalog import Catalog

            info = Catalog(self._tracker.ws).get(info)
        self._tracker._record_dataset(self.id, info, role)

    # -- status -----------------------------------------------------------------
    def set_status(self, status: str, message: str | None = None) -> None:
        """Set the status the run ends with (FINISHED, FAILED or KILLED) and a message.

        The run stays open; leaving the ``with`` block (or :meth:`end`) ends it
        with this status instead of FINISHED. An exception escaping the block
        still marks it FAILED.
        """
        if self._ended:
            raise self._ended_error()
        s = _check_status(status)
        if s == "RUNNING":
            self._final_status = None
        else:
            self._final_status = s
        self._message = None if message is None else _one_line(str(message))

    @property
    def ended(self) -> bool:
        """True once the run has ended (no more logging)."""
        return self._ended

    def end(self, status: str | None = None, message: str | None = None) -> None:
        """End the run now (FINISHED unless ``status`` or :meth:`set_status` says otherwise)."""
        if self._ended:
            return
        final = _check_status(status) if status is not None else self._final_status or "FINISHED"
        if final == "RUNNING":
            raise InvalidInput("a run cannot end as RUNNING; give FINISHED, FAILED or KILLED")
        msg = _one_line(str(message)) if message is not None else self._message
        self._tracker._end_run(self, final, msg)

    def info(self) -> RunInfo:
        """What is recorded for this run so far (flushes the buffer first)."""
        return self._tracker.get_run(self.id)

    def _fail(self, exc: BaseException, tb: TracebackType | None) -> None:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        message = _one_line(f"{type(exc).__name__}: {exc}")
        try:
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            self.log_bytes("error/traceback.txt", text.encode())
        except Exception as e:  # never hide the user's error behind ours
            log.warning("could not store the traceback of run %s: %s", self.id, e)
        self._tracker._end_run(self, status, message)

    def _ended_error(self) -> InvalidInput:
        return InvalidInput(f"run {self.id} ({self.name}) has ended; start a new run to log more")

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ended:
            return
        if exc is None:
            self.end()
            return
        try:
            self._fail(exc, tb)
        except Exception as e:  # the user's exception is the one to see
            log.error("could not record the end of run %s: %s", self.id, e)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, experiment={self.experiment!r})"


def _check_status(status: str) -> str:
    s = str(status).upper()
    if s not in STATUSES:
        raise InvalidInput(f"run status {status!r} is not one of {', '.join(STATUSES)}")
    return s


# -- the tracker ----------------------------------------------------------------------------------
#: live trackers, so that interpreter exit flushes their buffers (see _close_all_at_exit)
_LIVE: weakref.WeakSet[Tracker] = weakref.WeakSet()


class Tracker:
    """A tracking client over one workspace: starts runs, buffers their writes, searches them.

    Parameters
    ----------
    ws
        The workspace whose metadata store and artifact store hold the runs.
    flush_interval
        Seconds between background writes of buffered metrics, params and
        tags (0 disables the background thread: writes happen at run end,
        :meth:`flush` and :meth:`close`, or when ``batch_size`` rows wait).
    batch_size
        Pending rows that trigger a write before the interval is up.
    capture_code_version
        Record the git commit and dirty flag of the working directory's repository.

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.track import Tracker
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> tracker = Tracker(ws)
    >>> with tracker.start_run(experiment="demo", seed=7) as run:
    ...     run.log_params({"max_depth": 6, "eta": 0.1})
    ...     for step in range(3):
    ...         run.log_metric("loss", 1.0 / (step + 1), step=step)
    >>> info = tracker.get_run(run.id)
    >>> info.status, info.params["max_depth"], round(info.metrics["loss"], 3), info.seed
    ('FINISHED', '6', 0.333, 7)
    >>> [r.id for r in tracker.search_runs(filter="params.max_depth = 6")] == [run.id]
    True
    >>> tracker.close(); ws.close()
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 5000,
        capture_code_version: bool = True,
    ) -> None:
        if flush_interval < 0 or batch_size < 1:
            raise InvalidInput("flush_interval must be >= 0 and batch_size >= 1")
        self.ws = ws
        self.capture_code_version = capture_code_version
        self._writer = _Writer(ws, flush_interval, batch_size)
        self._experiments: dict[str, str] = {}
        self._code_versions: dict[str, CodeVersion | None] = {}
        self._open: dict[str, Run] = {}
        self._open_lock = threading.Lock()
        self._closed = False
        self._insert = postgresql.insert if ws.meta.dialect == "postgresql" else sqlite.insert
        _LIVE.add(self)
        # Dropping the tracker without close() still writes what it buffered. The finalizer
        # holds the open runs (which hold the tracker): a tracker with open runs lives until
        # interpreter exit ends them, rather than leaving them RUNNING for ever.
        self._finalizer = weakref.finalize(
            self, _close_dropped, self._writer, self._open
        )
        self._finalizer.atexit = False

    # -- runs -------------------------------------------------------------------
    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
    ) -> Run:
        """Start a run (use it as a context manager).

        Parameters
        ----------
        experiment
            Experiment name, created on first use (default: the parent's
            experiment, else ``default``).
        name
            A display name (default: a random ``adjective-animal-NNN``).
        parent_run_id
            Nest this run under another (a tuning job's trials under the job).
        tags
            Initial tags.
        seed
            The random seed the run uses, recorded with it.

        Returns
        -------
        Run
            The open run; the git commit, package versions, user and host are recorded.
        """
        if self._closed:
            raise InvalidInput("this tracker is closed; create a new Tracker(ws)")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200
                                 or any(ord(c) < 32 for c in name)):
            raise InvalidInput(f"run name {name!r} must be 1 to 200 printable characters")
        if seed is not None:
            try:
                seed = operator.index(seed)
            except TypeError:
                raise InvalidInput(f"seed must be an integer, got {seed!r}") from None
            if not _INT64[0] <= seed <= _INT64[1]:
                raise InvalidInput(f"seed {seed} does not fit in 64 bits")
        parent_experiment: str | None = None
        if parent_run_id is not None:
            self.flush()  # the parent may still be in the buffer
            with self.ws.meta.session() as s:
                parent_run_id = self._resolve(s, parent_run_id)
                parent_experiment = s.scalar(
                    sa.select(Experiment.name).join(RunRow, RunRow.experiment_id == Experiment.id)
                    .where(RunRow.id == parent_run_id)
                )
        exp = check_experiment_name(experiment or parent_experiment or DEFAULT_EXPERIMENT)
        tag_rows = _tag_rows("", tags or {})  # validated before anything is written
        user, host = user_and_host()
        code = self._code_version()
        run_id = new_id("run")
        name = name or _random_name()
        start = utcnow()
        exp_id = self._experiment_id(exp)
        # Buffered like the rest: written by the next flush (at the latest when it ends).
        self._writer.add_run({
            "id": run_id, "experiment_id": exp_id, "name": name,
            "parent_run_id": parent_run_id, "status": "RUNNING", "message": None,
            "start_time": start, "end_time": None, "user": user, "host": host,
            "code_version": code.to_dict() if code else None, "packages": package_versions(),
            "seed": seed,
        })
        run = Run(self, id=run_id, name=name, experiment=exp, experiment_id=exp_id,
                  parent_run_id=parent_run_id, start_time=start, seed=seed)
        with self._open_lock:
            self._open[run_id] = run
        if tag_rows:
            self._writer.add_tags([(run_id, k, v, n) for _, k, v, n in tag_rows])
        return run

    def _experiment_id(self, name: str) -> str:
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        with self.ws.meta.session(write=True) as s:
            s.execute(
                self._insert(Experiment)
                .values(id=new_id("exp"), name=name, description="", created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            exp_id = s.scalar(sa.select(Experiment.id).where(Experiment.name == name))
        assert exp_id is not None
        self._experiments[name] = exp_id
        return exp_id

    def _code_version(self) -> CodeVersion | None:
        if not self.capture_code_version:
            return None
        cwd = os.getcwd()
        if cwd not in self._code_versions:
            self._code_versions[cwd] = code_version(cwd)
        return self._code_versions[cwd]

    def _end_run(self, run: Run, status: str, message: str | None) -> None:
        if run._ended:
            return
        run._ended = True
        end = utcnow()
        payload = {
            "experiment": run.experiment, "name": run.name, "status": status, "message": message,
            "parent_run_id": run.parent_run_id,
            "duration_s": round((end - run.start_time).total_seconds(), 6),
        }
        event = RUN_FINISHED if status == "FINISHED" else RUN_FAILED
        self._writer.add_end(RunEnd(run.id, status, message, end, event, payload))
        with self._open_lock:
            self._open.pop(run.id, None)
        self._writer.flush()

    def _record_artifacts(self, run_id: str, refs: Sequence[tuple[str, ArtifactRef]]) -> None:
        if not refs:
            return
        self.flush()  # the run's row may still be in the buffer
        now = utcnow()
        ins = self._insert(RunArtifact).values([
            {"run_id": run_id, "name": name, "sha256": ref.sha256, "size": ref.size, "created_at": now}
            for name, ref in dict(refs).items()  # a name given twice: the last file wins
        ])
        ins = ins.on_conflict_do_update(
            index_elements=["run_id", "name"],
            set_={"sha256": ins.excluded.sha256, "size": ins.excluded.size,
                  "created_at": ins.excluded.created_at},
        )
        with self.ws.meta.session(write=True) as s:
            s.execute(ins)

    def _record_dataset(self, run_id: str, info: DatasetVersionInfo, role: str) -> None:
        self.flush()  # the run's row may still be in the buffer
        with self.ws.meta.session(write=True) as s:
            s.execute(
                self._insert(RunDatasetRow).values(
                    run_id=run_id, dataset_version_id=info.id, role=role, dataset_name=info.name,
                    version=info.version, content_hash=info.content_hash, created_at=utcnow(),
                ).on_conflict_do_nothing()
            )
            self.ws.lineage.add(info.entity, EntityRef("run", run_id), "used_by", session=s)

    # -- reading ----------------------------------------------------------------
    def get_run(self, run_id: str) -> RunInfo:
        """Everything recorded for a run, by id or unique id prefix.

        Raises
        ------
        NotFound
            No run has that id.
        """
        self.flush()
        with self.ws.meta.session() as s:
            rid = self._resolve(s, run_id)
            q = SqlQuery.new(self.ws.meta.dialect)
            q.add_where(f"r.id = {q.ph}", rid)
            return self._load(s, q)[0]

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point of metric ``key`` of a run, by step then time (empty if never logged)."""
        self.flush()
        t = RunMetric.__table__
        with self.ws.meta.session() as s:
            rid = self._resolve(s, run_id)
            rows = s.execute(
                sa.select(t.c.step, t.c.value, t.c.timestamp)
                .where(t.c.run_id == rid, t.c.key == key)
                .order_by(t.c.step, t.c.timestamp, t.c.id)
            ).all()
        return [MetricPoint(st, math.nan if v is None else v, ts) for st, v, ts in rows]

    def metric_histories(self, run_ids: Sequence[str]) -> dict[str, dict[str, list[MetricPoint]]]:
        """Every metric history of several runs: ``{run_id: {key: [points]}}``."""
        self.flush()
        t = RunMetric.__table__
        out: dict[str, dict[str, list[MetricPoint]]] = {}
        with self.ws.meta.session() as s:
            ids = [self._resolve(s, r) for r in run_ids]
            for chunk in _chunks(ids):
                for rid, key, st, v, ts in s.execute(
                    sa.select(t.c.run_id, t.c.key, t.c.step, t.c.value, t.c.timestamp)
                    .where(t.c.run_id.in_(chunk))
                    .order_by(t.c.run_id, t.c.key, t.c.step, t.c.timestamp, t.c.id)
                ):
                    out.setdefault(rid, {}).setdefault(key, []).append(
                        MetricPoint(st, math.nan if v is None else v, ts)
                    )
        return {rid: out.get(rid, {}) for rid in ids}

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
    ) -> list[RunInfo]:
        """Find runs by a filter expression, sorted; newest first by default.

        Parameters
        ----------
        experiment
            Limit to one experiment name (or several).
        filter
            E.g. ``"metrics.auc > 0.9 and params.max_depth = 6"``: comparisons
            (``= != > >= < <= LIKE ILIKE``) of ``metrics.KEY`` (latest value),
            ``params.KEY``, ``tags.KEY`` and ``attributes.status|name|run_id|
            experiment|parent_run_id|start_time|end_time``, joined by ``and``.
            Numbers compare numerically, 'quoted' values as text.
        order_by
            E.g. ``["metrics.auc DESC", "start_time"]``; runs without the key sort last.
        max_results
            At most this many runs.

        Raises
        ------
        InvalidInput
            A malformed filter (the message names the position) or order.
        NotFound
            An unknown experiment.
        """
        clauses = parse_filter(filter)
        order = parse_order_by(order_by)
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
            raise InvalidInput(f"max_results must be a positive integer, got {max_results!r}")
        self.flush()
        with self.ws.meta.session() as s:
            q = SqlQuery.new(self.ws.meta.dialect)
            compile_filter(clauses, q)
            if experiment is not None:
                names = [experiment] if isinstance(experiment, str) else list(experiment)
                ids = self._experiment_ids(s, names)
                q.add_where(f"r.experiment_id IN ({', '.join([q.ph] * len(ids))})", *ids)
            compile_order_by(order, q)
            return self._load(s, q, limit=max_results)

    def child_runs(self, run_id: str) -> list[RunInfo]:
        """The runs nested directly under a run, oldest first."""
        self.flush()
        with self.ws.meta.session() as s:
            rid = self._resolve(s, run_id)
            q = SqlQuery.new(self.ws.meta.dialect)
            q.add_where(f"r.parent_run_id = {q.ph}", rid)
            q.order.append("r.start_time")
            return self._load(s, q)

    def list_experiments(self) -> list[ExperimentInfo]:
        """Every experiment with its run count, by name."""
        self.flush()
        e, r = Experiment.__table__, RunRow.__table__
        q = (
            sa.select(e.c.id, e.c.name, e.c.created_at, sa.func.count(r.c.id),
                      sa.func.max(r.c.start_time))
            .select_from(e.outerjoin(r, r.c.experiment_id == e.c.id))
            .group_by(e.c.id, e.c.name, e.c.created_at)
            .order_by(e.c.name)
        )
        with self.ws.meta.session() as s:
            return [
                ExperimentInfo(i, n, as_utc(c), int(k), as_utc(last) if last else None)
                for i, n, c, k, last in s.execute(q)
            ]

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """The content of a run's artifact, verified against its sha256.

        Raises
        ------
        NotFound
            The run has no artifact of that name.
        IntegrityError
            The stored content no longer matches its hash.
        """
        self.flush()
        t = RunArtifact.__table__
        with self.ws.meta.session() as s:
            rid = self._resolve(s, run_id)
            sha = s.scalar(sa.select(t.c.sha256).where(t.c.run_id == rid, t.c.name == name))
        if sha is None:
            raise NotFound(f"run {rid} has no artifact {name!r}; see `loopml runs show {rid}`")
        return self.ws.artifacts.get_bytes(sha)

    def compare(self, run_ids: Sequence[str]) -> RunComparison:
        """Params and latest metrics of several runs side by side."""
        from loopml.track.compare import RunComparison

        if len(run_ids) < 1:
            raise InvalidInput("give at least one run to compare")
        return RunComparison.of([self.get_run(r) for r in run_ids])

    def write_comparison_chart(self, run_ids: Sequence[str], path: str | os.PathLike[str]) -> Path:
        """Write a self-contained (offline) plotly HTML chart of the runs' metric histories."""
        from loopml.track.compare import write_chart

        runs = [self.get_run(r) for r in run_ids]
        histories = self.metric_histories([r.id for r in runs])
        return write_chart(runs, histories, Path(path))

    # -- internals --------------------------------------------------------------
    def _resolve(self, s: Session, run_id: str) -> str:
        """The full id of ``run_id`` (an id, or a unique prefix with or without ``run-``)."""
        if not isinstance(run_id, str) or not run_id.strip():
            raise InvalidInput(f"run id {run_id!r} is empty")
        runs = RunRow.__table__
        if s.scalar(sa.select(runs.c.id).where(runs.c.id == run_id)) is not None:
            return run_id
        prefix = run_id if run_id.startswith("run-") else f"run-{run_id}"
        if len(prefix) >= 8 and re.fullmatch(r"run-[0-9a-f]+", prefix):
            found = list(s.scalars(
                sa.select(runs.c.id).where(runs.c.id.like(prefix + "%")).limit(3)
            ))
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidInput(f"run id prefix {run_id!r} is ambiguous ({', '.join(found)}, "
                                   "...); give more characters")
        if re.fullmatch(r"(run-)?[0-9a-f]{1,3}", run_id):
            raise NotFound(f"no run {run_id!r}; an id prefix needs at least 4 hex digits "
                           "after 'run-'")
        raise NotFound(f"no run {run_id!r}; see `loopml runs list`")

    def _experiment_ids(self, s: Session, names: Sequence[str]) -> list[str]:
        e = Experiment.__table__
        found = dict(s.execute(sa.select(e.c.name, e.c.id).where(e.c.name.in_(list(names)))).all())
        missing = [n for n in names if n not in found]
        if missing:
            known = sorted(s.scalars(sa.select(e.c.name)))
            raise NotFound(f"no experiment named {missing[0]!r} (known: "
                           f"{', '.join(known) or 'none yet'})")
        return [found[n] for n in names]

    def _load(self, s: Session, query: SqlQuery, limit: int | None = None) -> list[RunInfo]:
        sql, args = query.render(limit)
        rows = _fetch(s, sql, args)
        if not rows:
            return []
        ids = [r[0] for r in rows]
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        datasets: dict[str, list[RunDataset]] = {i: [] for i in ids}
        artifacts: dict[str, list[RunArtifactInfo]] = {i: [] for i in ids}
        nan = math.nan
        dialect = self.ws.meta.dialect
        for chunk in _chunks(ids):
            for kind, rid, s1, s2, s3, s4, num, n, t in _details(s, dialect, chunk):
                if kind == 0:
                    params[rid][s1] = s2
                elif kind == 1:
                    metrics[rid][s1] = nan if num is None else float(num)
                elif kind == 2:
                    tags[rid][s1] = s2
                elif kind == 3:
                    datasets[rid].append(RunDataset(s1, s3, int(n), s2, s4))
                else:
                    artifacts[rid].append(RunArtifactInfo(s1, s2, int(n), _as_datetime(t)))
        for rid in ids:
            if len(artifacts[rid]) > 1:
                artifacts[rid].sort(key=lambda x: x.name)
        json_cache: dict[str, Any] = {}
        out = []
        for (rid, exp_id, exp, name, status, message, parent, start, end, code, packages, seed,
             user, host) in rows:
            out.append(RunInfo(
                id=rid, experiment=exp, experiment_id=exp_id, name=name, status=status,
                message=message, parent_run_id=parent, start_time=_as_datetime(start),
                end_time=None if end is None else _as_datetime(end),
                params=params[rid], metrics=metrics[rid], tags=tags[rid],
                datasets=datasets[rid], artifacts=artifacts[rid],
                code_version=CodeVersion.from_dict(_json(json_cache, code)),
                packages=dict(_json(json_cache, packages) or {}), seed=seed, user=user, host=host,
            ))
        return out

    # -- lifetime ---------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered metric, param and tag now."""
        self._writer.flush()

    def open_runs(self) -> list[Run]:
        """Runs started by this tracker that have not ended."""
        with self._open_lock:
            return list(self._open.values())

    def close(self) -> None:
        """End this tracker's open runs (FINISHED, or as set), write everything, stop the thread."""
        self._shutdown(None)

    def _shutdown(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        for run in self.open_runs():
            try:
                if exc is None:
                    run.end()
                else:
                    run._fail(exc, exc.__traceback__)
            except Exception as e:
                log.error("could not end run %s: %s", run.id, e)
        self._closed = True
        _LIVE.discard(self)
        self._finalizer()  # _Writer.close: stop the thread, final flush

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown(exc)

    def __repr__(self) -> str:
        return f"Tracker({self.ws!r})"


def _json(cache: dict[str, Any], value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value  # PostgreSQL's driver parses JSON itself
    if value not in cache:
        cache[value] = json.loads(value)
    return cache[value]


#: params, latest metrics, tags, datasets and artifacts of a set of runs in one round trip, as
#: rows (kind, run_id, s1, s2, s3, s4, num, n, t); the first branch types the NULL columns
#: (PostgreSQL resolves UNION types branch by branch). Plain SQL on the driver's cursor: this is the
#: hot path of search_runs, and SQLAlchemy's per-row and IN-list expansion costs doubled it.
_DETAILS_SQL = """\
SELECT 0, run_id, "key", "value", CAST(NULL AS TEXT), CAST(NULL AS TEXT),
  CAST(NULL AS DOUBLE PRECISION), CAST(NULL AS BIGINT), CAST(NULL AS TIMESTAMP WITH TIME ZONE)
FROM run_params WHERE run_id IN ({ids})
UNION ALL
SELECT 1, run_id, "key", NULL, NULL, NULL, "value", NULL, NULL FROM run_latest_metrics WHERE run_id IN ({ids})
UNION ALL
SELECT 2, run_id, "key", "value", NULL, NULL, NULL, NULL, NULL FROM run_tags WHERE run_id IN ({ids})
UNION ALL
SELECT 3, run_id, dataset_version_id, role, dataset_name, content_hash, NULL, version, created_at
FROM run_datasets WHERE run_id IN ({ids})
UNION ALL
SELECT 4, run_id, name, sha256, NULL, NULL, NULL, size, created_at FROM run_artifacts WHERE run_id IN ({ids})
"""


#: the run ids as one parameter, so the statement text (and its prepared form) never changes
_ID_LIST = {"sqlite": "SELECT value FROM json_each(?)", "postgresql": "SELECT unnest(%s::text[])"}


def _details(s: Session, dialect: str, ids: list[str]) -> list[tuple[Any, ...]]:
    sql = _DETAILS_SQL.format(ids=_ID_LIST[dialect])
    param: Any = json.dumps(ids) if dialect == "sqlite" else ids
    return _fetch(s, sql, [param] * 5)


def _fetch(s: Session, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the driver's cursor inside the session's transaction; all rows."""
    cursor = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _as_datetime(value: Any) -> datetime:
    """A timestamp from the driver: a datetime (PostgreSQL) or ISO text (SQLite)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
    return as_utc(value).astimezone(timezone.utc)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield list(ids[i : i + _CHUNK])


def _close_dropped(writer: _Writer, open_runs: dict[str, Run]) -> None:
    """The finalizer of a collected tracker (``open_runs`` is only held, see Tracker)."""
    writer.close_from_finalizer()


def _close_all_at_exit() -> None:
    """Flush every live tracker when the interpreter exits (runs still open end then).

    An exception that is killing the interpreter (``sys.last_value``) marks them FAILED.
    """
    exc = getattr(sys, "last_value", None)
    for tracker in list(_LIVE):
        try:
            tracker._shutdown(exc if isinstance(exc, BaseException) else None)
        except Exception as e:  # pragma: no cover - the database went away at exit
            log.error("tracking: could not write buffered data at exit: %s", e)


atexit.register(_close_all_at_exit)


__all__ = [
    "DEFAULT_EXPERIMENT",
    "RUN_FAILED",
    "RUN_FINISHED",
    "ExperimentInfo",
    "MetricPoint",
    "Run",
    "RunArtifactInfo",
    "RunDataset",
    "RunInfo",
    "Tracker",
    "check_experiment_name",
]
