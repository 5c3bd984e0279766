"""Alembic migrations of the metadata schema (applied automatically on open)."""

#: the newest revision this code knows; a test checks it matches the scripts
HEAD = "0013"
