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


class PayloadTooLarge(LoopmlError):
    """A request body is over the size limit."""

    http_status = 413
    code = "ValidationError"


class UnsupportedMediaType(LoopmlError):
    """A request's ``Content-Type`` is not one the server reads."""

    http_status = 415
    code = "ValidationError"


class NotAcceptable(LoopmlError):
    """A request's ``Accept`` asks for a format the server cannot write."""

    http_status = 406
    code = "ValidationError"


class ModelError(LoopmlError):
    """The model itself failed on valid input (SageMaker's ``ModelError``)."""

    http_status = 424
    code = "ModelError"


class Unauthorized(LoopmlError):
    """No (or a malformed) API key was sent to an endpoint that requires one."""

    http_status = 401
    code = "UnauthorizedException"


class Forbidden(LoopmlError):
    """The API key sent is not valid for this endpoint."""

    http_status = 403
    code = "AccessDeniedException"


class Throttled(LoopmlError):
    """Too many concurrent requests (serverless max concurrency, queue full)."""

    http_status = 429
    code = "ThrottlingException"


class ServiceUnavailable(LoopmlError):
    """The endpoint exists but cannot answer now (no variant ready, shutting down)."""

    http_status = 503
    code = "ServiceUnavailable"


__all__ = [
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "LoopmlError",
    "ModelError",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "SchemaVersionError",
    "ServiceUnavailable",
    "SourceError",
    "Throttled",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
]
