"""The Optuna storage of tuning jobs: an Optuna journal per job in the workspace's metadata database.

Each tuning job's study is Optuna's :class:`~optuna.storages.JournalStorage`
over :class:`SQLJournalBackend`: the study's operations (trial created,
parameter suggested, value reported, trial finished, ...) are rows of the
table ``tune_journal`` (migration 0013), in the same SQLite file or
PostgreSQL database as the job's runs. A killed job resumes from it and
several processes or machines share it, as with Optuna's RDB storage, but a
trial costs about 1 ms of storage work instead of 11 ms (random search) to
19 ms (TPE), because a process replays the journal into memory once and then
only reads the rows appended since (``bench/tune.py --overhead``).

Journals are kept per job (the ``partition`` column), so opening a job
replays its own rows only. Optuna's snapshots are pickles and are not used:
nothing read from the database is unpickled.

Workspaces made before the journal kept their studies in Optuna's RDB tables
(``studies``, ``trials``, ...); :meth:`Studies.names` copies each such study
into the journal the first time it is seen (``optuna.copy_study``), and the
old tables are left as they are.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from optuna.storages.journal import BaseJournalBackend

from loopml.errors import SchemaVersionError

if TYPE_CHECKING:
    import optuna
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

TABLE = "tune_journal"


def _make_engine(url: str) -> Engine:
    """An engine on the metadata database, set up as loopml's own (WAL, busy timeout; see MetadataStore)."""
    from loopml.store.metadata import MetadataStore

    return MetadataStore(url).engine


class SQLJournalBackend(BaseJournalBackend):
    """Optuna's journal backend on a SQL table: the logs of one partition (a tuning job), in order.

    ``append_logs`` numbers the new rows after the partition's last one in a
    transaction that holds the partition's write lock (SQLite: the database
    write lock; PostgreSQL: a transaction-level advisory lock), so numbers
    are gapless and become visible in order, which ``read_logs`` relies on.

    Parameters
    ----------
    engine
        A SQLAlchemy engine on the metadata database.
    partition
        The journal's key (the tuning job's id).
    """

    def __init__(self, engine: Engine, partition: str) -> None:
        self.engine = engine
        self.partition = partition
        self._pg = engine.dialect.name == "postgresql"

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """The logs numbered ``log_number_from`` and up (0: all of them)."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT log FROM {TABLE} WHERE partition = :p AND seq >= :n ORDER BY seq"),
                {"p": self.partition, "n": log_number_from},
            ).all()
        return [json.loads(r[0]) for r in rows]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` at the end of the partition, all or none."""
        from sqlalchemy import text

        if not logs:
            return
        # loopml_write: SQLite takes the write lock up front (BEGIN IMMEDIATE), as loopml's writers do
        with self.engine.execution_options(loopml_write=True).begin() as conn:
            self._lock(conn)
            last = conn.execute(text(f"SELECT MAX(seq) FROM {TABLE} WHERE partition = :p"),
                                {"p": self.partition}).scalar()
            start = 0 if last is None else int(last) + 1
            conn.execute(
                text(f"INSERT INTO {TABLE} (partition, seq, log) VALUES (:p, :s, :log)"),
                [{"p": self.partition, "s": start + i, "log": json.dumps(entry, separators=(",", ":"))}
                 for i, entry in enumerate(logs)],
            )

    def _lock(self, conn: Connection) -> None:
        if self._pg:
            from sqlalchemy import text

            key = zlib.crc32(f"loopml.tune:{self.partition}".encode()) - 2**31  # a signed 32-bit key
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        # SQLite: BEGIN IMMEDIATE (MetadataStore's begin hook) already holds the database's write lock


class Studies:
    """The tuning jobs' studies of one metadata database: one journal storage per job.

    Parameters
    ----------
    url
        The workspace's ``metadata_url`` (SQLite or PostgreSQL).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._storages: dict[str, optuna.storages.JournalStorage] = {}
        self._lock = threading.Lock()
        self._imported = False

    def storage(self, job_id: str) -> optuna.storages.JournalStorage:
        """The Optuna storage holding the study of ``job_id`` (empty until the job is created)."""
        from optuna.storages import JournalStorage

        with self._lock:
            st = self._storages.get(job_id)
            if st is None:
                self._import_legacy()
                st = self._storages[job_id] = JournalStorage(SQLJournalBackend(self.engine, job_id))
            return st

    def names(self) -> list[str]:
        """The ids of every tuning job with a study here."""
        from sqlalchemy import text

        with self._lock:
            self._import_legacy()
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(text(f"SELECT DISTINCT partition FROM {TABLE}"))]

    def close(self) -> None:
        """Release the database connections."""
        with self._lock:
            self._storages.clear()
        self.engine.dispose()

    def __enter__(self) -> Studies:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- studies made before the journal -----------------------------------------------------------
    def _import_legacy(self) -> None:
        """Copy studies from Optuna's RDB tables into journals, once per study (caller holds the lock)."""
        if self._imported:
            return
        self._imported = True
        from sqlalchemy import inspect, text

        if not inspect(self.engine).has_table("studies") or not inspect(self.engine).has_table("version_info"):
            return
        with self.engine.connect() as conn:
            legacy = [r[0] for r in conn.execute(text("SELECT study_name FROM studies"))]
            have = {r[0] for r in conn.execute(text(f"SELECT DISTINCT partition FROM {TABLE}"))}
        todo = [name for name in legacy if name not in have]
        if not todo:
            return
        import optuna
        from optuna.storages import JournalStorage

        rdb = _open_rdb(self.url)
        try:
            for name in todo:
                optuna.copy_study(from_study_name=name, from_storage=rdb, to_study_name=name,
                                  to_storage=JournalStorage(SQLJournalBackend(self.engine, name)))
                log.info("copied tuning study %s from Optuna's RDB tables into the journal", name)
        finally:
            rdb.remove_session()
            rdb.engine.dispose()


def _open_rdb(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage on the legacy tables (read only here)."""
    import optuna
    from optuna.storages._rdb import models
    from sqlalchemy.engine import make_url

    from loopml.store.metadata import SQLITE_BUSY_TIMEOUT_S

    sqlite = make_url(url).get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if sqlite else {}
    # loopml's migrations own alembic_version, so Optuna's own schema check would read our revision
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)
    with storage.engine.connect() as conn:
        row = conn.execute(models.VersionInfoModel.__table__.select()).first()
    if row is not None and int(row.schema_version) != int(models.SCHEMA_VERSION):
        raise SchemaVersionError(
            f"the old tuning tables in the metadata database were made by optuna {row.library_version} "
            f"(schema {row.schema_version}); this optuna {optuna.__version__} uses schema "
            f"{models.SCHEMA_VERSION}: install a matching optuna to copy them"
        )
    return storage


def open_studies(url: str) -> Studies:
    """The studies of the metadata database at ``url`` (call :meth:`Studies.close` when done)."""
    return Studies(url)


__all__ = ["SQLJournalBackend", "Studies", "open_studies"]
