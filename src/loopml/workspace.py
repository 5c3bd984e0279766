"""The Workspace: settings + metadata store + artifact store.

A workspace is a folder holding ``.loopml/`` (like git's ``.git``): the settings
file ``loopml.toml``, and by default the SQLite metadata database and the
artifact folder. Settings can point metadata at PostgreSQL and artifacts at any
fsspec URL; ``LOOPML_*`` environment variables override the file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, NotFound
from loopml.store.artifacts import ArtifactStore
from loopml.store.events import EventLog
from loopml.store.lineage import Lineage
from loopml.store.metadata import MetadataStore

if TYPE_CHECKING:
    from loopml.metrics import MetricsTable
    from loopml.track import Run, Tracker

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DIRNAME = ".loopml"
SETTINGS_FILE = "loopml.toml"
ENV_HOME = "LOOPML_HOME"
ENV_PREFIX = "LOOPML_"


@dataclass(frozen=True)
class Settings:
    """Workspace settings; every field can be set in ``loopml.toml`` or as ``LOOPML_<FIELD>``.

    Relative paths and the ``{workspace}`` placeholder resolve against the
    workspace's ``.loopml`` folder.
    """

    metadata_url: str = "sqlite:///{workspace}/loopml.db"
    artifact_root: str = "{workspace}/artifacts"
    #: rows buffered per Parquet row group when writing datasets
    row_group_size: int = 131_072
    #: where stream records live: the embedded SQLite log, or ``redis://host:port/db``
    stream_url: str = "sqlite:///{workspace}/streams.db"
    #: the online feature store: embedded SQLite, or ``redis://host:port/db``
    online_store_url: str = "sqlite:///{workspace}/online.db"
    #: extra, stage-specific settings (``[section]`` tables in loopml.toml)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, home: Path, env: dict[str, str] | None = None) -> Settings:
        """Read ``home/loopml.toml`` and apply ``LOOPML_*`` overrides from ``env``."""
        env = dict(os.environ) if env is None else env
        path = home / SETTINGS_FILE
        raw: dict[str, Any] = {}
        if path.exists():
            try:
                raw = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as e:
                raise InvalidInput(f"{path} is not valid TOML ({e}); fix or delete it") from e
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in raw.items():
            if key in known:
                values[key] = value
            elif isinstance(value, dict):
                extra[key] = value
            else:
                raise InvalidInput(
                    f"unknown setting {key!r} in {path}; known settings: {', '.join(sorted(known))}"
                )
        for name, f in known.items():
            env_value = env.get(ENV_PREFIX + name.upper())
            if env_value is not None:
                values[name] = int(env_value) if f.type in ("int", int) else env_value
        settings = cls(**values, extra=extra)
        return settings.resolved(home)

    def resolved(self, home: Path) -> Settings:
        """Return a copy with ``{workspace}`` placeholders and relative folders made absolute."""
        ws = home.resolve().as_posix()
        art = self.artifact_root.replace("{workspace}", ws)
        if "://" not in art and not os.path.isabs(art):
            art = (home / art).resolve().as_posix()
        return replace(
            self,
            metadata_url=self.metadata_url.replace("{workspace}", ws),
            artifact_root=art,
            stream_url=self.stream_url.replace("{workspace}", ws),
            online_store_url=self.online_store_url.replace("{workspace}", ws),
        )


_TEMPLATE = """\
# loopml workspace settings. Each can be overridden by an environment
# variable LOOPML_<NAME> (e.g. LOOPML_METADATA_URL).
# {{workspace}} stands for this folder.

# Where metadata lives: any SQLAlchemy URL, e.g.
#   postgresql+psycopg://user:pass@host:5432/loopml
metadata_url = "{metadata_url}"

# Where artifacts (datasets, models, reports) live: a folder or any fsspec URL,
# e.g. s3://bucket/loopml
artifact_root = "{artifact_root}"

