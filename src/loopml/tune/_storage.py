"""The Optuna storage of tuning jobs: Optuna's RDBStorage on the workspace's metadata database.

Optuna creates its own tables (``studies``, ``trials``, ...) beside loopml's
in the same SQLite file or PostgreSQL database, so a tuning job's study lives
with its runs: a killed job resumes from it and several machines share it.

Two things need care:

- Both loopml and Optuna keep their Alembic revision in ``alembic_version``.
  loopml's migrations own that table, so Optuna's schema check (which would
  read loopml's revision) is skipped and replaced by a check of Optuna's own
  ``version_info`` row.
- On SQLite, Optuna's transactions read then write; under concurrent workers
  that can fail at once with "database is locked" (a reader cannot upgrade to
  a writer in WAL mode while another writer committed). Every Optuna
  transaction therefore takes the write lock up front (``BEGIN IMMEDIATE``)
  and waits for it, as loopml's own writers do.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from loopml.errors import SchemaVersionError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: seconds an Optuna transaction waits for the SQLite write lock
SQLITE_BUSY_TIMEOUT_S = 60


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's begin hook below issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    # as loopml's own connections: in WAL mode, no fsync per commit (a crash loses no data, a
    # power cut at most the last commits); Optuna commits several times per trial
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage on the metadata URL (tables created on first use).

    Parameters
    ----------
    url
        The workspace's ``metadata_url`` (SQLite or PostgreSQL).

    Returns
    -------
    optuna.storages.RDBStorage

    Raises
    ------
    SchemaVersionError
        The Optuna tables were made by an Optuna with another schema version.
    """
    import optuna
    from optuna.storages._rdb import models
    from sqlalchemy import event
    from sqlalchemy.engine import make_url

    sqlite = make_url(url).get_backend_name() == "sqlite"
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if sqlite else {"pool_pre_ping": True}
    )
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=True)
    if sqlite:
        storage.engine.dispose()  # the connections made while creating tables lack the hooks
        event.listen(storage.engine, "connect", _sqlite_connect)
        event.listen(storage.engine, "begin", _sqlite_begin)
    with storage.engine.connect() as conn:
        row = conn.execute(models.VersionInfoModel.__table__.select()).first()
    if row is not None and int(row.schema_version) != int(models.SCHEMA_VERSION):
        raise SchemaVersionError(
            f"the tuning tables in the metadata database were made by optuna {row.library_version} "
            f"(schema {row.schema_version}); this optuna {optuna.__version__} uses schema "
            f"{models.SCHEMA_VERSION}: install a matching optuna"
        )
    return storage


def close_storage(storage: optuna.storages.RDBStorage) -> None:
    """Release the storage's database connections."""
    try:
        storage.remove_session()
    finally:
        storage.engine.dispose()


__all__ = ["close_storage", "open_storage"]
