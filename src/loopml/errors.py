"""The error tree of loopml.

Every error a user can cause is a :class:`LoopmlError`. Its message names the
thing, the value and what to do; the CLI prints it on one line and exits 1, the
HTTP servers map it to a 4xx JSON body (see :attr:`LoopmlError.http_status`).
"""

from __future__ import annotations


class LoopmlError(Exception):
    """Base class of every error loopml raises on purpose."""

    http_status = 400
    code = "ValidationError"

    def __str__(self) -> str:
        # One line, always: the CLI prints exactly this.
        return " ".join(super().__str__().split())


class NotFound(LoopmlError):
    """A named thing (workspace, dataset, version, artifact, ...) does not exist."""

    http_status = 404
    code = "NotFound"


class InvalidInput(LoopmlError):
    """The input (a file, an argument, a payload, a spec) is not what is expected."""


class IntegrityError(LoopmlError):
    """Stored content does not match its recorded hash: it was changed or corrupted."""

    http_status = 500
    code = "IntegrityError"


class Conflict(LoopmlError):
    """The operation clashes with existing state (a name taken, a concurrent change)."""

    http_status = 409
    code = "Conflict"


class SchemaVersionError(LoopmlError):
    """The metadata database was written by a newer (or unknown) loopml version."""

    http_status = 500
    code = "SchemaVersionError"


class SourceError(LoopmlError):
    """A data source (file, database, HTTP API) could not be read."""

    http_status = 502
    code = "SourceError"


class ValidationFailed(LoopmlError):
    """Data broke the expectations and the run was asked to fail on invalid rows."""

    code = "ValidationFailed"


__all__ = [
    "Conflict",
    "IntegrityError",
    "InvalidInput",
    "LoopmlError",
    "NotFound",
    "SchemaVersionError",
    "SourceError",
    "ValidationFailed",
]
