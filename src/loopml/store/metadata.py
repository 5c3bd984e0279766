"""The metadata store: a SQLAlchemy engine with sessions, pragmas and migrations."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from loopml.errors import Conflict, InvalidInput, SchemaVersionError, SourceError
from loopml.store.migrations import HEAD

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
#: seconds a writer waits for the SQLite lock before giving up
SQLITE_BUSY_TIMEOUT_S = 60
_PG_MIGRATION_LOCK = 0x6C6F6F70  # "loop"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Driver-level autocommit: SQLAlchemy's "begin" hook below issues BEGIN
    # itself, so write transactions can take the lock up front (IMMEDIATE)
    # instead of failing with SQLITE_BUSY when a read upgrades to a write.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("loopml_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class MetadataStore:
    """Owns the engine for one metadata URL (SQLite or PostgreSQL).

    Parameters
    ----------
    url
        A SQLAlchemy URL, e.g. ``sqlite:////path/loopml.db`` or
        ``postgresql+psycopg://user@host/db``.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as e:
            raise InvalidInput(
                f"metadata_url {url!r} is not a SQLAlchemy URL; use e.g. sqlite:///path/loopml.db"
            ) from e
        self.url = url
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        elif self.dialect == "postgresql":
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ImportError) as e:
            extra = " (pip install 'loopml[postgres]')" if self.dialect == "postgresql" else ""
            raise InvalidInput(f"no database driver for {url!r}: {e}{extra}") from e
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=self.engine.execution_options(loopml_write=True), expire_on_commit=False
        )

    # -- sessions ---------------------------------------------------------------
    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        ``write=True`` takes the database's write lock at the start (SQLite
        ``BEGIN IMMEDIATE``), which is what concurrent writers need.
        """
        factory = self._write if write else self._read
        with factory() as s, s.begin():
            yield s

    # -- schema -----------------------------------------------------------------
    def migrate(self) -> str:
        """Bring the schema to this code's head revision; refuse a newer database.

        Returns the revision the database is at afterwards.
        """
        from alembic.migration import MigrationContext

        try:
            with self.engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
        except OperationalError as e:
            raise SourceError(
                f"cannot open the metadata database {self.safe_url}: {e.orig}; "
                "check metadata_url in loopml.toml or LOOPML_METADATA_URL"
            ) from e
        if current == HEAD:
            return current
        self._check_known(current)
        engine = self.engine.execution_options(loopml_write=True)
        with engine.connect() as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            current = MigrationContext.configure(conn).get_current_revision()
            if current != HEAD:
                self._check_known(current)
                log.info("migrating metadata schema %s -> %s", current, HEAD)
                self._upgrade(conn)
        return HEAD

    def _check_known(self, current: str | None) -> None:
        if current is None:
            return
        from alembic.script import ScriptDirectory

        known = {s.revision for s in ScriptDirectory(str(_MIGRATIONS)).walk_revisions()}
        if current not in known:
            raise SchemaVersionError(
                f"the metadata database {self.safe_url} is at schema revision {current!r}, "
                f"newer than this loopml knows (head {HEAD!r}); upgrade loopml to use it"
            )

    def _upgrade(self, conn: Connection) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    @property
    def safe_url(self) -> str:
        """The URL with any password masked (for messages and display)."""
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


_T = TypeVar("_T")


def retry_on_conflict(fn: Callable[[], _T], what: str, attempts: int = 5) -> _T:
    """Run a write transaction again when a concurrent writer took the same key first.

    After ``attempts`` unique-key clashes, raise :class:`~loopml.errors.Conflict`
    naming ``what`` (``"this model"``, ``"this endpoint"``).
    """
    for i in range(attempts):
        try:
            return fn()
        except IntegrityError:
            if i == attempts - 1:
                raise Conflict(f"another process changed {what} at the same time; try again") from None
            time.sleep(0.01 * (i + 1))
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["MetadataStore", "retry_on_conflict"]
