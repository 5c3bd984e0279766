"""loopml: a local-first platform for the whole machine-learning lifecycle."""

from loopml.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    LoopmlError,
    NotFound,
    SchemaVersionError,
    SourceError,
    ValidationFailed,
)
from loopml.workspace import Settings, Workspace

__version__ = "0.1.0"

__all__ = [
    "Conflict",
    "IntegrityError",
    "InvalidInput",
    "LoopmlError",
    "NotFound",
    "SchemaVersionError",
    "Settings",
    "SourceError",
    "ValidationFailed",
    "Workspace",
    "__version__",
]