# Streams (embedded SQLite log, or redis://host:6379/0) and the online
# feature store (embedded SQLite, or redis://host:6379/1):
# stream_url = "sqlite:///{{workspace}}/streams.db"
# online_store_url = "sqlite:///{{workspace}}/online.db"
"""


class Workspace:
    """A loopml workspace: settings, metadata, artifacts, lineage and events.

    Use :meth:`init` to create one and :meth:`open` to find an existing one.

    Examples
    --------
    >>> import tempfile, loopml
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> ws.meta.url.startswith("sqlite")
    True
    >>> ws.close()
    """

    def __init__(self, home: Path, settings: Settings) -> None:
        self.home = home
        self.root = home.parent
        self.settings = settings
        self.meta = MetadataStore(settings.metadata_url)
        self.artifacts = ArtifactStore(settings.artifact_root)
        self.lineage = Lineage(self.meta)
        self.events = EventLog(self.meta)
        self._tracker: Tracker | None = None
        self._metrics: MetricsTable | None = None

    # -- creation and discovery -------------------------------------------------
    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        metadata_url: str | None = None,
        artifact_root: str | None = None,
    ) -> Workspace:
        """Create a workspace in ``path`` (or re-open the one already there)."""
        root = Path(path).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise InvalidInput(f"{root} is a file; give a folder for the workspace")
        home = root / DIRNAME
        home.mkdir(parents=True, exist_ok=True)
        settings_path = home / SETTINGS_FILE
        if not settings_path.exists():
            defaults = Settings()
            text = _TEMPLATE.format(
                metadata_url=metadata_url or defaults.metadata_url,
                artifact_root=artifact_root or defaults.artifact_root,
            )
            tmp = settings_path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, settings_path)
        ws = cls(home, Settings.load(home))
        ws.meta.migrate()
        return ws

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """Open the workspace at ``path``, or at ``$LOOPML_HOME``, or the nearest one upwards.

        The database schema is migrated to this version of loopml if it is
        older; a database written by a newer loopml is refused.
        """
        home = cls.find(path)
        ws = cls(home, Settings.load(home))
        ws.meta.migrate()
        return ws

    @staticmethod
    def find(path: str | os.PathLike[str] | None = None) -> Path:
        """Return the ``.loopml`` folder for ``path``, ``$LOOPML_HOME`` or the current directory."""
        if path is None and os.environ.get(ENV_HOME):
            path = os.environ[ENV_HOME]
            explicit = True
        else:
            explicit = path is not None
        start = Path(path if path is not None else os.getcwd()).expanduser().resolve()
        if start.name == DIRNAME and (start / SETTINGS_FILE).exists():
            return start
        candidates = [start] if explicit else [start, *start.parents]
        for folder in candidates:
            if (folder / DIRNAME / SETTINGS_FILE).exists():
                return folder / DIRNAME
        where = str(start) if explicit else f"{start} or any folder above it"
        raise NotFound(f"no loopml workspace in {where}; run `loopml init` there first")

    # -- tracking convenience ------------------------------------------------------
    @property
    def tracker(self) -> Tracker:
        """The workspace's experiment tracker (created on first use, closed with the workspace)."""
        if self._tracker is None:
            # The one upward reference of the base layer, kept lazy: the style
            # users know from other tools is ``ws.start_run(...)``.
            from loopml.track import Tracker

            self._tracker = Tracker(self)
        return self._tracker

    @property
    def metrics(self) -> MetricsTable:
        """The workspace's metrics table (time series and statistics; created on first use)."""
        if self._metrics is None:
            from loopml.metrics import MetricsTable

            self._metrics = MetricsTable(self)
        return self._metrics

    def start_run(
        self, experiment: str | None = None, name: str | None = None, **kwargs: Any
    ) -> Run:
        """Start a tracked run; see :meth:`loopml.track.Tracker.start_run`.

        Examples
        --------
        >>> import tempfile, loopml
        >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
        >>> with ws.start_run(experiment="churn") as run:
        ...     run.log_metric("auc", 0.91, step=3)
        >>> ws.tracker.get_run(run.id).metrics["auc"]
        0.91
        >>> ws.close()
        """
        return self.tracker.start_run(experiment, name, **kwargs)

    # -- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Flush the tracker and release database connections."""
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
        self.meta.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
